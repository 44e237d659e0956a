//! Pipelines fed from outside (`source::channel`) and read as a stream (`sink::channel`),
//! as a service uses them: many senders at once, backpressure, shutdown while sending.
//! Each test checks the exact multiset of items delivered against those accepted.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use pipeline::prelude::*;
use pipeline::source::TrySendError;

#[path = "support/waiting.rs"]
mod waiting;

/// How often each item occurs.
fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_at_once_deliver_exactly_what_they_sent() {
    let (requests, ingress) = source::channel::<u64>(8);
    let (sink, outputs) = sink::channel::<u64>(8);
    let p = pipeline! {
        inp = requests;
        double = stage::map(|n: u64| n * 2);
        out = sink;
        inp => double => out;
    };
    let run = p.spawn();
    let senders: Vec<_> = (0..8u64)
        .map(|t| {
            let ingress = ingress.clone();
            tokio::spawn(async move {
                for i in 0..500u64 {
                    ingress.send(t * 1000 + i).await.unwrap();
                }
            })
        })
        .collect();
    drop(ingress);
    let reader = tokio::spawn(outputs.collect::<Vec<u64>>());
    for sender in senders {
        sender.await.unwrap();
    }
    let got = reader.await.unwrap();
    let report = run.await.unwrap();
    let sent = (0..8u64).flat_map(|t| (0..500u64).map(move |i| (t * 1000 + i) * 2));
    assert_eq!(multiset(got), multiset(sent));
    let a = report.accounting();
    assert_eq!(a.source_items, 4000);
    assert!(a.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_send_says_full_under_backpressure_and_closed_after_shutdown() {
    let (requests, ingress) = source::channel::<u32>(2);
    // Nobody reads the stream yet: the pipeline fills up behind it.
    let (sink, mut outputs) = sink::channel::<u32>(1);
    let p = pipeline! {
        inp = requests;
        out[capacity(1)] = sink;
        inp => out;
    };
    let run = p.spawn();
    let mut accepted = Vec::new();
    let mut full = None;
    for n in 0..10_000u32 {
        match ingress.try_send(n) {
            Ok(()) => accepted.push(n),
            Err(TrySendError::Full(item)) => {
                full = Some(item);
                break;
            }
            Err(TrySendError::Closed(_)) => panic!("closed while running"),
        }
        // Give the pipeline time to move what it can, so that only a full pipeline refuses.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let refused = full.expect("a pipeline nobody reads fills up");
    assert!(!accepted.contains(&refused));
    assert!(accepted.len() < 100, "bounded: {} accepted", accepted.len());

    run.shutdown();
    // Draining: what was accepted comes out; nothing new is taken.
    let mut got = Vec::new();
    while let Some(n) = outputs.next().await {
        got.push(n);
    }
    match ingress.try_send(7) {
        Err(TrySendError::Closed(7)) => {}
        other => panic!("expected Closed(7), got {other:?}"),
    }
    assert_eq!(ingress.send(8).await.unwrap_err().0, 8);
    let report = run.await.unwrap();
    assert_eq!(multiset(got), multiset(accepted.iter().copied()));
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_while_senders_send_loses_no_accepted_item() {
    let (requests, ingress) = source::channel::<u64>(16);
    let (sink, outputs) = sink::channel::<u64>(16);
    let p = pipeline! {
        inp = requests;
        slow = stage::map_async(|n: u64| async move {
            tokio::time::sleep(Duration::from_micros(50)).await;
            n
        });
        out = sink;
        inp => slow => out;
    };
    let run = p.spawn();
    let senders: Vec<_> = (0..4u64)
        .map(|t| {
            let ingress = ingress.clone();
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for i in 0.. {
                    match ingress.send(t * 1_000_000 + i).await {
                        Ok(()) => accepted.push(t * 1_000_000 + i),
                        Err(closed) => {
                            assert_eq!(closed.0, t * 1_000_000 + i, "the refused item comes back");
                            return accepted;
                        }
                    }
                }
                unreachable!()
            })
        })
        .collect();
    drop(ingress);
    let reader = tokio::spawn(outputs.collect::<Vec<u64>>());
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.shutdown();
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    let got = reader.await.unwrap();
    let report = run.await.unwrap();
    assert!(!accepted.is_empty());
    assert_eq!(multiset(got), multiset(accepted.iter().copied()));
    let a = report.accounting();
    assert_eq!(a.source_items, accepted.len() as u64);
    assert!(a.is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_waiting_for_senders_is_starved_not_busy() {
    let (requests, ingress) = source::channel::<u32>(4);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        out = got.sink();
        inp => out;
    };
    let run = p.spawn();
    for n in 0..5 {
        ingress.send(n).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    drop(ingress);
    let report = run.await.unwrap();
    assert_eq!(got.take(), [0, 1, 2, 3, 4]);
    waiting::assert_starved_not_busy(&report, "inp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_reaching_a_dropped_output_stream_count_as_failed() {
    let (sink, outputs) = sink::channel::<u32>(1);
    drop(outputs);
    let p = pipeline! {
        nums = source::iter(0..50u32);
        out = sink;
        nums => out;
    };
    let report = p.spawn().await.unwrap();
    let out = report.node("out").unwrap();
    assert_eq!(out.failed, 50);
    assert!(
        out.errors[0].contains("the output stream was dropped"),
        "{:?}",
        out.errors
    );
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test]
async fn an_ingress_of_a_pipeline_never_run_is_closed() {
    let (requests, ingress) = source::channel::<u32>(4);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        out = got.sink();
        inp => out;
    };
    drop(p);
    assert!(ingress.is_closed());
    assert!(matches!(ingress.try_send(1), Err(TrySendError::Closed(1))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_waiting_for_the_end_of_its_input_is_starved_not_busy() {
    let (requests, ingress) = source::channel::<String>(8);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = got.sink();
        inp => rev, out;
        rev => out;
    };
    let run = p.spawn();
    ingress.send("ab".to_string()).await.unwrap();
    // Idle, then the input ends: the sink waited all that time.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(ingress);
    let report = run.await.unwrap();
    assert_eq!(got.take(), [("ab".to_string(), "ba".to_string())]);
    let out = report.node("out").unwrap();
    assert!(
        out.busy * 10 < out.starved,
        "busy {:?}, starved {:?}",
        out.busy,
        out.starved
    );
    assert!(report.verdict().is_none(), "{:?}", report.verdict());
}
