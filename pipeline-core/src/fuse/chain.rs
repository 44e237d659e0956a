//! Chains: while a run of plain maps (and the sink that ends it, if one does) all run
//! inline, each item goes through every one of them in one pass, held in registers from
//! the first map to the last.
//!
//! Running inline (see the parent module) already saves the channels, but each stage still
//! makes a pass of its own over the batch: per item and stage it loads the item and stores
//! it back. For stages as cheap as `x + 1` that is most of the work, two to three times what
//! a loop written by hand costs. Only code that knows every stage's type can call them one
//! after the other on one item, so `pipeline!` names the stages that follow a node in a
//! chain (a [`Hint`]: each has one input, the one before it has one output) and the
//! node's outlet gets a kernel for them.
//!
//! The kernel is a shortcut, not a second runtime. It runs only while the nodes it names
//! run inline, one inside the other, each ready for another batch; otherwise the batch
//! takes the usual path, node by node. It keeps each node's counts as that path would.
//! Time is the one thing a single pass cannot tell apart, so now and then (see [`Passes`])
//! a batch takes the usual path, which times each node; in between, a pass's time is
//! shared out by those costs. A node whose share turns slow, or that
//! panics, leaves on its next batch the usual way.

use std::any::{Any, TypeId};
use std::cell::Cell;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use crate::exec::in_place::{Consumed, InPlace, consume_in_order, same_layout};
use crate::exec::lend::{Fused, Lendable, Resumed, SinkResumed};
use crate::lineage::Lineage;
use crate::node::shape::{Broken, End, Hint, Link, Member, Part, SinkLink};
use crate::node::{BoxError, Sink, Stage};
use crate::outlet::Outlet;
use crate::stats::CpuCharge;
use crate::wire::Closed;
use crate::wire::handoff::{Kernel, Taken, Targets};

type Items<T> = Vec<(Lineage, T)>;

/// The most stages one kernel maps through; `pipeline!` names no more. Every node of a
/// longer chain gets a kernel for the stages after it, so the code grows with chain length
/// times this, not with its square. Each pass loads and stores every item once, so a chain
/// cut into passes of 8 cost 20 identity stages a fifth more than one pass; 24 keeps the
/// chains people write in one pass, for a few percent more compile time.
pub const CHAIN_MAX: usize = 24;

/// Passes a kernel runs at least before it lets a batch take the usual path, which times
/// each node...
const RECALIBRATE_EVERY: u32 = 32;
/// ...and the least time between two such batches. A batch on the usual path costs a pass
/// over it per node; for stages as cheap as `x + 1` one in 32 such batches was a tenth of
/// the run, one per 10 ms is nothing, and node costs do not change faster than that.
const RECALIBRATE_AFTER: Duration = Duration::from_millis(10);

impl Hint for End {
    const LEN: usize = 0;
    const MAPS: bool = true;
    const SINKS: bool = false;
    type OutAfter<A: Send + 'static> = A;
    type Stages<'a> = ();

    fn lines_up(input: TypeId) -> Option<TypeId> {
        Some(input)
    }

    fn visit(
        _: Option<&mut (dyn Any + 'static)>,
        _: &mut dyn FnMut(&mut dyn Member) -> bool,
    ) -> bool {
        true
    }

    fn tail<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<&'a mut (dyn Any + 'static)> {
        next
    }

    fn stages<'a>(_: Option<&'a mut (dyn Any + 'static)>) -> Option<()> {
        Some(())
    }

    #[inline(always)]
    fn map_item<A: Send + 'static>(_: &mut (), item: A, _: &Cell<usize>, _: usize) -> A {
        item
    }

    fn last<'a, A: Send + 'static>(
        _: Option<&'a mut (dyn Any + 'static)>,
        _: Items<A>,
    ) -> Option<&'a mut dyn Member> {
        None
    }
}

impl Hint for Broken {
    const LEN: usize = 0;
    const MAPS: bool = false;
    const SINKS: bool = false;
    type OutAfter<A: Send + 'static> = A;
    type Stages<'a> = ();

    fn lines_up(_: TypeId) -> Option<TypeId> {
        None
    }

    fn visit(
        _: Option<&mut (dyn Any + 'static)>,
        _: &mut dyn FnMut(&mut dyn Member) -> bool,
    ) -> bool {
        false
    }

    fn tail<'a>(_: Option<&'a mut (dyn Any + 'static)>) -> Option<&'a mut (dyn Any + 'static)> {
        None
    }

    fn stages<'a>(_: Option<&'a mut (dyn Any + 'static)>) -> Option<()> {
        None
    }

    fn map_item<A: Send + 'static>(_: &mut (), item: A, _: &Cell<usize>, _: usize) -> A {
        item
    }

    fn last<'a, A: Send + 'static>(
        _: Option<&'a mut (dyn Any + 'static)>,
        _: Items<A>,
    ) -> Option<&'a mut dyn Member> {
        None
    }
}

impl<S: Stage, R: Hint> Hint for Link<S, R> {
    const LEN: usize = 1 + R::LEN;
    const MAPS: bool = S::ONE_TO_ONE && R::MAPS;
    const SINKS: bool = R::SINKS;
    type OutAfter<A: Send + 'static> = R::OutAfter<S::Out>;
    type Stages<'a> = (InFrame<'a, S>, R::Stages<'a>);

    fn lines_up(input: TypeId) -> Option<TypeId> {
        (input == TypeId::of::<S::In>())
            .then(|| R::lines_up(TypeId::of::<S::Out>()))
            .flatten()
    }

    fn visit(
        next: Option<&mut (dyn Any + 'static)>,
        visit: &mut dyn FnMut(&mut dyn Member) -> bool,
    ) -> bool {
        let Some(node) = next.and_then(|n| n.downcast_mut::<Fused<Resumed<S>>>()) else {
            return false;
        };
        if !visit(node) {
            return false;
        }
        R::visit(node.adopted_next(), visit)
    }

    fn tail<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<&'a mut (dyn Any + 'static)> {
        let node = next?.downcast_mut::<Fused<Resumed<S>>>()?;
        R::tail(node.adopted_next())
    }

    fn stages<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<Self::Stages<'a>> {
        let node = next?.downcast_mut::<Fused<Resumed<S>>>()?;
        let Resumed { stage, outlet, .. } = node.state.as_mut()?;
        let rest = R::stages(outlet.sole_adopted())?;
        Some((InFrame::new(stage), rest))
    }

    #[inline(always)]
    fn map_item<A: Send + 'static>(
        (stage, rest): &mut Self::Stages<'_>,
        item: A,
        failed_at: &Cell<usize>,
        depth: usize,
    ) -> Self::OutAfter<A> {
        let mark = Mark(failed_at, depth);
        let out = stage.get().map_one(same::<A, S::In>(item));
        std::mem::forget(mark);
        R::map_item::<S::Out>(rest, out, failed_at, depth + 1)
    }

    fn last<'a, A: Send + 'static>(
        next: Option<&'a mut (dyn Any + 'static)>,
        outputs: Items<Self::OutAfter<A>>,
    ) -> Option<&'a mut dyn Member> {
        let node = next?.downcast_mut::<Fused<Resumed<S>>>()?;
        if R::LEN > 0 {
            let state = node.state.as_mut()?;
            return R::last::<S::Out>(state.outlet.sole_adopted(), outputs);
        }
        let state = node.state.as_mut()?;
        state.results = same::<Items<Self::OutAfter<A>>, Items<S::Out>>(outputs);
        Some(node)
    }
}

impl<S: Sink> Hint for SinkLink<S> {
    const LEN: usize = 1;
    const MAPS: bool = S::SYNC;
    const SINKS: bool = true;
    type OutAfter<A: Send + 'static> = ();
    type Stages<'a> = (InFrame<'a, S>, &'a mut Vec<BoxError>);

    fn lines_up(input: TypeId) -> Option<TypeId> {
        (input == TypeId::of::<S::In>()).then(TypeId::of::<()>)
    }

    fn visit(
        next: Option<&mut (dyn Any + 'static)>,
        visit: &mut dyn FnMut(&mut dyn Member) -> bool,
    ) -> bool {
        match next.and_then(|n| n.downcast_mut::<Fused<SinkResumed<S>>>()) {
            Some(node) => visit(node),
            None => false,
        }
    }

    fn tail<'a>(_: Option<&'a mut (dyn Any + 'static)>) -> Option<&'a mut (dyn Any + 'static)> {
        None
    }

    fn stages<'a>(next: Option<&'a mut (dyn Any + 'static)>) -> Option<Self::Stages<'a>> {
        let node = next?.downcast_mut::<Fused<SinkResumed<S>>>()?;
        let SinkResumed {
            sink, chain_errors, ..
        } = node.state.as_mut()?;
        Some((InFrame::new(sink), chain_errors))
    }

    #[inline(always)]
    fn map_item<A: Send + 'static>(
        (sink, errors): &mut Self::Stages<'_>,
        item: A,
        failed_at: &Cell<usize>,
        depth: usize,
    ) {
        let mark = Mark(failed_at, depth);
        let consumed = sink.get().consume_sync(same::<A, S::In>(item));
        std::mem::forget(mark);
        if let Err(error) = consumed {
            errors.push(error);
        }
    }

    fn last<'a, A: Send + 'static>(
        next: Option<&'a mut (dyn Any + 'static)>,
        _: Items<()>,
    ) -> Option<&'a mut dyn Member> {
        let node = next?.downcast_mut::<Fused<SinkResumed<S>>>()?;
        Some(node)
    }
}

/// A stage (or sink) of a pass, moved into the pass's own frame while the pass runs if it
/// is small, and put back when the pass ends, also when it unwinds.
///
/// Behind a reference, state the stage keeps in its fields (a sink's running sum, a
/// counter) goes to memory and back on every item whenever any stage of the chain calls
/// code the compiler cannot see into; in the frame, nothing else can reach it, so it stays
/// in registers for the whole batch.
pub struct InFrame<'a, S> {
    home: *mut S,
    copy: std::mem::MaybeUninit<S>,
    _borrow: PhantomData<&'a mut S>,
}

impl<'a, S> InFrame<'a, S> {
    /// Copying more than this per batch would cost more than it saves.
    const MOVES: bool = size_of::<S>() <= 256;

    #[inline(always)]
    fn new(home: &'a mut S) -> Self {
        let home: *mut S = home;
        let copy = if Self::MOVES {
            // SAFETY: `home` is borrowed for as long as this lives, so nothing reads the
            // stale original before `drop` writes the copy back over it.
            std::mem::MaybeUninit::new(unsafe { std::ptr::read(home) })
        } else {
            std::mem::MaybeUninit::uninit()
        };
        InFrame {
            home,
            copy,
            _borrow: PhantomData,
        }
    }

    #[inline(always)]
    fn get(&mut self) -> &mut S {
        if Self::MOVES {
            // SAFETY: initialised in `new` when it moves.
            unsafe { self.copy.assume_init_mut() }
        } else {
            // SAFETY: borrowed mutably for `'a`, and not moved out.
            unsafe { &mut *self.home }
        }
    }
}

impl<S> Drop for InFrame<'_, S> {
    #[inline(always)]
    fn drop(&mut self) {
        if Self::MOVES {
            // SAFETY: the copy was made in `new` and is moved back once; the original it
            // overwrites is a stale duplicate, so it must not be dropped.
            unsafe { std::ptr::write(self.home, self.copy.assume_init_read()) }
        }
    }
}

/// Says which node of a chain panicked, from the unwinding path only.
struct Mark<'a>(&'a Cell<usize>, usize);

impl Drop for Mark<'_> {
    fn drop(&mut self) {
        self.0.set(self.1);
    }
}

/// `value` as the type it is: the caller knows `A` and `B` are one type (a node adopted by
/// an outlet of `A`s takes `A`s), the compiler does not. Once monomorphised, the type check
/// is a constant and the moves are no-ops.
#[inline(always)]
fn same<A: 'static, B: 'static>(value: A) -> B {
    let mut value = Some(value);
    (&mut value as &mut dyn Any)
        .downcast_mut::<Option<B>>()
        .and_then(Option::take)
        .expect("a chain's item types line up")
}

/// A kernel, as a public trait's method hands it out.
#[doc(hidden)]
pub struct BoxedKernel<T>(pub(crate) Box<dyn Kernel<T>>);

/// Passes every kernel of the process ran. Kernels engage only while items are cheap, so
/// tests of their unsafe code (under Miri above all) check that they did run; one add per
/// batch costs nothing next to the batch.
static PASSES_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many passes the chain and fork kernels have run in this process (a test hook).
#[doc(hidden)]
pub fn passes_run() -> u64 {
    PASSES_RUN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Passes a kernel ran since the last batch that took the usual path, and when that was.
#[derive(Default)]
pub(super) struct Passes {
    count: u32,
    last_usual: Option<Instant>,
}

impl Passes {
    /// Whether this batch, at `now`, takes the usual path, to time each node alone: one
    /// does after [`RECALIBRATE_EVERY`] passes and [`RECALIBRATE_AFTER`] (and an empty one
    /// has nothing to map).
    pub(super) fn usual_path_due(&mut self, items: usize, now: Instant) -> bool {
        let last = *self.last_usual.get_or_insert(now);
        let due = self.count >= RECALIBRATE_EVERY
            && now.saturating_duration_since(last) >= RECALIBRATE_AFTER;
        if due || items == 0 {
            self.count = 0;
            self.last_usual = Some(now);
            return true;
        }
        false
    }

    /// A pass is about to run.
    pub(super) fn count(&mut self) {
        self.count += 1;
        PASSES_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The kernel of an outlet of `T`s whose chain is `H`.
struct ChainKernel<T, H> {
    passes: Passes,
    _types: PhantomData<fn(T) -> H>,
}

impl<T: Send + 'static> Outlet<T> {
    /// Gives the outlet a kernel for the chain `H` after it, if `H` names one it can run.
    pub fn with_chain<H: Hint>(mut self) -> Self {
        self.set_kernel(kernel::<T, H>());
        self
    }
}

/// The kernel for an outlet of `T`s, if `H` names a chain it can run: at least two maps
/// whose types line up, with outputs laid out like the inputs (so a pass maps in place).
pub(crate) fn kernel<T: Send + 'static, H: Hint>() -> Option<Box<dyn Kernel<T>>> {
    let fits = H::LEN >= 2
        && H::LEN <= CHAIN_MAX
        && H::MAPS
        && H::lines_up(TypeId::of::<T>()).is_some()
        && (H::SINKS || same_layout::<T, H::OutAfter<T>>());
    fits.then(|| {
        Box::new(ChainKernel::<T, H> {
            passes: Passes::default(),
            _types: PhantomData,
        }) as Box<dyn Kernel<T>>
    })
}

impl<T: Send + 'static, H: Hint> Kernel<T> for ChainKernel<T, H> {
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
        let [next] = <[_; 1]>::try_from(targets).ok()?;
        let mut costs = [0.0f64; CHAIN_MAX];
        let mut seen = 0;
        let ready = H::visit(Some(&mut *next), &mut |member| {
            let ready = member.ready();
            costs[seen] = member.item_cost();
            seen += 1;
            ready
        });
        if !ready || seen != H::LEN {
            return None;
        }
        self.passes.count();
        if H::SINKS {
            return Some(Box::pin(pass_into_sink::<T, H>(
                next, items, watermark, now, costs,
            )));
        }
        Some(Box::pin(pass_in_place::<T, H>(
            next, items, watermark, now, costs,
        )))
    }
}

/// A panic in a pass: the item it happened on, and the node's place in the chain.
pub(super) type Lost = (Lineage, Box<dyn Any + Send>, usize);

/// One pass of a batch through a ready chain of maps, in the batch's own buffer.
async fn pass_in_place<T: Send + 'static, H: Hint>(
    next: &mut (dyn Any + Send + 'static),
    items: &mut Items<T>,
    watermark: u64,
    started: Instant,
    costs: [f64; CHAIN_MAX],
) -> Result<Instant, Closed> {
    let failed_at = Cell::new(usize::MAX);
    let mut batch = InPlace::<T, H::OutAfter<T>>::new(std::mem::take(items));
    let panicked = {
        let mut stages = H::stages(Some(&mut *next)).expect("the chain was ready");
        let n = batch.remaining();
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            batch.map(n, |item| H::map_item::<T>(&mut stages, item, &failed_at, 0));
        }))
        .err()
    };
    let done = Instant::now();
    let split = batch.split();
    *items = split.rest;
    let mapped = split.done.len() as u64;
    let lost = split
        .lost
        .zip(panicked)
        .map(|(l, p)| (l, p, failed_at.get()));
    // With items left (after a panic) the watermark waits for them.
    let reached = items.is_empty().then_some(watermark);
    let last = H::last::<T>(Some(&mut *next), split.done).expect("the chain was ready");
    let end = last.send_outputs(reached, done).await?;
    account::<H>(next, (started, done, end), costs, mapped, lost, reached);
    Ok(end)
}

/// One pass of a batch through a ready chain that ends in a sink.
async fn pass_into_sink<T: Send + 'static, H: Hint>(
    next: &mut (dyn Any + Send + 'static),
    items: &mut Items<T>,
    watermark: u64,
    started: Instant,
    costs: [f64; CHAIN_MAX],
) -> Result<Instant, Closed> {
    let failed_at = Cell::new(usize::MAX);
    let mut consumed = Consumed {
        done: 0,
        lost: None,
    };
    let panicked = {
        let mut stages = H::stages(Some(&mut *next)).expect("the chain was ready");
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            consume_in_order(items, &mut consumed, |_, item| {
                // The sink's output is `()`.
                let _ = H::map_item::<T>(&mut stages, item, &failed_at, 0);
            });
        }))
        .err()
    };
    let done = Instant::now();
    let lost = consumed
        .lost
        .zip(panicked)
        .map(|(l, p)| (l, p, failed_at.get()));
    let consumed = consumed.done as u64;
    let reached = items.is_empty().then_some(watermark);
    let last = H::last::<T>(Some(&mut *next), Vec::new()).expect("the chain was ready");
    let end = last.send_outputs(reached, done).await?;
    account::<H>(next, (started, done, end), costs, consumed, lost, reached);
    Ok(end)
}

/// Books each node's part of a pass that took from `started` to `done`, its outputs sent
/// on by `end`: `passed` items went through every node, and a panic (`lost`) cut one short.
fn account<H: Hint>(
    next: &mut (dyn Any + Send + 'static),
    times: (Instant, Instant, Instant),
    costs: [f64; CHAIN_MAX],
    passed: u64,
    lost: Option<Lost>,
    reached: Option<u64>,
) {
    let failed = lost.as_ref().map_or(usize::MAX, |(_, _, place)| *place);
    let pass = Pass {
        times,
        costs: &costs[..H::LEN],
        passed,
        reached,
        // The nodes before the one that panicked passed the item on; that one received it.
        lost_item_at: &|place| (place <= failed, place < failed),
    };
    pass.book(lost, &mut |each| {
        H::visit(Some(&mut *next), each);
    });
}

/// What visits each node of a pass, in order; it returns whether to go on.
pub(super) type Visit<'a> = dyn FnMut(&mut dyn Member) -> bool + 'a;

/// A pass over the nodes of a chain or a fork, in the order they are visited, to book.
pub(super) struct Pass<'a> {
    /// When it started, when the last item was done, when its outputs had been sent on.
    pub times: (Instant, Instant, Instant),
    /// Per node: what an item cost it when last timed alone.
    pub costs: &'a [f64],
    /// Items that went through every node.
    pub passed: u64,
    /// The watermark the pass got to, unless a panic left items for the usual path.
    pub reached: Option<u64>,
    /// Per node: whether it received the item a panic cut short, and whether it emitted it.
    pub lost_item_at: &'a dyn Fn(usize) -> (bool, bool),
}

impl Pass<'_> {
    /// Books each node's part, visiting them with `visit_all`; the node at `lost`'s place
    /// learns it panicked.
    pub(super) fn book(&self, mut lost: Option<Lost>, visit_all: &mut dyn FnMut(&mut Visit<'_>)) {
        let (started, done, end) = self.times;
        let members = self.costs.len();
        // Share the pass's time out by what each node cost when last timed alone.
        let total: f64 = self.costs.iter().sum();
        let took = done.saturating_duration_since(started);
        let share = |place: usize| {
            if total > 0.0 {
                took.mul_f64(self.costs[place] / total)
            } else {
                took / members.max(1) as u32
            }
        };
        let failed = lost.as_ref().map_or(usize::MAX, |(_, _, place)| *place);
        let (mut place, mut at) = (0, started);
        visit_all(&mut |member| {
            let busy = share(place);
            let (received, emitted) = if failed == usize::MAX {
                (false, false)
            } else {
                (self.lost_item_at)(place)
            };
            let not_last = place + 1 < members;
            member.account(Part {
                started: at,
                busy,
                received: self.passed + u64::from(received),
                emitted: self.passed + u64::from(emitted),
                // The last node counts its own wait as it sends.
                blocked: if not_last {
                    end.saturating_duration_since(at + busy)
                } else {
                    Duration::ZERO
                },
                end,
                passed: not_last.then_some(self.reached).flatten(),
            });
            if place == failed {
                let (lineage, panic, _) = lost.take().expect("one panic per pass");
                member.panicked(panic, lineage);
            }
            at += busy;
            place += 1;
            true
        });
    }
}

impl<L: Lendable> Fused<L> {
    /// See [`Member::ready`].
    fn ready_for_pass(&self) -> bool {
        let Some((settled, latency)) = self.state.as_ref().map(L::settled) else {
            return false;
        };
        // Cheap, and timed a batch at a time: a pass shares its time out by those timings.
        settled
            && !self.leave_next
            && self.item_cost > 0.0
            && latency.slow_streak() == 0
            && latency.times_whole_batches()
    }

    /// What every node books of its part of a pass: its waits, what it received, and its
    /// share of the time.
    fn book(&mut self, part: &Part) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        let (counts, latency) = state.meters();
        counts.starved += part.started.saturating_duration_since(self.idle_since);
        counts.received += part.received;
        counts.blocked += part.blocked;
        latency.record_batch(part.busy, part.received as usize);
        if let Some(share) = self.cpu_share {
            CpuCharge::inline(counts, part.busy.mul_f64(share));
        }
        self.idle_since = part.end;
        self.publish_if_due(part.end, false);
    }

    /// See [`Member::panicked`].
    fn panicked_in_pass(&mut self, panic: Box<dyn Any + Send>, lineage: Lineage) {
        let Some(state) = self.state.as_mut() else {
            return;
        };
        state.meters().0.failed += 1;
        state.restart_later(self.ctx.worker_panicked(panic).restart);
        self.ctx.item_ended(lineage);
        self.leave_next = true;
        self.publish_if_due(Instant::now(), true);
    }
}

impl<S: Stage> Member for Fused<Resumed<S>> {
    fn ready(&self) -> bool {
        self.ready_for_pass()
    }

    fn item_cost(&self) -> f64 {
        self.item_cost
    }

    fn account(&mut self, part: Part) {
        if let Some(state) = self.state.as_mut() {
            state.counts.emitted += part.emitted;
            if let Some(watermark) = part.passed {
                state.outlet.passed_inline(watermark);
            }
        }
        self.book(&part);
    }

    fn panicked(&mut self, panic: Box<dyn Any + Send>, lineage: Lineage) {
        self.panicked_in_pass(panic, lineage);
    }

    fn send_outputs(&mut self, reached: Option<u64>, done: Instant) -> Taken<'_, Instant> {
        Box::pin(async move {
            let state = self.state.as_mut().expect("a chain's nodes run inline");
            state.send_results(reached, true, done).await
        })
    }
}

impl<S: Sink> Member for Fused<SinkResumed<S>> {
    fn ready(&self) -> bool {
        // Items from other processes end one by one in a sink: not in a pass.
        self.ctx.ledger.is_none() && self.ready_for_pass()
    }

    fn item_cost(&self) -> f64 {
        self.item_cost
    }

    fn account(&mut self, part: Part) {
        if let Some(state) = self.state.as_mut() {
            for error in state.chain_errors.drain(..) {
                state.counts.failed += 1;
                self.ctx.item_failed(error);
            }
        }
        self.book(&part);
    }

    fn panicked(&mut self, panic: Box<dyn Any + Send>, lineage: Lineage) {
        self.panicked_in_pass(panic, lineage);
    }

    fn send_outputs(&mut self, _reached: Option<u64>, done: Instant) -> Taken<'_, Instant> {
        if let Some(state) = self.state.as_mut() {
            state.sink.flush();
        }
        Box::pin(std::future::ready(Ok(done)))
    }
}

#[cfg(test)]
mod tests {
    use std::panic::AssertUnwindSafe;

    use super::*;

    /// Small enough to move into the frame.
    struct Small(Vec<String>);
    /// Too large to move: used where it is.
    struct Large(Vec<String>, [u64; 64]);

    #[test]
    fn a_small_value_moves_into_the_frame_and_back() {
        const { assert!(InFrame::<Small>::MOVES) };
        let mut home = Small(vec!["a".into()]);
        {
            let mut frame = InFrame::new(&mut home);
            frame.get().0.push("b".into());
            frame.get().0.push("c".into());
        }
        assert_eq!(home.0, ["a", "b", "c"]);
    }

    #[test]
    fn a_large_value_is_used_where_it_is() {
        const { assert!(!InFrame::<Large>::MOVES) };
        let mut home = Large(Vec::new(), [0; 64]);
        {
            let mut frame = InFrame::new(&mut home);
            frame.get().0.push("x".into());
            frame.get().1[63] = 9;
        }
        assert_eq!((home.0.as_slice(), home.1[63]), (&["x".to_string()][..], 9));
    }

    #[test]
    fn a_panic_leaves_the_value_home_with_what_was_done() {
        let mut home = Small(Vec::new());
        let unwound = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let mut frame = InFrame::new(&mut home);
            frame.get().0.push("before".into());
            panic!("in the middle of a pass");
        }));
        assert!(unwound.is_err());
        // Dropped once, with the push made in the frame (Miri checks the once).
        assert_eq!(home.0, ["before"]);
    }

    #[test]
    fn same_gives_back_the_value_of_one_type() {
        let s: String = same::<String, String>("kept".to_string());
        assert_eq!(s, "kept");
        let refused = std::panic::catch_unwind(|| same::<u64, u32>(1));
        assert!(refused.is_err(), "two types are not the same");
    }
}
