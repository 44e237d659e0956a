//! The same graph split over processes and machines, edges between them over NATS.
//!
//! A pipeline declared `#![distributed("name")]` can run whole in one process, or split:
//! every process builds the same graph and runs the nodes its [`Plan`] says it hosts. An
//! edge between two hosted nodes stays a channel; an edge to or from a node hosted
//! elsewhere goes over a NATS JetStream subject named after the pipeline, the run and the
//! edge: `pipeline.<name>.<run>.<from>.<to>.data`.
//!
//! - **Encoding.** One message per item: the item and its lineage in MessagePack
//!   (rmp-serde), so a zip behind the edge pairs the right items, and a `Pipeline-Schema`
//!   header naming the graph, the edge and the item type. A message whose header is
//!   missing or different (another graph, another build) or whose payload does not decode
//!   is counted as rejected, logged, and published with the reason to the edge's
//!   dead-letter subject (`...<from>.<to>.dead`); the run goes on.
//! - **Delivery.** Items are stored in a stream before the sender counts them sent, and
//!   published with a message id made from the edge and the item's lineage, so a publish
//!   retried after a crash is stored once. Each receiving node has one durable pull consumer
//!   per edge, shared by every process hosting it: they take turns, which balances the
//!   work. A message is acknowledged once the receiving node has taken it from the local
//!   edge; one that is not (its process died) is delivered again after the ack wait, so
//!   processing after a redelivery may repeat.
//! - **End of stream.** When a node's output edge ends, each process hosting it publishes
//!   an end marker for the edge with its instance name. A receiving process knows how many
//!   producers to expect from its plan (`replicas`, one per node unless said otherwise); it
//!   ends the edge once it has seen that many markers and the edge's consumer has nothing
//!   left to deliver or waiting for an acknowledgement.

mod core;
mod envelope;
mod epoch;
mod jetstream;
mod link;
mod plan;
mod split;

pub use plan::{Delivery, Plan, PlanError, with_plan};

/// The NATS client this crate uses, to publish into or read from a pipeline's subjects
/// yourself with the same version.
pub use async_nats;

pub(crate) use split::Split;
