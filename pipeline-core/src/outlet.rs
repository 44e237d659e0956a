//! A node's output: it batches items and broadcasts each batch to every outgoing edge.
//!
//! A batch leaves when it is full or when the node has nothing more to do right now (its
//! input is momentarily empty), so heavy load gets large batches and light load gets low
//! latency.

use std::time::{Duration, Instant};

use crate::lineage::Lineage;
use crate::wire::{Batch, Closed, EdgeSender, MAX_BATCH};

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
        let batch_max = targets
            .iter()
            .map(EdgeSender::capacity)
            .min()
            .unwrap_or(1)
            .min(MAX_BATCH);
        Outlet {
            targets,
            duplicate,
            buf: Vec::with_capacity(batch_max),
            batch_max,
            watermark: 0,
            sent_watermark: 0,
            blocked: Duration::ZERO,
        }
    }

    /// Queues one item; sends the batch when it is full.
    #[inline]
    pub async fn push(&mut self, lineage: Lineage, item: T) -> Result<(), Closed> {
        self.buf.push((lineage, item));
        if self.buf.len() >= self.batch_max {
            self.flush().await
        } else {
            Ok(())
        }
    }

    /// Queues many items (leaving `items` empty), sending each batch that fills up.
    pub async fn extend(&mut self, items: &mut Items<T>) -> Result<(), Closed> {
        if self.buf.is_empty() && items.len() < self.batch_max {
            // Hand the whole vector over instead of moving item by item.
            std::mem::swap(&mut self.buf, items);
            return Ok(());
        }
        while !items.is_empty() {
            let room = self.batch_max.saturating_sub(self.buf.len()).max(1);
            let take = room.min(items.len());
            self.buf.extend(items.drain(..take));
            if self.buf.len() >= self.batch_max {
                self.flush().await?;
            }
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
        if self.buf.is_empty() && self.watermark == self.sent_watermark {
            return Ok(());
        }
        let n = self.buf.len();
        let watermark = self.watermark;
        // Only a wait is timed, so a flowing pipeline pays no clock reads here.
        let waiting_since = (!self.targets.iter().all(|t| t.has_room_for(n))).then(Instant::now);
        if let [target] = self.targets.as_slice() {
            let room = target.reserve(n).await?;
            room.send(Batch {
                items: std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch_max)),
                watermark,
            })?;
        } else {
            let mut rooms = Vec::with_capacity(self.targets.len());
            for target in &self.targets {
                rooms.push(target.reserve(n).await?);
            }
            let items = std::mem::replace(&mut self.buf, Vec::with_capacity(self.batch_max));
            let duplicate = self
                .duplicate
                .expect("a fan-out outlet is built by `broadcast`");
            let last = rooms.pop().expect("at least one target");
            for room in rooms {
                room.send(Batch {
                    items: duplicate(&items),
                    watermark,
                })?;
            }
            last.send(Batch { items, watermark })?;
        }
        self.sent_watermark = watermark;
        if let Some(since) = waiting_since {
            self.blocked += since.elapsed();
        }
        Ok(())
    }

    /// Sends the rest and ends the stream on every edge (the poison pill).
    pub async fn close(mut self) -> Result<(), Closed> {
        self.advance(u64::MAX);
        self.flush().await
        // Dropping the senders here is the end-of-stream signal.
    }

    /// Time spent waiting for room downstream since the last call.
    pub fn take_blocked(&mut self) -> Duration {
        std::mem::take(&mut self.blocked)
    }

    /// Whether the next flush would send something.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// True when some edge is empty: the node behind it is idle, so sending now buys
    /// latency at no throughput cost.
    pub fn downstream_idle(&self) -> bool {
        self.targets.iter().any(|t| t.queued() == 0)
    }
}

fn clone_items<T: Clone>(items: &Items<T>) -> Items<T> {
    items.clone()
}
