//! Executing one node: the loop that takes input batches, calls the user's code, counts,
//! and sends the results on; and where that loop runs.
//!
//! A node whose code is synchronous (`Stage::BLOCKING` and friends) runs its loop on a thread
//! of its own from the blocking pool, so blocking calls there never stall the async workers
//! that run every other node. The channels are executor-agnostic, so the same loop serves both.

pub(crate) mod in_place;
pub(crate) mod lend;
pub mod policy;
mod sink;
pub mod workers;

pub(crate) use sink::{consume_batch, run_fusable_sink, run_sink};

pub(crate) use policy::ErrorPolicy;
pub use policy::{ErrorWiring, Failed};

mod attempt;
mod ctx;
mod dead_letter;
mod hooks;
mod place;
mod send;
mod source;
mod stage;

pub(crate) use ctx::{NodeCtx, panic_message};
pub(crate) use place::place;
pub(crate) use send::report_dropped;
pub(crate) use source::run_source;
pub(crate) use stage::{run_batch, run_fusable_stage, run_stage};

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::wire::handoff::Offer;

pub(crate) type NodeTask = Pin<Box<dyn Future<Output = ()> + Send>>;
/// A node's offer to run inline, which the builder may withdraw before the run starts.
pub(crate) type SharedOffer<T> = Arc<Mutex<Option<Offer<T>>>>;
