//! Edges: what one node sends fits what the next takes, checked where the edge is written.

use std::marker::PhantomData;

use crate::exec::Failed;
use crate::node::{Node, roles};
use crate::wire::{EdgeSender, edge};

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
