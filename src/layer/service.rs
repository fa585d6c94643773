//! [`ApiKeyService`]: decides each request, then calls the inner service or
//! answers with the rejection.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

use super::body::ResponseBody;
use super::future::{Admitted, ResponseFuture, State};
use crate::engine::{Engine, Requirement, Verdict};
use crate::rejection::Rejection;

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

impl<S> ApiKeyService<S> {
    /// The state of a request whose check must wait: `check` runs on the
    /// engine with the route's requirement, and its refusal is answered as
    /// the route's. The ready service goes with the request; this one keeps
    /// a clone that will be polled ready before its next call.
    fn authenticating<ReqBody, F, Fut>(
        &mut self,
        request: Request<ReqBody>,
        check: F,
    ) -> State<S, ReqBody>
    where
        S: Service<Request<ReqBody>> + Clone,
        F: FnOnce(Arc<Engine>, Requirement) -> Fut,
        Fut: Future<Output = Result<Admitted, Rejection>> + Send + 'static,
    {
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        let keys = Arc::clone(&self.keys);
        let scoped = self.requirement.clone();
        let checking = check(Arc::clone(&keys), self.requirement.clone());
        State::Authenticating {
            lookup: Box::pin(async move {
                checking
                    .await
                    .map_err(|rejection| keys.respond(&scoped.scoped(rejection)))
            }),
            pending: Some(Box::new((ready, request))),
        }
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
                self.authenticating(request, |keys, requirement| async move {
                    keys.lookup(lookup, requirement).await.map(Admitted::Key)
                })
            }
            #[cfg(feature = "redis")]
            Verdict::Limit(limit) => self.authenticating(request, |keys, _| async move {
                keys.limit(limit).await.map(Admitted::Key)
            }),
            #[cfg(feature = "oauth")]
            Verdict::Token(check) => self.authenticating(request, |keys, requirement| async move {
                keys.verify_token(check, requirement)
                    .await
                    .map(Admitted::Token)
            }),
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
