//! A stage run by several workers (`workers(n)` in the DSL).
//!
//! Each worker owns a copy of the stage and runs the node's loop itself: it takes the next
//! item from the node's input, processes it, and sends the result on. Whichever worker is
//! free takes the next item (load balancing, not round-robin), and no item is handed to
//! another thread or task on its way through: on a machine with as many cores as workers,
//! a hand-off per item would preempt a worker each time. Workers are threads for a blocking
//! stage and async tasks otherwise. The input and the output each sit behind a lock; with
//! `ordered`, results wait in a reorder buffer for the ones before them.
//!
//! At most `window` items are between being taken and being sent on, which bounds the
//! reorder buffer. The node keeps the lineage roots of those items: the output watermark is
//! the smallest of them, so a zip downstream still knows when a partial tuple can never
//! complete, however the workers reorder items.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{Mutex, Notify};

use super::{
    ErrorPolicy, FailedItems, NodeCtx, Outcome, Retry, attempt, deliver, deliver_final, finish,
    record_dropped, restart, set_up,
};
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::outlet::Outlet;
use crate::stats::{BatchCounts, LatencySampler};
use crate::wire::Closed;

/// How many workers a stage has, and whether its output keeps the input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workers {
    pub count: usize,
    pub ordered: bool,
}

impl Workers {
    /// Items between being taken and being sent on: every worker busy, and room for a slow
    /// item not to stall ordered output at once.
    fn window(&self) -> usize {
        (self.count * 4).max(8)
    }
}

/// Copies an input so a failed item can still be sent to a dead-letter node.
type CopyInput<T> = fn(&T) -> T;

struct Job<T> {
    seq: u64,
    lineage: Lineage,
    item: T,
}

struct Done<I, O> {
    seq: u64,
    lineage: Lineage,
    /// `None`: the worker's setup had failed, so the item never ran.
    outcome: Option<Outcome>,
    produced: Vec<O>,
    /// What the worker counted on it: retries, its busy time, long polls.
    counts: BatchCounts,
    /// The input, kept when failed items go to a dead-letter node.
    original: Option<I>,
}

/// The node's input side: the workers take items from here, one at a time.
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
    /// Finished out of order, waiting for earlier items (ordered only).
    waiting: BTreeMap<u64, Done<S::In, S::Out>>,
    next_to_emit: u64,
    in_flight: usize,
    /// Lineage roots of the items in flight, with how many items share each.
    roots: BTreeMap<u64, usize>,
    /// The watermark of the last input batch whose items have all been taken.
    input_watermark: u64,
    /// Items the workers emitted at end of stream so far (they are numbered for lineage).
    finals: u64,
    failures: FailedItems<S::In>,
    /// Every item is timed by its worker, so every item is recorded.
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
    fn dispatched(&mut self, lineage: Lineage) {
        self.in_flight += 1;
        *self.roots.entry(lineage.root_index()).or_default() += 1;
    }

    async fn accept(&mut self, done: Done<S::In, S::Out>) -> Result<(), Closed> {
        if !self.ordered {
            return self.emit(done).await;
        }
        self.waiting.insert(done.seq, done);
        while let Some(done) = self.waiting.remove(&self.next_to_emit) {
            self.next_to_emit += 1;
            self.emit(done).await?;
        }
        Ok(())
    }

    async fn emit(&mut self, done: Done<S::In, S::Out>) -> Result<(), Closed> {
        self.in_flight -= 1;
        let root = done.lineage.root_index();
        if let Some(n) = self.roots.get_mut(&root) {
            *n -= 1;
            if *n == 0 {
                self.roots.remove(&root);
            }
        }
        self.counts.merge(&done.counts);
        self.latency.record(done.counts.busy);
        let mut produced = done.produced;
        let error = match done.outcome {
            Some(Outcome::Done) => {
                return deliver::<S>(
                    &mut produced,
                    done.lineage,
                    &mut self.outlet,
                    &mut self.counts,
                    &self.ctx,
                )
                .await;
            }
            Some(Outcome::Failed(error)) => {
                let message = error.to_string();
                self.ctx.item_failed(error);
                message
            }
            Some(Outcome::Panicked(panic)) => {
                format!("panic: {}", self.ctx.worker_panicked(panic).message)
            }
            // Its worker never started; the setup error is in the report.
            None => "its worker could not start".to_string(),
        };
        self.counts.failed += 1;
        if !self.failures.routes() {
            self.ctx.item_ended(done.lineage);
        }
        self.failures
            .route(
                done.lineage,
                done.original,
                error,
                &self.ctx,
                &mut self.counts,
            )
            .await?;
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
    /// The next item to process, once there is room in the window; `None` at end of input.
    async fn next_job(&self, ctx: &NodeCtx) -> Result<Option<Job<S::In>>, Closed> {
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
            let (lineage, item) = input.pending.pop_front().expect("checked above");
            output.dispatched(lineage);
            if input.pending.is_empty() {
                if let Some(watermark) = input.pending_watermark.take() {
                    output.input_watermark = watermark;
                }
            }
            let seq = input.next_seq;
            input.next_seq += 1;
            return Ok(Some(Job { seq, lineage, item }));
        }
    }

    /// Sends a processed item on (or holds it for the ones before it).
    async fn finished(&self, done: Done<S::In, S::Out>) -> Result<(), Closed> {
        let mut output = self.output.lock().await;
        let sent = match output.accept(done).await {
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

/// One worker: set up, take items until the input ends, finish, tear down.
async fn work<S: Stage, I: Inlet<S::In>>(
    mut stage: S,
    shared: Arc<Shared<S, I>>,
    ctx: NodeCtx,
    retry: Option<Retry<S::In>>,
    keep: Option<CopyInput<S::In>>,
) {
    let mut ready = set_up(&mut stage, &ctx).await;
    loop {
        let job = match shared.next_job(&ctx).await {
            Ok(Some(job)) => job,
            Ok(None) => break,
            // The run was aborted downstream; nothing is waiting for this worker.
            Err(Closed) => {
                stage.teardown().await;
                return;
            }
        };
        let mut produced = Vec::new();
        let mut counts = BatchCounts::default();
        let started = Instant::now();
        let (outcome, original) = if ready {
            let original = keep.map(|copy| copy(&job.item));
            let outcome = attempt(
                &mut stage,
                job.item,
                &mut produced,
                &ctx,
                retry,
                &mut counts,
            )
            .await;
            (Some(outcome), original)
        } else {
            (None, keep.map(|_| job.item))
        };
        // The panic counts against the restart budget when it is sent on; the copy that
        // panicked is suspect either way, so it starts afresh.
        let panicked = matches!(outcome, Some(Outcome::Panicked(_)));
        counts.busy = started.elapsed();
        let done = Done {
            seq: job.seq,
            lineage: job.lineage,
            outcome,
            produced,
            counts,
            original,
        };
        if shared.finished(done).await.is_err() {
            stage.teardown().await;
            return;
        }
        if panicked {
            ready = restart(&mut stage, &ctx).await;
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
    let shared = Arc::new(Shared {
        input: Mutex::new(Input {
            inlet,
            pending: VecDeque::new(),
            pending_watermark: None,
            next_seq: 0,
            ended: false,
        }),
        output: Mutex::new(Collector::<S> {
            outlet,
            ctx: ctx.clone(),
            ordered: workers.ordered,
            counts: BatchCounts::default(),
            waiting: BTreeMap::new(),
            next_to_emit: 0,
            in_flight: 0,
            roots: BTreeMap::new(),
            input_watermark: 0,
            finals: 0,
            failures: FailedItems::new(dead_letter),
            latency: LatencySampler::new(),
            closed: false,
        }),
        room: Notify::new(),
        drained: Notify::new(),
        window: workers.window(),
    });
    let handles: Vec<_> = copies
        .into_iter()
        .map(|stage| {
            let worker = work(stage, shared.clone(), ctx.clone(), retry, keep);
            if S::BLOCKING {
                // The node's span (see `Pipeline::spawn`) follows each worker to its thread.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| futures::executor::block_on(worker))
                })
            } else {
                tokio::spawn(worker)
            }
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
    let Collector {
        outlet,
        failures,
        mut counts,
        mut latency,
        ..
    } = shared.output.into_inner();
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
