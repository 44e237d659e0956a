//! The same graph split over processes and machines, edges between them over NATS.
//!
//! A pipeline declared `#![distributed("name")]` can run whole in one process, or split:
//! every process builds the same graph and runs the nodes its [`Plan`] says it hosts. An
//! edge between two hosted nodes stays a channel; an edge to or from a node hosted
//! elsewhere goes over a NATS JetStream subject named after the pipeline, the run, the
//! run's epoch and the edge: `pipeline.<name>.<run>.e<epoch>.<from>.<to>.data`.
//!
//! The book's chapter "Across machines: how it works" states what this promises and how;
//! the modules follow an item's path:
//!
//! - `plan`: which nodes this process hosts, from the environment or code.
//! - `split`: the builder's side: a bridge for every edge that crosses processes, and the
//!   checks a plan must pass.
//! - `link`: the connection, the stream, and riding through an outage.
//! - `epoch`: which epoch of a named run this process joins, and closing it.
//! - `envelope`: one item on the wire, and why a message is rejected.
//! - `notes`: watermarks across processes, so that a zip drops what can never pair.
//! - `jetstream`: at-least-once edges (stored before acknowledged, kept alive, ended by
//!   counted markers); `core`: at-most-once edges over core NATS.

mod core;
mod envelope;
mod epoch;
mod jetstream;
mod link;
mod mishaps;
mod notes;
mod plan;
mod split;

pub use plan::{Delivery, Plan, PlanError, with_plan};

/// The NATS client this crate uses, to publish into or read from a pipeline's subjects
/// yourself with the same version.
pub use async_nats;

pub(crate) use split::Split;
