//! Runs that used to hang. Each scenario runs under a hard time limit, on a thread of its
//! own where the hang could be in a runtime's drop: a hang fails the test instead of
//! stalling the suite.

use std::time::Duration;

use pipeline::prelude::*;

#[path = "support/within.rs"]
mod support;
use support::within;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A crawler's frontier: the producer pushes its seeds, then waits for the links its own
/// sink sends back. What it pushed must leave while it waits, or neither side ever moves.
#[test]
fn a_producer_waiting_on_its_own_sink_sends_what_it_pushed() {
    let delivered = within(Duration::from_secs(20), || {
        runtime().block_on(async {
            let (found_tx, mut found_rx) = tokio::sync::mpsc::unbounded_channel::<u32>();
            let p = pipeline! {
                frontier = source::producer(move |mut out: Output<u32>| async move {
                    // Quick pushes while `fetch` is busy: they fill a batch.
                    for seed in 0..1000 {
                        out.push(seed).await?;
                    }
                    // Every seed comes back as a link once fetched.
                    for _ in 0..1000 {
                        if found_rx.recv().await.is_none() {
                            break;
                        }
                    }
                    Ok(())
                });
                fetch = stage::map(|page: u32| {
                    std::thread::sleep(Duration::from_micros(20));
                    page
                });
                links = sink::for_each(move |page: u32| {
                    let _ = found_tx.send(page);
                });
                frontier => fetch => links;
            };
            p.run().await.unwrap().accounting().delivered
        })
    });
    assert_eq!(delivered, 1000);
}

/// Dropping the run (here under a timeout) while an endless iterator feeds a chain that
/// runs on its thread: the run stops, and the runtime can be dropped at the end of `main`.
#[test]
fn dropping_the_run_stops_an_endless_source() {
    for _ in 0..10 {
        within(Duration::from_secs(20), || {
            let rt = runtime();
            rt.block_on(async {
                let p = pipeline! {
                    numbers = source::iter(0u64..);
                    double = stage::map(|n: u64| n * 2);
                    out = sink::for_each(|n: u64| {
                        std::hint::black_box(n);
                    });
                    numbers => double => out;
                };
                let run = tokio::time::timeout(Duration::from_millis(50), p.run()).await;
                assert!(run.is_err(), "an endless run cannot end by itself");
            });
            // What `#[tokio::main]` does at the end of `main`.
            drop(rt);
        });
    }
}

/// Dropping a `RunHandle` aborts the run, as `abort()` does.
#[test]
fn dropping_the_handle_aborts_the_run() {
    within(Duration::from_secs(20), || {
        let rt = runtime();
        rt.block_on(async {
            let p = pipeline! {
                numbers = source::iter(0u64..);
                out = sink::for_each(|n: u64| {
                    std::hint::black_box(n);
                });
                numbers => out;
            };
            let handle = p.spawn();
            tokio::time::sleep(Duration::from_millis(20)).await;
            let progress = handle.progress();
            drop(handle);
            let stopped = tokio::time::timeout(Duration::from_secs(10), async {
                while !progress.is_finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
            .await;
            assert!(stopped.is_ok(), "the run goes on without its handle");
        });
        drop(rt);
    });
}
