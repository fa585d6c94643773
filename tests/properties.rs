//! Property tests of the parsers: no input panics, and the invariants hold.
//!
//! - only a well-formed key ever reaches the store;
//! - a key-shaped value anywhere in the query (name or value, raw or
//!   percent-encoded) is refused;
//! - the scheme is matched case-insensitively, and nothing else is lenient.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{HeaderValue, Request, Response, StatusCode};
use proptest::prelude::*;
use tower::{Layer, Service};
use tower_api_keys::fuzzing::{self as bearer, Credentials, QueryGuard};
use tower_api_keys::key::KeyFormat;
use tower_api_keys::layer::ApiKeyService;
use tower_api_keys::test_util::ScriptedStore;
use tower_api_keys::{ApiKeys, NewKey};

/// Cases per property: `PROPTEST_CASES` when set (for a longer search),
/// else the given default.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

const B64TOKEN: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/";
const BASE64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Strings over an alphabet that mixes key characters with the ones that
/// matter to the parsers.
fn tricky(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::sample::select(BASE64URL.chars().collect::<Vec<_>>()),
            2 => proptest::sample::select(vec![' ', '\t', '=', '+', '/', '.', '~', '%', '&', '"', ',', 'é', '\u{0}', '\u{7f}']),
        ],
        0..max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// A key's body: 43 base64url characters (not always canonical).
fn body() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(BASE64URL.chars().collect::<Vec<_>>()),
        43,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

/// "bearer" in any mix of cases.
fn scheme() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<bool>(), 6).prop_map(|upper| {
        "bearer"
            .chars()
            .zip(upper)
            .map(|(c, u)| if u { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

fn percent_encode_some(text: &str, mask: &[bool]) -> String {
    text.bytes()
        .zip(mask.iter().cycle())
        .map(|(b, encode)| {
            if *encode {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(5000)))]

    #[test]
    fn header_parsing_never_panics_and_bearer_means_the_grammar(value in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Credentials::Bearer(token) = bearer::parse(&value) {
            let trimmed = value.trim_ascii();
            prop_assert!(trimmed[..6].eq_ignore_ascii_case(b"bearer"));
            let rest = &trimmed[6..];
            let spaces = rest.len() - token.len();
            prop_assert!(spaces >= 1);
            prop_assert!(rest[..spaces].iter().all(|b| *b == b' '), "only SP separates scheme and token");
            prop_assert_eq!(&rest[spaces..], token.as_bytes());
            let body_end = token.find('=').unwrap_or(token.len());
            prop_assert!(body_end > 0);
            prop_assert!(token[..body_end].chars().all(|c| B64TOKEN.contains(c)));
            prop_assert!(token[body_end..].chars().all(|c| c == '='));
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive(scheme in scheme(), spaces in 1usize..4, body in body()) {
        let key = format!("bmc_{body}");
        let value = format!("{scheme}{}{key}", " ".repeat(spaces));
        prop_assert_eq!(bearer::parse(value.as_bytes()), Credentials::Bearer(&key));
    }

    #[test]
    fn nothing_but_the_scheme_is_lenient(scheme in scheme(), sep in "[ \t]{1,3}", token in tricky(60)) {
        let value = format!("{scheme}{sep}{token}");
        let parsed = bearer::parse(value.as_bytes());
        // Strict: only spaces separate scheme and token (RFC 6750's 1*SP),
        // and the token is a b64token; trailing whitespace is not part of a
        // field value.
        let strict = sep.chars().all(|c| c == ' ')
            && {
                let t = token.trim_start_matches(' ').trim_end_matches([' ', '\t']);
                let body_end = t.find('=').unwrap_or(t.len());
                body_end > 0
                    && t[..body_end].chars().all(|c| B64TOKEN.contains(c))
                    && t[body_end..].chars().all(|c| c == '=')
            };
        prop_assert_eq!(matches!(parsed, Credentials::Bearer(_)), strict, "{:?} -> {:?}", value, parsed);
    }

    #[test]
    fn key_parsing_agrees_with_the_strict_base64_decoder(candidate in tricky(60), body in body()) {
        let format = KeyFormat::default();
        for text in [candidate.clone(), format!("bmc_{candidate}"), format!("bmc_{body}")] {
            let oracle = text
                .strip_prefix("bmc_")
                .filter(|b| b.len() == 43)
                .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
                .is_some_and(|bytes| bytes.len() == 32);
            prop_assert_eq!(format.parse(&text).is_ok(), oracle, "{:?}", text);
        }
    }

    #[test]
    fn a_key_anywhere_in_the_query_is_refused(
        before in proptest::collection::vec(("[a-z]{1,8}", "[a-z0-9]{0,8}"), 0..4),
        after in proptest::collection::vec(("[a-z]{1,8}", "[a-z0-9]{0,8}"), 0..4),
        in_name in any::<bool>(),
        mask in proptest::collection::vec(any::<bool>(), 1..8),
        body in body(),
    ) {
        let key = format!("bmc_{body}");
        let encoded = percent_encode_some(&key, &mask);
        let carrier = if in_name {format!("{encoded}=1") } else {format!("q={encoded}") };
        let pairs: Vec<String> = before
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .chain([carrier])
            .chain(after.iter().map(|(n, v)| format!("{n}={v}")))
            .collect();
        let query = pairs.join("&");
        prop_assert!(QueryGuard::new("bmc_").carries_credential(&query), "{}", query);
    }

    #[test]
    fn the_query_guard_never_panics(query in tricky(200)) {
        let _ = QueryGuard::new("bmc_").carries_credential(&query);
    }
}

/// One layer over a counting store, shared by the cases of the property
/// below, driven without a socket (the wire is covered elsewhere).
struct Harness {
    runtime: tokio::runtime::Runtime,
    store: Arc<ScriptedStore>,
    service: ApiKeyService<Inner>,
    _keys: ApiKeys,
    key: String,
}

type Answer = std::future::Ready<Result<Response<String>, std::convert::Infallible>>;
type Inner = tower::util::ServiceFn<fn(Request<String>) -> Answer>;

fn ok(_: Request<String>) -> Answer {
    std::future::ready(Ok(Response::new(String::new())))
}

impl Harness {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = Arc::new(ScriptedStore::new());
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(Arc::clone(&store)).build().unwrap()
        };
        let created = runtime
            .block_on(keys.create(NewKey::new("o", "k")))
            .unwrap();
        let service = keys.layer().layer(tower::service_fn(ok as fn(_) -> _));
        Self {
            runtime,
            store,
            service,
            key: created.secret.expose_secret().to_owned(),
            _keys: keys,
        }
    }

    fn status(&mut self, authorization: Option<&[u8]>, query: Option<&str>) -> StatusCode {
        let uri = match query {
            Some(q) => format!("/x?{q}"),
            None => "/x".to_owned(),
        };
        let mut request = Request::new(String::new());
        match uri.parse() {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return StatusCode::BAD_REQUEST, // not a request a server would pass on
        }
        if let Some(value) = authorization {
            match HeaderValue::from_bytes(value) {
                Ok(value) => {
                    request
                        .headers_mut()
                        .insert(http::header::AUTHORIZATION, value);
                }
                Err(_) => return StatusCode::BAD_REQUEST, // not a header a server would pass on
            }
        }
        let response = self.runtime.block_on(self.service.call(request)).unwrap();
        response.status()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(1000)))]

    #[test]
    fn only_a_well_formed_key_reaches_the_store(
        value in proptest::collection::vec(any::<u8>(), 0..80),
        token in tricky(50),
        body in body(),
        shape in 0u8..4,
    ) {
        thread_local! {
            static HARNESS: std::cell::RefCell<Option<Harness>> = const {std::cell::RefCell::new(None) };
        }
        HARNESS.with(|cell| {
            let mut cell = cell.borrow_mut();
            let h = cell.get_or_insert_with(Harness::new);
            let header: Vec<u8> = match shape {
                0 => value.clone(),
                1 => format!("Bearer {token}").into_bytes(),
                2 => format!("Bearer bmc_{body}").into_bytes(),
                _ => format!("Bearer {}", h.key).into_bytes(),
            };
            let before = h.store.calls().find_by_hash;
            let status = h.status(Some(&header), None);
            let looked_up = h.store.calls().find_by_hash > before;
            if looked_up {
                let token = std::str::from_utf8(&header).ok().and_then(|v| v.trim().get(7..).map(str::trim_start));
                prop_assert!(token.is_some_and(|t| KeyFormat::default().parse(t).is_ok()), "{:?} reached the store", String::from_utf8_lossy(&header));
            }
            if status == StatusCode::OK {
                prop_assert_eq!(shape, 3, "only the real key is let in");
            }
            Ok(())
        })?;
    }
}
