//! Forks: while a diamond runs inline (a node fans out to branches of plain maps whose
//! outputs a zip node joins again, then maybe a chain after it), each item goes through all
//! of it in one pass: a copy per branch, each branch's output straight into the tuple the
//! zip node takes.
//!
//! The parent module already runs such a diamond on one thread, but batch by batch: the
//! fan-out copies the batch, each branch makes a pass over its copy, and the zip pairs the
//! branches' outputs again by lineage, in a buffer of its own. For maps as cheap as `x * 2`
//! that is most of the work, many times what a loop written by hand costs. When every branch
//! is a chain of maps (see [`super::chain`]), an item's copies cannot part ways: each
//! branch maps its copy to exactly one output, so the tuple is complete at once, with no
//! pairing to do. `pipeline!` names the branches and the chain after the zip (a
//! [`ForkHint`]), and the fan-out's outlet gets a kernel for them.
//!
//! Like a chain's, the kernel is a shortcut that keeps every node's counts as the usual path
//! would, runs only while every node of the diamond runs inline and is ready, and lets every
//! 32nd batch take the usual path, which times each node. It runs only
//! while the zip has nothing waiting to be paired, and tells it how far each input got, so
//! the usual path can take over after any batch.
//!
//! A panic on a branch drops the item's tuple, as the zip would: the outputs of the
//! branches before it are counted as dropped parts, with the copies for the branches after
//! it, which do not see that item.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use super::chain::{BoxedKernel, CHAIN_MAX, Lost, Pass, Passes};
use crate::exec::in_place::{Consumed, consume_in_order};
use crate::inlet::{AcceptInput, Dropped, Lent, Pairing, ZipFeed};
use crate::inlet::{ZipCore2, ZipCore3, ZipCore4};
use crate::lineage::Lineage;
use crate::node::shape::{Hint, Member};
use crate::outlet::Outlet;
use crate::wire::Closed;
use crate::wire::handoff::{Kernel, Taken, Targets};

type Items<T> = Vec<(Lineage, T)>;

/// The most branches a fork's kernel runs; `pipeline!` names no more.
pub const FORK_MAX: usize = 4;

/// The most nodes one pass runs: every branch and the chain after the zip as long as a
/// chain may be.
const MEMBERS_MAX: usize = (FORK_MAX + 1) * CHAIN_MAX;

/// One branch of a fork: the outlet's edge it starts on (`TARGET`, in the order of the
/// outlet's edges), then its chain of stages (none if the edge goes to the zip at once).
pub struct Branch<const TARGET: usize, H>(PhantomData<fn() -> H>);

/// What a [`Branch`] says, for the kernel.
#[doc(hidden)]
pub trait BranchHint: Send + 'static {
    const TARGET: usize;
    type Chain: Hint;
}

impl<const TARGET: usize, H: Hint> BranchHint for Branch<TARGET, H> {
    const TARGET: usize = TARGET;
    type Chain = H;
}

/// A fork: its branches, in the order of the zip's inputs, and the chain that starts at the
/// zip node. Implemented for every shape, so that one whose types do not line up still
/// compiles: it just gets no kernel.
pub trait ForkHint: Send + 'static {
    /// The kernel for an outlet of `T`s, if the fork's stages all map one to one and their
    /// types line up.
    #[doc(hidden)]
    fn kernel<T: Clone + Send + 'static>() -> Option<BoxedKernel<T>>;
}

impl<T: Clone + Send + 'static> Outlet<T> {
    /// Gives the outlet a kernel for the fork `F` after it, if `F` names one it can run.
    pub fn with_fork<F: ForkHint>(mut self) -> Self {
        self.set_kernel(F::kernel::<T>().map(|kernel| kernel.0));
        self
    }
}

/// The kernel of an outlet of `T`s feeding the fork `F`, whose zip pairs in a `C`.
struct ForkKernel<T, F, C> {
    passes: Passes,
    _types: PhantomData<fn(T) -> (F, C)>,
}

/// The feed of input `I` of a zip, where the branch `H` that starts at `node` ends.
fn feed<'a, H: Hint, C: AcceptInput<I>, const I: usize>(
    node: &'a mut (dyn Any + Send + 'static),
) -> Option<&'a mut ZipFeed<C, I>> {
    H::tail(Some(node))?.downcast_mut::<ZipFeed<C, I>>()
}

/// The zip node, as the chain after it sees it.
fn zip_node<C: Pairing>(lent: &mut Lent<C>) -> Option<&mut (dyn Any + 'static)> {
    lent.node().as_any().map(|node| node as &mut dyn Any)
}

/// Where each branch's nodes start in the order a pass visits them (the branches, then
/// the chain after the zip), and where that chain starts.
fn places<const K: usize>(lens: [usize; K]) -> ([usize; K], usize) {
    let mut bases = [0; K];
    let mut next = 0;
    for (base, len) in bases.iter_mut().zip(lens) {
        *base = next;
        next += len;
    }
    (bases, next)
}

/// Whether the node at `place` received the item a panic at `failed` cut short, and
/// whether it passed it on (see the module documentation).
fn lost_item_at<const K: usize>(lens: [usize; K], failed: usize, place: usize) -> (bool, bool) {
    let (bases, _) = places(lens);
    let branch_of =
        |place: usize| (0..K).find(|&b| place >= bases[b] && place < bases[b] + lens[b]);
    match (branch_of(failed), branch_of(place)) {
        // A panic after the zip: every branch passed the item on, and the chain after the
        // zip is a chain.
        (None, None) => (place <= failed, place < failed),
        (None, Some(_)) => (true, true),
        (Some(_), None) => (false, false),
        (Some(at), Some(here)) if here == at => (place <= failed, place < failed),
        (Some(at), Some(here)) => (here < at, here < at),
    }
}

macro_rules! fork {
    (
        $fork:ident, $core:ident, $k:literal;
        $($B:ident $idx:tt $t:ident $s:ident $o:ident),+;
        firsts $($Bf:ident $sf:ident $of:ident $if:tt),*;
        last $Bl:ident $sl:ident $ol:ident $il:tt
    ) => {
        /// A fork of this many branches; see the module documentation.
        pub struct $fork<$($B,)+ J>(PhantomData<fn() -> ($($B,)+ J)>);

        impl<$($B: BranchHint,)+ J: Hint> ForkHint for $fork<$($B,)+ J> {
            fn kernel<T: Clone + Send + 'static>() -> Option<BoxedKernel<T>> {
                let input = TypeId::of::<T>();
                let tuple = TypeId::of::<($(<$B::Chain as Hint>::OutAfter<T>,)+)>();
                let members = 0 $(+ <$B::Chain as Hint>::LEN)+ + J::LEN;
                let fits = members <= MEMBERS_MAX
                    $(
                        && <$B::Chain as Hint>::MAPS
                        && !<$B::Chain as Hint>::SINKS
                        && <$B::Chain as Hint>::lines_up(input)
                            == Some(TypeId::of::<<$B::Chain as Hint>::OutAfter<T>>())
                    )+
                    && J::LEN >= 1
                    && J::MAPS
                    && J::lines_up(tuple).is_some();
                fits.then(|| {
                    BoxedKernel(Box::new(ForkKernel::<T, Self, $core<$(<$B::Chain as Hint>::OutAfter<T>),+>> {
                        passes: Passes::default(),
                        _types: PhantomData,
                    }))
                })
            }
        }

        impl<T, $($B,)+ J, C> Kernel<T> for ForkKernel<T, $fork<$($B,)+ J>, C>
        where
            T: Clone + Send + 'static,
            $($B: BranchHint,)+
            J: Hint,
            C: Pairing $(+ AcceptInput<$idx>)+,
        {
            fn run<'a>(
                &'a mut self,
                targets: Targets<'a>,
                items: &'a mut Items<T>,
                watermark: u64,
                now: Instant,
            ) -> Option<Taken<'a, Instant>> {
                if self.passes.usual_path_due(items.len(), now) {
                    return None;
                }
                let mut targets: [Option<&'a mut (dyn Any + Send + 'static)>; $k] =
                    <[_; $k]>::try_from(targets).ok()?.map(Some);
                $( let $t = targets.get_mut($B::TARGET)?.take()?; )+
                let mut lent = None;
                $(
                    let input = feed::<$B::Chain, C, $idx>(&mut *$t)?;
                    match &lent {
                        None => lent = Some(input.lend()?),
                        Some(lent) if input.feeds(lent) => {}
                        Some(_) => return None,
                    }
                )+
                let mut lent = lent?;
                let mut costs = [0.0f64; MEMBERS_MAX];
                let mut seen = 0;
                let mut note = |member: &mut dyn Member| {
                    let ready = member.ready();
                    costs[seen] = member.item_cost();
                    seen += 1;
                    ready
                };
                let ready = true
                    $( && <$B::Chain as Hint>::visit(Some(&mut *$t), &mut note) )+
                    && J::visit(zip_node(&mut lent), &mut note);
                if !ready || seen != 0 $(+ <$B::Chain as Hint>::LEN)+ + J::LEN {
                    return None;
                }
                self.passes.count();
                Some(Box::pin(Self::pass([$($t,)+], lent, items, watermark, now, costs)))
            }
        }

        impl<T, $($B,)+ J, C> ForkKernel<T, $fork<$($B,)+ J>, C>
        where
            T: Clone + Send + 'static,
            $($B: BranchHint,)+
            J: Hint,
            C: Pairing $(+ AcceptInput<$idx>)+,
        {
            /// One pass of a batch through the ready fork.
            async fn pass(
                branches: [&mut (dyn Any + Send + 'static); $k],
                mut lent: Lent<C>,
                items: &mut Items<T>,
                watermark: u64,
                started: Instant,
                costs: [f64; MEMBERS_MAX],
            ) -> Result<Instant, Closed> {
                let [$($t,)+] = branches;
                type Out<T, J, $($B),+> = <J as Hint>::OutAfter<($(<<$B as BranchHint>::Chain as Hint>::OutAfter<T>,)+)>;
                let lens = [$(<$B::Chain as Hint>::LEN),+];
                let (bases, join) = places(lens);
                let failed_at = Cell::new(usize::MAX);
                let mut consumed = Consumed { done: 0, lost: None };
                let mut outputs: Items<Out<T, J, $($B),+>> = Vec::new();
                if !J::SINKS {
                    outputs.reserve(items.len());
                }
                let panicked = {
                    $( let mut $s = <$B::Chain as Hint>::stages(Some(&mut *$t)).expect("the fork was ready"); )+
                    let mut joined = J::stages(zip_node(&mut lent)).expect("the fork was ready");
                    std::panic::catch_unwind(AssertUnwindSafe(|| {
                        consume_in_order(items, &mut consumed, |lineage, item: T| {
                            $(
                                let $of = <$Bf::Chain as Hint>::map_item::<T>(
                                    &mut $sf, item.clone(), &failed_at, bases[$if],
                                );
                            )*
                            let $ol = <$Bl::Chain as Hint>::map_item::<T>(
                                &mut $sl, item, &failed_at, bases[$il],
                            );
                            let out = J::map_item(&mut joined, ($($o,)+), &failed_at, join);
                            if !J::SINKS {
                                outputs.push((lineage, out));
                            }
                        });
                    }))
                    .err()
                };
                let done = Instant::now();
                let lost: Option<Lost> = consumed
                    .lost
                    .zip(panicked)
                    .map(|(lineage, panic)| (lineage, panic, failed_at.get()));
                let reached = items.is_empty().then_some(watermark);
                if let Some(watermark) = reached {
                    $( feed::<$B::Chain, C, $idx>(&mut *$t).expect("the fork was ready").passed(watermark); )+
                }
                let end = {
                    let last = J::last::<($(<$B::Chain as Hint>::OutAfter<T>,)+)>(zip_node(&mut lent), outputs)
                        .expect("the fork was ready");
                    last.send_outputs(reached, done).await?
                };
                let failed = lost.as_ref().map(|(_, _, place)| *place);
                if failed.is_some_and(|place| place < join) {
                    // The tuple lost a part: the zip drops the others, as it would have.
                    lent.node().dropped_partial(Dropped { tuples: 1, items: $k - 1 });
                }
                let members = join + J::LEN;
                let pass = Pass {
                    times: (started, done, end),
                    costs: &costs[..members],
                    passed: consumed.done as u64,
                    reached,
                    lost_item_at: &|place| lost_item_at(lens, failed.unwrap_or(usize::MAX), place),
                };
                pass.book(lost, &mut |each| {
                    $( <$B::Chain as Hint>::visit(Some(&mut *$t), each); )+
                    J::visit(zip_node(&mut lent), each);
                });
                Ok(end)
            }
        }
    };
}

fork!(Fork2, ZipCore2, 2;
    B0 0 t0 s0 o0, B1 1 t1 s1 o1;
    firsts B0 s0 o0 0;
    last B1 s1 o1 1);
fork!(Fork3, ZipCore3, 3;
    B0 0 t0 s0 o0, B1 1 t1 s1 o1, B2 2 t2 s2 o2;
    firsts B0 s0 o0 0, B1 s1 o1 1;
    last B2 s2 o2 2);
fork!(Fork4, ZipCore4, 4;
    B0 0 t0 s0 o0, B1 1 t1 s1 o1, B2 2 t2 s2 o2, B3 3 t3 s3 o3;
    firsts B0 s0 o0 0, B1 s1 o1 1, B2 s2 o2 2;
    last B3 s3 o3 3);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_on_a_branch_counts_the_item_on_the_branches_before_it_only() {
        // Branches of 2, 0 and 1 nodes, then 2 after the zip: places 0-1, -, 2, then 3-4.
        let lens = [2, 0, 1];
        let at = |failed, place| lost_item_at(lens, failed, place);
        // The second node of the first branch panicked.
        assert_eq!(at(1, 0), (true, true));
        assert_eq!(at(1, 1), (true, false));
        assert_eq!(at(1, 2), (false, false), "a later branch does not see it");
        assert_eq!(at(1, 3), (false, false), "nor does the zip");
        // The third branch's node panicked: the first branch passed the item on.
        assert_eq!(at(2, 0), (true, true));
        assert_eq!(at(2, 2), (true, false));
        assert_eq!(at(2, 3), (false, false));
        // The node after the zip panicked: a chain from the zip on.
        assert_eq!(at(4, 1), (true, true));
        assert_eq!(at(4, 3), (true, true));
        assert_eq!(at(4, 4), (true, false));
    }
}
