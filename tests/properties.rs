//! Property: for random DAGs of trivial stages (fan-out, zip, merge, filters, flat-maps, small
//! capacities, several workers, ordered or not), every sink receives exactly what a reference
//! model computes (nothing lost, nothing duplicated) and the report's accounting balances;
//! and a stage with ordered workers keeps the source order.
//!
//! Random graphs cannot go through `pipeline!` (it runs at compile time), so they are built
//! at run time with the public `GraphBuilder`, which wires the same runtime: single inputs
//! are edges a stage may run inline on, so chains of stages run inline and panicky stages
//! go back to loops of their own midway.

use std::collections::HashMap;

use pipeline::graph::GraphBuilder;
use pipeline::lineage::Lineage;
use pipeline::{Collected, NodeConfig, source, stage};
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

/// Runs the spec; returns each sink's items (keyed by the node it hangs off) and the report.
fn run(spec: &Spec) -> (Vec<(usize, Vec<u64>)>, pipeline::RunReport) {
    let n_sources = spec.sources.len();
    let total = n_sources + spec.stages.len();
    let mut consumed = vec![false; total];
    for (_, inputs, _) in &spec.stages {
        for &from in inputs {
            consumed[from] = true;
        }
    }
    // Every node nobody consumes gets a collecting sink.
    let sinks: Vec<usize> = (0..total).filter(|&n| !consumed[n]).collect();
    let collected: Vec<Collected<u64>> = sinks.iter().map(|_| Collected::new()).collect();

    let mut graph = GraphBuilder::new();
    for (s, &len) in spec.sources.iter().enumerate() {
        let items = (0..len).map(move |j| s as u64 * 1000 + j);
        graph.source(format!("n{s}"), source::iter(items));
    }
    for (i, (kind, inputs, cap)) in spec.stages.iter().enumerate() {
        let name = format!("n{}", n_sources + i);
        match *kind {
            Kind::Map(m) => graph.stage(&name, move || stage::map(move |v: u64| map(m, v))),
            Kind::Filter(m) => {
                graph.stage(&name, move || stage::filter(move |v: &u64| keep(m, *v)))
            }
            Kind::Panicky(m) => graph.stage(&name, move || {
                stage::map(move |v: u64| {
                    if keep(m, v) {
                        v
                    } else {
                        panic!("panicky stage on {v}")
                    }
                })
            }),
            Kind::FlatMap(k) => {
                graph.stage(&name, move || stage::flat_map(move |v: u64| pieces(k, v)))
            }
            Kind::Zip => graph.zip_stage(&name, || stage::map(|(a, b): (u64, u64)| join(a, b))),
            Kind::Merge => graph.stage(&name, || stage::map(|v: u64| v)),
        };
        // Panicking workers are replaced however often it takes.
        let mut config = NodeConfig::new().restarts(u32::MAX).capacity(*cap);
        let (workers, ordered) = spec.workers[i];
        if workers > 1 {
            config = config.workers(workers);
            if ordered {
                config = config.ordered();
            }
        }
        if matches!(kind, Kind::Merge) {
            config = config.merge();
        }
        graph.configure(&name, config);
        for &from in inputs {
            graph.edge(format!("n{from}"), &name);
        }
    }
    for (k, &n) in sinks.iter().enumerate() {
        let name = format!("sink{k}");
        graph
            .sink(&name, collected[k].sink())
            .configure(&name, NodeConfig::new().capacity(3))
            .edge(format!("n{n}"), &name);
    }
    let report = graph
        .build()
        .expect("a well-formed graph")
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
        let out: Collected<u64> = Collected::new();
        let mut graph = GraphBuilder::new();
        graph
            .source("src", source::iter(0..len))
            // Uneven work, so workers finish out of order.
            .stage("jitter", || stage::map(|v: u64| {
                for _ in 0..(v * 7919 % 17) * 200 {
                    std::hint::black_box(v);
                }
                v
            }))
            .sink("out", out.sink())
            .configure("jitter", NodeConfig::new().workers(workers).ordered().capacity(cap))
            .configure("out", NodeConfig::new().capacity(cap))
            .edge("src", "jitter")
            .edge("jitter", "out");
        graph.build().unwrap().run_blocking().unwrap();
        prop_assert_eq!(out.take(), (0..len).collect::<Vec<_>>());
    }
}

/// Parameters of the graph both front ends build: `src => a => b, c; b, c => zipped;
/// zipped, d => out` with `src => d` (a flat-map, a filter, a zip and a merge).
#[derive(Debug, Clone)]
struct Shape {
    items: u64,
    mul: u64,
    drop_every: u64,
    pieces: u64,
    workers: usize,
    capacity: usize,
}

fn shape() -> impl Strategy<Value = Shape> {
    (0u64..400, 2u64..9, 2u64..6, 0u64..4, 1usize..4, 1usize..64).prop_map(
        |(items, mul, drop_every, pieces, workers, capacity)| Shape {
            items,
            mul,
            drop_every,
            pieces,
            workers,
            capacity,
        },
    )
}

fn by_macro(s: &Shape, out: &Collected<u64>) -> pipeline::RunReport {
    let Shape {
        items,
        mul,
        drop_every,
        pieces: k,
        workers,
        capacity,
    } = s.clone();
    let sink = out.clone();
    let p = pipeline::pipeline! {
        src = source::iter(0..items);
        a = stage::flat_map(move |v: u64| pieces(k, v));
        b[workers(workers)] = stage::map(move |v: u64| map(mul, v));
        c = stage::filter(move |v: &u64| keep(drop_every, *v));
        zipped = stage::map(|(x, y): (u64, u64)| join(x, y));
        d = stage::map(|v: u64| v + 1_000_000);
        out[merge, capacity(capacity)] = sink.sink();
        src => a => b, c;
        b, c => zipped;
        zipped, d => out;
        src => d;
    };
    p.run_blocking().unwrap()
}

fn by_builder(s: &Shape, out: &Collected<u64>) -> pipeline::RunReport {
    let Shape {
        items,
        mul,
        drop_every,
        pieces: k,
        workers,
        capacity,
    } = s.clone();
    let mut graph = GraphBuilder::new();
    graph
        .source("src", source::iter(0..items))
        .stage("a", move || stage::flat_map(move |v: u64| pieces(k, v)))
        .stage("b", move || stage::map(move |v: u64| map(mul, v)))
        .stage("c", move || {
            stage::filter(move |v: &u64| keep(drop_every, *v))
        })
        .zip_stage("zipped", || stage::map(|(x, y): (u64, u64)| join(x, y)))
        .stage("d", || stage::map(|v: u64| v + 1_000_000))
        .sink("out", out.sink())
        .configure("b", NodeConfig::new().workers(workers))
        .configure("out", NodeConfig::new().merge().capacity(capacity));
    for (from, to) in [
        ("src", "a"),
        ("a", "b"),
        ("a", "c"),
        ("b", "zipped"),
        ("c", "zipped"),
        ("zipped", "out"),
        ("d", "out"),
        ("src", "d"),
    ] {
        graph.edge(from, to);
    }
    graph.build().unwrap().run_blocking().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A graph built at run time behaves exactly as the same graph through `pipeline!`:
    /// the same items out, the same accounting, node by node.
    #[test]
    fn the_builder_and_the_macro_agree(s in shape()) {
        let (from_macro, from_builder) = (Collected::new(), Collected::new());
        let (a, b) = (by_macro(&s, &from_macro), by_builder(&s, &from_builder));
        let (mut x, mut y): (Vec<u64>, Vec<u64>) = (from_macro.take(), from_builder.take());
        x.sort_unstable();
        y.sort_unstable();
        prop_assert_eq!(x, y);
        prop_assert_eq!(a.accounting(), b.accounting());
        prop_assert!(a.accounting().is_balanced());
        for node in &a.nodes {
            let other = b.node(&node.name).unwrap();
            prop_assert_eq!(
                (node.received, node.emitted, node.filtered, node.failed, node.workers),
                (other.received, other.emitted, other.filtered, other.failed, other.workers),
                "node {}", node.name
            );
        }
    }
}
