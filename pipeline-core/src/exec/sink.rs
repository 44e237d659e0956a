//! A sink's loop: take input batches and consume their items, in its own task or inline in
//! the node feeding it (see [`crate::fuse`]).

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use futures::FutureExt;

use super::SharedOffer;
use super::ctx::NodeCtx;
use super::hooks::started;
use super::lend::{lend, taken};
use super::place::{place, where_it_runs};
use super::send::record_dropped;
use super::stage::only_ends;
use crate::exec::lend::SinkResumed;
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Sink;
use crate::stats::{BatchCounts, LatencySampler};

pub(crate) async fn run_sink<S: Sink, I: Inlet<S::In>>(mut sink: S, inlet: I, ctx: NodeCtx) {
    let ready = set_up(&mut sink, &ctx).await;
    sink_loop(SinkResumed::new(sink), ready, inlet, ctx).await;
}

/// Runs a synchronous sink that may run inside the node feeding it: set up (on a thread if
/// its code may block), offer itself, and once given back carry on in a loop of its own.
pub(crate) async fn run_fusable_sink<S: Sink, I: Inlet<S::In>>(
    sink: S,
    mut inlet: I,
    ctx: NodeCtx,
    offer: SharedOffer<S::In>,
) {
    let setup_ctx = ctx.clone();
    let (sink, ready) = where_it_runs(S::BLOCKING && S::HAS_HOOKS, async move {
        let mut sink = sink;
        let ready = set_up(&mut sink, &setup_ctx).await;
        (sink, ready)
    })
    .await;
    let Some((mut state, _)) =
        lend(SinkResumed::new(sink), ready, taken(&offer), &ctx, false).await
    else {
        return;
    };
    let blocking = S::BLOCKING && (S::HAS_HOOKS || !only_ends(&mut state, &mut inlet));
    let stats = ctx.stats.clone();
    place(blocking, &stats, sink_loop(state, ready, inlet, ctx)).await;
}

async fn set_up<S: Sink>(sink: &mut S, ctx: &NodeCtx) -> bool {
    started(
        AssertUnwindSafe(sink.setup(&ctx.context))
            .catch_unwind()
            .await,
        ctx,
    )
}

async fn sink_loop<S: Sink, I: Inlet<S::In>>(
    state: SinkResumed<S>,
    mut ready: bool,
    mut inlet: I,
    ctx: NodeCtx,
) {
    let SinkResumed {
        mut sink,
        mut counts,
        mut latency,
        leftover,
        restart,
        ..
    } = state;
    if restart {
        ready = set_up(&mut sink, &ctx).await;
    }
    // Items left from running inline were counted as received there.
    let mut carried = leftover;
    loop {
        let items = match carried.take() {
            Some(items) => items,
            None => {
                let waiting_since = Instant::now();
                let next = inlet::next(&mut inlet).await;
                // The wait for the end of the input is a wait too.
                counts.starved += waiting_since.elapsed();
                let Some(batch) = next else {
                    break;
                };
                ctx.stats.observe_queue(inlet.queued());
                counts.received += batch.len() as u64;
                batch.items
            }
        };
        let mut items = items;
        if S::SYNC && ready && !latency.items_are_slow() {
            let panicked =
                consume_batch(&mut sink, &mut items, 1, (&ctx, &mut counts, &mut latency));
            if let Some(panic) = panicked {
                counts.failed += 1;
                if ctx.worker_panicked(panic).restart {
                    ready = set_up(&mut sink, &ctx).await;
                }
            }
        }
        // What the loop above left: items after a panic or once items turned slow.
        for (lineage, item) in items {
            if !ready {
                // The setup error is in the report; these items never ran.
                counts.failed += 1;
                ctx.item_ended(lineage);
                continue;
            }
            let timer = latency.start();
            let consumed = AssertUnwindSafe(sink.consume_from(lineage, item))
                .catch_unwind()
                .await;
            if let Some(started) = timer {
                latency.record(started.elapsed());
            }
            // Consumed, failed or panicked on, the item ends here either way (after what became of
            // it is noted).
            match consumed {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    counts.failed += 1;
                    let error = ctx.item_failed(error);
                    ctx.note_failure(lineage, &error);
                }
                Err(panic) => {
                    counts.failed += 1;
                    let restart = ctx.worker_panicked(panic).restart;
                    ctx.item_ended(lineage);
                    if restart {
                        ready = set_up(&mut sink, &ctx).await;
                    }
                    continue;
                }
            }
            ctx.item_ended(lineage);
        }
        sink.flush();
        record_dropped(&mut inlet, &ctx);
        ctx.stats.publish(&mut counts);
        ctx.stats.merge_latency(&mut latency);
    }
    sink.flush();
    if ready {
        match AssertUnwindSafe(sink.finish()).catch_unwind().await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => ctx.finish_failed(error.into()),
            Err(panic) => ctx.panicked(panic),
        }
    }
    record_dropped(&mut inlet, &ctx);
    ctx.stats.publish(&mut counts);
    ctx.stats.merge_latency_now(&mut latency);
}

/// Consumes items with a synchronous sink until they run out, one panics, or `slow_items`
/// timed items in a row turn out slow. Returns the panic, if one happened; the item it
/// happened on is consumed.
pub(crate) fn consume_batch<S: Sink>(
    sink: &mut S,
    items: &mut Vec<(Lineage, S::In)>,
    slow_items: u32,
    (ctx, counts, latency): (&NodeCtx, &mut BatchCounts, &mut LatencySampler),
) -> Option<Box<dyn Any + Send>> {
    // A failure is noted on the item's lineage too: a service's caller is told of it.
    let mut consume = |sink: &mut S, lineage, item| {
        if let Err(error) = sink.consume_sync(item) {
            counts.failed += 1;
            let error = ctx.item_failed(error);
            ctx.note_failure(lineage, &error);
        }
    };
    // Consumed, failed or panicked on, an item ends here; only once it has, so that an item
    // from another process is acknowledged after the sink is done with it.
    let mut current = None;
    let mut items_left = std::mem::take(items).into_iter();
    let queue = &mut items_left;
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        while let Some((lineage, item)) = queue.next() {
            current = Some(lineage);
            let timer = latency.start();
            consume(sink, lineage, item);
            ctx.item_ended(lineage);
            if let Some(started) = timer {
                latency.record(started.elapsed());
            }
            if latency.slow_streak() >= slow_items {
                break;
            }
            // Between two timed items, no per-item bookkeeping; nor, with no ledger of items
            // from other processes to tell, which item ended.
            let untimed = latency.untimed_up_to(queue.len());
            if ctx.ledger.is_none() {
                for (lineage, item) in queue.by_ref().take(untimed) {
                    consume(sink, lineage, item);
                }
                continue;
            }
            for (lineage, item) in queue.by_ref().take(untimed) {
                current = Some(lineage);
                consume(sink, lineage, item);
                ctx.item_ended(lineage);
            }
        }
    }))
    .err();
    // Collecting a vector's own iterator reuses its allocation.
    *items = items_left.collect();
    if let (Some(_), Some(lineage)) = (&panicked, current) {
        ctx.item_ended(lineage);
    }
    panicked
}
