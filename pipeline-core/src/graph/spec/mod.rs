//! Graphs from spec files: the document serde reads, making its nodes with a registry,
//! and pointing each mistake at its line (see [`GraphSpec`]).

mod grammar;
mod locate;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use pipeline_lang::typo::nearest;
use serde::Deserialize;
use serde_json::Value;

use super::registry::{AddError, Registry};
use super::{GraphBuilder, GraphError, Place};
use crate::run::Pipeline;
use crate::spec::NodeConfig;
use grammar::NameAt;
use locate::Text;
pub use locate::{SpecError, SpecErrors};

/// The spec as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    edges: Vec<String>,
    #[serde(default)]
    nodes: BTreeMap<String, NodeEntry>,
    distributed: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    /// The registry's name for the node's constructor.
    #[serde(rename = "use")]
    uses: String,
    args: Option<Value>,
    #[serde(default)]
    options: Vec<String>,
}

/// A graph read from a spec, ready to be built with a [`Registry`].
///
/// A spec file (TOML or JSON), its nodes made by a [`Registry`], its edges
/// and options written as in `pipeline!`, checked as the macro checks its input:
///
/// ```toml
/// edges = ["inp => rev, out", "rev => out"]
///
/// [nodes.inp]
/// use = "uuids"
/// args = { count = 20 }
///
/// [nodes.rev]
/// use = "reverse"
/// options = ["workers(4)"]
///
/// [nodes.out]
/// use = "print_pairs"
/// ```
///
/// A loop edge is written as in the macro: `"loop links => frontier"`.
///
/// Reading the spec, making its nodes and checking the graph (through [`GraphBuilder`])
/// each report every mistake they find, with the spec's line and column.
///
/// ```
/// use pipeline::graph::{GraphSpec, Registry};
/// use pipeline::{Collected, source, stage};
///
/// let out = Collected::new();
/// let sink = out.clone();
/// let mut registry = Registry::new();
/// registry
///     .source("words", |_: ()| source::iter(["ab", "cd"].map(String::from)))
///     .stage("reverse", |_: ()| stage::map(|s: String| s.chars().rev().collect::<String>()))
///     .sink("collect", move |_: ()| sink.sink());
///
/// let spec = GraphSpec::from_toml(r#"
///     edges = ["inp => rev => out"]
///     nodes.inp.use = "words"
///     nodes.rev.use = "reverse"
///     nodes.out.use = "collect"
/// "#).unwrap();
/// spec.build(&registry).unwrap().run_blocking().unwrap();
/// let mut got: Vec<String> = out.take();
/// got.sort();
/// assert_eq!(got, ["ba", "dc"]);
/// ```
pub struct GraphSpec {
    text: String,
    file: Option<String>,
    document: Document,
}

impl std::fmt::Debug for GraphSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSpec")
            .field("file", &self.file)
            .field("edges", &self.document.edges)
            .field("nodes", &self.document.nodes.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl GraphSpec {
    /// Reads a spec written in TOML.
    pub fn from_toml(text: &str) -> Result<Self, SpecErrors> {
        Self::parse(text, None, Format::Toml)
    }

    /// Reads a spec written in JSON (the same keys as in TOML).
    pub fn from_json(text: &str) -> Result<Self, SpecErrors> {
        Self::parse(text, None, Format::Json)
    }

    /// Reads a spec from a file: JSON if its name ends in `.json`, TOML otherwise. Errors
    /// name the file.
    pub fn read(path: impl AsRef<Path>) -> Result<Self, SpecErrors> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| SpecErrors {
            file: Some(file.clone()),
            errors: vec![Text("").error(None, format!("cannot read it: {e}"))],
        })?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            _ => Format::Toml,
        };
        Self::parse(&text, Some(file), format)
    }

    fn parse(text: &str, file: Option<String>, format: Format) -> Result<Self, SpecErrors> {
        let located = Text(text);
        let document = match format {
            Format::Toml => toml::from_str::<Document>(text).map_err(|e| {
                let at = e.span().map(|span| span.start);
                located.error(at, first_line(e.message()))
            }),
            Format::Json => serde_json::from_str::<Document>(text).map_err(|e| {
                let at = (e.line() > 0).then(|| located.at_line(e.line(), e.column()));
                // serde_json adds " at line L column C", which the error's place says.
                let message = e.to_string();
                let message = message
                    .rsplit_once(" at line ")
                    .map_or(message.as_str(), |(m, _)| m)
                    .to_string();
                located.error(at, message)
            }),
        };
        match document {
            Ok(document) => Ok(GraphSpec {
                text: text.to_string(),
                file,
                document,
            }),
            Err(error) => Err(SpecErrors {
                file,
                errors: vec![error],
            }),
        }
    }

    /// Makes the spec's nodes with `registry`, connects them, and checks the graph as
    /// `pipeline!` would; returns the pipeline ready to run, or every mistake with its line.
    pub fn build(&self, registry: &Registry) -> Result<Pipeline, SpecErrors> {
        let text = Text(&self.text);
        let mut errors = Vec::new();
        let mut graph = GraphBuilder::new();
        if let Some(name) = &self.document.distributed {
            #[cfg(feature = "nats")]
            {
                graph.distributed(name.as_str());
                graph.crossings.extend(&registry.crossings);
            }
            #[cfg(not(feature = "nats"))]
            errors.push(text.error(
                text.string(name, None),
                "`distributed`: a graph split over processes needs the `nats` feature of `pipeline`",
            ));
        }
        let unmade = self.add_nodes(registry, &text, &mut graph, &mut errors);
        let edges = self.add_edges(&unmade, &text, &mut graph, &mut errors);
        if errors.is_empty() {
            match graph.build() {
                Ok(pipeline) => return Ok(pipeline),
                Err(found) => {
                    for error in found.0 {
                        errors.push(self.locate(&text, &edges, error));
                    }
                }
            }
        }
        errors.sort_by_key(|e| (e.line.is_none(), e.line, e.column));
        Err(SpecErrors {
            file: self.file.clone(),
            errors,
        })
    }

    /// Makes each node with the registry and sets its options; returns the nodes that
    /// could not be made (edges naming them are not mistakes of their own).
    fn add_nodes<'s>(
        &'s self,
        registry: &Registry,
        text: &Text<'_>,
        graph: &mut GraphBuilder,
        errors: &mut Vec<SpecError>,
    ) -> Vec<&'s str> {
        let mut unmade = Vec::new();
        for (node, entry) in &self.document.nodes {
            let made = match registry.add(graph, &entry.uses, node, entry.args.as_ref()) {
                Ok(()) => true,
                Err(AddError::Unknown) => {
                    let hint = match nearest(&entry.uses, registry.names()) {
                        Some(near) => format!("did you mean `{near}`?"),
                        None => format!(
                            "the registry has {}",
                            registry
                                .names()
                                .map(|n| format!("`{n}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    errors.push(text.error(
                        text.string(&entry.uses, text.node(node)),
                        format!(
                            "node `{node}` uses `{}`, which is not in the registry: {hint}",
                            entry.uses
                        ),
                    ));
                    false
                }
                Err(AddError::Args { takes, why }) => {
                    errors.push(text.error(
                        text.node_key(node, "args"),
                        format!(
                            "node `{node}`: `{}` takes arguments of type `{}`, and these do not fit: {why}",
                            entry.uses,
                            short(takes)
                        ),
                    ));
                    false
                }
            };
            let config = options(node, &entry.options, text, errors);
            if made {
                graph.configure(node.as_str(), config);
            } else {
                unmade.push(node.as_str());
            }
        }
        unmade
    }

    /// Adds the spec's edges; returns where each one is written, for errors about it.
    fn add_edges(
        &self,
        unmade: &[&str],
        text: &Text<'_>,
        graph: &mut GraphBuilder,
        errors: &mut Vec<SpecError>,
    ) -> HashMap<(String, String), Option<usize>> {
        let nodes = &self.document.nodes;
        let mut edges = HashMap::new();
        let mut from = None;
        for written in &self.document.edges {
            let at = text.string(written, from);
            from = at;
            let statements = match grammar::edges(written) {
                Ok(statements) => statements,
                Err(slip) => {
                    errors.push(text.error(at.map(|at| at + slip.at), slip.message));
                    continue;
                }
            };
            for statement in statements {
                for pair in statement.groups.windows(2) {
                    for (a, b) in pair[0]
                        .iter()
                        .flat_map(|a| pair[1].iter().map(move |b| (a, b)))
                    {
                        if let Some(missing) =
                            [a, b].into_iter().find(|n| !nodes.contains_key(&n.name))
                        {
                            errors.push(unknown_node(text, at, missing, a, b, nodes));
                            continue;
                        }
                        if unmade.contains(&a.name.as_str()) || unmade.contains(&b.name.as_str()) {
                            continue;
                        }
                        edges
                            .entry((a.name.clone(), b.name.clone()))
                            .or_insert(at.map(|at| at + b.at));
                        if statement.looping {
                            graph.loop_edge(a.name.as_str(), b.name.as_str());
                        } else {
                            graph.edge(a.name.as_str(), b.name.as_str());
                        }
                    }
                }
            }
        }
        edges
    }

    /// A mistake the graph builder found, pointed at the spec's line.
    fn locate(
        &self,
        text: &Text<'_>,
        edges: &HashMap<(String, String), Option<usize>>,
        error: GraphError,
    ) -> SpecError {
        let at = match &error.place {
            Place::Graph => None,
            Place::Node(node) => text.node(node),
            Place::Edge(from, to) => edges
                .get(&(from.clone(), to.clone()))
                .copied()
                .flatten()
                // A dead-letter edge is written as an option.
                .or_else(|| self.option_at(text, from, "dead_letter")),
            Place::Option(node, option) => self.option_at(text, node, option),
        };
        text.error(at, error.message)
    }

    /// Where option `option` is written on node `node`.
    fn option_at(&self, text: &Text<'_>, node: &str, option: &str) -> Option<usize> {
        let entry = self.document.nodes.get(node)?;
        // By the option's whole name: `retry` is not `retry_if(..)`.
        let named = |o: &&String| {
            o.split('(')
                .next()
                .is_some_and(|name| name.trim() == option)
        };
        entry
            .options
            .iter()
            .find(named)
            .and_then(|written| text.string(written, text.node(node)))
            .or_else(|| text.node_key(node, "options"))
    }
}

#[derive(Clone, Copy)]
enum Format {
    Toml,
    Json,
}

fn unknown_node(
    text: &Text<'_>,
    at: Option<usize>,
    missing: &NameAt,
    a: &NameAt,
    b: &NameAt,
    nodes: &BTreeMap<String, NodeEntry>,
) -> SpecError {
    let hint = match nearest(&missing.name, nodes.keys().map(String::as_str)) {
        Some(near) => format!(": did you mean `{near}`?"),
        None => format!(
            ": add a table `[nodes.{}]` with the node's `use`",
            missing.name
        ),
    };
    text.error(
        at.map(|at| at + missing.at),
        format!(
            "edge `{} => {}`: there is no node `{}`{hint}",
            a.name, b.name, missing.name
        ),
    )
}

/// Node `node`'s options, written as text; each mistake is pushed to `errors` and leaves
/// the option unset.
fn options(
    node: &str,
    written: &[String],
    text: &Text<'_>,
    errors: &mut Vec<SpecError>,
) -> NodeConfig {
    let mut config = NodeConfig::new();
    for option in written {
        let at = text.string(option, text.node(node));
        let parsed = grammar::option(option).map_err(|slip| {
            text.error(
                at.map(|at| at + slip.at),
                format!("node `{node}`: {}", slip.message),
            )
        });
        let set = parsed.and_then(|option| {
            config
                .clone()
                .set(option.name, &option.args)
                .map_err(|why| text.error(at, format!("node `{node}`: {why}")))
        });
        match set {
            Ok(set) => config = set,
            Err(error) => errors.push(error),
        }
    }
    config
}

/// The first line of a parser's message (TOML's repeats the line of the file below).
fn first_line(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// A Rust type as written, without module paths.
fn short(type_name: &str) -> String {
    super::entry::without_paths(type_name)
}
