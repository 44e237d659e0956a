//! Timing a node's items, for its latency histogram and to tell cheap items from slow ones
//! (slow ones make an inline node go back to a loop of its own, see `fuse`).

use std::time::{Duration, Instant};

use super::nanos;

/// Times items for the latency histogram. A slow stage has every item timed. While items
/// are cheap (under 10 µs), the gap between timed items doubles up to one in 256, so that
/// clock reads cost far less than the work they measure, yet an item turning slow is seen
/// within a few hundred items. Each timed item stands for the untimed ones before it (it is
/// recorded with their count), so slow items timed one by one do not skew the percentiles.
pub(crate) struct LatencySampler {
    /// Times since the last merge, in nanoseconds, each with the items it stands for.
    /// Merging records these few into the node's histogram, where merging a histogram of
    /// its own would walk all of its thousands of buckets.
    pub(super) samples: Vec<(u64, u64)>,
    pub(super) since_merge: Instant,
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
pub(super) const MERGE_AFTER_ITEMS: usize = 256;
pub(super) const MERGE_AFTER: Duration = Duration::from_millis(50);
pub(crate) const SLOW_ITEM: Duration = Duration::from_micros(10 * CLOCK_STRETCH);
/// An item this slow counts as a streak of slow items on its own (see `record`).
const VERY_SLOW_ITEM: Duration = Duration::from_millis(CLOCK_STRETCH);
/// What it counts as: more than any node waits for before it splits off.
const VERY_SLOW_STREAK: u32 = 8;

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
