use std::time::Duration;

use super::*;
use crate::exec::Failed;
use crate::sink::Collected;
use crate::{source, stage};

fn words() -> SourceNode<impl Source<Out = String>> {
    source::iter(["ab", "cd", "ef"].map(String::from))
}

fn reverse() -> StageNode<impl Stage<In = String, Out = String> + Clone> {
    stage::map(|s: String| s.chars().rev().collect::<String>())
}

fn errors(graph: GraphBuilder) -> Vec<String> {
    match graph.build() {
        Ok(_) => panic!("expected mistakes"),
        Err(errors) => errors.iter().map(|e| e.message.clone()).collect(),
    }
}

#[test]
fn names_made_at_run_time_name_the_nodes_of_the_report() {
    let out = Collected::new();
    let names: Vec<String> = ["read", "flip", "keep"]
        .iter()
        .map(|n| format!("{n}-{}", 1))
        .collect();
    let mut graph = GraphBuilder::new();
    graph
        .source(names[0].clone(), words())
        .stage(names[1].clone(), reverse)
        .sink(names[2].clone(), out.sink())
        .edge(&names[0], &names[1])
        .edge(&names[1], &names[2]);
    let report = graph.build().unwrap().run_blocking().unwrap();
    let mut got: Vec<String> = out.take();
    got.sort();
    assert_eq!(got, ["ba", "dc", "fe"]);
    let nodes: Vec<&str> = report.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(nodes, ["read-1", "flip-1", "keep-1"]);
    assert!(report.accounting().is_balanced());
}

#[test]
fn a_type_mismatch_names_both_nodes_and_both_types() {
    let out: Collected<usize> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", words())
        .stage("rev", reverse)
        .sink("out", out.sink())
        .edge("inp", "rev")
        .edge("rev", "out");
    assert_eq!(
        errors(graph),
        ["edge `rev => out`: `rev` sends `String` but `out` expects `usize`"]
    );
}

/// `inp => len, out; inp => out; len => out`: a zip sink `out` fed words, then their
/// lengths, whatever tuple it takes.
fn words_and_lengths_into<S: Sink>(out: SinkNode<S>) -> GraphBuilder
where
    S::In: ZipInput,
{
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", words())
        .stage("len", || stage::map(|s: String| s.len()))
        .zip_sink("out", out)
        .edge("inp", "len")
        .edge("inp", "out")
        .edge("len", "out");
    graph
}

#[test]
fn a_zip_in_the_wrong_order_is_one_mistake_with_the_order_that_fits() {
    let out: Collected<(usize, String)> = Collected::new();
    assert_eq!(
        errors(words_and_lengths_into(out.sink())),
        [
            "`out` receives `(usize, String)`, one item per input in the order its edges are added, but its edges send `(String, usize)` in that order: add them in the tuple's order, `len => out` then `inp => out`"
        ]
    );
}

#[test]
fn a_zip_of_the_wrong_types_says_which_place_of_the_tuple_each_edge_takes() {
    let out: Collected<(String, String)> = Collected::new();
    assert_eq!(
        errors(words_and_lengths_into(out.sink())),
        [
            "edge `len => out`: `out` receives `(String, String)`, one item per input in the order its edges are added, and `len` sends `usize` where that tuple has `String`"
        ]
    );
}

#[test]
fn several_inputs_into_a_node_not_added_as_a_zip_say_how_to_zip_or_merge() {
    let out: Collected<String> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("a", words())
        .source("b", words())
        .sink("out", out.sink())
        .edge("a", "out")
        .edge("b", "out");
    let errors = errors(graph);
    assert!(
        errors[0].contains("`out` has 2 inputs, so it takes a tuple of 2 items")
            && errors[0].contains("add it with `zip_sink`")
            && errors[0].contains("or mark it `merge`"),
        "{errors:#?}"
    );

    // Merged, the same graph runs.
    let out: Collected<String> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("a", words())
        .source("b", words())
        .sink("out", out.sink())
        .configure("out", NodeConfig::new().merge())
        .edge("a", "out")
        .edge("b", "out");
    let report = graph.build().unwrap().run_blocking().unwrap();
    assert_eq!(out.take().len(), 6);
    assert!(report.accounting().is_balanced());
}

#[test]
fn every_mistake_is_reported_at_once_with_the_macros_words() {
    let out: Collected<String> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", words())
        .source("inp", words())
        .stage("rev", reverse)
        .stage("again", reverse)
        .sink("out", out.sink())
        .configure("rev", NodeConfig::new().workers(0))
        .configure("out", NodeConfig::new().workers(2))
        .configure("nobody", NodeConfig::new())
        .edge("inp", "rev")
        .edge("rev", "again")
        .edge("again", "rev")
        .edge("rev", "out")
        .edge("out", "inp")
        .edge("inp", "rve");
    let errors = errors(graph);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(has("node `inp` is added twice"), "{errors:#?}");
    assert!(
        has("options for `nobody`, but there is no node `nobody`"),
        "{errors:#?}"
    );
    assert!(
        has("edge `inp => rve`: there is no node `rve`: did you mean `rev`?"),
        "{errors:#?}"
    );
    // The remaining checks run once the names resolve.
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", words())
        .stage("rev", reverse)
        .stage("again", reverse)
        .sink("out", out.sink())
        .configure("rev", NodeConfig::new().workers(0))
        .configure("out", NodeConfig::new().workers(2))
        .edge("inp", "rev")
        .edge("rev", "again")
        .edge("again", "rev")
        .edge("rev", "out")
        .edge("out", "inp");
    let errors = self::errors(graph);
    let has = |needle: &str| errors.iter().any(|e| e.contains(needle));
    assert!(
        has("`rev`: `workers(0)` would never process anything"),
        "{errors:#?}"
    );
    assert!(
        has("edge `out => inp`: `inp` is a source, which takes no input"),
        "{errors:#?}"
    );
    // The same edge is not also "out of a sink": one mistake, one error.
    assert!(
        !has("`out` is a sink, which sends nothing on"),
        "{errors:#?}"
    );
    assert!(
        has("this edge closes a cycle: rev => again => rev"),
        "{errors:#?}"
    );
    assert!(
        has("`workers` runs a stage on several workers, and `out` is"),
        "{errors:#?}"
    );
}

#[test]
fn failed_items_go_to_the_dead_letter_node_after_retries() {
    let good: Collected<u32> = Collected::new();
    let bad: Collected<Failed<u32>> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("nums", source::iter(0..10u32))
        .stage("odd", || {
            stage::try_map(|n: u32| if n % 2 == 1 { Ok(n) } else { Err("even") })
        })
        .sink("good", good.sink())
        .sink("bad", bad.sink())
        .configure(
            "odd",
            NodeConfig::new()
                .retry(1)
                .retry_pauses(Duration::ZERO, Duration::ZERO)
                .dead_letter("bad"),
        )
        .edge("nums", "odd")
        .edge("odd", "good");
    let report = graph.build().unwrap().run_blocking().unwrap();
    let mut good = good.take();
    good.sort();
    assert_eq!(good, [1, 3, 5, 7, 9]);
    let mut bad: Vec<u32> = bad.take().into_iter().map(|f| f.item).collect();
    bad.sort();
    assert_eq!(bad, [0, 2, 4, 6, 8]);
    assert!(report.accounting().is_balanced());
}

#[test]
fn a_dead_letter_node_of_the_wrong_type_is_named_with_both_types() {
    let good: Collected<u32> = Collected::new();
    let bad: Collected<String> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("nums", source::iter(0..10u32))
        .stage("odd", || {
            stage::try_map(|n: u32| if n % 2 == 1 { Ok(n) } else { Err("even") })
        })
        .sink("good", good.sink())
        .sink("bad", bad.sink())
        .configure("odd", NodeConfig::new().dead_letter("bda"))
        .edge("nums", "odd")
        .edge("odd", "good");
    let errors = errors(graph);
    assert!(
        errors.iter().any(|e| e.contains(
            "`dead_letter(bda)`: there is no node `bda` in this pipeline: did you mean `bad`?"
        )),
        "{errors:#?}"
    );
    let mut graph = GraphBuilder::new();
    graph
        .source("nums", source::iter(0..10u32))
        .stage("odd", || {
            stage::try_map(|n: u32| if n % 2 == 1 { Ok(n) } else { Err("even") })
        })
        .sink("good", good.sink())
        .sink("bad", bad.sink())
        .configure("odd", NodeConfig::new().dead_letter("bad"))
        .edge("nums", "odd")
        .edge("odd", "good");
    assert_eq!(
        self::errors(graph),
        [
            "`dead_letter(bad)` on `odd`: `bad` takes `String`, but `odd`'s failed items are `Failed<u32>`"
        ]
    );
}

#[test]
fn workers_run_copies_made_by_the_stages_function() {
    let out: Collected<u64> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("nums", source::iter(0..1000u64))
        .stage("double", || stage::map(|n: u64| n * 2))
        .sink("out", out.sink())
        .configure("double", NodeConfig::new().workers(3).ordered())
        .edge("nums", "double")
        .edge("double", "out");
    let report = graph.build().unwrap().run_blocking().unwrap();
    assert_eq!(out.take(), (0..1000u64).map(|n| n * 2).collect::<Vec<_>>());
    let double = report.nodes.iter().find(|n| n.name == "double").unwrap();
    assert_eq!(double.workers, 3);
}

#[test]
fn every_option_of_the_table_is_one_a_node_config_can_set() {
    let all = NodeConfig::new()
        .capacity(1)
        .workers(2)
        .ordered()
        .timeout(Duration::from_secs(1))
        .retry(1)
        .retry_if(|_| true)
        .restarts(1)
        .dead_letter("x")
        .after("y")
        .fail_fast()
        .merge();
    let mut set = all.options_set();
    let mut table: Vec<&str> = pipeline_lang::options::OPTIONS
        .iter()
        .map(|d| d.name)
        .collect();
    set.sort();
    table.sort();
    assert_eq!(set, table);
}

#[test]
fn types_are_named_as_users_write_them() {
    assert_eq!(
        entry::without_paths("(alloc::string::String, pipeline_core::exec::policy::Failed<u32>)"),
        "(String, Failed<u32>)"
    );
    assert_eq!(
        entry::without_paths(
            "alloc::vec::Vec<std::collections::HashMap<u8, alloc::string::String>>"
        ),
        "Vec<HashMap<u8, String>>"
    );
}

/// A spec writes options as text; each one but `retry_if` (Rust code) can be set that way.
#[cfg(feature = "spec")]
#[test]
fn every_option_but_retry_if_can_be_set_from_text() {
    use crate::spec::OptionArg::{Count, Duration as Pause, Node};
    for d in pipeline_lang::options::OPTIONS {
        let args = match d.name {
            "timeout" => vec![Pause(Duration::from_millis(5))],
            "retry" => vec![Count(2), Pause(Duration::from_millis(5))],
            "dead_letter" | "after" => vec![Node("x".into())],
            _ if d.args == pipeline_lang::options::Args::None => vec![],
            _ => vec![Count(3)],
        };
        let set = NodeConfig::new().set(d.name, &args);
        match d.name {
            "retry_if" => assert!(set.unwrap_err().contains("Rust predicate")),
            name => assert_eq!(set.unwrap().options_set(), [name], "{name}"),
        }
    }
    let auto = NodeConfig::new()
        .set("workers", &[Node("auto".into())])
        .unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(auto.worker_count(), cores);
    let wrong = NodeConfig::new().set("timeout", &[Count(5)]).unwrap_err();
    assert_eq!(
        wrong,
        "`timeout` takes a duration here, such as `500ms` or `2s`, not `5`"
    );
}

/// A distributed graph with no plan in the environment runs whole in one process.
#[cfg(feature = "nats")]
#[test]
fn a_distributed_graph_needs_each_item_type_registered_to_cross_and_then_runs() {
    let lengths: Collected<usize> = Collected::new();
    let shape = |graph: &mut GraphBuilder| {
        graph
            .distributed("lengths")
            .source("inp", words())
            .stage("rev", reverse)
            .stage("len", || stage::map(|s: String| s.len()))
            .sink("out", lengths.sink())
            .edge("inp", "rev")
            .edge("rev", "len")
            .edge("len", "out");
    };
    let mut graph = GraphBuilder::new();
    shape(&mut graph);
    graph.crossing::<String>();
    assert_eq!(
        errors(graph),
        [
            "edge `len => out` may cross processes, so its items travel as bytes, and `usize` is not registered to: add `crossing::<usize>()` (the type must implement serde's `Serialize` and `Deserialize`)"
        ]
    );
    let mut graph = GraphBuilder::new();
    shape(&mut graph);
    graph.crossing::<String>().crossing::<usize>();
    let report = graph.build().unwrap().run_blocking().unwrap();
    assert_eq!(lengths.take(), [2, 2, 2]);
    assert!(report.accounting().is_balanced());
}
