//! What a node is and how it is set up, as plain data: its role, how it combines several
//! inputs, and the options the DSL sets on it. Everything above reads these; they import
//! nothing of the runtime.

use std::time::Duration;

/// What a node is, as the report shows it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Stage,
    Sink,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Source => "source",
            Role::Stage => "stage",
            Role::Sink => "sink",
        })
    }
}

/// How a node with several inputs combines them.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanIn {
    /// One input.
    Single,
    /// A tuple of items with the same lineage, one per input in declaration order.
    Zip,
    /// Items of all inputs, interleaved.
    Merge,
}

/// Options the DSL sets on a node.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeOptions {
    /// Stop the whole run at this node's first failed item.
    pub fail_fast: bool,
    /// An item that takes longer fails (an async stage is cancelled at the limit).
    pub timeout: Option<Duration>,
    /// Workers replaced after a panic before the run stops; `None` is the default.
    pub restarts: Option<u32>,
}

/// Worker restarts after panics a node is allowed when the DSL does not say (`restarts(n)`).
pub const DEFAULT_RESTARTS: u32 = 3;

/// A node as the builder registered it.
pub(crate) struct NodeSpec {
    pub name: &'static str,
    pub role: Role,
    pub workers: usize,
    pub fan_in: FanIn,
    pub options: NodeOptions,
    /// A stage without hooks: it emits nothing at the end of its input, so any copy of it
    /// that finished its input finished the node's work (see `remote`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub stateless: bool,
}
