//! Lineage: which source item an item derives from, so fan-in zip pairs the right items.
//!
//! Every item on the wire carries a [`Lineage`]. A source numbers its items `0, 1, 2, ...`
//! (the *root*). One-to-one stages (map, filter, fallible map) keep the lineage of their
//! input. A flat-map gives its `i`-th output the child lineage `parent.child(i)`: same root,
//! a new *path*. A merge starts new lineages (it numbers its arrivals afresh), because items
//! from different inputs of a merge are unrelated.
//!
//! A zip pairs items whose lineage is equal on every input. Items that went through the same
//! flat-map on every branch therefore pair up; an item that went through a flat-map on one
//! branch only has no partner and is dropped as a partial tuple (and counted).

use std::fmt;

/// Identity of an item's derivation: the source item it comes from and the flat-map
/// splits it went through.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lineage {
    root: u64,
    path: u64,
}

impl Lineage {
    /// The lineage of the `root`-th item of a source (or of a merge).
    pub const fn root(root: u64) -> Self {
        Lineage { root, path: 0 }
    }

    /// A lineage rebuilt from its parts, as it crossed from another process.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) const fn from_parts(root: u64, path: u64) -> Self {
        Lineage { root, path }
    }

    /// The number of the source item this derives from.
    pub const fn root_index(self) -> u64 {
        self.root
    }

    /// The derivation path: 0 for an item that went through no flat-map.
    pub const fn path(self) -> u64 {
        self.path
    }

    /// The lineage of the `index`-th output a flat-map produced from this item.
    pub fn child(self, index: u64) -> Self {
        // A bijective mixer (splitmix64 finaliser) keeps sibling paths distinct and makes
        // accidental equality of unrelated paths as unlikely as a 64-bit collision.
        let mut z = self.path ^ index.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Path 0 is reserved for "never split".
        Lineage {
            root: self.root,
            path: z.max(1),
        }
    }
}

impl fmt::Debug for Lineage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path == 0 {
            write!(f, "#{}", self.root)
        } else {
            write!(f, "#{}/{:x}", self.root, self.path)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_are_distinct_from_each_other_and_the_parent() {
        let parent = Lineage::root(7);
        let kids: Vec<_> = (0..1000).map(|i| parent.child(i)).collect();
        let mut unique = kids.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), kids.len());
        assert!(kids.iter().all(|k| *k != parent && k.root_index() == 7));
        // Same derivation on two branches gives the same lineage: zip pairs them.
        assert_eq!(parent.child(3).child(1), Lineage::root(7).child(3).child(1));
        assert_ne!(parent.child(3).child(1), parent.child(1).child(3));
    }
}
