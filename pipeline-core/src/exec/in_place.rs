//! Mapping a batch in place: a one-to-one stage whose outputs are laid out like its inputs
//! writes each output over its input.
//!
//! A chain of cheap stages that each copied a batch into a buffer of their own would touch
//! one buffer per stage, more than the first-level cache holds; mapped in place, the batch
//! travels down the chain in one buffer that stays in cache.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr;

use crate::lineage::Lineage;

type Items<T> = Vec<(Lineage, T)>;

/// Whether a `Vec<(Lineage, A)>`'s allocation can hold `(Lineage, B)`s instead, with each
/// lineage where it was (so mapping writes only the item).
pub(crate) const fn same_layout<A, B>() -> bool {
    size_of::<(Lineage, A)>() == size_of::<(Lineage, B)>()
        && align_of::<(Lineage, A)>() == align_of::<(Lineage, B)>()
        && std::mem::offset_of!((Lineage, A), 0) == std::mem::offset_of!((Lineage, B), 0)
}

/// A batch part-way through being mapped in place: outputs first, then at most one empty
/// slot (its item was lost to a panic), then the inputs not yet mapped.
pub(crate) struct InPlace<A, B> {
    slots: *mut (Lineage, A),
    len: usize,
    capacity: usize,
    /// Slots before this hold outputs.
    mapped: usize,
    /// Whether the slot at `mapped` lost its item: `map` panicked on it.
    lost: bool,
    _owns: PhantomData<(Items<A>, Items<B>)>,
}

// SAFETY: an `InPlace` owns `A`s and `B`s as the two vectors it stands for would.
unsafe impl<A: Send, B: Send> Send for InPlace<A, B> {}

/// What an [`InPlace`] ends as.
pub(crate) struct Split<A, B> {
    /// The outputs, in order, in the batch's allocation.
    pub done: Vec<(Lineage, B)>,
    /// The lineage of the item `map` panicked on, if it did.
    pub lost: Option<Lineage>,
    /// The items not mapped, in order.
    pub rest: Vec<(Lineage, A)>,
}

impl<A, B> InPlace<A, B> {
    /// # Panics
    ///
    /// If `A` and `B` are not laid out alike (see [`same_layout`]): check first.
    pub(crate) fn new(items: Vec<(Lineage, A)>) -> Self {
        assert!(
            same_layout::<A, B>(),
            "mapping in place needs A and B laid out alike"
        );
        let mut items = ManuallyDrop::new(items);
        InPlace {
            slots: items.as_mut_ptr(),
            len: items.len(),
            capacity: items.capacity(),
            mapped: 0,
            lost: false,
            _owns: PhantomData,
        }
    }

    /// Items not mapped yet (none once one was lost: `split` next).
    pub(crate) fn remaining(&self) -> usize {
        if self.lost { 0 } else { self.len - self.mapped }
    }

    /// Maps the next `n` items (at most [`remaining`](Self::remaining)) with `map`. If it
    /// panics, the item it panicked on is lost and the panic goes on; `split` still works.
    #[inline]
    pub(crate) fn map(&mut self, n: usize, mut map: impl FnMut(A) -> B) {
        assert!(n <= self.remaining(), "mapping past the end of a batch");
        /// Records how far the loop got, also when `map` unwinds, while the loop itself
        /// keeps its counter in a register.
        struct Progress<'a> {
            mapped: &'a mut usize,
            lost: &'a mut bool,
            at: usize,
        }
        impl Drop for Progress<'_> {
            // Only runs when `map` unwinds: the loop forgets it when done.
            fn drop(&mut self) {
                *self.mapped = self.at;
                *self.lost = true;
            }
        }
        let end = self.mapped + n;
        let (slots, outputs) = (self.slots, self.slots.cast::<(Lineage, B)>());
        let mut progress = Progress {
            at: self.mapped,
            mapped: &mut self.mapped,
            lost: &mut self.lost,
        };
        while progress.at < end {
            // SAFETY: the slot at `at` (below `len`) holds an input nothing else owns. Its
            // item is moved out and the output written in its place; the lineage stays where
            // it is, which is where an output's lineage goes (same layout). A panic in `map`
            // leaves the lineage in place too.
            unsafe {
                let output = map(ptr::read(&raw const (*slots.add(progress.at)).1));
                ptr::write(&raw mut (*outputs.add(progress.at)).1, output);
            }
            progress.at += 1;
        }
        std::mem::forget(progress);
        self.mapped = end;
    }

    /// The outputs, the lost item and the rest; the batch's allocation goes to the outputs.
    pub(crate) fn split(mut self) -> Split<A, B> {
        let rest_from = self.mapped + usize::from(self.lost);
        let rest_len = self.len - rest_from;
        let mut rest = Vec::with_capacity(rest_len);
        // SAFETY: a lost item's slot keeps its lineage (see `map`). The slots from
        // `rest_from` hold inputs nothing else owns; they move to `rest`'s fresh allocation.
        // The batch's allocation then holds `mapped` outputs, and was made for `capacity`
        // items laid out like `(Lineage, B)`.
        let split = unsafe {
            let lost = self.lost.then(|| (*self.slots.add(self.mapped)).0);
            ptr::copy_nonoverlapping(self.slots.add(rest_from), rest.as_mut_ptr(), rest_len);
            rest.set_len(rest_len);
            let done = Vec::from_raw_parts(
                self.slots.cast::<(Lineage, B)>(),
                self.mapped,
                self.capacity,
            );
            Split { done, lost, rest }
        };
        // Everything has an owner now: nothing is left to drop.
        self.len = 0;
        self.mapped = 0;
        self.lost = false;
        self.capacity = 0;
        split
    }
}

/// What [`consume_in_order`] left.
pub(crate) struct Consumed {
    /// Items consumed, not counting one `consume` panicked on.
    pub done: usize,
    /// The lineage of the item `consume` panicked on, if it did.
    pub lost: Option<Lineage>,
}

/// Hands each item of `items` to `consume`, in order. If `consume` panics, the panic goes
/// on, the item it panicked on is lost, and `items` keeps the ones after it, in order;
/// otherwise `items` is left empty (its allocation kept). The loop's place stays in a
/// register: it is written down only while unwinding.
pub(crate) fn consume_in_order<T>(
    items: &mut Vec<(Lineage, T)>,
    consumed: &mut Consumed,
    mut consume: impl FnMut(Lineage, T),
) {
    /// Puts what is left back in order, also when `consume` unwinds.
    struct Progress<'a, T> {
        items: &'a mut Vec<(Lineage, T)>,
        consumed: &'a mut Consumed,
        len: usize,
        at: usize,
    }
    impl<T> Drop for Progress<'_, T> {
        // Only runs when `consume` unwinds: the loop forgets it when done.
        fn drop(&mut self) {
            let rest = self.len - self.at - 1;
            // SAFETY: the slot at `at` lost its item to `consume` but keeps its lineage
            // (read as a copy); the slots after it hold items nothing else owns, which
            // move to the front. The vector's length is 0 meanwhile, so nothing is dropped
            // twice.
            unsafe {
                let base = self.items.as_mut_ptr();
                self.consumed.lost = Some((*base.add(self.at)).0);
                ptr::copy(base.add(self.at + 1), base, rest);
                self.items.set_len(rest);
            }
            self.consumed.done = self.at;
        }
    }
    let len = items.len();
    // SAFETY: the items are read out one by one below; with the length at 0, a panic
    // cannot drop one that was read.
    unsafe { items.set_len(0) };
    let base = items.as_mut_ptr();
    let mut progress = Progress {
        items,
        consumed,
        len,
        at: 0,
    };
    while progress.at < len {
        // SAFETY: the slot at `at` (below `len`) holds an item nothing else owns; it is
        // moved out once.
        let (lineage, item) = unsafe { ptr::read(base.add(progress.at)) };
        consume(lineage, item);
        progress.at += 1;
    }
    progress.consumed.done = len;
    progress.consumed.lost = None;
    std::mem::forget(progress);
}

impl<A, B> Drop for InPlace<A, B> {
    fn drop(&mut self) {
        if self.capacity == 0 && self.len == 0 {
            return;
        }
        // Dropped without `split` (a panic outside `map`): drop what it holds, once each.
        let parts = InPlace {
            slots: self.slots,
            len: self.len,
            capacity: self.capacity,
            mapped: self.mapped,
            lost: self.lost,
            _owns: PhantomData,
        };
        self.len = 0;
        self.capacity = 0;
        drop::<Split<A, B>>(parts.split());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::rc::Rc;

    /// Counts its drops, to prove each value is dropped exactly once.
    struct Counted(u64, Rc<Cell<u32>>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }

    /// Laid out like `Counted`, so the two share an allocation.
    struct Doubled(u64, Rc<Cell<u32>>);

    impl Drop for Doubled {
        fn drop(&mut self) {
            self.1.set(self.1.get() + 1);
        }
    }

    fn inputs(n: u64, drops: &Rc<Cell<u32>>) -> Vec<(Lineage, Counted)> {
        (0..n)
            .map(|i| (Lineage::root(i), Counted(i, drops.clone())))
            .collect()
    }

    fn double(c: Counted) -> Doubled {
        assert!(c.0 != 13, "item 13 is bad");
        Doubled(c.0 * 2, c.1.clone())
    }

    fn roots<T>(items: &[(Lineage, T)]) -> Vec<u64> {
        items.iter().map(|(l, _)| l.root_index()).collect()
    }

    #[test]
    fn maps_every_item_in_its_allocation() {
        let drops = Rc::new(Cell::new(0));
        let items = inputs(5, &drops);
        let allocation = items.as_ptr() as usize;
        let mut batch = InPlace::new(items);
        batch.map(2, double);
        batch.map(3, double);
        assert_eq!(batch.remaining(), 0);
        let split = batch.split();
        assert!(split.lost.is_none() && split.rest.is_empty());
        assert_eq!(split.done.as_ptr() as usize, allocation);
        let values: Vec<u64> = split.done.iter().map(|(_, d)| d.0).collect();
        assert_eq!(values, [0, 2, 4, 6, 8]);
        assert_eq!(roots(&split.done), [0, 1, 2, 3, 4]);
        assert_eq!(drops.get(), 5, "each input dropped once, by `map`");
        drop(split);
        assert_eq!(drops.get(), 10);
    }

    #[test]
    fn stopping_early_keeps_the_rest_in_order() {
        let drops = Rc::new(Cell::new(0));
        let mut batch = InPlace::new(inputs(5, &drops));
        batch.map(2, double);
        let split = batch.split();
        assert_eq!(roots(&split.done), [0, 1]);
        assert_eq!(roots(&split.rest), [2, 3, 4]);
        assert!(split.rest.iter().all(|(l, c)| l.root_index() == c.0));
        drop(split);
        assert_eq!(drops.get(), 2 + 2 + 3);
    }

    #[test]
    fn a_panic_loses_only_its_own_item() {
        let drops = Rc::new(Cell::new(0));
        let mut batch = InPlace::new(inputs(20, &drops));
        let panic = catch_unwind(AssertUnwindSafe(|| batch.map(20, double)));
        assert!(panic.is_err());
        assert_eq!(batch.remaining(), 0);
        let split = batch.split();
        assert_eq!(split.lost, Some(Lineage::root(13)));
        assert_eq!(roots(&split.done), (0..13).collect::<Vec<_>>());
        assert_eq!(roots(&split.rest), (14..20).collect::<Vec<_>>());
        assert_eq!(
            drops.get(),
            14,
            "inputs 0 to 12 once mapped, 13 while unwinding"
        );
        drop(split);
        assert_eq!(drops.get(), 14 + 13 + 6);
    }

    #[test]
    fn consuming_in_order_keeps_what_a_panic_left() {
        let drops = Rc::new(Cell::new(0));
        let mut items = inputs(20, &drops);
        let mut seen = Vec::new();
        let mut consumed = Consumed {
            done: 0,
            lost: None,
        };
        let panic = catch_unwind(AssertUnwindSafe(|| {
            consume_in_order(&mut items, &mut consumed, |_, c: Counted| {
                assert!(c.0 != 13, "item 13 is bad");
                seen.push(c.0);
            })
        }));
        assert!(panic.is_err());
        assert_eq!(seen, (0..13).collect::<Vec<_>>());
        assert_eq!(
            (consumed.done, consumed.lost),
            (13, Some(Lineage::root(13)))
        );
        assert_eq!(roots(&items), (14..20).collect::<Vec<_>>());
        assert_eq!(drops.get(), 14, "13 consumed, 13 dropped while unwinding");
        consume_in_order(&mut items, &mut consumed, |_, item| drop(item));
        assert!(items.is_empty() && consumed.lost.is_none());
        assert_eq!((consumed.done, drops.get()), (6, 20));
    }

    #[test]
    fn dropped_unsplit_drops_each_value_once() {
        let drops = Rc::new(Cell::new(0));
        let mut batch = InPlace::new(inputs(20, &drops));
        batch.map(3, double);
        let _ = catch_unwind(AssertUnwindSafe(|| batch.map(15, double)));
        drop(batch);
        assert_eq!(drops.get(), 13 + 1 + 13 + 6);
        let empty: InPlace<Counted, Doubled> = InPlace::new(Vec::new());
        let split = empty.split();
        assert!(split.done.is_empty() && split.rest.is_empty() && split.lost.is_none());
    }
}
