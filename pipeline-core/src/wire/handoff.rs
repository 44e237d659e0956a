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
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::oneshot;

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

/// Test hooks: how many nodes split off and were asked back in this process, and a switch
/// that settles both decisions without measuring (the measures need a quiet machine with
/// two cores, which tests cannot count on). 0: measure; 1: split, and stay; 2: split, and
/// be asked back.
pub(crate) static SPLITS: AtomicU64 = AtomicU64::new(0);
pub(crate) static RECALLS: AtomicU64 = AtomicU64::new(0);
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
