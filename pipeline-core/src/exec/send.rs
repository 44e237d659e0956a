//! Sending on what a node produced, and taking its next batch.

use std::time::Instant;

use super::ctx::NodeCtx;
use crate::inlet::{self, Inlet};
use crate::lineage::Lineage;
use crate::node::Stage;
use crate::outlet::Outlet;
use crate::stats::BatchCounts;
use crate::wire::{Batch, Closed};

/// Sends items a stage emitted at end of stream. They derive from no input: they get
/// lineages of their own (under a root no source uses) and count as extra items.
pub(crate) async fn deliver_final<T: Send + 'static>(
    produced: Vec<T>,
    numbered_from: &mut u64,
    outlet: &mut Outlet<T>,
    counts: &mut BatchCounts,
) -> Result<(), Closed> {
    for item in produced {
        counts.emitted += 1;
        counts.expanded += 1;
        outlet
            .push(Lineage::root(u64::MAX).child(*numbered_from), item)
            .await?;
        *numbered_from += 1;
    }
    Ok(())
}

/// Sends what a stage produced from one input: nothing is a filtered item, one output keeps
/// the input's lineage, and several (or any from a flat-map) get child lineages.
pub(crate) async fn deliver<S: Stage>(
    produced: &mut Vec<S::Out>,
    lineage: Lineage,
    outlet: &mut Outlet<S::Out>,
    counts: &mut BatchCounts,
    ctx: &NodeCtx,
) -> Result<(), Closed> {
    if count_outputs::<S>(produced.len(), lineage, counts, ctx) {
        for (i, out) in produced.drain(..).enumerate() {
            outlet.push(lineage.child(i as u64), out).await?;
        }
    } else if let Some(out) = produced.pop() {
        outlet.push(lineage, out).await?;
    }
    Ok(())
}

/// The next input batch; before waiting for one, sends what the node has produced.
pub(crate) async fn next_or_flush<T, O: Send + 'static, I: Inlet<T>>(
    inlet: &mut I,
    outlet: &mut Outlet<O>,
    counts: &mut BatchCounts,
) -> Result<Option<Batch<T>>, Closed> {
    if let Some(batch) = inlet::try_next(inlet) {
        return Ok(batch);
    }
    outlet.flush().await?;
    let waiting_since = Instant::now();
    let batch = inlet::next(inlet).await;
    counts.starved += waiting_since.elapsed();
    Ok(batch)
}

pub(crate) fn record_dropped<T, I: Inlet<T>>(inlet: &mut I, ctx: &NodeCtx) {
    report_dropped(inlet.take_dropped(), ctx);
}

/// Counts the partial tuples a node's zip dropped.
pub(crate) fn report_dropped(dropped: crate::inlet::Dropped, ctx: &NodeCtx) {
    if dropped.tuples > 0 {
        tracing::debug!(
            node = ctx.name,
            tuples = dropped.tuples,
            "zip dropped partial tuples"
        );
        ctx.stats.dropped_partial(dropped.tuples, dropped.items);
    }
}

/// Counts an input that produced nothing: filtered, or absorbed by an aggregate.
#[inline]
pub(super) fn count_no_output<S: Stage>(counts: &mut BatchCounts) {
    if S::ABSORBS {
        counts.absorbed += 1;
    } else {
        counts.filtered += 1;
    }
}

/// Counts what one input produced (`n` outputs): emitted, filtered or absorbed when none,
/// expanded beyond the first. Returns whether the outputs take child lineages of the
/// input's (several, or any from a flat-map) rather than the input's own.
#[inline]
pub(crate) fn count_outputs<S: Stage>(
    n: usize,
    lineage: Lineage,
    counts: &mut BatchCounts,
    ctx: &NodeCtx,
) -> bool {
    let n = n as u64;
    counts.emitted += n;
    ctx.item_became(lineage, n);
    match n {
        0 => {
            count_no_output::<S>(counts);
            false
        }
        1 if !S::SPLITS => false,
        _ => {
            counts.expanded += n - 1;
            true
        }
    }
}
