//! The decision for a bearer token that is not a key, when an OAuth issuer
//! is configured: the verifier's answer, the route's scope, and the
//! failed-attempt throttle as for keys.

use std::sync::Arc;

use http::Request;

use super::Engine;
use super::decide::{Requirement, Verdict};
use super::throttle::ClientKey;
use crate::identity::AccessToken;
use crate::oauth::TokenError;
use crate::rejection::{Rejection, RejectionReason};

/// A token to verify, and the client that sent it.
pub(crate) struct TokenCheck {
    token: Box<str>,
    client: Option<ClientKey>,
}

impl Engine {
    /// The verdict for `token` when it is to be checked as an access token:
    /// `None` when no issuer is configured, or when it claims the key
    /// format (a bad key is refused as a key, never tried as a token).
    pub(crate) fn token_verdict<B>(&self, token: &[u8], request: &Request<B>) -> Option<Verdict> {
        self.oauth.as_ref()?;
        // Outside the b64token grammar it is a 400, whatever it was meant to be.
        if token.starts_with(self.format.lead().as_bytes()) || !crate::bearer::is_b64token(token) {
            return None;
        }
        let token = std::str::from_utf8(token).ok()?;
        let client = self.client(request);
        if let Some(rejection) = self.throttled(client, None) {
            self.metrics.access_token(false);
            return Some(Verdict::Reject(rejection));
        }
        Some(Verdict::Token(TokenCheck {
            token: token.into(),
            client,
        }))
    }

    /// Verifies the token (fetching the issuer's keys if need be), then
    /// checks the route's scope against its `scope` claim.
    pub(crate) async fn verify_token(
        self: Arc<Self>,
        check: TokenCheck,
        requirement: Requirement,
    ) -> Result<AccessToken, Rejection> {
        let Some(verifier) = &self.oauth else {
            return Err(self.reject(RejectionReason::InvalidAccessToken, None));
        };
        let outcome = verifier.verify(&check.token, self.clock.now()).await;
        let token = match outcome {
            Ok(token) => token,
            Err(error) => {
                self.metrics.access_token(false);
                return Err(match error {
                    TokenError::Expired => {
                        self.failure(RejectionReason::ExpiredAccessToken, None, check.client)
                    }
                    TokenError::Invalid(cause) => {
                        tracing::info!(
                            target: "tower_api_keys",
                            cause,
                            "access token refused"
                        );
                        self.failure(RejectionReason::InvalidAccessToken, None, check.client)
                    }
                    TokenError::Unavailable(error) => {
                        tracing::warn!(
                            target: "tower_api_keys",
                            %error,
                            "the OAuth issuer cannot be reached; refusing the token"
                        );
                        self.reject(RejectionReason::IssuerUnavailable, None)
                    }
                });
            }
        };
        if let Some(scope) = &requirement.scope
            && !token.scopes().allows(scope)
        {
            self.metrics.access_token(false);
            return Err(self
                .reject(RejectionReason::InsufficientScope, None)
                .with_scope(Arc::clone(scope)));
        }
        self.metrics.access_token(true);
        self.metrics.admitted();
        Ok(token)
    }
}
