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
