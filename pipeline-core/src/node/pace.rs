//! When a source sends what it pushed (see [`Pace`]).

use std::time::{Duration, Instant};

use crate::stats::SLOW_ITEM;

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
}
