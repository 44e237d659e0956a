//! Request/reply (`service::channel`): each call gets what became of its own item, through
//! fan-out, zip, filter, flat-map and failures, with many calls in flight at once.

use std::time::Duration;

use pipeline::Failure;
use pipeline::prelude::*;
use pipeline::service::{self, CallError, Reply};

#[path = "support/waiting.rs"]
mod waiting;

fn reverse(s: &str) -> String {
    s.chars().rev().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_each_get_their_own_reply_through_a_zip() {
    let (requests, replies, svc) = service::channel::<String, (String, String)>(64);
    let p = pipeline! {
        inp = requests;
        rev[workers(4)] = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = replies;
        inp => rev, out;
        rev => out;
    };
    let run = p.spawn();
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let word = format!("w{i}x");
                let reply = svc.call(word.clone()).await.unwrap();
                assert_eq!(reply, Reply::Outputs(vec![(word.clone(), reverse(&word))]));
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    drop(svc);
    let report = run.await.unwrap();
    assert_eq!(report.accounting().source_items, 1000);
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_says_filtered_failed_or_dropped_when_there_is_no_output() {
    let (requests, replies, svc) = service::channel::<u32, (u32, u32)>(8);
    let p = pipeline! {
        inp = requests;
        // 0 fails; odd numbers are filtered out; multiples of 4 lose their partner.
        check = stage::try_map(|n: u32| if n == 0 { Err("zero is not allowed") } else { Ok(n) });
        even = stage::filter(|n: &u32| n % 2 == 0);
        half = stage::filter(|n: &u32| n % 4 != 0);
        out = replies;
        inp => check => even => half, out;
        half => out;
    };
    let run = p.spawn();
    match svc.call(0).await.unwrap() {
        Reply::Failed(error) => assert_eq!(error.to_string(), "zero is not allowed"),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(svc.call(3).await.unwrap(), Reply::Filtered);
    assert_eq!(svc.call(8).await.unwrap(), Reply::Dropped);
    assert_eq!(svc.call(6).await.unwrap(), Reply::Outputs(vec![(6, 6)]));
    drop(svc);
    let report = run.await.unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flat_map_replies_with_every_piece() {
    let (requests, replies, svc) = service::channel::<String, String>(8);
    let p = pipeline! {
        inp = requests;
        words = stage::flat_map(|s: String| s.split(' ').map(str::to_string).collect::<Vec<_>>());
        out = replies;
        inp => words => out;
    };
    let run = p.spawn();
    let (a, b) = tokio::join!(svc.call("a b c".into()), svc.call("d e".into()));
    let mut a = match a.unwrap() {
        Reply::Outputs(pieces) => pieces,
        other => panic!("{other:?}"),
    };
    a.sort();
    assert_eq!(a, ["a", "b", "c"]);
    assert_eq!(b.unwrap(), Reply::Outputs(vec!["d".into(), "e".into()]));
    drop(svc);
    run.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_gives_up_cancels_nothing_else() {
    let (requests, replies, svc) = service::channel::<u64, u64>(8);
    let p = pipeline! {
        inp = requests;
        slow = stage::map_async(|n: u64| async move {
            tokio::time::sleep(Duration::from_millis(if n == 1 { 300 } else { 1 })).await;
            n * 10
        });
        out = replies;
        inp => slow => out;
    };
    let run = p.spawn();
    assert_eq!(
        svc.call_timeout(1, Duration::from_millis(20)).await,
        Err(CallError::TimedOut)
    );
    let dropped = svc.call(2);
    drop(dropped);
    assert_eq!(svc.call(3).await.unwrap(), Reply::Outputs(vec![30]));
    drop(svc);
    let report = run.await.unwrap();
    // The abandoned request still went through, and is accounted for.
    assert_eq!(report.accounting().source_items, 2);
    assert_eq!(report.accounting().delivered, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_answers_every_accepted_call() {
    let (requests, replies, svc) = service::channel::<u64, u64>(16);
    let p = pipeline! {
        inp = requests;
        slow = stage::map_async(|n: u64| async move {
            tokio::time::sleep(Duration::from_micros(200)).await;
            n + 1
        });
        out = replies;
        inp => slow => out;
    };
    let run = p.spawn();
    let callers: Vec<_> = (0..16u64)
        .map(|t| {
            let svc = svc.clone();
            tokio::spawn(async move {
                let mut answered = 0u64;
                for i in 0.. {
                    let n = t * 1_000_000 + i;
                    match svc.call(n).await {
                        Ok(reply) => {
                            assert_eq!(reply, Reply::Outputs(vec![n + 1]));
                            answered += 1;
                        }
                        Err(CallError::Closed) => return answered,
                        Err(other) => panic!("{other}"),
                    }
                }
                unreachable!()
            })
        })
        .collect();
    drop(svc);
    tokio::time::sleep(Duration::from_millis(100)).await;
    run.shutdown();
    let mut answered = 0;
    for caller in callers {
        answered += caller.await.unwrap();
    }
    let report = run.await.unwrap();
    assert!(answered > 0);
    assert_eq!(report.accounting().source_items, answered);
    assert_eq!(report.accounting().delivered, answered);
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test]
async fn graphs_replies_cannot_be_traced_through_are_refused_when_the_run_starts() {
    let (requests, replies, _svc) = service::channel::<u32, u32>(8);
    let p = pipeline! {
        inp = requests;
        other = source::iter(0..3u32);
        out = replies;
        inp, other => out;
        out[merge];
    };
    let error = p.spawn().await.unwrap_err();
    match &error.failure {
        Failure::Unrunnable { reason } => {
            assert!(reason.contains("only source"), "{reason}")
        }
        other => panic!("{other}"),
    }

    let (requests, replies, _svc) = service::channel::<u32, u32>(8);
    let p = pipeline! {
        inp = requests;
        a = stage::map(|n: u32| n);
        b = stage::map(|n: u32| n + 1);
        m = stage::map(|n: u32| n);
        out = replies;
        inp => a, b;
        a, b => m => out;
        m[merge];
    };
    let error = p.spawn().await.unwrap_err();
    match &error.failure {
        Failure::Unrunnable { reason } => {
            assert!(reason.contains("`m` merges its inputs"), "{reason}")
        }
        other => panic!("{other}"),
    }
}

/// A synchronous sink beside the reply's path notes its failures on the item, as stages
/// do: the caller hears `Failed`, not `Filtered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_in_a_sink_beside_the_replies_reaches_the_caller() {
    let (requests, replies, svc) = service::channel::<u32, u32>(8);
    let p = pipeline! {
        inp = requests;
        audit = sink::try_for_each(|n: u32| if n == 13 { Err("13 is unlucky") } else { Ok(()) });
        even = stage::filter(|n: &u32| n % 2 == 0);
        out = replies;
        inp => audit, even;
        even => out;
    };
    let run = p.spawn();
    // Many calls at once, so that the sink takes them in batches.
    let calls: Vec<_> = (0..2000u32)
        .map(|n| {
            let svc = svc.clone();
            tokio::spawn(async move { (n, svc.call(n).await.unwrap()) })
        })
        .collect();
    for call in calls {
        let (n, reply) = call.await.unwrap();
        match reply {
            Reply::Failed(error) if n == 13 => assert_eq!(error.to_string(), "13 is unlucky"),
            Reply::Filtered if n % 2 == 1 && n != 13 => {}
            Reply::Outputs(got) if n % 2 == 0 => assert_eq!(got, [n]),
            other => panic!("{n}: got {other:?}"),
        }
    }
    drop(svc);
    let report = run.await.unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
}

/// The requests' source waits for callers on a thread of its own (where the cheap stages
/// after it run inline): the report says it waited, not that it was busy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_waiting_for_calls_is_starved_not_busy() {
    let (requests, replies, svc) = service::channel::<String, (String, String)>(8);
    let p = pipeline! {
        inp = requests;
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = replies;
        inp => rev, out;
        rev => out;
    };
    let run = p.spawn();
    for i in 0..5 {
        let word = format!("w{i}");
        let reply = svc.call(word.clone()).await.unwrap();
        assert_eq!(reply, Reply::Outputs(vec![(word.clone(), reverse(&word))]));
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    drop(svc);
    let report = run.await.unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
    waiting::assert_starved_not_busy(&report, "inp");
}
