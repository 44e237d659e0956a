//! Run analysis: the bottleneck verdict, and pictures and tables of graphs and runs.

use std::time::Duration;

use pipeline::prelude::*;
use pipeline::{FanIn, NodeReport, Role};

/// Spins for about `d`: a stage that is cheap enough to run inline, yet costs far more
/// than the source's iteration.
fn spin(d: Duration) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// A chain of cheap stages runs inline on the source's thread: the time its stages take is
/// the source waiting on them (blocked), not the source being busy, and the stage that
/// costs the most shows it.
#[test]
fn time_in_stages_running_inline_is_theirs_not_the_sources() {
    let p = pipeline! {
        nums = source::iter(0..20_000u32);
        light = stage::map(|n: u32| n + 1);
        heavy = stage::map(|n: u32| {
            spin(Duration::from_micros(2));
            n
        });
        out = sink::for_each(|_n: u32| {});
        nums => light => heavy => out;
    };
    let report = p.run_blocking().unwrap();
    let wall = report.elapsed;
    let share = |name: &str| {
        let node = report.node(name).unwrap();
        (node.utilisation(wall), node.blocked_share(wall))
    };
    let (source_busy, source_blocked) = share("nums");
    let (heavy_busy, _) = share("heavy");
    assert!(source_blocked > 0.5, "{report}");
    assert!(heavy_busy > source_busy, "{report}");
    assert_ne!(
        report.verdict().map(|v| v.bottleneck),
        Some("nums".into()),
        "{report}"
    );
}

#[test]
fn the_verdict_names_the_slow_stage_and_says_what_to_do() {
    let p = pipeline! {
        nums = source::iter(0..150u32);
        fast = stage::map(|n: u32| n + 1);
        slow[capacity(4)] = stage::map(|n: u32| {
            std::thread::sleep(Duration::from_millis(2));
            n
        });
        out = sink::for_each(|_n: u32| {});
        nums => fast => slow => out;
    };
    let report = p.run_blocking().unwrap();
    let verdict = report.verdict().expect("one stage is clearly the limit");
    assert_eq!(verdict.bottleneck, "slow", "{report}");
    assert!(verdict.utilisation > 0.8, "{report}");
    let (upstream, share) = verdict
        .blocked_upstream
        .clone()
        .expect("`fast` waits on `slow`");
    assert_eq!(upstream, "fast");
    assert!(share > 0.5, "{report}");
    assert!(
        verdict
            .suggestion
            .starts_with("raise workers on `slow` to "),
        "{}",
        verdict.suggestion
    );
    assert!(
        report.to_string().contains("bottleneck: `slow`"),
        "{report}"
    );
    assert!(
        report.mermaid().contains("bottleneck, busy"),
        "{}",
        report.mermaid()
    );
}

/// A stage whose threads computed all the time gets no more workers than the machine has
/// cores: more threads would only take turns on them.
#[test]
fn a_stage_that_computes_is_given_no_more_workers_than_cores() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut report = finished_run();
    let wall = report.elapsed;
    // One worker on a CPU all the time: more workers help, up to the cores.
    report.nodes[1].cpu = Some(wall.mul_f64(0.95));
    let verdict = report.verdict().expect("`rev` is the limit");
    if cores > 1 {
        let wanted = format!("raise workers on `rev` to {cores}: `rev[workers({cores})]`");
        assert_eq!(verdict.suggestion, wanted);
    }
    // As many workers as cores, each on a CPU all the time: no more workers.
    report.nodes[1].workers = cores;
    report.nodes[1].busy = wall.mul_f64(0.97 * cores as f64);
    report.nodes[1].cpu = Some(wall.mul_f64(0.95 * cores as f64));
    let verdict = report.verdict().expect("`rev` is the limit");
    assert!(
        verdict.suggestion.starts_with(&format!(
            "`rev` computes on its {cores} workers all the time, and this machine has {cores} cores"
        )),
        "{}",
        verdict.suggestion
    );
    // The same busy time spent waiting (little CPU): more workers do help.
    report.nodes[1].cpu = Some(wall.mul_f64(0.05));
    let verdict = report.verdict().expect("`rev` is the limit");
    assert!(
        verdict.suggestion.starts_with("raise workers on `rev` to "),
        "{}",
        verdict.suggestion
    );
}

/// A node on threads of its own reports their CPU time: a stage that sleeps uses little of
/// it, whatever its busy time.
#[test]
fn a_node_on_its_own_threads_reports_their_cpu_time() {
    let p = pipeline! {
        nums = source::iter(0..40u32);
        sleepy[workers(2)] = stage::map(|n: u32| {
            std::thread::sleep(Duration::from_millis(2));
            n
        });
        out = sink::for_each(|_n: u32| {});
        nums => sleepy => out;
    };
    let report = p.run_blocking().unwrap();
    let sleepy = report.node("sleepy").unwrap();
    let cpu = sleepy.cpu.expect("its workers are threads of its own");
    assert!(cpu < sleepy.busy / 2, "cpu {cpu:?}, busy {:?}", sleepy.busy);
    assert!(!sleepy.computes(report.elapsed, 2), "{report}");
}

fn declared() -> pipeline::Pipeline {
    pipeline! {
        inp = source::iter(Vec::<String>::new());
        rev[workers(2)] = stage::map(|s: String| s.chars().rev().collect::<String>());
        parse[dead_letter(bad)] = stage::try_map(|s: String| s.parse::<u32>());
        out = sink::for_each(|(_a, _b): (String, String)| {});
        nums = sink::for_each(|_n: u32| {});
        bad = sink::for_each(|_f: pipeline::Failed<String>| {});
        inp => rev, out, parse;
        rev => out;
        parse => nums;
    }
}

#[test]
fn pictures_of_the_declared_graph() {
    let p = declared();
    insta::assert_snapshot!("declared_mermaid", p.mermaid());
    insta::assert_snapshot!("declared_dot", p.dot());
    let svg = p.svg();
    for name in ["inp (source)", "rev (stage)", "out (sink)"] {
        assert!(svg.contains(name), "{name} not drawn:\n{svg}");
    }
}

/// A finished run with fixed numbers, so its pictures and table do not depend on timing.
fn finished_run() -> RunReport {
    let node =
        |name: &str, role, fan_in, (inputs, outputs), (received, emitted, filtered), busy_ms| {
            let mut node = NodeReport::new(name, role);
            node.fan_in = fan_in;
            (node.inputs, node.outputs) = (inputs, outputs);
            (node.received, node.emitted, node.filtered) = (received, emitted, filtered);
            node.active = Duration::from_millis(1000);
            node.busy = Duration::from_millis(busy_ms);
            node.starved = Duration::from_millis(1000 - busy_ms);
            node
        };
    let mut inp = node("inp", Role::Source, FanIn::Single, (0, 2), (0, 20, 0), 150);
    inp.blocked = Duration::from_millis(850);
    inp.starved = Duration::ZERO;
    let mut report = RunReport::default();
    report.nodes = vec![
        inp,
        node("rev", Role::Stage, FanIn::Single, (1, 1), (20, 18, 2), 970),
        node("out", Role::Sink, FanIn::Zip, (2, 0), (18, 0, 0), 40),
    ];
    report.edges = [("inp", "rev"), ("inp", "out"), ("rev", "out")]
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .to_vec();
    report.elapsed = Duration::from_millis(1000);
    report
}

#[test]
fn pictures_and_table_of_a_finished_run() {
    let mut report = finished_run();
    report.nodes[2].dropped_partial_tuples = 2;
    report.nodes[2].dropped_partial_items = 2;
    assert!(
        report.accounting().is_balanced(),
        "{:?}",
        report.accounting()
    );
    insta::assert_snapshot!("run_mermaid", report.mermaid());
    insta::assert_snapshot!("run_dot", report.dot());
    insta::assert_snapshot!("run_table", report.to_string());
}

#[test]
fn the_table_shows_workers_retries_and_restarts_only_when_a_node_had_them() {
    let mut report = finished_run();
    report.nodes[2].dropped_partial_tuples = 2;
    report.nodes[2].dropped_partial_items = 2;
    let rev = &mut report.nodes[1];
    rev.workers = 4;
    rev.retried = 5;
    rev.restarts = 1;
    rev.panics = 1;
    let table = report.to_string();
    for header in ["workers", "retried", "restarts"] {
        assert!(table.lines().next().unwrap().contains(header), "{table}");
    }
    assert!(!table.contains("dead-lettered"), "{table}");
    assert!(table.contains("every item accounted for"), "{table}");
    insta::assert_snapshot!("run_table_with_workers_and_retries", table);
}

/// Nodes bound before the macro are listed where the data reaches them, not last.
#[test]
fn the_report_lists_nodes_as_the_data_flows() {
    let words = source::iter(["a", "bb"]);
    let seen = Collected::new();
    let out = seen.sink();
    let p = pipeline! {
        long = stage::filter(|w: &&str| w.len() > 1);
        words => long => out;
    };
    let report = p.run_blocking().unwrap();
    let names: Vec<&str> = report.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["words", "long", "out"]);
}

#[test]
fn a_report_survives_a_json_round_trip() {
    let p = pipeline! {
        words = source::iter(["a", "bb", "ccc"]);
        long = stage::filter(|w: &&str| w.len() > 1);
        out = sink::for_each(|_w: &str| {});
        words => long => out;
    };
    let report = p.run_blocking().unwrap();
    let json = serde_json::to_string_pretty(&report).unwrap();
    assert!(json.contains("\"filtered\": 1"), "{json}");
    // Durations are seconds, as numbers.
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(value["elapsed"].is_f64(), "{json}");
    assert!(value["nodes"][1]["busy"].is_f64(), "{json}");
    let back: RunReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, report);
    assert_eq!(back.to_string(), report.to_string());
}

#[test]
fn async_stages_that_block_the_async_workers_are_flagged() {
    let p = pipeline! {
        nums = source::iter(0..20u32);
        hog = stage::map_async(|n: u32| async move {
            std::thread::sleep(Duration::from_millis(2)); // blocks an async worker
            n
        });
        polite = stage::map_async(|n: u32| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            n
        });
        out = sink::for_each(|_n: u32| {});
        nums => hog => polite => out;
    };
    let report = p.run_blocking().unwrap();
    assert_eq!(report.node("hog").unwrap().long_polls, 20);
    assert_eq!(report.node("polite").unwrap().long_polls, 0);
    let warnings = report.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("`hog` blocks the async workers: on 20 of 20 items"),
        "{}",
        warnings[0]
    );
    assert!(report.to_string().contains("warning: `hog` blocks"));
}

#[test]
fn processing_time_percentiles_time_every_slow_item_and_sample_cheap_ones() {
    let p = pipeline! {
        nums = source::iter(0..20_000u32);
        cheap = stage::map(|n: u32| n.wrapping_mul(7));
        slow = stage::filter(|n: &u32| {
            if n.is_multiple_of(1000) {
                std::thread::sleep(Duration::from_millis(2));
            }
            true
        });
        out = sink::for_each(|_n: u32| {});
        nums => cheap => slow => out;
    };
    let report = p.run_blocking().unwrap();
    let cheap = report.node("cheap").unwrap().latency.expect("timed");
    assert!(
        cheap.samples < 20_000 / 10,
        "a cheap stage is sampled: {} samples",
        cheap.samples
    );
    let slow = report.node("slow").unwrap().latency.expect("timed");
    assert!(slow.max >= Duration::from_millis(2), "{slow:?}");
    assert!(
        slow.p50 < Duration::from_millis(1),
        "most items are quick: {slow:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_reads_the_counts_while_running_and_knows_when_it_is_over() {
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let p = pipeline! {
        nums = source::iter(0..10u32);
        wait = sink::for_each_async(move |n: u32| {
            let mut gate = gate_rx.clone();
            async move {
                if n == 5 {
                    let _ = gate.wait_for(|open| *open).await;
                }
            }
        });
        nums => wait;
    };
    let run = p.spawn();
    run.show_progress(Duration::from_millis(10));
    let progress = run.progress();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!progress.is_finished());
    // Counts are published per batch, so mid-run they may lag by up to one batch.
    assert!(progress.line().contains("10 in, "), "{}", progress.line());
    assert!(progress.snapshot().delivered() <= 5, "{}", progress.line());
    gate_tx.send_replace(true);
    run.wait().await.unwrap();
    assert!(progress.is_finished());
    let line = progress.line();
    assert!(line.contains("10 in, 10 delivered"), "{line}");
    assert!(line.contains(" items/s"), "the rate: {line}");
    assert!(
        line.contains("100% of 10, "),
        "the source's length is known: {line}"
    );
}

/// `show_progress` into a file or a pipe: plain lines, no carriage returns or escape codes.
#[test]
fn progress_into_a_pipe_is_plain_lines() {
    if std::env::var_os("PROGRESS_CHILD").is_some() {
        let p = pipeline! {
            nums = source::iter(0..20u32);
            slow = sink::for_each(|_n: u32| std::thread::sleep(Duration::from_millis(5)));
            nums => slow;
        };
        tokio::runtime::Runtime::new().unwrap().block_on(async {
            let run = p.spawn();
            run.show_progress(Duration::from_millis(20));
            let progress = run.progress();
            run.wait().await.unwrap();
            assert!(progress.is_finished());
            // The last line is written once the run is seen to be over.
            tokio::time::sleep(Duration::from_millis(60)).await;
        });
        return;
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "progress_into_a_pipe_is_plain_lines",
            "--nocapture",
        ])
        .env("PROGRESS_CHILD", "1")
        .output()
        .unwrap();
    assert!(child.status.success());
    let err = String::from_utf8(child.stderr).unwrap();
    assert!(err.contains(" in, "), "{err:?}");
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "control characters in {err:?}"
    );
}

#[test]
fn the_html_report_is_one_self_contained_page_with_picture_table_and_verdict() {
    let mut report = finished_run();
    report.nodes[2].dropped_partial_tuples = 2;
    report.nodes[2].dropped_partial_items = 2;
    report.nodes[1].errors = vec!["bad <input> & more".to_string()];
    let page = report.html();

    assert!(page.starts_with("<!DOCTYPE html>"));
    // One file: nothing fetched, nothing run.
    for outside in ["<script", "src=", "href=\"http", "@import", "url(http"] {
        assert!(!page.contains(outside), "{outside} in the page");
    }
    let svg = report.svg();
    assert_eq!(svg, report.svg(), "the same report draws the same picture");
    assert!(svg.starts_with("<svg") && page.contains(&svg));
    // Every node is drawn and tabled; the bottleneck is outlined and its row marked.
    for name in ["inp (source)", "rev (stage)", "out (sink)"] {
        assert!(svg.contains(name), "{name} not drawn:\n{svg}");
    }
    assert_eq!(
        page.matches("<tr>").count() + page.matches("<tr class").count(),
        4
    );
    assert!(page.contains("<tr class=\"bottleneck\"><td>rev</td>"));
    assert!(page.contains("class=\"verdict\">bottleneck: `rev`, busy 97%"));
    // Boxes are filled by utilisation: `rev` (97%) red, `out` (4%) green.
    assert!(svg.contains("fill=\"#f59f90"), "{svg}");
    assert!(svg.contains("fill=\"#e5f4dc"), "{svg}");
    // Error text is shown as text.
    assert!(page.contains("bad &lt;input&gt; &amp; more"));
    std::fs::write(
        concat!(env!("CARGO_TARGET_TMPDIR"), "/analysis-report.html"),
        &page,
    )
    .unwrap();
}

/// A zip running inline counts the partial tuples it drops as it drops them, as its own
/// loop would: live progress shows them before the run ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_tuples_dropped_inline_show_in_live_progress() {
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let p = pipeline! {
        nums = source::producer(move |mut out: Output<u64>| {
            let mut gate = gate_rx.clone();
            async move {
                for n in 0..3_000u64 {
                    out.push(n).await?;
                }
                out.flush().await?;
                let _ = gate.wait_for(|open| *open).await;
                Ok(())
            }
        });
        kept = stage::filter(|n: &u64| n % 3 != 0);
        all = stage::map(|n: u64| n);
        both = sink::for_each(|(a, b): (u64, u64)| assert_eq!(a, b));
        nums => kept, all;
        kept, all => both;
    };
    let run = p.spawn();
    let progress = run.progress();
    let dropped = || {
        progress
            .snapshot()
            .node("both")
            .map_or(0, |node| node.dropped_partial_tuples)
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while dropped() < 999 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!progress.is_finished());
    assert!(dropped() >= 999, "{} dropped so far", dropped());
    gate_tx.send_replace(true);
    let report = run.wait().await.unwrap();
    assert_eq!(report.node("both").unwrap().dropped_partial_tuples, 1_000);
    assert!(report.accounting().is_balanced());
}

/// A few long polls in a million items (a descheduled thread) are no fault of the stage.
#[test]
fn rare_long_polls_are_not_blamed_on_the_stage() {
    let mut report = finished_run();
    let stage = &mut report.nodes[1];
    stage.received = 1_400_000;
    stage.long_polls = 2;
    stage.longest_poll = Duration::from_millis(3);
    assert!(report.warnings().is_empty(), "{:?}", report.warnings());
    report.nodes[1].long_polls = 20_000;
    assert_eq!(report.warnings().len(), 1);
    report.nodes[1].long_polls = 1;
    report.nodes[1].longest_poll = Duration::from_millis(250);
    assert_eq!(
        report.warnings().len(),
        1,
        "one long stall is worth a warning"
    );
}

/// A producer fed from outside (a channel, a socket) waits most of the time: it is starved,
/// not busy, and not the bottleneck.
#[test]
fn a_source_waiting_for_outside_input_is_starved_not_busy() {
    let report = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(4);
        tokio::spawn(async move {
            for n in 0..10 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = tx.send(n).await;
            }
        });
        let p = pipeline! {
            requests = source::producer(move |mut out: Output<u32>| async move {
                while let Some(n) = rx.recv().await {
                    out.push(n).await?;
                }
                Ok(())
            });
            handle = sink::for_each(|_n: u32| {});
            requests => handle;
        };
        p.run().await.unwrap()
    });
    let source = report.node("requests").unwrap();
    assert!(
        source.utilisation(report.elapsed) < 0.5,
        "busy {:.0}% while waiting for requests\n{report}",
        source.utilisation(report.elapsed) * 100.0
    );
    assert!(
        report.verdict().is_none_or(|v| v.bottleneck != "requests"),
        "{report}"
    );
}
