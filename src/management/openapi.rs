//! The OpenAPI 3.1 document of the management API, generated from the
//! handlers and bodies, with the answers every route shares added to each.

use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, Response, ResponseBuilder, ServerBuilder};

use super::handlers;
use super::wire::{
    BearerError, CreateKey, CreatedKey, Key, KeyPage, ProblemDetails, RenameKey, RollKey,
    ScopeToken,
};
use crate::record::KeyStatus;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "API key management",
        description = "Create, list, rename, roll and revoke the caller's API keys. A key's secret is shown once, when it is created or rolled."
    ),
    paths(
        handlers::list_keys,
        handlers::create_key,
        handlers::get_key,
        handlers::rename_key,
        handlers::revoke_key,
        handlers::roll_key
    ),
    components(schemas(
        Key,
        KeyStatus,
        KeyPage,
        CreatedKey,
        CreateKey,
        RenameKey,
        RollKey,
        ProblemDetails,
        BearerError,
        ScopeToken
    )),
    tags((name = "keys", description = "The caller's API keys"))
)]
struct ApiDoc;

const PROBLEM: &str = "application/problem+json";
const JSON: &str = "application/json";

/// The document for an API nested at `mount`, whose callers are keys with
/// `scope` (`Some("")` for any key) or, with `None`, owners named by the
/// application.
pub(super) fn document(mount: &str, scope: Option<&str>) -> openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let server = if mount.is_empty() { "/" } else { mount };
    document.servers = Some(vec![ServerBuilder::new().url(server).build()]);
    let by_key = scope.is_some();
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.put,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            let with_body = operation.request_body.is_some();
            let responses = &mut operation.responses.responses;
            for (status, response) in shared_responses(by_key, with_body) {
                responses
                    .entry(status.to_string())
                    .or_insert(RefOr::T(response));
            }
        }
    }
    if let Some(scope) = scope {
        let components = document.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("API key")
                    .description(Some(format!(
                        "An API key{}, sent as `Authorization: Bearer <key>`",
                        if scope.is_empty() {
                            String::new()
                        } else {
                            format!(" with the scope `{scope}`")
                        }
                    )))
                    .build(),
            ),
        );
        let scopes: Vec<&str> = if scope.is_empty() {
            vec![]
        } else {
            vec![scope]
        };
        document.security = Some(vec![SecurityRequirement::new("api_key", scopes)]);
    }
    document
}

/// A response whose body is one of the named schemas, by media type.
fn response(description: &str, bodies: &[(&str, &str)]) -> Response {
    let mut builder = ResponseBuilder::new().description(description);
    for (media, schema) in bodies {
        builder = builder.content(
            *media,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(*schema)))
                .build(),
        );
    }
    builder.build()
}

/// The answers any route may give: from the key layer (RFC 6750, JSON) when
/// keys are the callers, and the API's own problems.
fn shared_responses(by_key: bool, with_body: bool) -> Vec<(u16, Response)> {
    let problem = (PROBLEM, "Problem");
    let bearer = (JSON, "BearerError");
    let both: &[(&str, &str)] = if by_key {
        &[problem, bearer]
    } else {
        &[problem]
    };
    let mut shared = vec![
        (400, response("The request is malformed", both)),
        (403, response("The caller may not do this", both)),
        (
            503,
            response("The key store is unavailable; try again", both),
        ),
    ];
    if by_key {
        shared.extend([
            (
                401,
                response(
                    "No valid API key: missing, unknown, expired or revoked",
                    &[bearer],
                ),
            ),
            (414, response("The request URI is too long", &[bearer])),
            (429, response("Too many requests", &[bearer])),
            (
                431,
                response("The Authorization header is too large", &[bearer]),
            ),
        ]);
    }
    if with_body {
        shared.extend([
            (413, response("The body is too large", &[problem])),
            (
                415,
                response("The body is not application/json", &[problem]),
            ),
            (
                422,
                response("The body is JSON but not what the route takes", &[problem]),
            ),
        ]);
    }
    shared
}
