//! A node as the graph builder holds it: its types as values (to check edges at run time)
//! and its typed wiring behind a trait object, which makes the node's channels once the
//! graph is checked. An edge's sender travels between two nodes as `Box<dyn Any>`; it is
//! unboxed only after the check said both ends have the same type.

use std::any::{Any, TypeId, type_name};

use crate::exec::{ErrorWiring, Failed};
use crate::inlet::{Inlet, LoopInlet, MergeInlet, Zip2, Zip3, Zip4, Zip5, Zip6, Zip7, Zip8};
use crate::name::intern;
use crate::node::{Sink, SinkNode, Source, SourceNode, Stage, StageNode};
use crate::outlet::Outlet;
use crate::run::Builder;
use crate::spec::{FanIn, NodeConfig, Role};
use crate::wire::{EdgeSender, edge, fusable_edge};

/// An edge's sender, its item type erased.
pub(crate) type Sender = Box<dyn Any + Send>;

/// A type, as a value: what is compared, and what errors say.
#[derive(Clone, Copy, Debug)]
pub struct ItemType {
    pub(crate) id: TypeId,
    pub(crate) name: &'static str,
}

impl ItemType {
    pub(crate) fn of<T: 'static>() -> Self {
        ItemType {
            id: TypeId::of::<T>(),
            name: type_name::<T>(),
        }
    }
}

/// The type as a user writes it: `(String, Failed<u32>)`, without the module paths
/// `type_name` gives (`alloc::string::String`).
impl std::fmt::Display for ItemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&without_paths(self.name))
    }
}

/// Drops every path segment before a name: `a::b::C<d::E>` becomes `C<E>`.
pub(super) fn without_paths(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    // Where the identifier being written began in `out`.
    let mut ident_start = 0;
    let mut rest = name;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("::") {
            out.truncate(ident_start);
            rest = after;
            continue;
        }
        if !(c.is_alphanumeric() || c == '_') {
            ident_start = out.len() + c.len_utf8();
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// What a node takes.
pub(crate) enum Input {
    /// Items of one type, from one input or merged from several.
    One(ItemType),
    /// A tuple, zipped from one input per item (or taken whole from one input).
    Tuple {
        whole: ItemType,
        parts: Vec<ItemType>,
    },
}

impl Input {
    pub(crate) fn whole(&self) -> ItemType {
        match self {
            Input::One(whole) | Input::Tuple { whole, .. } => *whole,
        }
    }
}

/// Makes a zip's input edges, one per item of the tuple, and its inlet.
pub(crate) type ZipOpener<T> = fn(usize) -> (Vec<Sender>, Box<dyn Inlet<T>>);

mod sealed {
    pub trait Sealed {}
}

/// A tuple a node can zip its inputs into: `(A, B)` up to eight items, each `Send` and
/// `'static`. Implemented for those tuples only.
pub trait ZipInput: sealed::Sealed + Send + Sized + 'static {
    /// The tuple's item types, in order.
    #[doc(hidden)]
    fn parts() -> Vec<ItemType>;

    /// One input edge per item, holding `capacity` items each, and the inlet zipping them.
    #[doc(hidden)]
    fn open(capacity: usize) -> (Vec<Box<dyn Any + Send>>, Box<dyn Inlet<Self>>);
}

macro_rules! zip_input {
    ($zip:ident; $($T:ident $v:ident),+) => {
        impl<$($T: Send + 'static),+> sealed::Sealed for ($($T,)+) {}

        impl<$($T: Send + 'static),+> ZipInput for ($($T,)+) {
            fn parts() -> Vec<ItemType> {
                vec![$(ItemType::of::<$T>()),+]
            }

            fn open(capacity: usize) -> (Vec<Box<dyn Any + Send>>, Box<dyn Inlet<Self>>) {
                $( let $v = fusable_edge::<$T>(capacity); )+
                let senders: Vec<Sender> = vec![$(Box::new($v.0)),+];
                (senders, Box::new($zip::new($($v.1),+)))
            }
        }
    };
}

zip_input!(Zip2; A a, B b);
zip_input!(Zip3; A a, B b, C c);
zip_input!(Zip4; A a, B b, C c, D d);
zip_input!(Zip5; A a, B b, C c, D d, E e);
zip_input!(Zip6; A a, B b, C c, D d, E e, F f);
zip_input!(Zip7; A a, B b, C c, D d, E e, F f, G g);
zip_input!(Zip8; A a, B b, C c, D d, E e, F f, G g, H h);

pub(crate) fn zip_opener<T: ZipInput>() -> (ZipOpener<T>, Vec<ItemType>) {
    (T::open, T::parts())
}

/// One node added to the graph.
pub(crate) struct Entry {
    pub name: String,
    pub role: Role,
    pub config: NodeConfig,
    /// What it takes; `None` for a source.
    pub input: Option<Input>,
    /// What it sends; `None` for a sink.
    pub output: Option<ItemType>,
    /// What its dead-letter node gets (`Failed<In>`); `None` unless a stage.
    pub failed: Option<ItemType>,
    wiring: Box<dyn Wiring>,
}

impl Entry {
    pub(crate) fn source<S>(name: String, node: SourceNode<S>) -> Entry
    where
        S: Source,
        S::Out: Clone,
    {
        Entry {
            name,
            role: Role::Source,
            config: NodeConfig::new(),
            input: None,
            output: Some(ItemType::of::<S::Out>()),
            failed: None,
            wiring: Box::new(SourceWiring { node, outlet: None }),
        }
    }

    pub(crate) fn stage<S, F>(
        name: String,
        make: F,
        zip: Option<(ZipOpener<S::In>, Vec<ItemType>)>,
    ) -> Entry
    where
        S: Stage,
        S::In: Clone,
        S::Out: Clone,
        F: Fn() -> StageNode<S> + Send + 'static,
    {
        Entry {
            name,
            role: Role::Stage,
            config: NodeConfig::new(),
            input: Some(input::<S::In>(zip.as_ref().map(|(_, parts)| parts))),
            output: Some(ItemType::of::<S::Out>()),
            failed: Some(ItemType::of::<Failed<S::In>>()),
            wiring: Box::new(StageWiring {
                make: Box::new(make),
                zip: zip.map(|(open, _)| open),
                inlet: None,
                outlet: None,
                dead_letter: None,
            }),
        }
    }

    pub(crate) fn sink<S: Sink>(
        name: String,
        node: SinkNode<S>,
        zip: Option<(ZipOpener<S::In>, Vec<ItemType>)>,
    ) -> Entry {
        Entry {
            name,
            role: Role::Sink,
            config: NodeConfig::new(),
            input: Some(input::<S::In>(zip.as_ref().map(|(_, parts)| parts))),
            output: None,
            failed: None,
            wiring: Box::new(SinkWiring {
                node,
                zip: zip.map(|(open, _)| open),
                inlet: None,
            }),
        }
    }

    /// Makes the node's input edges (one per input, `true` for a loop edge, combined as
    /// `fan_in`); returns their senders in the order of its inputs.
    pub(crate) fn open_inputs(&mut self, fan_in: FanIn, looping: &[bool]) -> Vec<Sender> {
        let capacity = self.config.edge_capacity();
        self.wiring.open_inputs(fan_in, looping, capacity)
    }

    /// The node sends on these edges (their types checked).
    pub(crate) fn connect_outputs(&mut self, senders: Vec<Sender>) {
        self.wiring.connect_outputs(senders);
    }

    /// The stage's failed items leave on this edge (its type checked).
    pub(crate) fn connect_dead_letter(&mut self, sender: Sender) {
        self.wiring.connect_dead_letter(sender);
    }

    pub(crate) fn add_to(self, builder: &mut Builder) {
        self.wiring.add_to(builder, intern(&self.name), self.config);
    }
}

fn input<T: 'static>(parts: Option<&Vec<ItemType>>) -> Input {
    match parts {
        Some(parts) => Input::Tuple {
            whole: ItemType::of::<T>(),
            parts: parts.clone(),
        },
        None => Input::One(ItemType::of::<T>()),
    }
}

/// The typed half of a node: its channels, made once the graph is checked.
trait Wiring: Send {
    fn open_inputs(&mut self, fan_in: FanIn, looping: &[bool], capacity: usize) -> Vec<Sender>;
    fn connect_outputs(&mut self, senders: Vec<Sender>);
    fn connect_dead_letter(&mut self, _sender: Sender) {}
    fn add_to(self: Box<Self>, builder: &mut Builder, name: &'static str, config: NodeConfig);
}

/// The input edges of a node taking `T` (one per input, `true` for a loop edge), and its
/// inlet.
fn open<T: Send + 'static>(
    fan_in: FanIn,
    looping: &[bool],
    capacity: usize,
    zip: Option<ZipOpener<T>>,
) -> (Vec<Sender>, Box<dyn Inlet<T>>) {
    match (fan_in, zip) {
        (FanIn::Zip, Some(open)) => open(capacity),
        (FanIn::Merge, _) => {
            // Every edge gets a copy of one sender; the channel closes when all have gone.
            let (tx, rx) = edge::<T>(capacity);
            let senders = looping
                .iter()
                .map(|_| Box::new(tx.clone()) as Sender)
                .collect();
            (senders, Box::new(MergeInlet::new(rx)))
        }
        (FanIn::Loop, _) => {
            let (outside, around, inlet) = LoopInlet::open(capacity);
            let senders = looping
                .iter()
                .map(|&looping| {
                    let tx = if looping { &around } else { &outside };
                    Box::new(tx.clone()) as Sender
                })
                .collect();
            (senders, Box::new(inlet))
        }
        _ => {
            let (tx, rx) = fusable_edge::<T>(capacity);
            (vec![Box::new(tx)], Box::new(rx))
        }
    }
}

/// Unboxes senders whose type the checks compared with `T`.
pub(super) fn unbox<T: 'static>(sender: Sender) -> EdgeSender<T> {
    match sender.downcast::<EdgeSender<T>>() {
        Ok(sender) => *sender,
        Err(_) => unreachable!("the graph's checks compared the edge's types"),
    }
}

fn outlet<T: Clone + Send + 'static>(senders: Vec<Sender>) -> Outlet<T> {
    let mut senders: Vec<EdgeSender<T>> = senders.into_iter().map(unbox).collect();
    if senders.len() == 1 {
        Outlet::single(senders.remove(0))
    } else {
        Outlet::broadcast(senders)
    }
}

struct SourceWiring<S: Source> {
    node: SourceNode<S>,
    outlet: Option<Outlet<S::Out>>,
}

impl<S: Source> Wiring for SourceWiring<S>
where
    S::Out: Clone,
{
    fn open_inputs(&mut self, _: FanIn, _: &[bool], _: usize) -> Vec<Sender> {
        Vec::new()
    }

    fn connect_outputs(&mut self, senders: Vec<Sender>) {
        self.outlet = Some(outlet(senders));
    }

    fn add_to(self: Box<Self>, builder: &mut Builder, name: &'static str, config: NodeConfig) {
        let outlet = self.outlet.expect("a source has outputs (checked)");
        builder.source(name, self.node, outlet, config);
    }
}

type Make<S> = Box<dyn Fn() -> StageNode<S> + Send>;

struct StageWiring<S: Stage> {
    make: Make<S>,
    zip: Option<ZipOpener<S::In>>,
    inlet: Option<Box<dyn Inlet<S::In>>>,
    outlet: Option<Outlet<S::Out>>,
    dead_letter: Option<Outlet<Failed<S::In>>>,
}

impl<S: Stage> Wiring for StageWiring<S>
where
    S::In: Clone,
    S::Out: Clone,
{
    fn open_inputs(&mut self, fan_in: FanIn, looping: &[bool], capacity: usize) -> Vec<Sender> {
        let (senders, inlet) = open(fan_in, looping, capacity, self.zip);
        self.inlet = Some(inlet);
        senders
    }

    fn connect_outputs(&mut self, senders: Vec<Sender>) {
        self.outlet = Some(outlet(senders));
    }

    fn connect_dead_letter(&mut self, sender: Sender) {
        self.dead_letter = Some(Outlet::single(unbox(sender)));
    }

    fn add_to(self: Box<Self>, builder: &mut Builder, name: &'static str, config: NodeConfig) {
        let inlet = self.inlet.expect("a stage has inputs (checked)");
        let outlet = self.outlet.expect("a stage has outputs (checked)");
        let mut errors = ErrorWiring::default().copyable();
        if let Some(dead_letter) = self.dead_letter {
            errors = errors.dead_letter(dead_letter);
        }
        match config.workers {
            Some(count) => {
                let copies = (0..count).map(|_| (self.make)()).collect();
                builder.stage_with_workers(name, copies, inlet, outlet, config, errors);
            }
            None => builder.stage(name, (self.make)(), inlet, outlet, config, errors),
        }
    }
}

struct SinkWiring<S: Sink> {
    node: SinkNode<S>,
    zip: Option<ZipOpener<S::In>>,
    inlet: Option<Box<dyn Inlet<S::In>>>,
}

impl<S: Sink> Wiring for SinkWiring<S> {
    fn open_inputs(&mut self, fan_in: FanIn, looping: &[bool], capacity: usize) -> Vec<Sender> {
        let (senders, inlet) = open(fan_in, looping, capacity, self.zip);
        self.inlet = Some(inlet);
        senders
    }

    fn connect_outputs(&mut self, _: Vec<Sender>) {}

    fn add_to(self: Box<Self>, builder: &mut Builder, name: &'static str, config: NodeConfig) {
        let inlet = self.inlet.expect("a sink has inputs (checked)");
        builder.sink(name, self.node, inlet, config);
    }
}
