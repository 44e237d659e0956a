//! Lending: a node's loop state, lent to the node feeding it so that it runs batches
//! inline (see `fuse` for why and when), and given back to its own task when it turns slow,
//! panics, or its input ends.

use std::any::Any;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::counts::BatchCounts;
use crate::exec::place::{cores, hosts_splits};
use crate::exec::{NodeCtx, SharedOffer, consume_batch, report_dropped, run_batch};
use crate::lineage::Lineage;
use crate::node::{Sink, Stage};
use crate::outlet::{Outlet, inline_depth};
use crate::stats::{CpuCharge, LatencySampler, thread_cpu_time};
use crate::wire::handoff::{Adoptable, Dropped, Handed, Offer, Taken};
use crate::wire::split::{Recall, SPLITS, Split, forced_split};
use crate::wire::{Batch, Closed, Probe};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

type Items<T> = Vec<(Lineage, T)>;

/// Slow items in a row after which an inline stage goes back to a loop of its own. The
/// first item of a run is often slow (cold caches, lazy setup), so one is not enough.
const SLOW_ITEMS_TO_SPLIT: u32 = 2;

/// What a node lends to the node feeding it: its loop state, which runs batches inline and
/// goes back to the node's own task when dropped from there.
pub(crate) trait Lendable: Send + 'static {
    type In: Send + 'static;
    /// Whether the node's code may block.
    const BLOCKS: bool;

    /// Processes `items` (leaving the vector empty); false: give the state back now.
    fn process(&mut self, items: &mut Items<Self::In>, watermark: u64, ctx: &NodeCtx) -> bool;

    /// Sends on what `process` produced; `keep` is what it returned.
    /// `now`: the time `process` ended. Returns when the nodes after it that run inline
    /// were done (`now` if none ran).
    fn send_on(
        &mut self,
        keep: bool,
        watermark: u64,
        now: Instant,
    ) -> impl Future<Output = Result<Instant, Closed>> + Send;

    /// The node's counts and its latency sampler, published after each batch.
    fn meters(&mut self) -> (&mut BatchCounts, &mut LatencySampler);

    /// See [`Adoptable::idle_probes`].
    fn idle_probes(&self) -> &[Probe];

    /// Keeps `items` (counted received) for the node's own loop to process first.
    fn park(&mut self, items: Items<Self::In>, watermark: u64);

    /// Whether the node is between batches with nothing pending (no items left over, no
    /// restart due), and its latency sampler. Only then may a chain's pass run it, or its
    /// loop end without a thread of its own.
    fn settled(&self) -> (bool, &LatencySampler);

    /// The node panicked outside its own processing (in a chain's pass): it is set up
    /// afresh in its own loop if `restart`.
    fn restart_later(&mut self, restart: bool);
}

/// Whether a node stays inline after a batch: not if its items turned slow or it panicked
/// (then it is set up afresh in its own loop, if its restart budget allows).
fn stays_inline(
    panicked: Option<Box<dyn std::any::Any + Send>>,
    (counts, latency): (&mut BatchCounts, &mut LatencySampler),
    restart: &mut bool,
    ctx: &NodeCtx,
) -> bool {
    if let Some(panic) = panicked {
        counts.failed += 1;
        *restart = ctx.worker_panicked(panic).restart;
        return false;
    }
    latency.slow_streak() < SLOW_ITEMS_TO_SPLIT
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
    /// Scratch space for what one item and one batch produce.
    pub produced: Vec<S::Out>,
    pub results: Items<S::Out>,
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
            produced: Vec::new(),
            results: Vec::new(),
        }
    }
}

impl<S: Stage> Resumed<S> {
    /// Sends `results` on, moving the watermark to `reached` if given; `keep`: the node
    /// stays inline, so the batch goes now. Returns when the nodes after it were done.
    pub(crate) async fn send_results(
        &mut self,
        reached: Option<u64>,
        keep: bool,
        now: Instant,
    ) -> Result<Instant, Closed> {
        self.outlet.handing_at(now);
        self.outlet
            .extend_then_advance(&mut self.results, reached)
            .await?;
        if keep {
            // One batch in, one batch out: the feeding node's batching decides latency.
            self.outlet.flush().await?;
        }
        // Blocked: on room in a channel, or on the nodes run inline, all after `now`.
        let blocked = self.outlet.take_blocked();
        self.counts.blocked += blocked;
        Ok(now + blocked)
    }
}

impl<S: Stage> Lendable for Resumed<S> {
    type In = S::In;
    const BLOCKS: bool = S::BLOCKING;

    fn process(&mut self, items: &mut Items<S::In>, watermark: u64, ctx: &NodeCtx) -> bool {
        self.counts.received += items.len() as u64;
        let panicked = run_batch(
            &mut self.stage,
            items,
            SLOW_ITEMS_TO_SPLIT,
            &mut self.produced,
            &mut self.results,
            (ctx, &mut self.counts, &mut self.latency),
        );
        let meters = (&mut self.counts, &mut self.latency);
        let mut keep = stays_inline(panicked, meters, &mut self.restart, ctx);
        if !items.is_empty() {
            // The stage's own loop processes these first, so the order stays as it was.
            self.leftover = Some(Batch {
                items: std::mem::take(items),
                watermark,
            });
            keep = false;
        }
        keep
    }

    async fn send_on(
        &mut self,
        keep: bool,
        watermark: u64,
        now: Instant,
    ) -> Result<Instant, Closed> {
        // With items left over, not all items below the watermark have been pushed yet.
        let reached = self.leftover.is_none().then_some(watermark);
        self.send_results(reached, keep, now).await
    }

    fn meters(&mut self) -> (&mut BatchCounts, &mut LatencySampler) {
        (&mut self.counts, &mut self.latency)
    }

    fn idle_probes(&self) -> &[Probe] {
        self.outlet.idle_probes()
    }

    fn park(&mut self, items: Items<S::In>, watermark: u64) {
        self.counts.received += items.len() as u64;
        self.leftover = Some(Batch { items, watermark });
    }

    fn settled(&self) -> (bool, &LatencySampler) {
        (self.leftover.is_none() && !self.restart, &self.latency)
    }

    fn restart_later(&mut self, restart: bool) {
        self.restart = restart;
    }
}

/// A sink's loop state when it goes back to its own task.
pub(crate) struct SinkResumed<S: Sink> {
    pub sink: S,
    pub counts: BatchCounts,
    pub latency: LatencySampler,
    /// The part of a batch that was not consumed inline; its items are counted received.
    pub leftover: Option<Items<S::In>>,
    /// The sink panicked inline and must be set up afresh.
    pub restart: bool,
    /// Errors of items it consumed in a chain's pass, counted after the pass.
    pub chain_errors: Vec<crate::node::BoxError>,
}

impl<S: Sink> SinkResumed<S> {
    pub(crate) fn new(sink: S) -> Self {
        SinkResumed {
            sink,
            counts: BatchCounts::default(),
            latency: LatencySampler::new(),
            leftover: None,
            restart: false,
            chain_errors: Vec::new(),
        }
    }
}

impl<S: Sink> Lendable for SinkResumed<S> {
    type In = S::In;
    const BLOCKS: bool = S::BLOCKING;

    fn process(&mut self, items: &mut Items<S::In>, _watermark: u64, ctx: &NodeCtx) -> bool {
        self.counts.received += items.len() as u64;
        let panicked = consume_batch(
            &mut self.sink,
            items,
            SLOW_ITEMS_TO_SPLIT,
            (ctx, &mut self.counts, &mut self.latency),
        );
        self.sink.flush();
        let meters = (&mut self.counts, &mut self.latency);
        let mut keep = stays_inline(panicked, meters, &mut self.restart, ctx);
        if !items.is_empty() {
            self.leftover = Some(std::mem::take(items));
            keep = false;
        }
        keep
    }

    async fn send_on(
        &mut self,
        _keep: bool,
        _watermark: u64,
        now: Instant,
    ) -> Result<Instant, Closed> {
        Ok(now)
    }

    fn meters(&mut self) -> (&mut BatchCounts, &mut LatencySampler) {
        (&mut self.counts, &mut self.latency)
    }

    fn idle_probes(&self) -> &[Probe] {
        // Nothing is behind a sink: an inline chain that ends in one never waits.
        &[]
    }

    fn park(&mut self, items: Items<S::In>, _watermark: u64) {
        self.counts.received += items.len() as u64;
        self.leftover = Some(items);
    }

    fn settled(&self) -> (bool, &LatencySampler) {
        (self.leftover.is_none() && !self.restart, &self.latency)
    }

    fn restart_later(&mut self, restart: bool) {
        self.restart = restart;
    }
}

/// A node's loop state lent to the node feeding it. Dropping it gives it back.
pub(crate) struct Fused<L: Lendable> {
    pub(crate) state: Option<L>,
    pub(crate) back: Option<oneshot::Sender<Back<L>>>,
    pub(crate) ctx: NodeCtx,
    /// When the node last finished a batch: the time until the next one counts as starved.
    pub(crate) idle_since: Instant,
    pub(crate) published_at: Instant,
    /// What an item cost the node on the last batch it timed as a whole, in nanoseconds
    /// (0 before the first): a chain's kernel shares its time out by it.
    pub(crate) item_cost: f64,
    /// The node panicked in a chain's pass: it leaves on its next batch.
    pub(crate) leave_next: bool,
    /// The share of its time the node's code was on a CPU, as measured on the batches it
    /// ran alone; a chain's pass charges it that share of its part (see [`CpuCharge`]).
    pub(crate) cpu_share: Option<f64>,
    /// When the node last measured its CPU share, and the CPU and wall time of the
    /// batches it measured.
    pub(crate) cpu_sampled_at: Instant,
    pub(crate) cpu_sampled: (Duration, Duration),
    /// Whether the node should leave for a core of its own; None if it may not (it has
    /// been taken back once, or it is not a plain stage).
    pub(crate) split: Option<SplitWatch>,
    /// Set once it left for a core of its own: how its feeder may take it back.
    pub(crate) recall: Option<Split<L::In>>,
}

/// What a lent node's own task gets back: its state, and how its feeder may take it back
/// inline, if it left for a core of its own.
pub(crate) type Back<L> = (L, Option<Arc<Recall<<L as Lendable>::In>>>);

/// What a node running inline measures to know whether it should leave for a core of its
/// own (see [`SplitWatch::wants_a_core`]).
#[derive(Default)]
pub(crate) struct SplitWatch {
    /// Since when, and from which CPU time of the thread, it has been measuring.
    window: Option<(Instant, Duration)>,
    /// Time spent inline since then: this node's and that of the nodes it runs inline.
    inline: Duration,
    /// Items handed to it since then.
    items: u64,
    /// Items a second handed to it over the last whole window.
    rate: f64,
}

/// How long a node running inline watches its thread before it may leave for a core of
/// its own.
const SPLIT_WINDOW: Duration = Duration::from_millis(20);
/// The least share of the thread's time that both this node (with the nodes it runs
/// inline) and the rest of the thread must take for splitting them to pay: each then
/// runs on its own core, and the slower part sets the pace.
const SPLIT_SHARE: f64 = 0.3;
/// A thread busy this share of the time has no idle time left to take a node's.
const SATURATED: f64 = 0.9;

/// How often a node running inline measures its CPU share on a batch of its own.
const CPU_SAMPLE_EVERY: Duration = Duration::from_millis(1);

/// How often a node running inline publishes its counts.
const PUBLISH_EVERY: Duration = Duration::from_millis(1);

impl<L: Lendable> Fused<L> {
    pub(crate) fn new(
        mut state: L,
        ctx: NodeCtx,
        may_split: bool,
    ) -> (Self, oneshot::Receiver<Back<L>>) {
        // Running inline, the node reads the clock between batches anyway.
        state.meters().1.time_whole_batches(true);
        let (back, given_back) = oneshot::channel();
        let fused = Fused {
            state: Some(state),
            back: Some(back),
            ctx,
            idle_since: Instant::now(),
            published_at: Instant::now(),
            item_cost: 0.0,
            leave_next: false,
            cpu_share: None,
            cpu_sampled_at: Instant::now()
                .checked_sub(CPU_SAMPLE_EVERY)
                .unwrap_or_else(Instant::now),
            cpu_sampled: (Duration::ZERO, Duration::ZERO),
            split: may_split.then(SplitWatch::default),
            recall: None,
        };
        (fused, given_back)
    }

    async fn run(
        &mut self,
        items: &mut Items<L::In>,
        watermark: u64,
        started: Instant,
    ) -> Result<Handed, Closed> {
        let state = self
            .state
            .as_mut()
            .expect("the state is only taken on drop");
        if self.leave_next {
            state.park(std::mem::take(items), watermark);
            return Ok(Handed::Leaves { done_at: started });
        }
        state.meters().0.starved += started.saturating_duration_since(self.idle_since);
        let (received, whole_batch) = (items.len(), state.meters().1.times_whole_batches());
        // Only a node that may block runs inline on a thread of its owner's, where the
        // thread's CPU clock is this node's while it processes. Reading that clock is a
        // system call: once per `CPU_SAMPLE_EVERY` is enough to know the node's share.
        let sample_cpu =
            L::BLOCKS && started.saturating_duration_since(self.cpu_sampled_at) >= CPU_SAMPLE_EVERY;
        let cpu_before = if sample_cpu { thread_cpu_time() } else { None };
        let mut keep = state.process(items, watermark, &self.ctx);
        let done = Instant::now();
        let took = done.saturating_duration_since(started);
        if let Some(before) = cpu_before
            && let Some(after) = thread_cpu_time()
        {
            self.cpu_sampled_at = done;
            let cpu = after.saturating_sub(before);
            CpuCharge::inline(state.meters().0, cpu);
            // Over every sample so far: one small batch (the first, cold) says little.
            self.cpu_sampled.0 += cpu;
            self.cpu_sampled.1 += took;
            let (cpu, wall) = self.cpu_sampled;
            if !wall.is_zero() {
                self.cpu_share = Some((cpu.as_secs_f64() / wall.as_secs_f64()).min(1.0));
            }
        } else if let Some(share) = self.cpu_share {
            CpuCharge::inline(state.meters().0, took.mul_f64(share));
        }
        if whole_batch {
            // No item was timed alone: the batch's time is its items'.
            let latency = state.meters().1;
            let took = done.saturating_duration_since(started);
            latency.record_batch(took, received);
            if received > 0 {
                self.item_cost = took.as_nanos() as f64 / received as f64;
            }
            if latency.slow_streak() >= SLOW_ITEMS_TO_SPLIT {
                keep = false;
            }
        }
        // The time the nodes after this one take inline is theirs: this node waits on
        // them (it counts as blocked), and is idle only after.
        if let Some(split) = &mut self.split {
            split.items += received as u64;
            if keep && split.wants_a_core(done) {
                tracing::debug!(
                    node = self.ctx.name,
                    "leaves the busy thread it ran inline on, for a core of its own"
                );
                SPLITS.fetch_add(1, Relaxed);
                self.recall = Some(Split {
                    recall: Recall::new(),
                    rate_before: split.rate,
                });
                keep = false;
            }
        }
        let end = state.send_on(keep, watermark, done).await?;
        if let Some(split) = &mut self.split {
            split.inline += end.saturating_duration_since(started);
        }
        self.idle_since = end;
        self.publish_if_due(done, !keep);
        Ok(if keep {
            Handed::Stays { done_at: end }
        } else {
            Handed::Leaves { done_at: end }
        })
    }
}

impl SplitWatch {
    /// Whether this node should leave the thread it runs inline on, for a core of its own:
    /// that thread is a source's own (reading a file, say; see `SplitHost`), it was busy the whole of
    /// the last window, both this node's part and the rest were large, and the machine has
    /// another core. Then the thread's work is one core's worth of two parts that could run
    /// side by side. A thread that waits (for input, for I/O) has time to spare and keeps
    /// its nodes inline, as does a thread whose work is nearly all this node's or nearly
    /// all the rest's. Reads the thread's CPU clock once per window.
    fn wants_a_core(&mut self, now: Instant) -> bool {
        if let Some((since, _)) = self.window
            && now.saturating_duration_since(since) < SPLIT_WINDOW
        {
            return false;
        }
        // Only the node the source hands its items to: see `SplitHost`.
        if !hosts_splits() || inline_depth() != 1 {
            return false;
        }
        if forced_split().is_some() {
            return true;
        }
        if cores() < 2 {
            return false;
        }
        let Some(cpu) = thread_cpu_time() else {
            return false;
        };
        let inline = std::mem::take(&mut self.inline);
        let items = std::mem::take(&mut self.items);
        let Some((since, cpu_since)) = self.window.replace((now, cpu)) else {
            return false;
        };
        let wall = now.saturating_duration_since(since).as_secs_f64();
        self.rate = items as f64 / wall;
        let busy = cpu.saturating_sub(cpu_since).as_secs_f64() / wall;
        let ours = inline.as_secs_f64() / wall;
        busy >= SATURATED && (SPLIT_SHARE..=1.0 - SPLIT_SHARE).contains(&ours)
    }
}

impl<L: Lendable> Fused<L> {
    /// Publishes the node's counts if a millisecond has passed since it last did, or if
    /// `now_anyway`. Publishing costs more than a batch of cheap items; readers of live
    /// counts can wait a millisecond. The counts stay in the state, so nothing is lost.
    pub(crate) fn publish_if_due(&mut self, at: Instant, now_anyway: bool) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        if now_anyway || at.saturating_duration_since(self.published_at) >= PUBLISH_EVERY {
            self.published_at = at;
            let (counts, latency) = state.meters();
            self.ctx.stats.publish_at(counts, Some(at));
            self.ctx.stats.merge_latency_at(latency, at);
        }
    }
}

impl<S: Stage> Fused<Resumed<S>> {
    /// The node this one's outlet runs inline, if it runs exactly one.
    pub(crate) fn adopted_next(&mut self) -> Option<&mut (dyn Any + 'static)> {
        self.state.as_mut()?.outlet.sole_adopted()
    }
}

impl<L: Lendable> Adoptable<L::In> for Fused<L> {
    fn blocks(&self) -> bool {
        L::BLOCKS
    }

    fn take<'a>(
        &'a mut self,
        items: &'a mut Items<L::In>,
        watermark: u64,
        handed_at: Instant,
    ) -> Taken<'a> {
        Box::pin(self.run(items, watermark, handed_at))
    }

    fn idle_probes(&self) -> &[Probe] {
        self.state.as_ref().map_or(&[], Lendable::idle_probes)
    }

    fn dropped_partial(&self, dropped: Dropped) {
        report_dropped(dropped, &self.ctx);
    }

    fn as_any(&mut self) -> Option<&mut (dyn Any + Send + 'static)> {
        Some(self)
    }

    fn take_split(&mut self) -> Option<Split<L::In>> {
        let split = self.recall.as_ref()?;
        Some(Split {
            recall: split.recall.clone(),
            rate_before: split.rate_before,
        })
    }
}

impl<L: Lendable> Drop for Fused<L> {
    fn drop(&mut self) {
        if let (Some(mut state), Some(back)) = (self.state.take(), self.back.take()) {
            state.meters().1.time_whole_batches(false);
            // Err: the node's task is gone (the run was aborted); nothing waits for it.
            let recall = self.recall.take().map(|split| split.recall);
            let _ = back.send((state, recall));
        }
    }
}

/// The offer a node's inlet handed out, if no one took it yet.
pub(crate) fn taken<T>(offer: &SharedOffer<T>) -> Option<Offer<T>> {
    offer.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// A node's side of fusion (see [`crate::fuse`]): offer its loop state to the node feeding
/// it and wait until that gives it back (an item was slow, it panicked, or the input
/// ended). Not offered (declined at build time, or setup failed): the state stays here and
/// the feeding node uses the edge. None: the state was lost with an aborted run.
pub(crate) async fn lend<L: Lendable>(
    state: L,
    ready: bool,
    offer: Option<Offer<L::In>>,
    ctx: &NodeCtx,
    may_split: bool,
) -> Option<Back<L>> {
    let (true, Some(offer)) = (ready, offer) else {
        return Some((state, None));
    };
    let (fused, given_back) = Fused::new(state, ctx.clone(), may_split);
    // If the feeding node is gone, the offer drops the state, which gives it back at once.
    offer(Box::new(fused));
    match given_back.await {
        Ok(back) => Some(back),
        Err(_) => {
            tracing::error!(node = ctx.name, "lost while running inline");
            None
        }
    }
}
