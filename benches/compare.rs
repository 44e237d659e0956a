//! The pipeline against what users would write instead, side by side in one process.
//!
//! ```sh
//! cargo bench --bench compare              # everything, then one `ratio <name> <value>` line each
//! cargo bench --bench compare -- identity  # only the comparisons whose name contains `identity`
//! cargo bench --bench compare -- cpu2,seed4 # those of either
//! cargo bench --bench compare --features nats -- nats   # over a nats-server it starts itself
//! ```
//!
//! Each contender runs several times, alternating, and the median time counts, so a noisy
//! neighbour on a shared machine hurts both sides alike. Ratios are the other's time over
//! the pipeline's unless the name says otherwise (`_efficiency`: ideal over measured;
//! `_speedup`; `_us`, `_mb`, `_ms`: a measurement, not a ratio; `check_200_vs_20_chain`: the
//! 200-stage chain's `cargo check` time over the 20-stage one's, at most 12 wanted).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pipeline::prelude::*;

#[path = "support/bench.rs"]
mod bench;
#[path = "support/check.rs"]
mod check;
use bench::{middle, ratio, show, summary};
#[path = "support/from_spec.rs"]
mod from_spec;
#[path = "support/sum.rs"]
mod sum;
#[path = "support/words.rs"]
mod words;
use sum::sum_into;

#[cfg(feature = "nats")]
#[path = "support/nats.rs"]
mod nats;

const ITEMS: u64 = 1_000_000;
/// Set in the child process that measures peak memory on its own.
const CHILD: &str = "PIPELINE_BENCH_CHILD";

fn main() {
    if let Ok(which) = std::env::var(CHILD) {
        return child(&which);
    }
    // Several filters, comma-separated, pick every comparison any of them names.
    let wanted = bench::wanted();
    let (runtime, cores) = bench::runtime();
    println!("compare: {cores} cores, {ITEMS} items where not said otherwise\n");

    let mut ratios: Vec<(&str, f64)> = Vec::new();
    let mut record = |name: &'static str, value: f64| ratios.push((name, value));

    if wanted("identity20") {
        let fused = median(7, fused_identity20);
        let pipeline = median(7, || runtime.block_on(run_timed(identity20())));
        let batched = median(5, || runtime.block_on(tokio_identity20_batched()));
        let per_item = median(3, || runtime.block_on(tokio_identity20_per_item()));
        show("fused loop", fused);
        show("pipeline!", pipeline);
        show("tokio tasks, Vec batches of 256", batched);
        show("tokio tasks, one item per message", per_item);
        record("identity20_vs_fused", ratio(fused, pipeline));
        record("identity20_vs_tokio_per_item", ratio(per_item, pipeline));
        record("identity20_vs_tokio_batched", ratio(batched, pipeline));
        #[cfg(feature = "metrics")]
        {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
            let exported = median(7, || {
                let pipeline = metrics::with_local_recorder(&recorder, identity20);
                runtime.block_on(run_timed(pipeline))
            });
            show("pipeline!, Prometheus recorder attached", exported);
            record(
                "metrics_exported_vs_not_identity20",
                ratio(exported, pipeline),
            );
        }
        println!();
    }
    if wanted("spec_vs_macro") {
        let data = words::uuids(ITEMS);
        let count = Arc::new(AtomicU64::new(0));
        // Each run gets its own copy of the strings, made before its clock starts.
        let timed = |spec: bool| {
            let pipeline = if spec {
                from_spec::seeds_by_spec(data.clone(), &count)
            } else {
                from_spec::seeds_by_macro(data.clone(), &count)
            };
            let took = runtime.block_on(run_timed(pipeline));
            assert_eq!(count.load(Ordering::Relaxed), ITEMS);
            took
        };
        let mut by_macro = Vec::new();
        let mut by_spec = Vec::new();
        for _ in 0..5 {
            by_macro.push(timed(false));
            by_spec.push(timed(true));
        }
        let (by_macro, by_spec) = (middle(by_macro), middle(by_spec));
        show("seeds' graph, 1M uuid strings, pipeline!", by_macro);
        show("seeds' graph, 1M uuid strings, from a spec", by_spec);
        record("spec_vs_macro_seeds", ratio(by_macro, by_spec));
        let total = Arc::new(AtomicU64::new(0));
        let spec = median(7, || {
            runtime.block_on(run_timed(from_spec::identity20_by_spec(ITEMS, &total)))
        });
        let by_macro = median(7, || runtime.block_on(run_timed(identity20())));
        show("identity20, pipeline! (fused)", by_macro);
        show("identity20, from a spec", spec);
        record("spec_vs_macro_identity20", ratio(by_macro, spec));
        println!();
    }
    if wanted("diamond") {
        let fused = median(7, fused_diamond);
        let pipeline = median(7, || runtime.block_on(run_timed(diamond())));
        show("diamond, fused loop", fused);
        show("diamond, pipeline! (fan-out, two maps, zip)", pipeline);
        record("diamond_vs_fused", ratio(fused, pipeline));
        println!();
    }
    if wanted("seed4") {
        let items = 500;
        let stages = [1, 2, 3, 4].map(Duration::from_millis);
        let ideal = |workers: [u32; 4]| {
            let pace = stages
                .iter()
                .zip(workers)
                .map(|(d, w)| *d / w)
                .max()
                .unwrap();
            pace * items + stages.iter().sum::<Duration>()
        };
        // Medians of three: a 1 ms stage whose thread wakes late on a busy machine costs
        // the whole run that much, whatever the pipeline does.
        let one_each = median(3, || {
            runtime.block_on(run_timed(seed4(items, [1, 1, 1, 1])))
        });
        let by_cost = median(3, || {
            runtime.block_on(run_timed(seed4(items, [1, 2, 3, 4])))
        });
        println!(
            "seed4: stages of 1, 2, 3, 4 ms (a precise sleep: sleep, then spin the last 200 µs)"
        );
        show("seed4, one worker each", one_each);
        show("seed4, workers 1, 2, 3, 4", by_cost);
        record("seed4_efficiency", ratio(ideal([1, 1, 1, 1]), one_each));
        record(
            "seed4_workers_efficiency",
            ratio(ideal([1, 2, 3, 4]), by_cost),
        );
        println!();
    }
    if wanted("startup") {
        // The issue's shape: the first items must not run inline through the slow stages
        // before each splits off (item 1 arrived ~220 ms late when it took two slow items).
        let (items, ms) = (200, [10, 40, 40, 40]);
        let stages = ms.map(Duration::from_millis);
        let ideal = *stages.iter().max().unwrap() * items + stages[..3].iter().sum::<Duration>();
        let run = median(3, || runtime.block_on(run_timed(four_stages(items, ms))));
        println!(
            "startup: stages of 10, 40, 40, 40 ms, 200 items; ideal = bottleneck × items + fill"
        );
        show("startup, one worker each", run);
        record("startup_efficiency", ratio(ideal, run));
        println!();
    }
    if wanted("cpu2") {
        let work = Work::calibrate(Duration::from_micros(50));
        let one = median(3, || {
            runtime.block_on(run_timed(cpu_bound(work, 1, CPU_ITEMS)))
        });
        let two = median(3, || {
            runtime.block_on(run_timed(cpu_bound(work, 2, CPU_ITEMS)))
        });
        // What two threads of this machine give at all: its cores may be hyperthreads,
        // or shared with neighbours.
        let bare_one = median(3, || bare_threads(work, 1));
        let bare_two = median(3, || bare_threads(work, 2));
        show("cpu-bound stage (50 µs per item), 1 worker", one);
        show("cpu-bound stage (50 µs per item), 2 workers", two);
        show("the same work on 1 bare thread", bare_one);
        show("the same work split over 2 bare threads", bare_two);
        record("cpu2_speedup", ratio(one, two));
        record("cpu2_speedup_bare_threads", ratio(bare_one, bare_two));
        println!();
    }
    if wanted("workers2_cheap") {
        // Items of a few microseconds, where handing items to workers one by one costs
        // more than the items: a second worker must still not slow the stage down.
        let work = Work::calibrate(Duration::from_micros(2));
        let items = 200_000;
        let one = median(3, || runtime.block_on(run_timed(cpu_bound(work, 1, items))));
        let two = median(3, || runtime.block_on(run_timed(cpu_bound(work, 2, items))));
        show("cheap stage (2 µs per item), 1 worker", one);
        show("cheap stage (2 µs per item), 2 workers", two);
        record("workers2_cheap_speedup", ratio(one, two));
        println!();
    }
    if wanted("latency") {
        let p99 = runtime.block_on(light_load_p99());
        println!("light load: one item per ms through 4 stages, p99 end to end {p99:?}\n");
        record("latency_p99_light_us", p99.as_secs_f64() * 1e6);
    }
    if wanted("rss") || wanted("slow_sink") {
        let peak = peak_rss_of_child("slow_sink");
        println!("10M items into a sink that spins 1 µs per item: peak RSS {peak:.1} MB\n");
        record("slow_sink_peak_rss_mb", peak);
    }
    if wanted("check") {
        let short = check::check_chain(20, 3);
        let long = check::check_chain(200, 3);
        show("cargo check, a chain of 20 stages", short);
        show("cargo check, a chain of 200 stages", long);
        record(
            "check_200_vs_20_chain",
            long.as_secs_f64() / short.as_secs_f64(),
        );
        println!();
    }
    if wanted("macro") {
        let took = median(11, expand_50_nodes);
        show("expanding a 50-node pipeline!", took);
        record("macro_expand_ms_50_nodes", took.as_secs_f64() * 1e3);
        println!();
    }

    #[cfg(feature = "nats")]
    if wanted("nats") {
        match nats::Server::start() {
            Ok(server) => {
                use pipeline::remote::Delivery;
                let mut runs = 0;
                let mut run_name = move || {
                    runs += 1;
                    format!("bench{runs}")
                };
                let mut lost = Vec::new();
                let raw = median(5, || {
                    let (took, missing) = runtime.block_on(nats::raw(&server.url));
                    lost.push(missing);
                    took
                });
                let edge = median(5, || {
                    let run = run_name();
                    runtime.block_on(nats::pipeline_edge(&server.url, Delivery::AtMostOnce, &run))
                });
                let stored = median(3, || {
                    let run = run_name();
                    runtime.block_on(nats::pipeline_edge(
                        &server.url,
                        Delivery::AtLeastOnce,
                        &run,
                    ))
                });
                let raw_stored = median(3, || {
                    let run = run_name();
                    runtime.block_on(nats::raw_jetstream(&server.url, &run))
                });
                let items = nats::NATS_ITEMS;
                println!("nats: {items} u64 from one half of a graph to the other");
                show("raw async-nats, one publish per item", raw);
                if lost.iter().any(|&n| n > 0) {
                    println!("  (raw core NATS lost messages in some runs: {lost:?} of {items})");
                }
                show("pipeline! edge, at most once (core NATS)", edge);
                show("pipeline! edge, at least once (JetStream)", stored);
                show(
                    "raw async-nats JetStream, async publish, pull and ack",
                    raw_stored,
                );
                record("nats_vs_raw", ratio(raw, edge));
                record(
                    "nats_jetstream_items_per_s",
                    items as f64 / stored.as_secs_f64(),
                );
                record("nats_jetstream_vs_raw", ratio(raw_stored, stored));
                println!();
            }
            Err(why) => println!("nats: skipped: {why}\n"),
        }
    }

    summary(cores, &ratios);
}

/// The median of `runs` timings.
fn median(runs: usize, mut time: impl FnMut() -> Duration) -> Duration {
    middle((0..runs).map(|_| time()).collect())
}

async fn run_timed(pipeline: Pipeline) -> Duration {
    let started = Instant::now();
    let report = pipeline.run().await.expect("the benchmark pipeline failed");
    let took = started.elapsed();
    assert!(report.accounting().is_balanced(), "{report}");
    took
}

// ---- 1M u64 through 20 identity stages ----

fn fused_identity20() -> Duration {
    let started = Instant::now();
    let mut sum = 0u64;
    for x in 0..ITEMS {
        let mut v = x;
        for _ in 0..20 {
            v = black_box(v);
        }
        sum = sum.wrapping_add(v);
    }
    assert_eq!(black_box(sum), ITEMS * (ITEMS - 1) / 2);
    started.elapsed()
}

fn identity20() -> Pipeline {
    let total = Arc::new(AtomicU64::new(0));
    let id = || stage::map(|x: u64| black_box(x));
    pipeline! {
        numbers = source::iter(0..ITEMS);
        s1 = id(); s2 = id(); s3 = id(); s4 = id(); s5 = id();
        s6 = id(); s7 = id(); s8 = id(); s9 = id(); s10 = id();
        s11 = id(); s12 = id(); s13 = id(); s14 = id(); s15 = id();
        s16 = id(); s17 = id(); s18 = id(); s19 = id(); s20 = id();
        total = sum_into(&total);
        numbers => s1 => s2 => s3 => s4 => s5 => s6 => s7 => s8 => s9 => s10
            => s11 => s12 => s13 => s14 => s15 => s16 => s17 => s18 => s19 => s20 => total;
    }
}

/// 21 tasks joined by 21 channels, as one would wire them by hand.
async fn tokio_identity20_per_item() -> Duration {
    use tokio::sync::mpsc;
    let started = Instant::now();
    let (first_tx, mut rx) = mpsc::channel::<u64>(1024);
    for _ in 0..20 {
        let (tx, next_rx) = mpsc::channel(1024);
        let mut input = std::mem::replace(&mut rx, next_rx);
        tokio::spawn(async move {
            while let Some(x) = input.recv().await {
                if tx.send(black_box(x)).await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(async move {
        for x in 0..ITEMS {
            first_tx.send(x).await.unwrap();
        }
    });
    let mut sum = 0u64;
    while let Some(x) = rx.recv().await {
        sum = sum.wrapping_add(x);
    }
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    started.elapsed()
}

/// The same tasks passing `Vec`s of 256 items.
async fn tokio_identity20_batched() -> Duration {
    use tokio::sync::mpsc;
    const BATCH: usize = 256;
    let started = Instant::now();
    let (first_tx, mut rx) = mpsc::channel::<Vec<u64>>(16);
    for _ in 0..20 {
        let (tx, next_rx) = mpsc::channel(16);
        let mut input = std::mem::replace(&mut rx, next_rx);
        tokio::spawn(async move {
            while let Some(mut batch) = input.recv().await {
                for x in batch.iter_mut() {
                    *x = black_box(*x);
                }
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        });
    }
    tokio::spawn(async move {
        let mut batch = Vec::with_capacity(BATCH);
        for x in 0..ITEMS {
            batch.push(x);
            if batch.len() == BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH));
                first_tx.send(full).await.unwrap();
            }
        }
        if !batch.is_empty() {
            first_tx.send(batch).await.unwrap();
        }
    });
    let mut sum = 0u64;
    while let Some(batch) = rx.recv().await {
        for x in batch {
            sum = sum.wrapping_add(x);
        }
    }
    assert_eq!(sum, ITEMS * (ITEMS - 1) / 2);
    started.elapsed()
}

// ---- fan-out to two maps and zip back ----

fn fused_diamond() -> Duration {
    let started = Instant::now();
    let mut sum = 0u64;
    for x in 0..ITEMS {
        let (a, b) = (black_box(x * 2), black_box(x + 1));
        sum = sum.wrapping_add(a + b);
    }
    black_box(sum);
    started.elapsed()
}

fn diamond() -> Pipeline {
    let total = Arc::new(AtomicU64::new(0));
    let mut local = 0u64;
    pipeline! {
        numbers = source::iter(0..ITEMS);
        double = stage::map(|x: u64| black_box(x * 2));
        next = stage::map(|x: u64| black_box(x + 1));
        both = sink::for_each(move |(a, b): (u64, u64)| {
            local = local.wrapping_add(a + b);
            total.store(local, Ordering::Relaxed);
        });
        numbers => double, next;
        double, next => both;
    }
}

// ---- the seeds' four stages ----

/// Sleeps until 200 µs before the deadline, then spins: `thread::sleep` alone overshoots by
/// tens of microseconds, which over 500 items would be charged to the pipeline.
fn precise_sleep(d: Duration) {
    let deadline = Instant::now() + d;
    let margin = Duration::from_micros(200);
    if d > margin {
        std::thread::sleep(d - margin);
    }
    while Instant::now() < deadline {
        std::hint::spin_loop();
    }
}

/// Four plain stages of the given costs, one worker each.
fn four_stages(items: u32, ms: [u64; 4]) -> Pipeline {
    let stage = |ms: u64| {
        stage::map(move |x: u64| {
            precise_sleep(Duration::from_millis(ms));
            x
        })
    };
    let total = Arc::new(AtomicU64::new(0));
    pipeline! {
        items = source::iter(0..u64::from(items));
        s1 = stage(ms[0]);
        s2 = stage(ms[1]);
        s3 = stage(ms[2]);
        s4 = stage(ms[3]);
        out = sum_into(&total);
        items => s1 => s2 => s3 => s4 => out;
    }
}

fn seed4(items: u32, workers: [usize; 4]) -> Pipeline {
    let stage = |ms: u64| {
        stage::map(move |x: u64| {
            precise_sleep(Duration::from_millis(ms));
            x
        })
    };
    let total = Arc::new(AtomicU64::new(0));
    let mut builder = pipeline! {
        items = source::iter(0..u64::from(items));
        s1[workers(1)] = stage(1);
        s2[workers(2)] = stage(2);
        s3[workers(3)] = stage(3);
        s4[workers(4)] = stage(4);
        out = sum_into(&total);
        items => s1 => s2 => s3 => s4 => out;
    };
    if workers == [1, 1, 1, 1] {
        builder = pipeline! {
            items = source::iter(0..u64::from(items));
            s1 = stage(1);
            s2 = stage(2);
            s3 = stage(3);
            s4 = stage(4);
            out = sum_into(&total);
            items => s1 => s2 => s3 => s4 => out;
        };
    }
    builder
}

// ---- a CPU-bound stage on 1 and 2 workers ----

/// A fixed amount of arithmetic, calibrated to take about the asked time on this machine.
#[derive(Clone, Copy)]
struct Work {
    rounds: u64,
}

impl Work {
    fn calibrate(target: Duration) -> Work {
        let probe = Work { rounds: 100_000 };
        let started = Instant::now();
        black_box(probe.run(1));
        let per_round = started.elapsed().as_secs_f64() / probe.rounds as f64;
        Work {
            rounds: (target.as_secs_f64() / per_round).max(1.0) as u64,
        }
    }

    fn run(self, seed: u64) -> u64 {
        let mut x = seed | 1;
        for _ in 0..self.rounds {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x
    }
}

const CPU_ITEMS: u64 = 10_000;

/// The cpu-bound work split over `threads` plain threads, no pipeline: the machine's own
/// ceiling for `cpu2_speedup`.
fn bare_threads(work: Work, threads: u64) -> Duration {
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|first| {
            std::thread::spawn(move || {
                (first..CPU_ITEMS)
                    .step_by(threads as usize)
                    .fold(0u64, |sum, x| sum.wrapping_add(work.run(black_box(x))))
            })
        })
        .collect();
    for handle in handles {
        black_box(handle.join().unwrap());
    }
    started.elapsed()
}

fn cpu_bound(work: Work, workers: usize, items: u64) -> Pipeline {
    let total = Arc::new(AtomicU64::new(0));
    let crunch = move || stage::map(move |x: u64| work.run(black_box(x)));
    if workers == 1 {
        pipeline! {
            items = source::iter(0..items);
            crunch = crunch();
            out = sum_into(&total);
            items => crunch => out;
        }
    } else {
        pipeline! {
            items = source::iter(0..items);
            crunch[workers(2)] = crunch();
            out = sum_into(&total);
            items => crunch => out;
        }
    }
}

// ---- latency at light load ----

async fn light_load_p99() -> Duration {
    const LIGHT_ITEMS: usize = 2_000;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::with_capacity(LIGHT_ITEMS)));
    let seen = latencies.clone();
    let pass = || stage::map(|t: Instant| black_box(t));
    let pipeline = pipeline! {
        ticks = source::producer(|mut out: Output<Instant>| async move {
            let mut every = tokio::time::interval(Duration::from_millis(1));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            for _ in 0..LIGHT_ITEMS {
                every.tick().await;
                out.push(Instant::now()).await?;
            }
            Ok(())
        });
        a = pass(); b = pass(); c = pass(); d = pass();
        out = sink::for_each(move |t: Instant| seen.lock().unwrap().push(t.elapsed()));
        ticks => a => b => c => d => out;
    };
    run_timed(pipeline).await;
    let mut latencies = latencies.lock().unwrap().clone();
    latencies.sort();
    let at = |q: usize| latencies[latencies.len() * q / 100];
    println!(
        "light load latency: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        at(50),
        at(90),
        at(99),
        latencies[latencies.len() - 1]
    );
    at(99)
}

// ---- memory under backpressure, in a process of its own ----

fn peak_rss_of_child(which: &str) -> f64 {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(CHILD, which)
        .output()
        .expect("could not start the measuring child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("peak_rss_mb "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the child said no peak: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

fn child(which: &str) {
    assert_eq!(which, "slow_sink");
    const MANY: u64 = 10_000_000;
    let total = Arc::new(AtomicU64::new(0));
    let mut local = 0u64;
    let pipeline = pipeline! {
        numbers = source::iter(0..MANY);
        slow = sink::for_each(move |x: u64| {
            let until = Instant::now() + Duration::from_micros(1);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            local = local.wrapping_add(x);
            total.store(local, Ordering::Relaxed);
        });
        numbers => slow;
    };
    let report = pipeline.run_blocking().unwrap();
    assert_eq!(report.delivered(), MANY);
    println!("peak_rss_mb {:.1}", peak_rss_mb());
}

/// The process's peak resident set (`VmHWM`), in MB.
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

// ---- the macro ----

fn expand_50_nodes() -> Duration {
    let mut source = String::from("n0 = source::iter(0..10u64);\n");
    for i in 1..49 {
        source += &format!("n{i} = stage::map(|x: u64| x + {i});\n");
    }
    source += "n49 = sink::for_each(|_x: u64| {});\n";
    source += &(0..50)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(" => ");
    source += ";";
    let tokens: proc_macro2::TokenStream = source.parse().unwrap();
    let started = Instant::now();
    let expanded = pipeline_lang::expand::pipeline(tokens);
    let took = started.elapsed();
    let text = expanded.to_string();
    assert!(!text.contains("compile_error"), "{text}");
    took
}
