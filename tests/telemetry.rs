//! The `metrics` feature: every node's counters reach whatever recorder is installed, and
//! agree with the run report.
#![cfg(feature = "metrics")]

use metrics_exporter_prometheus::PrometheusBuilder;
use pipeline::prelude::*;
use pipeline::telemetry;

/// The value of `metric{node="..."}` in a Prometheus text exposition.
fn sample(exposition: &str, metric: &str, node: &str) -> f64 {
    let prefix = format!("{metric}{{node=\"{node}\"}} ");
    exposition
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |value| value.trim().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_reach_the_installed_recorder_and_agree_with_the_report() {
    let recorder = PrometheusBuilder::new().build_recorder();
    let exposition = recorder.handle();
    let pipeline = pipeline! {
        numbers = source::iter(0..1_000u32);
        evens = stage::filter(|n: &u32| n % 2 == 0);
        halve[workers(2)] = stage::map(|n: u32| if n == 500 { panic!("no 500") } else { n / 2 });
        checked = stage::try_map(|n: u32| if n % 7 == 0 { Err("multiple of 7") } else { Ok(n) });
        pairs = sink::for_each(|(_n, _m): (u32, u32)| {});
        numbers => evens => halve => checked => pairs;
        numbers => pairs;
    };
    // Nodes take their handles when the run starts: a local recorder must be in place then.
    let handle = metrics::with_local_recorder(&recorder, || pipeline.spawn());
    let report = handle.wait().await.unwrap();
    let text = exposition.render();

    for node in &report.nodes {
        let counted = [
            (telemetry::ITEMS_RECEIVED, node.received),
            (telemetry::ITEMS_EMITTED, node.emitted),
            (telemetry::ITEMS_FILTERED, node.filtered),
            (telemetry::ITEMS_FAILED, node.failed),
            (telemetry::WORKER_RESTARTS, node.restarts),
            (
                telemetry::PARTIAL_TUPLES_DROPPED,
                node.dropped_partial_tuples,
            ),
        ];
        for (metric, value) in counted {
            assert_eq!(
                sample(&text, metric, &node.name),
                value as f64,
                "{metric} of {}\n{text}",
                node.name
            );
        }
    }
    // The run did all of it: filtering, a failed item and a restart, partial tuples.
    let node = |name| report.node(name).unwrap();
    assert_eq!(node("evens").filtered, 500);
    assert_eq!(node("halve").restarts, 1);
    assert!(node("checked").failed > 0);
    assert!(node("pairs").dropped_partial_tuples > 500);

    // Time totals and the per-item histogram are there too, and plausible.
    let busy = sample(&text, telemetry::BUSY_SECONDS, "numbers")
        + sample(&text, telemetry::STARVED_SECONDS, "pairs");
    assert!(busy > 0.0, "{text}");
    assert!(
        busy < 2.0 * report.elapsed.as_secs_f64() + 0.1,
        "{busy} s over a {:?} run",
        report.elapsed
    );
    assert!(
        text.contains(&format!(
            "{}{{node=\"halve\",quantile=\"0.99\"}}",
            telemetry::ITEM_DURATION
        )),
        "{text}"
    );
}
