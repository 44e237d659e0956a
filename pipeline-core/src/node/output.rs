//! A source's [`Output`]: the handle its code pushes items with, and what sends them on
//! while that code waits on anything else.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use tokio::sync::{Mutex, oneshot};

use super::pace::Pace;
use crate::control::Control;
use crate::counts::BatchCounts;
use crate::error::NodeError;
use crate::ledger::{Done, Fate, Ledger};
use crate::lineage::Lineage;
use crate::outlet::Outlet;
use crate::stats::NodeStats;

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
/// Dropping it ends the source's stream. Items pushed but not yet sent are never lost, and
/// never wait on the producer: whenever the producer waits on something else (a timer, a
/// socket, replies from its own pipeline), the runtime sends what it pushed; if the
/// producer is cancelled at shutdown, the runtime sends them before closing the edge.
pub struct Output<T: Send + 'static> {
    /// Shared with the runtime, which sends what is held while the producer is elsewhere.
    state: Arc<Mutex<OutputState<T>>>,
    control: Arc<Control>,
    stats: Arc<NodeStats>,
    /// The run's ledger, when it follows items to their end (see [`Self::push_traced`]).
    ledger: Option<Arc<Ledger>>,
    /// The source's name, for what it logs.
    name: &'static str,
    /// Dropped with the handle: the runtime then ends the stream.
    _alive: oneshot::Sender<()>,
}

pub(crate) struct OutputState<T> {
    outlet: Outlet<T>,
    next_root: u64,
    counts: BatchCounts,
    control: Arc<Control>,
    stats: Arc<NodeStats>,
    pace: Pace,
    /// While an iterator fills the batch: how many items it held before.
    filling_from: Option<usize>,
}

/// The runtime's side of an [`Output`]: its state, and a signal that the handle is gone.
pub(crate) struct OutputSide<T> {
    pub state: Arc<Mutex<OutputState<T>>>,
    pub gone: oneshot::Receiver<()>,
}

impl<T: Send + 'static> OutputState<T> {
    /// After a batch went out: nothing is held, and the counts are worth publishing.
    fn sent(&mut self) {
        self.pace.flushed();
        self.counts.blocked += self.outlet.take_blocked();
        self.stats.publish(&mut self.counts);
    }

    /// Counts `n` items just added to the batch, numbered from `next_root`.
    fn pushed(&mut self, n: usize) {
        self.next_root += n as u64;
        self.counts.emitted += n as u64;
        self.outlet.advance(self.next_root);
    }

    async fn push(&mut self, item: T) -> Result<(), Stopped> {
        let lineage = Lineage::root(self.next_root);
        self.next_root += 1;
        self.counts.emitted += 1;
        self.outlet.advance(self.next_root);
        if self.outlet.push(lineage, item).await.is_err() {
            // It did not go: no edge took it.
            self.counts.emitted -= 1;
            return Err(Stopped);
        }
        if !self.outlet.has_pending() {
            // The batch was full and has gone.
            self.sent();
            return Ok(());
        }
        let idle = self.outlet.downstream_idle();
        if self.pace.flush_due(idle) {
            self.flush().await?;
        }
        Ok(())
    }

    async fn push_all(&mut self, mut items: impl Iterator<Item = T>) -> Result<(), Stopped> {
        loop {
            if self.control.is_stopping() {
                return Err(Stopped);
            }
            let idle = self.outlet.downstream_idle();
            let run = self.pace.pushes_before_check(idle).min(self.outlet.room());
            // No `catch_unwind` around the fill: it would keep the iterator out of the
            // filling loop's registers. If the iterator panics, `close` counts what it
            // yielded from the batch's length.
            self.filling_from = Some(self.outlet.held());
            let pushed;
            (pushed, items) = self.outlet.fill(items, run, self.next_root);
            self.filling_from = None;
            self.pushed(pushed);
            if pushed < run {
                // The iterator ended; `run` is never 0.
                return Ok(());
            }
            if self.outlet.is_full() {
                self.outlet.flush().await.map_err(|_| Stopped)?;
                self.sent();
            } else if self.pace.flush_due_after(pushed, idle) {
                self.flush().await?;
            }
        }
    }

    pub(crate) async fn flush(&mut self) -> Result<(), Stopped> {
        self.outlet.flush().await.map_err(|_| Stopped)?;
        self.sent();
        Ok(())
    }

    /// Ends the stream: sends what is held, then closes the edges.
    pub(crate) async fn close(mut self) {
        if let Some(held) = self.filling_from.take() {
            // The iterator panicked while filling: what it yielded is in the batch, and is
            // delivered, so it is counted like the rest.
            self.pushed(self.outlet.held() - held);
        }
        // Err means the run was aborted; nothing is left to account for.
        let _ = self.outlet.flush().await;
        self.counts.blocked += self.outlet.take_blocked();
        self.stats.publish(&mut self.counts);
        let _ = self.outlet.close().await;
    }
}

impl<T: Send + 'static> std::fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("item", &std::any::type_name::<T>())
            .field("stopping", &self.control.is_stopping())
            .finish_non_exhaustive()
    }
}

impl<T: Send + 'static> Output<T> {
    /// Tells the progress line how many items the source will produce.
    pub(crate) fn expect(&self, items: u64) {
        self.stats.expect(items);
    }

    pub(crate) fn new(
        outlet: Outlet<T>,
        control: Arc<Control>,
        stats: Arc<NodeStats>,
        ledger: Option<Arc<Ledger>>,
        name: &'static str,
    ) -> (Self, OutputSide<T>) {
        let (alive, gone) = oneshot::channel();
        let state = Arc::new(Mutex::new(OutputState {
            outlet,
            next_root: 0,
            counts: BatchCounts::default(),
            control: control.clone(),
            stats: stats.clone(),
            pace: Pace::new(),
            filling_from: None,
        }));
        let side = OutputSide {
            state: state.clone(),
            gone,
        };
        (
            Output {
                state,
                control,
                stats,
                ledger,
                name,
                _alive: alive,
            },
            side,
        )
    }

    /// Pushes one item, waiting while the pipeline is full (backpressure).
    ///
    /// Fails with [`Stopped`] once the pipeline is stopping; return from the producer then.
    pub async fn push(&mut self, item: T) -> Result<(), Stopped> {
        if self.control.is_stopping() {
            return Err(Stopped);
        }
        self.state.lock().await.push(item).await
    }

    /// Pushes everything `items` yields, as `push` would one by one, but filling batches in
    /// runs between the pace checks that `push` makes. `Err` once the pipeline is stopping.
    pub(crate) async fn push_all(&mut self, items: impl Iterator<Item = T>) -> Result<(), Stopped> {
        self.state.lock().await.push_all(items).await
    }

    /// Sends what is buffered now. The runtime does this by itself whenever the producer
    /// waits on anything but `push`, so calling it is rarely needed.
    pub async fn flush(&mut self) -> Result<(), Stopped> {
        self.state.lock().await.flush().await
    }

    /// True once the pipeline is stopping.
    pub fn is_stopping(&mut self) -> bool {
        self.control.is_stopping()
    }

    /// Resolves once the pipeline is stopping.
    pub(crate) async fn stopping(&self) {
        self.control.stopped().await
    }

    /// Pushes an item the source accepted from outside before the pipeline stopped: it is
    /// passed on even while stopping (what was accepted drains). `Err` when it cannot go
    /// any more (the run was aborted); the caller then counts it with [`Self::undelivered`].
    pub(crate) async fn push_accepted(&mut self, item: T) -> Result<(), Stopped> {
        self.state.lock().await.push(item).await
    }

    /// [`push_accepted`](Self::push_accepted), and `done` is told what became of the item
    /// once it and everything made of it have ended (a service's request). Without a ledger
    /// (a run that does not follow items, which a service's never is) nothing can tell.
    /// `done` is made knowing the item's lineage root.
    pub(crate) async fn push_traced(
        &mut self,
        item: T,
        done: impl FnOnce(u64) -> Done,
    ) -> Result<(), Stopped> {
        let mut state = self.state.lock().await;
        let root = state.next_root;
        let done = done(root);
        match &self.ledger {
            Some(ledger) => ledger.entered(Lineage::root(root), done),
            None => done(Fate::Unfinished),
        }
        state.push(item).await
    }

    /// Counts (by kind) and logs a source's items that failed before they went in
    /// (`source::try_iter(..).skip_errors()`), as a stage's failed items are; each counts
    /// as produced and failed once [`Self::failed_items`] adds it.
    pub(crate) fn failures(&self) -> Failures {
        Failures {
            stats: self.stats.clone(),
            name: self.name,
        }
    }

    /// `n` of the source's items failed before they went in (see [`Self::failures`]).
    pub(crate) async fn failed_items(&mut self, n: u64) {
        if n > 0 {
            let mut state = self.state.lock().await;
            state.counts.failed += n;
            let state = &mut *state;
            state.stats.publish(&mut state.counts);
        }
    }

    /// `items` accepted from outside could not be passed on (the run was aborted): they
    /// count as produced and failed, so the report still accounts for them.
    pub(crate) async fn undelivered(&mut self, items: u64, error: NodeError) {
        if items > 0 {
            self.failures().item_failed(error);
            self.failed_items(items).await;
        }
    }
}

/// See [`Output::failures`].
pub(crate) struct Failures {
    stats: Arc<NodeStats>,
    name: &'static str,
}

impl Failures {
    /// One item failed with `error`.
    pub(crate) fn item_failed(&self, error: NodeError) {
        let (kind, count) = self.stats.record_error(&error);
        crate::stats::log_failure(self.name, &error, kind, count);
    }
}

/// Runs a producer, and whenever it waits on anything but its [`Output`] (which it then
/// does not hold), sends what it pushed: items never sit in a half-filled batch while
/// the producer awaits something that may depend on them.
///
/// The time it then waits counts as starved, not busy: a producer waiting for requests
/// from outside is idle, as a stage waiting for input is.
pub(crate) struct SendsWhileWaiting<F, T> {
    producer: Pin<Box<F>>,
    state: Arc<Mutex<OutputState<T>>>,
    sending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    stats: Arc<NodeStats>,
    waiting_since: Option<Instant>,
}

impl<F: Future, T: Send + 'static> SendsWhileWaiting<F, T> {
    pub(crate) fn new(
        producer: F,
        state: Arc<Mutex<OutputState<T>>>,
        stats: Arc<NodeStats>,
    ) -> Self {
        SendsWhileWaiting {
            producer: Box::pin(producer),
            state,
            sending: None,
            stats,
            waiting_since: None,
        }
    }
}

impl<F: Future, T: Send + 'static> Future for SendsWhileWaiting<F, T> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(since) = self.waiting_since.take() {
            self.stats.add_starved(since.elapsed());
        }
        if let Poll::Ready(ended) = self.producer.as_mut().poll(cx) {
            return Poll::Ready(ended);
        }
        if self.sending.is_none() {
            // Locked: the producer is inside `push` or `flush` (backpressure, which counts
            // as blocked there), and they send by themselves.
            if let Ok(mut state) = self.state.clone().try_lock_owned() {
                self.waiting_since = Some(Instant::now());
                if state.outlet.has_pending() {
                    self.sending = Some(Box::pin(async move {
                        // Err: the run is stopping, and the close sends what is left.
                        let _ = state.flush().await;
                    }));
                }
            }
        }
        if let Some(sending) = self.sending.as_mut()
            && sending.as_mut().poll(cx).is_ready()
        {
            self.sending = None;
        }
        Poll::Pending
    }
}
