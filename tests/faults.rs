//! The fault suite: the seeds' graph split over real processes on a real `nats-server -js`,
//! under the faults users meet (feature `nats`). Each scenario runs at least twice and
//! checks the exact multiset of pairs the sink printed, over every life of the sink
//! process: every pair at least once, nothing else, and duplicates only where the book
//! ("Across machines: how it works") says they may happen. Every process has a hard time
//! limit: a hang fails the test.
//!
//! The processes are this test binary run again: `child_process` plays the part the
//! environment gives it and does nothing in a normal run. Scenarios run one at a time (they
//! time their faults).
#![cfg(feature = "nats")]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pipeline::RunReport;
use pipeline::prelude::*;
use pipeline::remote::async_nats;

#[path = "support/nats_server.rs"]
mod nats_server;

use nats_server::NatsServer;

/// Set in the processes this binary starts.
const ROLE: &str = "PIPELINE_FAULT_CHILD";
/// Where a child writes its run report, as JSON.
const REPORT: &str = "PIPELINE_FAULT_REPORT";
/// No process of a scenario may take longer.
const HARD_LIMIT: Duration = Duration::from_secs(100);

#[test]
fn child_process() {
    if std::env::var(ROLE).is_err() {
        return;
    }
    tracing_subscriber::fmt()
        .with_max_level(if std::env::var("FAULT_DEBUG").is_ok() {
            tracing_subscriber::filter::LevelFilter::DEBUG
        } else {
            tracing_subscriber::filter::LevelFilter::INFO
        })
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let words: usize = std::env::var("WORDS").unwrap().parse().unwrap();
    let work = Duration::from_micros(std::env::var("REV_WORK_US").unwrap().parse().unwrap());
    // One word larger than the server takes, if asked.
    let big: Option<usize> = std::env::var("BIG_WORD").ok().map(|b| b.parse().unwrap());
    // How long the source takes per word, if asked (so that it can be killed mid-run).
    let pace = std::env::var("INP_WORK_US")
        .map(|us| Duration::from_micros(us.parse().unwrap()))
        .unwrap_or_default();
    let word = move |i: usize| {
        std::thread::sleep(pace);
        match big {
            Some(b) if b == i => format!("word{i}{}", "x".repeat(2 << 20)),
            _ => format!("word{i}"),
        }
    };
    // `rev` keeps one word in this many, if asked (a branch of the zip that filters).
    let keep_one_in: usize = std::env::var("KEEP_ONE_IN").map_or(1, |k| k.parse().unwrap());
    let kept = move |word: &str| number(word) % keep_one_in == 0;
    let p = pipeline! {
        #![distributed("seeds")]
        inp = source::iter((0..words).map(word));
        rev = stage::filter_map(move |word: String| {
            std::thread::sleep(work);
            kept(&word).then(|| word.chars().rev().collect::<String>())
        });
        out = sink::for_each(|(word, reversed): (String, String)| println!("pair {word} {reversed}"));
        inp => rev, out;
        rev => out;
    };
    let (report, failure) = match p.run_blocking() {
        Ok(report) => (report, None),
        Err(error) => (*error.report.clone(), Some(error)),
    };
    eprintln!("{report}");
    std::fs::write(
        std::env::var(REPORT).unwrap(),
        serde_json::to_string(&report).unwrap(),
    )
    .unwrap();
    if let Some(error) = failure {
        eprintln!("failed: {error}");
        std::process::exit(3);
    }
}

/// The number in `word123`.
fn number(word: &str) -> usize {
    word.trim_start_matches("word")
        .trim_end_matches('x')
        .parse()
        .unwrap()
}

/// Scenarios time their faults, so they run one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn server_with(extra: &[&str]) -> NatsServer {
    NatsServer::start_with(extra)
        .unwrap_or_else(|e| panic!("the fault suite needs a nats-server: {e}"))
}

/// One life of one process of the split graph.
struct Part {
    name: String,
    process: Child,
    stdout: JoinHandle<String>,
    stderr: JoinHandle<String>,
    report: PathBuf,
}

/// What a life of a process did.
struct Outcome {
    name: String,
    /// None: it hung past the hard limit, or the test killed it.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    report: Option<RunReport>,
}

impl Outcome {
    /// Whether the process failed its run on purpose (exit code 3), e.g. when the server
    /// stayed away longer than it was told to wait.
    fn gave_up(&self) -> bool {
        self.status.and_then(|s| s.code()) == Some(3)
    }
}

/// The graph's shape and pace, and where its processes find the server.
struct Setup {
    url: String,
    dir: PathBuf,
    run: String,
    words: usize,
    rev_work_us: u64,
    /// Given to every process.
    env: Vec<(String, String)>,
}

impl Setup {
    fn start(&self, name: &str, own: &[(&str, &str)]) -> Part {
        std::fs::create_dir_all(&self.dir).unwrap();
        let life = (0..)
            .map(|n| self.dir.join(format!("{}-{name}-{n}.json", self.run)))
            .find(|p| !p.exists() && !p.with_extension("started").exists())
            .unwrap();
        std::fs::write(life.with_extension("started"), "").unwrap();
        let mut process = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, name)
            .env(REPORT, &life)
            .env("PIPELINE_NATS_URL", &self.url)
            .env("PIPELINE_RUN", &self.run)
            .env("PIPELINE_INSTANCE", name)
            .env("WORDS", self.words.to_string())
            .env("REV_WORK_US", self.rev_work_us.to_string())
            // Items a dead process held come back after two seconds.
            .env("PIPELINE_ACK_WAIT_MS", "2000")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(own.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let read = |mut from: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = from.read_to_string(&mut text);
                text
            })
        };
        Part {
            name: name.into(),
            stdout: read(Box::new(process.stdout.take().unwrap())),
            stderr: read(Box::new(process.stderr.take().unwrap())),
            process,
            report: life,
        }
    }

    /// The seeds' graph: the sink, `rev` on two processes, the source last.
    fn seeds(&self) -> Vec<Part> {
        vec![
            self.start("rev-1", &[("PIPELINE_NODES", "rev")]),
            self.start("rev-2", &[("PIPELINE_NODES", "rev")]),
            self.start(
                "out",
                &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            ),
            self.start("inp", &[("PIPELINE_NODES", "inp")]),
        ]
    }

    /// Every pair the sink should print, once.
    fn expected(&self) -> BTreeMap<(String, String), usize> {
        (0..self.words)
            .map(|i| {
                let word = format!("word{i}");
                let reversed = word.chars().rev().collect();
                ((word, reversed), 1)
            })
            .collect()
    }
}

fn setup(server: &NatsServer, run: &str, words: usize, rev_work_us: u64) -> Setup {
    Setup {
        url: server.url.clone(),
        dir: server.dir.clone(),
        run: run.into(),
        words,
        rev_work_us,
        env: Vec::new(),
    }
}

/// Waits for a part to exit, killing it at `deadline`.
fn wait(mut part: Part, deadline: Instant) -> Outcome {
    let status = loop {
        if let Some(status) = part.process.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = part.process.kill();
            let _ = part.process.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let report = std::fs::read_to_string(&part.report)
        .ok()
        .map(|json| serde_json::from_str(&json).unwrap());
    Outcome {
        name: part.name,
        status,
        stdout: part.stdout.join().unwrap(),
        stderr: part.stderr.join().unwrap(),
        report,
    }
}

/// Waits until the sink of `run` has acknowledged `n` items from `rev` (the run's first
/// epoch): every process is then at work, however slowly the machine started them.
fn wait_for_flow(url: &str, run: &str, n: u64) {
    nats_server::wait_for_acks(url, "PIPELINE_seeds", &format!("{run}-e1-rev-out"), n);
}

/// Kills a part with SIGKILL, as a crash would: no marker, no acknowledgement.
fn kill(mut part: Part) -> Outcome {
    assert!(
        part.process.try_wait().unwrap().is_none(),
        "`{}` had ended before the fault",
        part.name
    );
    part.process.kill().unwrap();
    let mut outcome = wait(part, Instant::now() + HARD_LIMIT);
    outcome.status = None;
    outcome
}

fn wait_all(parts: Vec<Part>) -> Vec<Outcome> {
    let deadline = Instant::now() + HARD_LIMIT;
    parts.into_iter().map(|p| wait(p, deadline)).collect()
}

/// Every pair printed by every life of the sink, with how often.
fn delivered(outcomes: &[Outcome]) -> BTreeMap<(String, String), usize> {
    let mut pairs = BTreeMap::new();
    for outcome in outcomes {
        for line in outcome.stdout.lines() {
            // The test harness prints `test child_process ... ` before the first line.
            if let Some((_, pair)) = line.split_once("pair ") {
                let (word, reversed) = pair.split_once(' ').unwrap();
                *pairs
                    .entry((word.to_string(), reversed.to_string()))
                    .or_default() += 1;
            }
        }
    }
    pairs
}

fn describe(outcomes: &[Outcome]) -> String {
    outcomes
        .iter()
        .map(|o| {
            let tail: String = o
                .stderr
                .lines()
                .rev()
                .take(if std::env::var("FAULT_DEBUG").is_ok() {
                    usize::MAX
                } else {
                    30
                })
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            format!("== {} ({:?})\n{tail}", o.name, o.status)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The checks every scenario makes. `killed` outcomes were ended by the test; all others
/// must have exited 0 with a balanced report. Duplicates at the sink: at most `duplicates`.
fn check(setup: &Setup, outcomes: &[Outcome], duplicates: usize) {
    let all = describe(outcomes);
    for o in outcomes
        .iter()
        .filter(|o| o.status.is_some() && !o.gave_up())
    {
        assert!(o.status.unwrap().success(), "`{}` failed:\n{all}", o.name);
        let report = o.report.as_ref().unwrap();
        assert!(report.accounting().is_balanced(), "`{}`:\n{report}", o.name);
    }
    let got = delivered(outcomes);
    let expected = setup.expected();
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let foreign: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    let repeated: usize = got.values().map(|n| n - 1).sum();
    assert!(
        missing.is_empty(),
        "{} of {} pairs never reached the sink (first: {:?}):\n{all}",
        missing.len(),
        expected.len(),
        missing.first()
    );
    assert!(foreign.is_empty(), "pairs nobody sent: {foreign:?}");
    assert!(
        repeated <= duplicates,
        "{repeated} pairs reached the sink twice (at most {duplicates} may here):\n{all}"
    );
}

fn hung(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes
        .iter()
        .filter(|o| o.status.is_none())
        .map(|o| o.name.as_str())
        .collect()
}

/// Runs the seeds' graph while `fault` does something to the server `after` the source
/// started; checks the sink got every pair exactly once (nothing died, so nothing repeats).
fn server_fault(name: &str, fault: impl Fn(&mut NatsServer)) {
    let _serial = serial();
    let mut server = server_with(&[]);
    for round in 0..2 {
        let run = format!("{name}{round}");
        let setup = setup(&server, &run, 3000, 1000);
        let mut parts = setup.seeds();
        std::thread::sleep(Duration::from_millis(400));
        // The fault strikes mid-run: `rev` and the sink are still at work (the source may
        // have sent everything).
        assert!(
            parts.iter_mut().filter(|p| p.name != "inp").all(|p| p
                .process
                .try_wait()
                .unwrap()
                .is_none()),
            "the run ended before the fault"
        );
        fault(&mut server);
        let outcomes = wait_all(parts);
        assert!(
            hung(&outcomes).is_empty(),
            "hung: {:?}\n{}",
            hung(&outcomes),
            describe(&outcomes)
        );
        assert!(
            outcomes.iter().all(|o| o.status.unwrap().success()),
            "every process rides through:\n{}",
            describe(&outcomes)
        );
        check(&setup, &outcomes, 0);
    }
}

#[test]
fn the_server_paused_for_five_seconds_loses_nothing() {
    server_fault("paused", |server| {
        server.signal("STOP");
        std::thread::sleep(Duration::from_secs(5));
        server.signal("CONT");
    });
}

#[test]
fn the_server_killed_and_restarted_on_its_store_loses_nothing() {
    server_fault("killed", |server| {
        server.signal("KILL");
        server.wait_exit();
        std::thread::sleep(Duration::from_millis(500));
        server.restart();
    });
}

#[test]
fn the_server_terminated_and_restarted_on_its_store_loses_nothing() {
    server_fault("terminated", |server| {
        server.signal("TERM");
        server.wait_exit();
        std::thread::sleep(Duration::from_millis(500));
        server.restart();
    });
}

/// Kills the process `victim` of the seeds' graph mid-run and starts it again under the
/// same instance name; `duplicates` is the check's allowance.
fn process_killed(victim: &str, duplicates: usize) {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let run = format!("kill-{victim}-{round}");
        let mut setup = setup(&server, &run, 1500, 1000);
        // The source takes as long as `rev`, so that it too is killed mid-run.
        setup.env.push(("INP_WORK_US".into(), "1000".into()));
        let mut parts = setup.seeds();
        wait_for_flow(&setup.url, &run, 50);
        let at = parts.iter().position(|p| p.name == victim).unwrap();
        let doomed = parts.remove(at);
        let own: Vec<(&str, &str)> = match victim {
            "out" => vec![("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            "inp" => vec![("PIPELINE_NODES", "inp")],
            _ => vec![("PIPELINE_NODES", "rev")],
        };
        let mut outcomes = vec![kill(doomed)];
        parts.push(setup.start(victim, &own));
        outcomes.extend(wait_all(parts));
        assert!(
            outcomes.iter().skip(1).all(|o| o.status.is_some()),
            "hung:\n{}",
            describe(&outcomes)
        );
        check(&setup, &outcomes, duplicates);
        // The fault struck mid-run: the victim had done part of its work, not all of it.
        let restarted = outcomes.last().unwrap().report.as_ref().unwrap();
        let (from, to) = if victim == "out" {
            ("rev", "out")
        } else {
            ("inp", "rev")
        };
        let edge = restarted
            .remote
            .iter()
            .find(|e| e.from == from && e.to == to)
            .unwrap();
        if victim == "inp" {
            // It sent everything again; the stream kept the first copies.
            assert_eq!(edge.items, setup.words as u64, "{restarted}");
        } else {
            assert!(
                edge.items < setup.words as u64,
                "the restarted `{victim}` found part of the work done:\n{restarted}"
            );
        }
        if victim == "out" {
            assert!(
                !delivered(&outcomes[..1]).is_empty(),
                "the sink died mid-run"
            );
        }
    }
}

#[test]
fn a_stage_process_killed_and_restarted_loses_nothing_and_repeats_nothing() {
    // What `rev` stored before it died is stored once, by message id.
    process_killed("rev-1", 0);
}

#[test]
fn the_source_process_killed_and_restarted_loses_nothing_and_repeats_nothing() {
    // The restarted source sends everything again; the stream drops the copies.
    process_killed("inp", 0);
}

#[test]
fn the_sink_process_killed_and_restarted_loses_nothing() {
    // What the dead sink consumed but had not acknowledged is consumed again: at most what
    // it may hold unacknowledged.
    process_killed("out", 1500);
}

#[test]
fn a_slow_stage_with_a_short_ack_wait_runs_each_item_once() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        // 2 000 items of 2 ms on one `rev` process with a 1 s ack wait: it holds items far
        // longer than the ack wait before it gets to them.
        let mut setup = setup(&server, &format!("slow{round}"), 2000, 2000);
        setup
            .env
            .push(("PIPELINE_ACK_WAIT_MS".into(), "1000".into()));
        let parts = vec![
            setup.start("rev-1", &[("PIPELINE_NODES", "rev")]),
            setup.start("out", &[("PIPELINE_NODES", "out")]),
            setup.start("inp", &[("PIPELINE_NODES", "inp")]),
        ];
        let outcomes = wait_all(parts);
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
        let rev = outcomes[0].report.as_ref().unwrap();
        let stage = rev.nodes.iter().find(|n| n.name == "rev").unwrap();
        assert_eq!(
            stage.received, setup.words as u64,
            "`rev` ran each item once, though it holds items longer than the ack wait:\n{rev}"
        );
        // Nor did the server deliver anything again: `rev` said it was still at work.
        let inbound = rev.remote.iter().find(|e| e.from == "inp").unwrap();
        assert_eq!(inbound.redelivered, 0, "{rev}");
    }
}

#[test]
fn a_run_name_used_again_runs_again_in_full() {
    let _serial = serial();
    let server = server_with(&[]);
    // Three runs one after the other under one name, within the stream's duplicate window.
    for _ in 0..3 {
        let setup = setup(&server, "again", 300, 100);
        let outcomes = wait_all(setup.seeds());
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
    }
}

#[test]
fn a_run_name_used_again_after_the_duplicate_window_runs_again_in_full() {
    let _serial = serial();
    let server = server_with(&[]);
    for _ in 0..2 {
        let mut setup = setup(&server, "later", 300, 100);
        // A one-second window, so that the second run comes after it.
        setup
            .env
            .push(("PIPELINE_DUPLICATE_WINDOW_S".into(), "1".into()));
        let outcomes = wait_all(setup.seeds());
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
        std::thread::sleep(Duration::from_millis(1500));
    }
}

#[test]
fn a_spoofed_end_marker_ends_nothing() {
    let _serial = serial();
    let server = server_with(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for round in 0..2 {
        let run = format!("spoof{round}");
        let setup = setup(&server, &run, 500, 500);
        // Everything but the source, which starts only after the forgery.
        let mut parts = vec![
            setup.start("rev-1", &[("PIPELINE_NODES", "rev")]),
            setup.start("rev-2", &[("PIPELINE_NODES", "rev")]),
            setup.start(
                "out",
                &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            ),
        ];
        runtime.block_on(async {
            let client = async_nats::connect(&server.url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let deadline = Instant::now() + Duration::from_secs(20);
            while js.get_stream("PIPELINE_seeds").await.is_err() {
                assert!(Instant::now() < deadline, "the stream never appeared");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // The epoch the receivers joined: the first of this run name.
            for (from, to) in [("inp", "rev"), ("inp", "out"), ("rev", "out")] {
                for instance in ["inp", "rev-1", "rev-2", "x"] {
                    js.publish(
                        format!("pipeline.seeds.{run}.e1.{from}.{to}.end.{instance}"),
                        "0".into(),
                    )
                    .await
                    .unwrap()
                    .await
                    .unwrap();
                }
            }
        });
        std::thread::sleep(Duration::from_millis(500));
        parts.push(setup.start("inp", &[("PIPELINE_NODES", "inp")]));
        let outcomes = wait_all(parts);
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
        let out = outcomes[2].report.as_ref().unwrap();
        let rejected: u64 = out.remote.iter().map(|e| e.rejected).sum();
        assert!(
            rejected >= 2,
            "the forged markers are counted as rejected:\n{out}"
        );
    }
}

#[test]
fn a_zip_on_two_processes_is_refused_at_start() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let setup = setup(&server, &format!("zip{round}"), 10, 0);
        let part = setup.start(
            "out",
            &[
                ("PIPELINE_NODES", "out"),
                ("PIPELINE_REPLICAS", "rev=2,out=2"),
            ],
        );
        let outcome = wait(part, Instant::now() + Duration::from_secs(30));
        assert_eq!(
            outcome.status.and_then(|s| s.code()),
            Some(3),
            "{}",
            outcome.stderr
        );
        assert!(
            outcome
                .stderr
                .contains("`out` pairs the items of its inputs, so one process must host it"),
            "{}",
            outcome.stderr
        );
    }
}

#[test]
fn user_and_password_or_token_in_the_url_let_a_process_in_and_never_show() {
    let _serial = serial();
    for (args, good, bad) in [
        (
            vec!["--user", "alice", "--pass", "s3cret-pw"],
            "alice:s3cret-pw",
            "alice:wr0ng-pw",
        ),
        (vec!["--auth", "t0ken-abc"], "t0ken-abc", "t0ken-bad"),
    ] {
        let server = server_with(&args);
        let address = server.url.trim_start_matches("nats://").to_string();
        for round in 0..2 {
            let mut setup = setup(&server, &format!("auth{round}"), 200, 0);
            setup.url = format!("nats://{good}@{address}");
            let outcomes = wait_all(setup.seeds());
            assert!(
                hung(&outcomes).is_empty(),
                "hung (round {round}, server {args:?}):\n{}\n== server log\n{}",
                describe(&outcomes),
                server.log_tail(40)
            );
            check(&setup, &outcomes, 0);
        }
        // Wrong credentials: the process gives up, and says so without the secret.
        let mut setup = setup(&server, "denied", 10, 0);
        setup.url = format!("nats://{bad}@{address}");
        setup.env.push(("PIPELINE_RETRY_FOR_S".into(), "1".into()));
        let outcome = wait(
            setup.start("inp", &[("PIPELINE_NODES", "inp")]),
            Instant::now() + Duration::from_secs(30),
        );
        assert_eq!(
            outcome.status.and_then(|s| s.code()),
            Some(3),
            "{}",
            outcome.stderr
        );
        let secret = bad.rsplit(':').next().unwrap();
        assert!(
            !outcome.stderr.contains(secret) && !outcome.stdout.contains(secret),
            "the secret was printed:\n{}",
            outcome.stderr
        );
        assert!(outcome.stderr.contains("***@"), "{}", outcome.stderr);
    }
}

#[test]
fn an_item_larger_than_the_server_takes_fails_as_an_item() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let mut setup = setup(&server, &format!("big{round}"), 200, 0);
        setup.env.push(("BIG_WORD".into(), "7".into()));
        let outcomes = wait_all(setup.seeds());
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        // Every other word arrives; the big one fails on both of the source's edges.
        let mut expected = setup.expected();
        expected.remove(&("word7".to_string(), "7drow".to_string()));
        let all = describe(&outcomes);
        for o in &outcomes {
            assert!(o.status.unwrap().success(), "`{}` failed:\n{all}", o.name);
            let report = o.report.as_ref().unwrap();
            assert!(report.accounting().is_balanced(), "`{}`:\n{report}", o.name);
        }
        assert_eq!(delivered(&outcomes), expected);
        let inp = outcomes[3].report.as_ref().unwrap();
        assert_eq!(inp.accounting().failed, 2, "{inp}");
        assert!(
            inp.to_string()
                .contains("1 failed (larger than the server's maximum payload)"),
            "{inp}"
        );
    }
}

#[test]
fn two_live_processes_with_one_instance_name_are_told_apart() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let setup = setup(&server, &format!("twins{round}"), 300, 500);
        let first = setup.start("rev-1", &[("PIPELINE_NODES", "rev")]);
        std::thread::sleep(Duration::from_millis(300));
        let twin = setup.start("rev-1", &[("PIPELINE_NODES", "rev")]);
        let twin = wait(twin, Instant::now() + Duration::from_secs(30));
        assert_eq!(
            twin.status.and_then(|s| s.code()),
            Some(3),
            "{}",
            twin.stderr
        );
        assert!(
            twin.stderr
                .contains("already has the instance name `rev-1`: give each process its own"),
            "{}",
            twin.stderr
        );
        // The first one is unharmed, and the run completes with a second, rightly named.
        let parts = vec![
            first,
            setup.start("rev-2", &[("PIPELINE_NODES", "rev")]),
            setup.start(
                "out",
                &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            ),
            setup.start("inp", &[("PIPELINE_NODES", "inp")]),
        ];
        let outcomes = wait_all(parts);
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
    }
}

/// Publishes a message as raw protocol, headers and all, which no client library would
/// write: the way a broken or hostile publisher could.
fn publish_raw(url: &str, subject: &str, header: &[u8], payload: &[u8]) {
    use std::io::{BufRead, BufReader, Write};
    let address = url.trim_start_matches("nats://");
    let mut socket = std::net::TcpStream::connect(address).unwrap();
    let mut reader = BufReader::new(socket.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap(); // INFO
    let mut out = Vec::new();
    out.extend_from_slice(
        b"CONNECT {\"verbose\":false,\"pedantic\":false,\"headers\":true,\"protocol\":1}\r\n",
    );
    out.extend_from_slice(
        format!(
            "HPUB {subject} {} {}\r\n",
            header.len(),
            header.len() + payload.len()
        )
        .as_bytes(),
    );
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\nPING\r\n");
    socket.write_all(&out).unwrap();
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        assert!(!line.starts_with("-ERR"), "the server refused: {line}");
        if line.starts_with("PONG") {
            return;
        }
    }
}

#[test]
fn messages_with_malformed_or_huge_headers_are_dead_lettered_and_the_run_completes() {
    let _serial = serial();
    let server = server_with(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut big = b"NATS/1.0\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 60_000));
    big.extend_from_slice(b"\r\n\r\n");
    let bad: Vec<Vec<u8>> = vec![
        b"NATS/1.0\r\nPipeline-Schema: \xff\xfe\r\n\r\n".to_vec(),
        b"NATS/1.0\r\nno colon on this line\r\n\r\n".to_vec(),
        b"HTTP/1.1 200\r\nA: b\r\n\r\n".to_vec(),
        big,
    ];
    for round in 0..2 {
        let run = format!("malformed{round}");
        let setup = setup(&server, &run, 300, 200);
        let mut parts = vec![
            setup.start("rev-1", &[("PIPELINE_NODES", "rev")]),
            setup.start("rev-2", &[("PIPELINE_NODES", "rev")]),
            setup.start(
                "out",
                &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            ),
        ];
        let stream = runtime.block_on(async {
            let client = async_nats::connect(&server.url).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if let Ok(stream) = js.get_stream("PIPELINE_seeds").await {
                    break stream;
                }
                assert!(Instant::now() < deadline, "the stream never appeared");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        let subject = format!("pipeline.seeds.{run}.e1.inp.rev.data");
        for header in &bad {
            publish_raw(&server.url, &subject, header, b"payload");
        }
        parts.push(setup.start("inp", &[("PIPELINE_NODES", "inp")]));
        let outcomes = wait_all(parts);
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
        let rejected: u64 = outcomes[..2]
            .iter()
            .map(|o| {
                let report = o.report.as_ref().unwrap();
                report.remote.iter().map(|e| e.rejected).sum::<u64>()
            })
            .sum();
        assert_eq!(rejected, bad.len() as u64, "{}", describe(&outcomes));
        let dead = runtime.block_on(async {
            use futures::TryStreamExt;
            let subjects: Vec<(String, usize)> = stream
                .info_with_subjects(format!("pipeline.seeds.{run}.e1.inp.rev.dead"))
                .await
                .unwrap()
                .try_collect()
                .await
                .unwrap();
            subjects.into_iter().map(|(_, n)| n).sum::<usize>()
        });
        assert_eq!(
            dead,
            bad.len(),
            "every bad message is on the dead-letter subject"
        );
    }
}

/// A directory of its own for a scenario's files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pipeline-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the seeds' graph twice with `env`, then once with `denied` instead: that process
/// must exit non-zero within a few seconds, its error saying why.
fn secured(server: &NatsServer, name: &str, env: &[(&str, String)], denied: &[(&str, String)]) {
    for round in 0..2 {
        let mut setup = setup(server, &format!("{name}{round}"), 200, 0);
        setup
            .env
            .extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let outcomes = wait_all(setup.seeds());
        assert!(hung(&outcomes).is_empty(), "hung:\n{}", describe(&outcomes));
        check(&setup, &outcomes, 0);
    }
    let mut setup = setup(server, &format!("{name}-denied"), 10, 0);
    setup
        .env
        .extend(denied.iter().map(|(k, v)| (k.to_string(), v.clone())));
    setup.env.push(("PIPELINE_RETRY_FOR_S".into(), "1".into()));
    let outcome = wait(
        setup.start("inp", &[("PIPELINE_NODES", "inp")]),
        Instant::now() + Duration::from_secs(30),
    );
    assert_eq!(
        outcome.status.and_then(|s| s.code()),
        Some(3),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.stderr.contains("cannot connect to NATS"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn tls_with_a_test_ca_and_client_certificates() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
    let _serial = serial();
    let files = Scratch::new("tls");
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let signed = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let certificate = params.signed_by(&key, &issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = signed(vec!["localhost".into()]);
    let (client_pem, client_key) = signed(vec!["client".into()]);
    let ca_file = files.write("ca.pem", &ca_pem);
    let config = format!(
        "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{ca_file}\"\n  verify: true\n}}\n",
        files.write("server.pem", &server_pem),
        files.write("server.key", &server_key),
    );
    let config = files.write("tls.conf", &config);
    let server = server_with(&["-c", &config]);
    let ca_only = ("PIPELINE_NATS_CA", ca_file.clone());
    secured(
        &server,
        "tls",
        &[
            ca_only.clone(),
            ("PIPELINE_NATS_CERT", files.write("client.pem", &client_pem)),
            ("PIPELINE_NATS_KEY", files.write("client.key", &client_key)),
        ],
        // The server verifies clients: without a certificate, no entry.
        &[ca_only],
    );
}

#[test]
fn an_nkey_lets_a_process_in() {
    let _serial = serial();
    let files = Scratch::new("nkey");
    let user = nkeys::KeyPair::new_user();
    let config = format!(
        "authorization {{\n  users = [ {{ nkey: \"{}\" }} ]\n}}\n",
        user.public_key()
    );
    let config = files.write("nkey.conf", &config);
    let seed = files.write("user.nk", &user.seed().unwrap());
    let stranger = nkeys::KeyPair::new_user();
    let wrong = files.write("stranger.nk", &stranger.seed().unwrap());
    let server = server_with(&["-c", &config]);
    secured(
        &server,
        "nkey",
        &[("PIPELINE_NATS_NKEY", seed)],
        &[("PIPELINE_NATS_NKEY", wrong)],
    );
}

#[test]
fn a_server_away_longer_than_the_patience_fails_every_process_and_a_restart_finishes_the_run() {
    let _serial = serial();
    let mut server = server_with(&[]);
    for round in 0..2 {
        let mut setup = setup(&server, &format!("patience{round}"), 1500, 1000);
        setup.env.push(("PIPELINE_RETRY_FOR_S".into(), "2".into()));
        let parts = setup.seeds();
        std::thread::sleep(Duration::from_millis(500));
        server.signal("KILL");
        server.wait_exit();
        let mut outcomes = wait_all(parts);
        let all = describe(&outcomes);
        // The source may have sent everything before the server went away; the others
        // were still at work, and gave up.
        for o in &outcomes {
            if o.name == "inp" && o.status.is_some_and(|s| s.success()) {
                continue;
            }
            assert!(o.gave_up(), "`{}` did not give up:\n{all}", o.name);
            assert!(o.stderr.contains("tried for"), "`{}`:\n{all}", o.name);
            let report = o.report.as_ref().unwrap();
            assert!(report.failure.is_some(), "{report}");
        }
        let pending: u64 = outcomes
            .iter()
            .flat_map(|o| &o.report.as_ref().unwrap().remote)
            .map(|e| e.pending)
            .sum();
        assert!(pending > 0, "the reports say what was left:\n{all}");
        // The server comes back; the same processes, started again, finish the run.
        server.restart();
        let parts = setup
            .seeds()
            .into_iter()
            .filter(|p| outcomes.iter().any(|o| o.name == p.name && o.gave_up()))
            .collect();
        let again = wait_all(parts);
        assert!(hung(&again).is_empty(), "hung:\n{}", describe(&again));
        assert!(
            again.iter().all(|o| o.status.unwrap().success()),
            "{}",
            describe(&again)
        );
        outcomes.extend(again);
        // What the sink had consumed but not acknowledged when it gave up comes again.
        check(&setup, &outcomes, setup.words);
    }
}

/// Starts the seeds' graph, with the source as slow as `rev`, and kills `victim` mid-run;
/// returns the setup, the other parts (still running) and the victim's outcome.
fn kill_mid_run(server: &NatsServer, run: &str, victim: &str) -> (Setup, Vec<Part>, Outcome) {
    let mut setup = setup(server, run, 1500, 1000);
    setup.env.push(("INP_WORK_US".into(), "1000".into()));
    setup.env.push(("PIPELINE_RETRY_FOR_S".into(), "3".into()));
    let mut parts = setup.seeds();
    wait_for_flow(&setup.url, run, 50);
    let at = parts.iter().position(|p| p.name == victim).unwrap();
    let killed = kill(parts.remove(at));
    (setup, parts, killed)
}

#[test]
fn a_stage_process_killed_for_good_leaves_its_share_to_the_other() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let (setup, parts, killed) = kill_mid_run(&server, &format!("gone-rev{round}"), "rev-1");
        let mut outcomes = vec![killed];
        outcomes.extend(wait_all(parts));
        assert!(
            hung(&outcomes[1..]).is_empty(),
            "hung:\n{}",
            describe(&outcomes)
        );
        // `rev-2` did what `rev-1` held when it died (if anything), and ended the node
        // without `rev-1`'s marker; the sink got everything, once.
        check(&setup, &outcomes, 0);
        let rev2 = outcomes[1].report.as_ref().unwrap();
        let inbound = rev2.remote.iter().find(|e| e.from == "inp").unwrap();
        assert!(
            inbound.items < setup.words as u64,
            "`rev-1` took its share before it died:\n{rev2}"
        );
    }
}

#[test]
fn the_source_killed_for_good_fails_the_others_saying_whom_to_restart() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let (setup, parts, killed) = kill_mid_run(&server, &format!("gone-inp{round}"), "inp");
        let started = Instant::now();
        let mut outcomes = vec![killed];
        outcomes.extend(wait_all(parts));
        let all = describe(&outcomes);
        assert!(hung(&outcomes[1..]).is_empty(), "hung:\n{all}");
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "took {:?}",
            started.elapsed()
        );
        for o in &outcomes[1..] {
            assert!(o.gave_up(), "`{}`:\n{all}", o.name);
            assert!(
                o.stderr.contains(
                    "the process `inp` hosting `inp` started sending on this edge, never ended it"
                ) && o.stderr.contains("PIPELINE_INSTANCE=inp"),
                "`{}`:\n{all}",
                o.name
            );
        }
        // What reached the sink is right, and there once.
        let got = delivered(&outcomes);
        let expected = setup.expected();
        assert!(got.keys().all(|k| expected.contains_key(k)));
        assert!(got.values().all(|&n| n == 1), "{got:?}");
    }
}

#[test]
fn the_sink_killed_for_good_lets_the_others_finish_and_its_items_wait() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let (setup, parts, killed) = kill_mid_run(&server, &format!("gone-out{round}"), "out");
        let mut outcomes = vec![killed];
        outcomes.extend(wait_all(parts));
        assert!(
            hung(&outcomes[1..]).is_empty(),
            "hung:\n{}",
            describe(&outcomes)
        );
        for o in &outcomes[1..] {
            assert!(o.status.unwrap().success(), "{}", describe(&outcomes));
        }
        // Whenever it comes back, it finds everything.
        outcomes.extend(wait_all(vec![setup.start(
            "out",
            &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
        )]));
        check(&setup, &outcomes, setup.words);
    }
}

#[test]
fn a_zip_branch_that_filters_nine_in_ten_of_thirty_thousand_items_completes() {
    let _serial = serial();
    let server = server_with(&[]);
    for round in 0..2 {
        let mut setup = setup(&server, &format!("filtering{round}"), 30_000, 0);
        setup.env.push(("KEEP_ONE_IN".into(), "10".into()));
        let parts = vec![
            setup.start("rev-1", &[("PIPELINE_NODES", "rev")]),
            setup.start("rev-2", &[("PIPELINE_NODES", "rev")]),
            setup.start(
                "out",
                &[("PIPELINE_NODES", "out"), ("PIPELINE_REPLICAS", "rev=2")],
            ),
            setup.start("inp", &[("PIPELINE_NODES", "inp")]),
        ];
        let outcomes = wait_all(parts);
        let all = describe(&outcomes);
        assert!(hung(&outcomes).is_empty(), "hung:\n{all}");
        for o in &outcomes {
            assert!(o.status.unwrap().success(), "`{}` failed:\n{all}", o.name);
            let report = o.report.as_ref().unwrap();
            assert!(report.accounting().is_balanced(), "`{}`:\n{report}", o.name);
        }
        let expected: BTreeMap<(String, String), usize> = setup
            .expected()
            .into_iter()
            .filter(|((word, _), _)| number(word) % 10 == 0)
            .collect();
        assert_eq!(delivered(&outcomes), expected);
        let out = outcomes[2].report.as_ref().unwrap();
        assert_eq!(out.accounting().dropped_partial_tuples, 27_000, "{out}");
    }
}
