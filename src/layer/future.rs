//! [`ResponseFuture`]: the inner service's future, a rejection ready to
//! send, or a store lookup that ends in one of the two.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::body::ResponseBody;
#[cfg(feature = "oauth")]
use crate::identity::AccessToken;
use crate::identity::AuthenticatedKey;

/// Who an asynchronous check admitted, for the request's extensions.
pub(super) enum Admitted {
    Key(AuthenticatedKey),
    #[cfg(feature = "oauth")]
    Token(AccessToken),
}

impl Admitted {
    fn insert_into(self, extensions: &mut http::Extensions) {
        match self {
            Self::Key(key) => {
                extensions.insert(key);
            }
            #[cfg(feature = "oauth")]
            Self::Token(token) => {
                extensions.insert(token);
            }
        }
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
    pub(super) enum State<S, ReqBody>
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
            lookup: BoxFuture<'static, Result<Admitted, Response<Bytes>>>,
            // The ready service and the request, for when the key is admitted;
            // `None` where the outcome can only be a refusal. Boxed, so that
            // the future stays small on the paths that need no lookup.
            pending: Option<Box<(S, Request<ReqBody>)>>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    pub(super) fn new(state: State<S, ReqBody>) -> Self {
        Self { state }
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
                            identity.insert_into(request.extensions_mut());
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
