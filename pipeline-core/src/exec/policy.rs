//! What happens to an item that fails: tried again (`retry`), then sent to a dead-letter
//! node (`dead_letter`) or just counted.

use std::time::Duration;

use crate::error::NodeError;
use crate::outlet::Outlet;
use crate::spec::{NodeConfig, RetryIf};

/// `retry(..)` for one stage: its settings, and how to copy an item for each try
/// (processing consumes the item).
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

/// The half of a stage's error handling that depends on its input type, which the typed
/// wiring supplies: how to copy an item (for retries and dead letters; set only when the
/// input is `Clone`), and the edge dead letters leave on. The other half, the settings,
/// is in the node's [`NodeConfig`].
pub struct ErrorWiring<T> {
    pub(crate) copy: Option<fn(&T) -> T>,
    pub(crate) dead_letter: Option<Outlet<Failed<T>>>,
}

impl<T> Default for ErrorWiring<T> {
    fn default() -> Self {
        ErrorWiring {
            copy: None,
            dead_letter: None,
        }
    }
}

impl<T> ErrorWiring<T> {
    /// Items are copied with `copy` for another try or for a dead-letter node.
    pub fn copying(mut self, copy: fn(&T) -> T) -> Self {
        self.copy = Some(copy);
        self
    }
}

impl<T: Clone> ErrorWiring<T> {
    /// Items can be copied for another try or for a dead-letter node.
    pub fn copyable(self) -> Self {
        self.copying(T::clone)
    }

    /// Items that finally fail leave on `outlet`.
    pub fn dead_letter(mut self, outlet: Outlet<Failed<T>>) -> Self {
        self.dead_letter = Some(outlet);
        self.copyable()
    }
}

/// A stage's handling of failed items beyond counting them: its settings with the typed
/// means to carry them out.
pub(crate) struct ErrorPolicy<T> {
    pub(crate) retry: Option<Retry<T>>,
    pub(crate) dead_letter: Option<DeadLetter<T>>,
}

impl<T> ErrorPolicy<T> {
    /// The policy `config` asks for, carried out with `wiring`.
    ///
    /// # Panics
    /// If `config` asks for retries or a dead-letter node and `wiring` cannot copy items
    /// or has no dead-letter edge: the macro and the graph builder check this first.
    pub(crate) fn new(node: &str, config: &NodeConfig, wiring: ErrorWiring<T>) -> Self {
        let copy = || {
            wiring.copy.unwrap_or_else(|| {
                panic!("node `{node}`: retries and dead letters need a way to copy its items")
            })
        };
        let retry = config.retry.as_ref().map(|r| Retry {
            attempts: r.attempts,
            backoff: r.first,
            longest: r.longest,
            only_if: r.only_if.clone(),
            copy: copy(),
        });
        let dead_letter = match (&config.dead_letter, wiring.dead_letter) {
            (Some(_), Some(outlet)) => Some(DeadLetter {
                outlet,
                copy: copy(),
            }),
            (None, None) => None,
            (Some(target), None) => {
                panic!("node `{node}`: `dead_letter({target})` has no edge to `{target}`")
            }
            (None, Some(_)) => panic!("node `{node}`: a dead-letter edge without `dead_letter`"),
        };
        ErrorPolicy { retry, dead_letter }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn retry(attempts: u32, first_ms: u64, longest_ms: u64) -> Retry<u32> {
        let config = NodeConfig::new().retry(attempts).retry_pauses(
            Duration::from_millis(first_ms),
            Duration::from_millis(longest_ms),
        );
        ErrorPolicy::<u32>::new("n", &config, ErrorWiring::default().copyable())
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
        let config = NodeConfig::new()
            .retry(2)
            .retry_pauses(Duration::ZERO, Duration::ZERO)
            .retry_if(|e| e.to_string() != "404");
        let policy = ErrorPolicy::<u32>::new("n", &config, ErrorWiring::default().copyable());
        let retry = policy.retry.unwrap();
        assert!(retry.retries(&NodeError::from("503")));
        assert!(!retry.retries(&NodeError::from("404")));
    }
}
