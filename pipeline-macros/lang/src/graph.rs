//! The graph a `pipeline!` describes, and its structural checks.
//!
//! Plain data over identifiers and spans: unit-tested here without expanding anything.
//! Checks that need types (roles, item types, `Clone` for fan-out) are left to the
//! generated code, which points them at the same identifiers.

use std::collections::{BTreeMap, HashMap};

use proc_macro2::Span;
use syn::{Expr, Ident};

use crate::ast::{PipelineInput, Statement};
use crate::check::{self, Site, Structure};
use crate::errors::Errors;
use crate::options::Options;
pub use crate::role::{FanIn, Role};
use crate::typo::{edit_distance, looks_like_typo};
use crate::written;

pub struct Graph {
    /// `#![distributed("name")]`: the pipeline's name on the wire.
    pub distributed: Option<syn::LitStr>,
    /// In order of first appearance in the macro text.
    pub nodes: Vec<Node>,
    /// In the order written; a node's zip tuple follows this order.
    pub edges: Vec<Edge>,
}

pub struct Node {
    pub name: String,
    /// Where the node is bound, or first mentioned if it is a local variable.
    pub ident: Ident,
    pub expr: Option<Expr>,
    /// Declared with `name;` or `name[opts];`: a local variable on purpose.
    pub declared: bool,
    pub options: Options,
    pub inputs: Vec<usize>,
    pub outputs: Vec<usize>,
    /// The edge carrying this stage's failed items (`dead_letter(..)`), apart from `outputs`.
    pub dead_letter: Option<usize>,
}

pub struct Edge {
    pub from: usize,
    pub to: usize,
    /// A loop edge (`loop a => b`): it goes back round a loop.
    pub looping: bool,
    /// The two mentions in the edge statement, for errors about this edge.
    pub from_ident: Ident,
    pub to_ident: Ident,
}

impl Node {
    pub fn role(&self) -> Role {
        Role::of(self.inputs.len(), self.outputs.len())
    }
}

impl Graph {
    /// Builds the graph and checks it. `Err` holds every problem found.
    pub fn build(input: PipelineInput, call_site: Span) -> Result<Graph, syn::Error> {
        let mut errors = Errors::default();
        let mut graph = Graph {
            distributed: input.distributed.clone(),
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut bound_at: HashMap<String, Span> = HashMap::new();
        let mut edge_at: HashMap<(usize, usize), Span> = HashMap::new();

        let mut node_of = |graph: &mut Graph, ident: &Ident| -> usize {
            let name = node_name(ident);
            *index.entry(name.clone()).or_insert_with(|| {
                graph.nodes.push(Node {
                    name,
                    ident: ident.clone(),
                    expr: None,
                    declared: false,
                    options: Options::default(),
                    inputs: Vec::new(),
                    outputs: Vec::new(),
                    dead_letter: None,
                });
                graph.nodes.len() - 1
            })
        };

        for statement in input.statements {
            match statement {
                Statement::Bind(binding) => {
                    let name = node_name(&binding.name);
                    if let Some(first) = bound_at.get(&name) {
                        errors.push(binding.name.span(), format!("node `{name}` is bound twice"));
                        errors.push(*first, format!("`{name}` is first bound here"));
                        continue;
                    }
                    bound_at.insert(name, binding.name.span());
                    let n = node_of(&mut graph, &binding.name);
                    let node = &mut graph.nodes[n];
                    // Errors should point at the binding, wherever the node was first named.
                    node.ident = binding.name;
                    node.expr = Some(binding.expr);
                    written::apply(&node.name, &mut node.options, binding.options, &mut errors);
                }
                Statement::Declare(declaration) => {
                    let n = node_of(&mut graph, &declaration.name);
                    graph.nodes[n].declared = true;
                    let node = &mut graph.nodes[n];
                    written::apply(
                        &node.name,
                        &mut node.options,
                        declaration.options,
                        &mut errors,
                    );
                }
                Statement::Edges(chain) => {
                    for pair in chain.groups.windows(2) {
                        for from_ident in &pair[0] {
                            for to_ident in &pair[1] {
                                let from = node_of(&mut graph, from_ident);
                                let to = node_of(&mut graph, to_ident);
                                if let Some(first) = edge_at.get(&(from, to)) {
                                    let (a, b) = (&graph.nodes[from].name, &graph.nodes[to].name);
                                    errors.push(
                                        to_ident.span(),
                                        format!("edge `{a} => {b}` is written twice; remove one"),
                                    );
                                    errors.push(
                                        *first,
                                        format!("`{a} => {b}` is first written here"),
                                    );
                                    continue;
                                }
                                edge_at.insert((from, to), to_ident.span());
                                let e = graph.edges.len();
                                graph.edges.push(Edge {
                                    from,
                                    to,
                                    looping: chain.looping,
                                    from_ident: from_ident.clone(),
                                    to_ident: to_ident.clone(),
                                });
                                graph.nodes[from].outputs.push(e);
                                graph.nodes[to].inputs.push(e);
                            }
                        }
                    }
                }
            }
        }

        graph.add_dead_letter_edges();
        if graph.edges.is_empty() {
            errors.push(
                call_site,
                "this pipeline has no edges: bind nodes and connect them, e.g. `src = source::iter(0..10); out = sink::for_each(|n: i32| println!(\"{n}\")); src => out;`",
            );
            return errors.into_result().map(|()| graph);
        }
        graph.check_typos(&mut errors);
        for problem in check::check(&graph) {
            errors.push(graph.span(problem.site), problem.message);
        }
        errors.into_result().map(|()| graph)
    }

    /// Where in the user's input a problem the shared checks found is.
    fn span(&self, site: Site) -> Span {
        match site {
            Site::Node(n) => self.nodes[n].ident.span(),
            Site::Edge(e) => self.edges[e].to_ident.span(),
            Site::Option(n, name) => self.nodes[n]
                .options
                .written
                .get(name)
                .map_or_else(|| self.nodes[n].ident.span(), |w| w.span),
            Site::After(n, i) => self.nodes[n].options.nodes("after")[i].span(),
            Site::DeadLetter(n) => match self.nodes[n].options.nodes("dead_letter").first() {
                Some(target) => target.span(),
                None => self.nodes[n].ident.span(),
            },
        }
    }

    /// `dead_letter(target)` adds an edge that carries the stage's failed items to `target`
    /// (when there is such a node, and it is another one: the checks say so otherwise).
    fn add_dead_letter_edges(&mut self) {
        for from in 0..self.nodes.len() {
            let options = &self.nodes[from].options;
            let (Some(target), Some(span)) = (
                options.nodes("dead_letter").first().cloned(),
                options.span("dead_letter"),
            ) else {
                continue;
            };
            let target_name = node_name(&target);
            let Some(to) = self.nodes.iter().position(|n| n.name == target_name) else {
                continue;
            };
            if to == from {
                continue;
            }
            let e = self.edges.len();
            let mut from_ident = self.nodes[from].ident.clone();
            from_ident.set_span(span);
            self.edges.push(Edge {
                from,
                to,
                looping: false,
                from_ident,
                to_ident: target,
            });
            self.nodes[from].dead_letter = Some(e);
            self.nodes[to].inputs.push(e);
        }
    }

    /// A name neither bound here nor declared is taken for a local variable, unless it is
    /// an edit or two away from a node bound here: then it is most likely a typo.
    fn check_typos(&self, errors: &mut Errors) {
        for node in self
            .nodes
            .iter()
            .filter(|n| n.expr.is_none() && !n.declared)
        {
            if let Some(near) = self.nearest(&node.name) {
                errors.push(
                    node.ident.span(),
                    format!(
                        "node `{}` is never bound: did you mean `{near}`? (if `{}` is a local variable, declare it with `{};`)",
                        node.name, node.name, node.name
                    ),
                );
            }
        }
    }

    /// The bound node whose name `name` most likely misspells, if one is near enough.
    fn nearest(&self, name: &str) -> Option<&str> {
        self.nodes
            .iter()
            .filter(|other| other.expr.is_some() && looks_like_typo(name, &other.name))
            .min_by_key(|other| edit_distance(name, &other.name))
            .map(|other| other.name.as_str())
    }

    /// Nodes a typo error already names as what was meant: that they look unconnected is
    /// the same mistake, and fixing the typo fixes both.
    fn meant_by_typos(&self) -> Vec<&str> {
        let unbound = self
            .nodes
            .iter()
            .filter(|n| n.expr.is_none() && !n.declared)
            .map(|n| n.name.clone());
        let dead_letters = self
            .nodes
            .iter()
            .filter_map(|n| n.options.nodes("dead_letter").first())
            .map(node_name)
            .filter(|target| !self.nodes.iter().any(|n| &n.name == target));
        unbound
            .chain(dead_letters)
            .filter_map(|name| self.nearest(&name))
            .collect()
    }

    /// Nodes by name, for tests and lookups.
    #[allow(dead_code)]
    pub fn by_name(&self) -> BTreeMap<&str, &Node> {
        self.nodes.iter().map(|n| (n.name.as_str(), n)).collect()
    }
}

impl Structure for Graph {
    fn node_count(&self) -> usize {
        self.nodes.len()
    }
    fn name(&self, n: usize) -> &str {
        &self.nodes[n].name
    }
    fn inputs(&self, n: usize) -> &[usize] {
        &self.nodes[n].inputs
    }
    fn outputs(&self, n: usize) -> &[usize] {
        &self.nodes[n].outputs
    }
    fn dead_letter(&self, n: usize) -> Option<usize> {
        self.nodes[n].dead_letter
    }
    fn target(&self, e: usize) -> usize {
        self.edges[e].to
    }
    fn looping(&self, e: usize) -> bool {
        self.edges[e].looping
    }
    fn options(&self, n: usize) -> Vec<&'static str> {
        self.nodes[n].options.written.keys().copied().collect()
    }
    fn dead_letter_target(&self, n: usize) -> Option<String> {
        self.nodes[n]
            .options
            .nodes("dead_letter")
            .first()
            .map(node_name)
    }
    fn after(&self, n: usize) -> Vec<String> {
        self.nodes[n]
            .options
            .nodes("after")
            .iter()
            .map(node_name)
            .collect()
    }
    fn excused(&self, n: usize) -> bool {
        self.meant_by_typos().contains(&self.nodes[n].name.as_str())
    }
}

fn node_name(ident: &Ident) -> String {
    let name = ident.to_string();
    name.strip_prefix("r#").map(str::to_string).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn build(tokens: proc_macro2::TokenStream) -> Result<Graph, Vec<String>> {
        let input: PipelineInput = syn::parse2(tokens).expect("parses");
        Graph::build(input, Span::call_site())
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
    }

    fn errors_of(tokens: proc_macro2::TokenStream) -> Vec<String> {
        match build(tokens) {
            Ok(_) => panic!("expected errors"),
            Err(errors) => errors,
        }
    }

    #[test]
    fn the_seed_graph_has_roles_and_zip_order() {
        let g = build(quote!(inp = a; rev = b; out = c; inp => rev, out; rev => out)).unwrap();
        let nodes = g.by_name();
        assert_eq!(nodes["inp"].role(), Role::Source);
        assert_eq!(nodes["rev"].role(), Role::Stage);
        assert_eq!(nodes["out"].role(), Role::Sink);
        assert_eq!(g.fan_in(g.find("out").unwrap()), FanIn::Zip);
        let order: Vec<&str> = nodes["out"]
            .inputs
            .iter()
            .map(|&e| g.nodes[g.edges[e].from].name.as_str())
            .collect();
        assert_eq!(order, ["inp", "rev"]);
    }

    #[test]
    fn chains_and_groups_expand_to_every_pair() {
        let g = build(quote!(a, b => c, d => e)).unwrap();
        let edges: Vec<(String, String)> = g
            .edges
            .iter()
            .map(|e| (g.nodes[e.from].name.clone(), g.nodes[e.to].name.clone()))
            .collect();
        let expected = [
            ("a", "c"),
            ("a", "d"),
            ("b", "c"),
            ("b", "d"),
            ("c", "e"),
            ("d", "e"),
        ];
        assert_eq!(edges, expected.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn reports_every_structural_error_at_once() {
        let errors = errors_of(quote!(
            a = x; a = y; lonely = z;
            a => b; a => b;
            b => c => b;
            m[merge, bogus] = w; a => m;
        ));
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(has("node `a` is bound twice"), "{errors:#?}");
        assert!(has("node `lonely` is not connected"), "{errors:#?}");
        assert!(has("edge `a => b` is written twice"), "{errors:#?}");
        assert!(has("cycle: b => c => b"), "{errors:#?}");
        assert!(has("unknown node option `bogus`"), "{errors:#?}");
        assert!(
            has("`merge` interleaves several inputs, and `m` has 1 input(s)"),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_cycle_without_a_source_leaves_its_successors_unreachable() {
        let errors = errors_of(quote!(s => t; a => b => a; b => c));
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[0].contains("cycle: a => b => a"));
        assert!(errors[1].contains("node `c` is unreachable"));
    }

    #[test]
    fn a_typo_of_a_bound_node_is_caught_but_a_declared_local_is_not() {
        let errors = errors_of(quote!(inp = a; rev = b; out = c; inp => rve => out));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("node `rve` is never bound: did you mean `rev`?")),
            "{errors:#?}"
        );
        assert!(
            build(quote!(inp = a; rev = b; out = c; rve; inp => rve => out; inp => rev => out))
                .is_ok()
        );
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("rve", "rev"), 1);
        assert!(
            !looks_like_typo("b", "a"),
            "one-letter names are never typos of each other"
        );
        assert!(looks_like_typo("soruce", "source"));
    }

    #[test]
    fn worker_options_are_checked() {
        let errors = errors_of(quote!(
            a[workers(2)] = x; b[workers(0)] = y; c[ordered] = z; d[workers(3), ordered, ordered] = w;
            a => b => c => d => e;
        ));
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(
            has("`workers` runs a stage on several workers, and `a` is a source here"),
            "{errors:#?}"
        );
        assert!(
            has("`workers(0)` would never process anything"),
            "{errors:#?}"
        );
        assert!(
            has(
                "`ordered` keeps the outputs of several workers in input order: add `workers(n)` beside it"
            ),
            "{errors:#?}"
        );
        assert!(
            has("option `ordered` is given twice for `d`"),
            "{errors:#?}"
        );
        assert!(build(quote!(a => b => c; b[workers(n), ordered])).is_ok());
    }

    #[test]
    fn dependencies_that_would_deadlock_are_refused() {
        let errors = errors_of(quote!(
            docs => index; queries => serve => out;
            serve[after(index)];
            a[after(nowhere)]; s => a => b; b[after(a)];
            t => c, d; c[after(d)];
        ));
        let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
        assert!(!has("`serve` waits"), "{errors:#?}");
        assert!(has("there is no node `nowhere`"), "{errors:#?}");
        assert!(
            has("`b` waits for `a` to finish, but `a` sends items to `b`"),
            "{errors:#?}"
        );
        assert!(
            has("`c` waits for `d` to finish, but both get items from `t`"),
            "{errors:#?}"
        );
    }

    #[test]
    fn a_dead_letter_edge_feeds_its_target_but_is_no_output() {
        let g = build(quote!(src => parse => out; parse[dead_letter(rejects)]; rejects)).unwrap();
        let nodes = g.by_name();
        assert_eq!(nodes["parse"].role(), Role::Stage);
        assert_eq!(nodes["parse"].outputs.len(), 1);
        assert_eq!(nodes["rejects"].role(), Role::Sink);
        assert_eq!(nodes["rejects"].inputs.len(), 1);
        let errors = errors_of(
            quote!(src => parse => out; parse[dead_letter(nobody)]; out[dead_letter(src)]),
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("there is no node `nobody`")),
            "{errors:#?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("`dead_letter` routes a stage's failed items, and `out`")),
            "{errors:#?}"
        );
    }

    #[test]
    fn an_empty_pipeline_says_what_to_write() {
        let errors = errors_of(quote!());
        assert!(errors[0].contains("no edges"));
    }

    #[test]
    fn zero_capacity_and_repeated_options_are_refused() {
        let errors = errors_of(quote!(a => b; b[capacity(0), fail_fast, fail_fast]));
        assert!(errors.iter().any(|e| e.contains("capacity(0)")));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("option `fail_fast` is given twice"))
        );
    }
}
