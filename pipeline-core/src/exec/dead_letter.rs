//! A stage's dead-letter side: the inputs it failed on go, with their error, to its
//! dead-letter node.

use super::ctx::NodeCtx;
use super::policy::{self, Failed};
use crate::error::NodeError;
use crate::lineage::Lineage;
use crate::stats::BatchCounts;
use crate::wire::Closed;

/// A stage's dead-letter side: keeps a copy of each input while it is processed, and sends
/// the inputs it failed on, with their error, to the dead-letter node.
pub(crate) struct FailedItems<T> {
    dead_letter: Option<policy::DeadLetter<T>>,
}

impl<T: Send + 'static> FailedItems<T> {
    pub(crate) fn new(dead_letter: Option<policy::DeadLetter<T>>) -> Self {
        FailedItems { dead_letter }
    }

    /// Whether failed items go to a dead-letter node.
    pub(crate) fn routes(&self) -> bool {
        self.dead_letter.is_some()
    }

    /// A copy of the input, if failures are routed anywhere.
    pub(crate) fn keep(&self, item: &T) -> Option<T> {
        self.dead_letter.as_ref().map(|d| (d.copy)(item))
    }

    pub(crate) async fn route(
        &mut self,
        lineage: Lineage,
        original: Option<T>,
        error: NodeError,
        ctx: &NodeCtx,
        counts: &mut BatchCounts,
    ) -> Result<(), Closed> {
        if let (Some(dead_letter), Some(item)) = (self.dead_letter.as_mut(), original) {
            counts.dead_lettered += 1;
            dead_letter
                .outlet
                .push(
                    lineage,
                    Failed {
                        item,
                        error,
                        node: ctx.name,
                    },
                )
                .await?;
        }
        Ok(())
    }

    pub(crate) fn advance(&mut self, watermark: u64) {
        if let Some(dead_letter) = self.dead_letter.as_mut() {
            dead_letter.outlet.advance(watermark);
        }
    }

    /// Sends routed items now; failures are rare, so they are not held back for a batch.
    pub(crate) async fn flush(&mut self) -> Result<(), Closed> {
        match self.dead_letter.as_mut() {
            Some(dead_letter) if dead_letter.outlet.has_pending() => {
                dead_letter.outlet.flush().await
            }
            _ => Ok(()),
        }
    }

    pub(crate) async fn close(self) -> Result<(), Closed> {
        match self.dead_letter {
            Some(dead_letter) => dead_letter.outlet.close().await,
            None => Ok(()),
        }
    }
}
