//! Stages with state, written as a plain synchronous trait: the runtime's tuning (threads,
//! batch loops) is chosen here, not by the user.

use std::marker::PhantomData;

use crate::node::{BoxError, Stage, StageNode};

/// A stage that keeps state between items: a deduplicator, a batcher, a per-key counter.
///
/// Its code is synchronous and may block; it runs on a thread of its own, or inside the
/// node feeding it, in batches, as the built-in stages do. Wrap it with [`stateful`]. For
/// a stage that awaits, implement [`Stage`] itself.
///
/// ```
/// use pipeline::prelude::*;
/// use pipeline::stage::Stateful;
///
/// /// Drops repeats.
/// #[derive(Default)]
/// struct Dedup(std::collections::HashSet<String>);
///
/// impl Stateful for Dedup {
///     type In = String;
///     type Out = String;
///
///     fn process(&mut self, item: String, out: &mut Vec<String>) -> Result<(), BoxError> {
///         if self.0.insert(item.clone()) {
///             out.push(item);
///         }
///         Ok(())
///     }
/// }
///
/// let seen = Collected::new();
/// let p = pipeline! {
///     words = source::iter(["a", "b", "a"].map(String::from));
///     dedup = stage::stateful(Dedup::default());
///     out = seen.sink();
///     words => dedup => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(seen.take(), vec!["a", "b"]);
/// ```
pub trait Stateful: Send + 'static {
    /// The items it takes.
    type In: Send + 'static;
    /// The items it emits.
    type Out: Send + 'static;

    /// True when an input that gives no output went into the state (a batcher's items
    /// waiting for their batch) rather than being dropped (a deduplicator's repeats): the
    /// report then counts it as absorbed, not filtered.
    const ABSORBS: bool = false;

    /// Processes one item, pushing what it produces onto `out`; an `Err` fails the item.
    fn process(&mut self, item: Self::In, out: &mut Vec<Self::Out>) -> Result<(), BoxError>;

    /// At end of stream, after the last item: push what is left (the last batch, the
    /// totals). An `Err` fails the run with `Failure::FinishFailed`.
    fn finish(&mut self, _out: &mut Vec<Self::Out>) -> Result<(), BoxError> {
        Ok(())
    }
}

/// A stage from a [`Stateful`]. With `workers(n)`, each worker has its own copy (the type
/// must be `Clone`) and its own state.
pub fn stateful<S: Stateful>(stage: S) -> StageNode<StatefulStage<S>> {
    StageNode(StatefulStage(stage))
}

/// See [`stateful`].
#[derive(Clone)]
pub struct StatefulStage<S>(S);

impl<S: Stateful> Stage for StatefulStage<S> {
    type In = S::In;
    type Out = S::Out;
    const ABSORBS: bool = S::ABSORBS;
    const BLOCKING: bool = true;
    const SYNC: bool = true;
    // `finish` may emit: the node keeps its hooks.
    const HAS_HOOKS: bool = true;

    async fn process(&mut self, item: S::In, out: &mut Vec<S::Out>) -> Result<(), BoxError> {
        self.0.process(item, out)
    }

    fn process_sync(&mut self, item: S::In, out: &mut Vec<S::Out>) -> Result<(), BoxError> {
        self.0.process(item, out)
    }

    async fn finish(&mut self, out: &mut Vec<S::Out>) -> Result<(), BoxError> {
        self.0.finish(out)
    }
}

/// An aggregate: every input goes into an accumulator, which becomes outputs at end of
/// stream. See [`aggregate`] and [`fold`].
pub struct Aggregate<Acc, U, E, In> {
    /// `None` once emitted.
    acc: Option<Acc>,
    update: U,
    emit: E,
    _in: PhantomData<fn(In)>,
}

// By hand: a derive would also demand `In: Clone`.
impl<Acc: Clone, U: Clone, E: Clone, In> Clone for Aggregate<Acc, U, E, In> {
    fn clone(&self) -> Self {
        Aggregate {
            acc: self.acc.clone(),
            update: self.update.clone(),
            emit: self.emit.clone(),
            _in: PhantomData,
        }
    }
}

impl<Acc, U, E, In, I> Stateful for Aggregate<Acc, U, E, In>
where
    Acc: Send + 'static,
    In: Send + 'static,
    U: FnMut(&mut Acc, In) + Send + 'static,
    E: FnMut(Acc) -> I + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type In = In;
    type Out = I::Item;
    const ABSORBS: bool = true;

    fn process(&mut self, item: In, _out: &mut Vec<I::Item>) -> Result<(), BoxError> {
        if let Some(acc) = self.acc.as_mut() {
            (self.update)(acc, item);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<I::Item>) -> Result<(), BoxError> {
        if let Some(acc) = self.acc.take() {
            out.extend((self.emit)(acc));
        }
        Ok(())
    }
}

/// Folds every input into `init` with `update`, and at end of stream emits what `emit`
/// makes of the result: any number of items (a map's entries, say).
///
/// The inputs count as *absorbed* in the report, the outputs as new items. With
/// `workers(n)`, each worker aggregates its share and emits its own result.
///
/// ```
/// use pipeline::prelude::*;
/// use std::collections::BTreeMap;
///
/// let counts = Collected::new();
/// let p = pipeline! {
///     codes = source::iter([200u16, 404, 200, 500, 200]);
///     per_code = stage::aggregate(
///         BTreeMap::new(),
///         |counts: &mut BTreeMap<u16, u64>, code: u16| *counts.entry(code).or_default() += 1,
///         |counts| counts,
///     );
///     out = counts.sink();
///     codes => per_code => out;
/// };
/// let report = p.run_blocking().unwrap();
/// assert_eq!(counts.take(), vec![(200, 3), (404, 1), (500, 1)]);
/// assert_eq!(report.node("per_code").unwrap().absorbed, 5);
/// ```
pub fn aggregate<Acc, In, U, E, I>(
    init: Acc,
    update: U,
    emit: E,
) -> StageNode<StatefulStage<Aggregate<Acc, U, E, In>>>
where
    Acc: Send + 'static,
    In: Send + 'static,
    U: FnMut(&mut Acc, In) + Send + 'static,
    E: FnMut(Acc) -> I + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    stateful(Aggregate {
        acc: Some(init),
        update,
        emit,
        _in: PhantomData,
    })
}

/// Folds every input into `init` with `update`, and emits the result at end of stream:
/// [`aggregate`] with one output.
///
/// ```
/// use pipeline::prelude::*;
///
/// let total = Collected::new();
/// let p = pipeline! {
///     sizes = source::iter([3u64, 4, 5]);
///     sum = stage::fold(0u64, |sum: &mut u64, size: u64| *sum += size);
///     out = total.sink();
///     sizes => sum => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(total.take(), vec![12]);
/// ```
#[allow(clippy::type_complexity)]
pub fn fold<Acc, In, U>(
    init: Acc,
    update: U,
) -> StageNode<StatefulStage<Aggregate<Acc, U, fn(Acc) -> std::iter::Once<Acc>, In>>>
where
    Acc: Send + 'static,
    In: Send + 'static,
    U: FnMut(&mut Acc, In) + Send + 'static,
{
    aggregate(
        init,
        update,
        std::iter::once as fn(Acc) -> std::iter::Once<Acc>,
    )
}
