//! A zip node running inline, inside the nodes that feed it (see the parent module).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{AcceptInput, Pairing, lock};
use crate::inlet::Dropped;
use crate::lineage::Lineage;
use crate::wire::handoff::{Adoptable, Adopted, Handed, Taken};
use crate::wire::{Closed, Probe};

/// The zip node while it runs inline, shared by the feeds of its inputs.
pub(super) struct Shared<C: Pairing> {
    core: Arc<Mutex<C>>,
    node: Mutex<NodeSlot<C::Tuple>>,
    blocks: bool,
}

enum NodeSlot<T> {
    /// Waiting for the next tuples.
    Inline(Adopted<T>),
    /// A feed is running it; `give_back`: a feed ended meanwhile, so it goes back after.
    Busy { give_back: bool },
    /// Back in its own task.
    Gone,
}

impl<T> NodeSlot<T> {
    /// Puts back the node that was busy, unless a feed ended meanwhile: then the node is
    /// returned, for the caller to drop once the slot is unlocked, which gives it back to
    /// its own task.
    fn put_back(&mut self, node: Adopted<T>) -> Option<Adopted<T>> {
        if matches!(self, NodeSlot::Busy { give_back: true }) {
            *self = NodeSlot::Gone;
            Some(node)
        } else {
            *self = NodeSlot::Inline(node);
            None
        }
    }
}

/// One input's side of a zip node running inline: what the node feeding that input adopts.
pub(crate) struct ZipFeed<C: Pairing, const I: usize> {
    shared: Arc<Shared<C>>,
    /// The edges after the zip node's chain, as they were when this feed last ran it.
    probes: Vec<Probe>,
}

impl<C: Pairing> Shared<C> {
    /// The zip node `node`, to run inline on the pairing state `core`.
    pub(super) fn new(core: Arc<Mutex<C>>, node: Adopted<C::Tuple>) -> Arc<Self> {
        Arc::new(Shared {
            core,
            blocks: node.blocks(),
            node: Mutex::new(NodeSlot::Inline(node)),
        })
    }

    /// The feed of input `I`, for the node feeding that input to adopt.
    pub(super) fn feed<const I: usize>(self: &Arc<Self>) -> ZipFeed<C, I> {
        let probes = match &*lock(&self.node) {
            NodeSlot::Inline(node) => node.idle_probes().to_vec(),
            _ => Vec::new(),
        };
        ZipFeed {
            shared: self.clone(),
            probes,
        }
    }
}

/// Runs the zip node on the tuples ready; puts it back (or gives it back) when done, also
/// when the run is cut short.
struct Running<'a, C: Pairing> {
    shared: &'a Shared<C>,
    node: Option<Adopted<C::Tuple>>,
}

impl<C: Pairing> Running<'_, C> {
    async fn run(&mut self, mut now: Instant, probes: &mut Vec<Probe>) -> Result<Handed, Closed> {
        let node = self.node.as_mut().expect("taken only at the end");
        loop {
            let (ready, dropped) = {
                let mut core = lock(&self.shared.core);
                (core.take_ready(), core.take_dropped())
            };
            if dropped.tuples > 0 {
                // Counted as it happens, as the node's own loop would.
                node.dropped_partial(dropped);
            }
            let mut batch = match ready {
                Some(batch) => batch,
                None => {
                    // Checked again with the slot held: a feed that found the node busy filed
                    // its items before it looked, so they are seen here or it runs them.
                    let mut slot = lock(&self.shared.node);
                    match lock(&self.shared.core).take_ready() {
                        Some(batch) => batch,
                        None => {
                            probes.clear();
                            probes.extend_from_slice(node.idle_probes());
                            let node = self.node.take().expect("present");
                            if let Some(node) = slot.put_back(node) {
                                drop(slot);
                                drop(node);
                                return Ok(Handed::Leaves { done_at: now });
                            }
                            return Ok(Handed::Stays { done_at: now });
                        }
                    }
                }
            };
            match node.take(&mut batch.items, batch.watermark, now).await? {
                Handed::Stays { done_at } => now = done_at,
                Handed::Leaves { done_at } => {
                    // Dropping the node (below) gives it back; its own task takes the
                    // tuples still ready from the shared state.
                    return Ok(Handed::Leaves { done_at });
                }
                Handed::Declined => {
                    lock(&self.shared.core).put_back(batch.items);
                    return Ok(Handed::Leaves { done_at: now });
                }
            }
        }
    }
}

impl<C: Pairing> Drop for Running<'_, C> {
    fn drop(&mut self) {
        if let Some(node) = self.node.take() {
            // It left, failed, or the run was cut short: back to its own task.
            *lock(&self.shared.node) = NodeSlot::Gone;
            drop(node);
        }
    }
}

/// The zip node lent to a fork's pass (see `fuse::fork`), which hands it whole tuples:
/// busy to the feeds meanwhile. Dropping it puts the node back.
pub(crate) struct Lent<C: Pairing> {
    shared: Arc<Shared<C>>,
    node: Option<Adopted<C::Tuple>>,
}

impl<C: Pairing> Lent<C> {
    pub(crate) fn node(&mut self) -> &mut Adopted<C::Tuple> {
        self.node.as_mut().expect("taken only on drop")
    }
}

impl<C: Pairing> Drop for Lent<C> {
    fn drop(&mut self) {
        let Some(node) = self.node.take() else {
            return;
        };
        let back = lock(&self.shared.node).put_back(node);
        drop(back);
    }
}

impl<C: AcceptInput<I>, const I: usize> ZipFeed<C, I> {
    /// The zip node, if it runs inline with nothing waiting to be paired: then the parts of
    /// a tuple may go straight from the branches to the node, with no pairing at all.
    pub(crate) fn lend(&self) -> Option<Lent<C>> {
        let mut slot = lock(&self.shared.node);
        if !matches!(*slot, NodeSlot::Inline(_)) || !lock(&self.shared.core).is_idle() {
            return None;
        }
        let NodeSlot::Inline(node) =
            std::mem::replace(&mut *slot, NodeSlot::Busy { give_back: false })
        else {
            unreachable!("checked above")
        };
        Some(Lent {
            shared: self.shared.clone(),
            node: Some(node),
        })
    }

    /// Whether `lent` is this feed's zip node.
    pub(crate) fn feeds(&self, lent: &Lent<C>) -> bool {
        Arc::ptr_eq(&self.shared, &lent.shared)
    }

    /// Every item below `watermark` went through this input in a fork's pass: no part of a
    /// tuple below it will come on it any more.
    pub(crate) fn passed(&self, watermark: u64) {
        lock(&self.shared.core).accept(Vec::new(), watermark);
    }
}

impl<C: AcceptInput<I>, const I: usize> Adoptable<C::Item> for ZipFeed<C, I> {
    fn blocks(&self) -> bool {
        self.shared.blocks
    }

    fn take<'a>(
        &'a mut self,
        items: &'a mut Vec<(Lineage, C::Item)>,
        watermark: u64,
        handed_at: Instant,
    ) -> Taken<'a> {
        Box::pin(async move {
            let node = {
                let mut slot = lock(&self.shared.node);
                if matches!(*slot, NodeSlot::Gone) {
                    return Ok(Handed::Declined);
                }
                lock(&self.shared.core).accept(std::mem::take(items), watermark);
                match std::mem::replace(&mut *slot, NodeSlot::Busy { give_back: false }) {
                    NodeSlot::Inline(node) => node,
                    busy => {
                        // Another feed is running the node: it pairs these items too.
                        *slot = busy;
                        return Ok(Handed::Stays { done_at: handed_at });
                    }
                }
            };
            let shared = &*self.shared;
            let mut running = Running {
                shared,
                node: Some(node),
            };
            running.run(handed_at, &mut self.probes).await
        })
    }

    fn idle_probes(&self) -> &[Probe] {
        &self.probes
    }

    fn as_any(&mut self) -> Option<&mut (dyn std::any::Any + Send + 'static)> {
        Some(self)
    }

    fn dropped_partial(&self, dropped: Dropped) {
        // A zip tells its node itself (see `Running`); this passes on anything else.
        if let NodeSlot::Inline(node) = &*lock(&self.shared.node) {
            node.dropped_partial(dropped);
        }
    }
}

impl<C: Pairing, const I: usize> Drop for ZipFeed<C, I> {
    fn drop(&mut self) {
        // The node feeding this input uses its channel from now on, so the zip node must
        // read its channels again.
        let mut slot = lock(&self.shared.node);
        match &mut *slot {
            NodeSlot::Inline(_) => {
                let NodeSlot::Inline(node) = std::mem::replace(&mut *slot, NodeSlot::Gone) else {
                    unreachable!()
                };
                drop(slot);
                drop(node);
            }
            NodeSlot::Busy { give_back } => *give_back = true,
            NodeSlot::Gone => {}
        }
    }
}
