//! The decision for one request, in the order of the request flow:
//! URI bounds, query-string guard, bearer parse, format check, hash, cache,
//! status against the clock, scope.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};

use crate::api_keys::Inner;
use crate::bearer::{self, RawCredentials};
use crate::cache::{Cached, CachedKey, LoadError};
use crate::identity::AuthenticatedKey;
use crate::key::KeyHash;
use crate::record::KeyStatus;
use crate::rejection::{Rejection, RejectionReason};

/// What a route asks of the key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requirement {
    /// Let requests without credentials through, without an identity.
    pub(crate) optional: bool,
    /// A scope the key must grant.
    pub(crate) scope: Option<Arc<str>>,
}

/// The outcome of the synchronous part of the check.
pub(crate) enum Verdict {
    /// A cached, active key.
    Allow(AuthenticatedKey),
    /// No credentials, on a route where they are optional.
    Anonymous,
    Reject(Rejection),
    /// The cache had nothing ready: ask the store.
    Lookup(Lookup),
}

/// A well-formed key that must be looked up.
pub(crate) struct Lookup {
    hash: KeyHash,
    display_prefix: Box<str>,
}

impl Inner {
    /// Everything that can be decided without waiting.
    pub(crate) fn check<B>(&self, request: &Request<B>, requirement: &Requirement) -> Verdict {
        let uri = request.uri();
        if let Some(query) = uri.query() {
            let length = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
            if length > self.max_uri_len {
                return Verdict::Reject(self.reject(RejectionReason::UriTooLong, None));
            }
            if self.query_guard.carries_credential(query) {
                return Verdict::Reject(self.reject(RejectionReason::CredentialInQuery, None));
            }
        } else if uri.path().len() > self.max_uri_len {
            return Verdict::Reject(self.reject(RejectionReason::UriTooLong, None));
        }
        let token = match bearer::raw_credentials(request.headers(), self.max_authorization_len) {
            RawCredentials::Token(token) => token,
            RawCredentials::Missing | RawCredentials::OtherScheme if requirement.optional => {
                return Verdict::Anonymous;
            }
            RawCredentials::Missing => {
                return Verdict::Reject(self.reject(RejectionReason::MissingCredentials, None));
            }
            RawCredentials::OtherScheme => {
                return Verdict::Reject(self.reject(RejectionReason::OtherScheme, None));
            }
            RawCredentials::Invalid(reason) => return Verdict::Reject(self.reject(reason, None)),
        };
        let Ok(key) = self.format.parse_bytes(token) else {
            // A key's characters are a subset of b64token's, so the general
            // grammar needs checking only for what is not a key.
            let reason = if bearer::is_b64token(token) {
                RejectionReason::MalformedKey
            } else {
                RejectionReason::InvalidTokenSyntax
            };
            return Verdict::Reject(self.reject(reason, None));
        };
        let hash = self.hasher.hash_bytes(key.expose_secret_bytes());
        match self.cache.get_now(&hash) {
            Cached::Known(entry) => match self.admit(&entry, requirement) {
                Ok(identity) => Verdict::Allow(identity),
                Err(rejection) => Verdict::Reject(rejection),
            },
            Cached::Unknown => Verdict::Reject(
                self.reject(RejectionReason::UnknownKey, Some(key.display_prefix())),
            ),
            Cached::Miss => Verdict::Lookup(Lookup {
                hash,
                display_prefix: key.display_prefix().into(),
            }),
        }
    }

    /// The asynchronous part: a coalesced, time-bounded store lookup.
    pub(crate) async fn lookup(
        self: Arc<Self>,
        lookup: Lookup,
        requirement: Requirement,
    ) -> Result<AuthenticatedKey, Rejection> {
        match self.cache.get_or_load(lookup.hash, &*self.store).await {
            Ok(entry) => self.admit(&entry, &requirement),
            Err(error) => match &*error {
                LoadError::NotFound => {
                    Err(self.reject(RejectionReason::UnknownKey, Some(&lookup.display_prefix)))
                }
                LoadError::Store(error) => {
                    tracing::warn!(
                        target: "tower_api_keys",
                        %error,
                        key_prefix = %lookup.display_prefix,
                        "key lookup failed; refusing the request"
                    );
                    Err(self.reject(
                        RejectionReason::StoreUnavailable,
                        Some(&lookup.display_prefix),
                    ))
                }
            },
        }
    }

    /// Checks a known key against the clock and the route's scope, and notes
    /// its use.
    fn admit(
        &self,
        entry: &Arc<CachedKey>,
        requirement: &Requirement,
    ) -> Result<AuthenticatedKey, Rejection> {
        let record = entry.record();
        let now_micros = self.clock.now_micros();
        if entry.is_active_at(now_micros) {
            if let Some(scope) = &requirement.scope
                && !record.scopes.allows(scope)
            {
                return Err(self
                    .reject(
                        RejectionReason::InsufficientScope,
                        Some(&record.display_prefix),
                    )
                    .with_scope(Arc::clone(scope)));
            }
            self.usage.note(entry, now_micros);
            return Ok(entry.identity.clone());
        }
        let reason = match record.status_at(self.clock.now()) {
            KeyStatus::Revoked => RejectionReason::RevokedKey,
            // Expired, or expiring between the two readings of the clock.
            KeyStatus::Expired | KeyStatus::Active => RejectionReason::ExpiredKey,
        };
        Err(self.reject(reason, Some(&record.display_prefix)))
    }

    /// Builds a rejection and emits its one tracing event. `key_prefix` is a
    /// well-formed key's display prefix; nothing else of a token is logged.
    pub(crate) fn reject(&self, reason: RejectionReason, key_prefix: Option<&str>) -> Rejection {
        let key_prefix = key_prefix.unwrap_or("");
        match reason {
            RejectionReason::MissingCredentials | RejectionReason::OtherScheme => {
                tracing::debug!(target: "tower_api_keys", reason = reason.as_str(), "request refused");
            }
            RejectionReason::StoreUnavailable => {
                tracing::warn!(target: "tower_api_keys", reason = reason.as_str(), key_prefix, "request refused");
            }
            _ => {
                tracing::info!(target: "tower_api_keys", reason = reason.as_str(), key_prefix, "request refused");
            }
        }
        Rejection::new(reason, Arc::clone(&self.challenge))
    }

    /// The response for a rejection: the custom builder's, or the default.
    pub(crate) fn respond(&self, rejection: &Rejection) -> Response<Bytes> {
        match &self.on_rejection {
            Some(handler) => handler(rejection),
            None => rejection.default_response(),
        }
    }
}
