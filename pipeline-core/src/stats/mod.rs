//! Per-node counters. Runners count in locals and publish once per batch, so the hot path
//! takes no lock and touches no shared cache line per item.

mod cpu;
mod sampler;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub(crate) use crate::counts::BatchCounts;
use crate::error::NodeError;
use crate::report::NodeReport;
use crate::spec::NodeSpec;
pub(crate) use cpu::{CpuCharge, thread_cpu_time};
pub(crate) use sampler::{LatencySampler, SLOW_ITEM};
use sampler::{MERGE_AFTER, MERGE_AFTER_ITEMS};

/// How many error messages a node keeps for the report; the count is always exact.
pub const KEPT_ERRORS: usize = 100;

#[derive(Default)]
pub(crate) struct NodeStats {
    /// The same counts through the `metrics` facade.
    #[cfg(feature = "metrics")]
    exported: Option<crate::telemetry::Exported>,
    pub received: AtomicU64,
    pub emitted: AtomicU64,
    pub filtered: AtomicU64,
    pub absorbed: AtomicU64,
    pub failed: AtomicU64,
    pub expanded: AtomicU64,
    pub dropped_partial_tuples: AtomicU64,
    pub dropped_partial_items: AtomicU64,
    pub panics: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub restarts: AtomicU64,
    /// Nanoseconds running user code; measured by the workers of a `workers(n)` node, and
    /// for one worker derived from the others (active - starved - blocked).
    pub busy_ns: AtomicU64,
    /// Nanoseconds of CPU time on the node's own threads, if it ran on any (see
    /// [`thread_cpu_time`]).
    pub cpu_ns: AtomicU64,
    cpu_measured: std::sync::atomic::AtomicBool,
    /// Nanoseconds waiting for input.
    pub starved_ns: AtomicU64,
    /// Nanoseconds waiting for room downstream (backpressure).
    pub blocked_ns: AtomicU64,
    /// Items waiting on the node's input edges when it last took a batch, and the most seen.
    pub queue_now: AtomicU64,
    pub long_polls: AtomicU64,
    pub longest_poll_ns: AtomicU64,
    pub queue_peak: AtomicU64,
    /// Per-item processing time, in nanoseconds; runners merge into it once per batch.
    latency: Mutex<Option<Histogram<u64>>>,
    /// Items actually timed (the histogram counts each with the untimed ones it stands for).
    latency_samples: AtomicU64,
    started: OnceLock<Instant>,
    finished: OnceLock<Instant>,
    /// How many items a source will produce, when it knows (an iterator of known length).
    expected: OnceLock<u64>,
    errors: Mutex<Vec<String>>,
    error_kinds: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// An async stage that runs this long without awaiting holds up an async worker thread,
/// and every other async node waiting for it.
pub const LONG_POLL: Duration = Duration::from_millis(1);

impl NodeStats {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(node: &'static str, workers: usize) -> Self {
        NodeStats {
            #[cfg(feature = "metrics")]
            exported: Some(crate::telemetry::Exported::new(node, workers)),
            ..NodeStats::default()
        }
    }

    /// Adds the CPU time one of the node's own threads spent on it.
    pub(crate) fn add_cpu(&self, cpu: Duration) {
        self.cpu_ns.fetch_add(nanos(cpu), Relaxed);
        self.cpu_measured.store(true, Relaxed);
    }

    /// The CPU time of the node's own threads, if it ran on any.
    pub(crate) fn cpu(&self) -> Option<Duration> {
        self.cpu_measured
            .load(Relaxed)
            .then(|| Duration::from_nanos(self.cpu_ns.load(Relaxed)))
    }

    pub(crate) fn publish(&self, c: &mut BatchCounts) {
        self.publish_at(c, None);
    }

    /// `publish`, given the time if the caller just read the clock.
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn publish_at(&self, c: &mut BatchCounts, now: Option<Instant>) {
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.publish(c, now.unwrap_or_else(Instant::now));
        }
        // Inputs first, in this order, and released: see `NodeStats::report`.
        let add = |a: &AtomicU64, v: u64| {
            if v != 0 {
                a.fetch_add(v, std::sync::atomic::Ordering::Release);
            }
        };
        add(&self.received, c.received);
        add(&self.emitted, c.emitted);
        add(&self.filtered, c.filtered);
        add(&self.absorbed, c.absorbed);
        add(&self.failed, c.failed);
        add(&self.expanded, c.expanded);
        add(&self.retried, c.retried);
        add(&self.dead_lettered, c.dead_lettered);
        add(&self.busy_ns, nanos(c.busy));
        add(&self.starved_ns, nanos(c.starved));
        add(&self.blocked_ns, nanos(c.blocked));
        add(&self.long_polls, c.long_polls);
        if !c.cpu.is_zero() {
            self.add_cpu(c.cpu);
        }
        self.longest_poll_ns
            .fetch_max(nanos(c.longest_poll), Relaxed);
        *c = BatchCounts::default();
    }

    /// Records the input queue's depth; called once per batch taken.
    pub(crate) fn observe_queue(&self, depth: usize) {
        let depth = depth as u64;
        self.queue_now.store(depth, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.queue_depth(depth);
        }
        self.queue_peak.fetch_max(depth, Relaxed);
    }

    /// Adds what the sampler timed to the node's histogram. Merging takes the node's lock,
    /// so it waits until the sampler holds a fair number of samples or some time has
    /// passed; `force` (at end of stream) merges whatever there is.
    pub(crate) fn merge_latency(&self, sampler: &mut LatencySampler) {
        self.merge_latency_if(sampler, false, None);
    }

    /// `merge_latency`, given the time the caller just read.
    pub(crate) fn merge_latency_at(&self, sampler: &mut LatencySampler, now: Instant) {
        self.merge_latency_if(sampler, false, Some(now));
    }

    pub(crate) fn merge_latency_now(&self, sampler: &mut LatencySampler) {
        self.merge_latency_if(sampler, true, None);
    }

    fn merge_latency_if(&self, sampler: &mut LatencySampler, force: bool, now: Option<Instant>) {
        if sampler.samples.is_empty() {
            return;
        }
        let now = now.unwrap_or_else(Instant::now);
        if !force
            && sampler.samples.len() < MERGE_AFTER_ITEMS
            && now.saturating_duration_since(sampler.since_merge) < MERGE_AFTER
        {
            return;
        }
        sampler.since_merge = now;
        self.latency_samples
            .fetch_add(sampler.samples.len() as u64, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            for &(nanos, _weight) in &sampler.samples {
                exported.item_duration(nanos);
            }
        }
        let mut shared = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let histogram = shared.get_or_insert_with(latency_histogram);
        for (nanos, weight) in sampler.samples.drain(..) {
            record(histogram, nanos, weight);
        }
    }

    /// Processing time percentiles so far, if any item was timed.
    pub(crate) fn latency(&self) -> Option<crate::report::Latency> {
        let shared = self.latency.lock().unwrap_or_else(|e| e.into_inner());
        let h = shared.as_ref().filter(|h| !h.is_empty())?;
        let at = |q: f64| Duration::from_nanos(h.value_at_quantile(q));
        Some(crate::report::Latency {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: Duration::from_nanos(h.max()),
            samples: self.latency_samples.load(Relaxed),
        })
    }

    pub(crate) fn dropped_partial(&self, tuples: u64, items: u64) {
        self.dropped_partial_tuples.fetch_add(tuples, Relaxed);
        self.dropped_partial_items.fetch_add(items, Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.dropped_partial_tuples(tuples);
        }
    }

    /// Counts a worker replaced after a panic, if the node's `budget` allows one more:
    /// `Ok` with the restarts so far, or `Err` with those done when the budget is spent
    /// (which are all there will be: the report and the error must say the same number).
    pub(crate) fn restarted(&self, budget: u64) -> Result<u64, u64> {
        let before = self
            .restarts
            .fetch_update(Relaxed, Relaxed, |done| (done < budget).then_some(done + 1))?;
        #[cfg(feature = "metrics")]
        if let Some(exported) = &self.exported {
            exported.restarted();
        }
        Ok(before + 1)
    }

    pub(crate) fn start(&self) {
        let _ = self.started.set(Instant::now());
    }

    pub(crate) fn finish(&self) {
        let _ = self.finished.set(Instant::now());
    }

    /// Time a source waited for input from outside the pipeline.
    pub(crate) fn add_starved(&self, waited: Duration) {
        self.starved_ns
            .fetch_add(nanos(waited), std::sync::atomic::Ordering::Release);
    }

    /// A source says how many items it will produce.
    pub(crate) fn expect(&self, items: u64) {
        let _ = self.expected.set(items);
    }

    pub(crate) fn expected(&self) -> Option<u64> {
        self.expected.get().copied()
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.finished.get().is_some()
    }

    /// From the node's start to its end (or to now, while it runs).
    pub(crate) fn active(&self) -> Duration {
        match (self.started.get(), self.finished.get()) {
            (Some(start), Some(end)) => end.duration_since(*start),
            (Some(start), None) => start.elapsed(),
            (None, _) => Duration::ZERO,
        }
    }

    /// Keeps the error's message (the first [`KEPT_ERRORS`]) and counts it by kind;
    /// returns the kind, and how many errors the node has had of it, this one included.
    pub(crate) fn record_error(&self, error: &NodeError) -> (String, u64) {
        let mut errors = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errors.len() < KEPT_ERRORS {
            errors.push(error.to_string());
        }
        drop(errors);
        let mut kinds = self.error_kinds.lock().unwrap_or_else(|e| e.into_inner());
        let kind = error.kind();
        let count = match kinds.get_mut(&kind) {
            Some(count) => {
                *count += 1;
                *count
            }
            None => {
                kinds.insert(kind.clone(), 1);
                1
            }
        };
        (kind, count)
    }

    /// Errors by kind, the most frequent first.
    pub(crate) fn error_kinds(&self) -> Vec<(String, u64)> {
        let kinds = self.error_kinds.lock().unwrap_or_else(|e| e.into_inner());
        let mut kinds: Vec<(String, u64)> = kinds.iter().map(|(k, n)| (k.clone(), *n)).collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        kinds
    }

    pub(crate) fn errors(&self) -> Vec<String> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn get(a: &AtomicU64) -> u64 {
        // Pairs with `publish`'s release: what a count shows, the counts published before
        // it show too.
        a.load(std::sync::atomic::Ordering::Acquire)
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Counts of one edge to or from another process (see `remote`).
pub(crate) struct RemoteEdgeStats {
    pub from: &'static str,
    pub to: &'static str,
    /// True when this process publishes on the edge.
    pub outbound: bool,
    /// Items stored in the stream (outbound) or handed to the node (inbound).
    pub items: AtomicU64,
    /// Messages delivered more than once (their first receiver did not acknowledge them).
    pub redelivered: AtomicU64,
    /// Messages that were not this edge's items, sent to the dead-letter subject.
    pub rejected: AtomicU64,
    /// Outbound items the server cannot store (larger than its maximum payload).
    pub failed: AtomicU64,
    /// Items left when the edge stopped: inbound, held unacknowledged; outbound, not stored.
    /// Both are delivered again to whoever takes this process's place.
    pub pending: AtomicU64,
}

impl RemoteEdgeStats {
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn new(from: &'static str, to: &'static str, outbound: bool) -> Self {
        RemoteEdgeStats {
            from,
            to,
            outbound,
            items: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }
}

/// A node's histogram of item durations: from 1 ns, to 2 significant digits. It is sized
/// for items up to about 4 µs at first (5 kB) and grows when a slower one comes (to an
/// hour, it is a few kB more): every node has one, made when the node first merges its
/// samples, often as it ends. Sized for an hour from the start they were a third of a short
/// run's set-up time, and sized for a millisecond, most of the time twenty fused nodes
/// took to end one after the other.
fn latency_histogram() -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, 1 << 12, 2).expect("valid histogram bounds");
    histogram.auto(true);
    histogram
}

/// Records `weight` items of `nanos` each, growing the histogram if it must (or, if it
/// cannot, counting them at its largest value).
fn record(histogram: &mut Histogram<u64>, nanos: u64, weight: u64) {
    if histogram.record_n(nanos, weight).is_err() {
        histogram.saturating_record_n(nanos, weight);
    }
}

impl NodeStats {
    /// The node's counts as its report shows them, read now.
    pub(crate) fn report(&self, spec: &NodeSpec, inputs: usize, outputs: usize) -> NodeReport {
        let stats = self;
        let get = NodeStats::get;
        // Outcomes before inputs: a node publishes its inputs first, so a snapshot taken
        // while it publishes never shows more outcomes than inputs.
        let (emitted, filtered, absorbed, failed, expanded) = (
            get(&stats.emitted),
            get(&stats.filtered),
            get(&stats.absorbed),
            get(&stats.failed),
            get(&stats.expanded),
        );
        let received = get(&stats.received);
        let active = stats.active();
        let starved = Duration::from_nanos(get(&stats.starved_ns));
        let blocked = Duration::from_nanos(get(&stats.blocked_ns));
        // Several workers time their own work; one worker is busy whenever it is not waiting.
        let busy = if spec.config.worker_count() > 1 {
            Duration::from_nanos(get(&stats.busy_ns))
        } else {
            active.saturating_sub(starved).saturating_sub(blocked)
        };
        NodeReport {
            name: spec.name.to_string(),
            role: spec.role,
            fan_in: spec.fan_in,
            workers: spec.config.worker_count(),
            inputs,
            outputs,
            received,
            emitted,
            filtered,
            absorbed,
            failed,
            expanded,
            dropped_partial_tuples: get(&stats.dropped_partial_tuples),
            dropped_partial_items: get(&stats.dropped_partial_items),
            panics: get(&stats.panics),
            retried: get(&stats.retried),
            dead_lettered: get(&stats.dead_lettered),
            restarts: get(&stats.restarts),
            latency: stats.latency(),
            long_polls: get(&stats.long_polls),
            longest_poll: Duration::from_nanos(get(&stats.longest_poll_ns)),
            queue_now: get(&stats.queue_now),
            queue_peak: get(&stats.queue_peak),
            active,
            busy,
            starved,
            blocked,
            cpu: stats.cpu(),
            errors: stats.errors(),
            error_kinds: stats.error_kinds(),
        }
    }
}

/// Logs a failed item at WARN while its kind is new in the node (the first ten), then at
/// the 100th, 1 000th, ... with the count, and the rest at DEBUG: a job with thousands of
/// bad lines says so in a few lines, not thousands.
pub(crate) fn log_failure(node: &str, error: &NodeError, kind: String, of_its_kind: u64) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latency_histogram_grows_for_slow_items() {
        let mut histogram = latency_histogram();
        record(&mut histogram, 3, 10);
        let hour = 3_600_000_000_000u64;
        record(&mut histogram, hour, 1);
        assert_eq!(histogram.len(), 11);
        assert!(histogram.max() >= hour * 99 / 100, "{}", histogram.max());
        assert_eq!(histogram.value_at_quantile(0.5), 3);
    }
}
