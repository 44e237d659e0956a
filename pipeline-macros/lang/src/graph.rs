//! The graph a `pipeline!` describes, and its structural checks.
//!
//! Plain data over identifiers and spans: unit-tested here without expanding anything.
//! Checks that need types (roles, item types, `Clone` for fan-out) are left to the
//! generated code, which points them at the same identifiers.

use std::collections::{BTreeMap, HashMap};

use proc_macro2::Span;
use syn::{Expr, Ident};

use crate::ast::{PipelineInput, Statement};
use crate::errors::{Errors, edit_distance, looks_like_typo};
use crate::options::{self, Options};
pub use crate::role::{FanIn, Role};

/// The largest zip the runtime has an inlet for.
pub const MAX_ZIP_INPUTS: usize = 8;

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
    /// The two mentions in the edge statement, for errors about this edge.
    pub from_ident: Ident,
    pub to_ident: Ident,
}

impl Node {
    pub fn role(&self) -> Role {
        match (self.inputs.is_empty(), self.outputs.is_empty()) {
            (true, _) => Role::Source,
            (false, true) => Role::Sink,
            (false, false) => Role::Stage,
        }
    }

    pub fn fan_in(&self) -> FanIn {
        if self.options.merge {
            FanIn::Merge
        } else if self.inputs.len() > 1 {
            FanIn::Zip
        } else {
            FanIn::Single
        }
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
                    options::apply(&node.name, &mut node.options, binding.options, &mut errors);
                }
                Statement::Declare(declaration) => {
                    let n = node_of(&mut graph, &declaration.name);
                    graph.nodes[n].declared = true;
                    let node = &mut graph.nodes[n];
                    options::apply(
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

        graph.add_dead_letter_edges(&mut errors);
        if graph.edges.is_empty() {
            errors.push(
                call_site,
                "this pipeline has no edges: bind nodes and connect them, e.g. `src = source::iter(0..10); out = sink::for_each(|n: i32| println!(\"{n}\")); src => out;`",
            );
            return errors.into_result().map(|()| graph);
        }
        graph.check_typos(&mut errors);
        graph.check_connected(&mut errors);
        let in_cycle = graph.check_cycles(&mut errors);
        graph.check_reachable(&in_cycle, &mut errors);
        graph.check_options(&mut errors);
        graph.check_dependencies(&mut errors);
        errors.into_result().map(|()| graph)
    }

    /// `dead_letter(target)` adds an edge that carries the stage's failed items to `target`.
    fn add_dead_letter_edges(&mut self, errors: &mut Errors) {
        for from in 0..self.nodes.len() {
            let Some((target, span)) = self.nodes[from].options.dead_letter.clone() else {
                continue;
            };
            let target_name = node_name(&target);
            let Some(to) = self.nodes.iter().position(|n| n.name == target_name) else {
                let hint = match self.nearest(&target_name) {
                    Some(near) => format!(": did you mean `{near}`?"),
                    None => String::new(),
                };
                errors.push(target.span(), format!("`dead_letter({target_name})`: there is no node `{target_name}` in this pipeline{hint}"));
                continue;
            };
            if to == from {
                errors.push(target.span(), "a stage cannot be its own dead-letter node");
                continue;
            }
            let e = self.edges.len();
            let mut from_ident = self.nodes[from].ident.clone();
            from_ident.set_span(span);
            self.edges.push(Edge {
                from,
                to,
                from_ident,
                to_ident: target,
            });
            self.nodes[from].dead_letter = Some(e);
            self.nodes[to].inputs.push(e);
        }
    }

    /// Every edge leaving `n`: its outputs and its dead-letter edge.
    fn successors(&self, n: usize) -> impl Iterator<Item = usize> + '_ {
        self.nodes[n]
            .outputs
            .iter()
            .chain(&self.nodes[n].dead_letter)
            .map(|&e| self.edges[e].to)
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
            .filter_map(|n| n.options.dead_letter.as_ref())
            .map(|(target, _)| node_name(target))
            .filter(|target| !self.nodes.iter().any(|n| &n.name == target));
        unbound
            .chain(dead_letters)
            .filter_map(|name| self.nearest(&name))
            .collect()
    }

    fn check_connected(&self, errors: &mut Errors) {
        let meant = self.meant_by_typos();
        for node in &self.nodes {
            if node.inputs.is_empty()
                && node.outputs.is_empty()
                && !meant.contains(&node.name.as_str())
            {
                errors.push(
                    node.ident.span(),
                    format!("node `{}` is not connected: use it in an edge (`{} => ...` or `... => {}`) or remove it", node.name, node.name, node.name),
                );
            }
        }
    }

    /// Reports every cycle once, naming its path; returns which nodes lie on one.
    fn check_cycles(&self, errors: &mut Errors) -> Vec<bool> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut mark = vec![Mark::New; self.nodes.len()];
        let mut in_cycle = vec![false; self.nodes.len()];
        let mut path: Vec<usize> = Vec::new();
        for start in 0..self.nodes.len() {
            if mark[start] != Mark::New {
                continue;
            }
            // Iterative DFS: a stack of (node, next output to look at).
            let mut stack = vec![(start, 0usize)];
            mark[start] = Mark::Active;
            path.push(start);
            while let Some((n, i)) = stack.last_mut() {
                let n = *n;
                let leaving: Vec<usize> = self.nodes[n]
                    .outputs
                    .iter()
                    .chain(&self.nodes[n].dead_letter)
                    .copied()
                    .collect();
                if let Some(&e) = leaving.get(*i) {
                    *i += 1;
                    let to = self.edges[e].to;
                    match mark[to] {
                        Mark::New => {
                            mark[to] = Mark::Active;
                            path.push(to);
                            stack.push((to, 0));
                        }
                        Mark::Active => {
                            let from = path.iter().position(|&p| p == to).unwrap_or(0);
                            let cycle: Vec<&str> = path[from..]
                                .iter()
                                .map(|&p| self.nodes[p].name.as_str())
                                .collect();
                            for &p in &path[from..] {
                                in_cycle[p] = true;
                            }
                            errors.push(
                                self.edges[e].to_ident.span(),
                                format!(
                                    "this edge closes a cycle: {} => {}; a pipeline is a directed acyclic graph, remove one of these edges",
                                    cycle.join(" => "),
                                    self.nodes[to].name
                                ),
                            );
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[n] = Mark::Done;
                    path.pop();
                    stack.pop();
                }
            }
        }
        in_cycle
    }

    fn check_reachable(&self, in_cycle: &[bool], errors: &mut Errors) {
        let mut reached = vec![false; self.nodes.len()];
        let mut todo: Vec<usize> = (0..self.nodes.len())
            .filter(|&n| self.nodes[n].inputs.is_empty())
            .collect();
        while let Some(n) = todo.pop() {
            if std::mem::replace(&mut reached[n], true) {
                continue;
            }
            todo.extend(self.successors(n));
        }
        for (n, node) in self.nodes.iter().enumerate() {
            if !reached[n] && !in_cycle[n] {
                errors.push(
                    node.ident.span(),
                    format!(
                        "node `{}` is unreachable: no source feeds it, only a cycle does",
                        node.name
                    ),
                );
            }
        }
    }

    fn check_options(&self, errors: &mut Errors) {
        for node in &self.nodes {
            let name = &node.name;
            options::check_fit(name, node.role(), node.inputs.len(), &node.options, errors);
            if node.fan_in() == FanIn::Zip && node.inputs.len() > MAX_ZIP_INPUTS {
                errors.push(
                    node.ident.span(),
                    format!(
                        "`{name}` zips {} inputs, more than {MAX_ZIP_INPUTS}; mark it `[merge]`, or zip in two steps",
                        node.inputs.len()
                    ),
                );
            }
        }
    }

    /// `after(first)` on `waiting` must name a node, and must not deadlock: `first` cannot
    /// finish while it waits for what `waiting` sends, nor while a source they share is
    /// blocked on `waiting`'s full input.
    fn check_dependencies(&self, errors: &mut Errors) {
        for (waiting, node) in self.nodes.iter().enumerate() {
            for first_ident in &node.options.after {
                let first_name = node_name(first_ident);
                let Some(first) = self.nodes.iter().position(|n| n.name == first_name) else {
                    errors.push(first_ident.span(), format!("`after({first_name})`: there is no node `{first_name}` in this pipeline"));
                    continue;
                };
                if first == waiting {
                    errors.push(
                        first_ident.span(),
                        format!("`{first_name}` cannot wait for itself"),
                    );
                } else if self.reaches(waiting, first) {
                    errors.push(
                        first_ident.span(),
                        format!("`{}` waits for `{first_name}` to finish, but `{first_name}` gets its input through `{}`: neither would ever finish", node.name, node.name),
                    );
                } else if self.reaches(first, waiting) {
                    errors.push(
                        first_ident.span(),
                        format!(
                            "`{}` waits for `{first_name}` to finish, but `{first_name}` sends items to `{}`, which takes none before then: `{first_name}` would block on `{}`'s full input",
                            node.name, node.name, node.name
                        ),
                    );
                } else if let Some(shared) = (0..self.nodes.len())
                    .find(|&a| self.reaches(a, waiting) && self.reaches(a, first))
                {
                    errors.push(
                        first_ident.span(),
                        format!(
                            "`{}` waits for `{first_name}` to finish, but both get items from `{}`, which would block on `{}`'s full input before `{first_name}` could finish; feed `{}` from a source of its own",
                            node.name, self.nodes[shared].name, node.name, node.name
                        ),
                    );
                }
            }
        }
    }

    /// Whether a path of edges leads from `from` to `to` (a node reaches itself).
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = vec![false; self.nodes.len()];
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if !std::mem::replace(&mut seen[n], true) {
                todo.extend(self.successors(n));
            }
        }
        false
    }

    /// Nodes by name, for tests and lookups.
    #[allow(dead_code)]
    pub fn by_name(&self) -> BTreeMap<&str, &Node> {
        self.nodes.iter().map(|n| (n.name.as_str(), n)).collect()
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
        assert_eq!(nodes["out"].fan_in(), FanIn::Zip);
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
    fn chains_run_along_single_edges_between_plain_stages() {
        let graph = build(quote! {
            src => a => b => c => d => out;
            c => side;
            w[workers(2)] = f;
            src2 => e => f => w => g => h => out2;
            src3 => m => out3;
        })
        .unwrap();
        let names = |chain: Vec<usize>| -> Vec<String> {
            chain
                .into_iter()
                .map(|n| graph.nodes[n].name.clone())
                .collect()
        };
        let index = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
        assert_eq!(names(graph.chain_after(index("src"), 8)), ["a", "b", "c"]);
        // A sink ends a chain, and is part of it.
        assert_eq!(names(graph.chain_after(index("src3"), 8)), ["m", "out3"]);
        assert_eq!(names(graph.chain_after(index("src"), 2)), ["a", "b"]);
        // `c` fans out: nothing after it chains; `d` alone is too short.
        assert!(graph.chain_after(index("c"), 8).is_empty());
        assert!(graph.chain_after(index("b"), 8).is_empty());
        // A stage with workers ends a chain, and one starts after it.
        assert_eq!(names(graph.chain_after(index("src2"), 8)), ["e", "f"]);
        assert_eq!(names(graph.chain_after(index("w"), 8)), ["g", "h", "out2"]);
        assert!(graph.chain_after(index("out"), 8).is_empty());
    }

    #[test]
    fn a_long_chain_is_cut_into_pieces_each_naming_a_node_once() {
        // src => s1 => .. => s7 => out: pieces of 3, each owned by the last node of the one
        // before.
        let graph = build(quote! {
            src => s1 => s2 => s3 => s4 => s5 => s6 => s7 => out;
            w[workers(2)] = x;
            src2 => w => y => z;
        })
        .unwrap();
        let name = |n: usize| graph.nodes[n].name.clone();
        let pieces: Vec<(String, Vec<String>)> = graph
            .chain_pieces(3)
            .into_iter()
            .map(|(owner, piece)| (name(owner), piece.into_iter().map(name).collect()))
            .collect();
        let expected = [
            ("src", vec!["s1", "s2", "s3"]),
            ("s3", vec!["s4", "s5", "s6"]),
            ("s6", vec!["s7", "out"]),
            // `w` has workers: it cannot run inline, so `y` does not continue a chain
            // through it, and `w` heads one of its own.
            ("w", vec!["y", "z"]),
        ]
        .map(|(owner, piece)| {
            (
                owner.to_string(),
                piece.into_iter().map(String::from).collect::<Vec<_>>(),
            )
        });
        let mut pieces = pieces;
        pieces.sort();
        let mut expected = expected.to_vec();
        expected.sort();
        assert_eq!(pieces, expected);
    }

    #[test]
    fn forks_are_diamonds_of_plain_stages_into_one_zip() {
        let graph = build(quote! {
            // Branches of two stages, none, and one; the zip's inputs in another order.
            src => a, c;
            a => b;
            b, src, c => z2;
            z2 => m => out;
            // A branch with a worker pool, a branch that leaves, a zip fed from elsewhere.
            p[workers(2)] = pool;
            src2 => p, q;
            p, q => out2;
            src3 => r, s;
            r => side;
            r, s => out3;
            src4 => t, u;
            t, u, other => out4;
        })
        .unwrap();
        let index = |name: &str| graph.nodes.iter().position(|n| n.name == name).unwrap();
        let names = |nodes: &[usize]| -> Vec<String> {
            nodes.iter().map(|&n| graph.nodes[n].name.clone()).collect()
        };
        let fork = graph.fork_after(index("src"), 4, 8).expect("a diamond");
        let branches: Vec<(usize, usize, Vec<String>)> = fork
            .branches
            .iter()
            .map(|b| (b.target, b.input, names(&b.stages)))
            .collect();
        assert_eq!(
            branches,
            [
                (0, 0, vec!["a".to_string(), "b".to_string()]),
                (2, 1, vec![]),
                (1, 2, vec!["c".to_string()]),
            ]
        );
        assert_eq!(names(&fork.join), ["z2", "m", "out"]);
        assert!(
            graph.fork_after(index("src"), 2, 8).is_none(),
            "too many branches"
        );
        assert!(
            graph.fork_after(index("src"), 4, 1).is_none(),
            "a branch too long"
        );
        for src in ["src2", "src3", "src4"] {
            assert!(graph.fork_after(index(src), 4, 8).is_none(), "{src}");
        }
        assert!(graph.fork_after(index("a"), 4, 8).is_none(), "no fan-out");
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
