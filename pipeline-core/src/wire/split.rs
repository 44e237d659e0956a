//! A node that left the thread it ran inline on for a core of its own (see `exec::lend`
//! for when it leaves), and how the node that fed it judges whether that paid and, if not,
//! takes it back: it stops sending, asks, and waits; the node runs what its edge still
//! holds, then gives itself back through the hand-off (`handoff`).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::handoff::{Adopted, Offer};

/// Test hooks: how many nodes split off and were asked back in this process, and a switch
/// that settles both decisions without measuring (the measures need a quiet machine with
/// two cores, which tests cannot count on). 0: measure; 1: split, and stay; 2: split, and
/// be asked back.
pub(crate) static SPLITS: AtomicU64 = AtomicU64::new(0);
static RECALLS: AtomicU64 = AtomicU64::new(0);
static FORCED: AtomicU8 = AtomicU8::new(0);

/// How many nodes split off, and how many of those were asked back, in this process (a
/// test hook).
#[doc(hidden)]
pub fn splits_and_recalls() -> (u64, u64) {
    (SPLITS.load(Relaxed), RECALLS.load(Relaxed))
}

/// Settles whether nodes split off without measuring: `Some(true)`, every node that may
/// split does, and stays; `Some(false)`, it does, and is asked back; `None`, measure (a test
/// hook, for the whole process).
#[doc(hidden)]
pub fn force_splits(split: Option<bool>) {
    FORCED.store(
        match split {
            None => 0,
            Some(true) => 1,
            Some(false) => 2,
        },
        Relaxed,
    );
}

/// What [`force_splits`] set: `Some(stays)` when forced.
pub(crate) fn forced_split() -> Option<bool> {
    match FORCED.load(Relaxed) {
        0 => None,
        forced => Some(forced == 1),
    }
}

/// A node that left the thread it ran inline on for a core of its own, while that thread
/// was busy handing it `rate_before` items a second.
pub(crate) struct Split<T> {
    pub(crate) recall: Arc<Recall<T>>,
    pub(crate) rate_before: f64,
}

/// How the node feeding a node that split off asks for it back: it stops sending, asks,
/// and waits; the node runs what the edge still holds, then gives itself to the feeding
/// node again (or drops the offer, to stay where it is).
pub(crate) struct Recall<T> {
    wanted: AtomicBool,
    answer: Mutex<Option<oneshot::Sender<Adopted<T>>>>,
}

impl<T: 'static> Recall<T> {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Recall {
            wanted: AtomicBool::new(false),
            answer: Mutex::new(None),
        })
    }

    /// The feeding node's side, once it sends no more on the edge: where the node will
    /// come back.
    pub(crate) fn ask(&self) -> oneshot::Receiver<Adopted<T>> {
        let (answer, back) = oneshot::channel();
        *self.answer.lock().unwrap_or_else(|e| e.into_inner()) = Some(answer);
        self.wanted.store(true, Ordering::Release);
        back
    }

    /// The node's side: whether it is asked back (checked once per batch).
    pub(crate) fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Acquire)
    }

    /// The node's side, once the edge is empty: the offer that gives it back to the
    /// feeding node.
    pub(crate) fn answer(&self) -> Option<Offer<T>> {
        let answer = self
            .answer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        // Err: the feeding node is gone; dropping the node there gives it back at once.
        Some(Box::new(move |node| drop(answer.send(node))))
    }
}

/// How long the feeding node watches a node that split off before it judges the split.
const TRIAL: Duration = Duration::from_millis(20);
/// How much faster items must go on after a split for it to stay.
const PAYS: f64 = 1.1;

/// What the feeding node knows of a node that split off, while it judges the split: which
/// of its edges the node is behind, and the items sent on since the first send after.
pub(crate) struct SplitOff<T> {
    pub(crate) target: usize,
    split: Split<T>,
    since: Option<Instant>,
    items: u64,
}

impl<T: 'static> SplitOff<T> {
    pub(crate) fn new(target: usize, split: Split<T>) -> Self {
        SplitOff {
            target,
            split,
            since: None,
            items: 0,
        }
    }

    /// After `n` more items went on (`queued` on the node's edge now; `batch` items make a
    /// batch there): once a window has passed, whether the items went on faster than they
    /// were handed to the node inline. `Some(true)`: the split paid, and stays;
    /// `Some(false)`: it did not (the node's part turned out the slower, or the feeding
    /// thread slowed down: items that own memory and are freed on another thread can cost
    /// their allocator more than the core gives), so ask the node back; `None`: too soon.
    pub(crate) fn judge(&mut self, n: usize, queued: usize, batch: usize) -> Option<bool> {
        let now = Instant::now();
        let since = *self.since.get_or_insert(now);
        self.items += n as u64;
        let wall = now.saturating_duration_since(since);
        let pays = match forced_split() {
            None if wall < TRIAL => return None,
            None => self.items as f64 / wall.as_secs_f64() >= self.split.rate_before * PAYS,
            // Asked back while its edge holds more than a batch, so that a test sees those
            // taken first.
            Some(false) if queued <= batch => return None,
            Some(stays) => stays,
        };
        if !pays {
            RECALLS.fetch_add(1, Relaxed);
            tracing::debug!(
                rate = self.items as f64 / wall.as_secs_f64(),
                before = self.split.rate_before,
                "a node that split off did not pay: asking it back"
            );
        }
        Some(pays)
    }

    /// Asks the node back (see [`Recall::ask`]).
    pub(crate) fn ask(self) -> oneshot::Receiver<Adopted<T>> {
        self.split.recall.ask()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_off(rate_before: f64) -> SplitOff<u64> {
        SplitOff::new(
            0,
            Split {
                recall: Recall::new(),
                rate_before,
            },
        )
    }

    #[test]
    fn a_split_is_judged_once_its_trial_is_over_by_how_fast_items_went_on() {
        // Items went on at thousands a second after the split: far more than 1 a second
        // before, so it stays; far fewer than 10^12, so it is asked back.
        for (rate_before, stays) in [(1.0, true), (1e12, false)] {
            let mut off = split_off(rate_before);
            assert_eq!(off.judge(100, 0, 256), None, "too soon to tell");
            std::thread::sleep(TRIAL + Duration::from_millis(5));
            assert_eq!(off.judge(100, 0, 256), Some(stays), "{rate_before}");
        }
    }

    #[test]
    fn asking_a_node_back_reaches_it_once() {
        let recall = Recall::<u64>::new();
        assert!(!recall.wanted());
        assert!(
            recall.answer().is_none(),
            "nothing to answer before the ask"
        );
        let mut back = recall.ask();
        assert!(recall.wanted());
        assert!(back.try_recv().is_err(), "the node has not answered yet");
        let answer = recall.answer().expect("the ask's answer");
        assert!(recall.answer().is_none(), "one answer per ask");
        // Dropping the answer declines: the feeding node hears it and keeps the channel.
        drop(answer);
        assert!(matches!(
            back.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
