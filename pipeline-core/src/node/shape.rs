//! The shape of a chain, at the type level: the stages that follow a node, as `pipeline!`
//! names them (a [`Hint`]), and how a kernel running them keeps each node's books
//! ([`Member`]). Each node names its own link ([`crate::Node::ChainLink`]); the kernels
//! that run a chain in one pass, and the impls that find its stages, are `fuse::chain`.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::lineage::Lineage;
use crate::wire::handoff::Taken;

type Items<T> = Vec<(Lineage, T)>;

/// A stage, then the rest of a chain.
pub struct Link<S, R>(PhantomData<fn() -> (S, R)>);
/// The end of a chain.
pub struct End;
/// A sink, which ends a chain.
pub struct SinkLink<S>(PhantomData<fn() -> S>);
/// A source: no chain runs through it.
pub struct Broken;

/// The stages that follow a node, in order, as `pipeline!` names them. Implemented for
/// every shape, so that a chain whose types do not line up (the user's edge is wrong, and
/// the compiler says so there) still compiles here: it just gets no kernel.
pub trait Hint: Send + 'static {
    /// How many stages the chain names.
    #[doc(hidden)]
    const LEN: usize;
    /// Whether every one of them maps one to one (a sink at the end: consumes each item).
    #[doc(hidden)]
    const MAPS: bool;
    /// Whether the chain ends in a sink.
    #[doc(hidden)]
    const SINKS: bool;
    /// The type items have after the chain's stages, when they come in as `A`.
    #[doc(hidden)]
    type OutAfter<A: Send + 'static>: Send + 'static;
    /// The chain's stages, borrowed from the nodes running them.
    #[doc(hidden)]
    type Stages<'a>;

    /// The type items have after the chain, if its stages' types line up from `input`.
    #[doc(hidden)]
    fn lines_up(input: TypeId) -> Option<TypeId>;

    /// Calls `visit` on each node of the chain, starting from `next` (the first one, as
    /// adopted by the node before it), while it returns true and the nodes run inline.
    /// Returns whether it got to the end.
    #[doc(hidden)]
    fn visit(
        next: Option<&mut (dyn Any + 'static)>,
        visit: &mut dyn FnMut(&mut dyn Member) -> bool,
    ) -> bool;

    /// The node the chain's last stage runs inline (`next` itself if the chain names no
    /// stage): where a fork's branch meets its zip (see `fuse::fork`).
    #[doc(hidden)]
    fn tail<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<&'a mut (dyn Any + 'static)>;

    /// The stages, if every node of the chain runs inline.
    #[doc(hidden)]
    fn stages<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<Self::Stages<'a>>;

    /// Maps one item through every stage. `failed_at` learns the stage's place in the
    /// chain (from `depth`) if one panics.
    #[doc(hidden)]
    fn map_item<A: Send + 'static>(
        stages: &mut Self::Stages<'_>,
        item: A,
        failed_at: &Cell<usize>,
        depth: usize,
    ) -> Self::OutAfter<A>;

    /// Gives the last node the chain's outputs, and returns it to send them.
    #[doc(hidden)]
    fn last<'a, A: Send + 'static>(
        next: Option<&'a mut (dyn Any + 'static)>,
        outputs: Items<Self::OutAfter<A>>,
    ) -> Option<&'a mut dyn Member>;
}

/// A node of a chain, whatever its stage's type, as the kernel keeps its books.
#[doc(hidden)]
pub trait Member: Send {
    /// Whether the node can take its part of a pass: it runs inline, is cheap, has a cost
    /// measured, and is not about to leave.
    fn ready(&self) -> bool;
    /// What an item cost it on the last batch it was timed on, in nanoseconds.
    fn item_cost(&self) -> f64;
    /// Books its part of a pass.
    fn account(&mut self, part: Part);
    /// It panicked on the item of `lineage` during a pass: it leaves on its next batch.
    fn panicked(&mut self, panic: Box<dyn Any + Send>, lineage: Lineage);
    /// Sends on the outputs the pass left with it (the last node of the chain). Returns
    /// when the nodes after it were done.
    fn send_outputs(&mut self, reached: Option<u64>, done: Instant) -> Taken<'_, Instant>;
}

/// One node's part of a pass.
#[doc(hidden)]
pub struct Part {
    pub started: Instant,
    pub busy: Duration,
    pub received: u64,
    pub emitted: u64,
    /// Waiting on the nodes after it in the pass, and on what they sent on (the last node
    /// counts its own wait as it sends).
    pub blocked: Duration,
    /// When the pass's outputs had been sent on: the node is idle from then on.
    pub end: Instant,
    /// The watermark the node passed on, unless it is the last (which sent its own).
    pub passed: Option<u64>,
}
