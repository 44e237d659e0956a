//! A stage run by several workers (`workers(n)` in the DSL).
//!
//! The node's task is a dispatcher and a collector. It hands items one at a time to a queue
//! that every worker pulls from, so whichever worker is free takes the next item (load
//! balancing, not round-robin). Workers are threads for a blocking stage and async tasks
//! otherwise; each owns a copy of the stage. Results come back to the collector, which sends
//! them on as they come, or in input order with `ordered`.
//!
//! At most `window` items are between dispatch and emission, which bounds both the reorder
//! buffer and what a crash could leave in flight. The collector keeps the lineage roots of
//! those items: the output watermark is the smallest of them, so a zip downstream still knows
//! when a partial tuple can never complete, however the workers reorder items.

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

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
    /// Items between dispatch and emission: enough to keep every worker busy while the
    /// collector is sending, and for a slow item not to stall ordered output at once.
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

/// What a worker sends back: one processed item, or at exit what `finish` emitted.
enum Report<I, O> {
    Item(Done<I, O>),
    Final(Vec<O>),
}

/// One worker: set up, take jobs until the queue closes, finish, tear down.
async fn work<S: Stage, F, Fut>(
    mut stage: S,
    mut next_job: F,
    results: mpsc::UnboundedSender<Report<S::In, S::Out>>,
    ctx: NodeCtx,
    retry: Option<Retry<S::In>>,
    keep: Option<CopyInput<S::In>>,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<Job<S::In>>>,
{
    let mut ready = set_up(&mut stage, &ctx).await;
    while let Some(job) = next_job().await {
        let mut produced = Vec::new();
        let mut counts = BatchCounts::default();
        let started = std::time::Instant::now();
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
        // The collector counts a panic against the restart budget; the copy that panicked
        // is suspect either way, so it starts afresh.
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
        if results.send(Report::Item(done)).is_err() {
            break;
        }
        if panicked {
            ready = restart(&mut stage, &ctx).await;
        }
    }
    if ready {
        let _ = results.send(Report::Final(finish(&mut stage, &ctx).await));
    }
    stage.teardown().await;
}

/// The shared queue the workers pull jobs from.
enum Jobs<T> {
    Threads(std::sync::mpsc::Sender<Job<T>>),
    Tasks(mpsc::UnboundedSender<Job<T>>),
}

impl<T> Jobs<T> {
    fn send(&self, job: Job<T>) {
        // Workers only stop when this sender is dropped, so sending cannot fail.
        let _ = match self {
            Jobs::Threads(tx) => tx.send(job).map_err(drop),
            Jobs::Tasks(tx) => tx.send(job).map_err(drop),
        };
    }
}

type Finished = Vec<tokio::task::JoinHandle<()>>;

fn start_workers<S: Stage>(
    copies: Vec<S>,
    results: mpsc::UnboundedSender<Report<S::In, S::Out>>,
    ctx: &NodeCtx,
    retry: Option<Retry<S::In>>,
    keep: Option<CopyInput<S::In>>,
) -> (Jobs<S::In>, Finished) {
    if S::BLOCKING {
        let (tx, rx) = std::sync::mpsc::channel::<Job<S::In>>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = copies
            .into_iter()
            .map(|stage| {
                let (rx, results, ctx) = (rx.clone(), results.clone(), ctx.clone());
                // Whoever is free waits on the queue; the others wait for the lock.
                let next_job = move || {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv().ok();
                    std::future::ready(job)
                };
                tokio::task::spawn_blocking(move || {
                    futures::executor::block_on(work(stage, next_job, results, ctx, retry, keep))
                })
            })
            .collect();
        (Jobs::Threads(tx), handles)
    } else {
        let (tx, rx) = mpsc::unbounded_channel::<Job<S::In>>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let handles = copies
            .into_iter()
            .map(|stage| {
                let (rx, results, ctx) = (rx.clone(), results.clone(), ctx.clone());
                let next_job = move || {
                    let rx = rx.clone();
                    async move { rx.lock().await.recv().await }
                };
                tokio::spawn(work(stage, next_job, results, ctx, retry, keep))
            })
            .collect();
        (Jobs::Tasks(tx), handles)
    }
}

/// Sends results on, in input order when asked, and tracks what is still in flight.
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
    /// The watermark of the last input batch whose items have all been dispatched.
    input_watermark: u64,
    /// Items the workers emitted at end of stream so far (they are numbered for lineage).
    finals: u64,
    failures: FailedItems<S::In>,
    /// Every item is timed by its worker, so every item is recorded.
    latency: LatencySampler,
}

impl<S: Stage> Collector<S> {
    fn dispatched(&mut self, lineage: Lineage) {
        self.in_flight += 1;
        *self.roots.entry(lineage.root_index()).or_default() += 1;
    }

    async fn accept(&mut self, report: Report<S::In, S::Out>) -> Result<(), Closed> {
        let done = match report {
            Report::Item(done) => done,
            Report::Final(items) => {
                return deliver_final(items, &mut self.finals, &mut self.outlet, &mut self.counts)
                    .await;
            }
        };
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
}

/// Runs a stage on one worker per copy in `copies`.
pub(crate) async fn run_with_workers<S: Stage, I: Inlet<S::In>>(
    copies: Vec<S>,
    ordered: bool,
    mut inlet: I,
    outlet: Outlet<S::Out>,
    ctx: NodeCtx,
    policy: ErrorPolicy<S::In>,
) {
    let workers = Workers {
        count: copies.len(),
        ordered,
    };
    let window = workers.window();
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let ErrorPolicy { retry, dead_letter } = policy;
    let keep = dead_letter.as_ref().map(|d| d.copy);
    let (jobs, handles) = start_workers(copies, results_tx, &ctx, retry, keep);
    let mut c = Collector::<S> {
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
    };
    let mut pending: VecDeque<(Lineage, S::In)> = VecDeque::new();
    let mut pending_watermark = None;
    let mut next_seq = 0u64;
    let mut input_ended = false;

    let result: Result<(), Closed> = async {
        loop {
            while c.in_flight < window {
                let Some((lineage, item)) = pending.pop_front() else {
                    break;
                };
                c.dispatched(lineage);
                jobs.send(Job {
                    seq: next_seq,
                    lineage,
                    item,
                });
                next_seq += 1;
            }
            if pending.is_empty() {
                if let Some(watermark) = pending_watermark.take() {
                    c.input_watermark = watermark;
                }
            }
            if input_ended && c.in_flight == 0 {
                break;
            }
            let take_input = !input_ended && pending.is_empty() && c.in_flight < window;
            // With nothing in flight, the workers are idle for want of input.
            let starving_since = (c.in_flight == 0).then(std::time::Instant::now);
            tokio::select! {
                biased;
                done = results.recv() => {
                    // The workers hold senders until `jobs` is dropped, after this loop.
                    if let Some(done) = done {
                        c.accept(done).await?;
                    }
                }
                batch = inlet::next(&mut inlet), if take_input => match batch {
                    Some(batch) => {
                        ctx.stats.observe_queue(inlet.queued());
                        c.counts.received += batch.len() as u64;
                        pending_watermark = Some(batch.watermark);
                        pending.extend(batch.items);
                    }
                    None => input_ended = true,
                },
            }
            if let Some(since) = starving_since {
                c.counts.starved += since.elapsed();
            }
            while let Ok(done) = results.try_recv() {
                c.accept(done).await?;
            }
            record_dropped(&mut inlet, &ctx);
            let watermark = c.watermark();
            c.outlet.advance(watermark);
            c.failures.advance(watermark);
            c.outlet.flush().await?;
            c.failures.flush().await?;
            c.counts.blocked += c.outlet.take_blocked();
            ctx.stats.publish(&mut c.counts);
            ctx.stats.merge_latency(&mut c.latency);
        }
        // Closing the queue lets the workers finish; what they emit then comes last.
        drop(jobs);
        while let Some(report) = results.recv().await {
            c.accept(report).await?;
        }
        ctx.stats.publish(&mut c.counts);
        ctx.stats.merge_latency_now(&mut c.latency);
        c.failures.close().await?;
        c.outlet.close().await
    }
    .await;
    for handle in handles {
        let _ = handle.await;
    }
    if result.is_err() {
        tracing::debug!(node = ctx.name, "downstream closed: the run was aborted");
    }
}
