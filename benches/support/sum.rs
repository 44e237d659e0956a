//! A sink that adds up its `u64`s in a field of its own, shared by the benchmark and the
//! tests.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use pipeline::{BoxError, Sink, SinkNode};

/// Adds up what it receives and publishes the sum after every batch, so that checking the
/// result costs no atomic operation per item.
pub struct Sum {
    local: u64,
    total: Arc<AtomicU64>,
}

impl Sink for Sum {
    type In = u64;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    // No setup, and `flush` only stores a number: no thread of its own needed for those.
    const HAS_HOOKS: bool = false;

    async fn consume(&mut self, item: u64) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: u64) -> Result<(), BoxError> {
        self.local = self.local.wrapping_add(item);
        Ok(())
    }

    fn flush(&mut self) {
        self.total.store(self.local, Ordering::Relaxed);
    }
}

/// A [`Sum`] that publishes into `total`.
pub fn sum_into(total: &Arc<AtomicU64>) -> SinkNode<Sum> {
    SinkNode::new(Sum {
        local: 0,
        total: total.clone(),
    })
}
