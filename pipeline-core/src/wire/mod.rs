//! The wire between two nodes: a bounded channel of batches.
//!
//! One message carries many items so that cheap stages do not pay a channel operation per
//! item. The bound is counted in *items*, not messages: a sender reserves as many permits as
//! its batch holds and the receiver gives them back when it takes the batch, so an edge never
//! holds more than its capacity whatever the batch sizes are.
//!
//! End of stream is the poison pill: when every sender of an edge is dropped, the receiver
//! gets `None` after the last batch. No item sent before that is lost.

pub(crate) mod handoff;
pub(crate) mod split;

use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::{Semaphore, mpsc};

use crate::lineage::Lineage;
use handoff::{Offer, OfferSlot, hand_off};

pub use crate::spec::DEFAULT_CAPACITY;
/// The largest number of items one batch carries: one handed to a node running inline, or
/// one message on an edge of 16384 items or more (a message holds at most a quarter of its
/// edge's capacity, see `Outlet`). Inline, a batch costs a few hundred nanoseconds per node
/// in counts and clock reads whatever its size, which for a chain of cheap maps is still a
/// fifth of the work at 1024 items; 4096 items of a few words fit the core's second-level
/// cache.
pub const MAX_BATCH: usize = 4096;

/// Items with their lineage, plus the edge's progress.
#[derive(Debug)]
pub struct Batch<T> {
    pub items: Vec<(Lineage, T)>,
    /// Every item whose lineage root is below this has been sent on this edge already.
    /// A zip uses it to know that a partial tuple can never complete.
    pub watermark: u64,
}

impl<T> Batch<T> {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The edge was closed from the other side (the run was aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

/// Creates an edge holding at most `capacity` items (at least one).
pub fn edge<T>(capacity: usize) -> (EdgeSender<T>, EdgeReceiver<T>) {
    let capacity = capacity.max(1);
    let permits = Arc::new(Semaphore::new(capacity));
    let (tx, rx) = mpsc::unbounded_channel();
    (
        EdgeSender {
            tx,
            permits: permits.clone(),
            capacity,
            offer: None,
        },
        EdgeReceiver {
            rx,
            permits,
            capacity,
            offer: None,
        },
    )
}

/// An edge into a node's only input, over which the node may offer to run inside the
/// node that feeds it (see `fuse`).
pub fn fusable_edge<T: 'static>(capacity: usize) -> (EdgeSender<T>, EdgeReceiver<T>) {
    let (mut tx, mut rx) = edge(capacity);
    let (offer, slot) = hand_off();
    tx.offer = Some(slot);
    rx.offer = Some(offer);
    (tx, rx)
}

/// The sending half of an edge; clone it to let several nodes feed one merge.
pub struct EdgeSender<T> {
    tx: mpsc::UnboundedSender<Batch<T>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    offer: Option<OfferSlot<T>>,
}

impl<T> Clone for EdgeSender<T> {
    fn clone(&self) -> Self {
        EdgeSender {
            tx: self.tx.clone(),
            permits: self.permits.clone(),
            capacity: self.capacity,
            offer: self.offer.clone(),
        }
    }
}

impl<T> EdgeSender<T> {
    /// The edge's bound in items; senders never build a batch larger than this.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Sends a batch, waiting while the edge is full (backpressure).
    pub async fn send(&self, batch: Batch<T>) -> Result<(), Closed> {
        self.reserve(batch.len()).await?.send(batch)
    }

    /// Waits until `n` items fit. Cancel-safe: dropping the future, or the reservation,
    /// gives the room back, and no item has left the caller yet.
    pub async fn reserve(&self, n: usize) -> Result<Reservation<'_, T>, Closed> {
        let n = n.min(self.capacity);
        let permit = if n == 0 {
            None
        } else {
            Some(
                self.permits
                    .acquire_many(n as u32)
                    .await
                    .map_err(|_| Closed)?,
            )
        };
        Ok(Reservation {
            sender: self,
            permit,
        })
    }

    /// True when a batch of `n` items would be accepted without waiting.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.permits.available_permits() >= n.min(self.capacity)
    }

    /// Items currently queued on the edge.
    pub fn queued(&self) -> usize {
        self.capacity - self.permits.available_permits().min(self.capacity)
    }

    /// Tells, without the item type, whether the edge is empty.
    /// Whether `probe` looks at this edge.
    pub(crate) fn is_probed_by(&self, probe: &Probe) -> bool {
        Arc::ptr_eq(&self.permits, &probe.permits)
    }

    pub(crate) fn probe(&self) -> Probe {
        Probe {
            permits: self.permits.clone(),
            capacity: self.capacity,
        }
    }

    /// Where the receiving node offers to run inline, if it may.
    pub(crate) fn offer_slot(&self) -> Option<&OfferSlot<T>> {
        self.offer.as_ref()
    }

    /// True when no other sender feeds this edge: only then may the receiver run inline.
    pub(crate) fn is_sole_sender(&self) -> bool {
        self.tx.strong_count() == 1
    }
}

/// Looks at whether an edge is empty: the node behind it has nothing queued.
#[derive(Clone)]
pub(crate) struct Probe {
    permits: Arc<Semaphore>,
    capacity: usize,
}

impl Probe {
    pub(crate) fn is_empty(&self) -> bool {
        self.permits.available_permits() >= self.capacity
    }

    /// Whether both look at the same edge.
    pub(crate) fn same_edge(&self, other: &Probe) -> bool {
        Arc::ptr_eq(&self.permits, &other.permits)
    }
}

/// Room on an edge for one batch, taken by [`EdgeSender::reserve`].
pub struct Reservation<'a, T> {
    sender: &'a EdgeSender<T>,
    permit: Option<tokio::sync::SemaphorePermit<'a>>,
}

impl<T> Reservation<'_, T> {
    /// Sends the batch it was reserved for, without waiting.
    pub fn send(self, batch: Batch<T>) -> Result<(), Closed> {
        if let Some(permit) = self.permit {
            // The receiver returns the permits when it takes the batch.
            permit.forget();
        }
        self.sender.tx.send(batch).map_err(|_| Closed)
    }
}

/// The receiving half of an edge.
pub struct EdgeReceiver<T> {
    rx: mpsc::UnboundedReceiver<Batch<T>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    offer: Option<Offer<T>>,
}

impl<T> EdgeReceiver<T> {
    /// The receiving node's side of the hand-off; dropping it declines.
    pub(crate) fn take_offer(&mut self) -> Option<Offer<T>> {
        self.offer.take()
    }

    /// Items waiting on this edge right now.
    pub fn queued(&self) -> usize {
        self.capacity - self.permits.available_permits().min(self.capacity)
    }

    /// Polls for the next batch; `Ready(None)` is end of stream.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Batch<T>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(batch)) => {
                // Exactly what `send` reserved for this batch.
                self.permits.add_permits(batch.len().min(self.capacity));
                Poll::Ready(Some(batch))
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    fn batch(n: u64) -> Batch<u64> {
        Batch {
            items: (0..n).map(|i| (Lineage::root(i), i)).collect(),
            watermark: n,
        }
    }

    #[tokio::test]
    async fn capacity_counts_items_and_receiving_frees_it() {
        let (tx, mut rx) = edge::<u64>(4);
        tx.send(batch(3)).await.unwrap();
        assert!(!tx.has_room_for(2));
        assert!(
            tx.send(batch(2)).now_or_never().is_none(),
            "must wait: 3 + 2 > 4"
        );
        let got = futures::future::poll_fn(|cx| rx.poll_recv(cx))
            .await
            .unwrap();
        assert_eq!(got.len(), 3);
        assert!(tx.has_room_for(4));
        drop(tx);
        assert!(
            futures::future::poll_fn(|cx| rx.poll_recv(cx))
                .await
                .is_none()
        );
    }
}
