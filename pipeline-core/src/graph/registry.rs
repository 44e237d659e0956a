//! Named node constructors, for graphs whose shape comes from a file (see
//! [`GraphSpec`](super::GraphSpec)). A constructor takes its arguments as a serde type,
//! read from the spec; registering one is plain Rust in the user's program, and a
//! "plug-in" is a crate exporting a function that registers its nodes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{GraphBuilder, ZipInput};
use crate::node::{Sink, SinkNode, Source, SourceNode, Stage, StageNode};
use crate::spec::Role;

/// Adds one node, named as the spec names it, made from the arguments the spec gives.
type Add = dyn Fn(&mut GraphBuilder, &str, Option<&Value>) -> Result<(), String> + Send + Sync;

struct Registered {
    role: Role,
    /// The arguments' Rust type, for errors.
    args: &'static str,
    add: Box<Add>,
}

/// Node constructors by name: what a spec's `use = "name"` picks.
///
/// ```
/// use pipeline::graph::Registry;
/// use pipeline::{Collected, sink, source, stage};
///
/// #[derive(serde::Deserialize)]
/// struct Count {
///     count: usize,
/// }
///
/// let mut registry = Registry::new();
/// registry
///     .source("numbers", |args: Count| source::iter(0..args.count as u64))
///     .stage("double", |_: ()| stage::map(|n: u64| n * 2))
///     .sink("print", |_: ()| sink::for_each(|n: u64| println!("{n}")));
/// assert_eq!(registry.names().collect::<Vec<_>>(), ["double", "numbers", "print"]);
/// ```
///
/// Items must be `Clone`, as for [`GraphBuilder`]: a spec may send one node's items to
/// several others.
///
/// For a spec with `distributed = "name"`, register every item type its edges carry with
/// [`crossing`](Self::crossing) (feature `nats`).
#[derive(Default)]
pub struct Registry {
    entries: BTreeMap<String, Registered>,
    /// The item types that may cross processes.
    #[cfg(feature = "nats")]
    pub(super) crossings: super::crossing::Crossings,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(name, r)| (name, r.role)))
            .finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers source `name`, made by `make` from the spec's `args`.
    pub fn source<A, S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        A: DeserializeOwned,
        S: Source,
        S::Out: Clone,
        F: Fn(A) -> SourceNode<S> + Send + Sync + 'static,
    {
        self.register::<A>(name, Role::Source, move |graph, node, args| {
            graph.source(node, make(read(args)?));
            Ok(())
        })
    }

    /// Registers stage `name`, made by `make` from the spec's `args` (once per worker).
    /// With several inputs it merges them; see [`zip_stage`](Self::zip_stage).
    pub fn stage<A, S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        A: DeserializeOwned,
        S: Stage,
        S::In: Clone,
        S::Out: Clone,
        F: Fn(A) -> StageNode<S> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        self.register::<A>(name, Role::Stage, move |graph, node, args| {
            let again = factory(&make, args)?;
            graph.stage(node, again);
            Ok(())
        })
    }

    /// Registers stage `name`, whose input is a tuple zipped from its inputs, in the order
    /// of the spec's edges (see [`GraphBuilder::zip_stage`]).
    pub fn zip_stage<A, S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        A: DeserializeOwned,
        S: Stage,
        S::In: Clone + ZipInput,
        S::Out: Clone,
        F: Fn(A) -> StageNode<S> + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        self.register::<A>(name, Role::Stage, move |graph, node, args| {
            let again = factory(&make, args)?;
            graph.zip_stage(node, again);
            Ok(())
        })
    }

    /// Registers sink `name`, made by `make` from the spec's `args`.
    pub fn sink<A, S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        A: DeserializeOwned,
        S: Sink,
        F: Fn(A) -> SinkNode<S> + Send + Sync + 'static,
    {
        self.register::<A>(name, Role::Sink, move |graph, node, args| {
            graph.sink(node, make(read(args)?));
            Ok(())
        })
    }

    /// Registers sink `name`, whose input is a tuple zipped from its inputs.
    pub fn zip_sink<A, S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        A: DeserializeOwned,
        S: Sink,
        S::In: ZipInput,
        F: Fn(A) -> SinkNode<S> + Send + Sync + 'static,
    {
        self.register::<A>(name, Role::Sink, move |graph, node, args| {
            graph.zip_sink(node, make(read(args)?));
            Ok(())
        })
    }

    /// Lets items of type `T` travel between processes, for specs that run split over
    /// them (see [`GraphBuilder::crossing`]).
    #[cfg(feature = "nats")]
    pub fn crossing<T>(&mut self) -> &mut Self
    where
        T: serde::Serialize + DeserializeOwned + Send + 'static,
    {
        self.crossings.add::<T>();
        self
    }

    /// The registered names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// What `name` makes: a source, a stage or a sink.
    pub fn role(&self, name: &str) -> Option<Role> {
        self.entries.get(name).map(|r| r.role)
    }

    fn register<A>(
        &mut self,
        name: impl Into<String>,
        role: Role,
        add: impl Fn(&mut GraphBuilder, &str, Option<&Value>) -> Result<(), String>
        + Send
        + Sync
        + 'static,
    ) -> &mut Self {
        // Registering a name again replaces it, as inserting into a map does: a plug-in
        // may override a default.
        self.entries.insert(
            name.into(),
            Registered {
                role,
                args: std::any::type_name::<A>(),
                add: Box::new(add),
            },
        );
        self
    }

    /// Adds node `node`, made by the constructor registered as `name` from `args`.
    pub(super) fn add(
        &self,
        graph: &mut GraphBuilder,
        name: &str,
        node: &str,
        args: Option<&Value>,
    ) -> Result<(), AddError> {
        let Some(registered) = self.entries.get(name) else {
            return Err(AddError::Unknown);
        };
        (registered.add)(graph, node, args).map_err(|why| AddError::Args {
            takes: registered.args,
            why,
        })
    }
}

/// Why a registered constructor could not add its node.
pub(super) enum AddError {
    /// Nothing is registered under the name.
    Unknown,
    /// The spec's arguments do not deserialize into the constructor's type.
    Args { takes: &'static str, why: String },
}

/// The constructor's arguments from the spec's. None written reads as `null` (for `()`
/// and `Option`s) or else as an empty table (for a struct whose fields all have defaults).
fn read<A: DeserializeOwned>(args: Option<&Value>) -> Result<A, String> {
    match args {
        Some(args) => A::deserialize(args).map_err(|e| e.to_string()),
        None => A::deserialize(&Value::Null).or_else(|_| {
            A::deserialize(&Value::Object(Default::default())).map_err(|e| e.to_string())
        }),
    }
}

/// A stage's maker for the graph builder, which calls it once per worker. The arguments
/// are read once here, to report a mistake; each later call reads the same value into the
/// same type, so it cannot fail.
fn factory<A, S, F>(
    make: &Arc<F>,
    args: Option<&Value>,
) -> Result<impl Fn() -> StageNode<S> + Send + 'static, String>
where
    A: DeserializeOwned,
    S: Stage,
    F: Fn(A) -> StageNode<S> + Send + Sync + 'static,
{
    read::<A>(args)?;
    let (make, args) = (make.clone(), args.cloned());
    Ok(move || make(read(args.as_ref()).expect("the same arguments were read before")))
}
