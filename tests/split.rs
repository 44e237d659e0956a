//! A node that a source runs inline on its thread may leave for a core of its own, and be
//! taken back inline when that did not pay (see `exec::lend` and `Outlet::judge_split`).
//! The decisions are measured on a quiet machine; here they are forced through a test hook,
//! so that both paths run on any machine, and every item is checked.

use std::sync::Mutex;

use pipeline::__private::{force_splits, splits_and_recalls};
use pipeline::prelude::*;

/// The hook is for the whole process: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const ITEMS: u64 = 200_000;

/// The source's items through a stage it runs inline, then a sink; what arrived, in order.
fn run(split: Option<bool>) -> (Vec<u64>, RunReport) {
    force_splits(split);
    let got = Collected::new();
    let p = pipeline! {
        numbers = source::iter(0..ITEMS);
        tripled = stage::try_map(|n: u64| {
            if n == ITEMS / 2 {
                // A pause, for items to queue on the edge when it is asked back.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            if n % 1000 == 999 { Err("every thousandth fails") } else { Ok(n * 3) }
        });
        out = got.sink();
        numbers => tripled => out;
    };
    let report = p.run_blocking().unwrap();
    force_splits(None);
    (got.take(), report)
}

fn expected() -> Vec<u64> {
    (0..ITEMS)
        .filter(|n| n % 1000 != 999)
        .map(|n| n * 3)
        .collect()
}

fn check(got: &[u64], report: &RunReport) {
    assert_eq!(got, expected(), "every item once, in order");
    let tripled = report.node("tripled").unwrap();
    assert_eq!(tripled.received, ITEMS, "{report}");
    assert_eq!(tripled.failed, ITEMS / 1000, "{report}");
    assert!(report.accounting().is_balanced(), "{report}");
}

/// Runs with the decisions forced (`stays`: split off and stay, or be taken back); checks
/// every item; returns how many nodes split off, and how many were taken back, meanwhile.
fn forced(stays: bool) -> (u64, u64) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (splits, recalls) = splits_and_recalls();
    let (got, report) = run(Some(stays));
    check(&got, &report);
    let (splits_now, recalls_now) = splits_and_recalls();
    (splits_now - splits, recalls_now - recalls)
}

#[test]
fn a_stage_that_splits_off_for_a_core_of_its_own_loses_and_repeats_nothing() {
    // `tripled` left the source's thread once, and stayed on its own.
    assert_eq!(forced(true), (1, 0));
}

#[test]
fn a_stage_taken_back_inline_runs_what_its_edge_held_first_and_loses_nothing() {
    // `tripled` left once and was asked back once; taken back, it stays.
    assert_eq!(forced(false), (1, 1));
}
