//! What every loop of a node knows about it (`NodeCtx`): its name, counters, the run's
//! control and the node's options; and how it records a failed item, a panic, a failed
//! setup or `finish`.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use crate::context::Context;
use crate::control::Control;
use crate::error::Failure;
use crate::error::{NodeError, Panicked as PanicError};
use crate::ledger::Ledger;
use crate::lineage::Lineage;
use crate::spec::NodeConfig;
use crate::stats::{NodeStats, log_failure};

#[derive(Clone)]
pub(crate) struct NodeCtx {
    pub name: &'static str,
    pub stats: Arc<NodeStats>,
    pub control: Arc<Control>,
    pub context: Context,
    /// The node's options.
    pub config: Arc<NodeConfig>,
    /// Items from other processes, acknowledged once finished here (see [`crate::ledger`]).
    pub ledger: Option<Arc<Ledger>>,
}

impl NodeCtx {
    /// An item of `lineage` is finished in this node's process.
    #[inline]
    pub(crate) fn item_ended(&self, lineage: Lineage) {
        if let Some(ledger) = &self.ledger {
            ledger.ended(lineage);
        }
    }

    /// An item of `lineage` failed with `error`: a service tells its caller so.
    #[inline]
    pub(crate) fn note_failure(&self, lineage: Lineage, error: &NodeError) {
        if let Some(ledger) = &self.ledger {
            ledger.failed(lineage, error);
        }
    }

    /// One input of `lineage` became `n` outputs.
    #[inline]
    pub(crate) fn item_became(&self, lineage: Lineage, n: u64) {
        if let Some(ledger) = &self.ledger {
            ledger.adjust(lineage, n as i64 - 1);
        }
    }

    /// A worker could not start: the run stops, and its items will be counted as failed.
    pub(crate) fn setup_failed(&self, error: NodeError) {
        tracing::error!(node = self.name, error = %error, "setup failed");
        self.stats.record_error(&error);
        self.control.fail(Failure::SetupFailed {
            node: self.name.to_string(),
            error,
        });
    }

    /// Counts a failed item's error and logs it (see [`log_failure`]); returns it as a
    /// value for the dead-letter node.
    pub(crate) fn item_failed(&self, error: impl Into<NodeError>) -> NodeError {
        let error = error.into();
        let (kind, of_its_kind) = self.stats.record_error(&error);
        log_failure(self.name, &error, kind, of_its_kind);
        if self.config.fail_fast {
            self.control.fail(Failure::ItemFailed {
                node: self.name.to_string(),
                error: error.clone(),
            });
        }
        error
    }

    /// A node's `finish` failed: the run fails with it, since what the node held is lost.
    pub(crate) fn finish_failed(&self, error: NodeError) {
        tracing::error!(node = self.name, error = %error, "`finish` failed");
        self.stats.record_error(&error);
        self.control.fail(Failure::FinishFailed {
            node: self.name.to_string(),
            error,
        });
    }

    /// A panic in a source ends the run: what it would have produced is gone with it.
    pub(crate) fn panicked(&self, payload: Box<dyn Any + Send>) {
        let message = self.record_panic(payload);
        self.control.fail(Failure::Panicked {
            node: self.name.to_string(),
            message,
        });
    }

    fn record_panic(&self, payload: Box<dyn Any + Send>) -> String {
        let message = panic_message(payload);
        tracing::error!(node = self.name, panic = %message, "node panicked");
        self.stats.panics.fetch_add(1, Relaxed);
        self.stats.record_error(&NodeError::new(PanicError {
            message: message.clone(),
        }));
        message
    }

    /// A worker of a stage or sink panicked on an item (which counts as failed). Returns
    /// whether it may restart; past the node's budget the run stops.
    pub(crate) fn worker_panicked(&self, payload: Box<dyn Any + Send>) -> Panicked {
        let message = self.record_panic(payload);
        let restarts = match self
            .stats
            .restarted(u64::from(self.config.restart_budget()))
        {
            Ok(restarts) => restarts,
            Err(restarts) => {
                self.control.fail(Failure::RestartsExhausted {
                    node: self.name.to_string(),
                    restarts,
                    last_panic: message.clone(),
                });
                return Panicked {
                    message,
                    restart: false,
                };
            }
        };
        tracing::warn!(
            node = self.name,
            restarts,
            "restarting the worker after a panic"
        );
        Panicked {
            message,
            restart: true,
        }
    }
}

pub(crate) fn panic_message(payload: Box<dyn Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => match payload.downcast::<&'static str>() {
            Ok(s) => (*s).to_string(),
            Err(_) => "a panic without a message".to_string(),
        },
    }
}

/// A worker's panic, once counted: its message, and whether the worker may start again.
pub(crate) struct Panicked {
    pub message: String,
    pub restart: bool,
}
