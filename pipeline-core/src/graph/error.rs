//! What is wrong with a graph built at run time: every mistake, each with where it is, so
//! that a front end (a spec file, a form) can point at its own line.

/// Where in a graph a mistake is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Place {
    /// The graph as a whole.
    Graph,
    /// A node, by name.
    Node(String),
    /// An edge, by the names of its two ends.
    Edge(String, String),
    /// An option on a node: the node's name and the option's.
    Option(String, &'static str),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Graph => f.write_str("the graph"),
            Place::Node(node) => write!(f, "node `{node}`"),
            Place::Edge(from, to) => write!(f, "edge `{from} => {to}`"),
            Place::Option(node, option) => write!(f, "option `{option}` of `{node}`"),
        }
    }
}

/// One mistake in a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GraphError {
    /// Where it is.
    pub place: Place,
    /// What is wrong, naming the nodes (and types) involved, and what to do.
    pub message: String,
}

impl GraphError {
    pub(crate) fn new(place: Place, message: impl Into<String>) -> Self {
        GraphError {
            place,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for GraphError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GraphError {}

/// Every mistake found in a graph, in a stable order: one per line when displayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphErrors(pub Vec<GraphError>);

impl GraphErrors {
    /// The mistakes.
    pub fn iter(&self) -> impl Iterator<Item = &GraphError> {
        self.0.iter()
    }
}

impl std::fmt::Display for GraphErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.len();
        writeln!(
            f,
            "the graph has {n} mistake{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for error in &self.0 {
            writeln!(f, "- {error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for GraphErrors {}
