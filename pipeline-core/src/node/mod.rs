//! What a node is: every node has an input and an output type; its role says how it runs.
//!
//! The constructors in [`crate::source`], [`crate::stage`] and [`crate::sink`] return
//! [`SourceNode`], [`StageNode`] and [`SinkNode`]. The wrappers give all three roles one
//! [`Node`] trait (so the macro can type every edge the same way) without overlapping
//! blanket impls, and they make compiler messages say which role a value has.
//! To write a node by hand, implement [`Source`], [`Stage`] or [`Sink`] and wrap it with
//! `SourceNode::new`, `StageNode::new` or `SinkNode::new`.

pub(crate) mod output;
pub(crate) mod pace;
pub mod shape;

use std::future::Future;

use crate::context::Context;
use output::Output;
use shape::{Broken, Hint, Link, SinkLink};

pub use crate::error::BoxError;

/// The input type of a source: it has no inputs.
#[derive(Debug)]
pub enum NoInput {}

/// The output type of a sink: it has no outputs.
#[derive(Debug)]
pub enum NoOutput {}

/// A node of a pipeline, whatever its role.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a pipeline node",
    label = "not built by a `source::`, `stage::` or `sink::` constructor",
    note = "nodes are built with `source::iter(..)`, `stage::map(..)`, `sink::for_each(..)` and the like"
)]
pub trait Node: Send + 'static {
    /// What the node receives (a tuple when it zips several inputs).
    type In: Send + 'static;
    /// What the node sends downstream.
    type Out: Send + 'static;
    /// [`roles::Source`], [`roles::Stage`] or [`roles::Sink`].
    type Role;
    /// The chain `R` with this node in front of it, if it is a stage (see
    /// `fuse::chain`): what lets `pipeline!` name a chain's stages by their nodes.
    #[doc(hidden)]
    type ChainLink<R: Hint>: Hint;
}

/// Type-level roles, so compile-time checks can tell what a node is.
pub mod roles {
    /// A node with no input.
    pub enum Source {}
    /// A node with inputs and outputs.
    pub enum Stage {}
    /// A node with no output.
    pub enum Sink {}
}

/// Produces items: an iterator, a stream, a producer function.
pub trait Source: Send + 'static {
    /// The items it produces.
    type Out: Send + 'static;

    /// True when `run` is synchronous code that may block (an iterator): the source then
    /// runs on a thread of its own instead of an async worker.
    const BLOCKING: bool = false;

    /// True when the source itself obeys a stop (see [`Output::stopping`]) and drains what
    /// it already accepted from outside: the runtime then does not cancel it at shutdown.
    #[doc(hidden)]
    const DRAINS: bool = false;

    /// True when the run must follow every item of this source to its end (a service's
    /// requests, which are answered once they are).
    #[doc(hidden)]
    const TRACED: bool = false;

    /// Pushes every item into `out`. Returning ends the source's stream.
    fn run(self, out: Output<Self::Out>) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// Turns each input item into zero, one or several output items.
pub trait Stage: Send + 'static {
    /// The items it takes.
    type In: Send + 'static;
    /// The items it gives.
    type Out: Send + 'static;

    /// True when one input may give several outputs (flat-map): each output then gets a
    /// child lineage of its input, so a zip downstream pairs the right pieces.
    const SPLITS: bool = false;

    /// True when an input that produces nothing went into the stage's state (an
    /// aggregate) rather than being dropped: the report counts it as absorbed, not
    /// filtered.
    const ABSORBS: bool = false;

    /// True when `process` never awaits (plain synchronous code, which may block or burn
    /// CPU): the stage then runs on threads of its own instead of the async workers.
    const BLOCKING: bool = false;

    /// True when [`process_sync`](Stage::process_sync) does what `process` does, without
    /// awaiting: the runtime then runs batches of cheap items through it in one loop, with
    /// no future per item. The built-in synchronous stages set it.
    const SYNC: bool = false;

    /// The synchronous form of `process`, used when [`SYNC`](Stage::SYNC) is true.
    fn process_sync(&mut self, _item: Self::In, _out: &mut Vec<Self::Out>) -> Result<(), BoxError> {
        // A compile error, where the stage is used, rather than failed items at run time.
        const {
            assert!(
                !Self::SYNC,
                "a stage that sets `SYNC` must implement `process_sync`"
            )
        };
        unreachable!("`process_sync` is only called on stages that set `SYNC`")
    }

    /// True when every input gives exactly one output, synchronously and infallibly (a
    /// plain map), as [`map_one`](Stage::map_one) computes it: the runtime then maps runs
    /// of cheap items in one tight loop. Requires [`SYNC`](Stage::SYNC).
    const ONE_TO_ONE: bool = false;

    /// The output of one input, used when [`ONE_TO_ONE`](Stage::ONE_TO_ONE) is true.
    fn map_one(&mut self, _item: Self::In) -> Self::Out {
        const {
            assert!(
                !Self::ONE_TO_ONE,
                "a stage that sets `ONE_TO_ONE` must implement `map_one`"
            )
        };
        unreachable!("`map_one` is only called on stages that set `ONE_TO_ONE`")
    }

    /// False when [`setup`](Stage::setup), [`finish`](Stage::finish) and
    /// [`teardown`](Stage::teardown) are the defaults, which do nothing: then a stage that
    /// may block needs no thread of its own just to run them (at the start of a run, and at
    /// its end after running inline). The built-in stages without such hooks set it.
    const HAS_HOOKS: bool = true;

    /// Runs once per worker, before its first item: load a model, open a connection, read
    /// the run's [`Context`]. An `Err` stops the run; the items this worker would have taken
    /// are counted as failed.
    fn setup(&mut self, _context: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Processes one item, pushing what it produces onto `out`. Pushing nothing filters the
    /// item; an `Err` counts it as failed.
    fn process(
        &mut self,
        item: Self::In,
        out: &mut Vec<Self::Out>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Runs once per worker at end of stream, after its last item; what it pushes onto `out`
    /// goes downstream before the end-of-stream signal (a batcher's last batch, an
    /// aggregate). Those items derive from no single input, so a zip pairs them with nothing.
    fn finish(
        &mut self,
        _out: &mut Vec<Self::Out>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// Runs once per worker after `finish`, or after a failed `setup`: release resources.
    fn teardown(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Consumes items at the end of the graph.
pub trait Sink: Send + 'static {
    /// The items it consumes.
    type In: Send + 'static;

    /// True when `consume` never awaits: the sink then runs on a thread of its own.
    const BLOCKING: bool = false;

    /// False when [`setup`](Sink::setup) is the default and [`flush`](Sink::flush) never
    /// blocks: see [`Stage::HAS_HOOKS`]. The built-in sinks set it.
    const HAS_HOOKS: bool = true;

    /// Runs once before the first item; see [`Stage::setup`].
    fn setup(&mut self, _context: &Context) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }

    /// True when [`consume_sync`](Sink::consume_sync) does what `consume` does, without
    /// awaiting: the sink may then run inside the node feeding it, with no channel and no
    /// thread wake-up per batch, as long as its items stay cheap. The built-in synchronous
    /// sinks set it.
    const SYNC: bool = false;

    /// Consumes one item; an `Err` counts it as failed.
    fn consume(&mut self, item: Self::In) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// True when the sink reads each item's lineage ([`consume_from`](Sink::consume_from)),
    /// and the run must follow every item to its end (a service's reply sink).
    #[doc(hidden)]
    const TRACED: bool = false;

    /// `consume`, told the item's lineage; what the runtime calls.
    #[doc(hidden)]
    fn consume_from(
        &mut self,
        _lineage: crate::lineage::Lineage,
        item: Self::In,
    ) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.consume(item)
    }

    /// The synchronous form of `consume`, used when [`SYNC`](Sink::SYNC) is true.
    fn consume_sync(&mut self, _item: Self::In) -> Result<(), BoxError> {
        const {
            assert!(
                !Self::SYNC,
                "a sink that sets `SYNC` must implement `consume_sync`"
            )
        };
        unreachable!("`consume_sync` is only called on sinks that set `SYNC`")
    }

    /// Called after each batch of input and at end of stream, e.g. to publish buffered items.
    fn flush(&mut self) {}

    /// Runs once at end of stream, after the last item and `flush`: write what is
    /// buffered, close the file. An `Err` (a `BufWriter`'s last write failing) ends the run
    /// with `Failure::FinishFailed`, since what the sink took may not have reached its
    /// destination. A sink with a `finish` must leave `HAS_HOOKS` true.
    fn finish(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        async { Ok(()) }
    }
}

macro_rules! role_wrapper {
    ($(#[$doc:meta])* $wrapper:ident, $role:ident, $in:ty, $out:ty, $link:ty) => {
        $(#[$doc])*
        #[derive(Clone)]
        pub struct $wrapper<N>(pub(crate) N);

        impl<N: $role> $wrapper<N> {
            /// Wraps `node` for `pipeline!`.
            pub fn new(node: N) -> Self {
                $wrapper(node)
            }
        }

        impl<N: $role> Node for $wrapper<N> {
            type In = $in;
            type Out = $out;
            type Role = roles::$role;
            type ChainLink<R: Hint> = $link;
        }
    };
}

role_wrapper!(
    /// A node that produces items and has no inputs.
    SourceNode, Source, NoInput, N::Out, Broken
);
role_wrapper!(
    /// A node with inputs and outputs.
    StageNode, Stage, N::In, N::Out, Link<N, R>
);
role_wrapper!(
    /// A node that consumes items and has no outputs.
    SinkNode, Sink, N::In, NoOutput, SinkLink<N>
);
