//! Loops: items fed back to a node that feeds them (a crawler's new links back to its
//! frontier). The run ends by itself once the sources are done and nothing is left in the
//! loop; a loop that does not converge hits a guard and ends with an error.

#[path = "support/within.rs"]
mod support;

use std::collections::HashSet;
use std::time::Duration;

use pipeline::graph::GraphBuilder;
use pipeline::{Collected, Failure, source, stage};

/// A fake web of `pages` pages: page `p` links to three others; every page is reachable
/// from page 0 (through `p + 1`), and most are linked from several.
fn links(page: u32, pages: u32) -> Vec<u32> {
    vec![
        (page * 7 + 1) % pages,
        (page.wrapping_mul(13) + 5) % pages,
        (page + 1) % pages,
    ]
}

/// `seeds => frontier => fetch => found; loop found => frontier; fetch => visited`: the
/// frontier drops pages it has seen, `fetch` "downloads" a page, `found` lists its links.
fn crawler(pages: u32, visited: &Collected<u32>) -> GraphBuilder {
    let mut graph = GraphBuilder::new();
    graph
        .source("seeds", source::iter([0u32]))
        .stage("frontier", || {
            let mut seen = HashSet::new();
            stage::filter(move |page: &u32| seen.insert(*page))
        })
        .stage("fetch", || stage::map(|page: u32| page))
        .stage("found", move || {
            stage::flat_map(move |page: u32| links(page, pages))
        })
        .sink("visited", visited.sink())
        .edge("seeds", "frontier")
        .edge("frontier", "fetch")
        .edge("fetch", "found")
        .edge("fetch", "visited")
        .loop_edge("found", "frontier");
    graph
}

/// What building `graph` says is wrong with it, message by message.
fn mistakes(graph: GraphBuilder) -> Vec<String> {
    let errors = graph.build().expect_err("the graph has a mistake");
    errors.iter().map(|e| e.message.clone()).collect()
}

#[test]
fn a_crawler_visits_each_of_10_000_pages_exactly_once_and_ends_by_itself() {
    support::within(Duration::from_secs(60), || {
        let visited = Collected::new();
        let report = crawler(10_000, &visited)
            .build()
            .unwrap()
            .run_blocking()
            .unwrap();
        let mut pages = visited.take();
        pages.sort_unstable();
        assert_eq!(pages, (0..10_000).collect::<Vec<u32>>(), "each page once");
        let accounting = report.accounting();
        assert!(accounting.is_balanced(), "{report}");
        // 1 seed, 3 links per page (2 extra each); every link but the 9 999 first visits
        // was a page already seen.
        assert_eq!(accounting.source_items, 1);
        assert_eq!(accounting.expanded, 20_000);
        assert_eq!(accounting.delivered, 10_000);
        assert_eq!(accounting.filtered, 30_000 - 9_999);
        let frontier = report.node("frontier").unwrap();
        assert_eq!(
            frontier.received, 30_001,
            "the seed and every link came round"
        );
        assert_eq!(frontier.fan_in.to_string(), "loop");
        // Reading the report copes with the cycle: the verdict, the table, the pictures.
        let _ = report.verdict();
        let text = report.to_string();
        // One seed's rate says little; the loop's entry says how fast the work went.
        assert!(
            text.contains("items/s into `frontier` (a loop's entry"),
            "{text}"
        );
        assert!(
            report.mermaid().contains("n3 --> n1"),
            "{}",
            report.mermaid()
        );
        assert!(report.html().contains("frontier"));
    });
}

#[test]
fn a_loop_that_never_converges_hits_its_guard_and_ends_with_an_error() {
    support::within(Duration::from_secs(60), || {
        let out: Collected<u64> = Collected::new();
        let mut graph = GraphBuilder::new();
        graph
            .source("start", source::iter([1u64]))
            .stage("again", || stage::map(|n: u64| n + 1))
            .stage("split", || stage::map(|n: u64| n))
            .sink("out", out.sink())
            .edge("start", "again")
            .edge("again", "split")
            .edge("split", "out")
            .loop_edge("split", "again");
        let error = graph.build().unwrap().run_blocking().unwrap_err();
        let failure = error.report.failure.clone().unwrap();
        assert!(
            matches!(&failure, Failure::LoopLimit { node, .. } if node == "again"),
            "{failure}"
        );
        assert!(
            failure
                .to_string()
                .starts_with("the loop into `again` does not converge: 1 item(s) came round more than 10000 times"),
            "{failure}"
        );
        // Each trip round also went to `out`; the item that would have gone round once more
        // is counted, and nothing is unaccounted for.
        assert_eq!(out.take().len(), 10_001);
        assert!(error.report.accounting().is_balanced(), "{}", error.report);
    });
}

#[test]
fn a_loop_edge_that_closes_no_loop_is_refused() {
    let out: Collected<u32> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", source::iter([1u32]))
        .stage("a", || stage::map(|n: u32| n))
        .sink("out", out.sink())
        .edge("inp", "a")
        .loop_edge("a", "out");
    assert_eq!(
        mistakes(graph),
        [
            "`loop a => out` closes no loop: `out` does not lead back to `a`; write it as a plain edge `a => out`"
        ]
    );
}

#[test]
fn a_cycle_without_a_loop_edge_says_how_to_write_one() {
    let out: Collected<u32> = Collected::new();
    let mut graph = GraphBuilder::new();
    graph
        .source("inp", source::iter([1u32]))
        .stage("a", || stage::map(|n: u32| n))
        .stage("b", || stage::map(|n: u32| n))
        .sink("out", out.sink())
        .configure("a", pipeline::NodeConfig::new().merge())
        .edge("inp", "a")
        .edge("a", "b")
        .edge("b", "a")
        .edge("b", "out");
    assert_eq!(
        mistakes(graph),
        [
            "this edge closes a cycle: a => b => a; remove one of these edges, or, if items are meant to go round, write the edge back as a loop edge: `loop b => a`"
        ]
    );
}

#[test]
fn the_macro_writes_a_loop_edge_as_a_statement() {
    support::within(Duration::from_secs(60), || {
        let visited = Collected::new();
        let pages = 2_000;
        let mut seen = HashSet::new();
        let pipeline = pipeline::pipeline! {
            seeds = source::iter([0u32, 1, 2]);
            frontier = stage::filter(move |page: &u32| seen.insert(*page));
            fetch[workers(4)] = stage::map_async(|page: u32| async move {
                tokio::task::yield_now().await;
                page
            });
            found = stage::flat_map(move |page: u32| links(page, pages));
            out = visited.sink();
            seeds => frontier => fetch => found;
            fetch => out;
            loop found => frontier;
        };
        let report = pipeline.run_blocking().unwrap();
        let mut got = visited.take();
        got.sort_unstable();
        assert_eq!(got, (0..pages).collect::<Vec<u32>>());
        assert!(report.accounting().is_balanced(), "{report}");
        assert_eq!(report.node("fetch").unwrap().workers, 4);
    });
}

/// A zip inside the loop pairs each item with itself again and ends with the loop; one of
/// its branches filters, so some tuples never complete and are dropped on the way.
#[test]
fn a_zip_inside_a_loop_pairs_and_the_loop_still_ends() {
    support::within(Duration::from_secs(60), || {
        let out: Collected<(u32, u32)> = Collected::new();
        let mut seen = HashSet::new();
        let sink = out.clone();
        let pipeline = pipeline::pipeline! {
            seeds = source::iter([1u32]);
            frontier = stage::filter(move |n: &u32| seen.insert(*n));
            same = stage::map(|n: u32| n);
            odd = stage::filter(|n: &u32| n % 2 == 1);
            pair = stage::map(|(a, b): (u32, u32)| (a, b));
            next = stage::flat_map(|(a, _): (u32, u32)| [a * 3 % 1000, (a + 2) % 1000]);
            found = sink.sink();
            seeds => frontier => same, odd;
            same, odd => pair => next;
            pair => found;
            loop next => frontier;
        };
        let report = pipeline.run_blocking().unwrap();
        let got = out.take();
        assert!(got.iter().all(|(a, b)| a == b && a % 2 == 1), "{got:?}");
        assert!(!got.is_empty());
        assert!(report.accounting().is_balanced(), "{report}");
    });
}
