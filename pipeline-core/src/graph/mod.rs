//! Graphs made at run time: nodes added by name, edges between names, checked when built.
//!
//! `pipeline!` checks a graph when the program compiles. A [`GraphBuilder`] takes the same
//! graph while the program runs (from a config file, flags, or a plug-in's registry), and
//! [`build`](GraphBuilder::build) checks it the same way: the structural checks are the
//! macro's own (the `pipeweave-lang` crate's `check` module, which both call), and the
//! types of an edge's two ends, which the macro leaves to the compiler, are compared here,
//! so that a mistake is an error value naming both nodes and both Rust types, never a panic.
//! Every mistake is reported at once, in [`GraphErrors`].
//!
//! A pipeline built here runs like one the macro built: batching, a stage running inside
//! the node that feeds it, workers, error policies, reports and metrics, and split over
//! processes (`GraphBuilder::distributed`, feature `nats`). What the macro
//! adds on top is fusion: it names a chain's stages to the compiler, which then runs a
//! whole chain of cheap maps in one loop per item; here each stage keeps its own loop.
//!
//! ```
//! use pipeline::graph::GraphBuilder;
//! use pipeline::{Collected, NodeConfig, source, stage};
//!
//! let out = Collected::new();
//! let mut graph = GraphBuilder::new();
//! graph
//!     .source("inp", source::iter(["ab".to_string(), "cd".to_string()]))
//!     .stage("rev", || stage::map(|s: String| s.chars().rev().collect::<String>()))
//!     .zip_sink("out", out.sink())
//!     .configure("rev", NodeConfig::new().workers(2))
//!     .edge("inp", "rev")
//!     .edge("inp", "out")
//!     .edge("rev", "out");
//! let report = graph.build().unwrap().run_blocking().unwrap();
//! assert!(report.accounting().is_balanced());
//! let mut pairs: Vec<(String, String)> = out.take();
//! pairs.sort();
//! assert_eq!(pairs, [("ab".into(), "ba".into()), ("cd".into(), "dc".into())]);
//! ```

mod crossing;
mod entry;
mod error;
#[cfg(feature = "spec")]
mod registry;
#[cfg(feature = "spec")]
mod spec;

use std::collections::HashMap;

use pipeline_lang::check::{self, Site, Structure};
use pipeline_lang::options::descriptor;
use pipeline_lang::typo::nearest;

use crate::name::intern;
use crate::node::{Sink, SinkNode, Source, SourceNode, Stage, StageNode};
use crate::run::{Builder, Pipeline};
use crate::spec::{FanIn, NodeConfig, Role};

pub use entry::ZipInput;
use entry::{Entry, Input, ItemType, Sender};
pub use error::{GraphError, GraphErrors, Place};
#[cfg(feature = "spec")]
pub use registry::Registry;
#[cfg(feature = "spec")]
pub use spec::{GraphSpec, SpecError, SpecErrors};

/// Nodes and edges by name, checked and wired by [`build`](Self::build). See the
/// [module documentation](self).
///
/// Items that leave a node must be `Clone` (a node may feed several others, each getting
/// a copy), and so must a stage's input (to try an item again, or keep it for a dead-letter
/// node): the builder cannot tell at run time which a graph will need. A stage is given
/// as the function that makes it, so that `workers(n)` can make `n` of them.
#[derive(Default)]
pub struct GraphBuilder {
    nodes: Vec<Entry>,
    /// `(from, to, loop edge)`.
    edges: Vec<(String, String, bool)>,
    configs: Vec<(String, NodeConfig)>,
    /// Mistakes found while adding (a name used twice).
    mistakes: Vec<GraphError>,
    /// The name the graph runs under, split over processes (`#![distributed]`).
    #[cfg(feature = "nats")]
    distributed: Option<&'static str>,
    /// The item types that may cross processes.
    #[cfg(feature = "nats")]
    crossings: crossing::Crossings,
}

impl std::fmt::Debug for GraphBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphBuilder")
            .field(
                "nodes",
                &self.nodes.iter().map(|n| &n.name).collect::<Vec<_>>(),
            )
            .field("edges", &self.edges)
            .finish_non_exhaustive()
    }
}

impl GraphBuilder {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds source `name`.
    pub fn source<S>(&mut self, name: impl Into<String>, node: SourceNode<S>) -> &mut Self
    where
        S: Source,
        S::Out: Clone,
    {
        self.add(Entry::source(name.into(), node))
    }

    /// Adds stage `name`, made by `make` (once per worker). With several inputs it merges
    /// them (`merge`); to zip them into a tuple, add it with [`zip_stage`](Self::zip_stage).
    pub fn stage<S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        S: Stage,
        S::In: Clone,
        S::Out: Clone,
        F: Fn() -> StageNode<S> + Send + 'static,
    {
        self.add(Entry::stage(name.into(), make, None))
    }

    /// Adds stage `name`, whose input is a tuple: with several inputs, it gets one item of
    /// each, with the same lineage, in the order its edges were added.
    pub fn zip_stage<S, F>(&mut self, name: impl Into<String>, make: F) -> &mut Self
    where
        S: Stage,
        S::In: Clone + ZipInput,
        S::Out: Clone,
        F: Fn() -> StageNode<S> + Send + 'static,
    {
        let zip = Some(entry::zip_opener::<S::In>());
        self.add(Entry::stage(name.into(), make, zip))
    }

    /// Adds sink `name`. With several inputs it merges them; see [`zip_sink`](Self::zip_sink).
    pub fn sink<S: Sink>(&mut self, name: impl Into<String>, node: SinkNode<S>) -> &mut Self {
        self.add(Entry::sink(name.into(), node, None))
    }

    /// Adds sink `name`, whose input is a tuple zipped from its inputs (see
    /// [`zip_stage`](Self::zip_stage)).
    pub fn zip_sink<S>(&mut self, name: impl Into<String>, node: SinkNode<S>) -> &mut Self
    where
        S: Sink,
        S::In: ZipInput,
    {
        let zip = Some(entry::zip_opener::<S::In>());
        self.add(Entry::sink(name.into(), node, zip))
    }

    /// Sets node `name`'s options (see [`NodeConfig`]), replacing any set before.
    pub fn configure(&mut self, name: impl Into<String>, config: NodeConfig) -> &mut Self {
        self.configs.push((name.into(), config));
        self
    }

    /// Adds an edge: `from`'s items go to `to`. A node's inputs are zipped in the order
    /// their edges are added.
    pub fn edge(&mut self, from: impl Into<String>, to: impl Into<String>) -> &mut Self {
        self.edges.push((from.into(), to.into(), false));
        self
    }

    /// Adds a loop edge: `from`'s items go back to `to`, which feeds `from` (directly or
    /// through other nodes), and enter the loop again there. `to` is the loop's entry: it
    /// interleaves what comes round with its other inputs, and its input ends once those
    /// have ended and nothing is left in the loop. See the book's "Loops".
    pub fn loop_edge(&mut self, from: impl Into<String>, to: impl Into<String>) -> &mut Self {
        self.edges.push((from.into(), to.into(), true));
        self
    }

    /// Runs the graph split over processes, as `#![distributed("name")]` does in
    /// `pipeline!` (see the `remote` module): each process runs the nodes its plan hosts,
    /// and an edge between two processes carries its items over NATS. Every item type sent
    /// on an edge must be registered with [`crossing`](Self::crossing).
    #[cfg(feature = "nats")]
    pub fn distributed(&mut self, name: impl Into<String>) -> &mut Self {
        self.distributed = Some(intern(&name.into()));
        self
    }

    /// Lets items of type `T` travel between processes (as MessagePack, with serde), on
    /// the edges of a [`distributed`](Self::distributed) graph.
    #[cfg(feature = "nats")]
    pub fn crossing<T>(&mut self) -> &mut Self
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.crossings.add::<T>();
        self
    }

    fn add(&mut self, entry: Entry) -> &mut Self {
        if self.nodes.iter().any(|n| n.name == entry.name) {
            self.mistakes.push(GraphError::new(
                Place::Node(entry.name.clone()),
                format!("node `{}` is added twice", entry.name),
            ));
        } else {
            self.nodes.push(entry);
        }
        self
    }

    /// Checks the graph and wires it into a pipeline ready to run, or says every mistake.
    pub fn build(mut self) -> Result<Pipeline, GraphErrors> {
        let mut errors = std::mem::take(&mut self.mistakes);
        for (name, config) in std::mem::take(&mut self.configs) {
            match self.nodes.iter_mut().find(|n| n.name == name) {
                Some(node) => node.config = config,
                None => errors.push(GraphError::new(
                    Place::Node(name.clone()),
                    format!(
                        "options for `{name}`, but there is no node `{name}`{}",
                        self.did_you_mean(&name)
                    ),
                )),
            }
        }
        #[cfg(feature = "nats")]
        let split = self
            .distributed
            .map(|name| (name, std::mem::take(&mut self.crossings)));
        let mut graph = self.resolve(&mut errors);
        if graph.edges.is_empty() && errors.is_empty() {
            errors.push(GraphError::new(
                Place::Graph,
                "this graph has no edges: add nodes and connect them with `edge(from, to)`",
            ));
        }
        if errors.is_empty() {
            graph.check_values(&mut errors);
            // An edge into a source or out of a sink is one mistake: the other checks do
            // not see it, or they would report it again as a cycle or a misplaced option.
            let refused = graph.check_roles(&mut errors);
            graph.forget(&refused);
            for problem in check::check(&graph) {
                errors.push(GraphError::new(graph.place(problem.site), problem.message));
            }
            graph.check_types(&mut errors);
            #[cfg(feature = "nats")]
            if let Some((_, crossings)) = &split {
                graph.check_crossings(crossings, &mut errors);
            }
        }
        if !errors.is_empty() {
            return Err(GraphErrors(errors));
        }
        #[cfg(feature = "nats")]
        if let Some((name, crossings)) = split {
            return Ok(graph.wire(Builder::distributed(name), Some(&crossings)));
        }
        Ok(graph.wire(Builder::new(), None))
    }

    fn did_you_mean(&self, name: &str) -> String {
        match nearest(name, self.nodes.iter().map(|n| n.name.as_str())) {
            Some(near) => format!(": did you mean `{near}`?"),
            None => String::new(),
        }
    }

    /// The graph with its edges between node numbers; edges naming no node are mistakes.
    fn resolve(self, errors: &mut Vec<GraphError>) -> Graph {
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(n, node)| (node.name.as_str(), n))
            .collect();
        let mut edges: Vec<GraphEdge> = Vec::new();
        for (from, to, looping) in &self.edges {
            let (a, b) = (index.get(from.as_str()), index.get(to.as_str()));
            for (name, found) in [(from, a), (to, b)] {
                if found.is_none() {
                    errors.push(GraphError::new(
                        Place::Edge(from.clone(), to.clone()),
                        format!(
                            "edge `{from} => {to}`: there is no node `{name}`{}",
                            self.did_you_mean(name)
                        ),
                    ));
                }
            }
            let (Some(&a), Some(&b)) = (a, b) else {
                continue;
            };
            if edges
                .iter()
                .any(|e| e.from == a && e.to == b && !e.dead_letter)
            {
                errors.push(GraphError::new(
                    Place::Edge(from.clone(), to.clone()),
                    format!("edge `{from} => {to}` is added twice; remove one"),
                ));
                continue;
            }
            edges.push(GraphEdge {
                from: a,
                to: b,
                dead_letter: false,
                looping: *looping,
            });
        }
        // A stage's failed items travel on an edge of their own, after the others (as in
        // the macro): the dead-letter node's inputs list it last.
        for (from, node) in self.nodes.iter().enumerate() {
            let Some(target) = &node.config.dead_letter else {
                continue;
            };
            if let Some(&to) = index.get(target.as_str()).filter(|&&to| to != from) {
                edges.push(GraphEdge {
                    from,
                    to,
                    dead_letter: true,
                    looping: false,
                });
            }
        }
        let mut inputs = vec![Vec::new(); self.nodes.len()];
        let mut outputs = vec![Vec::new(); self.nodes.len()];
        let mut dead_letters = vec![None; self.nodes.len()];
        for (e, edge) in edges.iter().enumerate() {
            inputs[edge.to].push(e);
            if edge.dead_letter {
                dead_letters[edge.from] = Some(e);
            } else {
                outputs[edge.from].push(e);
            }
        }
        Graph {
            nodes: self.nodes,
            edges,
            inputs,
            outputs,
            dead_letters,
        }
    }
}

struct GraphEdge {
    from: usize,
    to: usize,
    dead_letter: bool,
    looping: bool,
}

/// The graph being checked and wired, its edges by node number.
struct Graph {
    nodes: Vec<Entry>,
    edges: Vec<GraphEdge>,
    inputs: Vec<Vec<usize>>,
    outputs: Vec<Vec<usize>>,
    dead_letters: Vec<Option<usize>>,
}

impl Structure for Graph {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn name(&self, n: usize) -> &str {
        &self.nodes[n].name
    }
    fn inputs(&self, n: usize) -> &[usize] {
        &self.inputs[n]
    }
    fn outputs(&self, n: usize) -> &[usize] {
        &self.outputs[n]
    }
    fn dead_letter(&self, n: usize) -> Option<usize> {
        self.dead_letters[n]
    }
    fn target(&self, e: usize) -> usize {
        self.edges[e].to
    }
    fn looping(&self, e: usize) -> bool {
        self.edges[e].looping
    }
    fn options(&self, n: usize) -> Vec<&'static str> {
        self.nodes[n].config.options_set()
    }
    fn dead_letter_target(&self, n: usize) -> Option<String> {
        self.nodes[n].config.dead_letter.clone()
    }
    fn after(&self, n: usize) -> Vec<String> {
        self.nodes[n].config.after.clone()
    }
    /// What it was added as: checks of where an option fits say so, even when its
    /// edges are wrong too.
    fn role(&self, n: usize) -> Role {
        self.nodes[n].role
    }
}

impl Graph {
    fn place(&self, site: Site) -> Place {
        let name = |n: usize| self.nodes[n].name.clone();
        match site {
            Site::Node(n) => Place::Node(name(n)),
            Site::Edge(e) => Place::Edge(name(self.edges[e].from), name(self.edges[e].to)),
            Site::Option(n, option) => Place::Option(name(n), option),
            Site::After(n, _) => Place::Option(name(n), "after"),
            Site::DeadLetter(n) => Place::Option(name(n), "dead_letter"),
        }
    }

    fn edge_name(&self, e: usize) -> String {
        let edge = &self.edges[e];
        format!(
            "{} => {}",
            self.nodes[edge.from].name, self.nodes[edge.to].name
        )
    }

    /// Option values the macro refuses as literals (`workers(0)`, `capacity(0)`).
    fn check_values(&self, errors: &mut Vec<GraphError>) {
        for node in &self.nodes {
            for (option, zero) in [
                ("workers", node.config.workers == Some(0)),
                ("capacity", node.config.capacity == Some(0)),
            ] {
                if let Some(why) = descriptor(option)
                    .and_then(|d| d.refuses_zero)
                    .filter(|_| zero)
                {
                    errors.push(GraphError::new(
                        Place::Option(node.name.clone(), option),
                        format!("`{}`: {why}", node.name),
                    ));
                }
            }
        }
    }

    /// Leaves edges out of the graph the checks see.
    fn forget(&mut self, edges: &[usize]) {
        for list in self.inputs.iter_mut().chain(&mut self.outputs) {
            list.retain(|e| !edges.contains(e));
        }
        for dead_letter in &mut self.dead_letters {
            if dead_letter.is_some_and(|e| edges.contains(&e)) {
                *dead_letter = None;
            }
        }
    }

    /// A node's edges must fit what it was added as: nothing flows into a source or out of
    /// a sink, and a stage has both. Returns the edges refused.
    fn check_roles(&self, errors: &mut Vec<GraphError>) -> Vec<usize> {
        let mut refused = Vec::new();
        for (n, node) in self.nodes.iter().enumerate() {
            let name = &node.name;
            let place = Place::Node(name.clone());
            match node.role {
                Role::Source => {
                    for &e in &self.inputs[n] {
                        if refused.contains(&e) {
                            continue;
                        }
                        refused.push(e);
                        errors.push(GraphError::new(
                            Place::Edge(self.nodes[self.edges[e].from].name.clone(), name.clone()),
                            format!("edge `{}`: `{name}` is a source, which takes no input", self.edge_name(e)),
                        ));
                    }
                }
                Role::Sink => {
                    for &e in self.outputs[n].iter().chain(&self.dead_letters[n]) {
                        // A sink feeding a source: one mistake, said once.
                        if refused.contains(&e) {
                            continue;
                        }
                        refused.push(e);
                        errors.push(GraphError::new(
                            Place::Edge(name.clone(), self.nodes[self.edges[e].to].name.clone()),
                            format!("edge `{}`: `{name}` is a sink, which sends nothing on", self.edge_name(e)),
                        ));
                    }
                }
                Role::Stage if self.inputs[n].is_empty() => errors.push(GraphError::new(
                    place,
                    format!("stage `{name}` has no input: add an edge into it"),
                )),
                Role::Stage if self.outputs[n].is_empty() => errors.push(GraphError::new(
                    place,
                    format!("stage `{name}` sends its items nowhere: add an edge out of it, or end the graph with a sink"),
                )),
                Role::Stage => {}
            }
        }
        refused
    }

    /// What each edge carries fits what its target takes, in the place of the target's
    /// input it feeds.
    fn check_types(&self, errors: &mut Vec<GraphError>) {
        for (n, node) in self.nodes.iter().enumerate() {
            let Some(input) = &node.input else {
                continue;
            };
            let inputs = &self.inputs[n];
            let name = &node.name;
            let fan_in = self.fan_in(n);
            let parts = match (fan_in, input) {
                (FanIn::Zip, Input::Tuple { parts, .. }) if parts.len() == inputs.len() => {
                    Some(parts)
                }
                (FanIn::Zip, _) => {
                    let hint = match input {
                        Input::One(_) => format!("add it with `zip_{}` to zip its inputs into a tuple, or mark it `merge`", node.role),
                        Input::Tuple { .. } => "give it one input per item of its tuple, in the tuple's order, or mark it `merge`".to_string(),
                    };
                    errors.push(GraphError::new(
                        Place::Node(name.clone()),
                        format!(
                            "`{name}` has {} inputs, so it takes a tuple of {} items, one per input in the order its edges are added, but it takes `{}`: {hint}",
                            inputs.len(),
                            inputs.len(),
                            input.whole()
                        ),
                    ));
                    continue;
                }
                _ => None,
            };
            if let Some(parts) = parts
                && let Some(error) = self.swapped_zip(n, input, parts)
            {
                errors.push(error);
                continue;
            }
            for (slot, &e) in inputs.iter().enumerate() {
                let edge = &self.edges[e];
                let from = &self.nodes[edge.from];
                let sent = if edge.dead_letter {
                    from.failed
                } else {
                    from.output
                };
                let Some(sent) = sent else {
                    continue;
                };
                let expected = match parts {
                    Some(parts) => parts[slot],
                    None => input.whole(),
                };
                if sent.id == expected.id {
                    continue;
                }
                let (from_name, place) = (&from.name, Place::Edge(from.name.clone(), name.clone()));
                let message = if edge.dead_letter {
                    format!(
                        "`dead_letter({name})` on `{from_name}`: `{name}` takes `{}`, but `{from_name}`'s failed items are `{}`",
                        expected, sent
                    )
                } else if parts.is_some() {
                    format!(
                        "edge `{from_name} => {name}`: `{name}` receives `{}`, one item per input in the order its edges are added, and `{from_name}` sends `{}` where that tuple has `{}`",
                        input.whole(),
                        sent,
                        expected
                    )
                } else {
                    format!(
                        "edge `{from_name} => {name}`: `{from_name}` sends `{}` but `{name}` expects `{}`",
                        sent, expected
                    )
                };
                errors.push(GraphError::new(place, message));
            }
        }
    }

    /// A zip whose inputs send the tuple's types in another order: one mistake (the order
    /// of its edges), said once, with the order that fits.
    fn swapped_zip(&self, n: usize, input: &Input, parts: &[ItemType]) -> Option<GraphError> {
        let sent: Vec<(usize, ItemType)> = self.inputs[n]
            .iter()
            .map(|&e| {
                let (edge, from) = (&self.edges[e], &self.nodes[self.edges[e].from]);
                let sent = if edge.dead_letter {
                    from.failed
                } else {
                    from.output
                };
                sent.map(|sent| (e, sent))
            })
            .collect::<Option<_>>()?;
        if sent.iter().zip(parts).all(|((_, s), p)| s.id == p.id) {
            return None;
        }
        // Each place of the tuple takes the first unused edge that sends its type.
        let mut unused: Vec<Option<&(usize, ItemType)>> = sent.iter().map(Some).collect();
        let mut order = Vec::new();
        for part in parts {
            let slot = unused
                .iter()
                .position(|s| s.is_some_and(|(_, sent)| sent.id == part.id))?;
            let (e, _) = unused[slot].take().expect("found above");
            order.push(format!("`{}`", self.edge_name(*e)));
        }
        let name = &self.nodes[n].name;
        let sends: Vec<String> = sent.iter().map(|(_, s)| s.to_string()).collect();
        Some(GraphError::new(
            Place::Node(name.clone()),
            format!(
                "`{name}` receives `{}`, one item per input in the order its edges are added, but its edges send `({})` in that order: add them in the tuple's order, {}",
                input.whole(),
                sends.join(", "),
                order.join(" then ")
            ),
        ))
    }

    /// Every edge of a distributed graph may cross processes: its items must be able to.
    #[cfg(feature = "nats")]
    fn check_crossings(&self, crossings: &crossing::Crossings, errors: &mut Vec<GraphError>) {
        for (e, edge) in self.edges.iter().enumerate() {
            // A stage's failed items stay in its process, as in `pipeline!`.
            if edge.dead_letter {
                continue;
            }
            let Some(sent) = self.nodes[edge.from].output else {
                continue;
            };
            if crossings.of(sent).is_none() {
                let (from, to) = (&self.nodes[edge.from].name, &self.nodes[edge.to].name);
                errors.push(GraphError::new(
                    Place::Edge(from.clone(), to.clone()),
                    format!(
                        "edge `{}` may cross processes, so its items travel as bytes, and `{sent}` is not registered to: add `crossing::<{sent}>()` (the type must implement serde's `Serialize` and `Deserialize`)",
                        self.edge_name(e)
                    ),
                ));
            }
        }
    }

    /// Makes the edges and hands the nodes to the runtime's `builder`; in a distributed
    /// graph, each edge goes through the bridge of its item type.
    fn wire(mut self, mut builder: Builder, crossings: Option<&crossing::Crossings>) -> Pipeline {
        // Each node's input senders, one per input edge, in the order of its inputs.
        let mut senders: Vec<Vec<Option<Sender>>> = Vec::with_capacity(self.nodes.len());
        let fan_ins: Vec<FanIn> = (0..self.nodes.len()).map(|n| self.fan_in(n)).collect();
        for (n, node) in self.nodes.iter_mut().enumerate() {
            let looping: Vec<bool> = self.inputs[n]
                .iter()
                .map(|&e| self.edges[e].looping)
                .collect();
            let opened = if looping.is_empty() {
                Vec::new()
            } else {
                node.open_inputs(fan_ins[n], &looping)
            };
            senders.push(opened.into_iter().map(Some).collect());
        }
        let mut take = |e: usize| {
            let to = self.edges[e].to;
            let slot = self.inputs[to]
                .iter()
                .position(|&i| i == e)
                .expect("an edge is among its target's inputs");
            senders[to][slot]
                .take()
                .expect("each edge's sender is taken once")
        };
        for n in 0..self.nodes.len() {
            let outputs: Vec<Sender> = self.outputs[n]
                .iter()
                .map(|&e| {
                    let sender = take(e);
                    if let Some(crossings) = crossings {
                        let edge = &self.edges[e];
                        let across = self.nodes[n]
                            .output
                            .and_then(|sent| crossings.of(sent))
                            .expect("the checks found a crossing for every edge");
                        let (from, to) = (&self.nodes[edge.from].name, &self.nodes[edge.to].name);
                        return across(&mut builder, intern(from), intern(to), sender);
                    }
                    sender
                })
                .collect();
            if !outputs.is_empty() {
                self.nodes[n].connect_outputs(outputs);
            }
            if let Some(e) = self.dead_letters[n] {
                self.nodes[n].connect_dead_letter(take(e));
            }
        }
        for edge in &self.edges {
            let (from, to) = (
                intern(&self.nodes[edge.from].name),
                intern(&self.nodes[edge.to].name),
            );
            if edge.dead_letter {
                builder.dead_letter_edge(from, to);
            } else {
                builder.edge(from, to);
            }
        }
        for node in self.nodes {
            node.add_to(&mut builder);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests;
