//! Zip: a node with several inputs receives tuples of items with the same lineage.
//!
//! Items usually arrive in the same order on every input (each branch keeps its input's
//! order): then they wait in a queue per input, and the heads of the queues pair up with no
//! lookup at all. When the heads disagree (a branch filtered an item, or reordered items
//! with several workers), the queued items move to a map keyed by lineage, where they wait
//! until every input delivered its part; once the map is empty again, the queues take over.
//! An input's watermark says that no item with a smaller lineage root will come on it any
//! more, so an incomplete tuple below every input's watermark can never complete: it is
//! dropped and counted (a filter or a failure on one branch).
//! Inputs are read whichever has data: reading only the lagging one could deadlock a
//! diamond whose fan-out waits on the other branch.
//!
//! A zip node may run inline too (see [`crate::fuse`]): then each node feeding it hands its
//! batches to a [`ZipFeed`] of its input, which files them in the same pairing state the
//! inlet reads (so nothing is lost when the node goes back to its own task) and runs the
//! node on the tuples they complete. In a diamond whose branches run on the source's
//! thread, the whole graph then runs on that thread. The node stays inline only while every
//! feeding node runs it: once one declines or ends, it goes back to its own task, and the
//! others send over their channels again.

mod inline;
mod queue;

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use super::{Dropped, Inlet};
use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::wire::handoff::{Adopted, InlineOffer};
use crate::wire::{Batch, EdgeReceiver, MAX_BATCH};
use inline::Shared;
pub(crate) use inline::{Lent, ZipFeed};
use queue::BatchQueue;

/// The pairing state of a zip, shared by its inlet and its inline feeds.
pub(crate) trait Pairing: Send + 'static {
    type Tuple: Send + 'static;

    /// Pairs what it can and drops what can no longer complete; the tuples ready, if any,
    /// with the watermark below which every tuple has been formed or dropped.
    fn take_ready(&mut self) -> Option<Batch<Self::Tuple>>;

    /// Puts tuples back at the front, to be taken again first.
    fn put_back(&mut self, tuples: Vec<(Lineage, Self::Tuple)>);

    /// Partial tuples dropped since the last call.
    fn take_dropped(&mut self) -> Dropped;

    /// Whether nothing waits in it: no item to pair, no tuple to hand on, no drop to report.
    fn is_idle(&self) -> bool;
}

/// Filing items that arrived on input `I`.
pub(crate) trait AcceptInput<const I: usize>: Pairing {
    type Item: Send + 'static;

    fn accept(&mut self, items: Vec<(Lineage, Self::Item)>, watermark: u64);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it happened in pairing code, not in user code; the state is
    // consistent between calls.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// `impl AcceptInput<$idx>` for one input of a zip's pairing state.
macro_rules! accept_input {
    ($core:ident [$($G:ident),+] $T:ident $idx:tt) => {
        impl<$($G: Send + 'static),+> AcceptInput<$idx> for $core<$($G),+> {
            type Item = $T;

            fn accept(&mut self, items: Vec<(Lineage, $T)>, watermark: u64) {
                self.watermarks[$idx] = self.watermarks[$idx].max(watermark);
                if self.pending.is_empty() {
                    self.queues.$idx.push(items);
                } else {
                    for (lineage, item) in items {
                        self.insert(lineage, |parts| parts.$idx.replace(item).is_some());
                    }
                }
            }
        }
    };
}

/// Hands the zip node to the feed of one input, through that input's offer.
macro_rules! offer_feed {
    ($core:ident [$($G:ident),+] $offers:ident $shared:ident $idx:tt) => {
        if let Some(offer) = $offers.$idx.take() {
            let feed: ZipFeed<$core<$($G),+>, $idx> = $shared.feed::<$idx>();
            offer(Box::new(feed));
        }
    };
}

macro_rules! zip_inlet {
    ($name:ident, $core:ident, $n:literal, $gens:tt; $($T:ident $idx:tt $v:ident),+) => {
        /// The pairing state of a zip of this many inputs.
        pub(crate) struct $core<$($T),+> {
            watermarks: [u64; $n],
            /// Items in arrival order, while `pending` is empty.
            queues: ($(BatchQueue<$T>,)+),
            /// Items whose partners came in another order, by lineage.
            pending: BTreeMap<Lineage, ($(Option<$T>,)+)>,
            ready: Vec<(Lineage, ($($T,)+))>,
            dropped: Dropped,
            ledger: Option<Arc<Ledger>>,
        }

        /// A zip of this many inputs; see the module documentation.
        pub struct $name<$($T),+> {
            receivers: ($(Option<EdgeReceiver<$T>>,)+),
            core: Arc<Mutex<$core<$($T),+>>>,
        }

        impl<$($T),+> $name<$($T),+> {
            #[allow(clippy::too_many_arguments)]
            pub fn new($($v: EdgeReceiver<$T>),+) -> Self {
                $name {
                    receivers: ($(Some($v),)+),
                    core: Arc::new(Mutex::new($core {
                        watermarks: [0; $n],
                        queues: ($(BatchQueue::<$T>::new(),)+),
                        pending: BTreeMap::new(),
                        ready: Vec::new(),
                        dropped: Dropped::default(),
                        ledger: None,
                    })),
                }
            }
        }

        impl<$($T),+> $core<$($T),+> {
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
                        if let Some(ledger) = &self.ledger {
                            ledger.dropped(lineage, 1);
                        }
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
                // In step (the usual case): pair the prefix of the front batches on which
                // the lineages agree, in one pass, batch after batch.
                loop {
                    let fronts = ($(self.queues.$idx.front_batch(),)+);
                    let k = [$(fronts.$idx.len()),+].into_iter().min().unwrap_or(0);
                    let mut agree = 0;
                    while agree < k && $( fronts.$idx[agree].0 == fronts.0[agree].0 )&&+ {
                        agree += 1;
                    }
                    if agree == 0 {
                        break;
                    }
                    let mut heads = ($(self.queues.$idx.take_front(),)+);
                    // The heads are locals no closure borrows, so they stay in registers.
                    self.ready.reserve(agree);
                    for _ in 0..agree {
                        let parts = ($(heads.$idx.next().expect("agreed heads"),)+);
                        self.ready.push((parts.0.0, ($(parts.$idx.1,)+)));
                    }
                    $( self.queues.$idx.put_front(heads.$idx); )+
                    if self.ledger.is_some() {
                        for i in self.ready.len() - agree..self.ready.len() {
                            self.ended(self.ready[i].0, $n - 1);
                        }
                    }
                    if agree < k {
                        break;
                    }
                }
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
                    for (lineage, item) in self.queues.$idx.take_all() {
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

            fn low(&self) -> u64 {
                self.watermarks.iter().copied().min().unwrap_or(u64::MAX)
            }
        }

        impl<$($T: Send + 'static),+> Pairing for $core<$($T),+> {
            type Tuple = ($($T,)+);

            fn take_ready(&mut self) -> Option<Batch<Self::Tuple>> {
                let low = self.low();
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
                (!self.ready.is_empty()).then(|| Batch {
                    items: std::mem::take(&mut self.ready),
                    watermark: low,
                })
            }

            fn take_dropped(&mut self) -> Dropped {
                std::mem::take(&mut self.dropped)
            }

            fn is_idle(&self) -> bool {
                self.pending.is_empty()
                    && self.ready.is_empty()
                    && self.dropped == Dropped::default()
                    $( && self.queues.$idx.is_empty() )+
            }

            fn put_back(&mut self, mut tuples: Vec<(Lineage, Self::Tuple)>) {
                tuples.append(&mut self.ready);
                self.ready = tuples;
            }
        }

        $( accept_input!($core $gens $T $idx); )+

        impl<$($T: Send + 'static),+> Inlet<($($T,)+)> for $name<$($T),+> {
            fn fan_in(&self) -> crate::spec::FanIn {
                crate::spec::FanIn::Zip
            }

            fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<($($T,)+)>>> {
                let mut core = lock(&self.core);
                loop {
                    let mut progressed = false;
                    $(
                        if core.ready.len() < MAX_BATCH {
                            if let Some(rx) = self.receivers.$idx.as_mut() {
                                match rx.poll_recv(cx) {
                                    Poll::Ready(Some(batch)) => {
                                        progressed = true;
                                        AcceptInput::<$idx>::accept(&mut *core, batch.items, batch.watermark);
                                    }
                                    Poll::Ready(None) => {
                                        progressed = true;
                                        self.receivers.$idx = None;
                                        core.watermarks[$idx] = u64::MAX;
                                    }
                                    Poll::Pending => {}
                                }
                            }
                        }
                    )+
                    if !progressed || core.ready.len() >= MAX_BATCH {
                        break;
                    }
                }
                if let Some(batch) = core.take_ready() {
                    Poll::Ready(Some(batch))
                } else if core.low() == u64::MAX {
                    // Every input ended; whatever was incomplete has been dropped.
                    Poll::Ready(None)
                } else {
                    Poll::Pending
                }
            }

            fn queued(&self) -> usize {
                0 $( + self.receivers.$idx.as_ref().map_or(0, EdgeReceiver::queued) )+
            }

            fn take_dropped(&mut self) -> Dropped {
                Pairing::take_dropped(&mut *lock(&self.core))
            }

            fn track(&mut self, ledger: Arc<Ledger>) {
                lock(&self.core).ledger = Some(ledger);
            }

            fn take_offer(&mut self) -> Option<InlineOffer<($($T,)+)>> {
                // Inline only if every input may be fed inline; the offers not used are
                // dropped, which declines them.
                let mut offers = ($(self.receivers.$idx.as_mut().and_then(EdgeReceiver::take_offer),)+);
                if !($( offers.$idx.is_some() )&&+) {
                    return None;
                }
                let core = self.core.clone();
                Some(InlineOffer(Box::new(move |node: Adopted<($($T,)+)>| {
                    let shared = Shared::new(core, node);
                    $( offer_feed!($core $gens offers shared $idx); )+
                })))
            }
        }
    };
}

zip_inlet!(Zip2, ZipCore2, 2, [A, B]; A 0 a, B 1 b);
zip_inlet!(Zip3, ZipCore3, 3, [A, B, C]; A 0 a, B 1 b, C 2 c);
zip_inlet!(Zip4, ZipCore4, 4, [A, B, C, D]; A 0 a, B 1 b, C 2 c, D 3 d);
zip_inlet!(Zip5, ZipCore5, 5, [A, B, C, D, E]; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e);
zip_inlet!(Zip6, ZipCore6, 6, [A, B, C, D, E, F]; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f);
zip_inlet!(Zip7, ZipCore7, 7, [A, B, C, D, E, F, G]; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f, G 6 g);
zip_inlet!(Zip8, ZipCore8, 8, [A, B, C, D, E, F, G, H]; A 0 a, B 1 b, C 2 c, D 3 d, E 4 e, F 5 f, G 6 g, H 7 h);

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
        assert!(lock(&zip.core).pending.is_empty());
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
        assert!(lock(&zip.core).pending.is_empty());
        tx_a.send(batch(vec![(8, 8)], 9)).await.unwrap();
        tx_b.send(batch(vec![(8, 80)], 9)).await.unwrap();
        assert_eq!(roots(next(&mut zip).await.unwrap()), [8]);
        drop((tx_a, tx_b));
        assert!(next(&mut zip).await.is_none());
    }

    #[tokio::test]
    async fn queues_pair_across_batches_cut_differently_on_each_input() {
        let (tx_a, rx_a) = edge::<u64>(64);
        let (tx_b, rx_b) = edge::<u64>(64);
        let mut zip = Zip2::new(rx_a, rx_b);
        // Input a runs ahead in three batches; b comes in two, cut elsewhere.
        for range in [0..3, 3..5, 5..9] {
            let end = range.end;
            tx_a.send(batch(range.map(|r| (r, r)).collect(), end))
                .await
                .unwrap();
        }
        tx_b.send(batch((0..4).map(|r| (r, r * 10)).collect(), 4))
            .await
            .unwrap();
        tx_b.send(batch((4..9).map(|r| (r, r * 10)).collect(), 9))
            .await
            .unwrap();
        drop((tx_a, tx_b));
        let mut pairs = Vec::new();
        while let Some(got) = next(&mut zip).await {
            pairs.extend(got.items.into_iter().map(|(l, t)| (l.root_index(), t)));
        }
        let expected: Vec<_> = (0..9).map(|r| (r, (r, r * 10))).collect();
        assert_eq!(pairs, expected, "in order, by the queues alone");
        assert_eq!(zip.take_dropped(), Dropped::default());
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
