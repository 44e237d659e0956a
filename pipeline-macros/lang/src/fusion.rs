//! Fusion planning: which nodes the runtime may run in one pass per item (see the
//! runtime's `fuse`), named at compile time so that the kernels know the stages' types.
//! Chains of plain stages, cut into pieces each naming a stage once, and diamonds of them
//! into one zip node.

use std::collections::BTreeMap;

use crate::check::Structure;
use crate::graph::{Graph, Node};
use crate::role::{FanIn, Role};

/// A diamond that may run in one pass per item (see [`Graph::fork_after`]).
#[derive(Debug, PartialEq)]
pub struct Fork {
    /// In the order of the zip's inputs.
    pub branches: Vec<ForkBranch>,
    /// The zip node, then the chain after it.
    pub join: Vec<usize>,
}

#[derive(Debug, PartialEq)]
pub struct ForkBranch {
    /// The place of the branch's edge among the fanning-out node's outputs.
    pub target: usize,
    /// The zip's input it ends on.
    pub input: usize,
    pub stages: Vec<usize>,
}

impl Node {
    /// Whether the node runs as one plain loop that another node may run inline: one
    /// worker, no per-item policy, no start order, no merge.
    pub(crate) fn runs_plain(&self) -> bool {
        let options = &self.options;
        [
            "workers",
            "timeout",
            "retry",
            "dead_letter",
            "after",
            "merge",
        ]
        .iter()
        .all(|option| !options.has(option))
    }
}

impl Graph {
    /// The stages after node `n` that may run as one chain with it (see the runtime's
    /// `fuse::chain`), and the sink that ends them if one does: each the only target of the
    /// node before it and fed by nothing else, with one worker and no per-item policy, at
    /// most `most` of them. Empty unless there are at least two: one node alone gains
    /// nothing from a chain.
    pub fn chain_after(&self, n: usize, most: usize) -> Vec<usize> {
        let mut chain = self.chain_from(n, most);
        if chain.len() < 2 {
            chain.clear();
        }
        chain
    }

    /// The chains the nodes' outlets get kernels for, by the node that owns the outlet:
    /// each chain from its head in pieces of at most `most`, the last node of a full piece
    /// owning the next. Each node is named in one piece only: a piece per node (the `most`
    /// nodes after every one) made type checking grow with the square of a chain's length,
    /// since every stage named is one more obligation the compiler carries to the end of
    /// the function (a closure's captures, and so whether it is `Send`, are known only
    /// there).
    pub fn chain_pieces(&self, most: usize) -> BTreeMap<usize, Vec<usize>> {
        let mut continues_a_chain = vec![false; self.nodes.len()];
        for p in 0..self.nodes.len() {
            if let [next] = self.chain_from(p, 1)[..] {
                continues_a_chain[next] = true;
            }
        }
        let mut pieces = BTreeMap::new();
        for head in (0..self.nodes.len()).filter(|&n| !continues_a_chain[n]) {
            let mut at = head;
            loop {
                let piece = self.chain_after(at, most);
                let (Some(&last), true) = (piece.last(), piece.len() == most) else {
                    if !piece.is_empty() {
                        pieces.insert(at, piece);
                    }
                    break;
                };
                pieces.insert(at, piece);
                at = last;
            }
        }
        pieces
    }

    /// The nodes of a chain after node `n` (as [`chain_after`](Self::chain_after), even a
    /// single one).
    fn chain_from(&self, n: usize, most: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut at = n;
        while chain.len() < most {
            let [edge] = self.nodes[at].outputs[..] else {
                break;
            };
            let next = self.edges[edge].to;
            let node = &self.nodes[next];
            if node.role() == Role::Source || node.inputs.len() != 1 || !node.runs_plain() {
                break;
            }
            chain.push(next);
            if node.role() == Role::Sink {
                break;
            }
            at = next;
        }
        chain
    }

    /// The diamond after node `n`, if it is one that may run in one pass per item (see the
    /// runtime's `fuse::fork`): `n` fans out to between two and `most_branches` branches,
    /// each a chain of at most `most` stages (maybe none) into one zip node fed by them
    /// alone; the zip node runs plain, and starts a chain of its own.
    pub fn fork_after(&self, n: usize, most_branches: usize, most: usize) -> Option<Fork> {
        let outputs = &self.nodes[n].outputs;
        if outputs.len() < 2 || outputs.len() > most_branches {
            return None;
        }
        let mut zip = None;
        let mut branches = Vec::new();
        for (target, &edge) in outputs.iter().enumerate() {
            let first = self.edges[edge].to;
            // The branch's stages: plain single-input stages, up to the zip.
            let mut stages = Vec::new();
            let mut into = edge;
            let mut at = first;
            while self.nodes[at].inputs.len() == 1 {
                let node = &self.nodes[at];
                if node.role() != Role::Stage || !node.runs_plain() || stages.len() == most {
                    return None;
                }
                let [next] = node.outputs[..] else {
                    return None;
                };
                stages.push(at);
                into = next;
                at = self.edges[next].to;
            }
            let input = self.nodes[at].inputs.iter().position(|&e| e == into)?;
            if *zip.get_or_insert(at) != at {
                return None;
            }
            branches.push(ForkBranch {
                target,
                input,
                stages,
            });
        }
        let zip = zip?;
        let node = &self.nodes[zip];
        if self.fan_in(zip) != FanIn::Zip
            || node.inputs.len() != branches.len()
            || !node.runs_plain()
        {
            return None;
        }
        branches.sort_by_key(|branch| branch.input);
        let mut join = vec![zip];
        if node.role() == Role::Stage {
            join.extend(self.chain_from(zip, most - 1));
        }
        Some(Fork { branches, join })
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;
    use quote::quote;

    use crate::ast::PipelineInput;
    use crate::graph::Graph;

    fn build(tokens: proc_macro2::TokenStream) -> Result<Graph, Vec<String>> {
        let input: PipelineInput = syn::parse2(tokens).expect("parses");
        Graph::build(input, Span::call_site())
            .map_err(|e| e.into_iter().map(|e| e.to_string()).collect())
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
}
