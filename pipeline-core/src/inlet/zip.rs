//! Zip: a node with several inputs receives tuples of items with the same lineage.
//!
//! Items usually arrive in the same order on every input (each branch keeps its input's
//! order): then they wait in a queue per input, and the heads of the queues pair up with no
//! lookup at all. When the heads disagree (a branch filtered an item, or reordered items
//! with several workers), the queued items move to a map keyed by lineage, where they wait
//! until every input delivered its part; once the map is empty again, the queues take over. An input's watermark says that no item with a smaller lineage root will
//! come on it any more, so an incomplete tuple below every input's watermark can never
//! complete: it is dropped and counted (a filter or a failure on one branch).
//! Inputs are read whichever has data: reading only the lagging one could deadlock a
//! diamond whose fan-out waits on the other branch.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, VecDeque};
use std::task::{Context, Poll};

use std::sync::Arc;

use super::{Dropped, Inlet};
use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::wire::{Batch, EdgeReceiver, MAX_BATCH};

macro_rules! zip_inlet {
    ($name:ident, $n:literal; $($T:ident $idx:tt $v:ident),+) => {
        /// A zip of this many inputs; see the module documentation.
        pub struct $name<$($T),+> {
            receivers: ($(Option<EdgeReceiver<$T>>,)+),
            watermarks: [u64; $n],
            /// Items in arrival order, while `pending` is empty.
            queues: ($(VecDeque<(Lineage, $T)>,)+),
            /// Items whose partners came in another order, by lineage.
            pending: BTreeMap<Lineage, ($(Option<$T>,)+)>,
            ready: Vec<(Lineage, ($($T,)+))>,
            dropped: Dropped,
            ledger: Option<Arc<Ledger>>,
        }

        impl<$($T),+> $name<$($T),+> {
            #[allow(clippy::too_many_arguments)]
            pub fn new($($v: EdgeReceiver<$T>),+) -> Self {
                $name {
                    receivers: ($(Some($v),)+),
                    watermarks: [0; $n],
                    queues: ($(VecDeque::<(Lineage, $T)>::new(),)+),
                    pending: BTreeMap::new(),
                    ready: Vec::new(),
                    dropped: Dropped::default(),
                    ledger: None,
                }
            }

            fn no_parts() -> ($(Option<$T>,)+) {
                ($(None::<$T>,)+)
            }

            fn is_complete(parts: &($(Option<$T>,)+)) -> bool {
                $( parts.$idx.is_some() )&&+
            }

            fn complete(parts: ($(Option<$T>,)+)) -> Option<($($T,)+)> {
                Some(($(parts.$idx?,)+))
            }

            fn drop_partial(&mut self, lineage: Lineage, parts: ($(Option<$T>,)+)) {
                self.dropped.tuples += 1;
                $(
                    if parts.$idx.is_some() {
                        self.dropped.items += 1;
                        self.ended(lineage, 1);
                    }
                )+
            }

            /// Files one item under its lineage; `set` puts it in its place among the
            /// parts, saying whether it replaced an item already there.
            fn insert(
                &mut self,
                lineage: Lineage,
                set: impl FnOnce(&mut ($(Option<$T>,)+)) -> bool,
            ) {
                match self.pending.entry(lineage) {
                    Entry::Vacant(slot) => {
                        let mut parts = Self::no_parts();
                        set(&mut parts);
                        slot.insert(parts);
                    }
                    Entry::Occupied(mut slot) => {
                        if set(slot.get_mut()) {
                            // Two items of one lineage on one edge: keep the newer, count
                            // the older as a dropped piece.
                            self.dropped.items += 1;
                            if let Some(ledger) = &self.ledger {
                                ledger.ended(lineage);
                            }
                        }
                        if Self::is_complete(slot.get()) {
                            let (lineage, parts) = slot.remove_entry();
                            if let Some(tuple) = Self::complete(parts) {
                                // The parts go on as one item.
                                self.ended(lineage, $n - 1);
                                self.ready.push((lineage, tuple));
                            }
                        }
                    }
                }
            }

            /// Pairs the heads of the queues while they agree; when they do not, or an
            /// item waits below every input's watermark (its partner was filtered), moves
            /// every queued item to the map, which sorts them out.
            fn pair_queued(&mut self, low: u64) {
                loop {
                    let heads = ($(self.queues.$idx.front().map(|(lineage, _)| *lineage),)+);
                    let first = heads.0;
                    let Some(lineage) = first else { break };
                    if $( heads.$idx == first )&&+ {
                        let tuple = ($(self.queues.$idx.pop_front().expect("a head").1,)+);
                        self.ended(lineage, $n - 1);
                        self.ready.push((lineage, tuple));
                        continue;
                    }
                    if $( heads.$idx.is_some() )&&+ {
                        return self.spill();
                    }
                    break;
                }
                let stale = false $( || self.queues.$idx.front().is_some_and(|(l, _)| l.root_index() < low) )+;
                if stale {
                    self.spill();
                }
            }

            /// Moves every queued item to the map, in arrival order.
            fn spill(&mut self) {
                $(
                    for (lineage, item) in std::mem::take(&mut self.queues.$idx) {
                        self.insert(lineage, |parts| parts.$idx.replace(item).is_some());
                    }
                )+
            }

            /// `n` items of `lineage` end here (joined into a tuple, or dropped).
            fn ended(&self, lineage: Lineage, n: i64) {
                if let Some(ledger) = &self.ledger {
                    ledger.adjust(lineage, -n);
                }
            }
        }

        impl<$($T: Send + 'static),+> Inlet<($($T,)+)> for $name<$($T),+> {
            fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<($($T,)+)>>> {
                loop {
                    let mut progressed = false;
                    $(
                        if self.ready.len() < MAX_BATCH {
                            if let Some(rx) = self.receivers.$idx.as_mut() {
                                match rx.poll_recv(cx) {
                                    Poll::Ready(Some(batch)) => {
                                        progressed = true;
                                        self.watermarks[$idx] = self.watermarks[$idx].max(batch.watermark);
                                        if self.pending.is_empty() {
                                            self.queues.$idx.extend(batch.items);
                                        } else {
                                            for (lineage, item) in batch.items {
                                                self.insert(lineage, |parts| parts.$idx.replace(item).is_some());
                                            }
                                        }
                                    }
                                    Poll::Ready(None) => {
                                        progressed = true;
                                        self.receivers.$idx = None;
                                        self.watermarks[$idx] = u64::MAX;
                                    }
                                    Poll::Pending => {}
                                }
                            }
                        }
                    )+
                    if !progressed || self.ready.len() >= MAX_BATCH {
                        break;
                    }
                }

                let low = self.watermarks.iter().copied().min().unwrap_or(u64::MAX);
                if self.pending.is_empty() {
                    self.pair_queued(low);
                }
                while let Some(entry) = self.pending.first_entry() {
                    if entry.key().root_index() >= low {
                        break;
                    }
                    let (lineage, parts) = entry.remove_entry();
                    self.drop_partial(lineage, parts);
                }

                if !self.ready.is_empty() {
                    let items = std::mem::take(&mut self.ready);
                    Poll::Ready(Some(Batch { items, watermark: low }))
                } else if low == u64::MAX {
                    // Every input ended; the loop above dropped whatever was incomplete.
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            }

            fn queued(&self) -> usize {
                0 $( + self.receivers.$idx.as_ref().map_or(0, EdgeReceiver::queued) )+
            }

            fn take_dropped(&mut self) -> Dropped {
                std::mem::take(&mut self.dropped)
            }

            fn track(&mut self, ledger: Arc<Ledger>) {
                self.ledger = Some(ledger);
            }
        }
    };
}

zip_inlet!(Zip2, 2; A 0 a, B 1 b);
zip_inlet!(Zip3, 3; A 0 a, B 1 b, C 2 c);
zip_inlet!(Zip4, 4; A 0 a, B 1 b, C 2 c, D 3 d);
zip_inlet!(Zip5, 5; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e);
zip_inlet!(Zip6, 6; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f);
zip_inlet!(Zip7, 7; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f, G 6 g);
zip_inlet!(Zip8, 8; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f, G 6 g, H 7 h);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inlet::next;
    use crate::wire::edge;

    fn batch<T>(items: Vec<(u64, T)>, watermark: u64) -> Batch<T> {
        Batch {
            items: items
                .into_iter()
                .map(|(r, t)| (Lineage::root(r), t))
                .collect(),
            watermark,
        }
    }

    #[tokio::test]
    async fn pairs_by_lineage_not_by_arrival_and_drops_what_cannot_complete() {
        let (tx_a, rx_a) = edge::<&str>(16);
        let (tx_b, rx_b) = edge::<u32>(16);
        let mut zip = Zip2::new(rx_a, rx_b);
        // Branch b reordered its items and filtered item 1.
        tx_a.send(batch(vec![(0, "zero"), (1, "one"), (2, "two")], 3))
            .await
            .unwrap();
        tx_b.send(batch(vec![(2, 20), (0, 0)], 3)).await.unwrap();
        let got = next(&mut zip).await.unwrap();
        let mut pairs: Vec<_> = got
            .items
            .into_iter()
            .map(|(l, t)| (l.root_index(), t))
            .collect();
        pairs.sort();
        assert_eq!(pairs, vec![(0, ("zero", 0)), (2, ("two", 20))]);
        assert_eq!(
            zip.take_dropped(),
            Dropped {
                tuples: 1,
                items: 1
            }
        );
        drop((tx_a, tx_b));
        assert!(next(&mut zip).await.is_none());
    }

    #[tokio::test]
    async fn queues_pair_in_order_and_recover_after_a_filtered_item() {
        let (tx_a, rx_a) = edge::<u64>(64);
        let (tx_b, rx_b) = edge::<u64>(64);
        let mut zip = Zip2::new(rx_a, rx_b);
        let roots = |got: Batch<(u64, u64)>| -> Vec<u64> {
            got.items.iter().map(|(l, _)| l.root_index()).collect()
        };
        // In step: the queues pair the heads.
        tx_a.send(batch((0..4).map(|r| (r, r)).collect(), 4))
            .await
            .unwrap();
        tx_b.send(batch((0..4).map(|r| (r, r * 10)).collect(), 4))
            .await
            .unwrap();
        let got = next(&mut zip).await.unwrap();
        assert_eq!(got.items[3].1, (3, 30));
        assert_eq!(roots(got), [0, 1, 2, 3]);
        assert!(zip.pending.is_empty());
        // Branch b filtered item 5: the heads disagree, the map sorts it out.
        tx_a.send(batch((4..8).map(|r| (r, r)).collect(), 8))
            .await
            .unwrap();
        tx_b.send(batch(vec![(4, 40), (6, 60), (7, 70)], 8))
            .await
            .unwrap();
        let got = next(&mut zip).await.unwrap();
        let mut got = roots(got);
        got.sort();
        assert_eq!(got, [4, 6, 7]);
        assert_eq!(
            zip.take_dropped(),
            Dropped {
                tuples: 1,
                items: 1
            }
        );
        // In step again: back to the queues.
        assert!(zip.pending.is_empty());
        tx_a.send(batch(vec![(8, 8)], 9)).await.unwrap();
        tx_b.send(batch(vec![(8, 80)], 9)).await.unwrap();
        assert_eq!(roots(next(&mut zip).await.unwrap()), [8]);
        drop((tx_a, tx_b));
        assert!(next(&mut zip).await.is_none());
    }

    #[tokio::test]
    async fn partial_tuples_are_dropped_at_end_of_stream() {
        let (tx_a, rx_a) = edge::<u8>(16);
        let (tx_b, rx_b) = edge::<u8>(16);
        let mut zip = Zip2::new(rx_a, rx_b);
        tx_a.send(batch(vec![(0, 1), (1, 2)], 2)).await.unwrap();
        tx_b.send(batch(vec![(1, 9)], 2)).await.unwrap();
        drop((tx_a, tx_b));
        let got = next(&mut zip).await.unwrap();
        assert_eq!(got.items.len(), 1);
        assert!(next(&mut zip).await.is_none());
        assert_eq!(
            zip.take_dropped(),
            Dropped {
                tuples: 1,
                items: 1
            }
        );
    }
}
