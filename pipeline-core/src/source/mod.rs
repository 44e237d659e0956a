//! Sources: where items enter the pipeline.
//!
//! A source numbers its items (their lineage roots) in the order it pushes them. Items go
//! downstream in batches: a batch leaves at once while the next node is idle, and grows up
//! to the edge's batch size while it is busy, so light load keeps low latency.

pub(crate) mod channel;
mod lines;

pub use channel::{ChannelSource, Closed, Ingress, TrySendError, channel};
pub use lines::{Line, LinesSource, lines};

use std::future::Future;
use std::marker::PhantomData;

use futures::{Stream, StreamExt};

pub use crate::node::output::{Output, Stopped};
use crate::node::{BoxError, Source, SourceNode};

/// A source over anything iterable. The iterator runs on a thread of its own, so its
/// `next` may block (reading a file, a socket).
pub fn iter<I>(items: I) -> SourceNode<IterSource<I::IntoIter>>
where
    I: IntoIterator,
    I::IntoIter: Send + 'static,
    I::Item: Send + 'static,
{
    SourceNode(IterSource(items.into_iter()))
}

/// The source [`iter`] makes.
pub struct IterSource<I>(I);

impl<I> Source for IterSource<I>
where
    I: Iterator + Send + 'static,
    I::Item: Send + 'static,
{
    type Out = I::Item;
    const BLOCKING: bool = true;

    async fn run(self, mut out: Output<I::Item>) -> Result<(), BoxError> {
        if let (low, Some(high)) = self.0.size_hint()
            && low == high
        {
            // The progress line can say how far along the run is.
            out.expect(low as u64);
        }
        // `Err` is the pipeline stopping: the source just ends.
        let _ = out.push_all(self.0).await;
        Ok(())
    }
}

/// A source over an iterator of `Result`s, such as `reader.lines()`: the `Ok` items go
/// downstream; the first `Err` ends the source, and the run, with
/// `Failure::SourceFailed` carrying that error (an I/O error is not one more bad line).
/// What came before it is delivered. Like [`iter`], it runs on a thread of its own. With
/// [`skip_errors`](SourceNode::skip_errors), each `Err` is one failed item instead, and the
/// source goes on.
///
/// ```
/// use pipeline::prelude::*;
/// use std::io::BufRead;
///
/// let lines = std::io::Cursor::new("a\nb\n").lines();
/// let got = Collected::new();
/// let p = pipeline! {
///     log = source::try_iter(lines);
///     out = got.sink();
///     log => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(got.take(), vec!["a", "b"]);
/// ```
pub fn try_iter<I, T, E>(items: I) -> SourceNode<TryIterSource<I::IntoIter>>
where
    I: IntoIterator<Item = Result<T, E>>,
    I::IntoIter: Send + 'static,
    T: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    SourceNode(TryIterSource {
        items: items.into_iter(),
        skip_errors: false,
    })
}

/// The source [`try_iter`] makes.
pub struct TryIterSource<I> {
    items: I,
    skip_errors: bool,
}

impl<I> SourceNode<TryIterSource<I>> {
    /// An `Err` is one failed item rather than the end: it is counted as the source's
    /// failed item (by kind, in the report's errors) and logged as a stage's failed items
    /// are, and the source goes on with the next one. For input where a bad record is
    /// expected; an I/O error that means the input is gone still yields an `Err` per call,
    /// so bound such an iterator yourself.
    ///
    /// ```
    /// use pipeline::prelude::*;
    ///
    /// let lines = vec![Ok("1".to_string()), Err("line 2: bad bytes"), Ok("3".to_string())];
    /// let got = Collected::new();
    /// let p = pipeline! {
    ///     log = source::try_iter(lines).skip_errors();
    ///     out = got.sink();
    ///     log => out;
    /// };
    /// let report = p.run_blocking().unwrap();
    /// assert_eq!(got.take(), vec!["1", "3"]);
    /// assert_eq!(report.node("log").unwrap().failed, 1);
    /// assert!(report.accounting().is_balanced());
    /// ```
    pub fn skip_errors(mut self) -> Self {
        self.0.skip_errors = true;
        self
    }
}

impl<I, T, E> Source for TryIterSource<I>
where
    I: Iterator<Item = Result<T, E>> + Send + 'static,
    T: Send + 'static,
    E: Into<BoxError> + Send + 'static,
{
    type Out = T;
    const BLOCKING: bool = true;

    async fn run(self, mut out: Output<T>) -> Result<(), BoxError> {
        if self.skip_errors {
            let failures = out.failures();
            let mut failed = 0;
            let items = self.items.filter_map(|item| match item {
                Ok(item) => Some(item),
                Err(error) => {
                    failed += 1;
                    failures.item_failed(crate::error::NodeError::from(error.into()));
                    None
                }
            });
            // `Err` is the pipeline stopping: the source just ends.
            let _ = out.push_all(items).await;
            out.failed_items(failed).await;
            return Ok(());
        }
        let mut failed = None;
        let items = self.items.map_while(|item| match item {
            Ok(item) => Some(item),
            Err(error) => {
                failed = Some(error);
                None
            }
        });
        // `Err` is the pipeline stopping: the source just ends.
        let _ = out.push_all(items).await;
        match failed {
            Some(error) => Err(error.into()),
            None => Ok(()),
        }
    }
}

/// A source over a `Stream`.
pub fn stream<S>(items: S) -> SourceNode<StreamSource<S>>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    SourceNode(StreamSource(items))
}

/// The source [`stream`] makes.
pub struct StreamSource<S>(S);

impl<S> Source for StreamSource<S>
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Out = S::Item;

    async fn run(self, mut out: Output<S::Item>) -> Result<(), BoxError> {
        let mut items = std::pin::pin!(self.0);
        loop {
            let next = match futures::FutureExt::now_or_never(items.next()) {
                Some(next) => next,
                None => {
                    // The stream has nothing right now: let what we have go.
                    if out.flush().await.is_err() {
                        break;
                    }
                    items.next().await
                }
            };
            match next {
                Some(item) => {
                    if out.push(item).await.is_err() {
                        break;
                    }
                }
                None => break,
            }
        }
        Ok(())
    }
}

/// A source driven by an async function that is handed the [`Output`] and pushes items:
///
/// ```
/// # use pipeline::prelude::*;
/// let numbers = source::producer(|mut out: Output<u32>| async move {
///     for n in 0..10 {
///         out.push(n).await?;
///     }
///     Ok(())
/// });
/// # let _ = numbers;
/// ```
///
/// `push` fails once the pipeline stops; `?` then ends the producer. A producer that waits
/// on something else is cancelled at shutdown; what it pushed is still delivered.
pub fn producer<T, F, Fut>(produce: F) -> SourceNode<Producer<F, T>>
where
    T: Send + 'static,
    F: FnOnce(Output<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    SourceNode(Producer(produce, PhantomData))
}

/// The source [`producer`] makes.
pub struct Producer<F, T>(F, PhantomData<fn() -> T>);

impl<T, F, Fut> Source for Producer<F, T>
where
    T: Send + 'static,
    F: FnOnce(Output<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    type Out = T;

    fn run(self, out: Output<T>) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.0)(out)
    }
}
