//! The subjects of `benches/tokens.rs`: an issuer of the bench's own on a
//! loopback socket (metadata and key set), a layer that accepts its access
//! tokens beside keys, a valid token, a forged one, and a key.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey as _, LineEnding};
use serde_json::json;
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
}

fn sign(signing: &SigningKey, claims: &serde_json::Value) -> String {
    let pem = signing.to_pkcs8_pem(LineEnding::LF).expect("pem");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("bench".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).expect("key"),
    )
    .expect("sign")
}

impl TokenSubjects {
    /// Serves the issuer on `subjects`' runtime, builds the layer, and
    /// warms its key cache and the issuer's key set.
    pub fn new(subjects: &Subjects) -> Self {
        let runtime = &subjects.runtime;
        let signing = SigningKey::random(&mut rand_core::OsRng);
        let point = signing.verifying_key().to_encoded_point(false);
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(point.x().expect("x")),
            URL_SAFE_NO_PAD.encode(point.y().expect("y")),
        );
        let floor_key = DecodingKey::from_ec_components(&x, &y).expect("a P-256 key");
        let jwk = json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "bench", "x": x, "y": y,
        });
        let jwks = Arc::new(json!({ "keys": [jwk] }));
        let addr = runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let issuer = format!("http://{addr}");
            let metadata =
                Arc::new(json!({ "issuer": issuer, "jwks_uri": format!("{issuer}/jwks") }));
            let app = axum::Router::new()
                .route(
                    "/.well-known/oauth-authorization-server",
                    axum::routing::get(move || async move { axum::Json((*metadata).clone()) }),
                )
                .route(
                    "/jwks",
                    axum::routing::get(move || async move { axum::Json((*jwks).clone()) }),
                );
            tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
            addr
        });
        let issuer = format!("http://{addr}");
        let keys = {
            let _guard = runtime.enter();
            ApiKeys::builder(MemoryStore::new())
                .cache_ttl(CACHE_TTL)
                .oauth(OAuth::new(&issuer, RESOURCE).jwks_max_age(CACHE_TTL))
                .build()
                .expect("build")
        };
        let created = runtime
            .block_on(keys.create(NewKey::new("bench", "bench")))
            .expect("create");
        let key = HeaderValue::from_str(&format!("Bearer {}", created.secret.expose_secret()))
            .expect("header");
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": issuer, "sub": "user-1", "aud": RESOURCE, "scope": "mcp",
            "client_id": "bench", "iat": now, "exp": now + 3 * 3600,
        });
        let raw_token = sign(&signing, &claims);
        let forged = sign(&SigningKey::random(&mut rand_core::OsRng), &claims);
        let subjects = Self {
            keys,
            key,
            token: HeaderValue::from_str(&format!("Bearer {raw_token}")).expect("header"),
            forged: HeaderValue::from_str(&format!("Bearer {forged}")).expect("header"),
            floor_key,
            raw_token,
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
