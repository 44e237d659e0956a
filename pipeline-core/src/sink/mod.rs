//! Sinks: where items leave the pipeline.

mod channel;

pub use channel::{ChannelSink, OutputStream, StreamDropped, channel};

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::node::{BoxError, Sink, SinkNode};

/// See [`for_each`].
pub struct ForEach<F, T>(F, PhantomData<fn(T)>);
/// See [`for_each_async`].
pub struct ForEachAsync<F, T>(F, PhantomData<fn(T)>);
/// See [`try_for_each`].
pub struct TryForEach<F, T>(F, PhantomData<fn(T)>);

/// Calls `f` with every item.
pub fn for_each<T, F>(f: F) -> SinkNode<ForEach<F, T>>
where
    F: FnMut(T) + Send + 'static,
    T: Send + 'static,
{
    SinkNode(ForEach(f, PhantomData))
}

impl<T, F> Sink for ForEach<F, T>
where
    F: FnMut(T) + Send + 'static,
    T: Send + 'static,
{
    type In = T;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: T) -> Result<(), BoxError> {
        (self.0)(item);
        Ok(())
    }
}

/// Awaits `f` for every item, one at a time.
pub fn for_each_async<T, F, Fut>(f: F) -> SinkNode<ForEachAsync<F, T>>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
    T: Send + 'static,
{
    SinkNode(ForEachAsync(f, PhantomData))
}

impl<T, F, Fut> Sink for ForEachAsync<F, T>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
    T: Send + 'static,
{
    type In = T;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        (self.0)(item).await;
        Ok(())
    }
}

/// See [`write()`].
pub struct Write<W, F, T> {
    writer: W,
    format: F,
    _items: PhantomData<fn(T)>,
}

/// Writes every item to `writer` with `format` (`|w, line| writeln!(w, "{line}")`), and
/// flushes the writer at end of stream. A failed write fails its item; a failed final
/// flush (a `BufWriter`'s last block) fails the run with `Failure::FinishFailed`, since
/// items counted as delivered did not all reach the file.
///
/// ```
/// use pipeline::prelude::*;
/// use std::io::Write as _;
///
/// let path = std::env::temp_dir().join(format!("pipeline-write-{}.txt", std::process::id()));
/// let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
/// let p = pipeline! {
///     words = source::iter(["a", "b"]);
///     out = sink::write(file, |w: &mut std::io::BufWriter<std::fs::File>, word: &str| writeln!(w, "{word}"));
///     words => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
/// # std::fs::remove_file(&path).unwrap();
/// ```
pub fn write<W, T, F>(writer: W, format: F) -> SinkNode<Write<W, F, T>>
where
    W: std::io::Write + Send + 'static,
    F: FnMut(&mut W, T) -> std::io::Result<()> + Send + 'static,
    T: Send + 'static,
{
    SinkNode(Write {
        writer,
        format,
        _items: PhantomData,
    })
}

impl<W, T, F> Sink for Write<W, F, T>
where
    W: std::io::Write + Send + 'static,
    F: FnMut(&mut W, T) -> std::io::Result<()> + Send + 'static,
    T: Send + 'static,
{
    type In = T;
    const BLOCKING: bool = true;
    const SYNC: bool = true;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: T) -> Result<(), BoxError> {
        Ok((self.format)(&mut self.writer, item)?)
    }

    async fn finish(&mut self) -> Result<(), BoxError> {
        Ok(self.writer.flush()?)
    }
}

/// A fallible sink: `Err` counts the item as failed (not delivered).
pub fn try_for_each<T, E, F>(f: F) -> SinkNode<TryForEach<F, T>>
where
    F: FnMut(T) -> Result<(), E> + Send + 'static,
    E: Into<BoxError>,
    T: Send + 'static,
{
    SinkNode(TryForEach(f, PhantomData))
}

impl<T, E, F> Sink for TryForEach<F, T>
where
    F: FnMut(T) -> Result<(), E> + Send + 'static,
    E: Into<BoxError>,
    T: Send + 'static,
{
    type In = T;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: T) -> Result<(), BoxError> {
        (self.0)(item).map_err(Into::into)
    }
}

/// Items collected by a pipeline, readable after (or during) the run.
///
/// ```
/// # use pipeline::prelude::*;
/// let squares = Collected::new();
/// let p = pipeline! {
///     nums = source::iter(1..=3u32);
///     out = squares.sink();
///     nums => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(squares.take(), vec![1, 2, 3]);
/// ```
pub struct Collected<T>(Arc<Mutex<Vec<T>>>);

impl<T> std::fmt::Debug for Collected<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = self.0.lock().map_or(0, |items| items.len());
        f.debug_struct("Collected").field("held", &held).finish()
    }
}

impl<T> Clone for Collected<T> {
    fn clone(&self) -> Self {
        Collected(self.0.clone())
    }
}

impl<T> Default for Collected<T> {
    fn default() -> Self {
        Collected(Arc::default())
    }
}

// No `T: Send` bound here: it would make the compiler demand `T` at `new()`, before the
// pipeline's edges have told it what flows in. The sink's own impl requires it.
impl<T> Collected<T> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A sink node that appends every item it receives here.
    pub fn sink(&self) -> SinkNode<Collect<T>> {
        SinkNode(Collect {
            into: self.clone(),
            buf: Vec::new(),
        })
    }

    /// Takes the items collected so far, leaving it empty.
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.lock())
    }

    /// How many items were collected so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was collected so far.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The sink of a [`Collected`]; it publishes once per batch, not per item.
pub struct Collect<T> {
    into: Collected<T>,
    buf: Vec<T>,
}

impl<T: Send + 'static> Sink for Collect<T> {
    type In = T;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn consume(&mut self, item: T) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: T) -> Result<(), BoxError> {
        self.buf.push(item);
        Ok(())
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            self.into.lock().append(&mut self.buf);
        }
    }
}
