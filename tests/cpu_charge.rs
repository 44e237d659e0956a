//! CPU time charged to the node whose code used it. In a file of its own, so that it runs
//! alone: the share a node running inline is charged is measured on its own batches, and
//! other tests running at once on a two-core machine deschedule those and skew it.

use pipeline::prelude::*;

/// A cheap CPU-bound stage that runs inline on its source's thread is charged its own CPU
/// time, not the source: the verdict then knows it computes and suggests no more workers
/// than cores.
#[test]
fn a_stage_running_inline_is_charged_its_own_cpu_time() {
    let p = pipeline! {
        nums = source::iter(0..150_000u64);
        // About 3 µs of arithmetic per item: cheap enough to stay inline.
        hash = stage::map(|n: u64| {
            let mut h = n;
            for _ in 0..300 {
                h = std::hint::black_box(h.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            h
        });
        out = sink::for_each(|h: u64| {
            std::hint::black_box(h);
        });
        nums => hash => out;
    };
    let report = p.run_blocking().unwrap();
    let (source, hash) = (report.node("nums").unwrap(), report.node("hash").unwrap());
    let (Some(source_cpu), Some(hash_cpu)) = (source.cpu, hash.cpu) else {
        panic!("both ran on a thread whose CPU time is measured\n{report}");
    };
    assert!(
        hash_cpu > source_cpu * 3,
        "the stage computed, not the source: {hash_cpu:?} vs {source_cpu:?}\n{report}"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if let Some(verdict) = report.verdict()
        && let Some(wanted) = verdict.suggestion.split("workers(").nth(1)
    {
        let wanted: usize = wanted.split(')').next().unwrap().parse().unwrap();
        assert!(wanted <= cores, "{verdict}");
    }
}
