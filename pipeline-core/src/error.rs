//! Errors as values: what a node's code returned, kept whole for whoever handles it (a
//! dead-letter node, the run's error), and the errors the runtime makes for an item
//! (a panic, a timeout, a worker that could not start).

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The error type user code returns from fallible nodes.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// An error from a node: the value its code returned (downcast it to the stage's own error
/// type with [`downcast_ref`](Self::downcast_ref)), or one the runtime made for the item:
/// [`Panicked`], [`TimedOut`], [`NotStarted`].
///
/// Cheap to clone (shared). Two errors are equal when they say the same thing: a report
/// read back from JSON keeps only the message.
#[derive(Clone)]
pub struct NodeError(Arc<dyn Error + Send + Sync + 'static>);

impl NodeError {
    /// Wraps an error a node's code returned.
    pub fn new(error: impl Into<BoxError>) -> Self {
        NodeError(Arc::from(error.into()))
    }

    /// The error as the type the node's code returned, if it is that type.
    pub fn downcast_ref<E: Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref::<E>()
    }

    /// Whether the error is of type `E`.
    pub fn is<E: Error + 'static>(&self) -> bool {
        self.0.is::<E>()
    }

    /// The error as a trait object, for `?` into `Box<dyn Error>` or for its chain.
    pub fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
        &*self.0
    }

    /// What the report groups errors by: errors of one kind differ only in their details.
    ///
    /// Errors the runtime makes are `panic`, `timed out` and `not started`; an I/O error
    /// is its `io::ErrorKind`; an error whose `Debug` starts with a name (a struct, an
    /// enum's variant) is that name; any other error is its message up to the first `:`,
    /// where messages usually turn from what went wrong to which item it was.
    pub fn kind(&self) -> String {
        if self.is::<Panicked>() {
            return "panic".into();
        }
        if self.is::<TimedOut>() {
            return "timed out".into();
        }
        if self.is::<NotStarted>() {
            return "not started".into();
        }
        if let Some(io) = self.downcast_ref::<std::io::Error>() {
            return format!("io: {}", io.kind());
        }
        let debug = format!("{:?}", self.0);
        let name: String = debug
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if name.chars().next().is_some_and(char::is_alphabetic) {
            return name.trim_end_matches(':').to_string();
        }
        let message = self.0.to_string();
        let head = message.split(':').next().unwrap_or_default().trim();
        head.chars().take(60).collect()
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl Error for NodeError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for NodeError {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.to_string() == other.to_string()
    }
}

impl Eq for NodeError {}

impl From<BoxError> for NodeError {
    fn from(error: BoxError) -> Self {
        NodeError(Arc::from(error))
    }
}

/// A message-only error (as a report read back from JSON holds).
impl From<&str> for NodeError {
    fn from(message: &str) -> Self {
        NodeError::new(message)
    }
}

impl From<String> for NodeError {
    fn from(message: String) -> Self {
        NodeError::new(message)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for NodeError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for NodeError {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let message = String::deserialize(deserializer)?;
        Ok(NodeError::new(message))
    }
}

/// The node's code panicked on the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Panicked {
    /// The panic's message.
    pub message: String,
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "panic: {}", self.message)
    }
}

impl Error for Panicked {}

/// The item took longer than the node's `timeout(..)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut {
    /// The node's `timeout(..)`.
    pub limit: Duration,
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.limit)
    }
}

impl Error for TimedOut {}

/// The item never ran: the worker that was to run it could not start (its `setup` failed;
/// the run is stopping and says why).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotStarted;

impl fmt::Display for NotStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("its worker could not start")
    }
}

impl Error for NotStarted {}

/// Why a run ended early.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A fail-fast node's item failed.
    ItemFailed {
        /// The node, by its name in the graph.
        node: String,
        /// The error its code returned.
        error: NodeError,
    },
    /// User code in a node panicked.
    Panicked {
        /// The node, by its name in the graph.
        node: String,
        /// The panic's message.
        message: String,
    },
    /// A node's `setup` failed (or the context it needs is missing).
    SetupFailed {
        /// The node, by its name in the graph.
        node: String,
        /// What `setup` returned, or the missing context.
        error: NodeError,
    },
    /// A node's workers panicked more often than its restart budget allows.
    RestartsExhausted {
        /// The node, by its name in the graph.
        node: String,
        /// Workers it had replaced before the last panic.
        restarts: u64,
        /// The last panic's message.
        last_panic: String,
    },
    /// A source's producer returned an error.
    SourceFailed {
        /// The node, by its name in the graph.
        node: String,
        /// What the producer returned.
        error: NodeError,
    },
    /// A node's `finish` failed at end of stream: what it held (an aggregate, a sink's
    /// buffered writes) may be lost, so the run does not end as if all went well.
    FinishFailed {
        /// The node, by its name in the graph.
        node: String,
        /// What `finish` returned.
        error: NodeError,
    },
    /// [`RunHandle::abort`](crate::RunHandle::abort) was called.
    Aborted,
    /// The runtime itself panicked (a bug in this crate).
    Internal {
        /// What went wrong.
        message: String,
    },
    /// An edge to or from another process could not be served (NATS unreachable, a plan
    /// that does not fit the graph).
    Remote {
        /// The edge, as `edge `a => b` across processes`.
        edge: String,
        /// Why it could not be served.
        error: String,
    },
    /// A loop went past one of its limits (items that came round too often, or too many
    /// items waiting to go round): it is not converging. Items that would have gone round
    /// again are dropped (the report counts them) so that the run ends.
    LoopLimit {
        /// The loop's entry node, by its name in the graph.
        node: String,
        /// Which limit, and what to do.
        limit: String,
    },
    /// The graph cannot run as it is (a service's replies cannot be followed through it).
    Unrunnable {
        /// What is wrong, and what to do.
        reason: String,
    },
}

impl Failure {
    /// The node the failure happened in, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            Failure::ItemFailed { node, .. }
            | Failure::Panicked { node, .. }
            | Failure::SetupFailed { node, .. }
            | Failure::RestartsExhausted { node, .. }
            | Failure::SourceFailed { node, .. }
            | Failure::FinishFailed { node, .. }
            | Failure::LoopLimit { node, .. } => Some(node),
            Failure::Aborted
            | Failure::Internal { .. }
            | Failure::Remote { .. }
            | Failure::Unrunnable { .. } => None,
        }
    }
}

impl Failure {
    /// The error value behind the failure, if the node's code returned one.
    pub fn error(&self) -> Option<&NodeError> {
        match self {
            Failure::ItemFailed { error, .. }
            | Failure::SetupFailed { error, .. }
            | Failure::SourceFailed { error, .. }
            | Failure::FinishFailed { error, .. } => Some(error),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::ItemFailed { node, error } => {
                write!(f, "node `{node}` failed (fail-fast): {error}")
            }
            Failure::Panicked { node, message } => write!(f, "node `{node}` panicked: {message}"),
            Failure::SourceFailed { node, error } => write!(f, "source `{node}` failed: {error}"),
            Failure::FinishFailed { node, error } => write!(
                f,
                "node `{node}` failed at end of stream (`finish`), so what it held may be lost: {error}"
            ),
            Failure::SetupFailed { node, error } => {
                write!(f, "node `{node}` could not start: {error}")
            }
            Failure::RestartsExhausted {
                node,
                restarts,
                last_panic,
            } => write!(
                f,
                "node `{node}` panicked again after {restarts} restarts (its budget, see `restarts(n)`): {last_panic}"
            ),
            Failure::Aborted => f.write_str("the run was aborted"),
            Failure::LoopLimit { node, limit } => {
                write!(f, "the loop into `{node}` does not converge: {limit}")
            }
            Failure::Unrunnable { reason } => write!(f, "the graph cannot run: {reason}"),
            Failure::Internal { message } => {
                write!(f, "internal error in the pipeline runtime: {message}")
            }
            Failure::Remote { edge, error } => write!(f, "{edge}: {error}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    enum Fetch {
        NotFound(#[allow(dead_code)] String),
    }

    impl fmt::Display for Fetch {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not found")
        }
    }

    impl Error for Fetch {}

    #[test]
    fn kinds_leave_out_the_details() {
        let kind = |e: BoxError| NodeError::from(e).kind();
        assert_eq!(kind(Box::new(Fetch::NotFound("/a".into()))), "NotFound");
        assert_eq!(kind("bad line: 12 fields".into()), "bad line");
        assert_eq!(
            kind("x".parse::<u32>().unwrap_err().into()),
            "ParseIntError"
        );
        assert_eq!(
            kind(Box::new(std::io::Error::from(std::io::ErrorKind::NotFound))),
            "io: entity not found"
        );
        assert_eq!(
            kind(Box::new(Panicked {
                message: "at 3".into()
            })),
            "panic"
        );
    }

    #[test]
    fn the_value_comes_back_as_its_own_type() {
        let error = NodeError::new(Fetch::NotFound("/a".into()));
        assert!(matches!(error.downcast_ref::<Fetch>(), Some(Fetch::NotFound(p)) if p == "/a"));
    }
}
