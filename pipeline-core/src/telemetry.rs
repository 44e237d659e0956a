//! Node counters through the [`metrics`] facade, so that any exporter the program installs
//! (Prometheus, StatsD, OpenTelemetry, ...) sees them while the pipeline runs.
//!
//! Every metric carries a `node` label. Handles are taken when the run starts, so the
//! recorder must be installed before [`Pipeline::spawn`](crate::Pipeline::spawn) (or `run`);
//! without one, every call is a no-op. Runners publish once per batch, as for the report.
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `pipeline_items_received_total` | counter | items (zip: tuples) taken in |
//! | `pipeline_items_emitted_total` | counter | items sent downstream |
//! | `pipeline_items_filtered_total` | counter | items a filter dropped |
//! | `pipeline_items_failed_total` | counter | items that failed or panicked |
//! | `pipeline_items_retried_total` | counter | extra attempts made by `retry(n)` |
//! | `pipeline_items_dead_lettered_total` | counter | failed items sent to a dead-letter node |
//! | `pipeline_partial_tuples_dropped_total` | counter | incomplete tuples a zip dropped |
//! | `pipeline_worker_restarts_total` | counter | workers replaced after a panic |
//! | `pipeline_busy_seconds_total` | counter-like gauge | time running the node's code |
//! | `pipeline_starved_seconds_total` | counter-like gauge | time waiting for input |
//! | `pipeline_blocked_seconds_total` | counter-like gauge | time waiting for room downstream |
//! | `pipeline_queue_depth` | gauge | items waiting on the node's inputs |
//! | `pipeline_item_duration_seconds` | histogram | time per item (sampled for cheap stages) |
//!
//! The three time totals are gauges that only grow, because the facade's counters count
//! integers and seconds read better than nanoseconds in a dashboard.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use metrics::{Counter, Gauge, Histogram, Unit};

use crate::counts::BatchCounts;

/// Items (for a zip: complete tuples) a node took in. Counter.
pub const ITEMS_RECEIVED: &str = "pipeline_items_received_total";
/// Items a node sent downstream. Counter.
pub const ITEMS_EMITTED: &str = "pipeline_items_emitted_total";
/// Items a node dropped on purpose. Counter.
pub const ITEMS_FILTERED: &str = "pipeline_items_filtered_total";
/// Items whose processing failed or panicked. Counter.
pub const ITEMS_FAILED: &str = "pipeline_items_failed_total";
/// Extra attempts made by `retry(n)`. Counter.
pub const ITEMS_RETRIED: &str = "pipeline_items_retried_total";
/// Failed items sent to a dead-letter node. Counter.
pub const ITEMS_DEAD_LETTERED: &str = "pipeline_items_dead_lettered_total";
/// Incomplete tuples a zip dropped. Counter.
pub const PARTIAL_TUPLES_DROPPED: &str = "pipeline_partial_tuples_dropped_total";
/// Workers replaced after a panic. Counter.
pub const WORKER_RESTARTS: &str = "pipeline_worker_restarts_total";
/// Seconds a node's workers spent working. Counter.
pub const BUSY_SECONDS: &str = "pipeline_busy_seconds_total";
/// Seconds a node waited for input. Counter.
pub const STARVED_SECONDS: &str = "pipeline_starved_seconds_total";
/// Seconds a node waited for room downstream. Counter.
pub const BLOCKED_SECONDS: &str = "pipeline_blocked_seconds_total";
/// Items waiting on a node's input edges. Gauge.
pub const QUEUE_DEPTH: &str = "pipeline_queue_depth";
/// Seconds one item took in a node (sampled for cheap stages). Histogram.
pub const ITEM_DURATION: &str = "pipeline_item_duration_seconds";

/// One node's handles into the installed recorder.
pub(crate) struct Exported {
    received: Counter,
    emitted: Counter,
    filtered: Counter,
    failed: Counter,
    retried: Counter,
    dead_lettered: Counter,
    partial_tuples: Counter,
    restarts: Counter,
    busy: Gauge,
    starved: Gauge,
    blocked: Gauge,
    queue_depth: Gauge,
    item_duration: Histogram,
    /// A single-worker node is busy whenever it is not waiting, which its runner does not
    /// time directly: the busy time of a batch is the time since the last one, less the
    /// waits. Several workers time their own work.
    single_worker_since: Option<Mutex<Instant>>,
}

impl Exported {
    pub(crate) fn new(node: &'static str, workers: usize) -> Self {
        describe();
        Exported {
            received: metrics::counter!(ITEMS_RECEIVED, "node" => node),
            emitted: metrics::counter!(ITEMS_EMITTED, "node" => node),
            filtered: metrics::counter!(ITEMS_FILTERED, "node" => node),
            failed: metrics::counter!(ITEMS_FAILED, "node" => node),
            retried: metrics::counter!(ITEMS_RETRIED, "node" => node),
            dead_lettered: metrics::counter!(ITEMS_DEAD_LETTERED, "node" => node),
            partial_tuples: metrics::counter!(PARTIAL_TUPLES_DROPPED, "node" => node),
            restarts: metrics::counter!(WORKER_RESTARTS, "node" => node),
            busy: metrics::gauge!(BUSY_SECONDS, "node" => node),
            starved: metrics::gauge!(STARVED_SECONDS, "node" => node),
            blocked: metrics::gauge!(BLOCKED_SECONDS, "node" => node),
            queue_depth: metrics::gauge!(QUEUE_DEPTH, "node" => node),
            item_duration: metrics::histogram!(ITEM_DURATION, "node" => node),
            single_worker_since: (workers <= 1).then(|| Mutex::new(Instant::now())),
        }
    }

    pub(crate) fn publish(&self, c: &BatchCounts, now: Instant) {
        let add = |counter: &Counter, v: u64| {
            if v != 0 {
                counter.increment(v);
            }
        };
        add(&self.received, c.received);
        add(&self.emitted, c.emitted);
        add(&self.filtered, c.filtered);
        add(&self.failed, c.failed);
        add(&self.retried, c.retried);
        add(&self.dead_lettered, c.dead_lettered);
        let busy = match &self.single_worker_since {
            Some(since) => {
                let mut since = since.lock().unwrap_or_else(|e| e.into_inner());
                let batch = now.saturating_duration_since(std::mem::replace(&mut *since, now));
                batch.saturating_sub(c.starved).saturating_sub(c.blocked)
            }
            None => c.busy,
        };
        grow(&self.busy, busy);
        grow(&self.starved, c.starved);
        grow(&self.blocked, c.blocked);
    }

    pub(crate) fn queue_depth(&self, depth: u64) {
        self.queue_depth.set(depth as f64);
    }

    pub(crate) fn dropped_partial_tuples(&self, tuples: u64) {
        self.partial_tuples.increment(tuples);
    }

    pub(crate) fn restarted(&self) {
        self.restarts.increment(1);
    }

    /// Adds one timing: an item timed alone, or a batch timed whole (`nanos` is then its
    /// mean per item). One observation per timing, not per item it stands for: a recorder
    /// records a weighted sample as that many samples, one by one, which would cost per
    /// item what the sampling saves.
    pub(crate) fn item_duration(&self, nanos: u64) {
        self.item_duration.record(nanos as f64 / 1e9);
    }
}

fn grow(gauge: &Gauge, by: Duration) {
    if !by.is_zero() {
        gauge.increment(by.as_secs_f64());
    }
}

/// Tells the recorder what each metric means; recorders keep the first description.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        ITEMS_RECEIVED,
        Unit::Count,
        "Items (for a zip: complete tuples) a node took in"
    );
    describe_counter!(ITEMS_EMITTED, Unit::Count, "Items a node sent downstream");
    describe_counter!(
        ITEMS_FILTERED,
        Unit::Count,
        "Items a filter dropped on purpose"
    );
    describe_counter!(
        ITEMS_FAILED,
        Unit::Count,
        "Items whose processing failed or panicked"
    );
    describe_counter!(
        ITEMS_RETRIED,
        Unit::Count,
        "Extra attempts made by retry(n)"
    );
    describe_counter!(
        ITEMS_DEAD_LETTERED,
        Unit::Count,
        "Failed items sent to a dead-letter node"
    );
    describe_counter!(
        PARTIAL_TUPLES_DROPPED,
        Unit::Count,
        "Incomplete tuples a zip dropped"
    );
    describe_counter!(
        WORKER_RESTARTS,
        Unit::Count,
        "Workers replaced after a panic"
    );
    describe_gauge!(
        BUSY_SECONDS,
        Unit::Seconds,
        "Time spent running the node's own code (summed over workers)"
    );
    describe_gauge!(
        STARVED_SECONDS,
        Unit::Seconds,
        "Time spent waiting for input"
    );
    describe_gauge!(
        BLOCKED_SECONDS,
        Unit::Seconds,
        "Time spent waiting for room downstream (backpressure)"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        Unit::Count,
        "Items waiting on the node's input edges"
    );
    describe_histogram!(
        ITEM_DURATION,
        Unit::Seconds,
        "Time to process one item, one observation per timing (cheap stages are sampled: \
         one item in many, or a whole batch as its mean)"
    );
}
