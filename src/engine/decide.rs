//! The decision for one request, in the order of the request flow:
//! URI bounds, query-string guard, bearer parse, format check, hash, cache,
//! status against the clock, scope, rate limits (the key's, then its
//! owner's). Limits counted in Redis are the one step of a cache hit that
//! waits: such a key's verdict is [`Verdict::Limit`], decided by
//! [`Engine::limit`].

use std::sync::Arc;

use http::Request;

use super::Engine;
use super::cache::{Cached, CachedKey, LoadError};
use super::rate_limit::Acquired;
#[cfg(feature = "redis")]
use super::rate_limit::{Limiter, SharedOutcome};
use super::throttle::ClientKey;
use crate::bearer::{self, RawCredentials};
use crate::event::{Actor, KeyEventKind, NoticedBy, SystemCause};
use crate::identity::AuthenticatedKey;
use crate::key::KeyHash;
use crate::record::{EXPOSED_IN_URL, KeyStatus};
use crate::rejection::{RateLimitState, Rejection, RejectionReason};

/// What a route asks of the key.
#[derive(Debug, Clone, Default)]
pub(crate) struct Requirement {
    /// Let requests without credentials through, without an identity.
    pub(crate) optional: bool,
    /// A scope the key must grant.
    pub(crate) scope: Option<Arc<str>>,
}

impl Requirement {
    /// A route that requires a scope names it on its challenges too (401s
    /// included), so that a client knows what to ask for.
    pub(crate) fn scoped(&self, rejection: Rejection) -> Rejection {
        match &self.scope {
            Some(scope) if rejection.scope().is_none() && rejection.reason().has_challenge() => {
                rejection.with_scope(Arc::clone(scope))
            }
            _ => rejection,
        }
    }
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
    /// Keys were found in the URL and the policy revokes them before the
    /// request is refused.
    RevokeExposed(Exposed),
    /// A known key whose limits are counted in Redis: ask it.
    #[cfg(feature = "redis")]
    Limit(Limit),
    /// A token that is not a key, to check as an OAuth access token.
    #[cfg(feature = "oauth")]
    Token(super::token::TokenCheck),
}

/// A known key, admitted but for its limits counted in Redis.
#[cfg(feature = "redis")]
pub(crate) struct Limit {
    entry: Arc<CachedKey>,
}

/// A well-formed key that must be looked up.
pub(crate) struct Lookup {
    hash: KeyHash,
    display_prefix: Box<str>,
    client: Option<ClientKey>,
}

/// Keys found in a URL, and the refusal to send once they are revoked.
pub(crate) struct Exposed {
    keys: Vec<(KeyHash, Box<str>)>,
    rejection: Rejection,
}

/// Why a known key was not admitted.
enum Denial {
    Status(RejectionReason),
    Scope(Arc<str>),
    RateLimited(std::time::Duration, RateLimitState),
    /// Everything but the limits counted in Redis passed.
    #[cfg(feature = "redis")]
    Shared,
}

impl Engine {
    /// Everything that can be decided without waiting.
    pub(crate) fn check<B>(&self, request: &Request<B>, requirement: &Requirement) -> Verdict {
        let uri = request.uri();
        if let Some(query) = uri.query() {
            let length = uri.path_and_query().map_or(0, |pq| pq.as_str().len());
            if length > self.max_uri_len {
                return Verdict::Reject(self.reject(RejectionReason::UriTooLong, None));
            }
            if self.query_guard.carries_credential(query) {
                return self.credential_in_query(query);
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
            RawCredentials::Invalid(reason) => {
                return Verdict::Reject(self.failure(reason, None, self.client(request)));
            }
        };
        let Ok(key) = self.format.parse_bytes(token) else {
            #[cfg(feature = "oauth")]
            if let Some(verdict) = self.token_verdict(token, request) {
                return verdict;
            }
            // A key's characters are a subset of b64token's, so the general
            // grammar needs checking only for what is not a key.
            let reason = if bearer::is_b64token(token) {
                RejectionReason::MalformedKey
            } else {
                RejectionReason::InvalidTokenSyntax
            };
            return Verdict::Reject(self.failure(reason, None, self.client(request)));
        };
        let hash = self.hasher.hash_bytes(key.expose_secret_bytes());
        match self.cache.get_now(&hash) {
            Cached::Known(entry) => {
                self.metrics.cache_hit();
                match self.admit(entry, requirement) {
                    Ok(identity) => Verdict::Allow(identity),
                    #[cfg(feature = "redis")]
                    Err((Denial::Shared, entry)) => Verdict::Limit(Limit { entry }),
                    Err((denial, entry)) => {
                        Verdict::Reject(self.deny(denial, &entry, || self.client(request)))
                    }
                }
            }
            Cached::Unknown => {
                self.metrics.negative_cache_hit();
                Verdict::Reject(self.failure(
                    RejectionReason::UnknownKey,
                    Some(key.display_prefix()),
                    self.client(request),
                ))
            }
            Cached::Miss => {
                self.metrics.cache_miss();
                let client = self.client(request);
                let vouched = self
                    .throttle
                    .as_ref()
                    .is_some_and(|throttle| throttle.vouches_for(&hash));
                if !vouched
                    && let Some(rejection) = self.throttled(client, Some(key.display_prefix()))
                {
                    return Verdict::Reject(rejection);
                }
                // Counted as a failure until the lookup says otherwise, so
                // that lookups in flight cannot take a client past its limit.
                if let (Some(throttle), Some(client)) = (&self.throttle, client) {
                    throttle.record_failure(client);
                }
                Verdict::Lookup(Lookup {
                    hash,
                    display_prefix: key.display_prefix().into(),
                    client,
                })
            }
        }
    }

    /// The asynchronous part: a coalesced, time-bounded store lookup.
    pub(crate) async fn lookup(
        self: Arc<Self>,
        lookup: Lookup,
        requirement: Requirement,
    ) -> Result<AuthenticatedKey, Rejection> {
        // The failure counted ahead of the lookup stands for an unknown,
        // expired or revoked key, and is taken back otherwise.
        let forgive = || {
            if let (Some(throttle), Some(client)) = (&self.throttle, lookup.client) {
                throttle.forgive(client);
            }
        };
        match self.cache.get_or_load(lookup.hash, &*self.store).await {
            Ok(entry) => match self.admit(entry, &requirement) {
                Ok(identity) => {
                    forgive();
                    if let Some(throttle) = &self.throttle {
                        throttle.vouch(lookup.hash);
                    }
                    Ok(identity)
                }
                Err((Denial::Status(reason), entry)) => {
                    Err(self.reject(reason, Some(&entry.record().display_prefix)))
                }
                #[cfg(feature = "redis")]
                Err((Denial::Shared, entry)) => {
                    forgive();
                    Arc::clone(&self).limit(Limit { entry }).await
                }
                Err((denial, entry)) => {
                    forgive();
                    Err(self.deny(denial, &entry, || None))
                }
            },
            Err(error) => match &*error {
                LoadError::NotFound => {
                    Err(self.reject(RejectionReason::UnknownKey, Some(&lookup.display_prefix)))
                }
                LoadError::Store(error) => {
                    forgive();
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

    /// The checks of a request for a key given by itself, without the
    /// request around it (no query string, no client address).
    pub(crate) async fn authenticate(
        self: Arc<Self>,
        token: &str,
    ) -> Result<AuthenticatedKey, Rejection> {
        let Ok(key) = self.format.parse(token) else {
            return Err(self.reject(RejectionReason::MalformedKey, None));
        };
        let lookup = Lookup {
            hash: self.hasher.hash_bytes(key.expose_secret_bytes()),
            display_prefix: key.display_prefix().into(),
            client: None,
        };
        self.lookup(lookup, Requirement::default()).await
    }

    /// Checks a known key against the clock, the route's scope and its
    /// allowance, and notes its use. The entry moves into the identity
    /// handlers receive; a refusal hands it back for the log line.
    fn admit(
        &self,
        entry: Arc<CachedKey>,
        requirement: &Requirement,
    ) -> Result<AuthenticatedKey, (Denial, Arc<CachedKey>)> {
        // A key with neither expiry nor revocation is active whatever the
        // time: the clock is read only for keys whose status depends on it.
        let mut now_micros = None;
        if entry.depends_on_time() {
            let now = self.clock.now_micros();
            if !entry.is_active_at(now) {
                let reason = match entry.record().status_at(self.clock.now()) {
                    KeyStatus::Revoked => RejectionReason::RevokedKey,
                    // Expired, or expiring between the two readings of the clock.
                    KeyStatus::Expired | KeyStatus::Active => {
                        if entry.announce_expiry() {
                            self.event(
                                entry.record(),
                                KeyEventKind::Expired {
                                    expires_at: entry.record().expires_at,
                                    noticed_by: NoticedBy::Refusal,
                                },
                            );
                        }
                        RejectionReason::ExpiredKey
                    }
                };
                return Err((Denial::Status(reason), entry));
            }
            now_micros = Some(now);
        }
        if let Some(scope) = &requirement.scope
            && !entry.record().scopes.allows(scope)
        {
            return Err((Denial::Scope(Arc::clone(scope)), entry));
        }
        if let Some(limiter) = &entry.limiter {
            match limiter.acquire(|| now_micros.unwrap_or_else(|| self.clock.now_micros())) {
                Acquired::Yes => {}
                Acquired::No(wait, state) => {
                    return Err((Denial::RateLimited(wait, state), entry));
                }
                #[cfg(feature = "redis")]
                Acquired::Ask => return Err((Denial::Shared, entry)),
            }
        }
        self.usage.note(&entry);
        self.metrics.admitted();
        Ok(AuthenticatedKey::new(entry))
    }

    /// The asynchronous step of a key whose limits are counted in Redis:
    /// one script call, bounded by its timeout, then the policy for when
    /// Redis fails.
    #[cfg(feature = "redis")]
    pub(crate) async fn limit(
        self: Arc<Self>,
        limit: Limit,
    ) -> Result<AuthenticatedKey, Rejection> {
        let entry = limit.entry;
        let outcome = match entry.limiter.as_deref() {
            Some(Limiter::Shared(shared)) => shared.acquire(|| self.clock.now_micros()).await,
            _ => SharedOutcome::Admitted,
        };
        match outcome {
            SharedOutcome::Admitted => {
                self.usage.note(&entry);
                Ok(AuthenticatedKey::new(entry))
            }
            SharedOutcome::Refused(wait, state) => {
                Err(self.deny(Denial::RateLimited(wait, state), &entry, || None))
            }
            SharedOutcome::Unavailable => Err(self.reject(
                RejectionReason::RateLimiterUnavailable,
                Some(&entry.record().display_prefix),
            )),
        }
    }

    fn deny(
        &self,
        denial: Denial,
        entry: &CachedKey,
        client: impl FnOnce() -> Option<ClientKey>,
    ) -> Rejection {
        let prefix = Some(entry.record().display_prefix.as_str());
        match denial {
            Denial::Status(reason) => self.failure(reason, prefix, client()),
            Denial::Scope(scope) => self
                .reject(RejectionReason::InsufficientScope, prefix)
                .with_scope(scope),
            Denial::RateLimited(wait, state) => {
                self.metrics.rate_limit_refusal();
                self.reject(RejectionReason::RateLimited, prefix)
                    .with_retry_after(wait)
                    .with_rate_limit(state)
            }
            // Not a refusal: `check` and `lookup` take this to `limit`.
            #[cfg(feature = "redis")]
            Denial::Shared => self.reject(RejectionReason::RateLimiterUnavailable, prefix),
        }
    }

    /// The client address, when the failed-attempt throttle is on.
    pub(super) fn client<B>(&self, request: &Request<B>) -> Option<ClientKey> {
        self.throttle
            .as_ref()?
            .client(request.extensions(), request.headers())
    }

    /// A 429 for a client over its failed-attempt limit.
    pub(super) fn throttled(
        &self,
        client: Option<ClientKey>,
        key_prefix: Option<&str>,
    ) -> Option<Rejection> {
        let wait = self.throttle.as_ref()?.blocked(client?)?;
        self.metrics.throttle_refusal();
        Some(
            self.reject(RejectionReason::TooManyFailedAttempts, key_prefix)
                .with_retry_after(wait),
        )
    }

    /// A failed authentication: counted against the client, and answered
    /// with 429 instead once the client is over its limit.
    pub(super) fn failure(
        &self,
        reason: RejectionReason,
        key_prefix: Option<&str>,
        client: Option<ClientKey>,
    ) -> Rejection {
        if let Some(rejection) = self.throttled(client, key_prefix) {
            return rejection;
        }
        if let (Some(throttle), Some(client)) = (&self.throttle, client) {
            throttle.record_failure(client);
        }
        self.reject(reason, key_prefix)
    }

    /// A credential in the query string: always a 400; with the exposure
    /// policy on, the keys found there are revoked first.
    fn credential_in_query(&self, query: &str) -> Verdict {
        // Refused, but no failed attempt: any web page can make a browser
        // send such URLs, and counting them would lock out the address.
        let rejection = self.reject(RejectionReason::CredentialInQuery, None);
        let keys: Vec<(KeyHash, Box<str>)> = self
            .query_guard
            .exposed_keys(query, &self.format)
            .iter()
            .filter_map(|candidate| {
                let key = self.format.parse(candidate).ok()?;
                Some((
                    self.hasher.hash_bytes(key.expose_secret_bytes()),
                    key.display_prefix().into(),
                ))
            })
            .collect();
        // Within the refusal's log budget: the same lines a flood of
        // distinct keys would otherwise write without end.
        for (_, prefix) in &keys {
            if let Some(held_back) = self.log_budget.line(RejectionReason::CredentialInQuery) {
                tracing::warn!(
                    target: "tower_api_keys",
                    key_prefix = %prefix,
                    revoking = self.revoke_exposed,
                    held_back,
                    "an API key was sent in a URL; treat it as exposed"
                );
            }
        }
        if self.revoke_exposed && !keys.is_empty() {
            Verdict::RevokeExposed(Exposed { keys, rejection })
        } else {
            Verdict::Reject(rejection)
        }
    }

    /// Revokes the keys found in a URL, then refuses the request.
    pub(crate) async fn revoke_exposed(self: Arc<Self>, exposed: Exposed) -> Rejection {
        for (hash, prefix) in exposed.keys {
            let record = match self.cache.get_or_load(hash, &*self.store).await {
                Ok(entry) => entry.record().clone(),
                Err(error) => {
                    if let LoadError::Store(error) = &*error {
                        tracing::warn!(
                            target: "tower_api_keys",
                            %error,
                            key_prefix = %prefix,
                            "could not look up a key exposed in a URL"
                        );
                    }
                    continue;
                }
            };
            self.event(&record, KeyEventKind::ExposedInUrl);
            if record.revoked_at.is_some() {
                continue;
            }
            if let Err(error) = self
                .revoke(
                    &record.owner,
                    &record.id,
                    Some(EXPOSED_IN_URL),
                    Actor::System(SystemCause::ExposedInUrl),
                )
                .await
            {
                tracing::error!(
                    target: "tower_api_keys",
                    %error,
                    key_id = %record.id,
                    key_prefix = %prefix,
                    "could not revoke a key exposed in a URL"
                );
            }
        }
        exposed.rejection
    }

    /// Builds a rejection and emits its one tracing event, within the
    /// reason's log budget (a few lines at once, then one per interval that
    /// says how many were held back). `key_prefix` is a well-formed key's
    /// display prefix; nothing else of a token is logged.
    pub(crate) fn reject(&self, reason: RejectionReason, key_prefix: Option<&str>) -> Rejection {
        let Some(held_back) = self.log_budget.admit(reason) else {
            return Rejection::new(reason, Arc::clone(&self.challenge));
        };
        let key_prefix = key_prefix.unwrap_or("");
        self.metrics.rejected(reason);
        match reason {
            RejectionReason::MissingCredentials | RejectionReason::OtherScheme => {
                tracing::debug!(target: "tower_api_keys", reason = reason.as_str(), held_back, "request refused");
            }
            RejectionReason::StoreUnavailable
            | RejectionReason::RateLimiterUnavailable
            | RejectionReason::CredentialInQuery => {
                tracing::warn!(target: "tower_api_keys", reason = reason.as_str(), key_prefix, held_back, "request refused");
            }
            _ => {
                tracing::info!(target: "tower_api_keys", reason = reason.as_str(), key_prefix, held_back, "request refused");
            }
        }
        Rejection::new(reason, Arc::clone(&self.challenge))
    }
}
