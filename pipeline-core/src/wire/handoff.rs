//! The hand-off between two nodes of an edge (see `fuse`): the node behind the edge offers
//! itself, once set up, to run inside the node feeding it; that node adopts it at its first
//! send and hands it batches, until the adopted node goes back to its own task. Also the
//! shape of a kernel, a shortcut an outlet may take through the nodes it runs inline.
//!
//! Only the protocol lives here, below the inlets and outlets that use it; what a node
//! lends, and how it runs batches inline, is `exec::lend`.

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

use super::split::Split;
use crate::lineage::Lineage;
use crate::wire::{Closed, Probe};

type Items<T> = Vec<(Lineage, T)>;

/// A stage that the node feeding it can run in its own loop.
pub(crate) trait Adoptable<T>: Send {
    /// Whether the stage's code may block: only a node on a thread of its own adopts it.
    fn blocks(&self) -> bool;

    /// Processes `items` (leaving the vector empty) and sends what they produced on; or,
    /// if the node went back to its own task meanwhile, declines and leaves `items` as they
    /// are, for the caller to send over the channel.
    /// `handed_at`: when the caller last read the clock, just before (a chain reads it once
    /// per node and batch, not twice).
    fn take<'a>(
        &'a mut self,
        items: &'a mut Items<T>,
        watermark: u64,
        handed_at: Instant,
    ) -> Taken<'a>;

    /// The edges the stage (or the chain it heads) sends on, to tell whether the nodes
    /// behind them are idle.
    fn idle_probes(&self) -> &[Probe];

    /// Counts partial tuples the node's zip dropped while the node ran inline.
    fn dropped_partial(&self, dropped: Dropped);

    /// The node as `Any`, for a chain's kernel to find the stages it knows (see [`chain`]).
    fn as_any(&mut self) -> Option<&mut (dyn Any + Send + 'static)> {
        None
    }

    /// After [`Handed::Leaves`]: if the node left for a core of its own, how the feeding
    /// node may take it back inline should that not have paid.
    fn take_split(&mut self) -> Option<Split<T>> {
        None
    }
}

/// What became of a batch handed to a node running inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Handed {
    /// Processed; the node stays inline. `done_at`: when the chain it heads was done with
    /// the batch (the caller waited on it until then).
    Stays { done_at: Instant },
    /// Processed (or kept, to be processed first in its own task), but the node must go
    /// back to its own task now: drop it to give it back.
    Leaves { done_at: Instant },
    /// Not taken: the node is back in its own task already. Send the batch over the
    /// channel.
    Declined,
}

pub(crate) type Adopted<T> = Box<dyn Adoptable<T>>;
/// What [`Adoptable::take`] returns.
pub(crate) type Taken<'a, T = Handed> =
    Pin<Box<dyn Future<Output = Result<T, Closed>> + Send + 'a>>;
/// The node's side of an edge's hand-off: it gives itself to this, or drops it to decline.
/// For a zip, one node answers the offers of all its input edges at once (see
/// `inlet::zip`), so this is a function, not just a channel.
pub(crate) type Offer<T> = Box<dyn FnOnce(Adopted<T>) + Send>;
/// A node's offer to run inline, as its inlet hands it out (see `Inlet::take_offer`).
#[doc(hidden)]
pub struct InlineOffer<T>(pub(crate) Offer<T>);

/// The feeding side of an edge's hand-off, shared by the clones of the edge's sender.
pub(crate) type OfferSlot<T> = Arc<Mutex<Option<oneshot::Receiver<Adopted<T>>>>>;

pub(crate) fn hand_off<T: 'static>() -> (Offer<T>, OfferSlot<T>) {
    let (offer, slot) = oneshot::channel::<Adopted<T>>();
    // Err: the feeding node is gone; dropping the node there gives it back at once.
    let offer: Offer<T> = Box::new(move |node| drop(offer.send(node)));
    (offer, Arc::new(Mutex::new(Some(slot))))
}

/// Takes the pending offer of a slot, if no one took it yet.
pub(crate) fn take_offer<T>(slot: &OfferSlot<T>) -> Option<oneshot::Receiver<Adopted<T>>> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Incomplete tuples a zip gave up on, reported by the inlet to its node.
#[derive(Default, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dropped {
    pub tuples: u64,
    pub items: u64,
}

/// The nodes an outlet runs inline, one per edge, as a kernel finds its stages in them.
pub(crate) type Targets<'a> = Vec<&'a mut (dyn Any + Send + 'static)>;

/// An outlet's shortcut through the nodes after it: a chain (here) or a fork
/// ([`super::fork`]).
pub(crate) trait Kernel<T>: Send {
    /// Maps `items` through the nodes `targets` run inline and sends the outputs on, if
    /// they are ready: `None` (and `items` untouched) if not. Items a panic left unmapped
    /// stay in `items` for the usual path. The pass returns when the outputs were sent.
    fn run<'a>(
        &'a mut self,
        targets: Targets<'a>,
        items: &'a mut Items<T>,
        watermark: u64,
        now: Instant,
    ) -> Option<Taken<'a, Instant>>;
}
