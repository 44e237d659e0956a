//! A pipeline as a service: submit an item, await what became of it.
//!
//! [`channel`] gives three things: the source of requests, the reply sink, and a
//! [`Service`] handle. Put the source and the sink in the graph; then
//! [`Service::call`] sends an item in and resolves with the outputs the reply sink got for
//! that item, whatever path it took (fan-out, zip, filter, flat-map), or says why there
//! were none. Calls are correlated by the lineage every item carries: the runtime follows
//! each request to the end of every item made from it, so a call resolves as soon as its
//! request is finished, not when the run ends. Many calls are in flight at once; a caller
//! that gives up (drops its future, or times out) cancels nothing else.
//!
//! Which graphs can reply: any graph whose only source is the requests and that has no
//! `merge` node (a merge numbers items afresh, so they can no longer be traced to their
//! request), in one process. Others are refused when the run starts, with
//! [`Failure::Unrunnable`](crate::Failure::Unrunnable) saying why. Other sinks may sit
//! beside the reply sink: their items count toward when a request is finished, but only
//! the reply sink's items are replies.
//!
//! Following every item costs a lock per item. The requests' source runs on a thread of
//! its own, so that cheap synchronous stages after it run inline there (a node inside
//! another's loop tells the run where its items end, as in a loop of its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::error::NodeError;
use crate::ledger::{Done, Fate};
use crate::lineage::Lineage;
use crate::node::output::Output;
use crate::node::{BoxError, Sink, SinkNode, Source, SourceNode};
use crate::source::TrySendError;
use crate::source::channel::{abandon, next_accepted};

/// The requests' source, the reply sink, and the handle that calls the service; up to
/// `capacity` requests (at least 1) wait to enter the pipeline before `call` waits.
///
/// ```
/// use pipeline::prelude::*;
/// use pipeline::service::{self, Reply};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (requests, replies, svc) = service::channel::<String, (String, String)>(64);
/// let p = pipeline! {
///     inp = requests;
///     rev = stage::map(|s: String| s.chars().rev().collect::<String>());
///     out = replies;
///     inp => rev, out;
///     rev => out;
/// };
/// let run = p.spawn();
/// let reply = svc.call("hello".to_string()).await.unwrap();
/// assert_eq!(reply, Reply::Outputs(vec![("hello".into(), "olleh".into())]));
/// drop(svc);
/// run.await.unwrap();
/// # }
/// ```
#[allow(clippy::type_complexity)]
pub fn channel<In, Out>(
    capacity: usize,
) -> (
    SourceNode<Requests<In, Out>>,
    SinkNode<Replies<Out>>,
    Service<In, Out>,
)
where
    In: Send + 'static,
    Out: Send + 'static,
{
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let outputs = Arc::new(Outputs(Mutex::new(HashMap::new())));
    (
        SourceNode(Requests {
            rx,
            outputs: outputs.clone(),
        }),
        SinkNode(Replies { outputs }),
        Service { tx },
    )
}

/// What became of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply<Out> {
    /// The items the reply sink got for it, in the order it got them.
    Outputs(Vec<Out>),
    /// No output: a stage filtered it out (or a flat-map made nothing of it).
    Filtered,
    /// No output: an item made from it failed, with this error (the first one).
    Failed(NodeError),
    /// No output: a zip dropped a part of it, for lack of a partner on another input.
    Dropped,
    /// The run ended before the request was finished (it was aborted, or failed).
    Unfinished,
}

/// Why a call has no [`Reply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallError {
    /// The service takes no more requests: it was shut down, it ended, or it never ran.
    Closed,
    /// No reply within the time given to [`Service::call_timeout`]; the request may still
    /// be processed.
    TimedOut,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CallError::Closed => "the service takes no more requests",
            CallError::TimedOut => "no reply in time",
        })
    }
}

impl std::error::Error for CallError {}

type Request<In, Out> = (In, oneshot::Sender<Reply<Out>>);

/// Calls a running service. Clone it for every task that calls; the requests' source ends
/// once every clone is dropped (or the run is shut down).
#[derive(Debug)]
pub struct Service<In, Out> {
    tx: mpsc::Sender<Request<In, Out>>,
}

impl<In, Out> Clone for Service<In, Out> {
    fn clone(&self) -> Self {
        Service {
            tx: self.tx.clone(),
        }
    }
}

impl<In: Send + 'static, Out: Send + 'static> Service<In, Out> {
    /// Sends `item` in (waiting while the pipeline is full) and resolves with what became
    /// of it.
    pub async fn call(&self, item: In) -> Result<Reply<Out>, CallError> {
        let (reply, replied) = oneshot::channel();
        self.tx
            .send((item, reply))
            .await
            .map_err(|_| CallError::Closed)?;
        // Err: the run ended with the request still queued, never taken.
        replied.await.map_err(|_| CallError::Closed)
    }

    /// [`call`](Self::call), giving up after `limit` (the request is not withdrawn).
    pub async fn call_timeout(&self, item: In, limit: Duration) -> Result<Reply<Out>, CallError> {
        tokio::time::timeout(limit, self.call(item))
            .await
            .unwrap_or(Err(CallError::TimedOut))
    }

    /// Sends `item` in if the pipeline has room now, and gives the future of its reply;
    /// [`TrySendError::Full`] otherwise (an HTTP front answers `429` then), or `Closed`.
    pub fn try_call(
        &self,
        item: In,
    ) -> Result<
        impl Future<Output = Result<Reply<Out>, CallError>> + Send + use<In, Out>,
        TrySendError<In>,
    > {
        let (reply, replied) = oneshot::channel();
        self.tx.try_send((item, reply)).map_err(|e| match e {
            mpsc::error::TrySendError::Full((item, _)) => TrySendError::Full(item),
            mpsc::error::TrySendError::Closed((item, _)) => TrySendError::Closed(item),
        })?;
        Ok(async move { replied.await.map_err(|_| CallError::Closed) })
    }

    /// True once the service takes no more requests.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The reply sink's outputs, by request (lineage root), until the request is finished.
struct Outputs<Out>(Mutex<HashMap<u64, Vec<Out>>>);

impl<Out> Outputs<Out> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<Out>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The requests' source [`channel`] makes.
pub struct Requests<In, Out> {
    rx: mpsc::Receiver<Request<In, Out>>,
    outputs: Arc<Outputs<Out>>,
}

impl<In, Out> std::fmt::Debug for Requests<In, Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requests").finish_non_exhaustive()
    }
}

impl<In: Send + 'static, Out: Send + 'static> Source for Requests<In, Out> {
    type Out = In;
    // On a thread of its own, where the synchronous stages after it may run inline: an
    // async task does not run code that may block.
    const BLOCKING: bool = true;
    const DRAINS: bool = true;
    const TRACED: bool = true;

    async fn run(self, mut out: Output<In>) -> Result<(), BoxError> {
        let Requests { mut rx, outputs } = self;
        while let Some((item, reply)) = next_accepted(&mut rx, &out).await {
            let finished = outputs.clone();
            let done = move |root: u64| -> Done {
                Box::new(move |fate: Fate| {
                    let got = finished.lock().remove(&root).unwrap_or_default();
                    let answer = match fate {
                        _ if !got.is_empty() => Reply::Outputs(got),
                        Fate::Ended => Reply::Filtered,
                        Fate::Failed(error) => Reply::Failed(error),
                        Fate::Dropped => Reply::Dropped,
                        Fate::Unfinished => Reply::Unfinished,
                    };
                    // Err: the caller gave up; nothing else is affected.
                    let _ = reply.send(answer);
                })
            };
            if out.push_traced(item, done).await.is_err() {
                // The callers of what cannot go in hear `Unfinished` (this one, when the
                // run ends); the report counts them as failed.
                abandon(rx, &mut out, |(_, reply)| {
                    let _ = reply.send(Reply::Unfinished);
                })
                .await;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The reply sink [`channel`] makes.
pub struct Replies<Out> {
    outputs: Arc<Outputs<Out>>,
}

impl<Out> std::fmt::Debug for Replies<Out> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").finish_non_exhaustive()
    }
}

impl<Out: Send + 'static> Sink for Replies<Out> {
    type In = Out;
    const HAS_HOOKS: bool = false;
    const TRACED: bool = true;

    async fn consume(&mut self, _: Out) -> Result<(), BoxError> {
        unreachable!("the runtime calls `consume_from`, with the item's lineage")
    }

    async fn consume_from(&mut self, lineage: Lineage, item: Out) -> Result<(), BoxError> {
        self.outputs
            .lock()
            .entry(lineage.root_index())
            .or_default()
            .push(item);
        Ok(())
    }
}
