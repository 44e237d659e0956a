//! The seeds' graph split over processes on a real NATS server (feature `nats`).
//!
//! Each test starts its own `nats-server` with JetStream on a free loopback port and stops
//! it after. The processes are this test binary run again: the `child_process` test plays
//! the part the environment gives it and does nothing in a normal run.
#![cfg(feature = "nats")]

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pipeline::RunReport;
use pipeline::prelude::*;
use pipeline::remote::async_nats;

/// Set in the processes this binary starts.
const ROLE: &str = "PIPELINE_TEST_CHILD";
/// Where a child writes its run report, as JSON.
const REPORT: &str = "PIPELINE_TEST_REPORT";

#[test]
fn child_process() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    let words: usize = std::env::var("WORDS").unwrap().parse().unwrap();
    // A `rev` process may be told to take longer per word (see the kill test).
    let work =
        Duration::from_millis(std::env::var("REV_WORK_MS").map_or(1, |ms| ms.parse().unwrap()));
    if std::env::var("FROM_SPEC").is_ok() {
        return finish_child(seeds_from_spec(words, work).run_blocking());
    }
    let p = pipeline! {
        #![distributed("seeds")]
        inp = source::iter((0..words).map(|i| format!("word{i}")));
        rev = stage::map(move |word: String| {
            std::thread::sleep(work);
            word.chars().rev().collect::<String>()
        });
        out = sink::for_each(|(word, reversed): (String, String)| println!("pair {word} {reversed}"));
        inp => rev, out;
        rev => out;
    };
    finish_child(p.run_blocking());
}

/// The same graph as `child_process`'s, from a spec file's text and a registry.
fn seeds_from_spec(words: usize, work: Duration) -> pipeline::Pipeline {
    use pipeline::graph::{GraphSpec, Registry};
    let mut registry = Registry::new();
    registry
        .source("words", |count: usize| {
            source::iter((0..count).map(|i| format!("word{i}")))
        })
        .stage("reverse", move |_: ()| {
            stage::map(move |word: String| {
                std::thread::sleep(work);
                word.chars().rev().collect::<String>()
            })
        })
        .zip_sink("print_pairs", |_: ()| {
            sink::for_each(|(word, reversed): (String, String)| println!("pair {word} {reversed}"))
        })
        .crossing::<String>();
    let spec = format!(
        "distributed = \"seeds\"\nedges = [\"inp => rev, out\", \"rev => out\"]\n\
         [nodes.inp]\nuse = \"words\"\nargs = {words}\n\
         [nodes.rev]\nuse = \"reverse\"\n\
         [nodes.out]\nuse = \"print_pairs\"\n"
    );
    GraphSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&registry))
        .unwrap_or_else(|errors| panic!("{errors}"))
}

/// Writes a child's report where the test reads it; a failed run exits with 3.
fn finish_child(result: Result<RunReport, pipeline::RunError>) {
    let report = match result {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{}\nfailed: {error}", error.report);
            std::process::exit(3);
        }
    };
    eprintln!("{report}");
    std::fs::write(
        std::env::var(REPORT).unwrap(),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();
}

#[path = "support/nats_server.rs"]
mod nats_server;

use nats_server::NatsServer;

fn server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|e| panic!("the `nats` feature's tests need a server: {e}"))
}

/// One process of the split graph.
struct Part {
    name: String,
    process: Child,
    report: PathBuf,
}

fn start<K: AsRef<std::ffi::OsStr>, V: AsRef<std::ffi::OsStr>>(
    server: &NatsServer,
    run: &str,
    name: &str,
    env: &[(K, V)],
    words: usize,
) -> Part {
    let report = server.dir.join(format!("{name}.json"));
    std::fs::create_dir_all(&server.dir).unwrap();
    let process = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, name)
        .env(REPORT, &report)
        .env("PIPELINE_NATS_URL", &server.url)
        .env("PIPELINE_RUN", run)
        .env("PIPELINE_INSTANCE", name)
        .env("WORDS", words.to_string())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Part {
        name: name.into(),
        process,
        report,
    }
}

/// What the sink printed: each word with its reverse.
type Pairs = BTreeSet<(String, String)>;
/// Each process's report, by its name.
type Reports = Vec<(String, RunReport)>;

/// Waits for every part; returns the sink's pairs and every part's report.
fn finish(parts: Vec<Part>) -> (Pairs, Reports) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut pairs = BTreeSet::new();
    let mut reports = Vec::new();
    for mut part in parts {
        let status = loop {
            if let Some(status) = part.process.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = part.process.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        let mut stderr = String::new();
        part.process
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        part.process
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.is_some_and(|s| s.success()),
            "process `{}` failed or hung ({status:?}):\n{stderr}",
            part.name
        );
        for line in stdout.lines() {
            // The test harness prints `test child_process ... ` before the first line.
            if let Some((_, pair)) = line.split_once("pair ") {
                let (word, reversed) = pair.split_once(' ').unwrap();
                assert!(
                    pairs.insert((word.to_string(), reversed.to_string())),
                    "the sink got `{pair}` twice"
                );
            }
        }
        reports.push((part.name, read_report(&part.report)));
    }
    (pairs, reports)
}

fn read_report(path: &Path) -> RunReport {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn expected_pairs(words: usize) -> Pairs {
    (0..words)
        .map(|i| {
            let word = format!("word{i}");
            let reversed = word.chars().rev().collect();
            (word, reversed)
        })
        .collect()
}

fn edge<'a>(report: &'a RunReport, from: &str, to: &str) -> &'a pipeline::RemoteEdgeReport {
    report
        .remote
        .iter()
        .find(|e| e.from == from && e.to == to)
        .unwrap_or_else(|| panic!("no edge {from} => {to} in {report}"))
}

/// Waits until `n` processes are asking the edge `inp => rev` of `run` for items (its
/// consumer has that many pull requests waiting), so that the source starts only once every
/// `rev` process can take a share, however slowly the machine started them.
fn wait_for_pullers(server: &NatsServer, run: &str, n: usize) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        let js = async_nats::jetstream::new(client);
        // The first run under this name: its epoch is 1.
        let name = format!("{run}-e1-inp-rev");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(stream) = js.get_stream("PIPELINE_seeds").await
                && let Ok(mut consumer) = stream
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>(&name)
                    .await
                && let Ok(info) = consumer.info().await
                && info.num_waiting >= n
            {
                return;
            }
            assert!(Instant::now() < deadline, "`rev` never asked for items");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// The seeds' graph over four processes: the sink, `rev` on two, and the source last.
/// Every process gets `env` too.
fn run_split(
    server: &NatsServer,
    run: &str,
    words: usize,
    env: &[(&str, &str)],
) -> (Pairs, Reports) {
    let with = |own: &[(&'static str, &'static str)]| -> Vec<(String, String)> {
        own.iter()
            .chain(env)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let mut parts = vec![
        start(
            server,
            run,
            "rev-1",
            &with(&[("PIPELINE_NODES", "rev")]),
            words,
        ),
        start(
            server,
            run,
            "rev-2",
            &with(&[("PIPELINE_NODES", "rev")]),
            words,
        ),
        start(
            server,
            run,
            "out",
            &with(&[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")]),
            words,
        ),
    ];
    // At most once, the source waits by itself until both `rev` processes and the sink
    // listen; at least once, it would start storing items that the first `rev` to start
    // might take all of.
    if !env.contains(&("PIPELINE_DELIVERY", "at-most-once")) {
        wait_for_pullers(server, run, 2);
    }
    parts.push(start(
        server,
        run,
        "inp",
        &with(&[("PIPELINE_NODES", "inp"), ("PIPELINE_REPLICAS", "rev=2")]),
        words,
    ));
    let (pairs, reports) = finish(parts);
    assert!(
        pairs == expected_pairs(words),
        "not every word reached the sink: {} of {words}",
        pairs.len()
    );
    let shares: Vec<u64> = ["rev-1", "rev-2"]
        .iter()
        .map(|r| edge(report_of(&reports, r), "inp", "rev").items)
        .collect();
    let all: Vec<String> = reports
        .iter()
        .map(|(n, r)| format!("== {n}\n{r}"))
        .collect();
    assert_eq!(
        shares.iter().sum::<u64>(),
        words as u64,
        "each word went through `rev` once:\n{}",
        all.join("\n")
    );
    for (name, report) in &reports {
        assert!(report.accounting().is_balanced(), "`{name}`:\n{report}");
    }
    assert_eq!(
        edge(report_of(&reports, "inp"), "inp", "rev").items,
        words as u64
    );
    assert_eq!(
        report_of(&reports, "out").node("out").unwrap().received,
        words as u64
    );
    (pairs, reports)
}

fn report_of<'a>(reports: &'a Reports, name: &str) -> &'a RunReport {
    &reports.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn the_seeds_graph_split_over_processes_delivers_every_item_once_with_rev_shared() {
    let server = server();
    let words = 300;
    let (_, reports) = run_split(&server, "split", words, &[]);
    let shares: Vec<u64> = ["rev-1", "rev-2"]
        .iter()
        .map(|r| edge(report_of(&reports, r), "inp", "rev").items)
        .collect();
    assert!(
        shares.iter().all(|&n| n > 0),
        "both `rev` processes took a share of the work: {shares:?}"
    );
}

#[test]
fn the_seeds_graph_from_a_spec_file_splits_over_processes_as_the_macros_does() {
    let server = server();
    let words = 200;
    // Every word once through `rev` and into the sink, each process balanced.
    run_split(&server, "spec", words, &[("FROM_SPEC", "1")]);
}

#[test]
fn corrupt_and_foreign_messages_go_to_dead_letter_and_the_run_completes() {
    let server = server();
    let words = 50;
    let run = "corrupt";
    let rev = start(&server, run, "rev", &[("PIPELINE_NODES", "rev")], words);
    // The first run under this name: its epoch is 1.
    let subject = format!("pipeline.seeds.{run}.e1.inp.rev.data");
    let dead = format!("pipeline.seeds.{run}.e1.inp.rev.dead");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dead_letters = runtime.block_on(async {
        let client = async_nats::connect(&server.url).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        // The `rev` process creates the stream; wait for it before writing into it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while js.get_stream("PIPELINE_seeds").await.is_err() {
            assert!(Instant::now() < deadline, "the stream never appeared");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Not from a pipeline at all, then one that claims the schema but is not MessagePack.
        js.publish(subject.clone(), "hello".into())
            .await
            .unwrap()
            .await
            .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Pipeline-Schema",
            format!("seeds/inp->rev:{}", std::any::type_name::<String>()).as_str(),
        );
        js.publish_with_headers(subject.clone(), headers, vec![0xc1, 0xff].into())
            .await
            .unwrap()
            .await
            .unwrap();
        js
    });
    let parts = vec![
        rev,
        start(&server, run, "out", &[("PIPELINE_NODES", "out")], words),
        start(&server, run, "inp", &[("PIPELINE_NODES", "inp")], words),
    ];
    let (pairs, reports) = finish(parts);
    assert!(
        pairs == expected_pairs(words),
        "the run did not complete: {} of {words}",
        pairs.len()
    );
    let rev = &reports.iter().find(|(n, _)| n == "rev").unwrap().1;
    let inbound = edge(rev, "inp", "rev");
    assert_eq!((inbound.items, inbound.rejected), (words as u64, 2));
    let stored = runtime.block_on(async {
        use futures::TryStreamExt;
        let stream = dead_letters.get_stream("PIPELINE_seeds").await.unwrap();
        let subjects: Vec<(String, usize)> = stream
            .info_with_subjects(&dead)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        subjects.into_iter().map(|(_, n)| n).sum::<usize>()
    });
    assert_eq!(
        stored, 2,
        "both rejected messages are on the dead-letter subject"
    );
}

#[test]
fn a_rev_process_killed_mid_run_loses_nothing_and_its_replacement_finishes_its_share() {
    let server = server();
    let words = 1000;
    let run = "kill";
    // Unacknowledged items come back after a second instead of half a minute.
    let rev_env = [("PIPELINE_NODES", "rev"), ("PIPELINE_ACK_WAIT_MS", "1000")];
    let rev1 = start(&server, run, "rev-1", &rev_env, words);
    // The doomed process takes 20 ms a word: whatever it pulled, it still holds when it is
    // killed (at 1 ms a word, under load it had sometimes finished all it pulled).
    let doomed_env = [
        ("PIPELINE_NODES", "rev"),
        ("PIPELINE_ACK_WAIT_MS", "1000"),
        ("REV_WORK_MS", "20"),
    ];
    let mut doomed = start(&server, run, "rev-2", &doomed_env, words);
    let out = start(
        &server,
        run,
        "out",
        &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
        words,
    );
    wait_for_pullers(&server, run, 2);
    let inp = start(&server, run, "inp", &[("PIPELINE_NODES", "inp")], words);
    // Two `rev` processes need about half a second for the thousand words: strike once 50
    // have reached the sink (a fixed pause was, under load, before `rev-2` began or after
    // it had finished its share).
    nats_server::wait_for_acks(
        &server.url,
        "PIPELINE_seeds",
        &format!("{run}-e1-rev-out"),
        50,
    );
    doomed.process.kill().unwrap(); // SIGKILL: no end marker, no acknowledgements
    doomed.process.wait().unwrap();
    // A supervisor restarts it under the same instance name; it finishes the run.
    let replacement = start(&server, run, "rev-2", &rev_env, words);
    let (pairs, reports) = finish(vec![rev1, replacement, out, inp]);
    assert!(
        pairs == expected_pairs(words),
        "every word reached the sink exactly once: {} of {words}",
        pairs.len()
    );
    let redelivered: u64 = reports
        .iter()
        .filter(|(name, _)| name.starts_with("rev"))
        .map(|(_, report)| edge(report, "inp", "rev").redelivered)
        .sum();
    assert!(
        redelivered > 0,
        "the killed process held items; they were delivered again"
    );
    for (name, report) in &reports {
        assert!(report.accounting().is_balanced(), "`{name}`:\n{report}");
    }
}

#[test]
fn at_most_once_over_core_nats_the_split_graph_delivers_every_item_when_nothing_fails() {
    let server = server();
    run_split(
        &server,
        "core",
        300,
        &[("PIPELINE_DELIVERY", "at-most-once")],
    );
}

/// The two halves of a graph that counts `items` numbers from one process to the other at
/// most once, in the run `run`, and the count.
fn counting_halves(
    server: &NatsServer,
    run: &str,
    items: u64,
) -> (
    Pipeline,
    Pipeline,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use pipeline::remote::{Delivery, Plan, with_plan};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    let received = Arc::new(AtomicU64::new(0));
    let half = |nodes: &'static str| {
        let plan = Plan::hosting(&server.url, [nodes])
            .run(run)
            .instance(nodes)
            .delivery(Delivery::AtMostOnce);
        let seen = received.clone();
        with_plan(plan, move || {
            pipeline! {
                #![distributed("counting")]
                numbers = source::iter(0..items);
                count = sink::for_each(move |_n: u64| {
                    seen.fetch_add(1, Ordering::Relaxed);
                });
                numbers => count;
            }
        })
    };
    (half("numbers"), half("count"), received)
}

/// Many fast batches over core NATS: the end markers travel on a subject of their own, and
/// NATS does not order them with the items, so a receiver must not stop at its markers.
#[test]
fn at_most_once_a_fast_edge_ends_only_after_its_last_items() {
    use std::sync::atomic::Ordering;

    let server = server();
    let items = 50_000u64;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for run in 0..3 {
        let (sending, receiving, received) = counting_halves(&server, &format!("fast{run}"), items);
        runtime.block_on(async {
            let receiving = receiving.spawn();
            let sending = sending.spawn();
            sending.wait().await.unwrap();
            receiving.wait().await.unwrap();
        });
        assert_eq!(received.load(Ordering::Relaxed), items, "run {run}");
    }
}

/// At most once, a sender waits for its receiver, however late that one starts: the server's
/// "no responders" to the sender's ask is not an answer.
#[test]
fn at_most_once_a_sender_waits_for_a_receiver_that_starts_late() {
    use std::sync::atomic::Ordering;

    let server = server();
    let items = 10_000u64;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sending, receiving, received) = counting_halves(&server, "late", items);
    runtime.block_on(async {
        let sending = sending.spawn();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let receiving = receiving.spawn();
        let both = async {
            sending.wait().await.unwrap();
            receiving.wait().await.unwrap();
        };
        tokio::time::timeout(Duration::from_secs(20), both)
            .await
            .expect("the receiver got every item and ended");
    });
    assert_eq!(received.load(Ordering::Relaxed), items);
}
