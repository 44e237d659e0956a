//! Graphs from spec files, as a user writes them: a registry of named constructors, a TOML
//! or JSON spec, every mistake reported with its line and column.

use pipeline::graph::{GraphSpec, Registry};
use pipeline::{Collected, source, stage};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: usize,
}

struct Outputs {
    pairs: Collected<(String, String)>,
    strings: Collected<String>,
    lengths: Collected<usize>,
}

fn registry() -> (Registry, Outputs) {
    let outputs = Outputs {
        pairs: Collected::new(),
        strings: Collected::new(),
        lengths: Collected::new(),
    };
    let (pairs, strings, lengths) = (
        outputs.pairs.clone(),
        outputs.strings.clone(),
        outputs.lengths.clone(),
    );
    let mut registry = Registry::new();
    registry
        .source("words", |args: Count| {
            source::iter((0..args.count).map(|n| format!("w{n:03}")))
        })
        .source("numbers", |_: ()| source::iter(0..10usize))
        .stage("reverse", |_: ()| {
            stage::map(|s: String| s.chars().rev().collect::<String>())
        })
        .stage("upper", |_: ()| stage::map(|s: String| s.to_uppercase()))
        .stage("length", |_: ()| stage::map(|s: String| s.len()))
        .zip_stage("join", |_: ()| {
            stage::map(|(a, b): (String, String)| format!("{a}+{b}"))
        })
        .sink("strings", move |_: ()| strings.sink())
        .sink("lengths", move |_: ()| lengths.sink())
        .zip_sink("pairs", move |_: ()| pairs.sink())
        .zip_sink("counted", |_: ()| {
            pipeline::sink::for_each(|(_, _): (usize, String)| {})
        });
    (registry, outputs)
}

const SEEDS: &str = r#"
edges = ["inp => rev, out", "rev => out"]

[nodes.inp]
use = "words"
args = { count = 300 }

[nodes.rev]
use = "reverse"
options = ["workers(3)", "ordered"]

[nodes.out]
use = "pairs"
"#;

#[test]
fn the_seeds_graph_from_toml_delivers_every_pair() {
    let (registry, outputs) = registry();
    let spec = GraphSpec::from_toml(SEEDS).unwrap();
    let report = spec.build(&registry).unwrap().run_blocking().unwrap();
    let mut got = outputs.pairs.take();
    got.sort();
    let mut expected: Vec<(String, String)> = (0..300)
        .map(|n| {
            let word = format!("w{n:03}");
            let reversed = word.chars().rev().collect();
            (word, reversed)
        })
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    assert!(report.accounting().is_balanced(), "{report}");
    // The report names the nodes as the spec does, and `rev` ran on its three workers.
    let names: Vec<&str> = report.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["inp", "rev", "out"]);
    assert_eq!(report.node("rev").unwrap().workers, 3);
}

#[test]
fn json_reads_as_toml_does() {
    let (registry, outputs) = registry();
    let spec = GraphSpec::from_json(
        r#"{
            "edges": ["inp => n1", "n1 => n2, n3", "n2 => n3, n4", "n3 => n4"],
            "nodes": {
                "inp": {"use": "words", "args": {"count": 4}},
                "n1": {"use": "reverse"},
                "n2": {"use": "upper"},
                "n3": {"use": "join"},
                "n4": {"use": "pairs"}
            }
        }"#,
    )
    .unwrap();
    let report = spec.build(&registry).unwrap().run_blocking().unwrap();
    let mut got = outputs.pairs.take();
    got.sort();
    let expected: Vec<(String, String)> = (0..4)
        .map(|n| {
            let reversed: String = format!("w{n:03}").chars().rev().collect();
            let upper = reversed.to_uppercase();
            (upper.clone(), format!("{reversed}+{upper}"))
        })
        .collect();
    assert_eq!(got, expected);
    assert!(report.accounting().is_balanced());
}

#[test]
fn inserting_a_stage_is_an_edit_of_the_spec() {
    let (registry, outputs) = registry();
    let spec = SEEDS
        .replace(
            r#"edges = ["inp => rev, out", "rev => out"]"#,
            r#"edges = ["inp => loud => rev", "inp => out", "rev => out"]"#,
        )
        .replace(
            "[nodes.out]",
            "[nodes.loud]\nuse = \"upper\"\n\n[nodes.out]",
        );
    let spec = GraphSpec::from_toml(&spec).unwrap();
    spec.build(&registry).unwrap().run_blocking().unwrap();
    let got = outputs.pairs.take();
    assert_eq!(got.len(), 300);
    assert!(
        got.iter()
            .all(|(w, r)| *r == w.to_uppercase().chars().rev().collect::<String>())
    );
}

/// Builds `spec` and returns its mistakes as `line:column: message`.
fn mistakes(spec: &str, json: bool) -> Vec<String> {
    let (registry, _) = registry();
    let parsed = if json {
        GraphSpec::from_json(spec)
    } else {
        GraphSpec::from_toml(spec)
    };
    let errors = match parsed {
        Ok(spec) => spec.build(&registry).expect_err("the spec has a mistake"),
        Err(errors) => errors,
    };
    errors
        .iter()
        .map(|e| {
            format!(
                "{}:{}: {}",
                e.line.map_or("-".into(), |l| l.to_string()),
                e.column.map_or("-".into(), |c| c.to_string()),
                e.message
            )
        })
        .collect()
}

/// A spec split over processes, `numbers => lengths` (`usize`).
const DISTRIBUTED: &str = "distributed = \"seeds\"\nedges = [\"inp => out\"]\n[nodes.inp]\nuse = \"numbers\"\n[nodes.out]\nuse = \"lengths\"\n";

#[cfg(not(feature = "nats"))]
#[test]
fn a_spec_split_over_processes_needs_the_nats_feature() {
    assert_eq!(
        mistakes(DISTRIBUTED, false),
        [
            "1:16: `distributed`: a graph split over processes needs the `nats` feature of `pipeline`"
        ]
    );
}

#[cfg(feature = "nats")]
#[test]
fn a_spec_split_over_processes_needs_its_item_types_registered_to_cross() {
    assert_eq!(
        mistakes(DISTRIBUTED, false),
        [
            "2:18: edge `inp => out` may cross processes, so its items travel as bytes, and `usize` is not registered to: add `crossing::<usize>()` (the type must implement serde's `Serialize` and `Deserialize`)"
        ]
    );
}

/// One spec per kind of mistake, each with the message it gets and where it points.
#[test]
fn every_kind_of_mistake_is_reported_with_its_line() {
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "an unknown node in an edge",
            "edges = [\"inp => rev\", \"rev => otu\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = 1 }\n[nodes.rev]\nuse = \"reverse\"\n[nodes.out]\nuse = \"strings\"\n",
            &["1:32: edge `rev => otu`: there is no node `otu`: did you mean `out`?"],
        ),
        (
            "an unknown registry name",
            "edges = [\"inp => out\"]\n[nodes.inp]\nuse = \"numbres\"\n[nodes.out]\nuse = \"lengths\"\n",
            &[
                "3:8: node `inp` uses `numbres`, which is not in the registry: did you mean `numbers`?",
            ],
        ),
        (
            "a cycle",
            "edges = [\"inp => a => b => a\", \"b => out\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = 1 }\n[nodes.a]\nuse = \"upper\"\noptions = [\"merge\"]\n[nodes.b]\nuse = \"reverse\"\n[nodes.out]\nuse = \"strings\"\n",
            &[
                "1:28: this edge closes a cycle: a => b => a; remove one of these edges, or, if items are meant to go round, write the edge back as a loop edge: `loop b => a`",
            ],
        ),
        (
            "an edge into a source",
            "edges = [\"inp => out\", \"out => inp\"]\n[nodes.inp]\nuse = \"numbers\"\n[nodes.out]\nuse = \"lengths\"\n",
            &["1:32: edge `out => inp`: `inp` is a source, which takes no input"],
        ),
        (
            "a zip of the wrong types",
            "edges = [\"inp => len, out\", \"len => out\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = 1 }\n[nodes.len]\nuse = \"length\"\n[nodes.out]\nuse = \"pairs\"\n",
            &[],
        ),
        (
            "a zip's inputs swapped",
            "edges = [\"inp => len, out\", \"len => out\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = 1 }\n[nodes.len]\nuse = \"length\"\n[nodes.out]\nuse = \"counted\"\n",
            &[],
        ),
        (
            "a type mismatch on an edge",
            "edges = [\"inp => rev => out\"]\n[nodes.inp]\nuse = \"numbers\"\n[nodes.rev]\nuse = \"reverse\"\n[nodes.out]\nuse = \"strings\"\n",
            &[],
        ),
        (
            "an option where it does not fit, and workers(0)",
            "edges = [\"inp => rev => out\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = 1 }\n[nodes.rev]\nuse = \"reverse\"\noptions = [\"workers(0)\"]\n[nodes.out]\nuse = \"strings\"\noptions = [\"ordered\"]\n",
            &[],
        ),
        (
            "an unknown option and bad arguments",
            "edges = [\"inp => out\"]\n[nodes.inp]\nuse = \"words\"\nargs = { count = \"many\" }\n[nodes.out]\nuse = \"strings\"\noptions = [\"capasity(4)\", \"timeout(5)\"]\n",
            &[],
        ),
        (
            "a TOML syntax error",
            "edges = [\"inp => out\"\n[nodes.inp]\nuse = \"numbers\"\n",
            &[],
        ),
        (
            "an unknown key",
            "edges = [\"inp => out\"]\n[nodes.inp]\nuse = \"numbers\"\nopitons = []\n",
            &[],
        ),
        (
            "a mistake inside an edge",
            "edges = [\"inp => rev[workers(2)] => out\"]\n",
            &[],
        ),
    ];
    let mut report = String::new();
    for (what, spec, expected) in cases {
        let got = mistakes(spec, false);
        report.push_str(&format!("{what}:\n"));
        for line in &got {
            report.push_str(&format!("  {line}\n"));
        }
        if !expected.is_empty() {
            assert_eq!(&got, expected, "{what}");
        }
    }
    insta::assert_snapshot!(report);
}

#[test]
fn json_mistakes_point_at_their_line_too() {
    let got = mistakes(
        "{\n  \"edges\": [\"inp => out\"],\n  \"nodes\": {\n    \"inp\": {\"use\": \"numbers\"},\n    \"out\": {\"use\": \"strngs\"}\n  }\n}",
        true,
    );
    assert_eq!(
        got,
        ["5:21: node `out` uses `strngs`, which is not in the registry: did you mean `strings`?"]
    );
    let syntax = mistakes("{\n  \"edges\": [\"inp => out\",]\n}", true);
    assert_eq!(syntax.len(), 1);
    assert!(syntax[0].starts_with("2:"), "{syntax:?}");
}

#[test]
fn a_file_that_cannot_be_read_is_an_error_naming_it() {
    let errors = GraphSpec::read("no/such/spec.toml").unwrap_err();
    let shown = errors.to_string();
    assert!(
        shown.starts_with("no/such/spec.toml has 1 mistake:\nno/such/spec.toml: cannot read it:"),
        "{shown}"
    );
}

/// A loop in a spec, written as in the macro: `loop found => frontier`.
#[test]
fn a_spec_can_hold_a_loop() {
    let visited: Collected<u32> = Collected::new();
    let sink = visited.clone();
    let mut registry = Registry::new();
    registry
        .source("seed", |_: ()| source::iter([0u32]))
        .stage("dedup", |_: ()| {
            let mut seen = std::collections::HashSet::new();
            stage::filter(move |page: &u32| seen.insert(*page))
        })
        .stage("links", |args: Count| {
            let pages = args.count as u32;
            stage::flat_map(move |page: u32| [(page * 3 + 1) % pages, (page + 1) % pages])
        })
        .sink("visited", move |_: ()| sink.sink());
    let spec = GraphSpec::from_toml(
        r#"
        edges = ["seed => frontier => found", "frontier => out", "loop found => frontier"]
        nodes.seed.use = "seed"
        nodes.frontier.use = "dedup"
        nodes.found = { use = "links", args = { count = 500 } }
        nodes.out.use = "visited"
        "#,
    )
    .unwrap();
    let report = spec.build(&registry).unwrap().run_blocking().unwrap();
    let mut got = visited.take();
    got.sort_unstable();
    assert_eq!(got, (0..500).collect::<Vec<u32>>());
    assert!(report.accounting().is_balanced(), "{report}");
}
