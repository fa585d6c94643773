//! Property tests of the parsers: no input panics, and the invariants hold.
//!
//! - only a well-formed key ever reaches the store;
//! - a key-shaped value anywhere in the query (name or value, raw or
//!   percent-encoded) is refused;
//! - the scheme is matched case-insensitively, and nothing else is lenient.
//!
//! The parsers are driven through the layer, as a server would drive them:
//! a header taken as bearer credentials is one answered 200 or 401
//! `invalid_token` (every other outcome of the header is a 400, or a 401
//! without an error code), and a query refused for carrying a key is a 400
//! when no header is sent. The fuzz targets drive the parsers directly.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::header::WWW_AUTHENTICATE;
use http::{HeaderValue, Request, Response, StatusCode};
use proptest::prelude::*;
use tower::{Layer, Service};
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
        if with_harness(|h| h.answer(Some(&value), None)).is_some_and(|seen| seen.took_bearer()) {
            let trimmed = value.trim_ascii();
            prop_assert!(trimmed.len() > 6 && trimmed[..6].eq_ignore_ascii_case(b"bearer"));
            let rest = &trimmed[6..];
            let spaces = rest.iter().take_while(|b| **b == b' ').count();
            prop_assert!(spaces >= 1, "only SP separates scheme and token");
            let token = std::str::from_utf8(&rest[spaces..]);
            prop_assert!(token.is_ok(), "a b64token is ASCII");
            let token = token.unwrap_or_default();
            let body_end = token.find('=').unwrap_or(token.len());
            prop_assert!(body_end > 0);
            prop_assert!(token[..body_end].chars().all(|c| B64TOKEN.contains(c)));
            prop_assert!(token[body_end..].chars().all(|c| c == '='));
        }
    }

    #[test]
    fn the_scheme_is_case_insensitive(scheme in scheme(), spaces in 1usize..4) {
        // The real key, so that only the exact token lets the request in.
        let status = with_harness(|h| {
            let value = format!("{scheme}{}{}", " ".repeat(spaces), h.key);
            h.status(Some(value.as_bytes()), None)
        });
        prop_assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn nothing_but_the_scheme_is_lenient(scheme in scheme(), sep in "[ \t]{1,3}", token in tricky(60)) {
        let value = format!("{scheme}{sep}{token}");
        // Bytes no header value may hold never reach a server's layer.
        let Some(seen) = with_harness(|h| h.answer(Some(value.as_bytes()), None)) else {
            return Ok(());
        };
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
        prop_assert_eq!(seen.took_bearer(), strict, "{:?} -> {:?}", value, seen);
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
        let status = with_harness(|h| h.status(None, Some(&query)));
        prop_assert_eq!(status, StatusCode::BAD_REQUEST, "{}", query);
    }

    #[test]
    fn the_query_guard_never_panics(query in tricky(200)) {
        // What a URI cannot hold raw is sent percent-encoded, as a client
        // would, so that every case reaches the guard.
        let query = uri_safe(&query);
        let status = with_harness(|h| h.answer(None, Some(&query)).map(|seen| seen.status));
        prop_assert!(status.is_some(), "{:?} is not a request target", query);
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
        // Not a request a server would pass on.
        self.answer(authorization, query)
            .map_or(StatusCode::BAD_REQUEST, |seen| seen.status)
    }

    /// The layer's answer, or `None` for a request no server would pass on
    /// (a target that is no URI, a header value with bytes it may not hold).
    fn answer(&mut self, authorization: Option<&[u8]>, query: Option<&str>) -> Option<Seen> {
        let uri = match query {
            Some(q) => format!("/x?{q}"),
            None => "/x".to_owned(),
        };
        let mut request = Request::new(String::new());
        *request.uri_mut() = uri.parse().ok()?;
        if let Some(value) = authorization {
            let value = HeaderValue::from_bytes(value).ok()?;
            request
                .headers_mut()
                .insert(http::header::AUTHORIZATION, value);
        }
        let response = self.runtime.block_on(self.service.call(request)).unwrap();
        Some(Seen {
            status: response.status(),
            challenge: response
                .headers()
                .get(WWW_AUTHENTICATE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        })
    }
}

/// What the layer answered: the status and the challenge.
#[derive(Debug)]
struct Seen {
    status: StatusCode,
    challenge: Option<String>,
}

impl Seen {
    /// Whether the header was taken as bearer credentials: its token was
    /// let in or refused as a key (`invalid_token`), not as a header.
    fn took_bearer(&self) -> bool {
        self.status == StatusCode::OK
            || (self.status == StatusCode::UNAUTHORIZED
                && self
                    .challenge
                    .as_deref()
                    .is_some_and(|c| c.contains("error=\"invalid_token\"")))
    }
}

thread_local! {
    static HARNESS: std::cell::RefCell<Option<Harness>> = const {std::cell::RefCell::new(None) };
}

/// Runs `f` on this thread's harness, built on first use.
fn with_harness<T>(f: impl FnOnce(&mut Harness) -> T) -> T {
    HARNESS.with(|cell| f(cell.borrow_mut().get_or_insert_with(Harness::new)))
}

/// `text` with every byte a URI's query may not hold raw percent-encoded.
fn uri_safe(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The parsers' own examples, through the layer.
#[test]
fn the_documented_examples_hold() {
    with_harness(|h| {
        // The query guard refuses a credential's name and a key's prefix,
        // raw or encoded, and passes other queries.
        assert_eq!(
            h.status(None, Some("access_token=abc")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            h.status(None, Some("q=%62mc_K7xR")),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            h.status(None, Some("page=2&sort=name")),
            StatusCode::UNAUTHORIZED
        );
        // The scheme is case-insensitive; `bmc_abc` is a token, refused as a key.
        let seen = h.answer(Some(b"bearer bmc_abc"), None).unwrap();
        assert!(seen.took_bearer(), "{seen:?}");
        let key = format!("bearer {}", h.key);
        assert_eq!(h.status(Some(key.as_bytes()), None), StatusCode::OK);
    });
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
        with_harness(|h| {
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
