//! [`ApiKeyService`]: decides each request, then calls the inner service or
//! answers with the rejection.

use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::future::{Admitted, ResponseFuture, State};
use crate::engine::{Engine, Requirement, Verdict};

/// The service made by [`ApiKeyLayer`](super::ApiKeyLayer).
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    keys: Arc<Engine>,
    requirement: Requirement,
}

impl<S> ApiKeyService<S> {
    pub(super) fn new(inner: S, keys: Arc<Engine>, requirement: Requirement) -> Self {
        Self {
            inner,
            keys,
            requirement,
        }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: fmt::Debug> fmt::Debug for ApiKeyService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyService")
            .field("inner", &self.inner)
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

/// Marks a request let through without credentials on an optional route, so
/// that extractors can answer with the same challenge as the layer.
#[derive(Clone)]
#[cfg_attr(not(feature = "axum"), allow(dead_code))]
pub(crate) struct Anonymous(pub(crate) Arc<Engine>);

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ApiKeyService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Keep the key out of `Debug` output further down the stack.
        if let Some(value) = request.headers_mut().get_mut(http::header::AUTHORIZATION) {
            value.set_sensitive(true);
        }
        let state = match self.keys.check(&request, &self.requirement) {
            Verdict::Allow(identity) => {
                request.extensions_mut().insert(identity);
                State::Calling {
                    future: self.inner.call(request),
                }
            }
            Verdict::Anonymous => {
                request
                    .extensions_mut()
                    .insert(Anonymous(Arc::clone(&self.keys)));
                State::Calling {
                    future: self.inner.call(request),
                }
            }
            Verdict::Reject(rejection) => State::Rejected {
                response: Some(self.keys.respond(&self.requirement.scoped(rejection))),
            },
            Verdict::Lookup(lookup) => {
                // The ready service goes with the request; this one keeps a
                // clone that will be polled ready before its next call.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let keys = Arc::clone(&self.keys);
                let requirement = self.requirement.clone();
                State::Authenticating {
                    lookup: Box::pin(async move {
                        let respond = Arc::clone(&keys);
                        let scoped = requirement.clone();
                        keys.lookup(lookup, requirement)
                            .await
                            .map(Admitted::Key)
                            .map_err(|rejection| respond.respond(&scoped.scoped(rejection)))
                    }),
                    pending: Some(Box::new((ready, request))),
                }
            }
            #[cfg(feature = "redis")]
            Verdict::Limit(limit) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let keys = Arc::clone(&self.keys);
                State::Authenticating {
                    lookup: Box::pin(async move {
                        let respond = Arc::clone(&keys);
                        keys.limit(limit)
                            .await
                            .map(Admitted::Key)
                            .map_err(|rejection| respond.respond(&rejection))
                    }),
                    pending: Some(Box::new((ready, request))),
                }
            }
            #[cfg(feature = "oauth")]
            Verdict::Token(check) => {
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let keys = Arc::clone(&self.keys);
                let requirement = self.requirement.clone();
                State::Authenticating {
                    lookup: Box::pin(async move {
                        let respond = Arc::clone(&keys);
                        let scoped = requirement.clone();
                        keys.verify_token(check, requirement)
                            .await
                            .map(Admitted::Token)
                            .map_err(|rejection| respond.respond(&scoped.scoped(rejection)))
                    }),
                    pending: Some(Box::new((ready, request))),
                }
            }
            Verdict::RevokeExposed(exposed) => {
                let keys = Arc::clone(&self.keys);
                State::Authenticating {
                    lookup: Box::pin(async move {
                        let respond = Arc::clone(&keys);
                        let rejection = keys.revoke_exposed(exposed).await;
                        Err(respond.respond(&rejection))
                    }),
                    pending: None,
                }
            }
        };
        ResponseFuture::new(state)
    }
}
