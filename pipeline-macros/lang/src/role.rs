//! What a node is, by its edges: a source has no input, a sink no output; a node with
//! several inputs zips them, unless it merges them.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Stage,
    Sink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanIn {
    Single,
    Zip,
    Merge,
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
    /// How a node with `inputs` edges into it combines them.
    pub fn of(merge: bool, inputs: usize) -> FanIn {
        if merge {
            FanIn::Merge
        } else if inputs > 1 {
            FanIn::Zip
        } else {
            FanIn::Single
        }
    }
}
