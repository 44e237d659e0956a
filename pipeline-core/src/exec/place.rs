//! Where a node's loop runs: on the async workers, or on a thread of its own when its code
//! may block.

use std::cell::Cell;
use std::future::Future;
use std::sync::{Arc, OnceLock};

use super::NodeTask;
use crate::stats::NodeStats;

/// Runs a node's loop where its code belongs: on a thread of its own when that code blocks.
pub(crate) fn place<F: Future<Output = ()> + Send + 'static>(
    blocking: bool,
    stats: &Arc<NodeStats>,
    node: F,
) -> NodeTask {
    if !blocking {
        return Box::pin(node);
    }
    Box::pin(on_own_thread(counting_cpu(stats.clone(), node)))
}

/// Runs `work` and adds the CPU time its thread spent meanwhile to the node's. Only for
/// work that keeps to one thread (a node on a thread of its own, blocked on its future):
/// the analysis tells a node that computes from one that waits by it.
pub(crate) async fn counting_cpu<F: Future>(stats: Arc<NodeStats>, work: F) -> F::Output {
    let charge = crate::stats::CpuCharge::start();
    let output = work.await;
    // The nodes it ran inline were charged their own share.
    if let Some(own) = charge.own() {
        stats.add_cpu(own);
    }
    output
}

/// Runs `work` where a node's code runs: on a thread of its own if it may block.
pub(super) async fn where_it_runs<F>(blocking: bool, work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if blocking {
        on_own_thread(work).await
    } else {
        work.await
    }
}

thread_local! {
    /// Whether this thread runs a source alone, feeding one edge (see [`SplitHost`]).
    static SPLIT_HOST: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread, while it lives, as one where a node running inline may leave
/// for a core of its own (see `lend`): a thread that runs a source, and nothing else
/// meanwhile, feeding a single edge. Its CPU clock then measures the source and what it
/// runs inline. Only there can the source take the node back without waiting on the node:
/// the source has no input that could depend on the node, and nothing after the node runs
/// on the source's thread.
pub(crate) struct SplitHost(());

impl SplitHost {
    pub(crate) fn enter() -> Self {
        SPLIT_HOST.with(|host| host.set(true));
        SplitHost(())
    }
}

impl Drop for SplitHost {
    fn drop(&mut self) {
        // The pool's threads run other blocking work once the source is done.
        SPLIT_HOST.with(|host| host.set(false));
    }
}

/// Whether the calling code runs on a [`SplitHost`]'s thread.
pub(crate) fn hosts_splits() -> bool {
    SPLIT_HOST.with(Cell::get)
}

/// The cores this process may use.
pub(crate) fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `work` on a thread from the blocking pool and waits for it; a panic there goes on
/// here.
async fn on_own_thread<F>(work: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    // The node's span (see `Pipeline::spawn`) follows it onto its thread.
    let span = tracing::Span::current();
    let thread =
        tokio::task::spawn_blocking(move || span.in_scope(|| futures::executor::block_on(work)));
    match thread.await {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down, and this task with it.
        Err(_) => std::future::pending().await,
    }
}
