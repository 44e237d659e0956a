//! A source fed from outside the pipeline: [`channel`] gives the node and an [`Ingress`],
//! a cloneable handle any task or thread sends items with, under the pipeline's
//! backpressure. A web handler, a message consumer or a timer can feed a running pipeline.
//!
//! What an `Ingress` accepted is never lost without a trace. The source ends when every
//! handle is dropped, or when the run is shut down: from then on `send` fails with
//! [`Closed`], and what was accepted before still goes into the pipeline (the run drains).
//! If the run was aborted and accepted items can no longer go anywhere, the report counts
//! them as failed items of the source.

use tokio::sync::mpsc;

use crate::error::NodeError;
use crate::node::output::Output;
use crate::node::{BoxError, Source, SourceNode};

/// A source of the items sent through its [`Ingress`] handles, which it buffers up to
/// `capacity` (at least 1) before `send` waits.
///
/// ```
/// use pipeline::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (requests, ingress) = source::channel::<String>(64);
/// let got = Collected::new();
/// let p = pipeline! {
///     inp = requests;
///     upper = stage::map(|s: String| s.to_uppercase());
///     out = got.sink();
///     inp => upper => out;
/// };
/// let run = p.spawn();
/// ingress.send("hello".to_string()).await.unwrap();
/// ingress.try_send("world".to_string()).unwrap();
/// drop(ingress); // the last handle: the source ends
/// let report = run.await.unwrap();
/// assert_eq!(got.take(), ["HELLO", "WORLD"]);
/// assert_eq!(report.accounting().source_items, 2);
/// # }
/// ```
pub fn channel<T: Send + 'static>(capacity: usize) -> (SourceNode<ChannelSource<T>>, Ingress<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (SourceNode(ChannelSource { rx }), Ingress { tx })
}

/// Sends items into a running pipeline's [`channel`] source. Clone it for every task that
/// sends; the source ends once every clone is dropped.
#[derive(Debug)]
pub struct Ingress<T> {
    tx: mpsc::Sender<T>,
}

impl<T> Clone for Ingress<T> {
    fn clone(&self) -> Self {
        Ingress {
            tx: self.tx.clone(),
        }
    }
}

/// The pipeline no longer takes items: it was shut down, it ended, or it was never run.
/// Holds the item that was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> std::fmt::Display for Closed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the pipeline takes no more items")
    }
}

impl<T: std::fmt::Debug> std::error::Error for Closed<T> {}

/// Why [`Ingress::try_send`] did not take an item; each holds the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The pipeline is full: try again later (or `send`, which waits).
    Full(T),
    /// The pipeline takes no more items (see [`Closed`]).
    Closed(T),
}

impl<T> TrySendError<T> {
    /// The item that was not taken.
    pub fn into_inner(self) -> T {
        match self {
            TrySendError::Full(item) | TrySendError::Closed(item) => item,
        }
    }
}

impl<T> std::fmt::Display for TrySendError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrySendError::Full(_) => "the pipeline is full",
            TrySendError::Closed(_) => "the pipeline takes no more items",
        })
    }
}

impl<T: std::fmt::Debug> std::error::Error for TrySendError<T> {}

impl<T: Send + 'static> Ingress<T> {
    /// Sends `item`, waiting while the pipeline is full (backpressure). `Err` once the
    /// pipeline takes no more items.
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        self.tx.send(item).await.map_err(|e| Closed(e.0))
    }

    /// Sends `item` if the pipeline has room now.
    pub fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        self.tx.try_send(item).map_err(|e| match e {
            mpsc::error::TrySendError::Full(item) => TrySendError::Full(item),
            mpsc::error::TrySendError::Closed(item) => TrySendError::Closed(item),
        })
    }

    /// True once the pipeline takes no more items.
    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// The source [`channel`] makes.
#[derive(Debug)]
pub struct ChannelSource<T> {
    rx: mpsc::Receiver<T>,
}

impl<T: Send + 'static> Source for ChannelSource<T> {
    type Out = T;
    const DRAINS: bool = true;

    async fn run(self, mut out: Output<T>) -> Result<(), BoxError> {
        let mut rx = self.rx;
        while let Some(item) = next_accepted(&mut rx, &out).await {
            if out.push_accepted(item).await.is_err() {
                abandon(rx, &mut out, |_| {}).await;
                return Ok(());
            }
        }
        Ok(())
    }
}

/// The next item accepted from outside, `None` once there is none left: every sender is
/// gone, or the run is stopping and what was accepted before has been taken.
pub(crate) async fn next_accepted<T, O: Send + 'static>(
    rx: &mut mpsc::Receiver<T>,
    out: &Output<O>,
) -> Option<T> {
    tokio::select! {
        item = rx.recv() => item,
        () = out.stopping() => {
            // Take no more; pass on what was accepted.
            rx.close();
            rx.recv().await
        }
    }
}

/// The run was aborted while an item was going in: neither it nor those accepted behind
/// it can go on. Each of those is handed to `each` (to answer its sender), and all count
/// as the source's failed items.
pub(crate) async fn abandon<T, O: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
    out: &mut Output<O>,
    mut each: impl FnMut(T),
) {
    rx.close();
    let mut lost = 1;
    while let Some(item) = rx.recv().await {
        each(item);
        lost += 1;
    }
    let error = NodeError::from("accepted, but the run was aborted before it could take the item");
    out.undelivered(lost, error).await;
}
