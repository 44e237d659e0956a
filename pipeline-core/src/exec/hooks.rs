//! A worker's life around its items: `setup`, a restart after a panic, and `finish`.

use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use super::ctx::{NodeCtx, panic_message};
use crate::error::{NodeError, Panicked as PanicError};
use crate::node::{BoxError, Stage};

/// Runs a worker's `setup`; `false` means it failed (and the run is stopping).
pub(crate) async fn set_up<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> bool {
    started(
        AssertUnwindSafe(stage.setup(&ctx.context))
            .catch_unwind()
            .await,
        ctx,
    )
}

/// Whether a `setup` (caught for panics) succeeded; if not, the run stops and says why.
pub(super) fn started(setup: std::thread::Result<Result<(), BoxError>>, ctx: &NodeCtx) -> bool {
    match setup {
        Ok(Ok(())) => true,
        Ok(Err(error)) => {
            ctx.setup_failed(error.into());
            false
        }
        Err(panic) => {
            ctx.setup_failed(NodeError::new(PanicError {
                message: panic_message(panic),
            }));
            false
        }
    }
}

/// Replaces a worker after a panic: tears it down and sets it up afresh.
pub(crate) async fn restart<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> bool {
    stage.teardown().await;
    set_up(stage, ctx).await
}

/// Runs a worker's `finish`, returning what it emits at end of stream.
pub(crate) async fn finish<S: Stage>(stage: &mut S, ctx: &NodeCtx) -> Vec<S::Out> {
    let mut out = Vec::new();
    match AssertUnwindSafe(stage.finish(&mut out))
        .catch_unwind()
        .await
    {
        Ok(Ok(())) => out,
        Ok(Err(error)) => {
            ctx.finish_failed(error.into());
            Vec::new()
        }
        Err(panic) => {
            ctx.panicked(panic);
            Vec::new()
        }
    }
}
