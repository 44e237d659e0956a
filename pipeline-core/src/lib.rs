#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
//! The runtime of the `pipeline` crate. Users depend on `pipeline`, which re-exports this.
//!
//! Data path: a [`source`] pushes items through its [`outlet::Outlet`] in batches over
//! bounded [`wire`] edges; a node's [`inlet`] takes one edge, merges several, or zips them
//! by [`lineage`]; [`stage`]s transform; [`sink`]s consume; [`run`] drives it all and
//! [`report`] says where every item went.

pub mod analysis;
pub mod context;
#[doc(hidden)]
pub mod control;
pub(crate) mod counts;
pub mod error;
#[doc(hidden)]
pub mod exec;
pub(crate) mod fuse;
pub mod graph;
#[cfg(feature = "html")]
mod html;
#[cfg(feature = "http")]
pub mod http;
#[doc(hidden)]
pub mod inlet;
#[doc(hidden)]
pub mod ledger;
pub mod lineage;
#[doc(hidden)]
pub mod name;
pub mod node;
#[doc(hidden)]
pub mod outlet;
pub(crate) mod picture;
#[cfg(feature = "nats")]
pub mod remote;
pub mod report;
#[doc(hidden)]
pub mod run;
#[cfg(feature = "serde")]
mod seconds;
pub mod service;
pub mod sink;
pub mod source;
#[doc(hidden)]
pub mod spec;
pub mod stage;
pub(crate) mod stats;
pub(crate) mod table;
#[cfg(feature = "metrics")]
pub mod telemetry;
#[doc(hidden)]
pub mod wire;
#[doc(hidden)]
pub mod wiring;

/// A test hook: how many passes the fused kernels ran (see `fuse::chain`).
#[doc(hidden)]
pub use fuse::chain::passes_run as kernel_passes;
/// Test hooks: nodes that split off for a core of their own (see `exec::lend`).
#[doc(hidden)]
pub use wire::split::{force_splits, splits_and_recalls};

pub use analysis::Verdict;
pub use context::Context;
pub use error::Failure;
pub use error::NodeError;
pub use exec::Failed;
pub use node::output::{Output, Stopped};
pub use node::{
    BoxError, NoInput, NoOutput, Node, Sink, SinkNode, Source, SourceNode, Stage, StageNode,
};
pub use report::{Accounting, NodeReport, RemoteEdgeReport, RunError, RunReport};
pub use run::{Pipeline, Progress, RunHandle, Stopper};
pub use sink::Collected;
pub use spec::{FanIn, NodeConfig, RetryConfig, Role};
