//! Watermarks across processes. Inside a process an edge's batches carry a watermark: no
//! item with a smaller lineage root will come on it any more, so a zip can drop a partial
//! tuple whose partner was filtered. Across processes the items of one edge come from
//! several producers, and a message lost in an outage is delivered again after newer ones,
//! so order says nothing. A producer stores *notes* on the edge's data subject instead:
//! how many items of each root it sent on the edge, for the roots that are done in it
//! (every root below its own watermark, and the roots from other processes that finished
//! in it, sent on or filtered: those it names with a count of 0, or not at all below the
//! watermark).
//!
//! The receiving process counts the items it gets per root. A root is done on the edge
//! once a note covers it and the receiver has all the items the notes count for it; the
//! watermark it hands its node is the lowest root not done. An item cannot then come
//! after its root is done, except a copy of one already received.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

/// What one note says.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Done {
    /// Every root below this is done; those not in `roots` sent nothing on the edge.
    pub below: u64,
    /// Roots done, with how many items of each this producer sent on the edge.
    pub roots: Vec<(u64, u32)>,
}

/// What a producer sent on the edge per root, until a note says so.
#[derive(Debug, Default)]
pub(crate) struct Sent(HashMap<u64, u32>);

impl Sent {
    pub(crate) fn one(&mut self, root: u64) {
        *self.0.entry(root).or_default() += 1;
    }

    /// A root that finished in this process: into the note, with its count.
    pub(crate) fn finished(&mut self, root: u64, note: &mut Done) {
        note.roots.push((root, self.0.remove(&root).unwrap_or(0)));
    }

    /// Every root below `below` is done: those that sent something go into the note.
    pub(crate) fn below(&mut self, below: u64, note: &mut Done) {
        note.below = note.below.max(below);
        let done: Vec<u64> = self.0.keys().copied().filter(|&r| r < below).collect();
        for root in done {
            self.finished(root, note);
        }
    }
}

/// The roots done on an edge, from the notes of its producers and the items received.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    /// Every root below this is done.
    below: u64,
    /// The highest range any note covered.
    covered: u64,
    /// Roots named done above `covered`.
    named: BTreeSet<u64>,
    /// Items still to come, per root a note counted.
    missing: BTreeMap<u64, u32>,
    /// Items received per root no note counted yet.
    received: HashMap<u64, u32>,
}

impl Watermark {
    /// An item of `root` arrived (not a copy of one already received).
    pub(crate) fn item(&mut self, root: u64) {
        if root < self.below {
            // Published again after the stream's duplicate window: nothing waits for it.
            return;
        }
        match self.missing.get_mut(&root) {
            Some(missing) => {
                *missing -= 1;
                if *missing == 0 {
                    self.missing.remove(&root);
                    self.advance();
                }
            }
            None => *self.received.entry(root).or_default() += 1,
        }
    }

    pub(crate) fn note(&mut self, done: &Done) {
        for &(root, count) in &done.roots {
            if root < self.below {
                continue;
            }
            let received = self.received.get(&root).copied().unwrap_or(0);
            if count > received {
                // Two producers may count the same item (one stored it, the other's copy
                // was dropped as a duplicate): the most any note counts.
                let missing = self.missing.entry(root).or_default();
                *missing = (*missing).max(count - received);
            }
            if root >= self.covered {
                self.named.insert(root);
            }
        }
        self.covered = self.covered.max(done.below);
        self.named = self.named.split_off(&self.covered);
        self.advance();
    }

    fn advance(&mut self) {
        let before = self.below;
        loop {
            if self.below < self.covered {
                // Every root of the range is done but those still missing items; the range
                // may be vast (a producer's last watermark is the largest root there is).
                match self.missing.range(self.below..self.covered).next() {
                    Some((&root, _)) => {
                        self.below = root;
                        break;
                    }
                    None => self.below = self.covered,
                }
            }
            if self.named.contains(&self.below) && !self.missing.contains_key(&self.below) {
                self.below += 1;
            } else {
                break;
            }
        }
        if self.below > before {
            let below = self.below;
            self.received.retain(|&root, _| root >= below);
        }
    }

    /// No item with a smaller root will come on the edge (but copies).
    pub(crate) fn get(&self) -> u64 {
        self.below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(below: u64, roots: &[(u64, u32)]) -> Done {
        Done {
            below,
            roots: roots.to_vec(),
        }
    }

    #[test]
    fn a_root_is_done_once_noted_and_all_its_items_arrived() {
        let mut w = Watermark::default();
        w.note(&done(0, &[(0, 1), (1, 0), (2, 2)]));
        assert_eq!(w.get(), 0, "the item of root 0 has not come");
        w.item(0);
        assert_eq!(w.get(), 2, "root 1 sent nothing; root 2 waits for two");
        w.item(2);
        w.item(2);
        assert_eq!(w.get(), 3);
    }

    #[test]
    fn items_may_come_before_their_note_and_notes_in_any_order() {
        let mut w = Watermark::default();
        w.item(1);
        w.note(&done(0, &[(1, 1)]));
        assert_eq!(w.get(), 0, "root 0 is not noted yet");
        w.note(&done(0, &[(0, 0)]));
        assert_eq!(w.get(), 2);
        // A range covers what no note named, unless a note counted items still to come.
        w.note(&done(0, &[(3, 1)]));
        w.note(&done(6, &[]));
        assert_eq!(w.get(), 3, "the item of root 3 has not come");
        w.item(3);
        assert_eq!(w.get(), 6);
    }

    #[test]
    fn the_last_watermark_of_a_producer_covers_everything_at_once() {
        let mut w = Watermark::default();
        w.note(&done(0, &[(7, 1)]));
        w.note(&done(u64::MAX, &[]));
        assert_eq!(w.get(), 7);
        w.item(7);
        assert_eq!(w.get(), u64::MAX);
    }

    #[test]
    fn two_producers_counting_one_item_wait_for_one() {
        let mut w = Watermark::default();
        w.note(&done(0, &[(0, 1)]));
        w.note(&done(0, &[(0, 1)]));
        w.item(0);
        assert_eq!(w.get(), 1);
    }

    #[test]
    fn a_producer_counts_what_it_sent_per_root() {
        let mut sent = Sent::default();
        let mut note = Done::default();
        sent.one(4);
        sent.one(4);
        sent.one(9);
        sent.finished(4, &mut note);
        sent.finished(5, &mut note);
        sent.below(10, &mut note);
        assert_eq!(note, done(10, &[(4, 2), (5, 0), (9, 1)]));
    }
}
