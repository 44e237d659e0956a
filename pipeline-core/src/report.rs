//! What a run did: counts per node, the accounting of every item, and how the run ended.

use std::fmt;
use std::time::Duration;

use crate::error::Failure;
use crate::spec::{FanIn, Role};

/// A run that ended in failure; the report says how far it got.
///
/// Its `source()` is the error the node's code returned, when there is one. Its `Debug`
/// (what `?` in `main` prints) is a short paragraph: the failure and the accounting; print
/// `report` for the whole table.
#[non_exhaustive]
pub struct RunError {
    /// Why the run ended early.
    pub failure: Failure,
    /// Where every item was when it did.
    pub report: Box<RunReport>,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pipeline stopped: {}", self.failure)
    }
}

impl fmt::Debug for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = self.report.accounting();
        write!(
            f,
            "pipeline stopped: {}\n{} source items: {} delivered, {} filtered, {} failed{} \
             (print the error's `report` for every node)",
            self.failure,
            a.source_items,
            a.delivered,
            a.filtered,
            a.failed,
            if a.is_balanced() {
                ""
            } else {
                "; NOT every item is accounted for"
            }
        )
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failure
            .error()
            .map(|error| error as &(dyn std::error::Error + 'static))
    }
}

/// Percentiles of the time a node took per item.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Latency {
    /// Half of the items took at most this long.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub p50: Duration,
    /// Nine items in ten took at most this long.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub p90: Duration,
    /// 99 items in 100 took at most this long.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub p99: Duration,
    /// The longest an item took.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub max: Duration,
    /// How many items were timed.
    pub samples: u64,
}

/// An edge between a node of this process and one in another (see `remote`).
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteEdgeReport {
    /// The node the edge starts at.
    pub from: String,
    /// The node the edge ends at.
    pub to: String,
    /// True when this process sent on the edge, false when it received.
    pub outbound: bool,
    /// Items stored for the other process (outbound) or taken from it (inbound).
    pub items: u64,
    /// Inbound messages delivered more than once: their first receiver died or was too slow
    /// to acknowledge them, so their processing may have happened twice.
    pub redelivered: u64,
    /// Inbound messages that were not this edge's items (foreign, from another build, or
    /// corrupt), sent to the edge's dead-letter subject.
    pub rejected: u64,
    /// Outbound items the server cannot store (larger than its maximum payload): failed
    /// here, with a note on the edge's dead-letter subject.
    #[cfg_attr(feature = "serde", serde(default))]
    pub failed: u64,
    /// Items left when the edge stopped early (its process failed or was stopped): inbound,
    /// held unacknowledged; outbound, not stored. The server delivers what they came from
    /// again, to whoever takes this process's place.
    #[cfg_attr(feature = "serde", serde(default))]
    pub pending: u64,
}

/// Counts of one node.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeReport {
    /// The node's name in the graph.
    pub name: String,
    /// Source, stage or sink.
    pub role: Role,
    /// How it combines several inputs.
    pub fan_in: FanIn,
    /// Workers running the node's code (see `workers(n)`).
    pub workers: usize,
    /// Incoming edges.
    pub inputs: usize,
    /// Outgoing edges.
    pub outputs: usize,
    /// Items (for a zip: complete tuples) taken in.
    pub received: u64,
    /// Items sent downstream (each counted once, whatever the fan-out).
    pub emitted: u64,
    /// Items a filter (or an empty flat-map result) dropped on purpose.
    pub filtered: u64,
    /// Items an aggregate (`stage::fold`, `stage::aggregate`) took into its state: they
    /// end there, and what the aggregate emits at the end counts as new items.
    #[cfg_attr(feature = "serde", serde(default))]
    pub absorbed: u64,
    /// Items whose processing returned an error or panicked.
    pub failed: u64,
    /// Extra outputs of a flat-map: outputs beyond one per input.
    pub expanded: u64,
    /// Incomplete tuples a zip dropped.
    pub dropped_partial_tuples: u64,
    /// The items those tuples held.
    pub dropped_partial_items: u64,
    /// Panics in the node's code (each item it panicked on also counts as failed).
    pub panics: u64,
    /// Extra attempts made by `retry(n)`.
    pub retried: u64,
    /// Failed items sent to the node's dead-letter node (they also count as failed here).
    pub dead_lettered: u64,
    /// Workers replaced after a panic.
    pub restarts: u64,
    /// Items on which an async stage's code ran 1 ms or more without awaiting (blocking an
    /// async worker), and the longest such stretch.
    pub long_polls: u64,
    /// The longest stretch an async stage's code ran without awaiting.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub longest_poll: Duration,
    /// How long processing one item took (sampled for cheap stages), if any item was timed.
    pub latency: Option<Latency>,
    /// Items waiting on its input edges when it last took a batch.
    pub queue_now: u64,
    /// The most items it saw waiting on its input edges.
    pub queue_peak: u64,
    /// From the node's start to its end.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub active: Duration,
    /// Running the node's own code (summed over its workers).
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub busy: Duration,
    /// Waiting for input.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub starved: Duration,
    /// Waiting for room downstream: backpressure from a slower node.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub blocked: Duration,
    /// CPU time on the node's own threads, for a node that ran on threads of its own (a
    /// blocking source, stage or sink, or the workers of one; the nodes it ran inline count
    /// in it); `None` otherwise. Near `busy` when the node's code computes, far below it
    /// when the code waits (sleeps, I/O).
    #[cfg_attr(feature = "serde", serde(default, with = "crate::seconds::option"))]
    pub cpu: Option<Duration>,
    /// The first error messages (at most 100).
    pub errors: Vec<String>,
    /// Every error counted by kind (see [`NodeError::kind`](crate::NodeError::kind)), the most frequent first.
    #[cfg_attr(feature = "serde", serde(default))]
    pub error_kinds: Vec<(String, u64)>,
}

impl NodeReport {
    /// A report of a node that did nothing yet: for tools and tests that build reports
    /// (the fields are public; more may come, so there is no literal to write).
    pub fn new(name: impl Into<String>, role: Role) -> Self {
        NodeReport {
            name: name.into(),
            role,
            fan_in: FanIn::Single,
            workers: 1,
            inputs: 0,
            outputs: 0,
            received: 0,
            emitted: 0,
            filtered: 0,
            absorbed: 0,
            failed: 0,
            expanded: 0,
            dropped_partial_tuples: 0,
            dropped_partial_items: 0,
            panics: 0,
            retried: 0,
            dead_lettered: 0,
            restarts: 0,
            long_polls: 0,
            longest_poll: Duration::ZERO,
            latency: None,
            queue_now: 0,
            queue_peak: 0,
            active: Duration::ZERO,
            busy: Duration::ZERO,
            starved: Duration::ZERO,
            blocked: Duration::ZERO,
            cpu: None,
            errors: Vec::new(),
            error_kinds: Vec::new(),
        }
    }

    /// The share of a run of length `wall` this node's workers spent busy. Measured against
    /// the whole run, not the node's own lifetime: a source that is done in a millisecond
    /// was not what the run waited for.
    pub fn utilisation(&self, wall: Duration) -> f64 {
        share(self.busy, wall.mul_f64(self.workers.max(1) as f64))
    }

    /// The share of a run of length `wall` this node waited for room downstream.
    pub fn blocked_share(&self, wall: Duration) -> f64 {
        share(self.blocked, wall)
    }

    /// Items that reached this sink and were consumed without error.
    pub fn delivered(&self) -> u64 {
        if self.role == Role::Sink {
            self.received - self.failed
        } else {
            0
        }
    }
}

/// Where every item went. Each item a source produced is followed through the graph:
/// a fan-out to `k` edges makes `k - 1` copies, a flat-map output beyond the first is an
/// extra item, a failed item sent to a dead-letter node goes on as a new item, and a zip of
/// `k` inputs joins `k` items into one tuple. Nothing is lost when
///
/// `source_items + fan_out_copies + expanded + dead_lettered - zip_joined
///     = delivered + filtered + failed + dropped_partial_items`
///
/// For a graph whose items each reach one sink once (such as the quickstart's, where the
/// fan-out's copies are joined again by the zip) this is
/// `source_items = delivered + filtered + failed + dropped partial tuples`.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Accounting {
    /// Items the sources produced.
    pub source_items: u64,
    /// Extra copies fan-outs made (`k - 1` per item for `k` edges).
    pub fan_out_copies: u64,
    /// Extra outputs of flat-maps.
    pub expanded: u64,
    /// Items zips joined into tuples (`k - 1` per tuple of `k`).
    pub zip_joined: u64,
    /// Failed items sent on to dead-letter nodes (each is also counted as failed).
    pub dead_lettered: u64,
    /// Items sinks consumed without error.
    pub delivered: u64,
    /// Items filters dropped on purpose.
    pub filtered: u64,
    /// Items aggregates took into their state.
    pub absorbed: u64,
    /// Items whose processing failed.
    pub failed: u64,
    /// Incomplete tuples zips dropped.
    pub dropped_partial_tuples: u64,
    /// The items those tuples held.
    pub dropped_partial_items: u64,
    /// Items taken from other processes (distributed pipelines).
    pub arrived: u64,
    /// Items handed to other processes (distributed pipelines).
    pub departed: u64,
    /// Items left for other processes to do again: not stored on an edge out of this
    /// process when its run stopped (distributed pipelines).
    pub handed_back: u64,
}

impl Accounting {
    /// Items that entered the graph (or this process's part of it), counting copies and
    /// flat-map extras.
    pub fn entered(&self) -> u64 {
        self.source_items + self.fan_out_copies + self.expanded + self.dead_lettered + self.arrived
            - self.zip_joined
    }

    /// Items whose journey ended here, one way or another, or went on to another process.
    pub fn ended(&self) -> u64 {
        self.delivered
            + self.filtered
            + self.absorbed
            + self.failed
            + self.dropped_partial_items
            + self.departed
            + self.handed_back
    }

    /// True when every item is accounted for.
    pub fn is_balanced(&self) -> bool {
        self.entered() == self.ended()
    }
}

/// The result of a run.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RunReport {
    /// One entry per node, in declaration order (for a distributed pipeline: the nodes this
    /// process ran).
    pub nodes: Vec<NodeReport>,
    /// Edges to and from nodes in other processes (distributed pipelines only).
    #[cfg_attr(feature = "serde", serde(default))]
    pub remote: Vec<RemoteEdgeReport>,
    /// The graph's edges, `(from, to)`, in the order written.
    pub edges: Vec<(String, String)>,
    /// Edges carrying a stage's failed items to its dead-letter node.
    pub dead_letter_edges: Vec<(String, String)>,
    /// Wall time of the run.
    #[cfg_attr(feature = "serde", serde(with = "crate::seconds"))]
    pub elapsed: Duration,
    /// Set when the run ended early; `run()` then returns it inside a [`RunError`].
    pub failure: Option<Failure>,
}

impl RunReport {
    /// The node named `name`.
    pub fn node(&self, name: &str) -> Option<&NodeReport> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Where every item went, summed over the nodes; see [`Accounting::is_balanced`].
    pub fn accounting(&self) -> Accounting {
        let mut a = Accounting::default();
        for n in &self.nodes {
            if n.role == Role::Source {
                // A source's failed items were accepted from outside but could not be
                // passed on (see `source::channel`): produced, and failed.
                a.source_items += n.emitted + n.failed;
            }
            a.fan_out_copies += n.emitted * (n.outputs.max(1) as u64 - 1);
            a.expanded += n.expanded;
            a.dead_lettered += n.dead_lettered;
            if n.fan_in == FanIn::Zip {
                a.zip_joined += n.received * (n.inputs as u64 - 1);
            }
            a.delivered += n.delivered();
            a.filtered += n.filtered;
            a.absorbed += n.absorbed;
            a.failed += n.failed;
            a.dropped_partial_tuples += n.dropped_partial_tuples;
            a.dropped_partial_items += n.dropped_partial_items;
        }
        for edge in &self.remote {
            if edge.outbound {
                a.departed += edge.items;
                a.failed += edge.failed;
                a.handed_back += edge.pending;
            } else {
                a.arrived += edge.items;
            }
        }
        a
    }

    /// Items consumed by all sinks.
    pub fn delivered(&self) -> u64 {
        self.accounting().delivered
    }
}

/// `part` as a share of `whole`, at most 1.
pub(crate) fn share(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        (part.as_secs_f64() / whole.as_secs_f64()).min(1.0)
    }
}
