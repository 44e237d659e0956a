//! An async stage on several workers (`workers(n)` on `map_async` and the like): `n`
//! copies of the stage, each busy with at most one item, and every item's future polled
//! together in the node's own task, as `buffer_unordered` polls its futures.
//!
//! Async items mostly wait (on I/O, a timer). Run as `n` tasks, each worker was woken on
//! its own when its item was ready, took the node's locks, and sent its one output on,
//! waking the next node per item. Here a wake-up that finds many items ready (one tick of
//! the timer, one batch of replies) handles them all and sends their outputs on as one
//! batch; nothing is locked, as nothing is shared between tasks.
//!
//! What becomes of each item (outputs, failures, retries, timeouts, panics and the
//! copy's restart) is [`process_one`], as for threaded workers; what leaves in which
//! order, and the watermark, is the [`Collector`]'s.

use std::collections::VecDeque;
use std::time::Instant;

use futures::FutureExt;
use futures::stream::{FuturesUnordered, StreamExt};

use super::{Collector, CopyInput, Finished, Tools, process_one};
use crate::exec::ctx::NodeCtx;
use crate::exec::hooks::{finish, set_up};
use crate::exec::policy::Retry;
use crate::exec::send::{deliver_final, record_dropped};
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::stats::BatchCounts;
use crate::wire::{Batch, Closed};

/// One item done: the copy that did it (and whether it is ready for another), and what
/// became of the item.
type Done<S> = (S, bool, Finished<<S as Stage>::In, <S as Stage>::Out>);

/// What the node waits for. (One at a time, on the stack: its size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Event<S: Stage> {
    Done(Done<S>),
    Input(Option<Batch<S::In>>),
}

/// Runs one item on `stage`.
async fn job<S: Stage>(
    mut stage: S,
    ready: bool,
    (seq, lineage, item): (u64, Lineage, S::In),
    tools: Tools<'_, S::In>,
) -> Done<S> {
    let started = Instant::now();
    let mut chunk = Finished {
        first_seq: seq,
        items: 1,
        root: lineage.root_index(),
        results: Vec::new(),
        failed: Vec::new(),
        counts: BatchCounts::default(),
        alone: true,
    };
    let mut produced = Vec::new();
    let ready = process_one(
        &mut stage,
        ready,
        (lineage, item),
        tools,
        &mut produced,
        &mut chunk,
    )
    .await;
    chunk.counts.busy = started.elapsed();
    (stage, ready, chunk)
}

/// Runs an async stage with one copy per worker in `copies`; see the module documentation.
pub(super) async fn run_concurrently<S: Stage, I: Inlet<S::In>>(
    copies: Vec<S>,
    mut collector: Collector<S>,
    window: usize,
    mut inlet: I,
    ctx: NodeCtx,
    retry: Option<Retry<S::In>>,
    keep: Option<CopyInput<S::In>>,
) {
    // Every copy sets up at once: a setup may wait (a connection), and they are alike.
    let mut idle: Vec<(S, bool)> =
        futures::future::join_all(copies.into_iter().map(|mut stage| {
            let ctx = &ctx;
            async move {
                let ready = set_up(&mut stage, ctx).await;
                (stage, ready)
            }
        }))
        .await;
    let tools = (&ctx, retry.as_ref(), keep);
    let mut pending: VecDeque<(Lineage, S::In)> = VecDeque::new();
    // The watermark of the batch in `pending`, which holds once all of it has started.
    let mut pending_watermark = None;
    let mut next_seq = 0u64;
    let mut ended = false;
    let mut running = FuturesUnordered::new();
    let result: Result<(), Closed> = async {
        loop {
            while collector.in_flight < window && !idle.is_empty() {
                let Some((lineage, item)) = pending.pop_front() else {
                    break;
                };
                let (stage, ready) = idle.pop().expect("a copy is idle");
                collector.dispatched(lineage.root_index(), 1);
                running.push(job(stage, ready, (next_seq, lineage, item), tools));
                next_seq += 1;
                if pending.is_empty()
                    && let Some(watermark) = pending_watermark.take()
                {
                    collector.input_watermark = watermark;
                }
            }
            if ended && pending.is_empty() && running.is_empty() {
                return Ok(());
            }
            let wants_input = !ended && pending.is_empty() && !idle.is_empty();
            let event = if wants_input {
                // With nothing in flight, the whole node waits for want of input.
                let waiting_since = running.is_empty().then(Instant::now);
                let event = tokio::select! {
                    biased;
                    Some(done) = running.next(), if !running.is_empty() => Event::Done(done),
                    batch = inlet::next(&mut inlet) => Event::Input(batch),
                };
                if let Some(since) = waiting_since {
                    collector.counts.starved += since.elapsed();
                }
                event
            } else {
                match running.next().await {
                    Some(done) => Event::Done(done),
                    // Nothing runs and no input is wanted: every copy is busy, so this
                    // cannot be; end rather than spin.
                    None => return Ok(()),
                }
            };
            let mut finished_any = false;
            match event {
                Event::Input(Some(batch)) => {
                    record_dropped(&mut inlet, &ctx);
                    ctx.stats.observe_queue(inlet.queued());
                    collector.counts.received += batch.len() as u64;
                    if batch.items.is_empty() {
                        // A watermark alone: pass it on.
                        collector.input_watermark = batch.watermark;
                        collector.send_on().await?;
                    } else {
                        pending_watermark = Some(batch.watermark);
                        pending.extend(batch.items);
                    }
                }
                Event::Input(None) => ended = true,
                Event::Done((stage, ready, chunk)) => {
                    idle.push((stage, ready));
                    collector.accept(chunk).await?;
                    finished_any = true;
                }
            }
            // Whatever else is ready now goes with it, in one batch.
            while let Some(Some((stage, ready, chunk))) = running.next().now_or_never() {
                idle.push((stage, ready));
                collector.accept(chunk).await?;
                finished_any = true;
            }
            if finished_any {
                collector.send_on().await?;
            }
        }
    }
    .await;
    drop(running);
    if result.is_ok() {
        for (stage, ready) in &mut idle {
            if !*ready {
                continue;
            }
            let last = finish(stage, &ctx).await;
            let Collector {
                finals,
                outlet,
                counts,
                ..
            } = &mut collector;
            if deliver_final(last, finals, outlet, counts).await.is_err() {
                break;
            }
        }
    }
    for (stage, _) in &mut idle {
        stage.teardown().await;
    }
    collector.close().await;
}
