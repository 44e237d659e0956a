//! What a node sends on: one edge, a fan-out, and the chains and forks the runtime may
//! run in one pass.

use std::marker::PhantomData;

use crate::fuse::fork::{Branch, Fork2, Fork3, Fork4, ForkHint};
use crate::node::Node;
use crate::node::shape::{End, Hint};
use crate::outlet::Outlet;
use crate::wire::EdgeSender;

use super::edge::FanOutItem;

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
