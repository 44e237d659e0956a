//! Property: for random DAGs of trivial stages (fan-out, zip, merge, filters, flat-maps, small
//! capacities, several workers, ordered or not), every sink receives exactly what a reference
//! model computes (nothing lost, nothing duplicated) and the report's accounting balances;
//! and a stage with ordered workers keeps the source order.
//!
//! Random graphs cannot go through `pipeline!` (it runs at compile time), so they are wired
//! with the runtime's builder, the same calls the macro expands to. Single inputs are
//! fusable edges, as the macro makes them, so chains of stages run inline and panicky
//! stages go back to loops of their own midway.

use std::collections::HashMap;

use pipeline::Collected;
use pipeline_core::exec::ErrorWiring;
use pipeline_core::inlet::{Inlet, MergeInlet, Zip2};
use pipeline_core::lineage::Lineage;
use pipeline_core::outlet::Outlet;
use pipeline_core::run::Builder;
use pipeline_core::wire::{EdgeReceiver, EdgeSender, edge, fusable_edge};
use pipeline_core::{NodeConfig, Stage, StageNode};
use pipeline_core::{source, stage};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Kind {
    Map(u64),
    Filter(u64),
    FlatMap(u64),
    /// Panics on items divisible by its parameter; the worker is replaced each time.
    Panicky(u64),
    Zip,
    Merge,
}

#[derive(Debug, Clone)]
struct Spec {
    sources: Vec<u64>,
    /// Stages in topological order: kind, inputs (indices of earlier nodes), capacity.
    stages: Vec<(Kind, Vec<usize>, usize)>,
    /// Per stage: worker count and whether output is ordered.
    workers: Vec<(usize, bool)>,
}

fn map(m: u64, v: u64) -> u64 {
    v.wrapping_mul(m).wrapping_add(1)
}
fn keep(m: u64, v: u64) -> bool {
    v % m != 0
}
fn pieces(k: u64, v: u64) -> Vec<u64> {
    (0..v % (k + 1)).map(|j| v * 10 + j).collect()
}
fn join(a: u64, b: u64) -> u64 {
    a.wrapping_mul(31) ^ b
}

fn spec() -> impl Strategy<Value = Spec> {
    (prop::collection::vec(0u64..40, 1..3), 1usize..9).prop_flat_map(|(sources, n_stages)| {
        let choices: Vec<_> = (0..n_stages)
            .map(|i| {
                let earlier = sources.len() + i;
                (
                    0u8..6,
                    2u64..5,
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    1usize..8,
                    (1usize..4, any::<bool>()),
                )
                    .prop_map(move |(k, p, a, b, cap, w)| {
                        (k, p, a.index(earlier), b.index(earlier), cap, w)
                    })
            })
            .collect();
        (Just(sources), choices).prop_map(|(sources, choices)| {
            let mut tainted: Vec<bool> = vec![false; sources.len()];
            let mut stages = Vec::new();
            let mut workers = Vec::new();
            for (k, p, a, b, cap, w) in choices {
                workers.push(w);
                let (kind, inputs) = match k {
                    0 => (Kind::Map(p), vec![a]),
                    1 => (Kind::Filter(p), vec![a]),
                    2 => (Kind::FlatMap(p), vec![a]),
                    // A zip needs two distinct inputs whose lineage means something (no merge upstream).
                    3 if a != b && !tainted[a] && !tainted[b] => (Kind::Zip, vec![a, b]),
                    4 if a != b => (Kind::Merge, vec![a, b]),
                    5 => (Kind::Panicky(p + 3), vec![a]),
                    _ => (Kind::Map(p), vec![a]),
                };
                let t = matches!(kind, Kind::Merge) || inputs.iter().any(|&i| tainted[i]);
                tainted.push(t);
                stages.push((kind, inputs, cap));
            }
            Spec {
                sources,
                stages,
                workers,
            }
        })
    })
}

/// Every node's output, with lineage, computed directly.
fn model(spec: &Spec) -> Vec<Vec<(Lineage, u64)>> {
    let mut out: Vec<Vec<(Lineage, u64)>> = Vec::new();
    for (s, &len) in spec.sources.iter().enumerate() {
        out.push(
            (0..len)
                .map(|j| (Lineage::root(j), s as u64 * 1000 + j))
                .collect(),
        );
    }
    for (kind, inputs, _) in &spec.stages {
        let a = &out[inputs[0]];
        let produced: Vec<(Lineage, u64)> = match kind {
            Kind::Map(m) => a.iter().map(|&(l, v)| (l, map(*m, v))).collect(),
            Kind::Filter(m) => a.iter().copied().filter(|&(_, v)| keep(*m, v)).collect(),
            Kind::Panicky(m) => a.iter().copied().filter(|&(_, v)| keep(*m, v)).collect(),
            Kind::FlatMap(k) => a
                .iter()
                .flat_map(|&(l, v)| {
                    pieces(*k, v)
                        .into_iter()
                        .enumerate()
                        .map(move |(i, p)| (l.child(i as u64), p))
                })
                .collect(),
            Kind::Zip => {
                let b: HashMap<Lineage, u64> = out[inputs[1]].iter().copied().collect();
                a.iter()
                    .filter_map(|&(l, va)| b.get(&l).map(|&vb| (l, join(va, vb))))
                    .collect()
            }
            // Lineage after a merge is arrival order; nothing downstream zips on it.
            Kind::Merge => a
                .iter()
                .chain(&out[inputs[1]])
                .map(|&(_, v)| (Lineage::root(0), v))
                .collect(),
        };
        out.push(produced);
    }
    out
}

fn name(prefix: &str, i: usize) -> &'static str {
    Box::leak(format!("{prefix}{i}").into_boxed_str())
}

/// Adds stages with one worker, or several (each with its own copy).
struct Stages<'a> {
    builder: &'a mut Builder,
    workers: usize,
    ordered: bool,
}

impl Stages<'_> {
    fn add<S: Stage + Clone, I: Inlet<S::In>>(
        &mut self,
        name: &'static str,
        node: StageNode<S>,
        inlet: I,
        outlet: Outlet<S::Out>,
        options: NodeConfig,
    ) {
        if self.workers == 1 {
            self.builder
                .stage(name, node, inlet, outlet, options, ErrorWiring::default());
        } else {
            let copies = vec![node; self.workers];
            let options = if self.ordered {
                options.ordered()
            } else {
                options
            };
            self.builder.stage_with_workers(
                name,
                copies,
                inlet,
                outlet,
                options,
                ErrorWiring::default(),
            );
        }
    }
}

enum Input {
    Single(EdgeSender<u64>, EdgeReceiver<u64>),
    Zip([EdgeSender<u64>; 2], Box<Zip2<u64, u64>>),
    Merge(EdgeSender<u64>, MergeInlet<u64>),
}

/// Runs the spec; returns each sink's items (keyed by the node it hangs off) and the report.
fn run(spec: &Spec) -> (Vec<(usize, Vec<u64>)>, pipeline::RunReport) {
    let n_sources = spec.sources.len();
    let total = n_sources + spec.stages.len();
    let mut consumers: Vec<Vec<(usize, usize)>> = vec![Vec::new(); total];
    for (i, (_, inputs, _)) in spec.stages.iter().enumerate() {
        for (slot, &from) in inputs.iter().enumerate() {
            consumers[from].push((n_sources + i, slot));
        }
    }
    // Every node nobody consumes gets a collecting sink.
    let sinks: Vec<usize> = (0..total).filter(|&n| consumers[n].is_empty()).collect();
    let collected: Vec<Collected<u64>> = sinks.iter().map(|_| Collected::new()).collect();

    let mut builder = Builder::new();
    // Panicking workers are replaced however often it takes.
    let options = NodeConfig::new().restarts(u32::MAX);
    let mut inputs: HashMap<usize, Input> = HashMap::new();
    for (i, (kind, _, cap)) in spec.stages.iter().enumerate() {
        let input = match kind {
            Kind::Zip => {
                let (a, ra) = edge(*cap);
                let (b, rb) = edge(*cap);
                Input::Zip([a, b], Box::new(Zip2::new(ra, rb)))
            }
            Kind::Merge => {
                let (tx, rx) = edge(*cap);
                Input::Merge(tx, MergeInlet::new(rx))
            }
            _ => {
                // As `pipeline!` wires a single input: the stage may run inside its feeder.
                let (tx, rx) = fusable_edge(*cap);
                Input::Single(tx, rx)
            }
        };
        inputs.insert(n_sources + i, input);
    }
    let mut sink_inputs = Vec::new();
    for (k, &n) in sinks.iter().enumerate() {
        let (tx, rx) = fusable_edge(3);
        consumers[n].push((total + k, 0));
        sink_inputs.push((tx, rx));
    }
    let sender_for = |to: usize, slot: usize, inputs: &HashMap<usize, Input>| -> EdgeSender<u64> {
        if to >= total {
            return sink_inputs[to - total].0.clone();
        }
        match &inputs[&to] {
            Input::Single(tx, _) | Input::Merge(tx, _) => tx.clone(),
            Input::Zip(txs, _) => txs[slot].clone(),
        }
    };
    let mut outlets: Vec<Option<Outlet<u64>>> = (0..total)
        .map(|n| {
            let senders: Vec<_> = consumers[n]
                .iter()
                .map(|&(to, slot)| sender_for(to, slot, &inputs))
                .collect();
            Some(Outlet::broadcast(senders))
        })
        .collect();
    for (n, targets) in consumers.iter().enumerate() {
        for &(to, _) in targets {
            let to_name = if to >= total {
                name("sink", to - total)
            } else {
                name("n", to)
            };
            builder.edge(name("n", n), to_name);
        }
    }

    for (s, &len) in spec.sources.iter().enumerate() {
        let items = (0..len).map(move |j| s as u64 * 1000 + j);
        builder.source(
            name("n", s),
            source::iter(items),
            outlets[s].take().unwrap(),
            NodeConfig::new(),
        );
    }
    for (i, (kind, _, _)) in spec.stages.iter().enumerate() {
        let n = n_sources + i;
        let outlet = outlets[n].take().unwrap();
        let nm = name("n", n);
        let (workers, ordered) = spec.workers[i];
        let mut builder = Stages {
            builder: &mut builder,
            workers,
            ordered,
        };
        match (kind, inputs.remove(&n).unwrap()) {
            (Kind::Map(m), Input::Single(_, rx)) => {
                let m = *m;
                builder.add(
                    nm,
                    stage::map(move |v: u64| map(m, v)),
                    rx,
                    outlet,
                    options.clone(),
                )
            }
            (Kind::Filter(m), Input::Single(_, rx)) => {
                let m = *m;
                builder.add(
                    nm,
                    stage::filter(move |v: &u64| keep(m, *v)),
                    rx,
                    outlet,
                    options.clone(),
                )
            }
            (Kind::Panicky(m), Input::Single(_, rx)) => {
                let m = *m;
                let fragile = stage::map(move |v: u64| {
                    if keep(m, v) {
                        v
                    } else {
                        panic!("panicky stage on {v}")
                    }
                });
                builder.add(nm, fragile, rx, outlet, options.clone())
            }
            (Kind::FlatMap(k), Input::Single(_, rx)) => {
                let k = *k;
                builder.add(
                    nm,
                    stage::flat_map(move |v: u64| pieces(k, v)),
                    rx,
                    outlet,
                    options.clone(),
                )
            }
            (Kind::Zip, Input::Zip(_, zip)) => builder.add(
                nm,
                stage::map(|(a, b): (u64, u64)| join(a, b)),
                *zip,
                outlet,
                options.clone(),
            ),
            (Kind::Merge, Input::Merge(_, merge)) => {
                builder.add(nm, stage::map(|v: u64| v), merge, outlet, options.clone())
            }
            _ => unreachable!("inputs are made per kind above"),
        }
    }
    // The senders held in `inputs` were cloned into outlets; dropping the originals lets
    // each edge close when its producers end.
    drop(inputs);
    for (k, (tx, rx)) in sink_inputs.into_iter().enumerate() {
        drop(tx);
        builder.sink(name("sink", k), collected[k].sink(), rx, options.clone());
    }
    let report = builder
        .build()
        .run_blocking()
        .expect("trivial stages never fail");
    let results = sinks
        .iter()
        .zip(&collected)
        .map(|(&n, c)| (n, c.take()))
        .collect();
    (results, report)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn random_dags_lose_and_duplicate_nothing(spec in spec()) {
        // The panicky stages' panics are expected; keep their messages out of the output.
        std::panic::set_hook(Box::new(|_| {}));
        let expected = model(&spec);
        let (results, report) = run(&spec);
        // Back to the default hook, so that a failed property says what failed.
        drop(std::panic::take_hook());
        for (node, mut got) in results {
            let mut want: Vec<u64> = expected[node].iter().map(|&(_, v)| v).collect();
            got.sort_unstable();
            want.sort_unstable();
            prop_assert_eq!(got, want, "sink after node n{}\n{}", node, report);
        }
        let a = report.accounting();
        prop_assert!(a.is_balanced(), "{:?}\n{}", a, report);
        prop_assert_eq!(a.source_items, spec.sources.iter().sum::<u64>());
        for (i, (kind, _, _)) in spec.stages.iter().enumerate() {
            if let Kind::Panicky(_) = kind {
                let node = report.node(&format!("n{}", spec.sources.len() + i)).unwrap();
                prop_assert_eq!(node.panics, node.failed, "every failure of a panicky stage is a caught panic");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn ordered_workers_keep_the_source_order(len in 0u64..300, workers in 2usize..6, cap in 1usize..16) {
        let out = Collected::new();
        let (tx, rx) = edge(cap);
        let (sink_tx, sink_rx) = edge(cap);
        let mut builder = Builder::new();
        let options = NodeConfig::new();
        builder.source("src", source::iter(0..len), Outlet::single(tx), NodeConfig::new());
        // Uneven work, so workers finish out of order.
        let jitter = stage::map(|v: u64| {
            for _ in 0..(v * 7919 % 17) * 200 {
                std::hint::black_box(v);
            }
            v
        });
        builder.stage_with_workers("jitter", vec![jitter; workers], rx, Outlet::single(sink_tx), options.clone().ordered(), ErrorWiring::default());
        builder.sink("out", out.sink(), sink_rx, options);
        builder.edge("src", "jitter");
        builder.edge("jitter", "out");
        builder.build().run_blocking().unwrap();
        prop_assert_eq!(out.take(), (0..len).collect::<Vec<_>>());
    }
}
