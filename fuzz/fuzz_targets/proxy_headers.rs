//! The MCP proxy's header scrubbing (`prepare_request_headers`) over
//! arbitrary headers, with the caller's key in `Authorization` spelt any way
//! the layer accepts and copied into other headers. What the proxy promises:
//!
//! - no panic;
//! - when the layer would let the request in, no forwarded value holds the
//!   key, and every header that neither holds it nor is scrubbed for another
//!   reason passes unchanged;
//! - no forwarded name reads as an identity header (`_` and `.` taken as
//!   `-`, starting with `x-api-key`) unless it is one of the proxy's own,
//!   with the proxy's value and no other;
//! - no hop-by-hop header remains, nor any header `Connection` names;
//! - `Host` is the upstream's.
#![no_main]

use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mcp_proxy::proxy::{identity_headers, prepare_request_headers};
use tower_api_keys::fuzzing::{Credentials, credentials};
use tower_api_keys::{ApiKeys, Caller, MemoryStore, NewKey};

/// Removed wherever they appear (RFC 9110 §7.6.1, and the legacy two).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Names worth meeting often, beside the hop-by-hop ones.
const KNOWN: &[&str] = &[
    "authorization",
    "cookie",
    "host",
    "x-api-key",
    "x-api-key-id",
    "x-api-key-name",
    "x-api-key-owner",
    "x-api-key-scopes",
    "x-api-key-prefix",
    "x-api-key-metadata",
    "x-api-keys",
    "x-api-ke",
    "mcp-session-id",
    "mcp-protocol-version",
    "x-copy",
];

struct Harness {
    key: Caller,
    secret: String,
    authority: HeaderValue,
    identity: HeaderMap,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let keys = ApiKeys::builder(MemoryStore::new()).build().expect("build");
            let mut new = NewKey::new("acct_1", "fuzz");
            new.metadata = serde_json::json!({"team": "a b%"});
            let created = keys.create(new).await.expect("create");
            let secret = created.secret.expose_secret().to_owned();
            let key = Caller::Key(keys.authenticate(&secret).await.expect("authenticate"));
            let identity = identity_headers(&key);
            Harness {
                key,
                secret,
                authority: HeaderValue::from_static("upstream.test:9000"),
                identity,
            }
        })
    })
}

#[derive(Debug, Arbitrary)]
struct Input {
    authorization: Authorization,
    headers: Vec<(Vec<Part>, Vec<Part>)>,
}

/// The `Authorization` header.
#[derive(Debug, Arbitrary)]
enum Authorization {
    /// `Bearer <key>`: the scheme's letters upper-cased by the bits of
    /// `case`, `1 + spaces % 4` spaces, whitespace around.
    Key {
        case: u8,
        spaces: u8,
        before: Vec<Space>,
        after: Vec<Space>,
    },
    /// Any value of its parts.
    Parts(Vec<Part>),
    None,
}

#[derive(Debug, Arbitrary)]
enum Space {
    Sp,
    Tab,
}

/// A piece of a header name or value.
#[derive(Debug, Arbitrary)]
enum Part {
    Bytes(Vec<u8>),
    /// The whole key.
    Key,
    /// A piece of it: `key[start..start + len]`, within bounds.
    KeySlice(u8, u8),
    /// A known name, the bits of `case` upper-casing its letters and those
    /// of `sep` turning its dashes into `_` or `.`.
    Known {
        index: u8,
        case: u32,
        sep: u32,
    },
    HopByHop {
        index: u8,
        case: u32,
    },
    Comma,
    Space,
}

fn respell(name: &str, case: u32, sep: u32) -> Vec<u8> {
    name.bytes()
        .enumerate()
        .map(|(i, b)| {
            let bit = 1u32 << (i % 32);
            match b {
                b'-' if sep & bit != 0 => {
                    if case & bit != 0 {
                        b'_'
                    } else {
                        b'.'
                    }
                }
                b if case & bit != 0 => b.to_ascii_uppercase(),
                b => b,
            }
        })
        .collect()
}

fn render(parts: &[Part], secret: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        match part {
            Part::Bytes(bytes) => out.extend_from_slice(bytes),
            Part::Key => out.extend_from_slice(secret.as_bytes()),
            Part::KeySlice(start, len) => {
                let start = usize::from(*start) % secret.len();
                let end = (start + usize::from(*len)).min(secret.len());
                out.extend_from_slice(&secret.as_bytes()[start..end]);
            }
            Part::Known { index, case, sep } => {
                let name = KNOWN[usize::from(*index) % KNOWN.len()];
                out.extend(respell(name, *case, *sep));
            }
            Part::HopByHop { index, case } => {
                let name = HOP_BY_HOP[usize::from(*index) % HOP_BY_HOP.len()];
                out.extend(respell(name, *case, 0));
            }
            Part::Comma => out.push(b','),
            Part::Space => out.push(b' '),
        }
    }
    out
}

/// The name as CGI, WSGI and Rack servers read it.
fn reads_as_identity(name: &HeaderName) -> bool {
    name.as_str()
        .replace(['_', '.'], "-")
        .starts_with("x-api-key")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

fn values(headers: &HeaderMap, name: &HeaderName) -> Vec<HeaderValue> {
    headers.get_all(name).iter().cloned().collect()
}

fuzz_target!(|input: Input| {
    let h = harness();
    let mut headers = HeaderMap::new();
    match &input.authorization {
        Authorization::Key {
            case,
            spaces,
            before,
            after,
        } => {
            let mut value = Vec::new();
            let space = |s: &Space| match s {
                Space::Sp => b' ',
                Space::Tab => b'\t',
            };
            value.extend(before.iter().map(space));
            value.extend(b"bearer".iter().enumerate().map(|(i, b)| {
                if case & (1 << i) != 0 {
                    b.to_ascii_uppercase()
                } else {
                    *b
                }
            }));
            value.extend(std::iter::repeat_n(b' ', 1 + usize::from(spaces % 4)));
            value.extend_from_slice(h.secret.as_bytes());
            value.extend(after.iter().map(space));
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(header::AUTHORIZATION, value);
            }
        }
        Authorization::Parts(parts) => {
            if let Ok(value) = HeaderValue::from_bytes(&render(parts, &h.secret)) {
                headers.append(header::AUTHORIZATION, value);
            }
        }
        Authorization::None => {}
    }
    for (name, value) in &input.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&render(name, &h.secret)),
            HeaderValue::from_bytes(&render(value, &h.secret)),
        ) else {
            continue;
        };
        headers.append(name, value);
    }

    let original = headers.clone();
    // The request reaches the proxy only if the layer took this key.
    let let_in = credentials(&original, usize::MAX) == Credentials::Bearer(&h.secret);
    prepare_request_headers(&mut headers, &h.authority, &h.key);

    // Names `Connection` lists, read as the RFC says: comma-separated
    // tokens with optional whitespace around.
    let listed: Vec<HeaderName> = original
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    let own = |name: &HeaderName| *name == header::HOST || h.identity.contains_key(name);

    for name in headers.keys() {
        if let_in {
            for value in headers.get_all(name) {
                assert!(
                    !contains(value.as_bytes(), h.secret.as_bytes()),
                    "the key reached the upstream in {name}"
                );
            }
        }
        if reads_as_identity(name) {
            assert!(
                h.identity.contains_key(name),
                "{name} reads as an identity header and reached the upstream"
            );
        }
        assert!(
            !HOP_BY_HOP.contains(&name.as_str()),
            "hop-by-hop {name} reached the upstream"
        );
        assert!(
            own(name) || !listed.contains(name),
            "{name}, named in Connection, reached the upstream"
        );
        assert_ne!(*name, header::AUTHORIZATION);
    }
    for name in h.identity.keys() {
        assert_eq!(values(&headers, name), values(&h.identity, name), "{name}");
    }
    assert_eq!(
        values(&headers, &header::HOST),
        [h.authority.clone()],
        "Host is the upstream's"
    );

    // Everything else passes as it came.
    if let_in {
        for name in original.keys() {
            let holds_key = original
                .get_all(name)
                .iter()
                .any(|value| contains(value.as_bytes(), h.secret.as_bytes()));
            let scrubbed = holds_key
                || own(name)
                || *name == header::AUTHORIZATION
                || reads_as_identity(name)
                || HOP_BY_HOP.contains(&name.as_str())
                || listed.contains(name);
            if !scrubbed {
                assert_eq!(
                    values(&headers, name),
                    values(&original, name),
                    "{name} did not pass unchanged"
                );
            }
        }
    }
});
