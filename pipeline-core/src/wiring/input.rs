//! A node's input edges: one, merged, a loop's entry, or zipped into a tuple.

use crate::inlet::{LoopInlet, LoopInput, MergeInlet, Zip2, Zip3, Zip4, Zip5, Zip6, Zip7, Zip8};
use crate::node::Node;
use crate::wire::{EdgeReceiver, EdgeSender, edge};

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
/// [`CheckStage`](super::CheckStage) for the trick): an error that says what the node takes, and types left
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
