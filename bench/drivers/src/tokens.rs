//! The subjects of `benches/tokens.rs`: an issuer of the bench's own on a
//! loopback socket (metadata and key set, `test_support::issuer`), a layer
//! that accepts its access tokens beside keys, a valid token, a forged
//! one, and a key.

use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::json;
use test_support::issuer::{Issuer, IssuerKey};
use tower::Service as _;
use tower_api_keys::oauth::OAuth;
use tower_api_keys::{ApiKeys, MemoryStore, NewKey};

use crate::{CACHE_TTL, Ok200, Subjects, request};

/// The audience of the tokens.
const RESOURCE: &str = "https://bench.test/mcp";

/// What the token benchmarks compare.
#[derive(Debug)]
pub struct TokenSubjects {
    /// Keys that also accept the issuer's tokens.
    pub keys: ApiKeys,
    /// `Bearer <key>`, cached.
    pub key: HeaderValue,
    /// `Bearer <a valid ES256 access token>`.
    pub token: HeaderValue,
    /// `Bearer <a token signed by another key under the issuer's kid>`.
    pub forged: HeaderValue,
    /// The issuer's public key as the layer holds it, for the floor.
    pub floor_key: DecodingKey,
    raw_token: String,
    /// Serving while the subjects live.
    _issuer: Issuer,
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("Bearer {token}")).expect("header")
}

impl TokenSubjects {
    /// Serves the issuer on `subjects`' runtime, builds the layer, and
    /// warms its key cache and the issuer's key set.
    pub fn new(subjects: &Subjects) -> Self {
        let runtime = &subjects.runtime;
        let signing = IssuerKey::new("bench");
        let issuer = runtime.block_on(Issuer::start(RESOURCE, &[&signing]));
        let jwk = signing.jwk();
        let floor_key = DecodingKey::from_ec_components(
            jwk["x"].as_str().expect("x"),
            jwk["y"].as_str().expect("y"),
        )
        .expect("a P-256 key");
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(MemoryStore::new())
                .cache_ttl(CACHE_TTL)
                .oauth(OAuth::new(&issuer.url, RESOURCE).jwks_max_age(CACHE_TTL))
                .build()
                .expect("build")
        };
        let created = runtime
            .block_on(keys.create(NewKey::new("bench", "bench")))
            .expect("create");
        // Valid for longer than any run.
        let mut claims = issuer.claims("user-1", "mcp");
        claims["exp"] = json!(claims["iat"].as_i64().unwrap_or_default() + 3 * 3600);
        let raw_token = signing.sign(&claims);
        let subjects = Self {
            keys,
            key: bearer(created.secret.expose_secret()),
            token: bearer(&raw_token),
            forged: bearer(&IssuerKey::new("bench").sign(&claims)),
            floor_key,
            raw_token,
            _issuer: issuer,
        };
        // The first token fetches the issuer's metadata and key set, the
        // first key request looks the key up; later ones wait for neither.
        // The key goes last: while the fetch runs, the change follower may
        // read the key's creation and drop it from the cache.
        let mut layer = tower::Layer::layer(&subjects.keys.layer(), Ok200);
        for header in [&subjects.token, &subjects.key] {
            let warm = runtime
                .block_on(layer.call(request(header)))
                .expect("warm-up");
            assert_eq!(warm.status(), 200);
        }
        for header in [&subjects.token, &subjects.key] {
            assert_eq!(crate::call_now(&mut layer, request(header)), 200);
        }
        subjects
    }

    /// The floor: the token's one ES256 signature checked with the same
    /// library and key the layer uses, and nothing else (no header, no
    /// claims, no key lookup).
    pub fn floor(&self) -> bool {
        let (input, signature) = self.raw_token.rsplit_once('.').expect("a JWS");
        jsonwebtoken::crypto::verify(
            signature,
            input.as_bytes(),
            &self.floor_key,
            Algorithm::ES256,
        )
        .unwrap_or(false)
    }
}
