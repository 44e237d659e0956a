#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![doc = include_str!("../README.md")]

/// Builds a pipeline from a graph of nodes. See the crate documentation and the book.
pub use pipeline_macros::pipeline;

pub use pipeline_core::{
    Accounting, BoxError, Collected, Context, Failed, Failure, FanIn, NoInput, NoOutput, Node,
    NodeConfig, NodeError, NodeReport, Output, Pipeline, Progress, RemoteEdgeReport, RetryConfig,
    Role, RunError, RunHandle, RunReport, Sink, SinkNode, Source, SourceNode, Stage, StageNode,
    Stopped, Verdict, error, graph, lineage, service, sink, source, stage,
};

/// Names of the metrics every node publishes through the `metrics` facade.
#[cfg(feature = "metrics")]
pub use pipeline_core::telemetry;

/// A service's HTTP front: `POST /items`, health, readiness and metrics, on axum.
#[cfg(feature = "http")]
pub use pipeline_core::http;

/// The same graph split over processes and machines: `#![distributed("name")]` pipelines,
/// which nodes a process hosts ([`remote::Plan`]), and the edges between them over NATS.
#[cfg(feature = "nats")]
pub use pipeline_core::remote;

/// Channel sizing: the default bound of an edge, in items, and the largest batch.
pub mod wire {
    pub use pipeline_core::wire::{DEFAULT_CAPACITY, MAX_BATCH};
}

/// Everything a pipeline program usually needs.
pub mod prelude {
    pub use crate::{
        BoxError, Collected, Output, Pipeline, RunError, RunReport, pipeline, sink, source, stage,
    };
}

/// What `pipeline!` expands to refers only to this module, by absolute path.
#[doc(hidden)]
pub mod __private {
    pub use pipeline_core::NodeConfig;
    pub use pipeline_core::run::Builder;
    pub use pipeline_core::spec::{DEFAULT_BACKOFF, DEFAULT_LONGEST_PAUSE};
    pub use pipeline_core::wiring::*;
    pub use std::vec;

    /// Not for generated code: a test hook that says whether the fused kernels ran.
    pub use pipeline_core::kernel_passes;
    /// Not for generated code: test hooks for nodes that split off for a core of their own.
    pub use pipeline_core::{force_splits, splits_and_recalls};
}

/// The book's chapters, compiled and run as doctests so that no sample goes stale.
#[cfg(doctest)]
mod book {
    #[doc = include_str!("../book/src/introduction.md")]
    struct Introduction;
    #[doc = include_str!("../book/src/first-pipeline.md")]
    struct FirstPipeline;
    #[doc = include_str!("../book/src/graphs.md")]
    struct Graphs;
    #[doc = include_str!("../book/src/graphs-at-run-time.md")]
    struct GraphsAtRunTime;
    #[doc = include_str!("../book/src/running.md")]
    struct Running;
    #[doc = include_str!("../book/src/execution.md")]
    struct Execution;
    #[cfg(feature = "http")]
    #[doc = include_str!("../book/src/services.md")]
    struct Services;
    #[doc = include_str!("../book/src/bottleneck.md")]
    struct Bottleneck;
    #[doc = include_str!("../book/src/performance.md")]
    struct Performance;
    #[cfg(feature = "nats")]
    #[doc = include_str!("../book/src/across-machines.md")]
    struct AcrossMachines;
    #[cfg(feature = "nats")]
    #[doc = include_str!("../book/src/across-machines-how.md")]
    struct AcrossMachinesHowItWorks;
}
