//! The typed glue `pipeline!` expands to. Not for direct use.
//!
//! Each check is a trait bound whose `on_unimplemented` message names the nodes: the macro
//! passes marker types named after them (`Name`, `From`, `To`), and emits each call with the
//! span of the user's tokens, so a wrong edge fails with one error on that edge. The checks
//! are also the conversions: an edge's sender is retyped by the same bound that checks it,
//! so a failed check does not cascade into errors inside the generated code.

use std::marker::PhantomData;

use crate::exec::{ErrorWiring, Failed};
use crate::fuse::fork::{Branch, Fork2, Fork3, Fork4, ForkHint};
use crate::inlet::{
    Inlet, LoopInlet, LoopInput, MergeInlet, Zip2, Zip3, Zip4, Zip5, Zip6, Zip7, Zip8,
};
use crate::node::shape::{End, Hint};
use crate::node::{Node, Sink, SinkNode, Source, SourceNode, Stage, StageNode, roles};
use crate::outlet::Outlet;
use crate::run::Builder;
use crate::spec::NodeConfig;
use crate::wire::{EdgeReceiver, EdgeSender, edge};

/// The items one node sends are the items the next one takes.
///
/// `Self` is the sent type, so that when the receiving side is not known yet (a
/// `Collected::new()` whose item type only the edge tells) the compiler infers it from the
/// one impl instead of asking for an annotation.
#[diagnostic::on_unimplemented(
    message = "edge `{From} => {To}`: `{From}` sends `{Self}` but `{To}` expects `{Slot}`",
    label = "`{From}` sends `{Self}` here, `{To}` expects `{Slot}`",
    note = "make `{From}`'s output type and `{To}`'s input type the same (a `stage::map` between them can convert); if `{From}` sends a future (an `async` block), it wants `stage::map_async`, not `stage::map`"
)]
pub trait Fits<Slot, From, To>: Sized {
    fn retype(slot: EdgeSender<Slot>) -> EdgeSender<Self>;
}

impl<T, From, To> Fits<T, From, To> for T {
    fn retype(slot: EdgeSender<T>) -> EdgeSender<T> {
        slot
    }
}

/// An edge into a zip node: the items of `From` take one place of the tuple `Whole` that
/// `To` receives, a place that holds `Slot`.
#[diagnostic::on_unimplemented(
    message = "edge `{From} => {To}`: `{To}` receives `{Whole}`, one item per input in the order its edges are written, and `{From}` sends `{Self}` where that tuple has `{Slot}`",
    label = "`{From}` sends `{Self}` here; its place in `{To}`'s tuple is `{Slot}`",
    note = "write the edges into `{To}` in the order of its tuple's items, or reorder the tuple; to interleave inputs of one type instead, mark `{To}` `[merge]`"
)]
pub trait FitsZip<Slot, From, To, Whole>: Sized {
    fn retype(slot: EdgeSender<Slot>) -> EdgeSender<Self>;
}

impl<T, From, To, Whole> FitsZip<T, From, To, Whole> for T {
    fn retype(slot: EdgeSender<T>) -> EdgeSender<T> {
        slot
    }
}

/// An edge between a node of the first role and one of the second. A real edge checks that
/// what is sent fits the slot; an edge out of a sink or into a source is refused by the
/// role checks, so it checks nothing here: its `Checked` type is the slot's own.
///
/// The check is a bound on `Checked` (see [`Edge::connect`]), which the compiler reduces
/// to the item type before it tests it: an error then names the edge's two types, not
/// this table.
pub trait RolesMeet {
    /// What must fit the slot: what is sent, on a real edge.
    type Checked<Sent, Slot>;

    /// The edge's sender, as the sending node's.
    fn retype<Sent, Slot, From, To>(slot: EdgeSender<Slot>) -> EdgeSender<Sent>
    where
        Self::Checked<Sent, Slot>: Fits<Slot, From, To>;

    /// [`retype`](Self::retype) for an edge into a zip node, whose input is `Whole`.
    fn retype_zipped<Sent, Slot, From, To, Whole>(slot: EdgeSender<Slot>) -> EdgeSender<Sent>
    where
        Self::Checked<Sent, Slot>: FitsZip<Slot, From, To, Whole>;
}

macro_rules! real_edge {
    ($from:ident => $to:ident) => {
        impl RolesMeet for (roles::$from, roles::$to) {
            type Checked<Sent, Slot> = Sent;

            fn retype<Sent, Slot, From, To>(slot: EdgeSender<Slot>) -> EdgeSender<Sent>
            where
                Sent: Fits<Slot, From, To>,
            {
                <Sent as Fits<Slot, From, To>>::retype(slot)
            }

            fn retype_zipped<Sent, Slot, From, To, Whole>(
                slot: EdgeSender<Slot>,
            ) -> EdgeSender<Sent>
            where
                Sent: FitsZip<Slot, From, To, Whole>,
            {
                <Sent as FitsZip<Slot, From, To, Whole>>::retype(slot)
            }
        }
    };
}

macro_rules! refused_edge {
    ($from:ident => $to:ident) => {
        impl RolesMeet for (roles::$from, roles::$to) {
            type Checked<Sent, Slot> = Slot;

            fn retype<Sent, Slot, From, To>(_: EdgeSender<Slot>) -> EdgeSender<Sent> {
                unreachable_edge()
            }

            fn retype_zipped<Sent, Slot, From, To, Whole>(_: EdgeSender<Slot>) -> EdgeSender<Sent> {
                unreachable_edge()
            }
        }
    };
}

real_edge!(Source => Stage);
real_edge!(Source => Sink);
real_edge!(Stage => Stage);
real_edge!(Stage => Sink);
refused_edge!(Source => Source);
refused_edge!(Stage => Source);
refused_edge!(Sink => Source);
refused_edge!(Sink => Stage);
refused_edge!(Sink => Sink);

/// The roles of an edge from `N` into `T`.
type Roles<N, T> = (<N as Node>::Role, <T as Node>::Role);

/// What must fit the input slot of an edge from `N` into `T` (see [`RolesMeet`]).
type Sent<N, T, Slot> = <Roles<N, T> as RolesMeet>::Checked<<N as Node>::Out, Slot>;

/// Stands in for an edge whose program a role check has already refused to compile.
fn unreachable_edge<T>() -> EdgeSender<T> {
    edge(1).0
}

/// An edge about to be connected: `from`'s output into an input slot of `to`.
///
/// Built first, without bounds, so the slot's type is settled before [`Edge::connect`]
/// checks it: checking in the same call lets the compiler infer the slot from the sender and
/// then report a bare type mismatch instead of the message that names both nodes.
pub struct Edge<'a, N, T, Slot> {
    _nodes: PhantomData<(&'a N, &'a T)>,
    slot: EdgeSender<Slot>,
}

impl<'a, N: Node, T: Node, Slot> Edge<'a, N, T, Slot> {
    pub fn new(_from: &'a N, _to: &'a T, slot: EdgeSender<Slot>) -> Self {
        Edge {
            _nodes: PhantomData,
            slot,
        }
    }

    /// Checks that a dead-letter node takes what `from` sends it: `Failed<its input>`.
    pub fn connect_dead_letter<From, To>(self) -> EdgeSender<Failed<N::In>>
    where
        Failed<N::In>: Fits<Slot, From, To>,
    {
        <Failed<N::In> as Fits<Slot, From, To>>::retype(self.slot)
    }

    /// Checks that the types meet and gives `from` its sender.
    pub fn connect<From, To>(self) -> EdgeSender<N::Out>
    where
        Roles<N, T>: RolesMeet,
        Sent<N, T, Slot>: Fits<Slot, From, To>,
    {
        <Roles<N, T> as RolesMeet>::retype::<N::Out, Slot, From, To>(self.slot)
    }

    /// [`connect`](Self::connect) for an edge into a zip node, whose error names the tuple.
    pub fn connect_zipped<From, To>(self) -> EdgeSender<N::Out>
    where
        Roles<N, T>: RolesMeet,
        Sent<N, T, Slot>: FitsZip<Slot, From, To, T::In>,
    {
        <Roles<N, T> as RolesMeet>::retype_zipped::<N::Out, Slot, From, To, T::In>(self.slot)
    }
}

/// Broadcasting needs a copy per edge.
#[diagnostic::on_unimplemented(
    message = "`{Name}` sends each item to several nodes, so its item type `{Self}` must implement `Clone`",
    label = "fan-out of `{Self}`",
    note = "derive or implement `Clone` for `{Self}`, or send an `Arc<{Self}>`"
)]
pub trait FanOutItem<Name>: Clone {}

#[diagnostic::do_not_recommend]
impl<T: Clone, Name> FanOutItem<Name> for T {}

/// The type of a chain of nodes: each node's link, then the rest.
macro_rules! chain_type {
    () => { End };
    ($first:ident $($rest:ident)*) => { <$first as Node>::ChainLink<chain_type!($($rest)*)> };
}

/// `chainK(&a, &b, ..)`: the chain of the stages given, in order (see `fuse::chain`). One
/// call per node, its type worked out by the signature: nesting a call per stage (`link(&a,
/// link(&b, ..))`) made type checking grow with the square of a chain's length.
macro_rules! chain_fns {
    ($($name:ident: $($node:ident)+;)*) => {$(
        #[allow(clippy::too_many_arguments)]
        pub fn $name<$($node: Node),+>($(_: &$node),+) -> PhantomData<chain_type!($($node)+)> {
            PhantomData
        }
    )*};
}

chain_fns! {
    chain1: N1;
    chain2: N1 N2;
    chain3: N1 N2 N3;
    chain4: N1 N2 N3 N4;
    chain5: N1 N2 N3 N4 N5;
    chain6: N1 N2 N3 N4 N5 N6;
    chain7: N1 N2 N3 N4 N5 N6 N7;
    chain8: N1 N2 N3 N4 N5 N6 N7 N8;
    chain9: N1 N2 N3 N4 N5 N6 N7 N8 N9;
    chain10: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10;
    chain11: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11;
    chain12: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12;
    chain13: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13;
    chain14: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14;
    chain15: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15;
    chain16: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16;
    chain17: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17;
    chain18: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18;
    chain19: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19;
    chain20: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19 N20;
    chain21: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19 N20 N21;
    chain22: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19 N20 N21 N22;
    chain23: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19 N20 N21 N22 N23;
    chain24: N1 N2 N3 N4 N5 N6 N7 N8 N9 N10 N11 N12 N13 N14 N15 N16 N17 N18 N19 N20 N21 N22 N23 N24;
}

/// The end of a chain of stages.
pub fn end_of_chain() -> PhantomData<End> {
    PhantomData
}

/// An outlet that runs the chain of maps after it in one pass when it can.
pub fn chained<T: Send + 'static, H: Hint>(outlet: Outlet<T>, _chain: PhantomData<H>) -> Outlet<T> {
    outlet.with_chain::<H>()
}

/// One branch of a fork: it starts on the outlet's edge number `TARGET`, with `chain`.
pub fn branch<const TARGET: usize, H: Hint>(
    _chain: PhantomData<H>,
) -> PhantomData<Branch<TARGET, H>> {
    PhantomData
}

/// A fork of two branches (in the order of the zip's inputs), then the chain from the zip.
pub fn fork2<B0, B1, J: Hint>(
    _: PhantomData<B0>,
    _: PhantomData<B1>,
    _join: PhantomData<J>,
) -> PhantomData<Fork2<B0, B1, J>> {
    PhantomData
}

/// A fork of three branches; see [`fork2`].
pub fn fork3<B0, B1, B2, J: Hint>(
    _: PhantomData<B0>,
    _: PhantomData<B1>,
    _: PhantomData<B2>,
    _join: PhantomData<J>,
) -> PhantomData<Fork3<B0, B1, B2, J>> {
    PhantomData
}

/// A fork of four branches; see [`fork2`].
pub fn fork4<B0, B1, B2, B3, J: Hint>(
    _: PhantomData<B0>,
    _: PhantomData<B1>,
    _: PhantomData<B2>,
    _: PhantomData<B3>,
    _join: PhantomData<J>,
) -> PhantomData<Fork4<B0, B1, B2, B3, J>> {
    PhantomData
}

/// A fan-out's outlet that runs the fork after it in one pass per item when it can.
pub fn forked<T: Clone + Send + 'static, F: ForkHint>(
    outlet: Outlet<T>,
    _fork: PhantomData<F>,
) -> Outlet<T> {
    outlet.with_fork::<F>()
}

pub fn single_output<T: Send + 'static>(target: EdgeSender<T>) -> Outlet<T> {
    Outlet::single(target)
}

pub fn fan_out<Name, T: FanOutItem<Name> + Send + 'static>(
    targets: Vec<EdgeSender<T>>,
) -> Outlet<T> {
    Outlet::broadcast(targets)
}

/// The one input edge of `node`.
pub fn single_input<N: Node>(
    _node: &N,
    capacity: usize,
) -> (EdgeSender<N::In>, EdgeReceiver<N::In>) {
    crate::wire::fusable_edge(capacity)
}

/// One channel that every input edge of `node` feeds.
pub fn merge_input<N: Node>(_node: &N, capacity: usize) -> (EdgeSender<N::In>, MergeInlet<N::In>) {
    let (tx, rx) = edge(capacity);
    (tx, MergeInlet::new(rx))
}

/// A loop's entry (`loop a => node`): the sender its inputs from outside share, the one
/// its loop edges share, and the inlet interleaving both.
pub fn loop_input<N: Node>(_node: &N, capacity: usize) -> LoopInput<N::In> {
    LoopInlet::open(capacity)
}

/// A zip node's inputs, asked for through `Zipping(&node).zip_input_K::<Name>(capacity)`.
///
/// A node that takes a tuple of K items gets one sender per input and the zip (the method
/// of `ZipInputsK`). One that does not gets the method of `OpenZipInputsK` (see
/// [`CheckStage`] for the trick): an error that says what the node takes, and types left
/// open, so that the node's sink or stage is not reported again for its inlet.
pub struct Zipping<'a, N>(pub &'a N);

macro_rules! zip_input {
    ($fn:ident, $trait:ident, $inputs:ident, $open:ident, $zip:ident, $message:literal, $label:literal; $($T:ident $v:ident),+) => {
        /// A node with this many inputs takes a tuple of this many items.
        #[diagnostic::on_unimplemented(
            message = $message,
            label = $label,
            note = "take a tuple, e.g. `|(a, b): (String, String)|`, or mark the node `[merge]` to interleave inputs of one type"
        )]
        pub trait $trait<Name> {}

        #[diagnostic::do_not_recommend]
        impl<Name, $($T),+> $trait<Name> for ($($T,)+) {}

        /// The inputs of a node that takes a tuple of this many items (see [`Zipping`]).
        pub trait $inputs<$($T),+> {
            /// One edge per input of the node, zipped by lineage.
            fn $fn<Name>(self, capacity: usize) -> (($(EdgeSender<$T>,)+), $zip<$($T),+>);
        }

        impl<N, $($T: Send + 'static),+> $inputs<$($T),+> for Zipping<'_, N>
        where
            N: Node<In = ($($T,)+)>,
        {
            fn $fn<Name>(self, capacity: usize) -> (($(EdgeSender<$T>,)+), $zip<$($T),+>) {
                $( let $v = crate::wire::fusable_edge::<$T>(capacity); )+
                (($($v.0,)+), $zip::new($($v.1),+))
            }
        }

        /// What a node that takes no such tuple gets (see [`Zipping`]).
        pub trait $open<Open> {
            fn $fn<Name>(&self, capacity: usize) -> Open
            where
                Self: ZipNode,
                <Self as ZipNode>::In: $trait<Name>;
        }

        impl<N: Node, Open> $open<Open> for Zipping<'_, N> {
            fn $fn<Name>(&self, _capacity: usize) -> Open
            where
                Self: ZipNode,
                <Self as ZipNode>::In: $trait<Name>,
            {
                unreachable!("a zip node that takes no tuple does not compile")
            }
        }
    };
}

/// The input type of the node a [`Zipping`] is about.
pub trait ZipNode {
    type In;
}

impl<N: Node> ZipNode for Zipping<'_, N> {
    type In = N::In;
}

zip_input!(zip_input_2, ZipInput2, ZipInputs2, OpenZipInputs2, Zip2,
    "`{Name}` has 2 inputs, so it takes a tuple of 2 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 2 inputs"; A a, B b);
zip_input!(zip_input_3, ZipInput3, ZipInputs3, OpenZipInputs3, Zip3,
    "`{Name}` has 3 inputs, so it takes a tuple of 3 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 3 inputs"; A a, B b, C c);
zip_input!(zip_input_4, ZipInput4, ZipInputs4, OpenZipInputs4, Zip4,
    "`{Name}` has 4 inputs, so it takes a tuple of 4 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 4 inputs"; A a, B b, C c, D d);
zip_input!(zip_input_5, ZipInput5, ZipInputs5, OpenZipInputs5, Zip5,
    "`{Name}` has 5 inputs, so it takes a tuple of 5 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 5 inputs"; A a, B b, C c, D d, E e);
zip_input!(zip_input_6, ZipInput6, ZipInputs6, OpenZipInputs6, Zip6,
    "`{Name}` has 6 inputs, so it takes a tuple of 6 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 6 inputs"; A a, B b, C c, D d, E e, F f);
zip_input!(zip_input_7, ZipInput7, ZipInputs7, OpenZipInputs7, Zip7,
    "`{Name}` has 7 inputs, so it takes a tuple of 7 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 7 inputs"; A a, B b, C c, D d, E e, F f, G g);
zip_input!(zip_input_8, ZipInput8, ZipInputs8, OpenZipInputs8, Zip8,
    "`{Name}` has 8 inputs, so it takes a tuple of 8 items (one per input, in the order the edges are written), but it takes `{Self}`",
    "`{Name}` zips 8 inputs"; A a, B b, C c, D d, E e, F f, G g, H h);

/// A node without inputs must be a source. Checked on the node's wrapper alone: what is
/// wrong inside a source is its constructor's error, given there (see [`CheckStage`]).
#[diagnostic::on_unimplemented(
    message = "`{Name}` has no inputs, so it must be a source, but it is `{Self}`",
    label = "no edge leads into `{Name}`",
    note = "build sources with `source::iter`, `source::stream` or `source::producer`, or add an edge into `{Name}`"
)]
pub trait SourceRole<Name> {}

#[diagnostic::do_not_recommend]
impl<S, Name> SourceRole<Name> for SourceNode<S> {}

/// A node with inputs and outputs must be a stage (see [`SourceRole`]).
#[diagnostic::on_unimplemented(
    message = "`{Name}` has inputs and outputs, so it must be a stage, but it is `{Self}`",
    label = "`{Name}` is used in the middle of the graph",
    note = "a source takes no input and a sink sends no output: remove the edges into a source or out of a sink"
)]
pub trait StageRole<Name> {}

#[diagnostic::do_not_recommend]
impl<S, Name> StageRole<Name> for StageNode<S> {}

/// A node without outputs must be a sink (see [`SourceRole`]).
#[diagnostic::on_unimplemented(
    message = "`{Name}` has no outputs, so it must be a sink, but it is `{Self}`",
    label = "nothing consumes what `{Name}` sends",
    note = "build sinks with `sink::for_each` or `Collected::sink`, or connect `{Name}` to a sink"
)]
pub trait SinkRole<Name> {}

#[diagnostic::do_not_recommend]
impl<S, Name> SinkRole<Name> for SinkNode<S> {}

/// Several workers each run a copy of the stage.
#[diagnostic::on_unimplemented(
    message = "`workers(..)` gives each worker of `{Name}` its own copy of the stage, so `{T}` must implement `Clone`",
    label = "`{Name}` runs on several workers",
    note = "closures are `Clone` when what they capture is; share state through an `Arc`"
)]
pub trait CloneForWorkers<Name, T> {
    /// Copies the stage.
    fn copy(stage: &T) -> T;
}

// On `Copied`, as the checks of `retry` and `dead_letter` are, so that the compiler does
// not suggest borrowing the option.
#[diagnostic::do_not_recommend]
impl<T: Clone, Name> CloneForWorkers<Name, T> for Copied {
    fn copy(stage: &T) -> T {
        stage.clone()
    }
}

/// A source, as the builder adds it.
pub trait IsSource: Node {
    fn add(
        self,
        builder: &mut Builder,
        name: &'static str,
        outlet: Outlet<Self::Out>,
        config: NodeConfig,
    );
}

impl<S: Source> IsSource for SourceNode<S> {
    fn add(
        self,
        builder: &mut Builder,
        name: &'static str,
        outlet: Outlet<S::Out>,
        config: NodeConfig,
    ) {
        builder.source(name, self, outlet, config);
    }
}

/// A stage, as the builder adds it.
pub trait IsStage: Node {
    /// Adds the stage on `config.workers` workers, each with a copy of it.
    #[allow(clippy::too_many_arguments)]
    fn add_with_workers<I: Inlet<Self::In>>(
        self,
        copy: fn(&Self) -> Self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        outlet: Outlet<Self::Out>,
        config: NodeConfig,
        errors: ErrorWiring<Self::In>,
    );

    fn add<I: Inlet<Self::In>>(
        self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        outlet: Outlet<Self::Out>,
        config: NodeConfig,
        errors: ErrorWiring<Self::In>,
    );
}

impl<S: Stage> IsStage for StageNode<S> {
    fn add_with_workers<I: Inlet<S::In>>(
        self,
        copy: fn(&Self) -> Self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        outlet: Outlet<S::Out>,
        config: NodeConfig,
        errors: ErrorWiring<S::In>,
    ) {
        let count = config.worker_count();
        let mut copies: Vec<Self> = (1..count).map(|_| copy(&self)).collect();
        if count > 0 {
            copies.push(self);
        }
        b.stage_with_workers(name, copies, inlet, outlet, config, errors);
    }

    fn add<I: Inlet<S::In>>(
        self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        outlet: Outlet<S::Out>,
        config: NodeConfig,
        errors: ErrorWiring<S::In>,
    ) {
        b.stage(name, self, inlet, outlet, config, errors);
    }
}

/// A sink, as the builder adds it.
pub trait IsSink: Node {
    fn add<I: Inlet<Self::In>>(
        self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        config: NodeConfig,
    );
}

impl<S: Sink> IsSink for SinkNode<S> {
    fn add<I: Inlet<S::In>>(
        self,
        b: &mut Builder,
        name: &'static str,
        inlet: I,
        config: NodeConfig,
    ) {
        b.sink(name, self, inlet, config);
    }
}

/// Two traits with one method, `$method::<Name>()`: `$check`'s, for a node that passes
/// `$passes`, is the node itself; `$open`'s takes the node by reference, so the compiler
/// calls it only when the other does not apply.
macro_rules! node_check {
    ($(#[$doc:meta])* $check:ident, $open:ident, $method:ident: [$($passes:tt)+], [$($role:tt)+]) => {
        $(#[$doc])*
        pub trait $check: Sized {
            fn $method<Name>(self) -> Self;
        }

        impl<N: $($passes)+> $check for N {
            fn $method<Name>(self) -> Self {
                self
            }
        }

        /// What a node that fails the check becomes (see [`CheckStage`]).
        pub trait $open<Open> {
            fn $method<Name>(&self) -> Open
            where
                Self: $($role)+;
        }

        impl<N, Open> $open<Open> for N {
            fn $method<Name>(&self) -> Open
            where
                Self: $($role)+,
            {
                unreachable!("a node that fails its check does not compile")
            }
        }
    };
}

node_check! {
    /// A node, checked once where it is bound: `node.checked_stage::<name>()`.
    ///
    /// A node that passes is itself. One that fails (a constructor given the wrong closure,
    /// a value that is no node, a sink used as a stage) has no such method, so the call goes
    /// to [`OpenStage`]'s. That one requires only the node's role, so it reports a node of
    /// the wrong role or no node at all, and leaves a mistake inside a constructor to the
    /// constructor's own error. It gives a type left open, which the compiler does not
    /// report again: one mistake is one error, not one more at each of the node's edges.
    CheckStage, OpenStage, checked_stage: [IsStage], [StageRole<Name>]
}
node_check! {
    /// [`CheckStage`] for a source.
    CheckSource, OpenSource, checked_source: [IsSource], [SourceRole<Name>]
}
node_check! {
    /// [`CheckStage`] for a sink.
    CheckSink, OpenSink, checked_sink: [IsSink], [SinkRole<Name>]
}

/// For `workers(..)`: checks the stage can be copied for each worker, and gives what copies it.
pub fn copy_for_workers<Name, N>(_node: &N) -> fn(&N) -> N
where
    Copied: CloneForWorkers<Name, N>,
{
    <Copied as CloneForWorkers<Name, N>>::copy
}

#[allow(clippy::too_many_arguments)]
pub fn add_stage_with_workers<N: IsStage, I: Inlet<N::In>>(
    b: &mut Builder,
    name: &'static str,
    node: N,
    copy: fn(&N) -> N,
    inlet: I,
    outlet: Outlet<N::Out>,
    config: NodeConfig,
    errors: ErrorWiring<N::In>,
) {
    node.add_with_workers(copy, b, name, inlet, outlet, config, errors);
}

pub fn add_source<N: IsSource>(
    b: &mut Builder,
    name: &'static str,
    node: N,
    outlet: Outlet<N::Out>,
    config: NodeConfig,
) {
    node.add(b, name, outlet, config);
}

/// The traits whose methods the expansion calls, in scope without their names.
pub mod methods {
    pub use super::{
        CheckSink as _, CheckSource as _, CheckStage as _, OpenSink as _, OpenSource as _,
        OpenStage as _, OpenZipInputs2 as _, OpenZipInputs3 as _, OpenZipInputs4 as _,
        OpenZipInputs5 as _, OpenZipInputs6 as _, OpenZipInputs7 as _, OpenZipInputs8 as _,
        ZipInputs2 as _, ZipInputs3 as _, ZipInputs4 as _, ZipInputs5 as _, ZipInputs6 as _,
        ZipInputs7 as _, ZipInputs8 as _,
    };
}

pub fn add_stage<N: IsStage, I: Inlet<N::In>>(
    b: &mut Builder,
    name: &'static str,
    node: N,
    inlet: I,
    outlet: Outlet<N::Out>,
    config: NodeConfig,
    errors: ErrorWiring<N::In>,
) {
    node.add(b, name, inlet, outlet, config, errors);
}

pub fn add_sink<N: IsSink, I: Inlet<N::In>>(
    b: &mut Builder,
    name: &'static str,
    node: N,
    inlet: I,
    config: NodeConfig,
) {
    node.add(b, name, inlet, config);
}

/// `retry(n)` tries a failed item again, which needs a fresh copy of it for every try.
#[diagnostic::on_unimplemented(
    message = "`retry` on `{Name}` tries a failed item again, so its input type `{T}` must implement `Clone`",
    label = "`{Name}` retries failed items",
    note = "derive or implement `Clone` for `{T}`, or send an `Arc<{T}>`"
)]
pub trait CloneForRetry<Name, T> {
    /// Copies an item.
    fn copy(item: &T) -> T;
}

#[diagnostic::do_not_recommend]
impl<T: Clone, Name> CloneForRetry<Name, T> for Copied {
    fn copy(item: &T) -> T {
        item.clone()
    }
}

/// What a retry or a dead letter makes of an item: a copy. The self type of the checks
/// below, which are about its parameter: being a type of this crate, it is not `Clone`
/// through a reference, so the compiler does not suggest borrowing the option.
pub struct Copied;

/// The typed half of `node`'s error handling, to which `retry` and `dead_letter` add.
pub fn error_wiring<N: Node>(_node: &N) -> ErrorWiring<N::In> {
    ErrorWiring::default()
}

/// For `retry(..)`: checks the node's input can be copied for each try, and gives what
/// adds that to its error wiring. (The check is a call of its own, all of whose tokens sit
/// on the option, so that its error points there.)
pub fn with_retry<Name, T>() -> fn(ErrorWiring<T>) -> ErrorWiring<T>
where
    Copied: CloneForRetry<Name, T>,
{
    |errors| errors.copying(<Copied as CloneForRetry<Name, T>>::copy)
}

/// A dead-letter node gets a copy of every input the stage failed on.
#[diagnostic::on_unimplemented(
    message = "`dead_letter` on `{Name}` sends the items it failed on elsewhere, so it keeps a copy of each: its input type `{T}` must implement `Clone`",
    label = "`{Name}` routes failed items",
    note = "derive or implement `Clone` for `{T}`, or send an `Arc<{T}>`"
)]
pub trait CloneForDeadLetter<Name, T> {
    /// Copies an item.
    fn copy(item: &T) -> T;
}

#[diagnostic::do_not_recommend]
impl<T: Clone, Name> CloneForDeadLetter<Name, T> for Copied {
    fn copy(item: &T) -> T {
        item.clone()
    }
}

/// For `dead_letter(..)`: checks the node's input can be copied, and gives what sends
/// its failed items out on an outlet.
pub fn with_dead_letter<Name, T>() -> fn(ErrorWiring<T>, Outlet<Failed<T>>) -> ErrorWiring<T>
where
    Copied: CloneForDeadLetter<Name, T>,
{
    |errors, outlet| {
        let errors = errors.copying(<Copied as CloneForDeadLetter<Name, T>>::copy);
        ErrorWiring {
            dead_letter: Some(outlet),
            ..errors
        }
    }
}

/// Holds when the `nats` feature is on; a `#![distributed]` pipeline needs it.
#[diagnostic::on_unimplemented(
    message = "`#![distributed]` pipelines need the `nats` feature of `pipeline`",
    label = "this pipeline may run split over processes",
    note = "enable it in Cargo.toml: `pipeline = {{ version = \"0.1\", features = [\"nats\"] }}`"
)]
pub trait NatsFeature {}

#[cfg(feature = "nats")]
impl NatsFeature for () {}

/// The builder of a `#![distributed(name)]` pipeline (see the `remote` module, feature `nats`).
pub fn distributed_builder<Enabled: NatsFeature>(name: &'static str) -> Builder {
    #[cfg(feature = "nats")]
    return Builder::distributed(name);
    #[cfg(not(feature = "nats"))]
    {
        let _ = name;
        Builder::new()
    }
}

/// Items of a distributed pipeline travel between processes as MessagePack.
#[cfg(feature = "nats")]
#[diagnostic::on_unimplemented(
    message = "edge `{From} => {To}` may cross processes, so its item type `{Self}` must implement serde's `Serialize` and `Deserialize`",
    label = "`{Self}` travels between processes here",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait CrossesProcesses<From, To>: serde::Serialize + serde::de::DeserializeOwned {}

// Not recommended: an error then names this check, not serde's traits with the list of
// every type that implements them (which depends on what else is compiled in).
#[cfg(feature = "nats")]
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned, From, To> CrossesProcesses<From, To> for T {}

/// Without the `nats` feature nothing crosses processes (the builder already said why).
#[cfg(not(feature = "nats"))]
pub trait CrossesProcesses<From, To> {}

#[cfg(not(feature = "nats"))]
impl<T, From, To> CrossesProcesses<From, To> for T {}

/// The sender for the edge `from => to` of a distributed pipeline: the edge itself, or a
/// bridge to another process when the plan hosts only one end here.
pub fn across<From, To, T: CrossesProcesses<From, To> + Send + 'static>(
    builder: &mut Builder,
    from: &'static str,
    to: &'static str,
    tx: EdgeSender<T>,
) -> EdgeSender<T> {
    #[cfg(feature = "nats")]
    return builder.across(from, to, tx);
    #[cfg(not(feature = "nats"))]
    {
        let _ = (builder, from, to);
        tx
    }
}
