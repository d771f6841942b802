//! The service each connection runs around its listener's [`Handler`]: it counts requests in
//! flight for the idle timeout, enforces the body size limit on HTTP/2 (the framing guard
//! does it on HTTP/1), and responds to a request whose body broke the framing rules with the
//! guard's status instead of whatever the handler produced.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use serde_json::json;

use super::activity::{Activity, InFlight};
use crate::framing::{GuardState, Rejection, RejectionReason};
use crate::metrics::Metrics;
use crate::server::{ConnectionInfo, Handler};
use crate::upstream::{json_response, BodyError, BoxError, ProxyBody};

/// Everything the service of one connection needs.
pub(super) struct ServiceContext<H> {
    pub listener: &'static str,
    pub handler: Arc<H>,
    pub metrics: Metrics,
    pub info: ConnectionInfo,
    /// The framing guard's findings, on HTTP/1 connections.
    pub guard: Option<Arc<GuardState>>,
    /// Body limit the service enforces itself; `None` on HTTP/1, where the guard does.
    pub max_body_bytes: Option<u64>,
    /// The requests whose response has not finished.
    pub activity: Arc<Activity>,
    /// Requests started on this connection, to match guard findings to requests.
    pub requests: AtomicU64,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

/// Returns the hyper service for one connection.
pub(super) fn service<H: Handler>(
    context: Arc<ServiceContext<H>>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = ServiceFuture,
> + Unpin {
    hyper::service::service_fn(move |request| -> ServiceFuture {
        Box::pin(Arc::clone(&context).call(request))
    })
}

impl<H: Handler> ServiceContext<H> {
    async fn call(
        self: Arc<Self>,
        request: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, Infallible> {
        let in_flight = self.activity.start();
        let index = self.requests.fetch_add(1, Ordering::Relaxed) + 1;

        let response = match self.body_rejection(index) {
            Some(rejection) => self.reject(&rejection),
            None => self.handle(request, index).await,
        };
        let (parts, body) = response.into_parts();
        let body = Tracked {
            inner: body,
            _in_flight: in_flight,
        };
        Ok(Response::from_parts(parts, body.boxed_unsync()))
    }

    async fn handle(&self, request: Request<Incoming>, index: u64) -> Response<ProxyBody> {
        let exceeded = Arc::new(AtomicBool::new(false));
        let request = match self.max_body_bytes {
            Some(max) => {
                if declared_length(&request).is_some_and(|length| length > max) {
                    return self.reject(&body_too_large(max));
                }
                request.map(|body| {
                    LimitedBody {
                        inner: body,
                        remaining: max,
                        max,
                        exceeded: Arc::clone(&exceeded),
                    }
                    .boxed_unsync()
                })
            }
            None => request.map(|body| body.map_err(BodyError::Read).boxed_unsync()),
        };

        let response = self.handler.handle(request, self.info).await;

        if let Some(rejection) = self.body_rejection(index) {
            return self.reject(&rejection);
        }
        if let (true, Some(max)) = (exceeded.load(Ordering::Relaxed), self.max_body_bytes) {
            return self.reject(&body_too_large(max));
        }
        response
    }

    fn body_rejection(&self, index: u64) -> Option<Rejection> {
        self.guard.as_ref()?.body_rejection(index)
    }

    /// Builds the response for a rejected request, logged like a request, and closes HTTP/1
    /// connections after it because the rest of their stream cannot be trusted.
    fn reject(&self, rejection: &Rejection) -> Response<ProxyBody> {
        log_rejection(self.listener, &self.metrics, self.info, rejection);
        let mut response = rejection_response(rejection);
        if self.guard.is_some() {
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Builds the JSON response for `rejection`.
pub(super) fn rejection_response(rejection: &Rejection) -> Response<ProxyBody> {
    json_response(
        rejection.status,
        &json!({ "error": rejection.label, "message": rejection.message }),
    )
}

/// Logs and counts a request the listener rejected before any handler saw it.
pub(super) fn log_rejection(
    listener: &'static str,
    metrics: &Metrics,
    info: ConnectionInfo,
    rejection: &Rejection,
) {
    metrics
        .request_rejections
        .with_label_values(&[listener, rejection.reason.label()])
        .inc();
    tracing::info!(
        target: "portcullis::access",
        listener,
        peer = %info.peer,
        status = rejection.status.as_u16(),
        reason = rejection.label,
        message = %rejection.message,
        "request rejected"
    );
}

fn body_too_large(max: u64) -> Rejection {
    Rejection::new(
        RejectionReason::BodyTooLarge,
        format!("the request body is larger than {max} bytes"),
    )
}

fn declared_length<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// A response body that keeps its request counted as in flight until hyper has sent it or
/// dropped it.
struct Tracked {
    inner: ProxyBody,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that fails once it carries more than `max` bytes, and records that it did.
struct LimitedBody {
    inner: Incoming,
    remaining: u64,
    max: u64,
    exceeded: Arc<AtomicBool>,
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(BodyError::Read(err)))),
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => return Poll::Pending,
        };
        if let Some(data) = frame.data_ref() {
            let length = data.len() as u64;
            if length > self.remaining {
                self.exceeded.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(BodyError::TooLarge { max: self.max })));
            }
            self.remaining -= length;
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
