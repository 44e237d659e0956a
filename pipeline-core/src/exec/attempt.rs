//! One item through a stage: its timeout, its panics caught, its retries.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::ctx::NodeCtx;
use super::policy::Retry;
use crate::error::{NodeError, TimedOut};
use crate::node::{BoxError, Stage};
use crate::stats::{BatchCounts, LONG_POLL};

/// How processing one item went.
pub(crate) enum Outcome {
    Done,
    Failed(NodeError),
    Panicked(Box<dyn Any + Send>),
}

/// Processes one item, retrying failures when asked (and the error is worth it). Panics
/// are never retried: the worker is suspect until it has been set up again.
pub(crate) async fn attempt<S: Stage>(
    stage: &mut S,
    item: S::In,
    out: &mut Vec<S::Out>,
    ctx: &NodeCtx,
    retry: Option<&Retry<S::In>>,
    counts: &mut BatchCounts,
) -> Outcome {
    let Some(retry) = retry else {
        return attempt_once(stage, item, out, ctx.config.timeout, counts).await;
    };
    for pause in retry.pauses() {
        match attempt_once(stage, (retry.copy)(&item), out, ctx.config.timeout, counts).await {
            Outcome::Failed(error) if retry.retries(&error) => {
                tracing::debug!(node = ctx.name, error = %error, "retrying after an error");
                counts.retried += 1;
                if S::BLOCKING {
                    std::thread::sleep(pause);
                } else {
                    tokio::time::sleep(pause).await;
                }
            }
            done_failed_or_panicked => return done_failed_or_panicked,
        }
    }
    attempt_once(stage, item, out, ctx.config.timeout, counts).await
}

/// Processes one item, catching panics and applying the node's timeout: an async stage is
/// cancelled when it runs out of time; a blocking one cannot be interrupted, so its result
/// is discarded if it came too late. Either way the item fails.
async fn attempt_once<S: Stage>(
    stage: &mut S,
    item: S::In,
    out: &mut Vec<S::Out>,
    timeout: Option<Duration>,
    counts: &mut BatchCounts,
) -> Outcome {
    // Only a deadline needs the start time: a clock read per item is a cost cheap stages feel.
    let started = timeout.map(|_| Instant::now());
    // An async stage's code should only run briefly between awaits; time each poll to
    // find the ones that block the async workers instead. (Blocking stages have threads.)
    let mut longest = Duration::ZERO;
    let result = {
        let mut run =
            std::pin::pin!(AssertUnwindSafe(stage.process(item, &mut *out)).catch_unwind());
        let run = std::future::poll_fn(|cx| {
            if S::BLOCKING {
                return run.as_mut().poll(cx);
            }
            let poll_started = Instant::now();
            let poll = run.as_mut().poll(cx);
            longest = longest.max(poll_started.elapsed());
            poll
        });
        match timeout {
            Some(limit) if !S::BLOCKING => match tokio::time::timeout(limit, run).await {
                Ok(result) => result,
                Err(_) => Ok(Err(timed_out(limit))),
            },
            _ => run.await,
        }
    };
    if longest >= LONG_POLL {
        counts.long_polls += 1;
        counts.longest_poll = counts.longest_poll.max(longest);
    }
    let outcome = match result {
        Ok(Ok(())) => match (timeout, started) {
            (Some(limit), Some(started)) if started.elapsed() > limit => {
                Outcome::Failed(timed_out(limit).into())
            }
            _ => Outcome::Done,
        },
        Ok(Err(error)) => Outcome::Failed(error.into()),
        Err(panic) => Outcome::Panicked(panic),
    };
    if !matches!(outcome, Outcome::Done) {
        out.clear();
    }
    outcome
}

fn timed_out(limit: Duration) -> BoxError {
    Box::new(TimedOut { limit })
}
