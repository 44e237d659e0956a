//! The NATS seed's experiment: a generic pipeline of four stages that take 1, 2, 3 and 4 ms,
//! run five ways, each with its time, throughput, efficiency against the ideal, and the
//! run report's verdict.
//!
//! ```sh
//! cargo run --release --example stages                # 100 items, stages of 1,2,3,4 ms
//! cargo run --release --example stages -- 500 1,2,3,4
//! ```
//!
//! - P0: sequential, no pipeline: every item through all four stages in one loop.
//! - P1: stages as async code that blocks (`std::thread::sleep`): the async workers stall.
//! - P2: the same stages with async sleeps.
//! - P3: synchronous stages, one worker each, on threads of their own.
//! - P4: workers proportional to each stage's cost: 1, 2, 3, 4.

use std::time::{Duration, Instant};

use pipeline::RunReport;
use pipeline::prelude::*;

/// The stages' durations and how many items to push through them.
struct Setup {
    items: u64,
    stages: [Duration; 4],
}

impl Setup {
    fn from_args() -> Setup {
        let mut args = std::env::args().skip(1);
        let items = args.next().and_then(|n| n.parse().ok()).unwrap_or(100);
        let ms: Vec<u64> = args
            .next()
            .map(|s| s.split(',').filter_map(|m| m.parse().ok()).collect())
            .unwrap_or_default();
        let ms: [u64; 4] = ms.try_into().unwrap_or([1, 2, 3, 4]);
        Setup {
            items,
            stages: ms.map(Duration::from_millis),
        }
    }

    /// The best a pipeline can do with `workers[i]` workers on stage `i`: the slowest stage
    /// (per worker) sets the pace, plus the time for the first item to get through.
    fn ideal(&self, workers: [u32; 4]) -> Duration {
        let pace = self
            .stages
            .iter()
            .zip(workers)
            .map(|(d, w)| *d / w)
            .max()
            .unwrap_or_default();
        pace * (self.items as u32) + self.stages.iter().sum::<Duration>()
    }
}

fn p0_sequential(setup: &Setup) -> Duration {
    let started = Instant::now();
    for _ in 0..setup.items {
        for stage in setup.stages {
            std::thread::sleep(stage);
        }
    }
    started.elapsed()
}

fn p1_blocking_in_async(setup: &Setup) -> RunReport {
    let [a, b, c, d] = setup.stages;
    let block = |cost: Duration| {
        move |n: u64| async move {
            std::thread::sleep(cost); // blocks the async worker it runs on
            n
        }
    };
    let p = pipeline! {
        items = source::iter(0..setup.items);
        s1 = stage::map_async(block(a));
        s2 = stage::map_async(block(b));
        s3 = stage::map_async(block(c));
        s4 = stage::map_async(block(d));
        out = sink::for_each(|_n: u64| {});
        items => s1 => s2 => s3 => s4 => out;
    };
    p.run_blocking().expect("the stages never fail")
}

fn p2_async(setup: &Setup) -> RunReport {
    let [a, b, c, d] = setup.stages;
    let pause = |cost: Duration| {
        move |n: u64| async move {
            tokio::time::sleep(cost).await;
            n
        }
    };
    let p = pipeline! {
        items = source::iter(0..setup.items);
        s1 = stage::map_async(pause(a));
        s2 = stage::map_async(pause(b));
        s3 = stage::map_async(pause(c));
        s4 = stage::map_async(pause(d));
        out = sink::for_each(|_n: u64| {});
        items => s1 => s2 => s3 => s4 => out;
    };
    p.run_blocking().expect("the stages never fail")
}

fn work(cost: Duration) -> impl FnMut(u64) -> u64 + Clone + Send + 'static {
    move |n| {
        std::thread::sleep(cost);
        n
    }
}

fn p3_thread_per_stage(setup: &Setup) -> RunReport {
    let [a, b, c, d] = setup.stages;
    let p = pipeline! {
        items = source::iter(0..setup.items);
        s1 = stage::map(work(a));
        s2 = stage::map(work(b));
        s3 = stage::map(work(c));
        s4 = stage::map(work(d));
        out = sink::for_each(|_n: u64| {});
        items => s1 => s2 => s3 => s4 => out;
    };
    p.run_blocking().expect("the stages never fail")
}

fn p4_workers_by_cost(setup: &Setup) -> RunReport {
    let [a, b, c, d] = setup.stages;
    let p = pipeline! {
        items = source::iter(0..setup.items);
        s1 = stage::map(work(a));
        s2[workers(2)] = stage::map(work(b));
        s3[workers(3)] = stage::map(work(c));
        s4[workers(4)] = stage::map(work(d));
        out = sink::for_each(|_n: u64| {});
        items => s1 => s2 => s3 => s4 => out;
    };
    p.run_blocking().expect("the stages never fail")
}

/// How much longer than asked a sleep really takes: the seed saw stages finish "faster"
/// than their duration because of its timer; here sleeps overshoot instead.
fn timer_resolution(asked: Duration) -> (Duration, Duration) {
    let rounds = 50;
    let started = Instant::now();
    for _ in 0..rounds {
        std::thread::sleep(asked);
    }
    let thread_sleep = started.elapsed() / rounds;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let async_sleep = runtime.block_on(async {
        let started = Instant::now();
        for _ in 0..rounds {
            tokio::time::sleep(asked).await;
        }
        started.elapsed() / rounds
    });
    (thread_sleep, async_sleep)
}

fn main() {
    let setup = Setup::from_args();
    let ms: Vec<String> = setup
        .stages
        .iter()
        .map(|d| d.as_millis().to_string())
        .collect();
    println!(
        "{} items through 4 stages of {} ms, on {} cores\n",
        setup.items,
        ms.join(", "),
        num_cores()
    );

    let one_each = setup.ideal([1, 1, 1, 1]);
    let sequential = setup.stages.iter().sum::<Duration>() * (setup.items as u32);
    let p0 = p0_sequential(&setup);
    let runs = [
        (
            "P1 blocking calls in async stages",
            p1_blocking_in_async(&setup),
            one_each,
        ),
        ("P2 async stages", p2_async(&setup), one_each),
        (
            "P3 a thread per stage",
            p3_thread_per_stage(&setup),
            one_each,
        ),
        (
            "P4 workers 1, 2, 3, 4",
            p4_workers_by_cost(&setup),
            setup.ideal([1, 2, 3, 4]),
        ),
    ];

    println!(
        "{:<36} {:>9} {:>10} {:>11}",
        "variant", "time", "items/s", "efficiency"
    );
    let row = |name: &str, time: Duration, ideal: Duration| {
        let per_second = setup.items as f64 / time.as_secs_f64();
        let efficiency = ideal.as_secs_f64() / time.as_secs_f64() * 100.0;
        println!(
            "{name:<36} {:>7.0}ms {per_second:>10.0} {efficiency:>10.0}%",
            time.as_secs_f64() * 1000.0
        );
    };
    row("P0 sequential, no pipeline", p0, sequential);
    for (name, report, ideal) in &runs {
        row(name, report.elapsed, *ideal);
    }
    println!();
    for (name, report, _) in &runs {
        match report.verdict() {
            Some(verdict) => println!("{name}: {verdict}"),
            None => println!("{name}: no node was saturated"),
        }
        for warning in report.warnings().iter().take(1) {
            println!("{name}: warning: {warning}");
        }
    }
    // The P3 run as a page to look at: its graph coloured by how busy each stage was.
    let page = std::env::temp_dir().join("pipeline-stages-p3.html");
    match std::fs::write(&page, runs[2].1.html()) {
        Ok(()) => println!("\nthe P3 run, drawn: {}", page.display()),
        Err(e) => println!("\ncould not write {}: {e}", page.display()),
    }
    let asked = setup.stages[0];
    let (thread_sleep, async_sleep) = timer_resolution(asked);
    println!(
        "\ntimer resolution: asking for {asked:?}, `std::thread::sleep` takes {thread_sleep:.2?} and `tokio::time::sleep` {async_sleep:.2?}\n\
         (tokio's timer counts whole milliseconds, so async sleeps overshoot; efficiencies above include it)"
    );
}

fn num_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
