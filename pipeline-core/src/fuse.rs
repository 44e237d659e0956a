//! Fusion: a cheap synchronous stage runs inside the node that feeds it, with no channel
//! between them.
//!
//! A channel hop per edge costs more than an identity stage's work, so a chain of cheap
//! stages wired as separate tasks is slower than one loop. Instead, a stage that could run
//! inline (synchronous, one worker, one input, no retry, timeout or dead-letter node, no
//! `after`) offers itself to the node that feeds it once its setup is done. That node
//! adopts it at its first send: from then on its outlet hands each batch straight to the
//! stage, which processes it and passes its output on, possibly to a stage it adopted in
//! turn. A chain of cheap stages thus runs as one loop on one thread, and each stage still
//! keeps its own counts.
//!
//! The channel stays wired. When an item proves slow (see `LatencySampler`) or the stage
//! panics, the stage goes back to its own task with the rest of the batch, and the feeding
//! node uses the channel from then on: slow stages overlap again, each on its own thread.
//! At end of stream the adopter drops what it adopted, which gives it back, and every stage
//! ends as usual from its own task.
//!
//! A stage that may block is only adopted by a node that runs on a thread of its own, so a
//! blocking stage never ends up on the async workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use crate::exec::{NodeCtx, run_batch};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, LatencySampler};
use crate::wire::{Batch, Closed, Probe};

type Items<T> = Vec<(Lineage, T)>;

/// Slow items in a row after which an inline stage goes back to a loop of its own. The
/// first item of a run is often slow (cold caches, lazy setup), so one is not enough.
const SLOW_ITEMS_TO_SPLIT: u32 = 2;

/// A stage that the node feeding it can run in its own loop.
pub(crate) trait Adoptable<T>: Send {
    /// Whether the stage's code may block: only a node on a thread of its own adopts it.
    fn blocks(&self) -> bool;

    /// Processes `items` (leaving the vector empty) and sends what they produced on.
    /// `Ok(false)`: the stage must go back to its own task now (drop it to give it back).
    fn take<'a>(
        &'a mut self,
        items: &'a mut Items<T>,
        watermark: u64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Closed>> + Send + 'a>>;

    /// The edges the stage (or the chain it heads) sends on, to tell whether the nodes
    /// behind them are idle.
    fn idle_probes(&self) -> &[Probe];
}

pub(crate) type Adopted<T> = Box<dyn Adoptable<T>>;
/// The stage's side of an edge's hand-off: it sends itself, or drops this to decline.
pub(crate) type Offer<T> = oneshot::Sender<Adopted<T>>;
/// The feeding side of an edge's hand-off, shared by the clones of the edge's sender.
pub(crate) type OfferSlot<T> = Arc<Mutex<Option<oneshot::Receiver<Adopted<T>>>>>;

pub(crate) fn hand_off<T>() -> (Offer<T>, OfferSlot<T>) {
    let (offer, slot) = oneshot::channel();
    (offer, Arc::new(Mutex::new(Some(slot))))
}

/// Takes the pending offer of a slot, if no one took it yet.
pub(crate) fn take_offer<T>(slot: &OfferSlot<T>) -> Option<oneshot::Receiver<Adopted<T>>> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A stage's loop state when it goes back to its own task.
pub(crate) struct Resumed<S: Stage> {
    pub stage: S,
    pub outlet: Outlet<S::Out>,
    pub counts: BatchCounts,
    pub latency: LatencySampler,
    /// The part of a batch that was not processed inline; its items are counted received.
    pub leftover: Option<Batch<S::In>>,
    /// The stage panicked inline and must be set up afresh.
    pub restart: bool,
}

impl<S: Stage> Resumed<S> {
    pub(crate) fn new(stage: S, outlet: Outlet<S::Out>) -> Self {
        Resumed {
            stage,
            outlet,
            counts: BatchCounts::default(),
            latency: LatencySampler::new(),
            leftover: None,
            restart: false,
        }
    }
}

/// A stage lent to the node feeding it. Dropping it gives it back to its task.
pub(crate) struct Fused<S: Stage> {
    state: Option<Resumed<S>>,
    back: Option<oneshot::Sender<Resumed<S>>>,
    ctx: NodeCtx,
    produced: Vec<S::Out>,
    results: Items<S::Out>,
    /// When the stage last finished a batch: the time until the next one counts as starved.
    idle_since: Instant,
}

impl<S: Stage> Fused<S> {
    pub(crate) fn new(state: Resumed<S>, ctx: NodeCtx) -> (Self, oneshot::Receiver<Resumed<S>>) {
        let (back, given_back) = oneshot::channel();
        let fused = Fused {
            state: Some(state),
            back: Some(back),
            ctx,
            produced: Vec::new(),
            results: Vec::new(),
            idle_since: Instant::now(),
        };
        (fused, given_back)
    }

    async fn run(&mut self, items: &mut Items<S::In>, watermark: u64) -> Result<bool, Closed> {
        let started = Instant::now();
        let Fused {
            state,
            ctx,
            produced,
            results,
            idle_since,
            ..
        } = self;
        let state = state.as_mut().expect("the state is only taken on drop");
        state.counts.starved += started.saturating_duration_since(*idle_since);
        state.counts.received += items.len() as u64;
        let mut queue = items.drain(..);
        let panicked = run_batch(
            &mut state.stage,
            &mut queue,
            SLOW_ITEMS_TO_SPLIT,
            produced,
            results,
            (ctx, &mut state.counts, &mut state.latency),
        );
        let rest: Items<S::In> = queue.collect();
        *idle_since = Instant::now();
        let mut keep = state.latency.slow_streak() < SLOW_ITEMS_TO_SPLIT;
        if let Some(panic) = panicked {
            state.counts.failed += 1;
            state.restart = ctx.worker_panicked(panic).restart;
            keep = false;
        }
        if !rest.is_empty() {
            // The stage's own loop processes these first, so the order stays as it was.
            state.leftover = Some(Batch {
                items: rest,
                watermark,
            });
            keep = false;
        }
        state.outlet.extend(results).await?;
        if state.leftover.is_none() {
            state.outlet.advance(watermark);
        }
        if keep {
            // One batch in, one batch out: the feeding node's batching decides latency.
            state.outlet.flush().await?;
        }
        state.counts.blocked += state.outlet.take_blocked();
        ctx.stats.publish(&mut state.counts);
        ctx.stats.merge_latency(&mut state.latency);
        Ok(keep)
    }
}

impl<S: Stage> Adoptable<S::In> for Fused<S> {
    fn blocks(&self) -> bool {
        S::BLOCKING
    }

    fn take<'a>(
        &'a mut self,
        items: &'a mut Items<S::In>,
        watermark: u64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, Closed>> + Send + 'a>> {
        Box::pin(self.run(items, watermark))
    }

    fn idle_probes(&self) -> &[Probe] {
        self.state
            .as_ref()
            .map_or(&[], |state| state.outlet.idle_probes())
    }
}

impl<S: Stage> Drop for Fused<S> {
    fn drop(&mut self) {
        if let (Some(state), Some(back)) = (self.state.take(), self.back.take()) {
            // Err: the stage's task is gone (the run was aborted); nothing waits for it.
            let _ = back.send(state);
        }
    }
}
