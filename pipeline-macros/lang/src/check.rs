//! The structural checks of a pipeline graph, written once for every front end: the
//! `pipeline!` macro (whose graph carries the user's spans) and the runtime's graph builder
//! (whose graph carries types, for graphs made at run time). Each front end shows the
//! graph through [`Structure`] and places each [`Problem`] at its own notion of a
//! [`Site`]: a span in the macro's input, a node or edge name in the builder's.
//!
//! Plain data: no syntax tree, so the runtime can use it without a parser.

use crate::options::{Fits, descriptor};
use crate::role::{FanIn, Role};
use crate::typo::nearest;

/// The largest zip the runtime has an inlet for.
pub const MAX_ZIP_INPUTS: usize = 8;

/// A graph as the checks see it. Edges are numbered; a node lists the edges into it (in
/// the order written, which is its zip tuple's order) and out of it.
pub trait Structure {
    fn node_count(&self) -> usize;
    fn name(&self, n: usize) -> &str;
    /// The edges into `n`, its dead-letter edges among them.
    fn inputs(&self, n: usize) -> &[usize];
    /// The edges out of `n`, without its dead-letter edge.
    fn outputs(&self, n: usize) -> &[usize];
    /// The edge carrying `n`'s failed items, if `dead_letter(..)` names a node there is.
    fn dead_letter(&self, n: usize) -> Option<usize>;
    /// The node edge `e` leads to.
    fn target(&self, e: usize) -> usize;
    /// The options written on `n`, by name.
    fn options(&self, n: usize) -> Vec<&'static str>;
    /// The node named by `n`'s `dead_letter(..)`, as written.
    fn dead_letter_target(&self, n: usize) -> Option<String>;
    /// The nodes named by `n`'s `after(..)`, as written.
    fn after(&self, n: usize) -> Vec<String>;
    /// Whether edge `e` is a loop edge (`loop a => b`): it goes back to a node `a` is fed
    /// from, and so may close a cycle.
    fn looping(&self, _e: usize) -> bool {
        false
    }

    /// Whether an error about `n` would repeat another one already made (a typo the front
    /// end reported, whose fix also fixes this).
    fn excused(&self, _n: usize) -> bool {
        false
    }

    /// What `n` is, by its edges.
    fn role(&self, n: usize) -> Role {
        Role::of(self.inputs(n).len(), self.outputs(n).len())
    }

    /// How `n` combines its inputs.
    fn fan_in(&self, n: usize) -> FanIn {
        let loop_entry = self.inputs(n).iter().any(|&e| self.looping(e));
        FanIn::of_node(
            self.options(n).contains(&"merge"),
            loop_entry,
            self.inputs(n).len(),
        )
    }

    /// The nodes `n` sends to: its outputs' targets and its dead-letter node.
    fn successors(&self, n: usize) -> Vec<usize> {
        self.outputs(n)
            .iter()
            .chain(&self.dead_letter(n))
            .map(|&e| self.target(e))
            .collect()
    }

    /// Whether a path of edges leads from `from` to `to` (a node reaches itself).
    fn reaches(&self, from: usize, to: usize) -> bool {
        self.reaches_by(from, to, true)
    }

    /// [`reaches`](Self::reaches), over loop edges too only if `loops`.
    fn reaches_by(&self, from: usize, to: usize, loops: bool) -> bool {
        let mut seen = vec![false; self.node_count()];
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if !std::mem::replace(&mut seen[n], true) {
                let dead_letter = self.dead_letter(n);
                let leaving = self.outputs(n).iter().chain(&dead_letter);
                todo.extend(
                    leaving
                        .filter(|&&e| loops || !self.looping(e))
                        .map(|&e| self.target(e)),
                );
            }
        }
        false
    }

    /// The node called `name`.
    fn find(&self, name: &str) -> Option<usize> {
        (0..self.node_count()).find(|&n| self.name(n) == name)
    }
}

/// Where a problem is, for the front end to point at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// The node, where it is defined.
    Node(usize),
    /// The edge, at its target.
    Edge(usize),
    /// The option of that name on the node.
    Option(usize, &'static str),
    /// The `i`-th node named by the node's `after(..)`.
    After(usize, usize),
    /// The node named by the node's `dead_letter(..)`.
    DeadLetter(usize),
}

/// One mistake in a graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub site: Site,
    pub message: String,
}

/// Every structural mistake in `graph`, in a stable order.
pub fn check(graph: &impl Structure) -> Vec<Problem> {
    let mut problems = Vec::new();
    dead_letter_targets(graph, &mut problems);
    connected(graph, &mut problems);
    let in_cycle = cycles(graph, &mut problems);
    loops(graph, &mut problems);
    reachable(graph, &in_cycle, &mut problems);
    options(graph, &mut problems);
    dependencies(graph, &mut problems);
    problems
}

fn push(problems: &mut Vec<Problem>, site: Site, message: String) {
    problems.push(Problem { site, message });
}

/// `dead_letter(target)` must name another node of the graph.
fn dead_letter_targets(graph: &impl Structure, problems: &mut Vec<Problem>) {
    for n in 0..graph.node_count() {
        let Some(target) = graph.dead_letter_target(n) else {
            continue;
        };
        if graph.dead_letter(n).is_some() {
            continue;
        }
        if graph.name(n) == target {
            push(
                problems,
                Site::DeadLetter(n),
                "a stage cannot be its own dead-letter node".to_string(),
            );
            continue;
        }
        let names = (0..graph.node_count()).map(|m| graph.name(m));
        let hint = match nearest(&target, names) {
            Some(near) => format!(": did you mean `{near}`?"),
            None => String::new(),
        };
        push(
            problems,
            Site::DeadLetter(n),
            format!("`dead_letter({target})`: there is no node `{target}` in this pipeline{hint}"),
        );
    }
}

fn connected(graph: &impl Structure, problems: &mut Vec<Problem>) {
    for n in 0..graph.node_count() {
        if graph.inputs(n).is_empty() && graph.outputs(n).is_empty() && !graph.excused(n) {
            let name = graph.name(n);
            push(
                problems,
                Site::Node(n),
                format!(
                    "node `{name}` is not connected: use it in an edge (`{name} => ...` or `... => {name}`) or remove it"
                ),
            );
        }
    }
}

/// Reports every cycle once, naming its path; returns which nodes lie on one.
fn cycles(graph: &impl Structure, problems: &mut Vec<Problem>) -> Vec<bool> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let count = graph.node_count();
    let mut mark = vec![Mark::New; count];
    let mut in_cycle = vec![false; count];
    let mut path: Vec<usize> = Vec::new();
    for start in 0..count {
        if mark[start] != Mark::New {
            continue;
        }
        // Iterative DFS: a stack of (node, next edge to look at).
        let mut stack = vec![(start, 0usize)];
        mark[start] = Mark::Active;
        path.push(start);
        while let Some((n, i)) = stack.last_mut() {
            let n = *n;
            // A loop edge may close a cycle: that is what it is for (see `loops`).
            let leaving: Vec<usize> = graph
                .outputs(n)
                .iter()
                .chain(&graph.dead_letter(n))
                .copied()
                .filter(|&e| !graph.looping(e))
                .collect();
            if let Some(&e) = leaving.get(*i) {
                *i += 1;
                let to = graph.target(e);
                match mark[to] {
                    Mark::New => {
                        mark[to] = Mark::Active;
                        path.push(to);
                        stack.push((to, 0));
                    }
                    Mark::Active => {
                        let from = path.iter().position(|&p| p == to).unwrap_or(0);
                        let cycle: Vec<&str> =
                            path[from..].iter().map(|&p| graph.name(p)).collect();
                        for &p in &path[from..] {
                            in_cycle[p] = true;
                        }
                        push(
                            problems,
                            Site::Edge(e),
                            format!(
                                "this edge closes a cycle: {} => {}; remove one of these edges, or, if items are meant to go round, write the edge back as a loop edge: `loop {} => {}`",
                                cycle.join(" => "),
                                graph.name(to),
                                graph.name(n),
                                graph.name(to)
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

/// A loop edge `a => b` must go back: `b` leads to `a` through plain edges, so that the
/// loop is `b => .. => a => b`. Its entry `b` interleaves what comes round with its other
/// inputs, which must be there: the loop needs items from outside to start.
fn loops(graph: &impl Structure, problems: &mut Vec<Problem>) {
    for n in 0..graph.node_count() {
        for (e, to) in graph.outputs(n).iter().map(|&e| (e, graph.target(e))) {
            if !graph.looping(e) {
                continue;
            }
            let (from_name, to_name) = (graph.name(n), graph.name(to));
            if !graph.reaches_by(to, n, false) {
                push(
                    problems,
                    Site::Edge(e),
                    format!(
                        "`loop {from_name} => {to_name}` closes no loop: `{to_name}` does not lead back to `{from_name}`; write it as a plain edge `{from_name} => {to_name}`"
                    ),
                );
            } else if graph.inputs(to).iter().all(|&i| graph.looping(i)) {
                push(
                    problems,
                    Site::Edge(e),
                    format!(
                        "`{to_name}` gets items only round its loop, so nothing would ever start it: feed it from outside the loop too (`source => {to_name}`)"
                    ),
                );
            }
        }
    }
}

fn reachable(graph: &impl Structure, in_cycle: &[bool], problems: &mut Vec<Problem>) {
    let mut reached = vec![false; graph.node_count()];
    let mut todo: Vec<usize> = (0..graph.node_count())
        .filter(|&n| graph.inputs(n).is_empty())
        .collect();
    while let Some(n) = todo.pop() {
        if std::mem::replace(&mut reached[n], true) {
            continue;
        }
        todo.extend(graph.successors(n));
    }
    for n in 0..graph.node_count() {
        if !reached[n] && !in_cycle[n] {
            push(
                problems,
                Site::Node(n),
                format!(
                    "node `{}` is unreachable: no source feeds it, only a cycle does",
                    graph.name(n)
                ),
            );
        }
    }
}

/// Each option written on a node it does not fit, or without the option it needs; zips
/// wider than the runtime has inlets for.
fn options(graph: &impl Structure, problems: &mut Vec<Problem>) {
    for n in 0..graph.node_count() {
        let (name, role, inputs) = (graph.name(n), graph.role(n), graph.inputs(n).len());
        let written = graph.options(n);
        for &option in &written {
            let Some(d) = descriptor(option) else {
                continue;
            };
            let misfit = match d.fits {
                Fits::Stages if role != Role::Stage => {
                    Some(format!("`{name}` is {} here", a(role)))
                }
                Fits::StagesAndSinks if role == Role::Source => {
                    Some(format!("`{name}` is a source here{}", d.instead))
                }
                Fits::SeveralInputs if inputs < 2 => {
                    Some(format!("`{name}` has {inputs} input(s)"))
                }
                _ => None,
            };
            if let Some(misfit) = misfit {
                push(
                    problems,
                    Site::Option(n, d.name),
                    format!("`{option}` {}, and {misfit}", d.purpose),
                );
                continue;
            }
            if let Some(needed) = d.needs.filter(|needed| !written.contains(needed)) {
                let form = descriptor(needed).map_or(needed, |n| n.forms[0]);
                push(
                    problems,
                    Site::Option(n, d.name),
                    format!("`{option}` {}: add `{form}` beside it", d.purpose),
                );
            }
        }
        if graph.fan_in(n) == FanIn::Zip && inputs > MAX_ZIP_INPUTS {
            push(
                problems,
                Site::Node(n),
                format!(
                    "`{name}` zips {inputs} inputs, more than {MAX_ZIP_INPUTS}; mark it `[merge]`, or zip in two steps"
                ),
            );
        }
    }
}

/// `after(first)` on `waiting` must name a node, and must not deadlock: `first` cannot
/// finish while it waits for what `waiting` sends, nor while a source they share is
/// blocked on `waiting`'s full input.
fn dependencies(graph: &impl Structure, problems: &mut Vec<Problem>) {
    for waiting in 0..graph.node_count() {
        let name = graph.name(waiting);
        for (i, first_name) in graph.after(waiting).iter().enumerate() {
            let site = Site::After(waiting, i);
            let Some(first) = graph.find(first_name) else {
                push(
                    problems,
                    site,
                    format!(
                        "`after({first_name})`: there is no node `{first_name}` in this pipeline"
                    ),
                );
                continue;
            };
            let message = if first == waiting {
                format!("`{first_name}` cannot wait for itself")
            } else if graph.reaches(waiting, first) {
                format!(
                    "`{name}` waits for `{first_name}` to finish, but `{first_name}` gets its input through `{name}`: neither would ever finish"
                )
            } else if graph.reaches(first, waiting) {
                format!(
                    "`{name}` waits for `{first_name}` to finish, but `{first_name}` sends items to `{name}`, which takes none before then: `{first_name}` would block on `{name}`'s full input"
                )
            } else if let Some(shared) = (0..graph.node_count())
                .find(|&a| graph.reaches(a, waiting) && graph.reaches(a, first))
            {
                format!(
                    "`{name}` waits for `{first_name}` to finish, but both get items from `{}`, which would block on `{name}`'s full input before `{first_name}` could finish; feed `{name}` from a source of its own",
                    graph.name(shared)
                )
            } else {
                continue;
            };
            push(problems, site, message);
        }
    }
}

fn a(role: Role) -> &'static str {
    match role {
        Role::Source => "a source",
        Role::Stage => "a stage",
        Role::Sink => "a sink",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph of names only, as a run-time front end would show it.
    #[derive(Default)]
    struct Plain {
        names: Vec<String>,
        inputs: Vec<Vec<usize>>,
        outputs: Vec<Vec<usize>>,
        targets: Vec<usize>,
        options: Vec<Vec<&'static str>>,
        looping: Vec<bool>,
    }

    impl Plain {
        fn new(edges: &[(&str, &str)]) -> Plain {
            let mut g = Plain::default();
            for &(from, to) in edges {
                // `~b` marks a loop edge into `b`.
                let (to, looping) = match to.strip_prefix('~') {
                    Some(to) => (to, true),
                    None => (to, false),
                };
                let (a, b) = (g.node(from), g.node(to));
                g.outputs[a].push(g.targets.len());
                g.inputs[b].push(g.targets.len());
                g.targets.push(b);
                g.looping.push(looping);
            }
            g
        }

        fn node(&mut self, name: &str) -> usize {
            self.find(name).unwrap_or_else(|| {
                self.names.push(name.to_string());
                self.inputs.push(Vec::new());
                self.outputs.push(Vec::new());
                self.options.push(Vec::new());
                self.names.len() - 1
            })
        }
    }

    impl Structure for Plain {
        fn node_count(&self) -> usize {
            self.names.len()
        }
        fn name(&self, n: usize) -> &str {
            &self.names[n]
        }
        fn inputs(&self, n: usize) -> &[usize] {
            &self.inputs[n]
        }
        fn outputs(&self, n: usize) -> &[usize] {
            &self.outputs[n]
        }
        fn dead_letter(&self, _: usize) -> Option<usize> {
            None
        }
        fn target(&self, e: usize) -> usize {
            self.targets[e]
        }
        fn options(&self, n: usize) -> Vec<&'static str> {
            self.options[n].clone()
        }
        fn dead_letter_target(&self, _: usize) -> Option<String> {
            None
        }
        fn after(&self, _: usize) -> Vec<String> {
            Vec::new()
        }
        fn looping(&self, e: usize) -> bool {
            self.looping[e]
        }
    }

    #[test]
    fn a_loop_edge_may_close_a_cycle_and_makes_its_target_a_loop_entry() {
        let g = Plain::new(&[
            ("seeds", "frontier"),
            ("frontier", "fetch"),
            ("fetch", "links"),
            ("links", "~frontier"),
            ("fetch", "out"),
        ]);
        assert_eq!(check(&g), []);
        assert_eq!(g.fan_in(g.find("frontier").unwrap()), FanIn::Loop);
    }

    #[test]
    fn a_loop_edge_must_go_back_and_its_entry_must_be_fed_from_outside() {
        let forward = Plain::new(&[("s", "a"), ("a", "~b"), ("b", "out")]);
        let problems = check(&forward);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(
            problems[0].message,
            "`loop a => b` closes no loop: `b` does not lead back to `a`; write it as a plain edge `a => b`"
        );
        let unfed = Plain::new(&[("s", "out"), ("a", "b"), ("b", "~a"), ("b", "out2")]);
        let messages: Vec<String> = check(&unfed).into_iter().map(|p| p.message).collect();
        assert!(
            messages.contains(&"`a` gets items only round its loop, so nothing would ever start it: feed it from outside the loop too (`source => a`)".to_string()),
            "{messages:#?}"
        );
    }

    #[test]
    fn a_cycle_is_named_by_its_path_at_the_edge_closing_it() {
        let g = Plain::new(&[("s", "a"), ("a", "b"), ("b", "a"), ("b", "out")]);
        let problems = check(&g);
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert_eq!(problems[0].site, Site::Edge(2));
        assert!(problems[0].message.contains("cycle: a => b => a"));
    }

    #[test]
    fn options_are_checked_against_the_role_edges_give() {
        let mut g = Plain::new(&[("s", "a"), ("a", "out")]);
        g.options[0] = vec!["workers"];
        g.options[2] = vec!["merge", "ordered"];
        let messages: Vec<String> = check(&g).into_iter().map(|p| p.message).collect();
        assert!(messages.contains(
            &"`workers` runs a stage on several workers, and `s` is a source here".to_string()
        ));
        assert!(messages.iter().any(|m| m.contains("`merge` interleaves several inputs, and `out` has 1 input(s)")));
        assert!(messages.iter().any(|m| m.contains("`ordered` keeps the outputs of several workers in input order, and `out` is a sink here")));
    }
}
