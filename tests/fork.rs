//! Diamonds of plain maps run in one pass per item (the runtime's `fuse::fork`): the same
//! results and counts as node by node, with each item through every branch before the next.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::prelude::*;

/// Runs `p` to its end, failing the test if it takes more than 20 s (a hang).
async fn run_or_hang(p: Pipeline) -> RunReport {
    tokio::time::timeout(Duration::from_secs(20), p.run())
        .await
        .expect("must not hang")
        .unwrap()
}

/// What a node received, emitted and failed.
fn counts(report: &RunReport, name: &str) -> (u64, u64, u64) {
    let node = report.node(name).unwrap();
    (node.received, node.emitted, node.failed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_of_maps_takes_each_item_through_both_branches_before_the_next() {
    // Each branch notes the items it sees: node by node, a branch goes through a whole
    // batch before the other starts on it; in one pass, they take turns item by item.
    let log = Arc::new(Mutex::new(Vec::new()));
    let (log_a, log_b) = (log.clone(), log.clone());
    let sum = Arc::new(Mutex::new(0u64));
    let total = sum.clone();
    let n = 100_000u64;
    let p = pipeline! {
        nums = source::iter(0..n);
        double = stage::map(move |x: u64| {
            log_a.lock().unwrap().push(('a', x));
            x * 2
        });
        next = stage::map(move |x: u64| {
            log_b.lock().unwrap().push(('b', x));
            x + 1
        });
        both = sink::for_each(move |(a, b): (u64, u64)| {
            assert_eq!(a / 2 + 1, b, "the parts of one item");
            *total.lock().unwrap() += a + b;
        });
        nums => double, next;
        double, next => both;
    };
    let report = run_or_hang(p).await;
    assert_eq!(*sum.lock().unwrap(), (0..n).map(|x| 3 * x + 1).sum::<u64>());
    let log = log.lock().unwrap();
    let in_turns = log
        .windows(2)
        .filter(|w| w[0].0 == 'a' && w[1] == ('b', w[0].1))
        .count() as u64;
    assert!(
        in_turns > n / 2,
        "most items went through both branches in one pass ({in_turns} of {n})"
    );
    for name in ["double", "next"] {
        assert_eq!(counts(&report, name), (n, n, 0), "{name}");
    }
    assert_eq!(report.node("both").unwrap().received, n);
    assert_eq!(report.node("both").unwrap().delivered(), n);
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fork_runs_branches_in_the_zips_order_and_the_chain_after_it() {
    // Three branches: one with two stages, one straight from the source, one with a
    // stage; the source's edges come in another order than the zip's inputs. The zip
    // node is a stage, with a map and a sink after it.
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let n = 50_000u64;
    let p = pipeline! {
        nums = source::iter(0..n);
        plus = stage::map(|x: u64| x + 1);
        times = stage::map(|x: u64| x * 10);
        label = stage::map(|x: u64| format!("#{x}"));
        join = stage::map(|(a, b, c): (u64, u64, String)| format!("{a}/{b}/{c}"));
        upper = stage::map(|s: String| s.to_uppercase());
        out = sink::for_each(move |s: String| kept.lock().unwrap().push(s));
        nums => label, plus;
        plus => times;
        times, nums, label => join;
        join => upper => out;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<String> = (0..n)
        .map(|x| format!("{}/{x}/#{x}", (x + 1) * 10).to_uppercase())
        .collect();
    assert!(*got.lock().unwrap() == expected, "every tuple, in order");
    for name in ["plus", "times", "label", "join", "upper"] {
        assert_eq!(counts(&report, name), (n, n, 0), "{name}");
    }
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_on_a_branch_drops_the_items_tuple_and_counts_its_parts() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let n = 100_000u64;
    let unlucky = 70_000u64;
    let p = pipeline! {
        nums = source::iter(0..n);
        a = stage::map(|x: u64| x);
        b = stage::map(move |x: u64| if x == unlucky { panic!("unlucky") } else { x });
        c = stage::map(|x: u64| x);
        all = sink::for_each(move |(a, b, c): (u64, u64, u64)| {
            assert!(a == b && b == c, "the parts of one item");
            kept.lock().unwrap().push(a);
        });
        nums => a, b, c;
        a, b, c => all;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<u64> = (0..n).filter(|x| *x != unlucky).collect();
    assert!(
        *got.lock().unwrap() == expected,
        "in order, only that tuple lost"
    );
    assert_eq!(counts(&report, "a"), (n, n, 0));
    assert_eq!(counts(&report, "b"), (n, n - 1, 1));
    // `c` saw the item or not: the usual path runs it, a pass stops at `b`.
    assert!(counts(&report, "c").0 >= n - 1);
    let all = report.node("all").unwrap();
    assert_eq!(all.received, n - 1);
    // The tuple lost `b`'s part: `a`'s part and `c`'s copy were dropped with it.
    assert_eq!(
        (all.dropped_partial_tuples, all.dropped_partial_items),
        (1, 2)
    );
    assert!(report.accounting().is_balanced());
}
