//! What happens to an item that fails: tried again (`retry`), then sent to a dead-letter
//! node (`dead_letter`) or just counted.

use std::sync::Arc;
use std::time::Duration;

use crate::error::NodeError;
use crate::outlet::Outlet;

/// `retry(..)`: how often a failed item is tried again, after what pauses, on which errors,
/// and how to copy it for each try (processing consumes the item).
pub struct Retry<T> {
    pub attempts: u32,
    /// The pause before the first retry; it doubles for each further one, up to `longest`,
    /// and each pause gets a random part of itself added (jitter), so that workers that
    /// failed together do not retry together.
    pub backoff: Duration,
    pub longest: Duration,
    /// Which errors are worth another try (`retry_if`); all of them when `None`.
    pub only_if: Option<RetryIf>,
    pub copy: fn(&T) -> T,
}

/// A predicate on errors: true when the item is worth another try.
pub type RetryIf = Arc<dyn Fn(&NodeError) -> bool + Send + Sync>;

impl<T> Clone for Retry<T> {
    fn clone(&self) -> Self {
        Retry {
            only_if: self.only_if.clone(),
            ..*self
        }
    }
}

impl<T> Retry<T> {
    /// The pauses before each retry of one item.
    pub(crate) fn pauses(&self) -> impl Iterator<Item = Duration> + use<T> {
        use backon::BackoffBuilder;
        backon::ExponentialBuilder::default()
            .with_min_delay(self.backoff)
            .with_max_delay(self.longest.max(self.backoff))
            .with_jitter()
            .with_max_times(self.attempts as usize)
            .build()
    }

    /// Whether `error` is worth another try.
    pub(crate) fn retries(&self, error: &NodeError) -> bool {
        self.only_if.as_ref().is_none_or(|only_if| only_if(error))
    }
}

/// The longest pause between two tries when `retry` does not say.
pub const DEFAULT_LONGEST_PAUSE: Duration = Duration::from_secs(30);

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

/// Whether a node's items need no handling one by one: its code is synchronous, and no
/// item is timed out, retried or sent to a dead-letter node. Only such a node runs whole
/// batches in one loop, or runs inside the node that feeds it. The one place this rule is
/// written in the runtime (the macro's `Node::runs_plain` decides the same at compile
/// time, for the kernels it names).
pub(crate) fn runs_plain(
    sync: bool,
    timeout: Option<Duration>,
    retries: bool,
    dead_letters: bool,
) -> bool {
    sync && timeout.is_none() && !retries && !dead_letters
}

impl<T: Clone> ErrorPolicy<T> {
    /// Tries a failed item `attempts` more times, pausing `backoff`, then about twice
    /// that, and so on up to `longest` (with jitter).
    pub fn retry(mut self, attempts: u32, backoff: Duration, longest: Duration) -> Self {
        let only_if = self.retry.take().and_then(|r| r.only_if);
        self.retry = Some(Retry {
            attempts,
            backoff,
            longest,
            only_if,
            copy: T::clone,
        });
        self
    }

    /// Retries only the errors for which `only_if` is true (with `retry`).
    pub fn retry_if(
        mut self,
        only_if: impl Fn(&NodeError) -> bool + Send + Sync + 'static,
    ) -> Self {
        let only_if: RetryIf = Arc::new(only_if);
        match self.retry.as_mut() {
            Some(retry) => retry.only_if = Some(only_if),
            None => {
                self.retry = Some(Retry {
                    attempts: 0,
                    backoff: Duration::ZERO,
                    longest: Duration::ZERO,
                    only_if: Some(only_if),
                    copy: T::clone,
                })
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: u32, first_ms: u64, longest_ms: u64) -> Retry<u32> {
        ErrorPolicy::<u32>::default()
            .retry(
                attempts,
                Duration::from_millis(first_ms),
                Duration::from_millis(longest_ms),
            )
            .retry
            .unwrap()
    }

    #[test]
    fn pauses_grow_up_to_the_longest_with_jitter() {
        let retry = retry(8, 10, 100);
        let pauses: Vec<Duration> = retry.pauses().collect();
        assert_eq!(pauses.len(), 8, "one pause per retry");
        // Jitter adds up to the pause itself: never below the plain value, never over twice it.
        assert!(pauses[0] >= Duration::from_millis(10) && pauses[0] < Duration::from_millis(20));
        assert!(
            pauses.iter().all(|p| *p < Duration::from_millis(200)),
            "capped: {pauses:?}"
        );
        assert!(
            pauses[7] >= Duration::from_millis(100),
            "grown to the cap: {pauses:?}"
        );
        let again: Vec<Duration> = retry.pauses().collect();
        assert_ne!(pauses, again, "two items' pauses differ (jitter)");
    }

    #[test]
    fn retry_if_narrows_which_errors_are_tried_again() {
        let policy = ErrorPolicy::<u32>::default()
            .retry(2, Duration::ZERO, Duration::ZERO)
            .retry_if(|e| e.to_string() != "404");
        let retry = policy.retry.unwrap();
        assert!(retry.retries(&NodeError::from("503")));
        assert!(!retry.retries(&NodeError::from("404")));
    }
}
