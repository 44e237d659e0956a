//! Per-node counters. Runners count in locals and publish once per batch, so the hot path
//! takes no lock and touches no shared cache line per item.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

pub(crate) use crate::counts::BatchCounts;
use crate::error::NodeError;
use crate::report::NodeReport;
use crate::spec::NodeSpec;

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

/// Times items for the latency histogram. A slow stage has every item timed. While items
/// are cheap (under 10 µs), the gap between timed items doubles up to one in 256, so that
/// clock reads cost far less than the work they measure, yet an item turning slow is seen
/// within a few hundred items. Each timed item stands for the untimed ones before it (it is
/// recorded with their count), so slow items timed one by one do not skew the percentiles.
pub(crate) struct LatencySampler {
    /// Times since the last merge, in nanoseconds, each with the items it stands for.
    /// Merging records these few into the node's histogram, where merging a histogram of
    /// its own would walk all of its thousands of buckets.
    samples: Vec<(u64, u64)>,
    since_merge: Instant,
    /// Untimed items before the next timed one.
    countdown: u32,
    /// The current gap between timed items, for the weight of the next one; 0 while items
    /// are slow, and before the first.
    gap: u32,
    /// Timed items in a row that were slow.
    slow_streak: u32,
    /// Whether the caller times whole batches (a node running inline reads the clock
    /// between batches anyway): once its items have proven cheap, none is timed alone.
    whole_batches: bool,
}

const LONGEST_SAMPLE_GAP: u32 = 255;
/// Under Miri code runs thousands of times slower than compiled, so every item would look
/// slow and no node would run inline. What counts as slow stretches by this much there, so
/// fusion and its kernels (the unsafe code Miri checks) run as they do natively.
const CLOCK_STRETCH: u64 = if cfg!(miri) { 10_000 } else { 1 };
/// The countdown of a sampler whose caller times whole batches.
const UNTIMED: u32 = u32::MAX;
/// A sampler's items go into the node's histogram once it holds this many, or after this
/// long: snapshots stay fresh without taking the node's lock per batch.
const MERGE_AFTER_ITEMS: usize = 256;
const MERGE_AFTER: Duration = Duration::from_millis(50);
pub(crate) const SLOW_ITEM: Duration = Duration::from_micros(10 * CLOCK_STRETCH);
/// An item this slow counts as a streak of slow items on its own (see `record`).
const VERY_SLOW_ITEM: Duration = Duration::from_millis(CLOCK_STRETCH);
/// What it counts as: more than any node waits for before it splits off.
const VERY_SLOW_STREAK: u32 = 8;

/// When a source should send what it holds. Items that come slowly go on at once; fast
/// ones fill a batch. The clock is read only while the source is slow or the next node is
/// idle (when sending now would help latency), and then for a fast source only every few
/// pushes: a flush is due when pushes came at least 10 µs apart (the source is slow right
/// now) or the items held have waited 50 µs (a fast source feeding an idle node sends a
/// batch every 50 µs, not item by item).
///
/// There is no timer: a fast source that turns slow holds what it pushed since the last
/// check until the next one. So a source counts as fast only after 64 quick pushes in a
/// row (a few ticks of a timer that fired late arrive at once, and are no fast source),
/// and checks less often only the longer it stays fast.
pub(crate) struct Pace {
    last_check: Option<Instant>,
    holding_since: Option<Instant>,
    slow: bool,
    /// Pushes in a row that came less than 10 µs apart.
    quick_pushes: u32,
    /// Pushes since the clock was last read.
    unchecked: u32,
    /// Pushes between two clock reads while the source is fast.
    pushes_per_check: u32,
}

const QUICK_PUSHES_TO_BATCH: u32 = 64;
/// A fast source reads the clock once per this many pushes at first.
const MIN_PUSHES_PER_CHECK: u32 = 8;
/// ... and at most this many (a batch), which costs well under a nanosecond per item for
/// the clock: for sources as cheap as a range, a clock read per 64 items was still a tenth
/// of a diamond's time.
const MAX_PUSHES_PER_CHECK: u32 = 1024;

const LONGEST_HOLD: Duration = Duration::from_micros(50);

impl Pace {
    pub(crate) fn new() -> Self {
        Pace {
            last_check: None,
            holding_since: None,
            slow: true,
            quick_pushes: 0,
            unchecked: 0,
            pushes_per_check: MIN_PUSHES_PER_CHECK,
        }
    }

    /// Called after a push while items are held.
    pub(crate) fn flush_due(&mut self, downstream_idle: bool) -> bool {
        self.flush_due_after(1, downstream_idle)
    }

    /// How many pushes may go by before `flush_due_after` needs to see them (at least 1).
    pub(crate) fn pushes_before_check(&self, downstream_idle: bool) -> usize {
        if self.slow {
            1
        } else if !downstream_idle {
            usize::MAX
        } else {
            self.pushes_per_check.saturating_sub(self.unchecked).max(1) as usize
        }
    }

    /// [`flush_due`](Self::flush_due) after `pushes` pushes at once.
    pub(crate) fn flush_due_after(&mut self, pushes: usize, downstream_idle: bool) -> bool {
        // A busy next node takes the items when it gets to them; a fast source need not
        // look at the clock for it. A slow source sends each item anyway: the next node may
        // be a moment from idle, and the next push could be far off.
        self.unchecked = self
            .unchecked
            .saturating_add(u32::try_from(pushes).unwrap_or(u32::MAX));
        if !self.slow && (!downstream_idle || self.unchecked < self.pushes_per_check) {
            return false;
        }
        let pushes = std::mem::take(&mut self.unchecked);
        let now = Instant::now();
        let since_last = self.last_check.map_or(Duration::MAX, |last| now - last);
        let gap = since_last / pushes.max(1);
        self.last_check = Some(now);
        // One quick push after slow ones is often a late tick catching up: the source is
        // fast only after many in a row, or the item after them would wait for the next.
        if gap >= SLOW_ITEM {
            self.quick_pushes = 0;
            self.pushes_per_check = MIN_PUSHES_PER_CHECK;
        } else {
            self.quick_pushes = self.quick_pushes.saturating_add(pushes);
            if !self.slow && since_last < LONGEST_HOLD / 8 {
                // Still fast, with room to spare: the clock can wait twice as long.
                self.pushes_per_check = (self.pushes_per_check * 2).min(MAX_PUSHES_PER_CHECK);
            } else if since_last > LONGEST_HOLD / 4 {
                // Slower than it was, if not slow: held items would wait too long between
                // two looks at the clock.
                self.pushes_per_check = (self.pushes_per_check / 2).max(MIN_PUSHES_PER_CHECK);
            }
        }
        self.slow = self.quick_pushes < QUICK_PUSHES_TO_BATCH;
        let holding = now - *self.holding_since.get_or_insert(now);
        self.slow || holding >= LONGEST_HOLD
    }

    /// Called after a flush: nothing is held any more. The flush's own time (which
    /// includes stages running inline) is not a gap between items.
    pub(crate) fn flushed(&mut self) {
        self.holding_since = None;
        self.unchecked = 0;
        if self.last_check.is_some() {
            self.last_check = Some(Instant::now());
        }
    }
}

impl LatencySampler {
    pub(crate) fn new() -> Self {
        LatencySampler {
            samples: Vec::new(),
            since_merge: Instant::now(),
            // Until an item says otherwise, assume the stage is slow: the first items then
            // go on at once.
            countdown: 0,
            gap: 0,
            slow_streak: 0,
            whole_batches: false,
        }
    }

    /// A sampler that times no item alone: for a caller that times its batches itself and
    /// records them elsewhere.
    pub(crate) fn untimed() -> Self {
        LatencySampler {
            whole_batches: true,
            gap: LONGEST_SAMPLE_GAP,
            countdown: UNTIMED,
            ..LatencySampler::new()
        }
    }

    /// Says whether the caller times whole batches (see [`Self::record_batch`]).
    pub(crate) fn time_whole_batches(&mut self, on: bool) {
        self.whole_batches = on;
        self.countdown = if on && self.gap == LONGEST_SAMPLE_GAP {
            UNTIMED
        } else {
            self.countdown.min(self.gap)
        };
    }

    /// True when no item of the next batch will be timed alone: time the batch instead.
    pub(crate) fn times_whole_batches(&self) -> bool {
        self.whole_batches && self.countdown > LONGEST_SAMPLE_GAP
    }

    /// Records a batch of `items` that took `took` as that many items of its mean time.
    /// A slow mean means items are timed one by one again.
    pub(crate) fn record_batch(&mut self, took: Duration, items: usize) {
        let Some(items) = u32::try_from(items).ok().filter(|&n| n > 0) else {
            return;
        };
        let mean = nanos(took) / u64::from(items);
        self.samples.push((mean.max(1), u64::from(items)));
        if mean >= nanos(VERY_SLOW_ITEM) {
            self.slow_streak = self.slow_streak.saturating_add(1).max(VERY_SLOW_STREAK);
            self.gap = 0;
            self.countdown = 0;
        } else if mean >= nanos(SLOW_ITEM) {
            // One slow batch can be a thread that was preempted: it counts as one slow item.
            self.slow_streak = self.slow_streak.saturating_add(1);
            self.gap = 0;
            self.countdown = 0;
        } else {
            self.slow_streak = 0;
        }
    }

    /// How many of the next `n` items may go untimed, all of which the caller processes
    /// without asking; if fewer than `n`, the item after them is timed.
    pub(crate) fn untimed_up_to(&mut self, n: usize) -> usize {
        let untimed = (self.countdown as usize).min(n);
        // `untimed` is at most `countdown`, a u32.
        self.countdown -= untimed as u32;
        untimed
    }

    /// Whether to time the next item; if so, call `record` with its duration.
    #[inline]
    pub(crate) fn start(&mut self) -> Option<Instant> {
        if self.countdown == 0 {
            return Some(Instant::now());
        }
        self.countdown -= 1;
        None
    }

    /// True when the last timed item took long enough that every item is timed: such a
    /// stage hands items on one by one whenever the next node is idle, while a cheap stage
    /// fills its batches and sends them when its input runs dry.
    pub(crate) fn items_are_slow(&self) -> bool {
        self.gap == 0
    }

    /// Timed items in a row that were slow: one can be a cold start or a hiccup, a few
    /// in a row are the stage's nature.
    pub(crate) fn slow_streak(&self) -> u32 {
        self.slow_streak
    }

    pub(crate) fn record(&mut self, took: Duration) {
        let weight = u64::from(self.gap) + 1;
        if took >= VERY_SLOW_ITEM {
            // No cold cache or hiccup takes this long: the stage is slow by nature, and one
            // such item is streak enough to go on its own (a 40 ms stage running inline
            // for a second item delays everything behind it by 40 ms).
            self.slow_streak = self.slow_streak.saturating_add(1).max(VERY_SLOW_STREAK);
            self.gap = 0;
        } else if took >= SLOW_ITEM {
            self.slow_streak = self.slow_streak.saturating_add(1);
            self.gap = 0;
        } else {
            self.slow_streak = 0;
            self.gap = (self.gap * 2 + 1).min(LONGEST_SAMPLE_GAP);
        }
        self.countdown = if self.whole_batches && self.gap == LONGEST_SAMPLE_GAP {
            UNTIMED
        } else {
            self.gap
        };
        self.samples.push((nanos(took).max(1), weight));
    }
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

/// The CPU time the calling thread has used so far, where the platform says.
#[cfg(unix)]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` only writes the `timespec` it is given.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    (read == 0).then(|| Duration::new(now.tv_sec as u64, now.tv_nsec as u32))
}

thread_local! {
    /// CPU time this thread spent in nodes it ran inline, since the node that owns the
    /// thread began measuring (see [`CpuCharge`]).
    static INLINE_CPU: std::cell::Cell<Duration> = const { std::cell::Cell::new(Duration::ZERO) };
}

/// CPU time on a thread, split between the node that owns it and the nodes it runs inline,
/// so that each is charged its own: a CPU-bound stage running on its source's thread must
/// not look like a source that computes.
pub(crate) struct CpuCharge {
    started: Option<Duration>,
    inline_before: Duration,
}

impl CpuCharge {
    /// The owning node starts measuring its thread.
    pub(crate) fn start() -> Self {
        CpuCharge {
            started: thread_cpu_time(),
            inline_before: INLINE_CPU.get(),
        }
    }

    /// The owning node's share: the thread's CPU time since `start`, less what inline
    /// nodes were charged meanwhile.
    pub(crate) fn own(self) -> Option<Duration> {
        let (started, now) = (self.started?, thread_cpu_time()?);
        let inline = INLINE_CPU.get().saturating_sub(self.inline_before);
        Some(now.saturating_sub(started).saturating_sub(inline))
    }

    /// Charges `cpu` of this thread's time to a node running inline, in its counts (a
    /// chain's pass does so for every node and batch: no shared counter per pass).
    pub(crate) fn inline(counts: &mut BatchCounts, cpu: Duration) {
        counts.cpu += cpu;
        INLINE_CPU.set(INLINE_CPU.get() + cpu);
    }
}

/// The CPU time the calling thread has used so far, where the platform says.
#[cfg(not(unix))]
pub(crate) fn thread_cpu_time() -> Option<Duration> {
    None
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
        let busy = if spec.workers > 1 {
            Duration::from_nanos(get(&stats.busy_ns))
        } else {
            active.saturating_sub(starved).saturating_sub(blocked)
        };
        NodeReport {
            name: spec.name.to_string(),
            role: spec.role,
            fan_in: spec.fan_in,
            workers: spec.workers,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_source_reads_the_clock_less_often_but_a_slow_one_at_every_push() {
        let mut pace = Pace::new();
        assert_eq!(pace.pushes_before_check(true), 1, "slow until proven fast");
        // Runs of 1000 pushes nanoseconds apart: fast after a few checks.
        // A few quick pushes (late timer ticks arriving at once) are no fast source.
        for _ in 0..4 {
            pace.flush_due_after(1, true);
        }
        assert_eq!(pace.pushes_before_check(true), 1);
        // Runs of 1000 pushes nanoseconds apart are: it reads the clock less and less often.
        pace.flush_due_after(1000, true);
        assert_eq!(
            pace.pushes_before_check(true),
            MIN_PUSHES_PER_CHECK as usize
        );
        for _ in 0..10 {
            pace.flush_due_after(MAX_PUSHES_PER_CHECK as usize, true);
        }
        assert_eq!(
            pace.pushes_before_check(true),
            MAX_PUSHES_PER_CHECK as usize
        );
        assert_eq!(
            pace.pushes_before_check(false),
            usize::MAX,
            "a busy next node takes the items when it gets to them"
        );
        // It slows down, if not to slow items: it looks at the clock more often again.
        std::thread::sleep(LONGEST_HOLD);
        pace.flush_due_after(MAX_PUSHES_PER_CHECK as usize, true);
        assert_eq!(
            pace.pushes_before_check(true),
            MAX_PUSHES_PER_CHECK as usize / 2
        );
        // The source turns slow: the next check sees it and sends at once.
        std::thread::sleep(SLOW_ITEM * MAX_PUSHES_PER_CHECK);
        assert!(pace.flush_due_after(MAX_PUSHES_PER_CHECK as usize, true));
        assert_eq!(pace.pushes_before_check(true), 1);
    }

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
