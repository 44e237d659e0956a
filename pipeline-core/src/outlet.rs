//! A node's output: it batches items and broadcasts each batch to every outgoing edge.
//!
//! A batch leaves when it is full or when the node has nothing more to do right now (its
//! input is momentarily empty), so heavy load gets large batches and light load gets low
//! latency.

use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::wire::handoff::{self, Adopted, Handed, Kernel, OfferSlot};
use crate::wire::split::SplitOff;
use crate::wire::{Batch, Closed, EdgeSender, MAX_BATCH, Probe};

type Items<T> = Vec<(Lineage, T)>;
/// Copies a batch for one more edge of a fan-out.
type Duplicate<T> = fn(&Items<T>) -> Items<T>;

pub struct Outlet<T> {
    targets: Vec<EdgeSender<T>>,
    /// Copies a batch for every target but the last; set only when there are several.
    duplicate: Option<Duplicate<T>>,
    buf: Items<T>,
    batch_max: usize,
    watermark: u64,
    sent_watermark: u64,
    /// Time spent waiting for room downstream since the last `take_blocked`.
    blocked: Duration,
    /// Per target: whether the node behind it runs in this outlet's loop (see
    /// [`crate::fuse`]).
    fusion: Vec<Fusion<T>>,
    /// Whether the node owning this outlet runs on a thread of its own, where a stage that
    /// blocks may run inline.
    on_thread: bool,
    /// The edges at the end of the inlined chain (or this outlet's own): a source checks
    /// them per item, so they are refreshed per batch instead of walking the chain.
    idle_probes: Vec<Probe>,
    /// The time the owner just read, if it did: an inline node starts its batch then.
    handing_at: Option<Instant>,
    /// Counts the copies a fan-out makes of items from other processes (see `ledger`).
    ledger: Option<Arc<Ledger>>,
    /// Maps each batch through the nodes after this outlet in one pass per item, while they
    /// all run inline: a chain of maps (see [`crate::fuse::chain`]) or a fork
    /// ([`crate::fuse::fork`]).
    kernel: Option<Box<dyn Kernel<T>>>,
    /// A node after this outlet that left for a core of its own, while the outlet judges
    /// whether that paid.
    split_off: Option<SplitOff<T>>,
}

enum Fusion<T> {
    /// Batches go over the channel.
    Channel,
    /// The next node may offer to run inline; settled at the first send.
    Offered(OfferSlot<T>),
    /// The next node runs inline. Dropping it gives it back to its own task.
    Adopted(Adopted<T>),
}

impl<T: Send + 'static> Outlet<T> {
    /// An outlet feeding one edge.
    pub fn single(target: EdgeSender<T>) -> Self {
        Self::with_targets(vec![target], None)
    }

    /// An outlet broadcasting every item to all `targets` (fan-out).
    pub fn broadcast(targets: Vec<EdgeSender<T>>) -> Self
    where
        T: Clone,
    {
        let duplicate = (targets.len() > 1).then_some(clone_items::<T> as Duplicate<T>);
        Self::with_targets(targets, duplicate)
    }

    fn with_targets(targets: Vec<EdgeSender<T>>, duplicate: Option<Duplicate<T>>) -> Self {
        assert!(!targets.is_empty(), "an outlet needs at least one edge");
        let batch_max = channel_batch_max(&targets);
        // A node that fans out may run each of its targets inline, one after the other.
        let fusion = targets
            .iter()
            .map(|target| {
                target
                    .offer_slot()
                    .map_or(Fusion::Channel, |slot| Fusion::Offered(slot.clone()))
            })
            .collect();
        Outlet {
            idle_probes: targets.iter().map(EdgeSender::probe).collect(),
            targets,
            duplicate,
            buf: Vec::with_capacity(batch_max),
            batch_max,
            watermark: 0,
            sent_watermark: 0,
            blocked: Duration::ZERO,
            fusion,
            on_thread: false,
            handing_at: None,
            ledger: None,
            kernel: None,
            split_off: None,
        }
    }

    /// Whether the outlet feeds a single edge.
    pub(crate) fn feeds_one_edge(&self) -> bool {
        self.targets.len() == 1
    }

    /// Gives the outlet a shortcut through the nodes after it (see `fuse`), if `pipeline!`
    /// named nodes it can run.
    pub(crate) fn set_kernel(&mut self, kernel: Option<Box<dyn Kernel<T>>>) {
        self.kernel = kernel;
    }

    /// The node this outlet runs inline, if it feeds exactly one edge and runs its node.
    pub(crate) fn sole_adopted(&mut self) -> Option<&mut (dyn std::any::Any + 'static)> {
        match self.fusion.as_mut_slice() {
            [Fusion::Adopted(next)] => next.as_any().map(|next| next as &mut dyn std::any::Any),
            _ => None,
        }
    }

    /// Records that a chain's pass handed everything below `watermark` to the node this
    /// outlet runs inline, as a flush would have.
    pub(crate) fn passed_inline(&mut self, watermark: u64) {
        self.advance(watermark);
        self.sent_watermark = self.watermark;
    }

    /// Says whether the owning node runs on a thread of its own (it does when its code may
    /// block); set before the node starts.
    pub(crate) fn set_on_thread(&mut self, on_thread: bool) {
        self.on_thread = on_thread;
    }

    /// Settles the offers from the next nodes: waits until each has been set up and offered
    /// to run inline, or declined. Cancel-safe: a dropped offer goes back to its node.
    async fn settle_fusion(&mut self) {
        for (target, fusion) in self.targets.iter().zip(&mut self.fusion) {
            let Fusion::Offered(slot) = fusion else {
                continue;
            };
            let offer = handoff::take_offer(slot);
            *fusion = Fusion::Channel;
            let Some(Ok(next)) = (match offer {
                Some(offer) => Some(offer.await),
                None => None,
            }) else {
                continue;
            };
            // Past a depth, the next node keeps its own task: a chain of hundreds of stages
            // each running inside the one before would overflow the thread's stack.
            let room_on_stack = INLINE_DEPTH.get() < MAX_INLINE_DEPTH;
            if room_on_stack && target.is_sole_sender() && (self.on_thread || !next.blocks()) {
                *fusion = Fusion::Adopted(next);
            }
            // Otherwise `next` is dropped here, which sends it back to its own task.
        }
        self.refresh_batch_max();
        self.refresh_probes();
    }

    /// Sizes batches for the channels still in use; with none, for the inline nodes.
    fn refresh_batch_max(&mut self) {
        let channels: Vec<&EdgeSender<T>> = self
            .targets
            .iter()
            .zip(&self.fusion)
            .filter(|(_, fusion)| !matches!(fusion, Fusion::Adopted(_)))
            .map(|(target, _)| target)
            .collect();
        self.batch_max = if channels.is_empty() {
            MAX_BATCH
        } else {
            channel_batch_max(channels)
        };
    }

    /// The edges to look at for whether the next nodes are idle: those of the chains run
    /// inline (which may have grown or shrunk), and the channels.
    fn refresh_probes(&mut self) {
        if self.probes_are_current() {
            // Most batches change nothing: no reference counts to touch.
            return;
        }
        self.idle_probes.clear();
        for (target, fusion) in self.targets.iter().zip(&self.fusion) {
            match fusion {
                Fusion::Adopted(next) => self.idle_probes.extend_from_slice(next.idle_probes()),
                _ => self.idle_probes.push(target.probe()),
            }
        }
    }

    fn probes_are_current(&self) -> bool {
        let mut current = self.idle_probes.iter();
        for (target, fusion) in self.targets.iter().zip(&self.fusion) {
            let same = match fusion {
                Fusion::Adopted(next) => next
                    .idle_probes()
                    .iter()
                    .all(|probe| current.next().is_some_and(|p| p.same_edge(probe))),
                _ => current.next().is_some_and(|p| target.is_probed_by(p)),
            };
            if !same {
                return false;
            }
        }
        current.next().is_none()
    }

    /// Reports fan-out copies to the process's ledger of items from other processes.
    pub(crate) fn track(&mut self, ledger: Arc<Ledger>) {
        self.ledger = Some(ledger);
    }

    /// Tells the outlet the time, read just now, so that an inline node it hands the next
    /// batch to need not read it again.
    pub(crate) fn handing_at(&mut self, now: Instant) {
        self.handing_at = Some(now);
    }

    /// Queues one item; sends the batch when it is full.
    #[inline]
    pub async fn push(&mut self, lineage: Lineage, item: T) -> Result<(), Closed> {
        if self.buf.len() == self.buf.capacity() {
            // A stage running inline may have kept the last batch's allocation: one
            // allocation per batch, not a doubling series.
            self.buf.reserve(self.batch_max.max(1));
        }
        self.buf.push((lineage, item));
        if self.buf.len() >= self.batch_max {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Room left in the batch being filled (at least 1: a full batch has already gone).
    pub(crate) fn room(&self) -> usize {
        self.batch_max.saturating_sub(self.buf.len()).max(1)
    }

    /// Items in the batch being filled.
    pub(crate) fn held(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch being filled is full.
    pub(crate) fn is_full(&self) -> bool {
        self.buf.len() >= self.batch_max
    }

    /// Queues up to `n` items of `items` (no more than [`room`](Self::room) should be
    /// asked), numbering their lineage roots from `first_root`; returns how many it took,
    /// and the iterator.
    ///
    /// The iterator comes by value and stays in this frame while it runs: behind a
    /// reference, its state (a range's next number) would go to memory and back on every
    /// item, which costs a cheap source more than the rest of its loop.
    pub(crate) fn fill<I: Iterator<Item = T>>(
        &mut self,
        mut items: I,
        n: usize,
        first_root: u64,
    ) -> (usize, I) {
        let before = self.buf.len();
        if self.buf.capacity() - before < n {
            self.buf
                .reserve(n.max(self.batch_max - before.min(self.batch_max)));
        }
        /// Counts the slots written, and gives them to the vector also if `next` panics.
        struct Written<'a, T> {
            buf: &'a mut Vec<T>,
            len: usize,
        }
        impl<T> Drop for Written<'_, T> {
            fn drop(&mut self) {
                // SAFETY: the slots up to `len` hold items written below.
                unsafe { self.buf.set_len(self.len) }
            }
        }
        let slots = self.buf.as_mut_ptr();
        let mut written = Written {
            len: before,
            buf: &mut self.buf,
        };
        for root in first_root..first_root + n as u64 {
            let Some(item) = items.next() else { break };
            // SAFETY: capacity for `n` more items was reserved above, and `written.len`
            // is below `before + n` here.
            unsafe { slots.add(written.len).write((Lineage::root(root), item)) };
            written.len += 1;
        }
        drop(written);
        (self.buf.len() - before, items)
    }

    /// Queues many items (leaving `items` empty), sending each batch that fills up.
    pub async fn extend(&mut self, items: &mut Items<T>) -> Result<(), Closed> {
        self.extend_then_advance(items, None).await
    }

    /// [`extend`](Self::extend), then [`advance`](Self::advance) to `watermark` if given,
    /// before the batch holding the last of `items` leaves: that batch carries the
    /// watermark, rather than an empty message after it.
    pub(crate) async fn extend_then_advance(
        &mut self,
        items: &mut Items<T>,
        watermark: Option<u64>,
    ) -> Result<(), Closed> {
        if self.buf.is_empty() && items.len() <= self.batch_max {
            // Hand the whole vector over instead of moving item by item.
            std::mem::swap(&mut self.buf, items);
        } else {
            while items.len() + self.buf.len() > self.batch_max {
                let take = self.batch_max.saturating_sub(self.buf.len()).max(1);
                self.buf.extend(items.drain(..take));
                self.flush().await?;
            }
            self.buf.append(items);
        }
        if let Some(watermark) = watermark {
            self.advance(watermark);
        }
        if self.buf.len() >= self.batch_max {
            self.flush().await?;
        }
        Ok(())
    }

    /// Declares that every item with a lineage root below `watermark` has been pushed.
    pub fn advance(&mut self, watermark: u64) {
        self.watermark = self.watermark.max(watermark);
    }

    /// True when a watermark-only message is worth sending: enough was filtered since the
    /// last send that a zip downstream may be holding partial tuples it could drop.
    pub fn watermark_lags(&self) -> bool {
        self.buf.is_empty()
            && self.watermark.saturating_sub(self.sent_watermark) >= self.batch_max as u64
    }

    /// Sends what is buffered (and the watermark), waiting for room on every edge.
    /// Cancel-safe: the items stay buffered until room on all edges is held.
    pub async fn flush(&mut self) -> Result<(), Closed> {
        // A flush runs the nodes adopted inline, whose outlets flush in turn: the depth of
        // that nesting is how deep the thread's stack goes.
        Nested(std::pin::pin!(self.flush_here())).await
    }

    async fn flush_here(&mut self) -> Result<(), Closed> {
        let mut handed_at = self.handing_at.take();
        if self.buf.is_empty() && self.watermark == self.sent_watermark {
            return Ok(());
        }
        if self.fusion.iter().any(|f| matches!(f, Fusion::Offered(_))) {
            self.settle_fusion().await;
        }
        let watermark = self.watermark;
        if let Some(end) = self.run_kernel(watermark, &mut handed_at).await? {
            self.blocked += end;
            if self.buf.is_empty() {
                self.sent_watermark = watermark;
                return Ok(());
            }
            // A node panicked: what the pass did not get to takes the usual path.
        }
        if let [Fusion::Adopted(next)] = self.fusion.as_mut_slice() {
            let now = handed_at.unwrap_or_else(Instant::now);
            let handed = next.take(&mut self.buf, watermark, now).await?;
            if let Handed::Stays { done_at } | Handed::Leaves { done_at } = handed {
                // Waiting for the next node to be done is being blocked on it, inline or not.
                self.blocked += done_at.saturating_duration_since(now);
                self.sent_watermark = watermark;
            }
            if !matches!(handed, Handed::Stays { .. }) {
                self.split_off = next.take_split().map(|split| SplitOff::new(0, split));
                // Dropping the node gives it back; the channel takes over.
                self.fusion[0] = Fusion::Channel;
                self.refresh_batch_max();
            }
            self.refresh_probes();
            if handed == Handed::Declined {
                let since = Instant::now();
                let items = std::mem::take(&mut self.buf);
                let before = self.sent_watermark;
                send_in_chunks(&self.targets[0], items, (before, watermark), self.batch_max)
                    .await?;
                self.blocked += since.elapsed();
                self.sent_watermark = watermark;
            }
            return Ok(());
        }
        let n = self.buf.len();
        // Only a wait is timed, so a flowing pipeline pays no clock reads here.
        let all_have_room = self
            .targets
            .iter()
            .zip(&self.fusion)
            .all(|(target, fusion)| matches!(fusion, Fusion::Adopted(_)) || target.has_room_for(n));
        let waiting_since = (!all_have_room).then(Instant::now);
        if let ([target], [Fusion::Channel]) = (self.targets.as_slice(), self.fusion.as_slice()) {
            let room = target.reserve(n).await?;
            room.send(Batch {
                items: std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch_max)),
                watermark,
            })?;
        } else {
            self.fan_out(watermark, handed_at).await?;
        }
        self.sent_watermark = watermark;
        if let Some(since) = waiting_since {
            self.blocked += since.elapsed();
        }
        if self.split_off.is_some() {
            self.judge_split(n).await?;
        }
        Ok(())
    }

    /// After `n` items went on while a node after this outlet runs on a core of its own:
    /// asks it back if that did not pay (see [`SplitOff::judge`]).
    async fn judge_split(&mut self, n: usize) -> Result<(), Closed> {
        let Some(off) = &mut self.split_off else {
            return Ok(());
        };
        let queued = self.targets[off.target].queued();
        let Some(pays) = off.judge(n, queued, self.batch_max) else {
            return Ok(());
        };
        let off = self.split_off.take().expect("just judged");
        if pays {
            return Ok(());
        }
        let target = off.target;
        self.fusion[target] = Fusion::Offered(Arc::new(std::sync::Mutex::new(Some(off.ask()))));
        // The node may be waiting for input: a batch with no items wakes it to answer.
        let room = self.targets[target].reserve(0).await?;
        room.send(Batch {
            items: Vec::new(),
            watermark: self.sent_watermark,
        })
    }

    /// Runs the batch through the kernel for the nodes after this outlet, if it has one and
    /// they all run inline and are ready: returns how long the pass took (this outlet was
    /// blocked on it). Sets `handed_at` for the usual path, if it has items left.
    async fn run_kernel(
        &mut self,
        watermark: u64,
        handed_at: &mut Option<Instant>,
    ) -> Result<Option<Duration>, Closed> {
        let Some(kernel) = self.kernel.as_mut() else {
            return Ok(None);
        };
        if self.ledger.is_some() || self.buf.is_empty() {
            // Copies of items from other processes are counted one by one: not in a pass.
            return Ok(None);
        }
        let mut targets = Vec::with_capacity(self.fusion.len());
        for fusion in &mut self.fusion {
            match fusion {
                Fusion::Adopted(next) => match next.as_any() {
                    Some(next) => targets.push(next),
                    None => return Ok(None),
                },
                _ => return Ok(None),
            }
        }
        let now = handed_at.unwrap_or_else(Instant::now);
        let Some(pass) = kernel.run(targets, &mut self.buf, watermark, now) else {
            *handed_at = Some(now);
            return Ok(None);
        };
        let end = pass.await?;
        *handed_at = None;
        Ok(Some(end.saturating_duration_since(now)))
    }

    /// Sends a copy of the batch to every target: first on the channels, once room on all of
    /// them is held, then to the nodes running inline, one after the other.
    async fn fan_out(&mut self, watermark: u64, handed_at: Option<Instant>) -> Result<(), Closed> {
        let n = self.buf.len();
        let channels: Vec<usize> = (0..self.targets.len())
            .filter(|&i| !matches!(self.fusion[i], Fusion::Adopted(_)))
            .collect();
        let mut rooms = Vec::with_capacity(channels.len());
        for &i in &channels {
            rooms.push(self.targets[i].reserve(n).await?);
        }
        let items = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch_max));
        if let Some(ledger) = &self.ledger {
            let copies = self.targets.len() as i64 - 1;
            for (lineage, _) in &items {
                ledger.adjust(*lineage, copies);
            }
        }
        let duplicate = self
            .duplicate
            .expect("a fan-out outlet is built by `broadcast`");
        let mut copies: Vec<Items<T>> =
            (1..self.targets.len()).map(|_| duplicate(&items)).collect();
        copies.push(items);
        // Channels first: their nodes get going while the inline ones run here.
        for (room, &i) in rooms.into_iter().zip(&channels) {
            room.send(Batch {
                items: std::mem::take(&mut copies[i]),
                watermark,
            })?;
        }
        let (mut handed_at, mut ran_inline) = (handed_at, false);
        for (i, copy) in copies.iter_mut().enumerate() {
            let Fusion::Adopted(next) = &mut self.fusion[i] else {
                continue;
            };
            // The first inline node starts when the caller read the clock; the next ones
            // when the one before them is done.
            let now = handed_at.unwrap_or_else(Instant::now);
            let handed = next.take(copy, watermark, now).await?;
            ran_inline = true;
            match handed {
                Handed::Stays { done_at } | Handed::Leaves { done_at } => {
                    self.blocked += done_at.saturating_duration_since(now);
                    handed_at = Some(done_at);
                }
                Handed::Declined => {}
            }
            if !matches!(handed, Handed::Stays { .. }) {
                if let Some(split) = next.take_split() {
                    self.split_off = Some(SplitOff::new(i, split));
                }
                // Dropping the node gives it back; its channel takes over.
                self.fusion[i] = Fusion::Channel;
                self.refresh_batch_max();
            }
            if handed == Handed::Declined {
                let since = Instant::now();
                let (items, before) = (std::mem::take(copy), self.sent_watermark);
                send_in_chunks(&self.targets[i], items, (before, watermark), self.batch_max)
                    .await?;
                self.blocked += since.elapsed();
                handed_at = None;
            }
        }
        if ran_inline {
            self.refresh_probes();
        }
        Ok(())
    }

    /// Sends the rest and ends the stream on every edge (the poison pill).
    pub async fn close(mut self) -> Result<(), Closed> {
        self.advance(u64::MAX);
        self.flush().await
        // Dropping the senders here is the end-of-stream signal.
    }

    /// Time spent waiting for room downstream (or for the nodes run inline) since the last
    /// call.
    pub fn take_blocked(&mut self) -> Duration {
        std::mem::take(&mut self.blocked)
    }

    /// Whether the next flush would send something.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// True when some edge is empty: the node behind it is idle, so sending now buys
    /// latency at no throughput cost. Also true when the chain after this outlet runs
    /// inline to its end: nothing waits for another thread then.
    pub fn downstream_idle(&self) -> bool {
        self.idle_probes.is_empty() || self.idle_probes.iter().any(Probe::is_empty)
    }

    pub(crate) fn idle_probes(&self) -> &[Probe] {
        &self.idle_probes
    }
}

/// How many flushes may nest on one thread, each running the nodes adopted by the one
/// before (see [`crate::fuse`]). A debug build's frames for one level take some kilobytes;
/// 32 levels stay well within the 2 MiB a tokio thread has.
const MAX_INLINE_DEPTH: usize = 32;

thread_local! {
    /// Flushes being polled on this thread, one inside the other.
    static INLINE_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How many flushes are being polled on this thread, one inside the other: 1 in a node
/// that the thread's own node runs inline.
pub(crate) fn inline_depth() -> usize {
    INLINE_DEPTH.get()
}

/// A flush, counted in [`INLINE_DEPTH`] while it is polled.
struct Nested<F>(F);

impl<F: std::future::Future + Unpin> std::future::Future for Nested<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        /// Leaves the level also when a node's panic unwinds through it.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                INLINE_DEPTH.set(INLINE_DEPTH.get() - 1);
            }
        }
        INLINE_DEPTH.set(INLINE_DEPTH.get() + 1);
        let _level = Level;
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

/// The largest batch for sending over these channels: a quarter of the smallest one's
/// capacity, so that the sender fills the next batch while the channel holds the ones
/// before it, rather than both sides taking turns.
fn channel_batch_max<'a, T: 'a>(channels: impl IntoIterator<Item = &'a EdgeSender<T>>) -> usize {
    channels
        .into_iter()
        .map(|channel| channel.capacity() / 4)
        .min()
        .unwrap_or(1)
        .clamp(1, MAX_BATCH)
}

/// Sends a batch that was meant for a node running inline, which declined it, over the
/// channel in pieces no larger than its batches: only the last piece carries the new
/// watermark (`watermarks`: the one sent last, and the new one).
async fn send_in_chunks<T>(
    target: &EdgeSender<T>,
    mut items: Items<T>,
    (before, watermark): (u64, u64),
    batch_max: usize,
) -> Result<(), Closed> {
    while items.len() > batch_max {
        let rest = items.split_off(batch_max);
        target
            .send(Batch {
                items,
                watermark: before,
            })
            .await?;
        items = rest;
    }
    target.send(Batch { items, watermark }).await
}

fn clone_items<T: Clone>(items: &Items<T>) -> Items<T> {
    items.clone()
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use super::*;
    use crate::wire::edge;

    fn outlet() -> (Outlet<String>, crate::wire::EdgeReceiver<String>) {
        let (tx, rx) = edge::<String>(64);
        (Outlet::single(tx), rx)
    }

    #[test]
    fn fill_numbers_the_items_it_takes_and_hands_back_the_rest() {
        let (mut out, _rx) = outlet();
        out.buf.push((Lineage::root(0), "held".to_string()));
        let (took, mut rest) = out.fill((1..10).map(|n| n.to_string()), 4, 7);
        assert_eq!(took, 4);
        let held: Vec<(Lineage, String)> = std::mem::take(&mut out.buf);
        let expected: Vec<(Lineage, String)> = std::iter::once((Lineage::root(0), "held".into()))
            .chain(
                (7..11)
                    .zip(1..5)
                    .map(|(root, n)| (Lineage::root(root), n.to_string())),
            )
            .collect();
        assert_eq!(held, expected);
        assert_eq!(
            rest.next().as_deref(),
            Some("5"),
            "the iterator goes on where it was"
        );
    }

    #[test]
    fn fill_stops_where_the_iterator_ends() {
        let (mut out, _rx) = outlet();
        let (took, _) = out.fill(["a", "b"].map(String::from).into_iter(), 5, 0);
        assert_eq!((took, out.buf.len()), (2, 2));
    }

    #[test]
    fn fill_keeps_what_it_wrote_when_the_iterator_panics() {
        let (mut out, _rx) = outlet();
        let items = (0..10).map(|n| {
            assert!(n < 3, "the iterator fails at {n}");
            n.to_string()
        });
        let filled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _rest = out.fill(items, 10, 0);
        }));
        assert!(filled.is_err());
        // Each string written before the panic is in the buffer once (Miri would see a
        // leak or a double drop otherwise).
        let held: Vec<String> = out.buf.drain(..).map(|(_, s)| s).collect();
        assert_eq!(held, ["0", "1", "2"]);
    }

    #[tokio::test]
    async fn a_declined_batch_goes_over_the_channel_in_pieces_that_fit() {
        let (tx, mut rx) = edge::<u64>(8);
        let items: Items<u64> = (0..20).map(|i| (Lineage::root(i), i)).collect();
        let send = send_in_chunks(&tx, items, (3, 20), 2);
        let receive = async {
            let mut got = Vec::new();
            while got.len() < 10 {
                let batch = futures::future::poll_fn(|cx| rx.poll_recv(cx))
                    .await
                    .expect("open");
                got.push((batch.len(), batch.watermark));
            }
            got
        };
        let (sent, got) = tokio::join!(send, receive);
        sent.unwrap();
        let mut expected = vec![(2, 3); 9];
        expected.push((2, 20));
        assert_eq!(
            got, expected,
            "pieces of 2; the last one moves the watermark"
        );
    }
}
