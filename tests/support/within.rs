//! A hard time limit for scenarios that could hang.

use std::sync::mpsc;
use std::time::Duration;

/// Runs `scenario` on a thread of its own and fails if it is not over within `limit`:
/// a hang (even one in a runtime's drop) fails the test instead of stalling the suite.
pub fn within<T: Send + 'static>(
    limit: Duration,
    scenario: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(scenario());
    });
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: not over after {limit:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the scenario panicked"),
    }
}
