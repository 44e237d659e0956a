//! A stage run by several workers (`workers(n)` in the DSL).
//!
//! Each worker owns a copy of the stage and runs the node's loop itself: it takes the next
//! item from the node's input, processes it, and sends the result on. Whichever worker is
//! free takes the next item (load balancing, not round-robin), and no item is handed to
//! another thread or task on its way through: on a machine with as many cores as workers,
//! a hand-off per item would preempt a worker each time. Workers are threads, for a stage
//! whose code may block; the input and the output each sit behind a lock; with `ordered`,
//! results wait in a reorder buffer for the ones before them. An async stage's workers are
//! futures polled together in the node's own task instead (`concurrent.rs`), which shares
//! the output side (`Collector`) and what becomes of each item (`process_one`).
//!
//! A worker whose items prove cheap takes several at once (a chunk, worth about
//! `CHUNK_TIME` of work), so that the locks, the clock reads and the hand-on to the next
//! node are paid per chunk rather than per item: taken one by one, items of a few
//! microseconds ran slower on two workers than on one, the workers taking turns at the
//! locks. A slow item shrinks the chunk again at once, so slow stages still balance item
//! by item.
//!
//! At most `window` items are between being taken and being sent on, which bounds the
//! reorder buffer. The node keeps the lineage roots of those items: the output watermark is
//! the smallest of them, so a zip downstream still knows when a partial tuple can never
//! complete, however the workers reorder items.

mod concurrent;

use crate::error::{NodeError, NotStarted, Panicked as PanicError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, Notify};

use super::attempt::{Outcome, attempt};
use super::ctx::NodeCtx;
use super::dead_letter::FailedItems;
use super::hooks::{finish, restart, set_up};
use super::place::counting_cpu;
use super::policy::{ErrorPolicy, Retry};
use super::send::{deliver_final, record_dropped};
use super::stage::{collect, run_batch};
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, LatencySampler, SLOW_ITEM};
use crate::wire::Closed;

/// How many workers a stage has, and whether its output keeps the input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    pub count: usize,
    pub ordered: bool,
}

impl Workers {
    /// Items between being taken and being sent on: every worker busy with a full chunk,
    /// and as much again, so that a slow item does not stall ordered output at once.
    fn window(&self) -> usize {
        (self.count * MAX_CHUNK * 2).max(8)
    }
}

/// About how much work a worker takes at once when its items are cheap: enough that the
/// locks and the hand-on are a small part of it, little enough that the workers share the
/// load evenly to the end and a chunk's first item does not wait long for its last. (At
/// 50 µs, two workers of sub-microsecond JSON items spent a third of their time parked on
/// the locks; at 200 µs they reach 0.75–0.84 of rayon's throughput, see the book.)
const CHUNK_TIME: Duration = Duration::from_micros(200);
/// The most items a worker takes at once.
const MAX_CHUNK: usize = 1024;

/// How many items a worker takes at once, from what its items took.
struct Chunking {
    size: usize,
}

impl Chunking {
    /// Items are taken one by one until they prove cheap.
    fn new() -> Self {
        Chunking { size: 1 }
    }

    /// `items` took `took` in all: a slow chunk shrinks to what fits [`CHUNK_TIME`] at
    /// once; a quick one doubles.
    fn took(&mut self, took: Duration, items: usize) {
        let Some(items) = u32::try_from(items).ok().filter(|&n| n > 0) else {
            return;
        };
        let mean = took / items;
        if mean >= SLOW_ITEM || mean * self.size as u32 > CHUNK_TIME {
            let fits = CHUNK_TIME.as_nanos() / mean.as_nanos().max(1);
            self.size = (fits as usize).clamp(1, MAX_CHUNK);
        } else if mean * (self.size as u32 * 2) <= CHUNK_TIME {
            self.size = (self.size * 2).min(MAX_CHUNK);
        }
    }
}

/// Copies an input so a failed item can still be sent to a dead-letter node.
type CopyInput<T> = fn(&T) -> T;

/// What a worker needs for each item besides the stage: the node's context, its retries,
/// and how to keep a copy of an input for a dead-letter node.
type Tools<'a, T> = (&'a NodeCtx, Option<&'a Retry<T>>, Option<CopyInput<T>>);

/// What a worker made of a chunk: consecutive items of the input, so in ordered output a
/// chunk goes on as a whole once the ones before it have.
struct Finished<I, O> {
    /// The place of its first item in the input, and how many items it took.
    first_seq: u64,
    items: usize,
    /// The lineage root it is filed under among those in flight (its smallest).
    root: u64,
    /// The outputs, in input order, with their lineage.
    results: Vec<(Lineage, O)>,
    /// Items that failed, with a copy of the input when they go to a dead-letter node.
    failed: Vec<(Lineage, Option<I>, NodeError)>,
    counts: BatchCounts,
    /// Whether its one item was timed alone (a slow item), or the chunk as a whole.
    alone: bool,
}

/// The node's input side: the workers take items from here, a chunk at a time.
struct Input<T, I> {
    inlet: I,
    /// The rest of the batch being taken from.
    pending: VecDeque<(Lineage, T)>,
    /// That batch's watermark, which holds once all of its items are taken.
    pending_watermark: Option<u64>,
    next_seq: u64,
    ended: bool,
}

/// The node's output side: sends results on, in input order when asked, and tracks what
/// is in flight.
struct Collector<S: Stage> {
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    ordered: bool,
    counts: BatchCounts,
    /// Finished out of order, waiting for earlier items (ordered only), by first item.
    waiting: BTreeMap<u64, Finished<S::In, S::Out>>,
    next_to_emit: u64,
    in_flight: usize,
    /// Lineage roots of the chunks in flight (the smallest of each), with how many items
    /// are filed under each.
    roots: BTreeMap<u64, usize>,
    /// The watermark of the last input batch whose items have all been taken.
    input_watermark: u64,
    /// Items the workers emitted at end of stream so far (they are numbered for lineage).
    finals: u64,
    failures: FailedItems<S::In>,
    /// Every item is timed by its worker, alone or in its chunk, so every item is recorded.
    latency: LatencySampler,
    /// Downstream is gone (the run was aborted): workers stop.
    closed: bool,
}

struct Shared<S: Stage, I> {
    input: Mutex<Input<S::In, I>>,
    output: Mutex<Collector<S>>,
    /// Signalled when an item leaves the window, for a worker waiting for room.
    room: Notify,
    /// Signalled when nothing is in flight any more, for workers waiting to finish.
    drained: Notify,
    window: usize,
}

impl<S: Stage> Collector<S> {
    fn new(
        outlet: Outlet<S::Out>,
        ctx: &NodeCtx,
        ordered: bool,
        failures: FailedItems<S::In>,
    ) -> Self {
        Collector {
            outlet,
            ctx: ctx.clone(),
            ordered,
            counts: BatchCounts::default(),
            waiting: BTreeMap::new(),
            next_to_emit: 0,
            in_flight: 0,
            roots: BTreeMap::new(),
            input_watermark: 0,
            finals: 0,
            failures,
            latency: LatencySampler::new(),
            closed: false,
        }
    }

    /// The node is done: publishes its last counts and closes its edges.
    async fn close(self) {
        let Collector {
            outlet,
            failures,
            mut counts,
            mut latency,
            ctx,
            ..
        } = self;
        ctx.stats.publish(&mut counts);
        ctx.stats.merge_latency_now(&mut latency);
        let result = async {
            failures.close().await?;
            outlet.close().await
        }
        .await;
        if result.is_err() {
            tracing::debug!(node = ctx.name, "downstream closed: the run was aborted");
        }
    }

    /// `items` were taken, filed under the lineage root `root`.
    fn dispatched(&mut self, root: u64, items: usize) {
        self.in_flight += items;
        *self.roots.entry(root).or_default() += items;
    }

    async fn accept(&mut self, chunk: Finished<S::In, S::Out>) -> Result<(), Closed> {
        if !self.ordered {
            return self.emit(chunk).await;
        }
        self.waiting.insert(chunk.first_seq, chunk);
        while let Some(chunk) = self.waiting.remove(&self.next_to_emit) {
            self.next_to_emit += chunk.items as u64;
            self.emit(chunk).await?;
        }
        Ok(())
    }

    async fn emit(&mut self, mut chunk: Finished<S::In, S::Out>) -> Result<(), Closed> {
        self.in_flight -= chunk.items;
        if let Some(n) = self.roots.get_mut(&chunk.root) {
            *n -= chunk.items;
            if *n == 0 {
                self.roots.remove(&chunk.root);
            }
        }
        if chunk.alone {
            self.latency.record(chunk.counts.busy);
        } else {
            self.latency.record_batch(chunk.counts.busy, chunk.items);
        }
        self.counts.merge(&chunk.counts);
        self.outlet.extend(&mut chunk.results).await?;
        for (lineage, original, error) in chunk.failed {
            self.failures
                .route(lineage, original, error, &self.ctx, &mut self.counts)
                .await?;
        }
        Ok(())
    }

    fn watermark(&self) -> u64 {
        self.roots
            .keys()
            .next()
            .map_or(self.input_watermark, |&r| r.min(self.input_watermark))
    }

    /// Sends what is ready, with the watermark, and publishes the counts.
    async fn send_on(&mut self) -> Result<(), Closed> {
        let watermark = self.watermark();
        self.outlet.advance(watermark);
        self.failures.advance(watermark);
        self.outlet.flush().await?;
        self.failures.flush().await?;
        self.counts.blocked += self.outlet.take_blocked();
        self.ctx.stats.publish(&mut self.counts);
        self.ctx.stats.merge_latency(&mut self.latency);
        Ok(())
    }
}

impl<S: Stage, I: Inlet<S::In>> Shared<S, I> {
    /// Up to `max` items to process next, into `jobs` (empty), once there is room in the
    /// window: the place of the first in the input, and the lineage root they are filed
    /// under; `None` at end of input. Takes what is there: it waits only if nothing is.
    async fn next_jobs(
        &self,
        ctx: &NodeCtx,
        max: usize,
        jobs: &mut Vec<(Lineage, S::In)>,
    ) -> Result<Option<(u64, u64)>, Closed> {
        let mut input = self.input.lock().await;
        loop {
            if input.pending.is_empty() {
                if input.ended {
                    return Ok(None);
                }
                let idle = self.output.lock().await.in_flight == 0;
                // With nothing in flight, the whole node waits for want of input.
                let waiting_since = idle.then(Instant::now);
                let batch = inlet::next(&mut input.inlet).await;
                record_dropped(&mut input.inlet, ctx);
                let mut output = self.output.lock().await;
                if let Some(since) = waiting_since {
                    output.counts.starved += since.elapsed();
                }
                match batch {
                    Some(batch) => {
                        ctx.stats.observe_queue(input.inlet.queued());
                        output.counts.received += batch.len() as u64;
                        if batch.items.is_empty() {
                            // A watermark alone: pass it on.
                            output.input_watermark = batch.watermark;
                            output.send_on().await?;
                        } else {
                            input.pending_watermark = Some(batch.watermark);
                            input.pending.extend(batch.items);
                        }
                    }
                    None => input.ended = true,
                }
                continue;
            }
            let room = self.room.notified();
            let mut output = self.output.lock().await;
            if output.closed {
                return Err(Closed);
            }
            if output.in_flight >= self.window {
                // Ordered output is waiting on a slow item: wait for it to go out.
                drop(output);
                room.await;
                continue;
            }
            let n = max
                .min(self.window - output.in_flight)
                .min(input.pending.len())
                .max(1);
            jobs.extend(input.pending.drain(..n));
            let root = jobs
                .iter()
                .map(|(lineage, _)| lineage.root_index())
                .min()
                .expect("at least one item");
            output.dispatched(root, n);
            let first_seq = input.next_seq;
            input.next_seq += n as u64;
            if input.pending.is_empty() {
                if let Some(watermark) = input.pending_watermark.take() {
                    output.input_watermark = watermark;
                }
            }
            return Ok(Some((first_seq, root)));
        }
    }

    /// Sends a chunk's outputs on (or holds them for the chunks before it).
    async fn finished(&self, chunk: Finished<S::In, S::Out>) -> Result<(), Closed> {
        let mut output = self.output.lock().await;
        let sent = match output.accept(chunk).await {
            Ok(()) => output.send_on().await,
            Err(closed) => Err(closed),
        };
        if sent.is_err() {
            // Wake whoever waits on items that will never go out now.
            output.closed = true;
            self.room.notify_one();
            self.drained.notify_waiters();
            return sent;
        }
        if output.in_flight < self.window {
            self.room.notify_one();
        }
        if output.in_flight == 0 {
            self.drained.notify_waiters();
        }
        Ok(())
    }

    /// Waits until every item taken has been sent on: what `finish` emits comes last.
    async fn drain(&self) {
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let output = self.output.lock().await;
            if output.in_flight == 0 || output.closed {
                return;
            }
            drop(output);
            drained.await;
        }
    }
}

/// Processes one item on a worker's copy of the stage, filing what became of it in
/// `chunk`: its outputs, or its failure (with a copy of the input for a dead-letter node
/// when `keep`). Returns whether the copy is ready for the next item (a copy that panicked
/// is set up again first, and may fail to be).
async fn process_one<S: Stage>(
    stage: &mut S,
    ready: bool,
    (lineage, item): (Lineage, S::In),
    (ctx, retry, keep): Tools<'_, S::In>,
    produced: &mut Vec<S::Out>,
    chunk: &mut Finished<S::In, S::Out>,
) -> bool {
    let counts = &mut chunk.counts;
    let mut ready = ready;
    let (error, original) = if ready {
        let original = keep.map(|copy| copy(&item));
        match attempt(stage, item, produced, ctx, retry, counts).await {
            Outcome::Done => {
                collect::<S>(produced, lineage, &mut chunk.results, counts, ctx);
                return true;
            }
            Outcome::Failed(error) => {
                let error = ctx.item_failed(error);
                ctx.note_failure(lineage, &error);
                (error, original)
            }
            Outcome::Panicked(panic) => {
                let message = NodeError::new(PanicError {
                    message: ctx.worker_panicked(panic).message,
                });
                // The copy that panicked is suspect: it starts afresh before the next item.
                ready = restart(stage, ctx).await;
                (message, original)
            }
        }
    } else {
        // The setup error is in the report; the item never ran.
        (NodeError::new(NotStarted), keep.map(|_| item))
    };
    produced.clear();
    counts.failed += 1;
    if keep.is_none() {
        ctx.item_ended(lineage);
    }
    chunk.failed.push((lineage, original, error));
    ready
}

/// One worker: set up, take items until the input ends, finish, tear down.
async fn work<S: Stage, I: Inlet<S::In>>(
    mut stage: S,
    shared: Arc<Shared<S, I>>,
    ctx: NodeCtx,
    retry: Option<Retry<S::In>>,
    keep: Option<CopyInput<S::In>>,
) {
    let mut ready = set_up(&mut stage, &ctx).await;
    // Cheap synchronous stages without per-item policies run a chunk in one loop.
    let batchable = ctx.config.runs_plain(S::SYNC);
    // The chunk is timed as a whole: no item alone.
    let mut untimed = LatencySampler::untimed();
    let mut chunking = Chunking::new();
    let mut jobs = Vec::new();
    let mut produced = Vec::new();
    loop {
        let (first_seq, root) = match shared.next_jobs(&ctx, chunking.size, &mut jobs).await {
            Ok(Some(taken)) => taken,
            Ok(None) => break,
            // The run was aborted downstream; nothing is waiting for this worker.
            Err(Closed) => {
                stage.teardown().await;
                return;
            }
        };
        let mut chunk = Finished {
            first_seq,
            items: jobs.len(),
            root,
            results: Vec::new(),
            failed: Vec::new(),
            counts: BatchCounts::default(),
            // A chunk of one is a slow item, timed alone; a larger one is timed as a whole,
            // two clock reads for all its items.
            alone: jobs.len() == 1,
        };
        let started = Instant::now();
        while batchable && ready && !jobs.is_empty() {
            let counts = &mut chunk.counts;
            let meters = (&ctx, &mut *counts, &mut untimed);
            let results = &mut chunk.results;
            let Some(panic) = run_batch(
                &mut stage,
                &mut jobs,
                u32::MAX,
                &mut produced,
                results,
                meters,
            ) else {
                break;
            };
            // `run_batch` ended the item it panicked on; the rest of the chunk is left.
            counts.failed += 1;
            ctx.worker_panicked(panic);
            ready = restart(&mut stage, &ctx).await;
        }
        for (lineage, item) in jobs.drain(..) {
            let tools = (&ctx, retry.as_ref(), keep);
            ready = process_one(
                &mut stage,
                ready,
                (lineage, item),
                tools,
                &mut produced,
                &mut chunk,
            )
            .await;
        }
        chunk.counts.busy = started.elapsed();
        chunking.took(chunk.counts.busy, chunk.items);
        if shared.finished(chunk).await.is_err() {
            stage.teardown().await;
            return;
        }
    }
    shared.drain().await;
    if ready {
        let last = finish(&mut stage, &ctx).await;
        let mut output = shared.output.lock().await;
        let output = &mut *output;
        let sent = deliver_final(
            last,
            &mut output.finals,
            &mut output.outlet,
            &mut output.counts,
        )
        .await;
        if sent.is_ok() {
            let _ = output.send_on().await;
        }
    }
    stage.teardown().await;
}

/// Runs a stage on one worker per copy in `copies`.
pub(crate) async fn run_with_workers<S: Stage, I: Inlet<S::In>>(
    copies: Vec<S>,
    ordered: bool,
    inlet: I,
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
) {
    let workers = Workers {
        count: copies.len(),
        ordered,
    };
    let ErrorPolicy { retry, dead_letter } = policy;
    let keep = dead_letter.as_ref().map(|d| d.copy);
    let collector = Collector::<S>::new(outlet, &ctx, ordered, FailedItems::new(dead_letter));
    if !S::BLOCKING {
        let window = workers.window();
        return concurrent::run_concurrently(copies, collector, window, inlet, ctx, retry, keep)
            .await;
    }
    let shared = Arc::new(Shared {
        input: Mutex::new(Input {
            inlet,
            pending: VecDeque::new(),
            pending_watermark: None,
            next_seq: 0,
            ended: false,
        }),
        output: Mutex::new(collector),
        room: Notify::new(),
        drained: Notify::new(),
        window: workers.window(),
    });
    let handles: Vec<_> = copies
        .into_iter()
        .map(|stage| {
            let worker = work(stage, shared.clone(), ctx.clone(), retry.clone(), keep);
            // The node's span (see `Pipeline::spawn`) follows each worker to its thread.
            let span = tracing::Span::current();
            let worker = counting_cpu(ctx.stats.clone(), worker);
            tokio::task::spawn_blocking(move || {
                span.in_scope(|| futures::executor::block_on(worker))
            })
        })
        .collect();
    for handle in handles {
        if let Err(e) = handle.await {
            if e.is_panic() {
                std::panic::resume_unwind(e.into_panic());
            }
        }
    }
    let Ok(shared) = Arc::try_unwrap(shared) else {
        unreachable!("every worker has ended, and each held the only other references");
    };
    shared.output.into_inner().close().await;
}
