//! One input's items waiting in a zip, as the batches they came in.

use std::collections::VecDeque;

use crate::lineage::Lineage;

/// One input's items in arrival order: the batches as they came, without copying.
pub(crate) struct BatchQueue<T> {
    /// Never an empty one.
    batches: VecDeque<std::vec::IntoIter<(Lineage, T)>>,
}

impl<T> BatchQueue<T> {
    pub(super) fn new() -> Self {
        BatchQueue {
            batches: VecDeque::new(),
        }
    }

    pub(super) fn push(&mut self, items: Vec<(Lineage, T)>) {
        if !items.is_empty() {
            self.batches.push_back(items.into_iter());
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub(super) fn front(&self) -> Option<&(Lineage, T)> {
        self.front_batch().first()
    }

    /// What is left of the oldest batch.
    pub(super) fn front_batch(&self) -> &[(Lineage, T)] {
        self.batches.front().map_or(&[], |batch| batch.as_slice())
    }

    /// The oldest batch, taken out to read from (a local iterator stays in registers);
    /// give it back with `put_front`.
    pub(super) fn take_front(&mut self) -> std::vec::IntoIter<(Lineage, T)> {
        self.batches.pop_front().unwrap_or_default()
    }

    pub(super) fn put_front(&mut self, batch: std::vec::IntoIter<(Lineage, T)>) {
        if batch.len() > 0 {
            self.batches.push_front(batch);
        }
    }

    pub(super) fn pop_front(&mut self) -> Option<(Lineage, T)> {
        let batch = self.batches.front_mut()?;
        let item = batch.next();
        if batch.len() == 0 {
            self.batches.pop_front();
        }
        item
    }

    /// Every item, in order, leaving the queue empty.
    pub(super) fn take_all(&mut self) -> impl Iterator<Item = (Lineage, T)> + use<T> {
        std::mem::take(&mut self.batches).into_iter().flatten()
    }
}
