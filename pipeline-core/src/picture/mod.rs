//! Pictures of a pipeline: Mermaid (rendered by GitHub and mdBook) and Graphviz DOT.
//!
//! The declared graph comes from the built [`Pipeline`](crate::Pipeline), before any run;
//! a finished run's picture from its [`RunReport`](crate::RunReport), each node labelled
//! with its counts and the bottleneck highlighted. Sources are rounded, sinks cylinders;
//! edges into a zip say which tuple position they fill; dead-letter edges are dashed.

use std::fmt::Write;

use crate::report::RunReport;
use crate::spec::{FanIn, Role};

#[cfg(feature = "html")]
pub(crate) mod svg;

/// One node as drawn.
pub(crate) struct Drawn {
    pub name: String,
    pub role: Role,
    pub fan_in: FanIn,
    /// Lines under the name (counts, after a run).
    pub details: Vec<String>,
    pub highlighted: bool,
    /// Its utilisation, after a run; colours its box in the SVG picture.
    #[cfg_attr(not(feature = "html"), allow(dead_code))]
    pub utilisation: Option<f64>,
}

/// What a picture shows.
pub(crate) struct Drawing<'a> {
    pub nodes: Vec<Drawn>,
    pub edges: Vec<(&'a str, &'a str)>,
    pub dead_letter_edges: Vec<(&'a str, &'a str)>,
}

impl Drawing<'_> {
    fn index(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or(0)
    }

    /// The label of edge `i` of `edges`: its tuple position when it feeds a zip.
    fn edge_label(&self, i: usize) -> Option<String> {
        let (_, to) = self.edges[i];
        let target = &self.nodes[self.index(to)];
        if target.fan_in != FanIn::Zip {
            return None;
        }
        let position = self.edges[..i].iter().filter(|(_, t)| *t == to).count();
        Some(format!(".{position}"))
    }

    pub(crate) fn mermaid(&self) -> String {
        let mut out = String::from("flowchart LR\n");
        for (i, node) in self.nodes.iter().enumerate() {
            let label = std::iter::once(node.name.clone())
                .chain(node.details.iter().cloned())
                .collect::<Vec<_>>()
                .join("<br/>");
            // Ids are positions, so node names can never clash with Mermaid keywords.
            let _ = match node.role {
                Role::Source => writeln!(out, "    n{i}([\"{label}\"])"),
                Role::Stage => writeln!(out, "    n{i}[\"{label}\"]"),
                Role::Sink => writeln!(out, "    n{i}[(\"{label}\")]"),
            };
        }
        for (i, (from, to)) in self.edges.iter().enumerate() {
            let (a, b) = (self.index(from), self.index(to));
            let _ = match self.edge_label(i) {
                Some(label) => writeln!(out, "    n{a} -->|{label}| n{b}"),
                None => writeln!(out, "    n{a} --> n{b}"),
            };
        }
        for (from, to) in &self.dead_letter_edges {
            let _ = writeln!(
                out,
                "    n{} -.->|failed| n{}",
                self.index(from),
                self.index(to)
            );
        }
        for (i, node) in self.nodes.iter().enumerate() {
            if node.highlighted {
                let _ = writeln!(
                    out,
                    "    style n{i} fill:#fde2e2,stroke:#d33,stroke-width:3px"
                );
            }
        }
        out
    }

    pub(crate) fn dot(&self) -> String {
        let mut out = String::from(
            "digraph pipeline {\n    rankdir=LR;\n    node [fontname=\"Helvetica\"];\n",
        );
        for node in &self.nodes {
            let shape = match node.role {
                Role::Source => "ellipse",
                Role::Stage => "box",
                Role::Sink => "cylinder",
            };
            let label = std::iter::once(node.name.clone())
                .chain(node.details.iter().cloned())
                .collect::<Vec<_>>()
                .join("\\n");
            let highlight = if node.highlighted {
                ", color=\"#dd3333\", penwidth=3"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "    \"{}\" [shape={shape}, label=\"{label}\"{highlight}];",
                node.name
            );
        }
        for (i, (from, to)) in self.edges.iter().enumerate() {
            let _ = match self.edge_label(i) {
                Some(label) => writeln!(out, "    \"{from}\" -> \"{to}\" [label=\"{label}\"];"),
                None => writeln!(out, "    \"{from}\" -> \"{to}\";"),
            };
        }
        for (from, to) in &self.dead_letter_edges {
            let _ = writeln!(
                out,
                "    \"{from}\" -> \"{to}\" [style=dashed, label=\"failed\"];"
            );
        }
        out.push_str("}\n");
        out
    }
}

impl RunReport {
    /// The run's graph as a Mermaid flowchart: counts on every node, the bottleneck
    /// highlighted.
    pub fn mermaid(&self) -> String {
        self.drawing().mermaid()
    }

    /// The run's graph in Graphviz DOT, annotated like [`mermaid`](Self::mermaid).
    pub fn dot(&self) -> String {
        self.drawing().dot()
    }

    pub(crate) fn drawing<'a>(&'a self) -> Drawing<'a> {
        let bottleneck = self.verdict().map(|v| v.bottleneck);
        let nodes = self
            .nodes
            .iter()
            .map(|n| {
                let mut details = Vec::new();
                match n.role {
                    Role::Source => details.push(format!("{} out", n.emitted)),
                    Role::Stage => details.push(format!("{} in, {} out", n.received, n.emitted)),
                    Role::Sink => details.push(format!("{} in", n.received)),
                }
                let lost = [
                    (n.filtered, "filtered"),
                    (n.absorbed, "absorbed"),
                    (n.failed, "failed"),
                    (n.dropped_partial_tuples, "partial"),
                ];
                let lost: Vec<String> = lost
                    .iter()
                    .filter(|(c, _)| *c > 0)
                    .map(|(c, what)| format!("{c} {what}"))
                    .collect();
                if !lost.is_empty() {
                    details.push(lost.join(", "));
                }
                if n.workers > 1 {
                    details.push(format!("{} workers", n.workers));
                }
                let highlighted = bottleneck.as_deref() == Some(n.name.as_str());
                if highlighted {
                    details.push(format!(
                        "bottleneck, busy {:.0}%",
                        n.utilisation(self.elapsed) * 100.0
                    ));
                }
                Drawn {
                    name: n.name.clone(),
                    role: n.role,
                    fan_in: n.fan_in,
                    details,
                    highlighted,
                    utilisation: Some(n.utilisation(self.elapsed)),
                }
            })
            .collect();
        let borrowed = |edges: &'a [(String, String)]| {
            edges
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect()
        };
        Drawing {
            nodes,
            edges: borrowed(&self.edges),
            dead_letter_edges: borrowed(&self.dead_letter_edges),
        }
    }
}
