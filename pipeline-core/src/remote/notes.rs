//! Watermarks across processes. Inside a process an edge's batches carry a watermark: no
//! item with a smaller lineage root will come on it any more, so a zip can drop a partial
//! tuple whose partner was filtered. Across processes the items of one edge arrive from
//! several producers in any order, so a producer sends *notes* on the edge's data subject
//! instead: every root below its own watermark is done, and so are the roots listed (those
//! that came from other processes and finished in it, whether they went out on the edge or
//! were filtered). A note follows, in the stream, every item it covers.
//!
//! The receiving process folds the notes of all producers into one watermark (the lowest
//! root not yet done), which it hands to its node with the items.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What one note says.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Done {
    /// Every root below this is done.
    pub below: u64,
    /// These roots are done too.
    pub roots: Vec<u64>,
}

/// The roots done on an edge, from the notes of its producers.
#[derive(Debug, Default)]
pub(crate) struct Watermark {
    /// Every root below this is done.
    below: u64,
    /// Roots done above `below`.
    above: BTreeSet<u64>,
}

impl Watermark {
    pub(crate) fn note(&mut self, done: &Done) {
        self.below = self.below.max(done.below);
        self.above
            .extend(done.roots.iter().copied().filter(|&r| r >= self.below));
        while self.above.remove(&self.below) {
            self.below += 1;
        }
        // Roots a range note covered.
        self.above = self.above.split_off(&self.below);
    }

    /// No item with a smaller root will come on the edge.
    pub(crate) fn get(&self) -> u64 {
        self.below
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_done_in_any_order_raise_the_watermark_once_contiguous() {
        let mut w = Watermark::default();
        w.note(&Done {
            below: 0,
            roots: vec![2, 1],
        });
        assert_eq!(w.get(), 0, "root 0 is not done yet");
        w.note(&Done {
            below: 0,
            roots: vec![0, 5],
        });
        assert_eq!(w.get(), 3);
        w.note(&Done {
            below: 4,
            roots: vec![],
        });
        assert_eq!(w.get(), 4, "root 4 is not done yet");
        w.note(&Done {
            below: 5,
            roots: vec![],
        });
        assert_eq!(w.get(), 6, "a range note joins the roots done above it");
        w.note(&Done {
            below: 2,
            roots: vec![1],
        });
        assert_eq!(w.get(), 6, "an old note changes nothing");
    }
}
