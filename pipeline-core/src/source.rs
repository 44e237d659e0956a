//! Sources: where items enter the pipeline.
//!
//! A source numbers its items (their lineage roots) in the order it pushes them. Items go
//! downstream in batches: a batch leaves at once while the next node is idle, and grows up
//! to the edge's batch size while it is busy, so light load keeps low latency.

use std::future::Future;
use std::marker::PhantomData;

use futures::{Stream, StreamExt};
use tokio::sync::oneshot;

use crate::exec::NodeCtx;
use crate::lineage::Lineage;
use crate::node::{BoxError, Source, SourceNode};
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, Pace};

/// The pipeline is stopping (shutdown, fail-fast, or a failure elsewhere): stop producing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the pipeline is stopping")
    }
}

impl std::error::Error for Stopped {}

/// The output handle of a source: push items into the pipeline with it.
///
/// Dropping it ends the source's stream. Items pushed but not yet sent are never lost: if
/// the producer is cancelled at shutdown, the handle gives its buffer back to the runtime,
/// which sends it before closing the edge.
pub struct Output<T: Send + 'static> {
    state: Option<OutputState<T>>,
    give_back: Option<oneshot::Sender<OutputState<T>>>,
}

pub(crate) struct OutputState<T> {
    outlet: Outlet<T>,
    next_root: u64,
    counts: BatchCounts,
    ctx: NodeCtx,
    pace: Pace,
}

impl<T: Send + 'static> OutputState<T> {
    /// After a batch went out: nothing is held, and the counts are worth publishing.
    fn sent(&mut self) {
        self.pace.flushed();
        self.counts.blocked += self.outlet.take_blocked();
        self.ctx.stats.publish(&mut self.counts);
    }

    pub(crate) async fn close(mut self) {
        // Err means the run was aborted; nothing is left to account for.
        let _ = self.outlet.flush().await;
        self.counts.blocked += self.outlet.take_blocked();
        self.ctx.stats.publish(&mut self.counts);
        let _ = self.outlet.close().await;
    }
}

impl<T: Send + 'static> Output<T> {
    pub(crate) fn new(
        outlet: Outlet<T>,
        ctx: NodeCtx,
    ) -> (Self, oneshot::Receiver<OutputState<T>>) {
        let (tx, rx) = oneshot::channel();
        let state = OutputState {
            outlet,
            next_root: 0,
            counts: BatchCounts::default(),
            ctx,
            pace: Pace::new(),
        };
        (
            Output {
                state: Some(state),
                give_back: Some(tx),
            },
            rx,
        )
    }

    fn state(&mut self) -> &mut OutputState<T> {
        self.state
            .as_mut()
            .expect("the state is only taken on drop")
    }

    /// Pushes one item, waiting while the pipeline is full (backpressure).
    ///
    /// Fails with [`Stopped`] once the pipeline is stopping; return from the producer then.
    pub async fn push(&mut self, item: T) -> Result<(), Stopped> {
        let state = self.state();
        if state.ctx.control.is_stopping() {
            return Err(Stopped);
        }
        let lineage = Lineage::root(state.next_root);
        state.next_root += 1;
        state.counts.emitted += 1;
        state.outlet.advance(state.next_root);
        state
            .outlet
            .push(lineage, item)
            .await
            .map_err(|_| Stopped)?;
        if !state.outlet.has_pending() {
            // The batch was full and has gone.
            state.sent();
            return Ok(());
        }
        let idle = state.outlet.downstream_idle();
        if state.pace.flush_due(idle) {
            self.flush().await?;
        }
        Ok(())
    }

    /// Pushes everything `items` yields, as `push` would one by one, but filling batches in
    /// runs between the pace checks that `push` makes. `Err` once the pipeline is stopping.
    pub(crate) async fn push_all(
        &mut self,
        mut items: impl Iterator<Item = T>,
    ) -> Result<(), Stopped> {
        loop {
            let state = self.state();
            if state.ctx.control.is_stopping() {
                return Err(Stopped);
            }
            let idle = state.outlet.downstream_idle();
            let run = state
                .pace
                .pushes_before_check(idle)
                .min(state.outlet.room());
            let pushed;
            (pushed, items) = state.outlet.fill(items, run, state.next_root);
            state.next_root += pushed as u64;
            state.counts.emitted += pushed as u64;
            state.outlet.advance(state.next_root);
            if pushed < run {
                // The iterator ended; `run` is never 0.
                return Ok(());
            }
            if state.outlet.is_full() {
                state.outlet.flush().await.map_err(|_| Stopped)?;
                state.sent();
            } else if state.pace.flush_due_after(pushed, idle) {
                self.flush().await?;
            }
        }
    }

    /// Sends what is buffered now. `push` does this by itself whenever the next node is idle;
    /// call it before a long pause if the next node was busy at the last push.
    pub async fn flush(&mut self) -> Result<(), Stopped> {
        let state = self.state();
        state.outlet.flush().await.map_err(|_| Stopped)?;
        state.sent();
        Ok(())
    }

    /// True once the pipeline is stopping.
    pub fn is_stopping(&mut self) -> bool {
        self.state().ctx.control.is_stopping()
    }
}

impl<T: Send + 'static> Drop for Output<T> {
    fn drop(&mut self) {
        if let (Some(state), Some(give_back)) = (self.state.take(), self.give_back.take()) {
            // The runtime is waiting for it; if not (aborted run) there is nobody to give it to.
            let _ = give_back.send(state);
        }
    }
}

/// A source over anything iterable. The iterator runs on a thread of its own, so its
/// `next` may block (reading a file, a socket).
pub fn iter<I>(items: I) -> SourceNode<IterSource<I::IntoIter>>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    SourceNode(IterSource(items.into_iter()))
}

pub struct IterSource<I>(I);

impl<I> Source for IterSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    const BLOCKING: bool = true;

    async fn run(self, mut out: Output<I::Item>) -> Result<(), BoxError> {
        // `Err` is the pipeline stopping: the source just ends.
        let _ = out.push_all(self.0).await;
        Ok(())
    }
}

/// A source over a `Stream`.
pub fn stream<S>(items: S) -> SourceNode<StreamSource<S>>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    SourceNode(StreamSource(items))
}

pub struct StreamSource<S>(S);

impl<S> Source for StreamSource<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Out = S::Item;

    async fn run(self, mut out: Output<S::Item>) -> Result<(), BoxError> {
        let mut items = std::pin::pin!(self.0);
        loop {
            let next = match futures::FutureExt::now_or_never(items.next()) {
                Some(next) => next,
                None => {
                    // The stream has nothing right now: let what we have go.
                    if out.flush().await.is_err() {
                        break;
                    }
                    items.next().await
                }
            };
            match next {
                Some(item) => {
                    if out.push(item).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(())
    }
}

/// A source driven by an async function that is handed the [`Output`] and pushes items:
///
/// ```
/// # use pipeline::prelude::*;
/// let numbers = source::producer(|mut out: Output<u32>| async move {
///     for n in 0..10 {
///         out.push(n).await?;
///     }
///     Ok(())
/// });
/// # let _ = numbers;
/// ```
///
/// `push` fails once the pipeline stops; `?` then ends the producer. A producer that waits
/// on something else is cancelled at shutdown; what it pushed is still delivered.
pub fn producer<T, F, Fut>(produce: F) -> SourceNode<Producer<F, T>>
where
    T: Send + 'static,
    F: FnOnce(Output<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    SourceNode(Producer(produce, PhantomData))
}

pub struct Producer<F, T>(F, PhantomData<fn() -> T>);

impl<T, F, Fut> Source for Producer<F, T>
where
    T: Send + 'static,
    F: FnOnce(Output<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    type Out = T;

    fn run(self, out: Output<T>) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.0)(out)
    }
}
