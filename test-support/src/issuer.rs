//! An issuer of a test's own (feature `oauth`): the RFC 8414 metadata and
//! the JWK Set of P-256 keys the test holds, on a loopback port, counting
//! its fetches and misbehaving on demand; and those keys, to sign access
//! tokens (or forge them) exactly as a test needs. For the cases a real
//! authorization server will not produce: expired, not yet valid, another
//! issuer, another algorithm, a mix-up, a key set of megabytes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse as _;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};

/// A signing key of the issuer, with its `kid`.
#[derive(Debug)]
pub struct IssuerKey {
    kid: String,
    signing: SigningKey,
}

impl IssuerKey {
    /// A new P-256 key named `kid`.
    pub fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            signing: SigningKey::random(&mut rand_core::OsRng),
        }
    }

    /// Its public JWK, as a key set lists it.
    pub fn jwk(&self) -> Value {
        let point = self.signing.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
            "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
        })
    }

    /// Its public key in PEM, as an attacker who read the key set has it.
    pub fn public_pem(&self) -> String {
        self.signing
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// Signs `claims` under a header as given, with this key's ES256,
    /// whatever the header claims.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature: p256::ecdsa::Signature =
            p256::ecdsa::signature::Signer::sign(&self.signing, signing_input.as_bytes());
        format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        )
    }

    /// An ES256 access token (`typ` `at+jwt`, this `kid`) of `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let pem = self.signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }
}

/// What the issuer serves, and how often it was asked.
#[derive(Debug, Default)]
pub struct Served {
    /// The JWKs of the key set.
    pub keys: Mutex<Vec<Value>>,
    /// Serve 500s instead.
    pub down: std::sync::atomic::AtomicBool,
    /// How the issuer misbehaves, if it does.
    pub hostile: Mutex<Option<Hostile>>,
    /// Requests for the metadata.
    pub metadata_fetches: AtomicUsize,
    /// Requests for the key set.
    pub jwks_fetches: AtomicUsize,
}

/// The ways an issuer (or whoever answers in its place) can misbehave.
#[derive(Clone, Debug)]
pub enum Hostile {
    /// Metadata naming another issuer (a mix-up).
    OtherIssuer,
    /// The metadata redirects elsewhere.
    Redirect(String),
    /// A key set of a few megabytes.
    HugeKeySet,
}

/// The issuer on its loopback port.
#[derive(Debug)]
pub struct Issuer {
    /// `http://127.0.0.1:PORT`: its `iss`, and where its metadata is.
    pub url: String,
    /// What it serves and counts.
    pub served: Arc<Served>,
    audience: String,
}

impl Issuer {
    /// Serves the metadata and key set of `keys`, for tokens whose `aud`
    /// is `audience`.
    pub async fn start(audience: &str, keys: &[&IssuerKey]) -> Self {
        let served = Arc::new(Served::default());
        *served.keys.lock().unwrap() = keys.iter().map(|key| key.jwk()).collect();
        let app = Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(
                    |State(served): State<Arc<Served>>, headers: HeaderMap| async move {
                        served.metadata_fetches.fetch_add(1, Ordering::SeqCst);
                        if served.down.load(Ordering::SeqCst) {
                            return Err(StatusCode::INTERNAL_SERVER_ERROR);
                        }
                        let host = headers["host"].to_str().unwrap().to_owned();
                        let hostile = served.hostile.lock().unwrap().clone();
                        let issuer = match hostile {
                            Some(Hostile::OtherIssuer) => "https://someone-else.test".to_owned(),
                            Some(Hostile::Redirect(to)) => {
                                return Ok(axum::response::Redirect::temporary(&to).into_response());
                            }
                            _ => format!("http://{host}"),
                        };
                        Ok(axum::Json(json!({
                            "issuer": issuer,
                            "jwks_uri": format!("http://{host}/jwks"),
                        }))
                        .into_response())
                    },
                ),
            )
            .route(
                "/jwks",
                get(|State(served): State<Arc<Served>>| async move {
                    served.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    if served.down.load(Ordering::SeqCst) {
                        return Err(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                    if matches!(*served.hostile.lock().unwrap(), Some(Hostile::HugeKeySet)) {
                        let padding = "A".repeat(4 << 20);
                        return Ok(axum::Json(
                            json!({ "keys": *served.keys.lock().unwrap(), "padding": padding }),
                        ));
                    }
                    Ok(axum::Json(json!({ "keys": *served.keys.lock().unwrap() })))
                }),
            )
            .with_state(Arc::clone(&served));
        let addr: SocketAddr = crate::serve(app).await;
        Self {
            url: format!("http://{addr}"),
            served,
            audience: audience.to_owned(),
        }
    }

    /// Valid claims for 10 minutes: `sub`, `scope`, the audience,
    /// `client_id` `client-1`.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        json!({
            "iss": self.url, "sub": sub, "aud": self.audience, "scope": scope,
            "client_id": "client-1", "iat": now, "exp": now + 600, "jti": "t1",
        })
    }

    /// How often its key set was fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// A token that must be refused, what it is, and the `error_description`
/// of its 401.
#[derive(Debug)]
pub struct Forgery {
    /// What is wrong with it.
    pub case: &'static str,
    /// The token.
    pub token: String,
    /// The description the refusal carries.
    pub description: &'static str,
}

const INVALID: &str = "The access token is invalid";

impl Issuer {
    /// The bad tokens every verifier of this issuer's tokens must refuse:
    /// expired, not yet valid, another issuer, another resource, no or a
    /// hostile `sub`, an unknown `kid`, a stranger's key under a known one,
    /// `alg: none`, HS256 keyed with the public key, a signature over
    /// another payload, truncated, two segments. `key` is the issuer's.
    pub fn forgeries(&self, key: &IssuerKey) -> Vec<Forgery> {
        let good = self.claims("user-42", "mcp");
        let now = good["iat"].as_i64().unwrap_or_default();
        let with = |field: &str, value: Value| {
            let mut claims = good.clone();
            claims[field] = value;
            claims
        };
        let valid = key.sign(&good);
        let (header, rest) = valid.split_once('.').unwrap_or_default();
        let (_, signature) = rest.split_once('.').unwrap_or_default();
        let other_payload = URL_SAFE_NO_PAD.encode(with("sub", json!("admin")).to_string());
        let mut no_sub = good.clone();
        no_sub.as_object_mut().map(|claims| claims.remove("sub"));
        // HS256 with the issuer's public key as the secret (the classic confusion).
        let mut hs256 = Header::new(Algorithm::HS256);
        hs256.kid = Some(key.kid.clone());
        let hs256 = EncodingKey::from_secret(key.public_pem().as_bytes())
            .and_then(|secret| jsonwebtoken::encode(&hs256, &good, &secret))
            .expect("an HS256 token");
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": key.kid}).to_string()),
            URL_SAFE_NO_PAD.encode(good.to_string())
        );
        let forgery = |case, token, description| Forgery {
            case,
            token,
            description,
        };
        vec![
            forgery(
                "expired",
                key.sign(&with("exp", json!(now - 120))),
                "The access token has expired",
            ),
            forgery(
                "not yet valid",
                key.sign(&with("nbf", json!(now + 600))),
                INVALID,
            ),
            forgery(
                "another issuer",
                key.sign(&with("iss", json!("https://evil.test"))),
                INVALID,
            ),
            forgery(
                "another resource",
                key.sign(&with("aud", json!("https://other.test/mcp"))),
                INVALID,
            ),
            forgery("no subject", key.sign(&no_sub), INVALID),
            forgery(
                "a control character in sub",
                key.sign(&with("sub", json!("user\u{1b}[2J"))),
                INVALID,
            ),
            forgery("unknown kid", IssuerKey::new("k9").sign(&good), INVALID),
            forgery(
                "signed by a stranger with a known kid",
                IssuerKey::new(&key.kid).sign(&good),
                INVALID,
            ),
            forgery("alg none", none, INVALID),
            forgery("HS256 with the public key", hs256, INVALID),
            forgery(
                "a signature over another payload",
                format!("{header}.{other_payload}.{signature}"),
                INVALID,
            ),
            forgery("truncated", valid[..valid.len() - 10].to_owned(), INVALID),
            forgery("two segments", format!("{header}.{other_payload}"), INVALID),
        ]
    }
}
