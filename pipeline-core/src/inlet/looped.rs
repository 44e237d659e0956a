//! A loop's entry (`loop links => frontier`): the node that items from outside enter the
//! loop by, and that items coming round the loop enter again.
//!
//! Its input cannot end the way a plain one does, when every sender is gone: the senders
//! of the loop edge belong to nodes that only end after this one. So it ends when its
//! outside inputs have ended *and nothing is left in the loop*, which the run's ledger
//! knows: each item this inlet hands on starts a lineage root of its own, registered in the
//! ledger, and a root finishes once every item made of it has ended (delivered, filtered,
//! failed) or come round again (and been renumbered here). When no root of this entry is
//! open, nothing is left anywhere in the loop, or on its way back, and nothing can appear.
//!
//! The loop edge never blocks its sender (a loop whose every edge is full would wait on
//! itself); the entry bounds it instead, failing the run with [`Failure::LoopLimit`] when
//! more than [`LoopLimits::items`] items wait to come round, or an item comes round more than
//! [`LoopLimits::rounds`] times. Items that would then go round again are dropped, and
//! counted, so that the run ends.
//!
//! Lineage: an item entering the loop from outside starts round 0; one coming round gets
//! the next round of the root it came from, kept in the root's low bits. Roots of loop
//! entries are numbered from one counter for the whole process, above any source's
//! numbering, so that they never meet another root in the ledger, and increase in the order
//! the entry hands them on (a zip downstream relies on that: see `Batch::watermark`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use futures::task::AtomicWaker;

use super::Inlet;
use crate::control::Control;
use crate::error::Failure;
use crate::ledger::{Done, Ledger};
use crate::lineage::Lineage;
use crate::spec::FanIn;
use crate::wire::handoff::Dropped;
use crate::wire::{Batch, EdgeReceiver, EdgeSender, edge};

/// Roots of loop entries have this bit set; sources never number that far.
const LOOP_ROOT: u64 = 1 << 63;
/// The low bits of a loop entry's root hold the item's round.
const ROUND_BITS: u32 = 16;
const ROUND_MASK: u64 = (1 << ROUND_BITS) - 1;

/// Loop entries' roots, one numbering for the process (48 bits: enough for any run).
static NEXT_ROOT: AtomicU64 = AtomicU64::new(0);

/// How far a loop may go before it counts as not converging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopLimits {
    /// Most times an item (and what is made of it) may come round.
    pub rounds: u32,
    /// Most items waiting on the loop edge to come round.
    pub items: usize,
}

impl Default for LoopLimits {
    fn default() -> Self {
        LoopLimits {
            rounds: 10_000,
            items: 1_000_000,
        }
    }
}

/// What the entry and the ledger's callbacks share: the entry's roots still open.
#[derive(Default)]
struct Open {
    roots: AtomicU64,
    /// The entry, waiting for the last of them.
    waker: AtomicWaker,
}

/// See the module documentation.
pub struct LoopInlet<T> {
    outside: EdgeReceiver<T>,
    around: EdgeReceiver<T>,
    outside_ended: bool,
    open: Arc<Open>,
    limits: LoopLimits,
    ledger: Option<Arc<Ledger>>,
    run: Option<(Arc<Control>, &'static str)>,
    /// The root below which every root of this entry has been handed on.
    watermark: u64,
    dropped: Dropped,
    /// A limit was passed (said once).
    failed: bool,
}

/// Items the loop edge holds before its sender would wait: never, in practice (the entry
/// fails the run long before, at [`LoopLimits::items`]).
const LOOP_EDGE_CAPACITY: usize = usize::MAX >> 4;

/// What a loop's entry is wired with: the sender its inputs from outside share, the one
/// its loop edges share, and the inlet.
pub type LoopInput<T> = (EdgeSender<T>, EdgeSender<T>, LoopInlet<T>);

impl<T: Send + 'static> LoopInlet<T> {
    /// A loop entry's two channels: one for its inputs from outside the loop (holding
    /// `capacity` items, as any node's input), one for the loop edges; and the inlet.
    pub fn open(capacity: usize) -> LoopInput<T> {
        let (outside_tx, outside) = edge(capacity);
        let (around_tx, around) = edge(LOOP_EDGE_CAPACITY);
        (
            outside_tx,
            around_tx,
            LoopInlet::new(outside, around, LoopLimits::default()),
        )
    }
}

impl<T> LoopInlet<T> {
    /// An entry taking `outside` (the inputs from outside the loop, merged) and `around`
    /// (the loop edges').
    /// Rounds are counted up to 65 534.
    pub fn new(outside: EdgeReceiver<T>, around: EdgeReceiver<T>, limits: LoopLimits) -> Self {
        let limits = LoopLimits {
            rounds: limits.rounds.min(ROUND_MASK as u32 - 1),
            ..limits
        };
        LoopInlet {
            outside,
            around,
            outside_ended: false,
            open: Arc::default(),
            limits,
            ledger: None,
            run: None,
            watermark: LOOP_ROOT,
            dropped: Dropped::default(),
            failed: false,
        }
    }

    /// Gives the batch's items roots of this entry, registered in the ledger; items that
    /// come round past the limits (or once the run is failing) are dropped instead.
    fn enter(&mut self, mut batch: Batch<T>, came_round: bool) -> Batch<T> {
        let Some(ledger) = self.ledger.clone() else {
            // The run builder follows items whenever a graph has a loop; without a ledger
            // nothing could tell when the loop is empty.
            unreachable!("a loop's entry runs with the run's ledger");
        };
        let failing = self.run.as_ref().is_some_and(|(run, _)| run.is_failing());
        if came_round && failing {
            // The run is ending: what comes round does not go round again.
            self.drop_items(&ledger, std::mem::take(&mut batch.items));
            return batch;
        }
        let first = NEXT_ROOT.fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Counted before the items they come from end, so that the count cannot touch zero
        // in between.
        self.open
            .roots
            .fetch_add(batch.len() as u64, Ordering::SeqCst);
        let mut kept = Vec::with_capacity(batch.items.len());
        let mut moves = Vec::with_capacity(batch.items.len());
        let mut too_deep = Vec::new();
        for (i, (lineage, item)) in std::mem::take(&mut batch.items).into_iter().enumerate() {
            let round = if came_round && lineage.root_index() & LOOP_ROOT != 0 {
                (lineage.root_index() & ROUND_MASK) + 1
            } else {
                0
            };
            let root = LOOP_ROOT | ((first + i as u64) << ROUND_BITS) | round.min(ROUND_MASK);
            if round > u64::from(self.limits.rounds) {
                self.root_done();
                too_deep.push((lineage, item));
                continue;
            }
            moves.push((lineage, Lineage::root(root), self.done()));
            self.watermark = root + 1;
            kept.push((Lineage::root(root), item));
        }
        ledger.rerooted(moves);
        if !too_deep.is_empty() {
            self.fail(format!(
                "{} item(s) came round more than {} times; the loop must end for each item (a visited set, a depth limit), or raise the limit (`LoopLimits::rounds`)",
                too_deep.len(),
                self.limits.rounds
            ));
            self.drop_items(&ledger, too_deep);
        }
        batch.items = kept;
        batch.watermark = self.watermark;
        batch
    }

    /// Told by the ledger when one of this entry's roots has finished.
    fn done(&self) -> Done {
        let open = self.open.clone();
        Box::new(move |_| {
            if open.roots.fetch_sub(1, Ordering::SeqCst) == 1 {
                open.waker.wake();
            }
        })
    }

    fn root_done(&self) {
        self.open.roots.fetch_sub(1, Ordering::SeqCst);
    }

    fn drop_items(&mut self, ledger: &Ledger, items: Vec<(Lineage, T)>) {
        self.dropped.items += items.len() as u64;
        self.dropped.tuples += items.len() as u64;
        for (lineage, _) in items {
            ledger.ended(lineage);
        }
    }

    fn fail(&mut self, limit: String) {
        if std::mem::replace(&mut self.failed, true) {
            return;
        }
        if let Some((run, node)) = &self.run {
            tracing::error!(node = *node, "{limit}");
            run.fail(Failure::LoopLimit {
                node: node.to_string(),
                limit,
            });
        }
    }
}

impl<T: Send + 'static> Inlet<T> for LoopInlet<T> {
    fn fan_in(&self) -> FanIn {
        FanIn::Loop
    }

    fn queued(&self) -> usize {
        self.outside.queued() + self.around.queued()
    }

    fn take_dropped(&mut self) -> Dropped {
        std::mem::take(&mut self.dropped)
    }

    fn track(&mut self, ledger: Arc<Ledger>) {
        self.ledger = Some(ledger);
    }

    fn watch_run(&mut self, control: Arc<Control>, node: &'static str) {
        self.run = Some((control, node));
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        loop {
            if self.around.queued() > self.limits.items {
                self.fail(format!(
                    "more than {} items wait to come round; the loop makes items faster than it ends them, or raise the limit (`LoopLimits::items`)",
                    self.limits.items
                ));
            }
            // What comes round first: it keeps the loop's own buffer small.
            match self.around.poll_recv(cx) {
                Poll::Ready(Some(batch)) => {
                    let batch = self.enter(batch, true);
                    if batch.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(batch));
                }
                // The nodes round the loop have all ended (the run was aborted).
                Poll::Ready(None) if self.outside_ended => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => {}
            }
            if !self.outside_ended {
                match self.outside.poll_recv(cx) {
                    Poll::Ready(Some(batch)) => return Poll::Ready(Some(self.enter(batch, false))),
                    Poll::Ready(None) => self.outside_ended = true,
                    Poll::Pending => return Poll::Pending,
                }
            }
            // Registered before looking, so that the last root finishing in between wakes us.
            self.open.waker.register(cx.waker());
            if self.open.roots.load(Ordering::SeqCst) == 0 {
                return Poll::Ready(None);
            }
            // Something may have come round since we looked.
            if self.around.queued() > 0 {
                continue;
            }
            return Poll::Pending;
        }
    }
}
