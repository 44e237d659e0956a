//! The run's shared switchboard: the stop request and the first failure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::error::Failure;

/// Not part of the API: the run's switchboard, which a loop's entry watches (see
/// `inlet::LoopInlet`).
pub struct Control {
    // Checked once per source item, so a plain atomic; the watch wakes those that wait.
    stopping: AtomicBool,
    // Read by edges to other processes before each acknowledgement: a failing run must not
    // acknowledge what it may not have finished.
    failing: AtomicBool,
    stop_tx: watch::Sender<bool>,
    failure: Mutex<Option<Failure>>,
}

impl Control {
    pub(crate) fn new() -> Self {
        Control {
            stopping: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            stop_tx: watch::channel(false).0,
            failure: Mutex::new(None),
        }
    }

    /// Asks every source to stop producing; what was produced still drains.
    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.stop_tx.send_replace(true);
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Resolves once a stop was requested.
    pub(crate) async fn stopped(&self) {
        let mut rx = self.stop_tx.subscribe();
        // Err only if the sender is gone, and `self` owns it.
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// Records a failure that ends the run (the first one wins) and stops the sources.
    pub(crate) fn fail(&self, failure: Failure) {
        let mut slot = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some(failure);
        }
        drop(slot);
        self.failing.store(true, Ordering::Release);
        self.stop();
    }

    /// Whether the run has failed (or was aborted), even after the failure was taken.
    pub(crate) fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Acquire)
    }

    pub(crate) fn take_failure(&self) -> Option<Failure> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
