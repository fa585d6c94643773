//! The tower [`Layer`] and [`Service`], and their response future.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::api_keys::Inner;
use crate::auth::{Requirement, Verdict};
use crate::body::ResponseBody;
use crate::identity::AuthenticatedKey;

/// Requires a valid API key on every request of the service it wraps.
///
/// Made by [`ApiKeys::layer`](crate::ApiKeys::layer). Works with axum's
/// `Router::layer` and `Router::route_layer`, with `tower::ServiceBuilder`,
/// and with any `Service<http::Request<B>>`.
///
/// 1. A request with a credential in its query string gets 400 and nothing
///    is looked up.
/// 2. The key is read from exactly one `Authorization: Bearer` header.
/// 3. A token that is not a key of the configured format gets 401 without a
///    lookup.
/// 4. The key's hash is looked up through the cache; a store failure is a
///    503, never a pass.
/// 5. Expiry is checked against the clock on every request.
/// 6. The key's [`AuthenticatedKey`] is put in the request's extensions and
///    its use is noted for the background recorder.
#[derive(Clone)]
#[must_use]
pub struct ApiKeyLayer {
    inner: Arc<Inner>,
    requirement: Requirement,
}

impl ApiKeyLayer {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Self {
            inner,
            requirement: Requirement::default(),
        }
    }

    /// Lets requests without credentials (or with another scheme's) through
    /// without an identity; a key that is present must still be valid.
    /// Handlers take `Option<AuthenticatedKey>`.
    pub fn optional(mut self) -> Self {
        self.requirement.optional = true;
        self
    }

    /// Also requires the key to grant `scope`; a key that does not gets 403
    /// `insufficient_scope`.
    pub fn require_scope(mut self, scope: impl Into<String>) -> Self {
        self.requirement.scope = Some(Arc::from(scope.into()));
        self
    }
}

impl fmt::Debug for ApiKeyLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyLayer")
            .field("requirement", &self.requirement)
            .finish_non_exhaustive()
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKeyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ApiKeyService {
            inner,
            keys: Arc::clone(&self.inner),
            requirement: self.requirement.clone(),
        }
    }
}

/// The service made by [`ApiKeyLayer`].
#[derive(Clone)]
pub struct ApiKeyService<S> {
    inner: S,
    keys: Arc<Inner>,
    requirement: Requirement,
}

impl<S> ApiKeyService<S> {
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
pub(crate) struct Anonymous(pub(crate) Arc<Inner>);

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
                response: Some(self.keys.respond(&rejection)),
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
                        keys.lookup(lookup, requirement)
                            .await
                            .map_err(|rejection| respond.respond(&rejection))
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
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`ApiKeyService`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<Response<Bytes>>,
        },
        Authenticating {
            lookup: BoxFuture<'static, Result<AuthenticatedKey, Response<Bytes>>>,
            // The ready service and the request, for when the key is admitted;
            // `None` where the outcome can only be a refusal. Boxed, so that
            // the future stays small on the paths that need no lookup.
            pending: Option<Box<(S, Request<ReqBody>)>>,
        },
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let mut this = self.as_mut().project();
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response
                        .take()
                        .expect("ResponseFuture polled after completion");
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
                StateProj::Authenticating { lookup, pending } => {
                    match ready!(lookup.as_mut().poll(cx)) {
                        Ok(identity) => {
                            let (mut service, mut request) = *pending
                                .take()
                                .expect("ResponseFuture polled after completion");
                            request.extensions_mut().insert(identity);
                            let future = service.call(request);
                            this.state.set(State::Calling { future });
                        }
                        Err(response) => {
                            this.state.set(State::Rejected {
                                response: Some(response),
                            });
                        }
                    }
                }
            }
        }
    }
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Calling { .. } => "calling",
            State::Rejected { .. } => "rejected",
            State::Authenticating { .. } => "authenticating",
        };
        f.debug_struct("ResponseFuture")
            .field("state", &state)
            .finish()
    }
}
