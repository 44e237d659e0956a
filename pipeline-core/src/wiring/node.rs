//! Nodes: each checked once where it is bound (its role, and the constructor's bounds),
//! then added to the builder, on workers if it asks for them.

use crate::exec::ErrorWiring;
use crate::inlet::Inlet;
use crate::node::{Node, Sink, SinkNode, Source, SourceNode, Stage, StageNode};
use crate::outlet::Outlet;
use crate::run::Builder;
use crate::spec::NodeConfig;

use super::errors::Copied;

/// A trait saying a node has a role, implemented by the role's wrapper whatever it wraps:
/// what is wrong inside a node is its constructor's error, given there (see [`CheckStage`]).
macro_rules! role_check {
    ($(#[$doc:meta])* $trait:ident for $wrapper:ident: $message:literal, $label:literal, $note:literal) => {
        $(#[$doc])*
        #[diagnostic::on_unimplemented(message = $message, label = $label, note = $note)]
        pub trait $trait<Name> {}

        #[diagnostic::do_not_recommend]
        impl<S, Name> $trait<Name> for $wrapper<S> {}
    };
}

role_check! {
    /// A node without inputs must be a source.
    SourceRole for SourceNode:
    "`{Name}` has no inputs, so it must be a source, but it is `{Self}`",
    "no edge leads into `{Name}`",
    "build sources with `source::iter`, `source::stream` or `source::producer`, or add an edge into `{Name}`"
}
role_check! {
    /// A node with inputs and outputs must be a stage.
    StageRole for StageNode:
    "`{Name}` has inputs and outputs, so it must be a stage, but it is `{Self}`",
    "`{Name}` is used in the middle of the graph",
    "a source takes no input and a sink sends no output: remove the edges into a source or out of a sink"
}
role_check! {
    /// A node without outputs must be a sink.
    SinkRole for SinkNode:
    "`{Name}` has no outputs, so it must be a sink, but it is `{Self}`",
    "nothing consumes what `{Name}` sends",
    "build sinks with `sink::for_each` or `Collected::sink`, or connect `{Name}` to a sink"
}

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
