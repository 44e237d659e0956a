//! The paths through the runtime's unsafe code, end to end: a chain's pass mapping a batch
//! in its own allocation, a pass into a sink that keeps state in its fields (moved into the
//! pass's frame and back), a stage too large to move, a panic in the middle of a pass, and a
//! fork's kernel pairing its branches again.
//!
//! CI runs this file under Miri (see `.ci/run`), where what counts as a slow item stretches
//! so that the kernels engage as they do natively; each test checks that they did, so it
//! cannot pass by taking only the safe path. The batches are small to keep Miri's run short.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pipeline::__private::kernel_passes;
use pipeline::prelude::*;

/// Enough items for the kernels to be timed cheap and then run a few passes.
const ITEMS: u64 = if cfg!(miri) { 1_500 } else { 50_000 };

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `p` to its end and returns its report and how many kernel passes ran meanwhile (the
/// count is per process: the tests of this file run one at a time, see `serial`).
fn run(p: Pipeline) -> (RunReport, u64) {
    let before = kernel_passes();
    let report = runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(600), p.run())
            .await
            .expect("must not hang")
            .unwrap()
    });
    (report, kernel_passes() - before)
}

/// Kernel passes are counted per process: these tests take turns.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn a_chain_of_maps_runs_in_one_pass_over_owned_items() {
    let _turn = serial();
    let out = Collected::new();
    // Strings own heap memory: a slot read twice or never would show as a double free or a
    // leak under Miri.
    let p = pipeline! {
        nums = source::iter(0..ITEMS);
        text = stage::map(|n: u64| n.to_string());
        longer = stage::map(|s: String| s + "!");
        shorter = stage::map(|mut s: String| { s.pop(); s });
        keep = out.sink();
        nums => text => longer => shorter => keep;
    };
    let (report, passes) = run(p);
    let expected: Vec<String> = (0..ITEMS).map(|n| n.to_string()).collect();
    assert_eq!(out.take(), expected);
    assert!(report.accounting().is_balanced());
    assert!(passes > 0, "the chain kernel never ran a pass");
}

/// A sink that adds up what it gets in a field, and publishes the sum when it ends.
struct Sum {
    total: u64,
    published: Arc<AtomicU64>,
}

impl pipeline::Sink for Sum {
    type In = u64;
    const SYNC: bool = true;

    async fn consume(&mut self, item: u64) -> Result<(), BoxError> {
        self.consume_sync(item)
    }

    fn consume_sync(&mut self, item: u64) -> Result<(), BoxError> {
        self.total += item;
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), BoxError> {
        self.published.store(self.total, Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_pass_into_a_sink_keeps_its_state_through_a_panic() {
    let _turn = serial();
    let published = Arc::new(AtomicU64::new(0));
    let sum = Sum {
        total: 0,
        published: published.clone(),
    };
    let unlucky = ITEMS / 2;
    let p = pipeline! {
        nums = source::iter(0..ITEMS);
        a = stage::map(move |n: u64| {
            if n == unlucky {
                panic!("unlucky {n}");
            }
            n
        });
        b = stage::map(|n: u64| n + 1);
        total = pipeline::SinkNode::new(sum);
        nums => a => b => total;
    };
    let (report, passes) = run(p);
    let expected: u64 = (0..ITEMS).filter(|n| *n != unlucky).map(|n| n + 1).sum();
    assert_eq!(published.load(Ordering::SeqCst), expected);
    assert_eq!(report.node("a").unwrap().panics, 1);
    assert!(report.accounting().is_balanced());
    assert!(passes > 0, "the chain kernel never ran a pass");
}

#[test]
fn a_stage_too_large_to_move_runs_in_place() {
    let _turn = serial();
    // 512 bytes of state: a pass uses it where it is rather than copying it to its frame.
    let table: [u64; 64] = std::array::from_fn(|i| i as u64);
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..ITEMS);
        look_up = stage::map(move |n: u64| table[(n % 64) as usize] + n);
        double = stage::map(|n: u64| n * 2);
        keep = out.sink();
        nums => look_up => double => keep;
    };
    let (report, passes) = run(p);
    let expected: Vec<u64> = (0..ITEMS).map(|n| (n % 64 + n) * 2).collect();
    assert_eq!(out.take(), expected);
    assert!(report.accounting().is_balanced());
    assert!(passes > 0, "the chain kernel never ran a pass");
}

#[test]
fn a_fork_pairs_its_branches_again() {
    let _turn = serial();
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..ITEMS);
        double = stage::map(|n: u64| n * 2);
        text = stage::map(|n: u64| n.to_string());
        pair = out.sink();
        nums => double, text;
        double, text => pair;
    };
    let (report, passes) = run(p);
    let expected: Vec<(u64, String)> = (0..ITEMS).map(|n| (n * 2, n.to_string())).collect();
    assert_eq!(out.take(), expected);
    assert!(report.accounting().is_balanced());
    assert!(passes > 0, "the fork kernel never ran a pass");
}
