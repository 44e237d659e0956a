//! The live view of a running pipeline: one self-contained page (`GET /`) that draws the
//! graph and updates each node's throughput, queue and busy share, a small chart of its
//! throughput, the bottleneck and the counts, from server-sent events (`GET /view/events`)
//! the server sends a few times a second. Nothing is fetched from anywhere else.
//!
//! It serves any running pipeline, with an HTTP front ([`HttpFront`](super::HttpFront)
//! mounts it) or without one ([`serve_view`]).

use std::convert::Infallible;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use futures::Stream;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::report::{NodeReport, RunReport};
use crate::run::Progress;
use crate::spec::Role;

/// How often the page hears from the server.
const EVERY: Duration = Duration::from_millis(250);

/// The view's routes, for a front to mount.
pub(crate) fn routes(progress: Progress) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/view", get(page))
        .route("/view/events", get(events))
        .with_state(progress)
}

/// Serves the live view of the run `progress` reads on `listener`, until the run is over
/// (and the page has heard so).
///
/// ```no_run
/// # async fn f(run: pipeline::RunHandle) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
/// tokio::spawn(pipeline::http::serve_view(listener, run.progress()));
/// # Ok(()) }
/// ```
pub async fn serve_view(listener: TcpListener, progress: Progress) -> std::io::Result<()> {
    let done = progress.clone();
    axum::serve(listener, routes(progress))
        .with_graceful_shutdown(async move {
            while !done.is_finished() {
                tokio::time::sleep(EVERY).await;
            }
            // Time for the page to get the last counts.
            tokio::time::sleep(EVERY * 4).await;
        })
        .await
}

async fn page() -> impl IntoResponse {
    Html(PAGE)
}

/// What the page gets each time.
#[derive(Serialize)]
struct Frame {
    elapsed: f64,
    finished: bool,
    nodes: Vec<NodeFrame>,
    edges: Vec<(String, String)>,
    bottleneck: Option<String>,
    source_items: u64,
    delivered: u64,
    filtered: u64,
    failed: u64,
    balanced: bool,
}

#[derive(Serialize)]
struct NodeFrame {
    name: String,
    /// As the report's table says it: `source`, `stage`, `sink`.
    role: String,
    workers: usize,
    received: u64,
    emitted: u64,
    filtered: u64,
    failed: u64,
    queue: u64,
    /// Items per second since the last frame.
    rate: f64,
    /// Busy share since the last frame, 0 to 1.
    busy: f64,
}

/// The items a node is measured by: what it sends, or for a sink what it takes.
fn moved(node: &NodeReport) -> u64 {
    match node.role {
        Role::Sink => node.received,
        _ => node.emitted,
    }
}

fn frame(now: &RunReport, before: Option<&(RunReport, Instant)>, finished: bool) -> Frame {
    let nodes = now
        .nodes
        .iter()
        .map(|node| {
            let (rate, busy) = match before.and_then(|(report, at)| {
                let previous = report.node(&node.name)?;
                Some((previous, at.elapsed()))
            }) {
                Some((previous, wall)) if !wall.is_zero() => {
                    let items = moved(node).saturating_sub(moved(previous));
                    let busy = node.busy.saturating_sub(previous.busy);
                    let capacity = wall.mul_f64(node.workers.max(1) as f64);
                    (
                        items as f64 / wall.as_secs_f64(),
                        (busy.as_secs_f64() / capacity.as_secs_f64()).min(1.0),
                    )
                }
                _ => (0.0, 0.0),
            };
            NodeFrame {
                name: node.name.clone(),
                role: node.role.to_string(),
                workers: node.workers,
                received: node.received,
                emitted: node.emitted,
                filtered: node.filtered,
                failed: node.failed,
                queue: node.queue_now,
                rate,
                busy,
            }
        })
        .collect();
    let a = now.accounting();
    Frame {
        elapsed: now.elapsed.as_secs_f64(),
        finished,
        nodes,
        edges: now.edges.clone(),
        bottleneck: now.verdict().map(|v| v.bottleneck),
        source_items: a.source_items,
        delivered: a.delivered,
        filtered: a.filtered,
        failed: a.failed,
        balanced: a.is_balanced(),
    }
}

async fn events(
    State(progress): State<Progress>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let frames = futures::stream::unfold(
        (progress, None::<(RunReport, Instant)>, false),
        |(progress, before, sent_last)| async move {
            if sent_last {
                return None;
            }
            if before.is_some() {
                tokio::time::sleep(EVERY).await;
            }
            let finished = progress.is_finished();
            let now = progress.snapshot();
            let frame = frame(&now, before.as_ref(), finished);
            let event = Event::default()
                .event("frame")
                .json_data(&frame)
                .unwrap_or_else(|_| Event::default().comment("a frame that did not encode"));
            Some((Ok(event), (progress, Some((now, Instant::now())), finished)))
        },
    );
    Sse::new(frames).keep_alive(KeepAlive::default())
}

/// The page: markup, style and script in one document.
const PAGE: &str = include_str!("view.html");
