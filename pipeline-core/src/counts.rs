//! What a node counts while it works on a batch, before it adds them to its shared counters
//! in one go (see `stats`).

use std::time::Duration;

/// Counts of one batch, added to the shared counters in one go.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchCounts {
    pub received: u64,
    pub emitted: u64,
    pub filtered: u64,
    /// Inputs an aggregate took into its state (see `Stage::ABSORBS`).
    pub absorbed: u64,
    pub failed: u64,
    pub expanded: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub busy: Duration,
    pub starved: Duration,
    pub blocked: Duration,
    /// CPU time of a node running inline, charged to it (see `stats::CpuCharge`).
    pub cpu: Duration,
    /// Items of an async stage whose code ran at least `LONG_POLL` without awaiting.
    pub long_polls: u64,
    pub longest_poll: Duration,
}

impl BatchCounts {
    /// Adds what a worker counted for one item.
    pub(crate) fn merge(&mut self, other: &BatchCounts) {
        self.received += other.received;
        self.emitted += other.emitted;
        self.filtered += other.filtered;
        self.absorbed += other.absorbed;
        self.failed += other.failed;
        self.expanded += other.expanded;
        self.retried += other.retried;
        self.dead_lettered += other.dead_lettered;
        self.busy += other.busy;
        self.starved += other.starved;
        self.blocked += other.blocked;
        self.long_polls += other.long_polls;
        self.cpu += other.cpu;
        self.longest_poll = self.longest_poll.max(other.longest_poll);
    }
}
