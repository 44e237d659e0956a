//! Runtime semantics, each checked on a small graph: fan-out, zip by lineage, merge,
//! flat-map lineage, backpressure, shutdown, abort, errors, panics, and the accounting.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pipeline::prelude::*;
use pipeline::{Failure, RunReport};

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn assert_balanced(report: &RunReport) {
    let a = report.accounting();
    assert!(a.is_balanced(), "unbalanced accounting {a:?}\n{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_graph_pairs_every_string_with_its_reversal() {
    let strings: Vec<String> = (0..20u64)
        .map(|i| format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        .collect();
    let pairs = Collected::new();
    let p = pipeline! {
        inp = source::iter(strings.clone());
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = pairs.sink();
        inp => rev, out;
        rev => out;
    };
    let report = p.run().await.unwrap();
    let got = sorted(pairs.take());
    let expected = sorted(
        strings
            .iter()
            .map(|s| (s.clone(), s.chars().rev().collect::<String>()))
            .collect(),
    );
    assert_eq!(got, expected);
    let a = report.accounting();
    assert_eq!(
        (
            a.source_items,
            a.delivered,
            a.filtered,
            a.failed,
            a.dropped_partial_tuples
        ),
        (20, 20, 0, 0, 0)
    );
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_broadcasts_every_item_to_every_branch() {
    let (left, right) = (Collected::new(), Collected::new());
    let p = pipeline! {
        nums = source::iter(0..1000u32);
        l = left.sink();
        r = right.sink();
        nums => l, r;
    };
    let report = p.run().await.unwrap();
    assert_eq!(sorted(left.take()), (0..1000).collect::<Vec<_>>());
    assert_eq!(sorted(right.take()), (0..1000).collect::<Vec<_>>());
    assert_eq!(report.accounting().fan_out_copies, 1000);
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_drops_and_counts_tuples_a_branch_filtered_and_keeps_the_rest_paired() {
    let pairs = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..10_000u64);
        odd[workers(2)] = stage::filter(|n: &u64| n % 2 == 1);
        square = stage::map(|n: u64| n * n);
        out = pairs.sink();
        nums => odd, square;
        odd, square => out;
    };
    let report = p.run().await.unwrap();
    let got = pairs.take();
    assert_eq!(got.len(), 5_000);
    assert!(got.iter().all(|&(n, sq)| n % 2 == 1 && sq == n * n));
    let out = report.node("out").unwrap();
    assert_eq!(out.dropped_partial_tuples, 5_000);
    assert_eq!(out.dropped_partial_items, 5_000);
    assert_eq!(report.node("odd").unwrap().filtered, 5_000);
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_of_two_sources_pairs_by_position_and_drops_the_longer_tail() {
    let pairs = Collected::new();
    let p = pipeline! {
        letters = source::iter("abcde".chars());
        numbers = source::iter(1..=3u8);
        out = pairs.sink();
        letters, numbers => out;
    };
    let report = p.run().await.unwrap();
    assert_eq!(sorted(pairs.take()), vec![('a', 1), ('b', 2), ('c', 3)]);
    assert_eq!(report.node("out").unwrap().dropped_partial_tuples, 2);
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_interleaves_inputs_of_one_type() {
    let all = Collected::new();
    let p = pipeline! {
        low = source::iter(0..500u32);
        high = source::iter(1000..1500u32);
        out[merge] = all.sink();
        low, high => out;
    };
    let report = p.run().await.unwrap();
    let expected: Vec<u32> = (0..500).chain(1000..1500).collect();
    assert_eq!(sorted(all.take()), expected);
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_after_a_shared_flat_map_pairs_each_piece_with_its_own_branch() {
    let pairs = Collected::new();
    let p = pipeline! {
        lines = source::iter(["a b", "", "c d e"].map(String::from));
        words = stage::flat_map(|l: String| l.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        upper = stage::map(|w: String| w.to_uppercase());
        len = stage::map(|w: String| w.len());
        out = pairs.sink();
        lines => words => upper, len;
        upper, len => out;
    };
    let report = p.run().await.unwrap();
    let expected: Vec<(String, usize)> = ["A", "B", "C", "D", "E"]
        .iter()
        .map(|w| (w.to_string(), 1))
        .collect();
    assert_eq!(sorted(pairs.take()), expected);
    let words = report.node("words").unwrap();
    assert_eq!(
        (
            words.received,
            words.emitted,
            words.filtered,
            words.expanded
        ),
        (3, 5, 1, 3)
    );
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_map_on_one_branch_only_pairs_nothing_and_says_so() {
    // Documented: the pieces of a flat-map have their own lineage, which the other branch
    // (that never split) does not share.
    let pairs = Collected::<(u32, u32)>::new();
    let p = pipeline! {
        nums = source::iter(0..10u32);
        twice = stage::flat_map(|n: u32| [n, n]);
        out = pairs.sink();
        nums => twice, out;
        twice => out;
    };
    let report = p.run().await.unwrap();
    assert!(pairs.is_empty());
    assert_eq!(report.node("out").unwrap().dropped_partial_items, 30);
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_bounds_how_far_a_source_runs_ahead_of_a_slow_sink() {
    let pushed = Arc::new(AtomicUsize::new(0));
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let counter = pushed.clone();
    let p = pipeline! {
        src = source::producer(move |mut out: Output<u32>| async move {
            for n in 0..10_000 {
                out.push(n).await?;
                counter.fetch_add(1, Ordering::SeqCst);
            }
            Ok(())
        });
        slow[capacity(4)] = sink::for_each_async(move |_n: u32| {
            let mut gate = gate_rx.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
            }
        });
        src => slow;
    };
    let run = p.spawn();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // At most: the edge (4), the sink's current batch (4), the producer's buffer (4), and the
    // item being pushed. Without a bound this would be all 10 000.
    let ahead = pushed.load(Ordering::SeqCst);
    assert!(
        ahead <= 13,
        "source ran {ahead} items ahead of a stalled sink"
    );
    gate_tx.send_replace(true);
    let report = run.wait().await.unwrap();
    assert_eq!(report.delivered(), 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_the_sources_and_drains_everything_already_produced() {
    let seen = Collected::new();
    let p = pipeline! {
        forever = source::producer(|mut out: Output<u64>| async move {
            let mut n = 0;
            loop {
                out.push(n).await?;
                n += 1;
                if n % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        });
        double = stage::map(|n: u64| n * 2);
        out = seen.sink();
        forever => double => out;
    };
    let run = p.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.shutdown();
    let report = run
        .wait()
        .await
        .expect("a graceful shutdown is a successful run");
    let got = sorted(seen.take());
    let produced = report.accounting().source_items;
    assert!(produced > 0);
    assert_eq!(
        got.len() as u64,
        produced,
        "every produced item is delivered"
    );
    assert_eq!(got, (0..produced).map(|n| n * 2).collect::<Vec<_>>());
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_ends_a_stuck_run_at_once_and_says_so() {
    let p = pipeline! {
        idle = source::producer(|mut out: Output<u8>| async move {
            out.push(1).await?;
            std::future::pending::<()>().await;
            Ok(())
        });
        stuck = sink::for_each_async(|_n: u8| std::future::pending::<()>());
        idle => stuck;
    };
    let run = p.spawn();
    tokio::time::sleep(Duration::from_millis(20)).await;
    run.abort();
    let err = tokio::time::timeout(Duration::from_secs(5), run.wait())
        .await
        .expect("abort must not hang")
        .unwrap_err();
    assert_eq!(err.failure, Failure::Aborted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_items_are_counted_and_kept_and_the_pipeline_goes_on() {
    let ok = Collected::new();
    let p = pipeline! {
        inputs = source::iter(["1", "x", "3", "y", "5"]);
        parse = stage::try_map(|s: &str| s.parse::<u32>());
        out = ok.sink();
        inputs => parse => out;
    };
    let report = p.run().await.unwrap();
    assert_eq!(sorted(ok.take()), vec![1, 3, 5]);
    let parse = report.node("parse").unwrap();
    assert_eq!(parse.failed, 2);
    assert_eq!(
        parse.errors,
        vec!["invalid digit found in string".to_string(); 2]
    );
    assert_balanced(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_fast_stops_the_run_naming_the_node_and_its_error() {
    let ok = Collected::new();
    let p = pipeline! {
        inputs = source::iter((0..100_000u32).map(|n| if n == 10 { "oops".to_string() } else { n.to_string() }));
        parse[fail_fast] = stage::try_map(|s: String| s.parse::<u32>());
        out = ok.sink();
        inputs => parse => out;
    };
    let err = p.run().await.unwrap_err();
    assert_eq!(
        err.failure,
        Failure::ItemFailed {
            node: "parse".into(),
            error: "invalid digit found in string".into()
        }
    );
    assert!(err.to_string().contains("node `parse` failed"));
    // The source stopped early, and what it had produced still drained.
    let a = err.report.accounting();
    assert!(a.source_items < 100_000);
    assert_eq!(a.delivered as usize, ok.len());
    assert!(a.is_balanced(), "{a:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_stage_fails_the_item_and_the_run_goes_on() {
    let ok = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..1000u32);
        fragile = stage::map(|n: u32| if n == 7 { panic!("seven is unlucky") } else { n });
        out = ok.sink();
        nums => fragile => out;
    };
    let report = tokio::time::timeout(Duration::from_secs(10), p.run())
        .await
        .expect("must not hang")
        .unwrap();
    assert_eq!(ok.len(), 999);
    let fragile = report.node("fragile").unwrap();
    assert_eq!(
        (fragile.failed, fragile.panics, fragile.restarts),
        (1, 1, 1)
    );
    assert_eq!(fragile.errors, vec!["panic: seven is unlucky".to_string()]);
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_panicking_source_ends_the_run_with_its_name() {
    let p = pipeline! {
        src = source::producer(|mut out: Output<u8>| async move {
            out.push(1).await?;
            Err("the feed went away".into())
        });
        out = sink::for_each(|_n: u8| {});
        src => out;
    };
    let err = p.run().await.unwrap_err();
    assert_eq!(
        err.failure,
        Failure::SourceFailed {
            node: "src".into(),
            error: "the feed went away".into()
        }
    );
    assert_eq!(
        err.report.delivered(),
        1,
        "what the source pushed before failing is delivered"
    );

    let p = pipeline! {
        src = source::iter((0..5u8).map(|n| if n == 3 { panic!("bad iterator") } else { n }));
        out = sink::for_each(|_n: u8| {});
        src => out;
    };
    let err = p.run().await.unwrap_err();
    assert_eq!(
        err.failure,
        Failure::Panicked {
            node: "src".into(),
            message: "bad iterator".into()
        }
    );
    assert_eq!(err.report.delivered(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_sources_async_stages_and_async_sinks_work_together() {
    let total = Arc::new(AtomicUsize::new(0));
    let sum = total.clone();
    let p = pipeline! {
        ticks = source::stream(futures::stream::iter(1..=100usize));
        slow_double = stage::map_async(|n: usize| async move {
            tokio::task::yield_now().await;
            n * 2
        });
        add = sink::for_each_async(move |n: usize| {
            let sum = sum.clone();
            async move {
                sum.fetch_add(n, Ordering::SeqCst);
            }
        });
        ticks => slow_double => add;
    };
    p.run().await.unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 2 * 5050);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_show_progress_while_the_run_goes_on() {
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let p = pipeline! {
        nums = source::iter(0..10u32);
        wait = sink::for_each_async(move |n: u32| {
            let mut gate = gate_rx.clone();
            async move {
                if n == 5 {
                    let _ = gate.wait_for(|open| *open).await;
                }
            }
        });
        nums => wait;
    };
    let run = p.spawn();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let live = run.snapshot();
    assert_eq!(live.node("nums").unwrap().emitted, 10);
    assert!(live.failure.is_none());
    gate_tx.send_replace(true);
    let report = run.wait().await.unwrap();
    assert_eq!(report.node("wait").unwrap().received, 10);
}

#[test]
fn run_blocking_needs_no_async_main() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(vec![3, 1, 2]);
        keep = stage::filter_map(|n: i32| (n != 1).then_some(n * 10));
        sink = out.sink();
        nums => keep => sink;
    };
    let report = p.run_blocking().unwrap();
    assert_eq!(sorted(out.take()), vec![20, 30]);
    assert_eq!(report.node("keep").unwrap().filtered, 1);
    println!("{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_source_iterator_counts_every_item_it_delivered() {
    let delivered = Collected::new();
    let p = pipeline! {
        nums = source::iter((0..1000u32).map(|n| if n == 500 { panic!("bad line") } else { n }));
        out = delivered.sink();
        nums => out;
    };
    let err = p.run().await.unwrap_err();
    assert!(matches!(err.failure, Failure::Panicked { .. }), "{err}");
    let a = err.report.accounting();
    assert_eq!(delivered.len(), 500);
    assert_eq!((a.source_items, a.delivered), (500, 500), "{}", err.report);
    assert_balanced(&err.report);
}

/// Snapshots taken while items flow never show a node with more outcomes than inputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_snapshots_never_show_more_out_than_in() {
    let p = pipeline! {
        nums = source::iter(0..2_000_000u64);
        odd[workers(2)] = stage::filter(|n: &u64| n % 2 == 1);
        work[workers(2)] = stage::map(|n: u64| n.wrapping_mul(31));
        out = sink::for_each(|n: u64| {
            std::hint::black_box(n);
        });
        nums => odd => work => out;
    };
    let handle = p.spawn();
    let progress = handle.progress();
    let mut looks = 0;
    while !progress.is_finished() {
        for node in progress.snapshot().nodes {
            if node.name == "nums" {
                continue;
            }
            let outcomes = node.emitted - node.expanded + node.filtered + node.failed;
            assert!(
                outcomes <= node.received,
                "`{}`: {} in, {} emitted, {} filtered",
                node.name,
                node.received,
                node.emitted,
                node.filtered
            );
        }
        looks += 1;
        tokio::task::yield_now().await;
    }
    handle.wait().await.unwrap();
    assert!(looks > 10, "the run ended before it could be watched");
}

/// `?` in `main` prints the error's `Debug`: a short paragraph, and the error value behind
/// it is the stage's own, as `source()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_error_is_short_and_its_source_is_the_stages_error() {
    let p = pipeline! {
        lines = source::iter(["1", "two", "3"].map(String::from));
        parse[fail_fast] = stage::try_map(|s: String| s.parse::<u32>());
        out = sink::for_each(|_n: u32| {});
        lines => parse => out;
    };
    let err = p.run().await.unwrap_err();
    let debug = format!("{err:?}");
    assert!(debug.lines().count() <= 3, "{debug}");
    assert!(debug.contains("node `parse` failed"), "{debug}");
    let source = std::error::Error::source(&err).expect("the stage's error");
    let parse = source
        .downcast_ref::<pipeline::NodeError>()
        .and_then(|e| e.downcast_ref::<std::num::ParseIntError>());
    assert!(parse.is_some(), "{source:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_a_pipeline_runs_it() {
    let p = pipeline! {
        nums = source::iter(0..10u32);
        out = sink::for_each(|_n: u32| {});
        nums => out;
    };
    let report = p.await.unwrap();
    assert_eq!(report.delivered(), 10);
}
