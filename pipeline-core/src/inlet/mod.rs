//! A node's input side: one edge, several edges merged, or several edges zipped by lineage.

mod looped;
mod zip;

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use std::sync::Arc;

use crate::control::Control;
use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::spec::FanIn;
pub use crate::wire::handoff::Dropped;
use crate::wire::handoff::InlineOffer;
use crate::wire::{Batch, EdgeReceiver};

pub use looped::{LoopInlet, LoopInput, LoopLimits};
pub use zip::*;

/// Where a node's input batches come from.
pub trait Inlet<T>: Send + 'static {
    /// How the node combines its inputs, as the report shows it.
    fn fan_in(&self) -> FanIn {
        FanIn::Single
    }

    /// Polls for the next batch; `Ready(None)` is end of stream on every input.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>>;

    /// Items waiting on the input edges right now.
    fn queued(&self) -> usize;

    /// Partial tuples dropped since the last call (only a zip drops any).
    fn take_dropped(&mut self) -> Dropped {
        Dropped::default()
    }

    /// The offer to run the node inside the nodes feeding it, if its input edges carry one
    /// (see `fuse`). Every node takes it, so that the feeding nodes are never left waiting:
    /// keeping it is a promise to settle it.
    #[doc(hidden)]
    fn take_offer(&mut self) -> Option<InlineOffer<T>> {
        None
    }

    /// Reports the items this inlet joins or renumbers to the process's ledger of items
    /// from other processes (see `remote`); a single edge passes items on as they are.
    #[doc(hidden)]
    fn track(&mut self, _ledger: Arc<Ledger>) {}

    /// Lets the inlet of node `node` fail the run, and see it failing (a loop's entry
    /// does, when the loop does not converge).
    #[doc(hidden)]
    fn watch_run(&mut self, _control: Arc<Control>, _node: &'static str) {}
}

/// Waits for the next batch.
pub(crate) async fn next<T, I: Inlet<T>>(inlet: &mut I) -> Option<Batch<T>> {
    poll_fn(|cx| inlet.poll_next(cx)).await
}

/// The next batch if one is there right now: `None` means "nothing yet", `Some(None)` end.
pub(crate) fn try_next<T, I: Inlet<T>>(inlet: &mut I) -> Option<Option<Batch<T>>> {
    match inlet.poll_next(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(batch) => Some(batch),
        Poll::Pending => None,
    }
}

impl<T: Send + 'static> Inlet<T> for EdgeReceiver<T> {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        self.poll_recv(cx)
    }

    fn queued(&self) -> usize {
        EdgeReceiver::queued(self)
    }

    fn take_offer(&mut self) -> Option<InlineOffer<T>> {
        EdgeReceiver::take_offer(self).map(InlineOffer)
    }
}

/// An inlet chosen at run time (a graph built from names, see `graph`): one call through a
/// pointer per batch.
impl<T: Send + 'static> Inlet<T> for Box<dyn Inlet<T>> {
    fn fan_in(&self) -> FanIn {
        (**self).fan_in()
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        (**self).poll_next(cx)
    }

    fn queued(&self) -> usize {
        (**self).queued()
    }

    fn take_dropped(&mut self) -> Dropped {
        (**self).take_dropped()
    }

    fn take_offer(&mut self) -> Option<InlineOffer<T>> {
        (**self).take_offer()
    }

    fn track(&mut self, ledger: Arc<Ledger>) {
        (**self).track(ledger)
    }

    fn watch_run(&mut self, control: Arc<Control>, node: &'static str) {
        (**self).watch_run(control, node)
    }
}

/// Several edges of one type into one channel, interleaved as they arrive.
///
/// A merge starts new lineages: items from different inputs are unrelated, so they are
/// numbered afresh in arrival order.
pub struct MergeInlet<T> {
    rx: EdgeReceiver<T>,
    next_root: u64,
    ledger: Option<Arc<Ledger>>,
}

impl<T> MergeInlet<T> {
    pub fn new(rx: EdgeReceiver<T>) -> Self {
        MergeInlet {
            rx,
            next_root: 0,
            ledger: None,
        }
    }
}

impl<T: Send + 'static> Inlet<T> for MergeInlet<T> {
    fn fan_in(&self) -> FanIn {
        FanIn::Merge
    }

    fn queued(&self) -> usize {
        self.rx.queued()
    }

    fn track(&mut self, ledger: Arc<Ledger>) {
        self.ledger = Some(ledger);
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        self.rx.poll_recv(cx).map(|batch| {
            batch.map(|mut batch| {
                for (lineage, _) in &mut batch.items {
                    // A renumbered item is no longer one from another process: it counts
                    // as finished here (see `remote` for what that means on a crash).
                    if let Some(ledger) = &self.ledger {
                        ledger.ended(*lineage);
                    }
                    *lineage = Lineage::root(self.next_root);
                    self.next_root += 1;
                }
                batch.watermark = self.next_root;
                batch
            })
        })
    }
}
