//! Hostile and sloppy inputs, each with the status a client must see, sent
//! over a real TCP socket with a real HTTP client.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, WWW_AUTHENTICATE};
use tower_api_keys::key::KeyFormat;
use tower_api_keys::test_util::ScriptedStore;
use tower_api_keys::{ApiKeys, NewKey};

use test_support::{client, serve};

/// One request: its query string (if any), its `Authorization` values, and
/// what must come back.
struct Case {
    name: &'static str,
    query: Option<String>,
    authorization: Vec<Vec<u8>>,
    other_headers: Vec<(&'static str, String)>,
    status: StatusCode,
    /// The `error="..."` of the challenge; `None` for no error code.
    error: Option<&'static str>,
}

fn case(name: &'static str, authorization: &[&[u8]], status: StatusCode) -> Case {
    Case {
        name,
        query: None,
        authorization: authorization.iter().map(|a| a.to_vec()).collect(),
        other_headers: Vec::new(),
        status,
        error: match status {
            StatusCode::BAD_REQUEST => Some("invalid_request"),
            _ => None,
        },
    }
}

impl Case {
    fn query(mut self, query: String) -> Self {
        self.query = Some(query);
        self
    }

    fn invalid_token(mut self) -> Self {
        self.error = Some("invalid_token");
        self
    }

    fn header(mut self, name: &'static str, value: String) -> Self {
        self.other_headers.push((name, value));
        self
    }
}

#[tokio::test]
async fn every_malformed_input_gets_its_status() {
    let store = Arc::new(ScriptedStore::new());
    let keys = ApiKeys::builder(std::sync::Arc::clone(&store))
        .realm("test")
        .build()
        .unwrap();
    let created = keys.create(NewKey::new("acct", "ci")).await.unwrap();
    let app = Router::new()
        .route("/api/v2/projects", get(|| async { "ok" }))
        .route_layer(keys.layer());
    let addr = serve(app).await;

    let key = created.secret.expose_secret().to_owned();
    let body = key["bmc_".len()..].to_owned();
    let b = |s: String| s.into_bytes();
    let bearer = |k: &str| b(format!("Bearer {k}"));
    let unknown = KeyFormat::default().generate().unwrap();
    let unknown = unknown.expose_secret();
    let percent_encoded: String = key.bytes().map(|c| format!("%{c:02X}")).collect();
    let non_canonical_last = {
        // Flip the last character to one whose low bits belong to no byte.
        let last = body.as_bytes()[42];
        let replacement = if last == b'B' { 'C' } else { 'B' };
        format!("bmc_{}{replacement}", &body[..42])
    };

    let cases = vec![
        case("canonical scheme", &[&bearer(&key)], StatusCode::OK),
        case(
            "lowercase scheme",
            &[&b(format!("bearer {key}"))],
            StatusCode::OK,
        ),
        case(
            "uppercase scheme",
            &[&b(format!("BEARER {key}"))],
            StatusCode::OK,
        ),
        case(
            "mixed-case scheme",
            &[&b(format!("bEaReR {key}"))],
            StatusCode::OK,
        ),
        case(
            "several spaces after the scheme",
            &[&b(format!("Bearer    {key}"))],
            StatusCode::OK,
        ),
        case(
            "trailing spaces (not part of the field value)",
            &[&b(format!("Bearer {key}   "))],
            StatusCode::OK,
        ),
        case("no Authorization header", &[], StatusCode::UNAUTHORIZED),
        case(
            "Basic scheme",
            &[b"Basic dXNlcjpwYXNz"],
            StatusCode::UNAUTHORIZED,
        ),
        case(
            "Token scheme",
            &[&b(format!("Token {key}"))],
            StatusCode::UNAUTHORIZED,
        ),
        case(
            "key without a scheme",
            &[key.as_bytes()],
            StatusCode::UNAUTHORIZED,
        ),
        case(
            "scheme glued to the key",
            &[&b(format!("Bearer{key}"))],
            StatusCode::UNAUTHORIZED,
        ),
        case(
            "tab after the scheme",
            &[&b(format!("Bearer\t{key}"))],
            StatusCode::BAD_REQUEST,
        ),
        case("Bearer alone", &[b"Bearer"], StatusCode::BAD_REQUEST),
        case(
            "Bearer and spaces",
            &[b"Bearer    "],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "empty Authorization header",
            &[b""],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "two Authorization headers",
            &[&bearer(&key), &bearer(&key)],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "two headers, one Basic",
            &[&bearer(&key), b"Basic dXNlcjpwYXNz"],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "non-ASCII bytes in the token",
            &[&b(format!("Bearer {}\u{e9}", &key[..46]))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "raw high bytes in the token",
            &[&[b"Bearer bmc_".as_slice(), &[0xff, 0xfe, 0x80]].concat()],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "a space inside the token",
            &[&b(format!("Bearer {} {}", &key[..20], &key[20..]))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "a trailing second token",
            &[&b(format!("Bearer {key} extra"))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "quoted token",
            &[&b(format!("Bearer \"{key}\""))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "comma-joined credentials",
            &[&b(format!("Bearer {key},Bearer {key}"))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "a '!' outside b64token",
            &[&b(format!("Bearer {}!", &key[..46]))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "padding in the middle",
            &[&b(format!("Bearer {}={}", &key[..20], &key[21..]))],
            StatusCode::BAD_REQUEST,
        ),
        case(
            "a 64 KiB header",
            &[&b(format!("Bearer {}", "a".repeat(64 * 1024)))],
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        ),
        case(
            "one character short",
            &[&bearer(&key[..key.len() - 1])],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "one character long",
            &[&bearer(&format!("{key}A"))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "'+' from the other base64 alphabet",
            &[&bearer(&format!("bmc_{}+", &body[..42]))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "'/' from the other base64 alphabet",
            &[&bearer(&format!("bmc_/{}", &body[1..]))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "base64 padding appended",
            &[&bearer(&format!("{key}="))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "non-canonical last character",
            &[&bearer(&non_canonical_last)],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "another prefix",
            &[&bearer(&format!("sk_{body}"))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "uppercase prefix",
            &[&bearer(&format!("BMC_{body}"))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "prefix without separator",
            &[&bearer(&format!("bmc{body}"))],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "a JWT-looking token",
            &[b"Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc"],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case(
            "a well-formed unknown key",
            &[&bearer(unknown)],
            StatusCode::UNAUTHORIZED,
        )
        .invalid_token(),
        case("key in ?access_token=", &[], StatusCode::BAD_REQUEST)
            .query(format!("access_token={key}")),
        case("key in ?api_key=", &[], StatusCode::BAD_REQUEST).query(format!("api_key={key}")),
        case("key in ?token=", &[], StatusCode::BAD_REQUEST).query(format!("token={key}")),
        case("key in ?key=", &[], StatusCode::BAD_REQUEST).query(format!("key={key}")),
        case("?ACCESS_TOKEN= in capitals", &[], StatusCode::BAD_REQUEST)
            .query("ACCESS_TOKEN=x".into()),
        case(
            "key in an innocent-looking parameter",
            &[],
            StatusCode::BAD_REQUEST,
        )
        .query(format!("q={key}")),
        case("percent-encoded key", &[], StatusCode::BAD_REQUEST)
            .query(format!("q={percent_encoded}")),
        case("key as a parameter's name", &[], StatusCode::BAD_REQUEST).query(key.clone()),
        case(
            "key in the query and a valid header",
            &[&bearer(&key)],
            StatusCode::BAD_REQUEST,
        )
        .query(format!("access_token={key}")),
        case("an ordinary query string", &[&bearer(&key)], StatusCode::OK)
            .query("page=2&sort=name".into()),
        case("key in X-Api-Key only", &[], StatusCode::UNAUTHORIZED)
            .header("x-api-key", key.clone()),
        case(
            "a URI longer than 8 KiB",
            &[&bearer(&key)],
            StatusCode::URI_TOO_LONG,
        )
        .query(format!("q={}", "a".repeat(9000))),
    ];
    assert!(cases.len() >= 30);

    let http = client();
    let lookups_before = store.calls().find_by_hash;
    for case in &cases {
        let mut url = format!("http://{addr}/api/v2/projects");
        if let Some(query) = &case.query {
            url = format!("{url}?{query}");
        }
        let mut request = http.get(&url);
        for value in &case.authorization {
            request = request.header(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        for (name, value) in &case.other_headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), case.status, "{}", case.name);
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .map(|v| v.to_str().unwrap().to_owned());
        match (case.status.as_u16(), case.error) {
            (200 | 414 | 431, _) => assert_eq!(challenge, None, "{}", case.name),
            (_, None) => assert_eq!(
                challenge.as_deref(),
                Some("Bearer realm=\"test\""),
                "{}",
                case.name
            ),
            (_, Some(error)) => {
                let challenge = challenge.unwrap_or_default();
                assert!(
                    challenge.contains(&format!("error=\"{error}\"")),
                    "{}: {challenge}",
                    case.name
                );
            }
        }
    }
    // Only the well-formed unknown key reached the store; the valid key was
    // looked up once and then served from the cache.
    assert_eq!(store.calls().find_by_hash - lookups_before, 2);
}
