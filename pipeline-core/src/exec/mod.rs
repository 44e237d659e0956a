//! Executing one node: the loop that takes input batches, calls the user's code, counts,
//! and sends the results on; and where that loop runs.
//!
//! A node whose code is synchronous (`Stage::BLOCKING` and friends) runs its loop on a thread
//! of its own from the blocking pool, so blocking calls there never stall the async workers
//! that run every other node. The channels are executor-agnostic, so the same loop serves both.

pub(crate) mod in_place;
pub(crate) mod lend;
pub mod policy;
mod sink;
pub mod workers;

pub(crate) use sink::{consume_batch, run_fusable_sink, run_sink};

pub use policy::{ErrorPolicy, Failed, Retry};

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;

use crate::context::Context;
use crate::control::Control;
use crate::error::Failure;
use crate::error::{NodeError, NotStarted, Panicked as PanicError, TimedOut};
use crate::inlet::{self, Inlet};
use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::node::output::{Output, SendsWhileWaiting, Stopped};
use crate::node::{BoxError, Source, Stage};
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, LONG_POLL, LatencySampler, NodeStats};
use crate::wire::handoff::Offer;
use crate::wire::{Batch, Closed};
use in_place::{InPlace, same_layout};
use lend::{Fused, Lendable, Resumed};

pub(crate) type NodeTask = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A node's offer to run inline, which the builder may withdraw before the run starts.
pub(crate) type SharedOffer<T> = Arc<Mutex<Option<Offer<T>>>>;

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

/// Runs `work` on a thread from the blocking pool and waits for it; a panic there goes on
/// here.
pub(super) async fn on_own_thread<F>(work: F) -> F::Output
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

#[derive(Clone)]
pub(crate) struct NodeCtx {
    pub name: &'static str,
    pub stats: Arc<NodeStats>,
    pub control: Arc<Control>,
    pub context: Context,
    pub fail_fast: bool,
    pub timeout: Option<Duration>,
    pub restart_budget: u32,
    /// Items from other processes, acknowledged once finished here (see [`crate::ledger`]).
    pub ledger: Option<Arc<Ledger>>,
}

impl NodeCtx {
    /// An item of `lineage` is finished in this node's process.
    #[inline]
    pub(crate) fn item_ended(&self, lineage: Lineage) {
        if let Some(ledger) = &self.ledger {
            ledger.ended(lineage);
        }
    }

    /// One input of `lineage` became `n` outputs.
    #[inline]
    pub(crate) fn item_became(&self, lineage: Lineage, n: u64) {
        if let Some(ledger) = &self.ledger {
            ledger.adjust(lineage, n as i64 - 1);
        }
    }

    /// A worker could not start: the run stops, and its items will be counted as failed.
    pub(crate) fn setup_failed(&self, error: NodeError) {
        tracing::error!(node = self.name, error = %error, "setup failed");
        self.stats.record_error(&error);
        self.control.fail(Failure::SetupFailed {
            node: self.name.to_string(),
            error,
        });
    }

    /// Counts a failed item's error and logs it (see [`log_failure`]); returns it as a
    /// value for the dead-letter node.
    pub(crate) fn item_failed(&self, error: impl Into<NodeError>) -> NodeError {
        let error = error.into();
        let (kind, of_its_kind) = self.stats.record_error(&error);
        log_failure(self.name, &error, kind, of_its_kind);
        if self.fail_fast {
            self.control.fail(Failure::ItemFailed {
                node: self.name.to_string(),
                error: error.clone(),
            });
        }
        error
    }

    /// A node's `finish` failed: the run fails with it, since what the node held is lost.
    pub(crate) fn finish_failed(&self, error: NodeError) {
        tracing::error!(node = self.name, error = %error, "`finish` failed");
        self.stats.record_error(&error);
        self.control.fail(Failure::FinishFailed {
            node: self.name.to_string(),
            error,
        });
    }

    /// A panic in a source ends the run: what it would have produced is gone with it.
    pub(crate) fn panicked(&self, payload: Box<dyn Any + Send>) {
        let message = self.record_panic(payload);
        self.control.fail(Failure::Panicked {
            node: self.name.to_string(),
            message,
        });
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) -> String {
        let message = panic_message(payload);
        tracing::error!(node = self.name, panic = %message, "node panicked");
        self.stats.panics.fetch_add(1, Relaxed);
        self.stats.record_error(&NodeError::new(PanicError {
            message: message.clone(),
        }));
        message
    }

    /// A worker of a stage or sink panicked on an item (which counts as failed). Returns
    /// whether it may restart; past the node's budget the run stops.
    pub(crate) fn worker_panicked(&self, payload: Box<dyn Any + Send>) -> Panicked {
        let message = self.record_panic(payload);
        let restarts = match self.stats.restarted(u64::from(self.restart_budget)) {
            Ok(restarts) => restarts,
            Err(restarts) => {
                self.control.fail(Failure::RestartsExhausted {
                    node: self.name.to_string(),
                    restarts,
                    last_panic: message.clone(),
                });
                return Panicked {
                    message,
                    restart: false,
                };
            }
        };
        tracing::warn!(
            node = self.name,
            restarts,
            "restarting the worker after a panic"
        );
        Panicked {
            message,
            restart: true,
        }
    }
}

/// Logs a failed item at WARN while its kind is new in the node (the first ten), then at
/// the 100th, 1 000th, ... with the count, and the rest at DEBUG: a job with thousands of
/// bad lines says so in a few lines, not thousands.
fn log_failure(node: &str, error: &NodeError, kind: String, of_its_kind: u64) {
    if of_its_kind <= 10 {
        tracing::warn!(node, error = %error, kind, "item failed");
    } else if is_power_of_ten(of_its_kind) {
        tracing::warn!(
            node,
            error = %error,
            kind,
            so_far = of_its_kind,
            "items keep failing (logged again at ten times this count; each one at DEBUG)"
        );
    } else {
        tracing::debug!(node, error = %error, kind, "item failed");
    }
}

/// Whether `n` is 100, 1 000, 10 000...
fn is_power_of_ten(n: u64) -> bool {
    let mut rest = n;
    while rest >= 10 && rest % 10 == 0 {
        rest /= 10;
    }
    rest == 1 && n >= 100
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

pub(crate) async fn run_source<S: Source>(source: S, outlet: Outlet<S::Out>, ctx: NodeCtx) {
    let (output, side) = Output::new(outlet, ctx.control.clone(), ctx.stats.clone());
    let produce = SendsWhileWaiting::new(
        AssertUnwindSafe(source.run(output)).catch_unwind(),
        side.state.clone(),
        ctx.stats.clone(),
    );
    let ended = tokio::select! {
        ended = produce => Some(ended),
        // A producer waiting on something else must not hold up the shutdown.
        () = ctx.control.stopped() => None,
    };
    match ended {
        // Ending with `Stopped` from `push` is obeying the shutdown, not failing.
        Some(Ok(Err(error))) if error.downcast_ref::<Stopped>().is_some() => {}
        Some(Ok(Err(error))) => {
            tracing::error!(node = ctx.name, error = %error, "source failed");
            let error = NodeError::from(error);
            ctx.stats.record_error(&error);
            ctx.control.fail(Failure::SourceFailed {
                node: ctx.name.to_string(),
                error,
            });
        }
        Some(Err(panic)) => ctx.panicked(panic),
        Some(Ok(Ok(()))) | None => {}
    }
    // The output handle was dropped with the producer, or will be where it was moved (Err:
    // dropped already). Its unsent items go out before the edge closes.
    let _ = side.gone.await;
    match Arc::try_unwrap(side.state) {
        Ok(state) => state.into_inner().close().await,
        // Only the producer and its handle shared the state, and both are gone; were it
        // not so, the edge would close when the last of them goes.
        Err(state) => drop(state.lock().await.flush().await),
    }
}

pub(crate) async fn run_stage<S: Stage, I: Inlet<S::In>>(
    mut stage: S,
    inlet: I,
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
) {
    let ready = set_up(&mut stage, &ctx).await;
    stage_loop(Resumed::new(stage, outlet), ready, inlet, ctx, policy).await;
}

/// A node's side of fusion (see [`crate::fuse`]): offer its loop state to the node feeding
/// it and wait until that gives it back (an item was slow, it panicked, or the input
/// ended). Not offered (declined at build time, or setup failed): the state stays here and
/// the feeding node uses the edge. None: the state was lost with an aborted run.
pub(crate) async fn lend<L: Lendable>(
    state: L,
    ready: bool,
    offer: &SharedOffer<L::In>,
    ctx: &NodeCtx,
) -> Option<L> {
    let offer = offer.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (true, Some(offer)) = (ready, offer) else {
        return Some(state);
    };
    let (fused, given_back) = Fused::new(state, ctx.clone());
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

/// Runs a stage that may run inside the node feeding it (see [`crate::fuse`]): set up
/// (on a thread if its code may block), offer itself, and once given back (an item was
/// slow, it panicked, or its input ended) carry on in a loop of its own.
pub(crate) async fn run_fusable_stage<S: Stage, I: Inlet<S::In>>(
    stage: S,
    mut inlet: I,
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
    offer: SharedOffer<S::In>,
) {
    let setup_ctx = ctx.clone();
    let (stage, ready) = where_it_runs(S::BLOCKING && S::HAS_HOOKS, async move {
        let mut stage = stage;
        let ready = set_up(&mut stage, &setup_ctx).await;
        (stage, ready)
    })
    .await;
    let Some(mut state) = lend(Resumed::new(stage, outlet), ready, &offer, &ctx).await else {
        return;
    };
    let blocking = S::BLOCKING && (S::HAS_HOOKS || !only_ends(&mut state, &mut inlet));
    let stats = ctx.stats.clone();
    place(
        blocking,
        &stats,
        stage_loop(state, ready, inlet, ctx, policy),
    )
    .await;
}

/// Whether a node back from running inline has nothing left to do but end: nothing left
/// over, no restart due, and its input has ended. Then, if it has no hooks, ending runs no
/// code of the user's and needs no thread of its own (a run of twenty fused stages would
/// otherwise wake twenty threads at its end). A batch that is there is parked for its loop.
pub(crate) fn only_ends<L: Lendable, I: Inlet<L::In>>(state: &mut L, inlet: &mut I) -> bool {
    if !state.settled().0 {
        return false;
    }
    match inlet::try_next(inlet) {
        Some(None) => true,
        Some(Some(batch)) => {
            state.park(batch.items, batch.watermark);
            false
        }
        None => false,
    }
}

/// A stage's loop, from wherever it is (fresh, or back from running inline).
async fn stage_loop<S: Stage, I: Inlet<S::In>>(
    state: Resumed<S>,
    mut ready: bool,
    mut inlet: I,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
) {
    let Resumed {
        mut stage,
        mut outlet,
        mut counts,
        mut latency,
        leftover,
        restart: restart_first,
        mut produced,
        mut results,
    } = state;
    let ErrorPolicy { retry, dead_letter } = policy;
    let mut failures = FailedItems::new(dead_letter);
    if restart_first {
        ready = restart(&mut stage, &ctx).await;
    }
    // Cheap synchronous stages without per-item policies run whole batches in one loop.
    let batchable = S::SYNC && retry.is_none() && ctx.timeout.is_none() && !failures.routes();
    // Items left from running inline were counted as received there.
    let mut carried = leftover;
    let result: Result<(), Closed> = async {
        loop {
            let batch = match carried.take() {
                Some(batch) => batch,
                None => match next_or_flush(&mut inlet, &mut outlet, &mut counts).await? {
                    Some(batch) => {
                        ctx.stats.observe_queue(inlet.queued());
                        counts.received += batch.len() as u64;
                        batch
                    }
                    None => break,
                },
            };
            let watermark = batch.watermark;
            let mut items = batch.items;
            if batchable && ready && !latency.items_are_slow() {
                let panicked = run_batch(
                    &mut stage,
                    &mut items,
                    1,
                    &mut produced,
                    &mut results,
                    (&ctx, &mut counts, &mut latency),
                );
                outlet.extend(&mut results).await?;
                if let Some(panic) = panicked {
                    counts.failed += 1;
                    if ctx.worker_panicked(panic).restart {
                        ready = restart(&mut stage, &ctx).await;
                    }
                }
            }
            // What the loop above left: items after a panic or once items turned slow.
            for (lineage, item) in items {
                if !ready {
                    // The setup error is in the report; these items never ran.
                    counts.failed += 1;
                    if !failures.routes() {
                        ctx.item_ended(lineage);
                    }
                    failures
                        .route(
                            lineage,
                            Some(item),
                            NodeError::new(NotStarted),
                            &ctx,
                            &mut counts,
                        )
                        .await?;
                    continue;
                }
                let original = failures.keep(&item);
                let timer = latency.start();
                let outcome = attempt(
                    &mut stage,
                    item,
                    &mut produced,
                    &ctx,
                    retry.as_ref(),
                    &mut counts,
                )
                .await;
                if let Some(started) = timer {
                    latency.record(started.elapsed());
                }
                match outcome {
                    Outcome::Done => {
                        deliver::<S>(&mut produced, lineage, &mut outlet, &mut counts, &ctx)
                            .await?;
                        // A slow stage hands each item on as soon as the next node has
                        // nothing to do. A cheap one fills its batch and sends it when its
                        // input runs dry (`next_or_flush`): waking the next node per item
                        // would cost more than the items themselves.
                        if latency.items_are_slow()
                            && outlet.has_pending()
                            && outlet.downstream_idle()
                        {
                            outlet.flush().await?;
                        }
                    }
                    Outcome::Failed(error) => {
                        counts.failed += 1;
                        let error = ctx.item_failed(error);
                        if !failures.routes() {
                            ctx.item_ended(lineage);
                        }
                        failures
                            .route(lineage, original, error, &ctx, &mut counts)
                            .await?;
                    }
                    Outcome::Panicked(panic) => {
                        counts.failed += 1;
                        let panicked = ctx.worker_panicked(panic);
                        if !failures.routes() {
                            ctx.item_ended(lineage);
                        }
                        failures
                            .route(
                                lineage,
                                original,
                                NodeError::new(PanicError {
                                    message: panicked.message,
                                }),
                                &ctx,
                                &mut counts,
                            )
                            .await?;
                        if panicked.restart {
                            ready = restart(&mut stage, &ctx).await;
                        }
                    }
                }
            }
            record_dropped(&mut inlet, &ctx);
            outlet.advance(watermark);
            failures.advance(watermark);
            if outlet.watermark_lags() {
                outlet.flush().await?;
            }
            failures.flush().await?;
            counts.blocked += outlet.take_blocked();
            ctx.stats.publish(&mut counts);
            ctx.stats.merge_latency(&mut latency);
        }
        record_dropped(&mut inlet, &ctx);
        if ready {
            let last = finish(&mut stage, &ctx).await;
            deliver_final(last, &mut 0, &mut outlet, &mut counts).await?;
        }
        failures.close().await?;
        outlet.close().await
    }
    .await;
    stage.teardown().await;
    ctx.stats.publish(&mut counts);
    ctx.stats.merge_latency_now(&mut latency);
    if result.is_err() {
        tracing::debug!(node = ctx.name, "downstream closed: the run was aborted");
    }
}

/// Runs a batch through a synchronous stage until it runs out, an item panics, or
/// `slow_items` timed items in a row turn out slow (those are better handed on one by one).
/// What it produced is appended to `results`; `items` is left with the items it did not
/// get to, in order. Returns the panic, if one happened; the item it happened on is consumed.
pub(crate) fn run_batch<S: Stage>(
    stage: &mut S,
    items: &mut Vec<(Lineage, S::In)>,
    slow_items: u32,
    produced: &mut Vec<S::Out>,
    results: &mut Vec<(Lineage, S::Out)>,
    (ctx, counts, latency): (&NodeCtx, &mut BatchCounts, &mut LatencySampler),
) -> Option<Box<dyn Any + Send>> {
    if S::ONE_TO_ONE && same_layout::<(Lineage, S::In), (Lineage, S::Out)>() && results.is_empty() {
        return map_batch_in_place(stage, items, slow_items, results, (ctx, counts, latency));
    }
    let (results_before, emitted_before) = (results.len(), counts.emitted);
    let mut queue = std::mem::take(items).into_iter();
    let mut current = None;
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        while let Some((lineage, item)) = queue.next() {
            current = Some(lineage);
            let timer = latency.start();
            let result = stage.process_sync(item, produced);
            if let Some(started) = timer {
                latency.record(started.elapsed());
            }
            match result {
                Ok(()) => collect::<S>(produced, lineage, results, counts, ctx),
                Err(error) => {
                    produced.clear();
                    counts.failed += 1;
                    ctx.item_failed(error);
                    ctx.item_ended(lineage);
                }
            }
            if latency.slow_streak() >= slow_items {
                break;
            }
            if S::ONE_TO_ONE {
                // Between two timed items, a plain map needs no per-item bookkeeping (what
                // it emitted is counted below; one output per input leaves a ledger as is).
                let untimed = latency.untimed_up_to(queue.len());
                results.extend(
                    queue
                        .by_ref()
                        .take(untimed)
                        .map(|(lineage, item)| (lineage, stage.map_one(item))),
                );
            }
        }
    }))
    .err();
    // Collecting a vector's own iterator reuses its allocation.
    *items = queue.collect();
    if S::ONE_TO_ONE {
        // A plain map emits exactly one item per input that did not panic: what it pushed,
        // even if a panic cut the batch short.
        counts.emitted = emitted_before + (results.len() - results_before) as u64;
    }
    if panicked.is_some() {
        produced.clear();
        // The item it panicked on is gone.
        if let Some(lineage) = current {
            ctx.item_ended(lineage);
        }
    }
    panicked
}

/// [`run_batch`] for a plain map whose outputs fit where its inputs are: the batch is
/// mapped in its own allocation, which becomes `results` (empty on entry).
fn map_batch_in_place<S: Stage>(
    stage: &mut S,
    items: &mut Vec<(Lineage, S::In)>,
    slow_items: u32,
    results: &mut Vec<(Lineage, S::Out)>,
    (ctx, counts, latency): (&NodeCtx, &mut BatchCounts, &mut LatencySampler),
) -> Option<Box<dyn Any + Send>> {
    let mut batch = InPlace::<S::In, S::Out>::new(std::mem::take(items));
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        while batch.remaining() > 0 {
            // Between two timed items, no bookkeeping at all.
            let untimed = latency.untimed_up_to(batch.remaining());
            batch.map(untimed, |item| stage.map_one(item));
            if batch.remaining() == 0 {
                break;
            }
            let started = Instant::now();
            batch.map(1, |item| stage.map_one(item));
            latency.record(started.elapsed());
            if latency.slow_streak() >= slow_items {
                break;
            }
        }
    }))
    .err();
    let split = batch.split();
    counts.emitted += split.done.len() as u64;
    *results = split.done;
    *items = split.rest;
    if let Some(lineage) = split.lost {
        // The item it panicked on is gone.
        ctx.item_ended(lineage);
    }
    panicked
}

/// Counts an input that produced nothing: filtered, or absorbed by an aggregate.
#[inline]
fn count_no_output<S: Stage>(counts: &mut BatchCounts) {
    if S::ABSORBS {
        counts.absorbed += 1;
    } else {
        counts.filtered += 1;
    }
}

/// Counts what one input produced and queues it with its lineage (children of the input's
/// for the extra outputs of a flat-map).
fn collect<S: Stage>(
    produced: &mut Vec<S::Out>,
    lineage: Lineage,
    results: &mut Vec<(Lineage, S::Out)>,
    counts: &mut BatchCounts,
    ctx: &NodeCtx,
) {
    let n = produced.len() as u64;
    counts.emitted += n;
    ctx.item_became(lineage, n);
    if n == 0 {
        count_no_output::<S>(counts);
    } else if n == 1 && !S::SPLITS {
        results.extend(produced.pop().map(|out| (lineage, out)));
    } else {
        counts.expanded += n - 1;
        results.extend(
            produced
                .drain(..)
                .enumerate()
                .map(|(i, out)| (lineage.child(i as u64), out)),
        );
    }
}

/// A stage's dead-letter side: keeps a copy of each input while it is processed, and sends
/// the inputs it failed on, with their error, to the dead-letter node.
pub(crate) struct FailedItems<T> {
    dead_letter: Option<policy::DeadLetter<T>>,
}

impl<T: Send + 'static> FailedItems<T> {
    pub(crate) fn new(dead_letter: Option<policy::DeadLetter<T>>) -> Self {
        FailedItems { dead_letter }
    }

    /// Whether failed items go to a dead-letter node.
    pub(crate) fn routes(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// A copy of the input, if failures are routed anywhere.
    pub(crate) fn keep(&self, item: &T) -> Option<T> {
        self.dead_letter.as_ref().map(|d| (d.copy)(item))
    }

    pub(crate) async fn route(
        &mut self,
        lineage: Lineage,
        original: Option<T>,
        error: NodeError,
        ctx: &NodeCtx,
        counts: &mut BatchCounts,
    ) -> Result<(), Closed> {
        if let (Some(dead_letter), Some(item)) = (self.dead_letter.as_mut(), original) {
            counts.dead_lettered += 1;
            dead_letter
                .outlet
                .push(
                    lineage,
                    Failed {
                        item,
                        error,
                        node: ctx.name,
                    },
                )
                .await?;
        }
        Ok(())
    }

    pub(crate) fn advance(&mut self, watermark: u64) {
        if let Some(dead_letter) = self.dead_letter.as_mut() {
            dead_letter.outlet.advance(watermark);
        }
    }

    /// Sends routed items now; failures are rare, so they are not held back for a batch.
    pub(crate) async fn flush(&mut self) -> Result<(), Closed> {
        match self.dead_letter.as_mut() {
            Some(dead_letter) if dead_letter.outlet.has_pending() => {
                dead_letter.outlet.flush().await
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn close(self) -> Result<(), Closed> {
        match self.dead_letter {
            Some(dead_letter) => dead_letter.outlet.close().await,
            None => Ok(()),
        }
    }
}

/// A worker's panic, once counted: its message, and whether the worker may start again.
pub(crate) struct Panicked {
    pub message: String,
    pub restart: bool,
}

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
        return attempt_once(stage, item, out, ctx.timeout, counts).await;
    };
    for pause in retry.pauses() {
        match attempt_once(stage, (retry.copy)(&item), out, ctx.timeout, counts).await {
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
    attempt_once(stage, item, out, ctx.timeout, counts).await
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

/// Runs a worker's `setup`; `false` means it failed (and the run is stopping).
pub(crate) async fn set_up<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> bool {
    started(
        AssertUnwindSafe(stage.setup(&ctx.context))
            .catch_unwind()
            .await,
        ctx,
    )
}

/// Whether a `setup` (caught for panics) succeeded; if not, the run stops and says why.
pub(super) fn started(setup: std::thread::Result<Result<(), BoxError>>, ctx: &NodeCtx) -> bool {
    match setup {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            ctx.setup_failed(error.into());
            false
        }
        Err(panic) => {
            ctx.setup_failed(NodeError::new(PanicError {
                message: panic_message(panic),
            }));
            false
        }
    }
}

/// Replaces a worker after a panic: tears it down and sets it up afresh.
pub(crate) async fn restart<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> bool {
    stage.teardown().await;
    set_up(stage, ctx).await
}

/// Runs a worker's `finish`, returning what it emits at end of stream.
pub(crate) async fn finish<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> Vec<S::Out> {
    let mut out = Vec::new();
    match AssertUnwindSafe(stage.finish(&mut out))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => out,
        Ok(Err(error)) => {
            ctx.finish_failed(error.into());
            Vec::new()
        }
        Err(panic) => {
            ctx.panicked(panic);
            Vec::new()
        }
    }
}

/// Sends items a stage emitted at end of stream. They derive from no input: they get
/// lineages of their own (under a root no source uses) and count as extra items.
pub(crate) async fn deliver_final<T: Send + 'static>(
    produced: Vec<T>,
    numbered_from: &mut u64,
    outlet: &mut Outlet<T>,
    counts: &mut BatchCounts,
) -> Result<(), Closed> {
    for item in produced {
        counts.emitted += 1;
        counts.expanded += 1;
        outlet
            .push(Lineage::root(u64::MAX).child(*numbered_from), item)
            .await?;
        *numbered_from += 1;
    }
    Ok(())
}

/// Sends what a stage produced from one input: nothing is a filtered item, one output keeps
/// the input's lineage, and several (or any from a flat-map) get child lineages.
pub(crate) async fn deliver<S: Stage>(
    produced: &mut Vec<S::Out>,
    lineage: crate::lineage::Lineage,
    outlet: &mut Outlet<S::Out>,
    counts: &mut BatchCounts,
    ctx: &NodeCtx,
) -> Result<(), Closed> {
    let n = produced.len() as u64;
    counts.emitted += n;
    ctx.item_became(lineage, n);
    if n == 0 {
        count_no_output::<S>(counts);
    } else if n == 1 && !S::SPLITS {
        if let Some(out) = produced.pop() {
            outlet.push(lineage, out).await?;
        }
    } else {
        counts.expanded += n - 1;
        for (i, out) in produced.drain(..).enumerate() {
            outlet.push(lineage.child(i as u64), out).await?;
        }
    }
    Ok(())
}

/// The next input batch; before waiting for one, sends what the node has produced.
pub(crate) async fn next_or_flush<T, O: Send + 'static, I: Inlet<T>>(
    inlet: &mut I,
    outlet: &mut Outlet<O>,
    counts: &mut BatchCounts,
) -> Result<Option<Batch<T>>, Closed> {
    if let Some(batch) = inlet::try_next(inlet) {
        return Ok(batch);
    }
    outlet.flush().await?;
    let waiting_since = Instant::now();
    let batch = inlet::next(inlet).await;
    counts.starved += waiting_since.elapsed();
    Ok(batch)
}

pub(crate) fn record_dropped<T, I: Inlet<T>>(inlet: &mut I, ctx: &NodeCtx) {
    report_dropped(inlet.take_dropped(), ctx);
}

/// Counts the partial tuples a node's zip dropped.
pub(crate) fn report_dropped(dropped: crate::inlet::Dropped, ctx: &NodeCtx) {
    if dropped.tuples > 0 {
        tracing::debug!(
            node = ctx.name,
            tuples = dropped.tuples,
            "zip dropped partial tuples"
        );
        ctx.stats.dropped_partial(dropped.tuples, dropped.items);
    }
}
