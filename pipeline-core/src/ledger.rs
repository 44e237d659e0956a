//! Which items taken from other processes are finished here, so that their messages are
//! acknowledged only then (see `remote`): a process that dies before finishing an item
//! leaves it unacknowledged, and the broker delivers it again.
//!
//! The ledger counts, per lineage root, the items of that root still somewhere in this
//! process. An item taken from another process adds one; a fan-out adds a copy per extra
//! edge, a flat-map its extra outputs; an item ends when a sink consumes it, another process
//! has stored it, a stage filters it, or it fails (unless a dead-letter node takes it on), and
//! a zip's tuple ends all but one of its parts. When a root's count reaches zero, the
//! messages it came in with are acknowledged. Roots that did not come from another process
//! (a source here, a merge's fresh numbering) are not in the ledger and are ignored.
//!
//! A service's requests (see `service`) use the same ledger in a single process: each
//! request is a root, registered by its source with what to do once it is finished, and
//! told what became of it (a failure, a dropped zip partner) on the way.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Notify, mpsc};

use crate::error::NodeError;
use crate::lineage::Lineage;

/// Acknowledges one message; called once its items are finished.
pub(crate) type Ack = Box<dyn FnOnce() + Send>;

/// See the module documentation.
#[derive(Default)]
pub struct Ledger {
    open: Mutex<HashMap<u64, Entry>>,
    /// Nodes (and publishing edges) of this process still running: once none is, every
    /// item left open has been dealt with.
    running: AtomicUsize,
    all_done: Notify,
    /// Told each root that finished here (see `remote::notes`).
    watchers: Mutex<Vec<mpsc::UnboundedSender<u64>>>,
}

struct Entry {
    items: i64,
    acks: Vec<Ack>,
    /// What to do once the root is finished, told what became of it (a service's request).
    done: Option<Done>,
    fate: Fate,
}

/// Told what became of a root once every item of it is finished.
pub(crate) type Done = Box<dyn FnOnce(Fate) + Send>;

/// What became of a root's items besides the outputs a sink consumed: the first thing that
/// went wrong, if anything did.
#[derive(Debug, Clone, Default)]
pub(crate) enum Fate {
    /// Its items ended as they should: consumed, or filtered on purpose.
    #[default]
    Ended,
    /// An item of it failed (after retries) with this error.
    Failed(NodeError),
    /// A zip dropped an item of it: no partner with its lineage came on another input.
    Dropped,
    /// The run ended before its items did.
    Unfinished,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            items: 0,
            acks: Vec::new(),
            done: None,
            fate: Fate::Ended,
        }
    }

    fn finish(self) {
        for ack in self.acks {
            ack();
        }
        if let Some(done) = self.done {
            done(self.fate);
        }
    }
}

impl Ledger {
    /// An item of `lineage` arrived from another process in a message `ack` acknowledges.
    // Only a receiving edge (feature `nats`) calls this.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn arrived(&self, lineage: Lineage, ack: Ack) {
        let mut open = self.lock();
        let entry = open.entry(lineage.root_index()).or_insert_with(Entry::new);
        entry.items += 1;
        entry.acks.push(ack);
    }

    /// A request of `lineage` entered the pipeline; `done` is told what became of it once
    /// every item of it is finished.
    pub(crate) fn entered(&self, lineage: Lineage, done: Done) {
        let mut open = self.lock();
        let entry = open.entry(lineage.root_index()).or_insert_with(Entry::new);
        entry.items += 1;
        entry.done = Some(done);
    }

    /// An item of `lineage` failed with `error` (its end is counted apart).
    pub(crate) fn failed(&self, lineage: Lineage, error: &NodeError) {
        if let Some(entry) = self.lock().get_mut(&lineage.root_index())
            && matches!(entry.fate, Fate::Ended)
        {
            entry.fate = Fate::Failed(error.clone());
        }
    }

    /// A zip dropped `n` items of `lineage`, which found no partners.
    pub(crate) fn dropped(&self, lineage: Lineage, n: i64) {
        self.change(lineage, -n, Some(Fate::Dropped));
    }

    /// `delta` more (or fewer) items of `lineage`'s root are in this process.
    pub(crate) fn adjust(&self, lineage: Lineage, delta: i64) {
        if delta != 0 {
            self.change(lineage, delta, None);
        }
    }

    /// `adjust`, noting `fate` for the root unless something went wrong with it before.
    fn change(&self, lineage: Lineage, delta: i64, fate: Option<Fate>) {
        let finished = change_in(&mut self.lock(), lineage, delta, fate);
        self.finish(finished);
    }

    /// Items that start roots of their own (a loop's entry numbering what it takes):
    /// each `(from, to, done)` registers root `to`, to tell `done` once it is finished,
    /// and ends an item of `from`. One lock for them all.
    pub(crate) fn rerooted(&self, moves: impl IntoIterator<Item = (Lineage, Lineage, Done)>) {
        let mut finished = Vec::new();
        {
            let mut open = self.lock();
            for (from, to, done) in moves {
                let entry = open.entry(to.root_index()).or_insert_with(Entry::new);
                entry.items += 1;
                entry.done = Some(done);
                finished.extend(change_in(&mut open, from, -1, None));
            }
        }
        for one in finished {
            self.finish(Some(one));
        }
    }

    /// Acknowledges a root that finished, outside the lock (an ack may take a moment).
    fn finish(&self, finished: Option<(u64, Entry)>) {
        let Some((root, entry)) = finished else {
            return;
        };
        entry.finish();
        self.root_finished(root);
    }

    /// A receiver of every root that finishes in this process from now on.
    // Only an edge to another process (feature `nats`) watches.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn watch_roots(&self) -> mpsc::UnboundedReceiver<u64> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.watchers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    fn root_finished(&self, root: u64) {
        let watchers = self.watchers.lock().unwrap_or_else(|e| e.into_inner());
        for watcher in watchers.iter() {
            // Err: that edge has ended, and tells nobody any more.
            let _ = watcher.send(root);
        }
    }

    /// An item of `lineage` is finished in this process.
    pub(crate) fn ended(&self, lineage: Lineage) {
        self.adjust(lineage, -1);
    }

    /// `n` more nodes or publishing edges run in this process.
    pub(crate) fn starting(&self, n: usize) {
        self.running.fetch_add(n, Ordering::SeqCst);
    }

    /// One of them has ended.
    pub(crate) fn node_done(&self) {
        // Saturating: a publishing edge reports its end even when nothing was counted (the
        // process takes no items from other processes).
        let before = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.all_done.notify_waiters();
        }
    }

    /// Waits until every node and publishing edge of this process has ended.
    // Only a receiving edge (feature `nats`) calls this.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) async fn all_done(&self) {
        loop {
            let notified = self.all_done.notified();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Everything still open is finished (every node of this process has ended).
    // Only a receiving edge (feature `nats`) calls this.
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub(crate) fn finish_all(&self) {
        let open = std::mem::take(&mut *self.lock());
        for entry in open.into_values() {
            entry.finish();
        }
    }

    /// The run is over: roots still open never finished.
    pub(crate) fn abandon_all(&self) {
        let open = std::mem::take(&mut *self.lock());
        for mut entry in open.into_values() {
            entry.fate = Fate::Unfinished;
            entry.finish();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Entry>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Counts `delta` more items of `lineage`'s root in `open`; returns the root's entry if that
/// finished it.
fn change_in(
    open: &mut HashMap<u64, Entry>,
    lineage: Lineage,
    delta: i64,
    fate: Option<Fate>,
) -> Option<(u64, Entry)> {
    let root = lineage.root_index();
    let entry = open.get_mut(&root)?;
    if let Some(fate) = fate
        && matches!(entry.fate, Fate::Ended)
    {
        entry.fate = fate;
    }
    entry.items += delta;
    if entry.items > 0 {
        return None;
    }
    open.remove(&root).map(|entry| (root, entry))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    fn counter() -> (Arc<AtomicU64>, impl Fn() -> Ack) {
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        (acked, move || {
            let a = a.clone();
            Box::new(move || {
                a.fetch_add(1, Ordering::SeqCst);
            })
        })
    }

    #[test]
    fn a_message_is_acknowledged_once_every_copy_and_piece_has_ended() {
        let ledger = Ledger::default();
        let (acked, ack) = counter();
        let item = Lineage::root(7);
        ledger.arrived(item, ack());
        ledger.adjust(item, 1); // fanned out to two edges
        ledger.adjust(item.child(0), 2); // one copy flat-mapped into three
        for _ in 0..3 {
            ledger.ended(item.child(0));
        }
        assert_eq!(
            acked.load(Ordering::SeqCst),
            0,
            "the other copy is still here"
        );
        ledger.ended(item);
        assert_eq!(acked.load(Ordering::SeqCst), 1);
        // Roots that never came from another process are not tracked.
        ledger.ended(Lineage::root(8));
        assert_eq!(acked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn the_parts_of_a_zip_are_acknowledged_together_when_the_tuple_ends() {
        let ledger = Ledger::default();
        let (acked, ack) = counter();
        let item = Lineage::root(3);
        ledger.arrived(item, ack()); // from one edge
        ledger.arrived(item, ack()); // its partner from another
        ledger.adjust(item, -1); // zipped into one tuple
        assert_eq!(acked.load(Ordering::SeqCst), 0);
        ledger.ended(item); // the sink consumed the tuple
        assert_eq!(acked.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn watchers_hear_of_each_root_that_finishes() {
        let ledger = Ledger::default();
        let mut roots = ledger.watch_roots();
        let (_, ack) = counter();
        ledger.arrived(Lineage::root(4), ack());
        ledger.arrived(Lineage::root(9), ack());
        ledger.adjust(Lineage::root(4), 1);
        ledger.ended(Lineage::root(4));
        ledger.ended(Lineage::root(9));
        assert_eq!(roots.try_recv(), Ok(9), "root 4 has a copy left");
        ledger.ended(Lineage::root(4));
        assert_eq!(roots.try_recv(), Ok(4));
        ledger.ended(Lineage::root(5)); // never arrived: not tracked, not told
        assert!(roots.try_recv().is_err());
    }

    #[test]
    fn finishing_all_acknowledges_whatever_is_left() {
        let ledger = Ledger::default();
        let (acked, ack) = counter();
        ledger.arrived(Lineage::root(1), ack());
        ledger.arrived(Lineage::root(2), ack());
        ledger.finish_all();
        assert_eq!(acked.load(Ordering::SeqCst), 2);
    }
}
