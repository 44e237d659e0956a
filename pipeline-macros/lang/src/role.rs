//! What a node is, by its edges: a source has no input, a sink no output; a node with
//! several inputs zips them, unless it merges them.

//!
//! The runtime re-exports both (`pipeline::Role`, `pipeline::FanIn`): one definition for
//! the macro, the run-time builder and the reports.

/// What a node is, as the report shows it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Takes no input; produces items.
    Source,
    /// Takes items and sends items on.
    Stage,
    /// Takes items; sends nothing on.
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
    /// A loop's entry: items from outside and items coming round the loop, interleaved;
    /// its input ends once the outside inputs have ended and nothing is left in the loop.
    Loop,
}

impl std::fmt::Display for FanIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FanIn::Single => "single",
            FanIn::Zip => "zip",
            FanIn::Merge => "merge",
            FanIn::Loop => "loop",
        })
    }
}

impl Role {
    /// The role edges give a node: a source has no input, a sink no output.
    pub fn of(inputs: usize, outputs: usize) -> Role {
        match (inputs, outputs) {
            (0, _) => Role::Source,
            (_, 0) => Role::Sink,
            _ => Role::Stage,
        }
    }
}

impl FanIn {
    /// How a node with `inputs` edges into it combines them: a loop's entry (a loop edge
    /// leads into it) interleaves them, as `merge` does.
    pub fn of(merge: bool, inputs: usize) -> FanIn {
        Self::of_node(merge, false, inputs)
    }

    /// [`of`](Self::of), for a node that may be a loop's entry.
    pub fn of_node(merge: bool, loop_entry: bool, inputs: usize) -> FanIn {
        if loop_entry {
            FanIn::Loop
        } else if merge {
            FanIn::Merge
        } else if inputs > 1 {
            FanIn::Zip
        } else {
            FanIn::Single
        }
    }
}
