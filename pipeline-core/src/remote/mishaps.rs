//! What an edge across processes does when something goes wrong, shared by both kinds of
//! edge (`core`, `jetstream`): a message that is not the edge's item, an edge that cannot
//! be served, a setup step that processes starting together race on.

use std::time::Duration;

use super::envelope::{REASON_HEADER, Rejected};
use crate::control::Control;
use crate::error::Failure;
use crate::stats::RemoteEdgeStats;

/// Counts and logs a message that is not this edge's item; the headers to dead-letter it
/// with, which say why.
pub(crate) fn rejection(
    rejected: &Rejected,
    headers: Option<&async_nats::HeaderMap>,
    from: &str,
    to: &str,
    stats: &RemoteEdgeStats,
) -> async_nats::HeaderMap {
    stats
        .rejected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reason = rejected.to_string();
    tracing::warn!(from, to, %reason, "message rejected, sent to dead-letter");
    let mut headers = headers.cloned().unwrap_or_default();
    headers.insert(REASON_HEADER, reason.as_str());
    headers
}

/// Stops the run when an edge to or from another process could not be served.
pub(crate) fn fail_on_error(result: Result<(), String>, from: &str, to: &str, control: &Control) {
    if let Err(error) = result {
        tracing::error!(from, to, %error, "edge across processes failed");
        control.fail(Failure::Remote {
            edge: format!("edge `{from} => {to}` across processes"),
            error,
        });
    }
}

/// Retries a setup step that processes starting together may race on (creating the stream
/// or a shared consumer): a few tries, a moment apart.
pub(crate) async fn retry_startup<F, Fut, T, E>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(_) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50 * tries)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
