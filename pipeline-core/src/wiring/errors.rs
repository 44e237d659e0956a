//! What `retry` and `dead_letter` add to a stage's error handling, and what they need.

use crate::exec::{ErrorWiring, Failed};
use crate::node::Node;
use crate::outlet::Outlet;

/// `retry(n)` tries a failed item again, which needs a fresh copy of it for every try.
#[diagnostic::on_unimplemented(
    message = "`retry` on `{Name}` tries a failed item again, so its input type `{T}` must implement `Clone`",
    label = "`{Name}` retries failed items",
    note = "derive or implement `Clone` for `{T}`, or send an `Arc<{T}>`"
)]
pub trait CloneForRetry<Name, T> {
    /// Copies an item.
    fn copy(item: &T) -> T;
}

#[diagnostic::do_not_recommend]
impl<T: Clone, Name> CloneForRetry<Name, T> for Copied {
    fn copy(item: &T) -> T {
        item.clone()
    }
}

/// What a retry or a dead letter makes of an item: a copy. The self type of the checks
/// below, which are about its parameter: being a type of this crate, it is not `Clone`
/// through a reference, so the compiler does not suggest borrowing the option.
pub struct Copied;

/// The typed half of `node`'s error handling, to which `retry` and `dead_letter` add.
pub fn error_wiring<N: Node>(_node: &N) -> ErrorWiring<N::In> {
    ErrorWiring::default()
}

/// For `retry(..)`: checks the node's input can be copied for each try, and gives what
/// adds that to its error wiring. (The check is a call of its own, all of whose tokens sit
/// on the option, so that its error points there.)
pub fn with_retry<Name, T>() -> fn(ErrorWiring<T>) -> ErrorWiring<T>
where
    Copied: CloneForRetry<Name, T>,
{
    |errors| errors.copying(<Copied as CloneForRetry<Name, T>>::copy)
}

/// A dead-letter node gets a copy of every input the stage failed on.
#[diagnostic::on_unimplemented(
    message = "`dead_letter` on `{Name}` sends the items it failed on elsewhere, so it keeps a copy of each: its input type `{T}` must implement `Clone`",
    label = "`{Name}` routes failed items",
    note = "derive or implement `Clone` for `{T}`, or send an `Arc<{T}>`"
)]
pub trait CloneForDeadLetter<Name, T> {
    /// Copies an item.
    fn copy(item: &T) -> T;
}

#[diagnostic::do_not_recommend]
impl<T: Clone, Name> CloneForDeadLetter<Name, T> for Copied {
    fn copy(item: &T) -> T {
        item.clone()
    }
}

/// For `dead_letter(..)`: checks the node's input can be copied, and gives what sends
/// its failed items out on an outlet.
pub fn with_dead_letter<Name, T>() -> fn(ErrorWiring<T>, Outlet<Failed<T>>) -> ErrorWiring<T>
where
    Copied: CloneForDeadLetter<Name, T>,
{
    |errors, outlet| {
        let errors = errors.copying(<Copied as CloneForDeadLetter<Name, T>>::copy);
        ErrorWiring {
            dead_letter: Some(outlet),
            ..errors
        }
    }
}
