//! A sink whose items the program reads as a `futures::Stream`: [`channel`] gives the node
//! and an [`OutputStream`]. With `source::channel`, a pipeline composes with tokio and
//! futures code at both ends.
//!
//! The stream holds up to `capacity` items; past that the sink waits for the reader
//! (backpressure reaches the sources). If the reader drops the stream, the items that
//! arrive after count as failed, with an error that says so.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::mpsc;

use crate::node::{BoxError, Sink, SinkNode};

/// A sink that hands its items to an [`OutputStream`], which buffers up to `capacity`
/// (at least 1).
///
/// ```
/// use futures::StreamExt;
/// use pipeline::prelude::*;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let (sink, mut outputs) = sink::channel::<u32>(16);
/// let p = pipeline! {
///     nums = source::iter(1..=3u32);
///     square = stage::map(|n: u32| n * n);
///     out = sink;
///     nums => square => out;
/// };
/// let run = p.spawn();
/// let mut got = Vec::new();
/// while let Some(n) = outputs.next().await {
///     got.push(n);
/// }
/// assert_eq!(got, [1, 4, 9]);
/// run.await.unwrap();
/// # }
/// ```
pub fn channel<T: Send + 'static>(capacity: usize) -> (SinkNode<ChannelSink<T>>, OutputStream<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (SinkNode(ChannelSink { tx }), OutputStream { rx })
}

/// The items a [`channel`] sink consumed, in the order it consumed them. It ends when the
/// sink has ended (its input ended, or the run stopped).
#[derive(Debug)]
pub struct OutputStream<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> OutputStream<T> {
    /// The next item; `None` once the sink has ended and every item was read.
    pub async fn recv(&mut self) -> Option<T> {
        self.rx.recv().await
    }
}

impl<T> Stream for OutputStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

/// The sink [`channel`] makes.
#[derive(Debug)]
pub struct ChannelSink<T> {
    tx: mpsc::Sender<T>,
}

/// The reader dropped the [`OutputStream`]: an item that reaches the sink after it has no
/// one to go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamDropped;

impl std::fmt::Display for StreamDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the output stream was dropped: nobody reads this item")
    }
}

impl std::error::Error for StreamDropped {}

impl<T: Send + 'static> Sink for ChannelSink<T> {
    type In = T;
    const HAS_HOOKS: bool = false;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        self.tx.send(item).await.map_err(|_| StreamDropped.into())
    }
}
