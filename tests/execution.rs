//! How stages execute: workers, ordering, blocking code off the async workers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pipeline::Failure;
use pipeline::prelude::*;

#[path = "../benches/support/sum.rs"]
mod sum;
use sum::sum_into;

/// Runs `p` to its end, failing the test if it takes more than 20 s (a hang).
async fn run_or_hang(p: Pipeline) -> RunReport {
    tokio::time::timeout(Duration::from_secs(20), p.run())
        .await
        .expect("must not hang")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_worker_takes_the_next_item_so_one_slow_item_does_not_hold_up_the_rest() {
    // Item 0 takes 300 ms, the others 1 ms. With round-robin, every other item would queue
    // behind item 0; with work going to whichever worker is free, all of them finish first.
    let order = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..20u32);
        work[workers(2)] = stage::map(|n: u32| {
            std::thread::sleep(Duration::from_millis(if n == 0 { 300 } else { 1 }));
            n
        });
        out = order.sink();
        nums => work => out;
    };
    let report = p.run().await.unwrap();
    let got = order.take();
    assert_eq!(got.len(), 20);
    assert_eq!(got.last(), Some(&0), "the slow item finishes last: {got:?}");
    assert_eq!(report.node("work").unwrap().workers, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_workers_run_concurrently_up_to_their_count() {
    let (now, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (n2, p2) = (now.clone(), peak.clone());
    let done = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..40u32);
        fetch[workers(4)] = stage::map_async(move |n: u32| {
            let (now, peak) = (n2.clone(), p2.clone());
            async move {
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(running, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
                n
            }
        });
        out = done.sink();
        nums => fetch => out;
    };
    p.run().await.unwrap();
    assert_eq!(done.len(), 40);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        4,
        "four workers, four items at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_output_restores_the_input_order() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..200u64);
        jitter[workers(4), ordered] = stage::map_async(|n: u64| async move {
            // A scrambled delay, so workers finish out of order.
            tokio::time::sleep(Duration::from_micros((n * 7919) % 13 * 100)).await;
            n * 2
        });
        sink = out.sink();
        nums => jitter => sink;
    };
    p.run().await.unwrap();
    assert_eq!(out.take(), (0..200).map(|n| n * 2).collect::<Vec<_>>());
}

/// Cheap items go to workers in chunks (see `exec::workers`): order, counts and a panic in
/// the middle of a chunk come out as they would item by item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheap_items_on_workers_go_in_chunks_in_order_losing_only_a_panicking_item() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..100_000u64);
        cheap[workers(3), ordered] = stage::map(|n: u64| {
            if n == 54_321 {
                panic!("bad item {n}");
            }
            n * 2
        });
        sink = out.sink();
        nums => cheap => sink;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<u64> = (0..100_000)
        .filter(|n| *n != 54_321)
        .map(|n| n * 2)
        .collect();
    assert!(
        out.take() == expected,
        "every item but the bad one, in order"
    );
    let cheap = report.node("cheap").unwrap();
    assert_eq!(
        (cheap.received, cheap.emitted, cheap.failed, cheap.panics),
        (100_000, 99_999, 1, 1)
    );
    assert_eq!(cheap.errors, vec!["panic: bad item 54321".to_string()]);
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_workers_are_threads_of_their_own() {
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let seen = threads.clone();
    let p = pipeline! {
        nums = source::iter(0..20u32);
        cpu[workers(3)] = stage::map(move |n: u32| {
            seen.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(10));
            n
        });
        out = sink::for_each(|_n: u32| {});
        nums => cpu => out;
    };
    p.run().await.unwrap();
    assert_eq!(threads.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_after_a_reordering_parallel_stage_still_pairs_the_right_items() {
    let pairs = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..500u64);
        slow_square[workers(4)] = stage::filter_map(|n: u64| {
            std::thread::sleep(Duration::from_micros((n * 31) % 7 * 50));
            (n % 5 != 0).then_some(n * n)
        });
        out = pairs.sink();
        nums => slow_square, out;
        slow_square => out;
    };
    let report = p.run().await.unwrap();
    let got = pairs.take();
    assert_eq!(got.len(), 400);
    assert!(
        got.iter().all(|&(n, sq)| sq == n * n && n % 5 != 0),
        "every pair belongs together"
    );
    assert_eq!(report.node("out").unwrap().dropped_partial_tuples, 100);
    assert!(report.accounting().is_balanced());
}

/// On a runtime with a single async worker, a stage that sleeps 100 ms per item would stall
/// everything if it ran there. Sync stages run on threads of their own, so the async branch
/// beside it keeps its latency.
#[tokio::test(flavor = "current_thread")]
async fn a_blocking_stage_never_delays_an_async_stage() {
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let record = latencies.clone();
    let p = pipeline! {
        slow_in = source::iter(0..5u32);
        sleepy = stage::map(|n: u32| {
            std::thread::sleep(Duration::from_millis(100));
            n
        });
        slow_out = sink::for_each(|_n: u32| {});
        ticks = source::producer(|mut out: Output<Instant>| async move {
            for _ in 0..40 {
                out.push(Instant::now()).await?;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        });
        fast = stage::map_async(|sent: Instant| async move { sent.elapsed() });
        fast_out = sink::for_each_async(move |latency: Duration| {
            let record = record.clone();
            async move { record.lock().unwrap().push(latency) }
        });
        slow_in => sleepy => slow_out;
        ticks => fast => fast_out;
    };
    p.run().await.unwrap();
    let worst = latencies.lock().unwrap().iter().copied().max().unwrap();
    assert!(
        worst < Duration::from_millis(50),
        "an async item waited {worst:?} behind a blocking stage"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_worker_is_replaced_and_the_item_fails_with_the_panic_message() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..100u32);
        fragile[workers(3)] = stage::map(|n: u32| if n == 42 { panic!("bad item {n}") } else { n });
        sink = out.sink();
        nums => fragile => sink;
    };
    let report = tokio::time::timeout(Duration::from_secs(10), p.run())
        .await
        .expect("no hang")
        .unwrap();
    assert_eq!(out.len(), 99);
    let fragile = report.node("fragile").unwrap();
    assert_eq!(
        (fragile.failed, fragile.panics, fragile.restarts),
        (1, 1, 1)
    );
    assert_eq!(fragile.errors, vec!["panic: bad item 42".to_string()]);
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_restart_budget_the_run_stops_naming_the_node() {
    let p = pipeline! {
        nums = source::iter(0..1000u32);
        doomed[workers(2), restarts(2)] = stage::map(|n: u32| if n % 10 == 0 { panic!("bad {n}") } else { n });
        sink = sink::for_each(|_n: u32| {});
        nums => doomed => sink;
    };
    let err = tokio::time::timeout(Duration::from_secs(10), p.run())
        .await
        .expect("no hang")
        .unwrap_err();
    match &err.failure {
        Failure::RestartsExhausted { node, restarts, .. } => {
            assert_eq!((node.as_str(), *restarts), ("doomed", 2))
        }
        other => panic!("unexpected failure {other:?}"),
    }
    assert_eq!(
        err.report.node("doomed").unwrap().restarts,
        2,
        "the report counts the restarts the error names, not the one refused"
    );
    assert!(err.report.accounting().is_balanced());
}

/// Counts its setups; panics on one item.
#[derive(Clone)]
struct Fragile {
    setups: Arc<AtomicUsize>,
}

impl pipeline::Stage for Fragile {
    type In = u32;
    type Out = u32;
    const BLOCKING: bool = true;

    async fn setup(&mut self, _context: &pipeline::Context) -> Result<(), pipeline::BoxError> {
        self.setups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn process(&mut self, n: u32, out: &mut Vec<u32>) -> Result<(), pipeline::BoxError> {
        assert_ne!(n, 3, "three is cursed");
        out.push(n);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_worker_runs_its_setup_again() {
    let setups = Arc::new(AtomicUsize::new(0));
    let fragile = pipeline::StageNode::new(Fragile {
        setups: setups.clone(),
    });
    let p = pipeline! {
        nums = source::iter(0..10u32);
        sink = sink::for_each(|_n: u32| {});
        nums => fragile => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(
        setups.load(Ordering::SeqCst),
        2,
        "once at start, once after the panic"
    );
    assert_eq!(report.node("fragile").unwrap().restarts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_tries_failed_items_again_with_backoff_and_counts_the_attempts() {
    // Each item fails twice before it succeeds; item 7 never does.
    let tries = Arc::new(Mutex::new(std::collections::HashMap::<u32, u32>::new()));
    let seen = tries.clone();
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..10u32);
        flaky[retry(2, Duration::from_millis(1))] = stage::try_map(move |n: u32| {
            let mut tries = seen.lock().unwrap();
            let count = tries.entry(n).or_default();
            *count += 1;
            if *count < 3 || n == 7 { Err(format!("attempt {count} on {n} failed")) } else { Ok(n) }
        });
        sink = out.sink();
        nums => flaky => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(out.len(), 9);
    let flaky = report.node("flaky").unwrap();
    assert_eq!(
        (flaky.failed, flaky.retried),
        (1, 20),
        "two retries per item"
    );
    assert_eq!(
        flaky.errors,
        vec!["attempt 3 on 7 failed".to_string()],
        "the last error is the one kept"
    );
    assert_eq!(
        tries.lock().unwrap()[&7],
        3,
        "never more than 1 + retry(2) attempts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_declared_after_another_starts_once_that_one_has_finished() {
    // Build an index from documents, then answer queries against it: every query must see
    // the complete index.
    let index = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let (writer, reader) = (index.clone(), index.clone());
    let answers = Collected::new();
    let p = pipeline! {
        docs = source::iter((0..200usize).map(|n| (format!("doc{n}"), n)));
        build = sink::for_each(move |(name, n): (String, usize)| {
            std::thread::sleep(Duration::from_micros(200));
            writer.lock().unwrap().insert(name, n);
        });
        queries = source::iter((0..200usize).rev().map(|n| format!("doc{n}")));
        serve[after(build)] = stage::map(move |q: String| reader.lock().unwrap().get(&q).copied());
        out = answers.sink();
        docs => build;
        queries => serve => out;
    };
    p.run().await.unwrap();
    let got = answers.take();
    assert_eq!(got.len(), 200);
    assert!(
        got.iter().all(Option::is_some),
        "a query ran before the index was complete"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_items_go_to_the_dead_letter_node_with_their_error() {
    let (good, rejects) = (Collected::new(), Collected::new());
    let p = pipeline! {
        lines = source::iter(["1", "two", "3", "four"].map(String::from));
        parse[dead_letter(bad)] = stage::try_map(|s: String| s.parse::<u32>());
        ok = good.sink();
        bad = rejects.sink();
        lines => parse => ok;
    };
    let report = p.run().await.unwrap();
    assert_eq!(good.take(), vec![1, 3]);
    let failed: Vec<pipeline::Failed<String>> = rejects.take();
    assert_eq!(
        failed.iter().map(|f| f.item.as_str()).collect::<Vec<_>>(),
        ["two", "four"]
    );
    // The error is the stage's own value, not only its message.
    assert!(failed.iter().all(|f| {
        f.node == "parse"
            && f.error
                .downcast_ref::<std::num::ParseIntError>()
                .map(|e| *e.kind())
                == Some(std::num::IntErrorKind::InvalidDigit)
    }));
    let parse = report.node("parse").unwrap();
    assert_eq!((parse.failed, parse.dead_lettered), (2, 2));
    assert_eq!(parse.error_kinds, vec![("ParseIntError".to_string(), 2)]);
    assert_eq!(
        report.dead_letter_edges,
        vec![("parse".to_string(), "bad".to_string())]
    );
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_workers_and_retries_only_the_final_failures_are_dead_lettered() {
    let rejects = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..100u32);
        check[workers(3), retry(1, Duration::from_millis(1)), dead_letter(bad)] = stage::try_map(|n: u32| {
            if n % 10 == 0 { Err(format!("{n} is round")) } else { Ok(n) }
        });
        fragile[dead_letter(bad)] = stage::map(|n: u32| if n == 55 { panic!("not 55") } else { n });
        ok = sink::for_each(|_n: u32| {});
        bad[merge] = rejects.sink();
        nums => check => fragile => ok;
    };
    let report = p.run().await.unwrap();
    let mut failed: Vec<(u32, String)> = rejects
        .take()
        .into_iter()
        .map(|f| (f.item, f.error.to_string()))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 11);
    assert_eq!(failed[0], (0, "0 is round".to_string()));
    assert!(failed.contains(&(55, "panic: not 55".to_string())));
    assert_eq!(report.node("check").unwrap().retried, 10);
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_fed_by_nodes_declared_in_any_order_gets_every_item() {
    let all = Collected::new();
    let p = pipeline! {
        late = source::iter(0..3u32);
        early = source::iter(10..13u32);
        out[merge] = all.sink();
        early => out;
        late => out;
    };
    p.run().await.unwrap();
    let mut got = all.take();
    got.sort();
    assert_eq!(got, vec![0, 1, 2, 10, 11, 12]);
}

/// Where each of a chain's stages ran, by thread.
type Threads = Arc<Mutex<Vec<(&'static str, std::thread::ThreadId)>>>;

fn noting(
    threads: &Threads,
    name: &'static str,
    pause: Duration,
) -> impl FnMut(u32) -> u32 + Send + 'static {
    let threads = threads.clone();
    move |n| {
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        threads
            .lock()
            .unwrap()
            .push((name, std::thread::current().id()));
        n
    }
}

fn threads_of(threads: &Threads, name: &str) -> HashSet<std::thread::ThreadId> {
    threads
        .lock()
        .unwrap()
        .iter()
        .filter(|(n, _)| *n == name)
        .map(|(_, t)| *t)
        .collect()
}

/// Cheap 1:1 stages run inside the node that feeds them: one thread, no channel between
/// them, and each still counts its own items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_cheap_stages_runs_inline_on_one_thread_and_counts_per_stage() {
    let threads = Threads::default();
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..10_000u32);
        a = stage::map(noting(&threads, "a", Duration::ZERO));
        b = stage::map(noting(&threads, "b", Duration::ZERO));
        c = stage::map(noting(&threads, "c", Duration::ZERO));
        sink = out.sink();
        nums => a => b => c => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(
        out.take(),
        (0..10_000).collect::<Vec<_>>(),
        "in order, nothing lost"
    );
    let a = threads_of(&threads, "a");
    assert_eq!(a.len(), 1, "one thread ran all of `a`");
    assert_eq!(threads_of(&threads, "b"), a, "`b` ran where `a` did");
    assert_eq!(threads_of(&threads, "c"), a, "`c` ran where `a` did");
    for stage in ["a", "b", "c"] {
        let node = report.node(stage).unwrap();
        assert_eq!((node.received, node.emitted), (10_000, 10_000), "{stage}");
    }
    assert!(report.accounting().is_balanced());
}

/// A stage whose items prove slow leaves the feeding node's loop for a loop of its own,
/// so that slow stages overlap instead of adding up: while it still ran inline, the source
/// could never be producing at the same time as it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stage_leaves_the_inline_chain_and_overlaps_with_its_feeder() {
    let working = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    let (busy, seen) = (working.clone(), overlapped.clone());
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter((0..50u32).inspect(move |_| {
            std::thread::sleep(Duration::from_millis(1));
            if busy.load(Ordering::SeqCst) > 0 {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }));
        cheap = stage::map(|n: u32| n);
        slow = stage::map(move |n: u32| {
            working.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            working.fetch_sub(1, Ordering::SeqCst);
            n
        });
        sink = out.sink();
        nums => cheap => slow => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(
        out.take(),
        (0..50).collect::<Vec<_>>(),
        "in order, nothing lost"
    );
    assert!(
        overlapped.load(Ordering::SeqCst) > 0,
        "the source never produced while the slow stage worked"
    );
    assert_eq!(report.node("slow").unwrap().emitted, 50);
    assert!(report.accounting().is_balanced());
}

/// A synchronous sink at the end of a cheap chain runs in it too: the whole pipeline is
/// one loop, and the sink still counts its own items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheap_sink_runs_inline_at_the_end_of_the_chain() {
    let threads = Threads::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (noted, kept) = (threads.clone(), seen.clone());
    let p = pipeline! {
        nums = source::iter(0..10_000u32);
        a = stage::map(noting(&threads, "a", Duration::ZERO));
        sink = sink::for_each(move |n: u32| {
            noted.lock().unwrap().push(("sink", std::thread::current().id()));
            kept.lock().unwrap().push(n);
        });
        nums => a => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), (0..10_000).collect::<Vec<_>>());
    let a = threads_of(&threads, "a");
    assert_eq!(a.len(), 1, "one thread ran all of `a`");
    assert_eq!(
        threads_of(&threads, "sink"),
        a,
        "the sink ran where `a` did"
    );
    let sink = report.node("sink").unwrap();
    assert_eq!((sink.received, sink.failed), (10_000, 0));
    assert_eq!(sink.queue_peak, 0, "nothing ever waited on the sink's edge");
    assert!(report.accounting().is_balanced());
}

/// A sink whose items prove slow leaves the chain, so the source keeps producing while it
/// works instead of waiting for every item to be consumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_sink_leaves_the_inline_chain_and_overlaps_with_its_feeder() {
    let working = Arc::new(AtomicUsize::new(0));
    let overlapped = Arc::new(AtomicUsize::new(0));
    let (busy, seen) = (working.clone(), overlapped.clone());
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter((0..50u32).inspect(move |_| {
            std::thread::sleep(Duration::from_millis(1));
            if busy.load(Ordering::SeqCst) > 0 {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        }));
        cheap = stage::map(|n: u32| n);
        sink = sink::for_each(move |n: u32| {
            working.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(2));
            working.fetch_sub(1, Ordering::SeqCst);
            kept.lock().unwrap().push(n);
        });
        nums => cheap => sink;
    };
    let report = p.run().await.unwrap();
    assert_eq!(*got.lock().unwrap(), (0..50).collect::<Vec<_>>());
    assert!(
        overlapped.load(Ordering::SeqCst) > 0,
        "the source never produced while the slow sink worked"
    );
    assert!(report.accounting().is_balanced());
}

/// A plain map panicking deep inside a batch it maps inline (in the batch's own buffer)
/// loses that one item: the ones before it go on, the ones after it are mapped in its own
/// loop, all in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_panicking_inline_loses_only_its_item_and_keeps_the_order() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..100_000u64);
        double = stage::map(|n: u64| if n == 77_777 { panic!("unlucky") } else { n * 2 });
        sink = sink::for_each(move |n: u64| kept.lock().unwrap().push(n));
        nums => double => sink;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<u64> = (0..100_000)
        .filter(|n| *n != 77_777)
        .map(|n| n * 2)
        .collect();
    assert!(
        *got.lock().unwrap() == expected,
        "in order, only the panicking item lost"
    );
    let double = report.node("double").unwrap();
    assert_eq!(
        (
            double.received,
            double.emitted,
            double.failed,
            double.panics
        ),
        (100_000, 99_999, 1, 1)
    );
    assert!(report.accounting().is_balanced());
}

/// A sink that panics inline fails that one item, is set up again in a loop of its own,
/// and consumes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_panicking_inline_fails_the_item_and_consumes_the_rest() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..1000u32);
        sink = sink::for_each(move |n: u32| {
            if n == 7 {
                panic!("seven is unlucky");
            }
            kept.lock().unwrap().push(n);
        });
        nums => sink;
    };
    let report = tokio::time::timeout(Duration::from_secs(10), p.run())
        .await
        .expect("must not hang")
        .unwrap();
    let expected: Vec<u32> = (0..1000).filter(|n| *n != 7).collect();
    assert_eq!(
        *got.lock().unwrap(),
        expected,
        "in order, only the panicking item lost"
    );
    let sink = report.node("sink").unwrap();
    assert_eq!((sink.received, sink.failed, sink.panics), (1000, 1, 1));
    assert_eq!(sink.errors, vec!["panic: seven is unlucky".to_string()]);
    assert!(report.accounting().is_balanced());
}

/// A diamond of cheap synchronous nodes runs on one thread: the branches run inside the
/// source's loop, and the zip inside theirs, so no item waits for another thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diamond_of_cheap_nodes_runs_on_one_thread_zip_included() {
    let threads = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let (seen_a, seen_b, seen_zip) = (threads.clone(), threads.clone(), threads.clone());
    let sum = Arc::new(Mutex::new(0u64));
    let total = sum.clone();
    let p = pipeline! {
        nums = source::iter(0..200_000u64);
        double = stage::map(move |n: u64| {
            seen_a.lock().unwrap().insert(std::thread::current().id());
            n * 2
        });
        next = stage::map(move |n: u64| {
            seen_b.lock().unwrap().insert(std::thread::current().id());
            n + 1
        });
        both = sink::for_each(move |(a, b): (u64, u64)| {
            seen_zip.lock().unwrap().insert(std::thread::current().id());
            assert_eq!(a / 2 + 1, b, "paired by lineage");
            *total.lock().unwrap() += a + b;
        });
        nums => double, next;
        double, next => both;
    };
    let report = run_or_hang(p).await;
    let n = 200_000u64;
    assert_eq!(*sum.lock().unwrap(), (0..n).map(|x| 3 * x + 1).sum::<u64>());
    assert_eq!(report.node("both").unwrap().received, n);
    assert!(report.accounting().is_balanced());
    assert_eq!(
        threads.lock().unwrap().len(),
        1,
        "branches and zip ran on the source's thread"
    );
}

/// A zip running inline whose branch filters items pairs the rest by lineage, drops and
/// counts the partial tuples, and a panic in the zip node loses only its item: the node
/// goes back to its own task with everything still waiting to be paired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_running_inline_survives_filters_and_a_panic_without_losing_items() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..50_000u64);
        odd = stage::filter(|n: &u64| n % 3 != 0);
        same = stage::map(|n: u64| n);
        both = sink::for_each(move |(a, b): (u64, u64)| {
            if a == 40_001 {
                panic!("unlucky pair");
            }
            assert_eq!(a, b);
            kept.lock().unwrap().push(a);
        });
        nums => odd, same;
        odd, same => both;
    };
    let report = run_or_hang(p).await;
    let mut got = got.lock().unwrap().clone();
    got.sort_unstable();
    let expected: Vec<u64> = (0..50_000).filter(|n| n % 3 != 0 && *n != 40_001).collect();
    assert!(got == expected, "every complete pair but the panicking one");
    let both = report.node("both").unwrap();
    assert_eq!((both.failed, both.panics), (1, 1));
    assert_eq!(both.dropped_partial_tuples, 50_000 / 3 + 1);
    assert!(report.accounting().is_balanced());
}

/// A zip fed by two branches on two threads of their own (the source is async, so it runs
/// neither) runs inside whichever branch completes a tuple, one at a time: every item is
/// paired once, in a consistent state, and accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_fed_inline_from_two_threads_pairs_every_item_once() {
    for _ in 0..5 {
        let got = Arc::new(Mutex::new(Vec::new()));
        let kept = got.clone();
        let p = pipeline! {
            nums = source::producer(|mut out: Output<u64>| async move {
                for n in 0..20_000u64 {
                    out.push(n).await?;
                    if n % 1000 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                Ok(())
            });
            left = stage::map(|n: u64| n * 2);
            right = stage::filter_map(|n: u64| (n % 7 != 0).then_some(n));
            both = sink::for_each(move |(a, b): (u64, u64)| {
                assert_eq!(a, b * 2, "paired by lineage");
                kept.lock().unwrap().push(b);
            });
            nums => left, right;
            left, right => both;
        };
        let report = run_or_hang(p).await;
        let mut got = got.lock().unwrap().clone();
        got.sort_unstable();
        let expected: Vec<u64> = (0..20_000).filter(|n| n % 7 != 0).collect();
        assert!(got == expected, "each complete pair once");
        let both = report.node("both").unwrap();
        assert_eq!(both.dropped_partial_tuples, 20_000 / 7 + 1);
        assert!(report.accounting().is_balanced());
    }
}

/// When a zip node leaves the nodes feeding it, their batches (up to a thousand items, made
/// for running inline) go over its small channels (in pieces that fit), and nothing is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_leaving_its_feeders_loses_nothing_over_small_channels() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..20_000u64);
        left = stage::map(|n: u64| n + 1);
        right = stage::map(|n: u64| n);
        both[capacity(8)] = sink::for_each(move |(a, b): (u64, u64)| {
            if b == 3_000 {
                panic!("unlucky pair");
            }
            assert_eq!(a, b + 1);
            kept.lock().unwrap().push(b);
        });
        nums => left, right;
        left, right => both;
    };
    let report = run_or_hang(p).await;
    let mut got = got.lock().unwrap().clone();
    got.sort_unstable();
    let expected: Vec<u64> = (0..20_000).filter(|n| *n != 3_000).collect();
    assert!(got == expected, "every pair but the panicking one");
    assert_eq!(report.node("both").unwrap().panics, 1);
    assert!(report.accounting().is_balanced());
}

/// A chain of plain maps runs as one pass over each batch (see `fuse::chain`); a panic in
/// the middle of the chain loses only its item: the stages before it count it as passed
/// on, the one that panicked as failed, and the items after it go on in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_panicking_in_the_middle_of_a_chain_loses_only_its_item() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..100_000u64);
        a = stage::map(|n: u64| n + 1);
        b = stage::map(|n: u64| n * 2);
        c = stage::map(|n: u64| if n == 2 * 77_778 { panic!("unlucky") } else { n });
        d = stage::map(|n: u64| n - 2);
        sink = sink::for_each(move |n: u64| kept.lock().unwrap().push(n));
        nums => a => b => c => d => sink;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<u64> = (0..100_000)
        .filter(|n| *n != 77_777)
        .map(|n| n * 2)
        .collect();
    assert!(
        *got.lock().unwrap() == expected,
        "in order, only the panicking item lost"
    );
    let counts = |name: &str| {
        let node = report.node(name).unwrap();
        (node.received, node.emitted, node.failed, node.panics)
    };
    assert_eq!(counts("a"), (100_000, 100_000, 0, 0));
    assert_eq!(counts("b"), (100_000, 100_000, 0, 0));
    assert_eq!(counts("c"), (100_000, 99_999, 1, 1));
    assert_eq!(counts("d"), (99_999, 99_999, 0, 0));
    assert_eq!(report.node("c").unwrap().restarts, 1);
    assert!(report.accounting().is_balanced());
}

/// A chain's pass is timed as a whole; each stage's share of it follows what the stage
/// cost when last timed alone, so the report still shows which stage does the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_shares_its_time_out_by_what_each_stage_costs() {
    let spin = |micros: u64| {
        move |n: u64| {
            let until = std::time::Instant::now() + Duration::from_micros(micros);
            while std::time::Instant::now() < until {
                std::hint::spin_loop();
            }
            n
        }
    };
    let p = pipeline! {
        nums = source::iter(0..20_000u64);
        light = stage::map(|n: u64| n + 1);
        heavy = stage::map(spin(5));
        also_light = stage::map(|n: u64| n - 1);
        sink = sink::for_each(|n: u64| { std::hint::black_box(n); });
        nums => light => heavy => also_light => sink;
    };
    let report = run_or_hang(p).await;
    let busy = |name: &str| report.node(name).unwrap().busy;
    let (light, heavy, also_light) = (busy("light"), busy("heavy"), busy("also_light"));
    assert!(
        heavy >= Duration::from_millis(90),
        "20 000 items of 5 µs: {heavy:?}"
    );
    assert!(
        heavy > (light + also_light) * 4,
        "the spinning stage is busy, not the cheap ones: {light:?} {heavy:?} {also_light:?}"
    );
    assert!(report.accounting().is_balanced());
}

/// A chain on one branch of a diamond passes the watermark on, so the zip behind it pairs
/// every item and drops nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_on_a_branch_of_a_diamond_pairs_every_item() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..50_000u64);
        a = stage::map(|n: u64| n + 1);
        b = stage::map(|n: u64| n * 3);
        c = stage::map(|n: u64| n - 3);
        pair = out.sink();
        nums => a => b => c => pair;
        nums => pair;
    };
    let report = run_or_hang(p).await;
    let got: Vec<(u64, u64)> = out.take();
    assert_eq!(got.len(), 50_000);
    // The zip's inputs come in the order of their edges: `c`'s first.
    assert!(
        got.iter().all(|&(image, n)| image == n * 3),
        "each pair is an item and its image"
    );
    assert_eq!(report.node("pair").unwrap().dropped_partial_tuples, 0);
    assert!(report.accounting().is_balanced());
}

/// A chain longer than one pass covers (twenty-four nodes) runs as several passes, each
/// from the outlet of the node before it; the node where one pass hands over to the next
/// counts its wait on the next pass once, so every node's waits fit in its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_chain_counts_each_wait_once() {
    let id = || stage::map(|n: u64| n + 1);
    let p = pipeline! {
        nums = source::iter(0..200_000u64);
        m1 = id(); m2 = id(); m3 = id(); m4 = id(); m5 = id(); m6 = id();
        m7 = id(); m8 = id(); m9 = id(); m10 = id(); m11 = id(); m12 = id();
        m13 = id(); m14 = id(); m15 = id(); m16 = id(); m17 = id(); m18 = id();
        m19 = id(); m20 = id(); m21 = id(); m22 = id(); m23 = id(); m24 = id();
        m25 = id(); m26 = id();
        total = sink::for_each(|n: u64| { std::hint::black_box(n); });
        nums => m1 => m2 => m3 => m4 => m5 => m6 => m7 => m8 => m9 => m10 => m11 => m12
            => m13 => m14 => m15 => m16 => m17 => m18 => m19 => m20 => m21 => m22 => m23
            => m24 => m25 => m26 => total;
    };
    let report = run_or_hang(p).await;
    for node in &report.nodes {
        assert!(
            node.starved + node.blocked <= node.active + Duration::from_millis(1),
            "`{}`: starved {:?} and blocked {:?} in {:?}",
            node.name,
            node.starved,
            node.blocked,
            node.active
        );
    }
    assert_eq!(report.node("m26").unwrap().emitted, 200_000);
    assert!(report.accounting().is_balanced());
}

/// A sink at the end of a chain consumes in the chain's pass: the items it fails on are
/// counted with their errors, and a panic loses only its item.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_ending_a_chain_counts_its_failures_and_survives_a_panic() {
    let got = Arc::new(Mutex::new(Vec::new()));
    let kept = got.clone();
    let p = pipeline! {
        nums = source::iter(0..100_000u64);
        a = stage::map(|n: u64| n + 1);
        b = stage::map(|n: u64| n - 1);
        sink = sink::try_for_each(move |n: u64| {
            if n == 50_001 {
                panic!("unlucky {n}");
            }
            if n % 10_000 == 9_999 {
                return Err(format!("no {n}"));
            }
            kept.lock().unwrap().push(n);
            Ok(())
        });
        nums => a => b => sink;
    };
    let report = run_or_hang(p).await;
    let expected: Vec<u64> = (0..100_000)
        .filter(|n| *n != 50_001 && n % 10_000 != 9_999)
        .collect();
    assert!(
        *got.lock().unwrap() == expected,
        "in order, only the failed items missing"
    );
    let sink = report.node("sink").unwrap();
    assert_eq!((sink.received, sink.failed, sink.panics), (100_000, 11, 1));
    assert!(sink.errors.contains(&"no 59999".to_string()));
    assert!(sink.errors.contains(&"panic: unlucky 50001".to_string()));
    assert!(report.accounting().is_balanced());
}

/// A chain's pass holds its stages and sink in its own frame while it runs: what they keep
/// in their fields is back in the node after every pass, and after a pass a panic cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_kept_in_fields_survives_a_chains_passes_and_a_panic() {
    let published = Arc::new(AtomicU64::new(0));
    let p = pipeline! {
        nums = source::iter(0..300_000u64);
        a = stage::map(|n: u64| {
            if n == 150_000 {
                panic!("unlucky {n}");
            }
            n
        });
        b = stage::map(|n: u64| n + 1);
        sum = sum_into(&published);
        nums => a => b => sum;
    };
    let report = run_or_hang(p).await;
    let expected: u64 = (0..300_000u64)
        .filter(|n| *n != 150_000)
        .map(|n| n + 1)
        .sum();
    assert_eq!(published.load(Ordering::Relaxed), expected);
    assert_eq!(report.node("a").unwrap().panics, 1);
    assert!(report.accounting().is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_if_tries_again_only_the_errors_worth_it() {
    #[derive(Debug)]
    enum Fetch {
        NotFound,
        Unavailable,
    }
    impl std::fmt::Display for Fetch {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl std::error::Error for Fetch {}
    let tries = Arc::new(AtomicUsize::new(0));
    let counter = tries.clone();
    let p = pipeline! {
        pages = source::iter([404u32, 503]);
        fetch[retry(3, Duration::from_millis(1)), retry_if(|e| !matches!(e.downcast_ref::<Fetch>(), Some(Fetch::NotFound)))] =
            stage::try_map(move |status: u32| {
                counter.fetch_add(1, Ordering::SeqCst);
                Err::<u32, _>(if status == 404 { Fetch::NotFound } else { Fetch::Unavailable })
            });
        out = sink::for_each(|_n: u32| {});
        pages => fetch => out;
    };
    let report = p.run().await.unwrap();
    let fetch = report.node("fetch").unwrap();
    assert_eq!(
        (fetch.failed, fetch.retried),
        (2, 3),
        "the 404 once, the 503 four times"
    );
    assert_eq!(tries.load(Ordering::SeqCst), 5);
}

/// `workers(auto)` runs one worker per core, in the macro and in a spec's options.
#[test]
fn workers_auto_gives_one_worker_per_core() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..100u64);
        square[workers(auto)] = stage::map(|n: u64| n * n);
        sink = out.sink();
        nums => square => sink;
    };
    let report = p.run_blocking().unwrap();
    assert_eq!(report.node("square").unwrap().workers, cores);
    let mut got: Vec<u64> = out.take();
    got.sort_unstable();
    assert_eq!(got, (0..100u64).map(|n| n * n).collect::<Vec<_>>());
}
