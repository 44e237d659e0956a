//! Stages: plain Rust functions between a source and a sink.
//!
//! The synchronous ones (`map`, `filter`, `filter_map`, `flat_map`, `try_map`) run on threads
//! of their own, so blocking or CPU-heavy code in them never stalls async stages; the `_async`
//! ones run on the async workers.
//!
//! Stages with state: [`fold`] and [`aggregate`] (per-key counts, totals), and any
//! [`Stateful`] type through [`stateful`].
//!
//! Closures take their input by value; annotate the parameter type (`|s: String| ..`)
//! whenever the body calls methods on it, since the closure is type-checked before the
//! pipeline wiring tells the compiler what flows into it.

use std::future::Future;
use std::marker::PhantomData;

use crate::node::{BoxError, Stage, StageNode};

mod stateful;

pub use stateful::{Aggregate, Stateful, StatefulStage, aggregate, fold, stateful};

macro_rules! stage_struct {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<F, In, Out>(F, PhantomData<fn(In) -> Out>);

        // By hand: a derive would also demand `In: Clone` and `Out: Clone`.
        impl<F: Clone, In, Out> Clone for $name<F, In, Out> {
            fn clone(&self) -> Self {
                $name(self.0.clone(), PhantomData)
            }
        }
    };
}

stage_struct!(
    /// See [`map`].
    Map
);
stage_struct!(
    /// See [`map_async`].
    MapAsync
);
stage_struct!(
    /// See [`filter`].
    Filter
);
stage_struct!(
    /// See [`filter_map`].
    FilterMap
);
stage_struct!(
    /// See [`flat_map`].
    FlatMap
);
stage_struct!(
    /// See [`try_map`].
    TryMap
);
stage_struct!(
    /// See [`try_map_async`].
    TryMapAsync
);

/// One output per input.
pub fn map<In, Out, F>(f: F) -> StageNode<Map<F, In, Out>>
where
    F: FnMut(In) -> Out + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(Map(f, PhantomData))
}

impl<In, Out, F> Stage for Map<F, In, Out>
where
    F: FnMut(In) -> Out + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.push((self.0)(item));
        Ok(())
    }

    const ONE_TO_ONE: bool = true;

    #[inline]
    fn map_one(&mut self, item: In) -> Out {
        (self.0)(item)
    }
}

/// One output per input, computed by an async function.
pub fn map_async<In, Out, F, Fut>(f: F) -> StageNode<MapAsync<F, In, Out>>
where
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(MapAsync(f, PhantomData))
}

impl<In, Out, F, Fut> Stage for MapAsync<F, In, Out>
where
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = Out> + Send,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.push((self.0)(item).await);
        Ok(())
    }
}

/// Keeps the items for which the predicate is true; the others are counted as filtered.
pub fn filter<T, F>(f: F) -> StageNode<Filter<F, T, T>>
where
    F: FnMut(&T) -> bool + Send + 'static,
    T: Send + 'static,
{
    StageNode(Filter(f, PhantomData))
}

impl<T, F> Stage for Filter<F, T, T>
where
    F: FnMut(&T) -> bool + Send + 'static,
    T: Send + 'static,
{
    type In = T;
    type Out = T;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn process(&mut self, item: T, out: &mut Vec<T>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: T, out: &mut Vec<T>) -> Result<(), BoxError> {
        if (self.0)(&item) {
            out.push(item);
        }
        Ok(())
    }
}

/// Maps and filters in one: `None` counts the item as filtered.
pub fn filter_map<In, Out, F>(f: F) -> StageNode<FilterMap<F, In, Out>>
where
    F: FnMut(In) -> Option<Out> + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(FilterMap(f, PhantomData))
}

impl<In, Out, F> Stage for FilterMap<F, In, Out>
where
    F: FnMut(In) -> Option<Out> + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.extend((self.0)(item));
        Ok(())
    }
}

/// Zero or more outputs per input. Each output gets a child lineage of its input, so a
/// zip downstream pairs items that went through this flat-map on every branch; an empty
/// result counts the input as filtered.
pub fn flat_map<In, Out, I, F>(f: F) -> StageNode<FlatMap<F, In, Out>>
where
    F: FnMut(In) -> I + Send + 'static,
    I: IntoIterator<Item = Out>,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(FlatMap(f, PhantomData))
}

impl<In, Out, I, F> Stage for FlatMap<F, In, Out>
where
    F: FnMut(In) -> I + Send + 'static,
    I: IntoIterator<Item = Out>,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;
    const SPLITS: bool = true;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.extend((self.0)(item));
        Ok(())
    }
}

/// A fallible map: `Err` counts the item as failed, logs it and keeps it in the report; the
/// pipeline goes on unless the node (or the pipeline) is fail-fast.
pub fn try_map<In, Out, E, F>(f: F) -> StageNode<TryMap<F, In, Out>>
where
    F: FnMut(In) -> Result<Out, E> + Send + 'static,
    E: Into<BoxError>,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(TryMap(f, PhantomData))
}

impl<In, Out, E, F> Stage for TryMap<F, In, Out>
where
    F: FnMut(In) -> Result<Out, E> + Send + 'static,
    E: Into<BoxError>,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    const HAS_HOOKS: bool = false;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.push((self.0)(item).map_err(Into::into)?);
        Ok(())
    }
}

/// The async form of [`try_map`].
pub fn try_map_async<In, Out, E, F, Fut>(f: F) -> StageNode<TryMapAsync<F, In, Out>>
where
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Out, E>> + Send,
    E: Into<BoxError>,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(TryMapAsync(f, PhantomData))
}

impl<In, Out, E, F, Fut> Stage for TryMapAsync<F, In, Out>
where
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Out, E>> + Send,
    E: Into<BoxError>,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        out.push((self.0)(item).await.map_err(Into::into)?);
        Ok(())
    }
}

/// A map whose closure also gets the run's shared context value (see
/// [`Pipeline::with_context`](crate::Pipeline::with_context)), fetched once per worker.
/// If the pipeline has no context of type `C`, the node cannot start and the run says so.
pub fn map_with<C, In, Out, F>(f: F) -> StageNode<MapWith<C, F, In, Out>>
where
    C: Send + Sync + 'static,
    F: FnMut(&C, In) -> Out + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    StageNode(MapWith {
        f,
        context: None,
        _types: PhantomData,
    })
}

/// See [`map_with`].
pub struct MapWith<C, F, In, Out> {
    f: F,
    context: Option<std::sync::Arc<C>>,
    _types: PhantomData<fn(In) -> Out>,
}

impl<C, F: Clone, In, Out> Clone for MapWith<C, F, In, Out> {
    fn clone(&self) -> Self {
        MapWith {
            f: self.f.clone(),
            context: self.context.clone(),
            _types: PhantomData,
        }
    }
}

impl<C, In, Out, F> Stage for MapWith<C, F, In, Out>
where
    C: Send + Sync + 'static,
    F: FnMut(&C, In) -> Out + Send + 'static,
    In: Send + 'static,
    Out: Send + 'static,
{
    type In = In;
    type Out = Out;
    const BLOCKING: bool = true;
    const SYNC: bool = true;

    async fn setup(&mut self, context: &crate::Context) -> Result<(), BoxError> {
        self.context = Some(context.require::<C>()?);
        Ok(())
    }

    async fn process(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        self.process_sync(item, out)
    }

    fn process_sync(&mut self, item: In, out: &mut Vec<Out>) -> Result<(), BoxError> {
        let context = self
            .context
            .as_deref()
            .ok_or("`map_with` ran before its setup")?;
        out.push((self.f)(context, item));
        Ok(())
    }
}
