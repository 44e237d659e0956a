//! A source's loop: run its code, send what it pushes, and close its edges when it ends.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;

use super::ctx::NodeCtx;
use super::place::SplitHost;
use crate::error::Failure;
use crate::error::NodeError;
use crate::node::Source;
use crate::node::output::{Output, SendsWhileWaiting, Stopped};
use crate::outlet::Outlet;

pub(crate) async fn run_source<S: Source>(source: S, outlet: Outlet<S::Out>, ctx: NodeCtx) {
    // On a thread of its own (`place`), feeding one edge: the node after it may split off.
    let _host = (S::BLOCKING && outlet.feeds_one_edge()).then(SplitHost::enter);
    let (output, side) = Output::new(
        outlet,
        ctx.control.clone(),
        ctx.stats.clone(),
        ctx.ledger.clone(),
        ctx.name,
    );
    let produce = SendsWhileWaiting::new(
        AssertUnwindSafe(source.run(output)).catch_unwind(),
        side.state.clone(),
        ctx.stats.clone(),
    );
    let ended = if S::DRAINS {
        // It stops by itself, once it has passed on what it accepted.
        Some(produce.await)
    } else {
        tokio::select! {
            ended = produce => Some(ended),
            // A producer waiting on something else must not hold up the shutdown.
            () = ctx.control.stopped() => None,
        }
    };
    match ended {
        // Ending with `Stopped` from `push` is obeying the shutdown, not failing.
        Some(Ok(Err(error))) if error.downcast_ref::<Stopped>().is_some() => {}
        Some(Ok(Err(error))) => {
            tracing::error!(node = ctx.name, error = %error, "source failed");
            let error = NodeError::from(error);
            ctx.stats.record_error(&error);
            ctx.control.fail(Failure::SourceFailed {
                node: ctx.name.to_string(),
                error,
            });
        }
        Some(Err(panic)) => ctx.panicked(panic),
        Some(Ok(Ok(()))) | None => {}
    }
    // The output handle was dropped with the producer, or will be where it was moved (Err:
    // dropped already). Its unsent items go out before the edge closes.
    let _ = side.gone.await;
    match Arc::try_unwrap(side.state) {
        Ok(state) => state.into_inner().close().await,
        // Only the producer and its handle shared the state, and both are gone; were it
        // not so, the edge would close when the last of them goes.
        Err(state) => drop(state.lock().await.flush().await),
    }
}
