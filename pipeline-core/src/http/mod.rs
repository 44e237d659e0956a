//! A service's HTTP front (feature `http`), on axum: push items in over HTTP, get replies,
//! and watch the service's health and metrics.
//!
//! | request | answer |
//! |---|---|
//! | `POST /items` | `202 Accepted` (fire-and-forget, [`HttpFront::accept`]), or `200` with the reply ([`HttpFront::reply`]) |
//! | ... body of an unknown content type | `415`, naming those read: JSON, NDJSON, MessagePack |
//! | ... body that does not decode | `400` with the decoder's message; nothing of the body is taken |
//! | ... body over the size limit | `413` |
//! | ... while the pipeline is full | `429` with `Retry-After` (backpressure reaches the client) |
//! | ... while draining | `503` |
//! | `GET /healthz` | `200` while the process serves |
//! | `GET /readyz` | `200` while the run takes items, `503` once it drains |
//! | `GET /metrics` | every node's counters, Prometheus text, labelled with `node` |
//! | `GET /` | the live view: the graph with each node's throughput, queue and busy share, updated live |
//!
//! Replies (`200`): the reply sink's output as JSON when there is one, a JSON array of
//! them when there are several (the `pipeline-outputs` header says how many). An item with
//! no output answers `204` when it was filtered out, `422` with the error when it failed or
//! lost its zip partner, `503` when the run ended first. An NDJSON body gets an NDJSON
//! answer, one line per item: `{"outputs":[..]}`, `{"filtered":true}`, `{"failed":".."}`,
//! `{"dropped":true}` or `{"unfinished":true}`.
//!
//! On SIGTERM or SIGINT (or [`Drain::start`]) the front stops taking items (`503`), the run
//! drains, and [`HttpFront::serve`] returns its report. Nothing that got a `2xx` is lost:
//! an accepted item is delivered, or it is in the report's failed or dropped counts.
//!
//! A pipeline fed otherwise can still be watched: [`serve_metrics`] serves `/metrics` and
//! `/healthz` alone, [`serve_view`] the live view.

mod body;
mod view;

pub use view::serve_view;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::report::{RunError, RunReport};
use crate::run::RunHandle;
use crate::service::{CallError, Reply, Service};
use crate::source::{Ingress, TrySendError};
use body::{ACCEPTED, Format};

/// The body size `POST /items` takes unless told otherwise: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;

/// How long a client told `429` is asked to wait.
const RETRY_AFTER_SECONDS: u64 = 1;

/// Where posted items go.
enum Target<In, Out> {
    Accept(Ingress<In>),
    Reply(Service<In, Out>),
}

/// An HTTP front for a running pipeline; see the [module documentation](self).
pub struct HttpFront<In, Out = ()> {
    target: Target<In, Out>,
    body_limit: usize,
    metrics: Option<PrometheusHandle>,
    drain: Drain,
}

impl<In, Out> std::fmt::Debug for HttpFront<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpFront")
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

/// Starts an HTTP front's drain from anywhere, as SIGTERM does; cloneable.
#[derive(Clone, Debug)]
pub struct Drain(Arc<watch::Sender<bool>>);

impl Drain {
    /// Stop taking items, let the run drain, then end [`HttpFront::serve`].
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    async fn started(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl<In> HttpFront<In, ()>
where
    In: DeserializeOwned + Send + 'static,
{
    /// Items posted go into `ingress` (see `source::channel`); `POST /items` answers
    /// `202 Accepted` once they are in.
    pub fn accept(ingress: Ingress<In>) -> Self {
        HttpFront::new(Target::Accept(ingress))
    }
}

impl<In, Out> HttpFront<In, Out>
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + Send + 'static,
{
    /// Items posted are calls of `service` (see `service::channel`); `POST /items`
    /// answers with the reply.
    pub fn reply(service: Service<In, Out>) -> Self {
        HttpFront::new(Target::Reply(service))
    }

    fn new(target: Target<In, Out>) -> Self {
        HttpFront {
            target,
            body_limit: DEFAULT_BODY_LIMIT,
            metrics: None,
            drain: Drain(Arc::new(watch::channel(false).0)),
        }
    }

    /// Bodies over `bytes` are refused with `413`.
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// `GET /metrics` renders what `handle`'s recorder holds (install it before the run
    /// starts: `PrometheusBuilder::new().install_recorder()`). Without one, `404`.
    pub fn metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// A handle that starts the drain, as SIGTERM would.
    pub fn drain_handle(&self) -> Drain {
        self.drain.clone()
    }

    /// Serves on `listener` until SIGTERM, SIGINT or [`Drain::start`], or until the run
    /// ends by itself; then stops taking items, lets `run` drain, and returns its report.
    pub async fn serve(
        self,
        listener: TcpListener,
        run: RunHandle,
    ) -> std::io::Result<Result<RunReport, RunError>> {
        let state = Arc::new(Front {
            target: self.target,
            draining: AtomicBool::new(false),
            metrics: self.metrics,
        });
        let router = Router::new()
            .route("/items", post(post_items::<In, Out>))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(ready::<In, Out>))
            .route("/metrics", get(metrics::<In, Out>))
            .layer(DefaultBodyLimit::max(self.body_limit))
            .with_state(state.clone())
            .merge(view::routes(run.progress()));
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        });
        let server = tokio::spawn(server.into_future());

        let stopper = run.stopper();
        let mut report = std::pin::pin!(run.wait());
        let result = tokio::select! {
            result = &mut report => result,
            () = drain_requested(&self.drain) => {
                state.draining.store(true, Ordering::SeqCst);
                stopper.shutdown();
                report.await
            }
        };
        state.draining.store(true, Ordering::SeqCst);
        // Replies of calls answered during the drain are written before the server stops.
        stop_tx.send_replace(true);
        server.await.map_err(std::io::Error::other)??;
        Ok(result)
    }
}

/// SIGTERM, SIGINT, or the drain handle.
async fn drain_requested(drain: &Drain) {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = drain.started() => {}
        () = terminate => {}
        Ok(()) = tokio::signal::ctrl_c() => {}
    }
}

struct Front<In, Out> {
    target: Target<In, Out>,
    draining: AtomicBool,
    metrics: Option<PrometheusHandle>,
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (status, message).into_response()
}

fn full(accepted: usize, of: usize) -> Response {
    let mut response = text(
        StatusCode::TOO_MANY_REQUESTS,
        format!(
            "the pipeline is full: {accepted} of {of} items were taken; send the others again later"
        ),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
    headers.insert("pipeline-accepted", HeaderValue::from(accepted));
    response
}

fn draining() -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        "the service is draining: it takes no more items",
    )
}

async fn post_items<In, Out>(
    State(front): State<Arc<Front<In, Out>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response
where
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + Send + 'static,
{
    if front.draining.load(Ordering::SeqCst) {
        return draining();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = Format::of(content_type) else {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("`POST /items` reads {ACCEPTED}; this body is `{content_type}`"),
        );
    };
    let items: Vec<In> = match format.items(&body) {
        Ok(items) => items,
        Err(message) => return text(StatusCode::BAD_REQUEST, message),
    };
    match &front.target {
        Target::Accept(ingress) => accept(ingress, items),
        Target::Reply(service) => reply(service, format, items).await,
    }
}

fn accept<In: Send + 'static>(ingress: &Ingress<In>, items: Vec<In>) -> Response {
    let of = items.len();
    for (taken, item) in items.into_iter().enumerate() {
        match ingress.try_send(item) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return full(taken, of),
            Err(TrySendError::Closed(_)) => {
                let mut response = draining();
                response
                    .headers_mut()
                    .insert("pipeline-accepted", HeaderValue::from(taken));
                return response;
            }
        }
    }
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({ "accepted": of })),
    )
        .into_response();
    response
        .headers_mut()
        .insert("pipeline-accepted", HeaderValue::from(of));
    response
}

async fn reply<In, Out>(service: &Service<In, Out>, format: Format, items: Vec<In>) -> Response
where
    In: Send + 'static,
    Out: Serialize + Send + 'static,
{
    let of = items.len();
    let mut pending = Vec::with_capacity(of);
    for (taken, item) in items.into_iter().enumerate() {
        match service.try_call(item) {
            Ok(reply) => pending.push(reply),
            // What was taken is answered by the run anyway; the client hears how much.
            Err(TrySendError::Full(_)) => return full(taken, of),
            Err(TrySendError::Closed(_)) => return draining(),
        }
    }
    let replies = futures::future::join_all(pending).await;
    if format == Format::Ndjson {
        let mut lines = String::new();
        for reply in replies {
            let line = match reply {
                Ok(Reply::Outputs(outputs)) => serde_json::json!({ "outputs": outputs }),
                Ok(Reply::Filtered) => serde_json::json!({ "filtered": true }),
                Ok(Reply::Failed(error)) => serde_json::json!({ "failed": error.to_string() }),
                Ok(Reply::Dropped) => serde_json::json!({ "dropped": true }),
                Ok(Reply::Unfinished) | Err(_) => serde_json::json!({ "unfinished": true }),
            };
            lines.push_str(&line.to_string());
            lines.push('\n');
        }
        return (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-ndjson")],
            lines,
        )
            .into_response();
    }
    let reply = replies.into_iter().next().unwrap_or(Err(CallError::Closed));
    match reply {
        Ok(Reply::Outputs(mut outputs)) => {
            let count = outputs.len();
            let mut response = if count == 1 {
                axum::Json(outputs.remove(0)).into_response()
            } else {
                axum::Json(outputs).into_response()
            };
            response
                .headers_mut()
                .insert("pipeline-outputs", HeaderValue::from(count));
            response
        }
        Ok(Reply::Filtered) => {
            let mut response = StatusCode::NO_CONTENT.into_response();
            response
                .headers_mut()
                .insert("pipeline-reply", HeaderValue::from_static("filtered"));
            response
        }
        Ok(Reply::Failed(error)) => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the item failed: {error}"),
        ),
        Ok(Reply::Dropped) => text(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the item was dropped: a zip found no partner for it on another input",
        ),
        Ok(Reply::Unfinished) | Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "the run ended before the item was finished",
        ),
    }
}

async fn ready<In: Send + 'static, Out: Send + 'static>(
    State(front): State<Arc<Front<In, Out>>>,
) -> Response {
    let closed = match &front.target {
        Target::Accept(ingress) => ingress.is_closed(),
        Target::Reply(service) => service.is_closed(),
    };
    if front.draining.load(Ordering::SeqCst) || closed {
        draining()
    } else {
        text(StatusCode::OK, "ready")
    }
}

async fn metrics<In, Out>(State(front): State<Arc<Front<In, Out>>>) -> Response {
    match &front.metrics {
        Some(handle) => prometheus_text(handle),
        None => text(
            StatusCode::NOT_FOUND,
            "no metrics recorder: give the front one with `HttpFront::metrics`",
        ),
    }
}

/// What `handle`'s recorder holds, as Prometheus scrapes it.
fn prometheus_text(handle: &PrometheusHandle) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}

/// Serves a pipeline's metrics without a front taking items: `GET /metrics` (what
/// `handle`'s recorder holds, Prometheus text, each node's counters labelled with `node`)
/// and `GET /healthz`, on `listener`, until the task serving it is dropped. Anything else
/// answers 404, or 405 for another method on those paths.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use metrics_exporter_prometheus::PrometheusBuilder;
///
/// // The recorder goes in before the pipeline starts: nodes take their handles then.
/// let handle = PrometheusBuilder::new().install_recorder()?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9898").await?;
/// tokio::spawn(pipeline::http::serve_metrics(listener, handle));
/// # Ok(()) }
/// ```
pub async fn serve_metrics(listener: TcpListener, handle: PrometheusHandle) -> std::io::Result<()> {
    let router = Router::new()
        .route(
            "/metrics",
            get(move || async move { prometheus_text(&handle) }),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "the metrics are at /metrics") });
    axum::serve(listener, router).await
}
