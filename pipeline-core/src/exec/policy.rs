//! What happens to an item that fails: tried again (`retry`), then sent to a dead-letter
//! node (`dead_letter`) or just counted.

use std::time::Duration;

use crate::error::NodeError;
use crate::outlet::Outlet;

/// `retry(n)`: how often a failed item is tried again, after what pause, and how to copy it
/// for each try (processing consumes the item).
pub struct Retry<T> {
    pub attempts: u32,
    /// The pause before the first retry; it doubles for each further one.
    pub backoff: Duration,
    pub copy: fn(&T) -> T,
}

impl<T> Clone for Retry<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Retry<T> {}

/// An item a stage failed on, as its dead-letter node receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed<T> {
    /// The input the stage failed on (its last attempt's, after retries).
    pub item: T,
    /// The error the stage returned (downcast it to the stage's error type with
    /// [`NodeError::downcast_ref`]), or one the runtime made: [`Panicked`](crate::error::Panicked),
    /// [`TimedOut`](crate::error::TimedOut), [`NotStarted`](crate::error::NotStarted).
    pub error: NodeError,
    /// The stage that failed.
    pub node: &'static str,
}

/// Where a stage's failed items go, and how it keeps a copy of each input to send there.
pub struct DeadLetter<T> {
    pub(crate) outlet: Outlet<Failed<T>>,
    pub(crate) copy: fn(&T) -> T,
}

/// A stage's handling of failed items beyond counting them.
pub struct ErrorPolicy<T> {
    pub(crate) retry: Option<Retry<T>>,
    pub(crate) dead_letter: Option<DeadLetter<T>>,
}

impl<T> Default for ErrorPolicy<T> {
    fn default() -> Self {
        ErrorPolicy {
            retry: None,
            dead_letter: None,
        }
    }
}

impl<T> ErrorPolicy<T> {
    /// True when failed items are only counted: no retry, no dead-letter node.
    pub(crate) fn is_plain(&self) -> bool {
        self.retry.is_none() && self.dead_letter.is_none()
    }
}

impl<T: Clone> ErrorPolicy<T> {
    /// Tries a failed item `attempts` more times, pausing `backoff`, then twice that...
    pub fn retry(mut self, attempts: u32, backoff: Duration) -> Self {
        self.retry = Some(Retry {
            attempts,
            backoff,
            copy: T::clone,
        });
        self
    }

    /// Sends every item that finally fails to `outlet`.
    pub fn dead_letter(mut self, outlet: Outlet<Failed<T>>) -> Self {
        self.dead_letter = Some(DeadLetter {
            outlet,
            copy: T::clone,
        });
        self
    }
}
