//! A stage's loop: take a batch, run it through the stage (whole batches at a time while
//! items are cheap and there is no per-item policy), count, and send the results on.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use super::SharedOffer;
use super::attempt::{Outcome, attempt};
use super::ctx::NodeCtx;
use super::dead_letter::FailedItems;
use super::hooks::{finish, restart, set_up};
use super::in_place::{InPlace, same_layout};
use super::lend::{Lendable, Resumed, lend, taken};
use super::place::{place, where_it_runs};
use super::policy::ErrorPolicy;
use super::send::{count_outputs, deliver, deliver_final, next_or_flush, record_dropped};
use crate::error::{NodeError, NotStarted, Panicked as PanicError};
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, LatencySampler};
use crate::wire::Closed;
use crate::wire::split::Recall;
use std::sync::Arc;

pub(crate) async fn run_stage<S: Stage, I: Inlet<S::In>>(
    mut stage: S,
    inlet: I,
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
) {
    let ready = set_up(&mut stage, &ctx).await;
    stage_loop(Resumed::new(stage, outlet), ready, inlet, ctx, policy, None).await;
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
    // Only a plain stage leaves for a core of its own: it has no policy to carry back.
    let may_split = ctx.config.runs_plain(S::SYNC);
    let lent = lend(
        Resumed::new(stage, outlet),
        ready,
        taken(&offer),
        &ctx,
        may_split,
    );
    let Some((mut state, mut split)) = lent.await else {
        return;
    };
    let stats = ctx.stats.clone();
    while let Some(recall) = split.take() {
        // It left for a core of its own: a loop of its own until its feeder asks it back
        // (which it does if that did not pay), then inline again, for good.
        let blocking = S::BLOCKING && (S::HAS_HOOKS || !only_ends(&mut state, &mut inlet));
        let plain = ErrorPolicy {
            retry: None,
            dead_letter: None,
        };
        let (back, came_back) = tokio::sync::oneshot::channel();
        let own = {
            let (ctx, recall) = (ctx.clone(), recall.clone());
            async move {
                let _ = back.send(stage_loop(state, ready, inlet, ctx, plain, Some(recall)).await);
            }
        };
        place(blocking, &stats, own).await;
        let Ok(Some((again, own_inlet))) = came_back.await else {
            // It ended in its own loop.
            return;
        };
        inlet = own_inlet;
        let Some((again, _)) = lend(again, ready, recall.answer(), &ctx, false).await else {
            return;
        };
        state = again;
    }
    let blocking = S::BLOCKING && (S::HAS_HOOKS || !only_ends(&mut state, &mut inlet));
    place(blocking, &stats, async move {
        stage_loop(state, ready, inlet, ctx, policy, None).await;
    })
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

/// A stage's loop, from wherever it is (fresh, or back from running inline). With a
/// `recall`, the node left its feeder's thread for a core of its own: once the feeder asks
/// it back, it runs what its input still holds and returns its state and input, to run
/// inline again.
async fn stage_loop<S: Stage, I: Inlet<S::In>>(
    state: Resumed<S>,
    mut ready: bool,
    mut inlet: I,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
    mut recall: Option<Arc<Recall<S::In>>>,
) -> Option<(Resumed<S>, I)> {
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
    let batchable = ctx.config.runs_plain(S::SYNC);
    // Items left from running inline were counted as received there.
    let mut carried = leftover;
    // Asked back: taking what the input still holds, without waiting for more.
    let mut draining = false;
    let result: Result<Option<Outlet<S::Out>>, Closed> = async {
        loop {
            let batch = match carried.take() {
                Some(batch) => batch,
                None if draining => match inlet::try_next(&mut inlet) {
                    Some(Some(batch)) => {
                        counts.received += batch.len() as u64;
                        batch
                    }
                    Some(None) => break,
                    // The feeder sends nothing more until it has the node back.
                    None => {
                        record_dropped(&mut inlet, &ctx);
                        ctx.stats.publish(&mut counts);
                        ctx.stats.merge_latency(&mut latency);
                        return Ok(Some(outlet));
                    }
                },
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
                        ctx.note_failure(lineage, &error);
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
            if !draining && let Some(asked) = recall.as_ref().filter(|r| r.wanted()) {
                if ready {
                    draining = true;
                } else {
                    // Set up again in vain: it stays here, and its feeder goes on sending.
                    drop(asked.answer());
                    recall = None;
                }
            }
        }
        record_dropped(&mut inlet, &ctx);
        if ready {
            let last = finish(&mut stage, &ctx).await;
            deliver_final(last, &mut 0, &mut outlet, &mut counts).await?;
        }
        failures.close().await?;
        outlet.close().await.map(|()| None)
    }
    .await;
    if let Ok(Some(outlet)) = result {
        let state = Resumed {
            stage,
            outlet,
            counts,
            latency,
            leftover: None,
            restart: false,
            produced,
            results,
        };
        return Some((state, inlet));
    }
    stage.teardown().await;
    ctx.stats.publish(&mut counts);
    ctx.stats.merge_latency_now(&mut latency);
    if result.is_err() {
        tracing::debug!(node = ctx.name, "downstream closed: the run was aborted");
    }
    None
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
                    let error = ctx.item_failed(error);
                    ctx.note_failure(lineage, &error);
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

/// Counts what one input produced and queues it with its lineage (children of the input's
/// for the extra outputs of a flat-map).
pub(super) fn collect<S: Stage>(
    produced: &mut Vec<S::Out>,
    lineage: Lineage,
    results: &mut Vec<(Lineage, S::Out)>,
    counts: &mut BatchCounts,
    ctx: &NodeCtx,
) {
    if count_outputs::<S>(produced.len(), lineage, counts, ctx) {
        results.extend(
            produced
                .drain(..)
                .enumerate()
                .map(|(i, out)| (lineage.child(i as u64), out)),
        );
    } else {
        results.extend(produced.pop().map(|out| (lineage, out)));
    }
}
