//! A pipeline whose per-node counters are scraped by Prometheus from `/metrics`.
//!
//! ```text
//! cargo run --example prometheus --features http                 # serves 127.0.0.1:9898 until Ctrl-C
//! cargo run --example prometheus --features http -- --listen 0.0.0.0:9000
//! cargo run --example prometheus --features http -- --check      # a finite run that checks itself
//! ```
//!
//! While it runs, `curl http://127.0.0.1:9898/metrics` shows, per node, the items received,
//! emitted, filtered and failed, the busy, starved and blocked seconds, the queue depth and a
//! histogram of the time per item. Any exporter of the `metrics` facade works the same way:
//! install its recorder before the pipeline starts.
//!
//! The HTTP side is `pipeline::http::serve_metrics` (feature `http`): `GET /metrics` and
//! `GET /healthz`, 404 or 405 for anything else, for a pipeline that takes no items over
//! HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pipeline::http::serve_metrics;
use pipeline::prelude::*;
use tokio::net::TcpListener;

/// Orders as they might arrive from a queue: one in 50 is malformed.
fn order(n: u64) -> String {
    if n % 50 == 49 {
        format!("order-{n}:not-a-number")
    } else {
        format!("order-{n}:{}", n % 97 + 1)
    }
}

fn parse(line: String) -> Result<(String, u32), BoxError> {
    let (id, quantity) = line.split_once(':').ok_or("no `:` in the order")?;
    Ok((id.to_string(), quantity.parse()?))
}

/// The graph: `orders` feeds `parse` (fallible), `price` (slow, two workers) and `ledger`.
/// `items` bounds the run; `None` runs until Ctrl-C.
fn orders_pipeline(items: Option<u64>, pause: Duration) -> Pipeline {
    pipeline! {
        orders = source::producer(move |mut out: Output<String>| async move {
            let mut n = 0;
            while items.is_none_or(|items| n < items) {
                out.push(order(n)).await?;
                n += 1;
                if n % 100 == 0 {
                    tokio::time::sleep(pause).await;
                }
            }
            Ok(())
        });
        parse = stage::try_map(parse);
        price[workers(2)] = stage::map(|(id, quantity): (String, u32)| {
            // Stands for a lookup that takes a while.
            std::thread::sleep(Duration::from_micros(200));
            (id, f64::from(quantity) * 2.5)
        });
        ledger = sink::for_each(|(_id, _amount): (String, f64)| {});
        orders => parse => price => ledger;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let check = args.iter().any(|a| a == "--check");
    let listen: SocketAddr = match args.iter().position(|a| a == "--listen") {
        Some(i) => args
            .get(i + 1)
            .ok_or("--listen needs an address, such as 127.0.0.1:9898")?
            .parse()?,
        // The check binds a free port, so that it never collides with anything.
        None if check => "127.0.0.1:0".parse()?,
        None => "127.0.0.1:9898".parse()?,
    };

    // The recorder goes in before the pipeline starts: nodes take their handles then.
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let listener = TcpListener::bind(listen).await?;
    let address = listener.local_addr()?;
    tokio::spawn(serve_metrics(listener, metrics.clone()));

    if check {
        return self_check(address, &metrics).await;
    }
    println!("serving http://{address}/metrics; Ctrl-C stops the pipeline (it drains first)");
    let handle = orders_pipeline(None, Duration::from_millis(5)).spawn();
    handle.shutdown_on_ctrl_c();
    handle.show_progress(Duration::from_secs(5));
    let report = match handle.wait().await {
        Ok(report) => report,
        Err(e) => *e.report,
    };
    println!("\n{report}");
    Ok(())
}

/// Runs a finite pipeline, scrapes `/metrics` over HTTP as Prometheus would, and checks that
/// what was scraped agrees with the run's own report.
async fn self_check(
    address: SocketAddr,
    metrics: &PrometheusHandle,
) -> Result<(), Box<dyn std::error::Error>> {
    let report = orders_pipeline(Some(5_000), Duration::ZERO).run().await?;
    metrics.run_upkeep();
    let client = reqwest::Client::new();
    let base = format!("http://{address}");
    let response = client.get(format!("{base}/metrics")).send().await?;
    if response.status() != 200 {
        return Err(format!("GET /metrics answered {}", response.status()).into());
    }
    let body = response.text().await?;
    let mut checked = 0;
    for node in &report.nodes {
        let expected = [
            ("pipeline_items_received_total", node.received),
            ("pipeline_items_emitted_total", node.emitted),
            ("pipeline_items_failed_total", node.failed),
        ];
        for (metric, value) in expected {
            let scraped = sample(&body, metric, &node.name);
            // A counter that never moved may not be exported at all.
            if scraped.unwrap_or(0.0) != value as f64 {
                return Err(format!(
                    "{metric} of `{}`: scraped {scraped:?}, the report says {value}",
                    node.name
                )
                .into());
            }
            checked += 1;
        }
    }
    if !body.contains("pipeline_item_duration_seconds") {
        return Err("no item duration histogram in /metrics".into());
    }
    for (method, path, expected) in [
        (reqwest::Method::GET, "/healthz", 200),
        (reqwest::Method::GET, "/nothing-here", 404),
        (reqwest::Method::POST, "/metrics", 405),
    ] {
        let status = client
            .request(method.clone(), format!("{base}{path}"))
            .send()
            .await?
            .status();
        if status != expected {
            return Err(format!("`{method} {path}` answered {status}, expected {expected}").into());
        }
    }
    println!("{report}");
    println!("/metrics on {address} agrees with the report on {checked} counters");
    Ok(())
}

/// The value of `metric{node="..."}` in a Prometheus text exposition.
fn sample(body: &str, metric: &str, node: &str) -> Option<f64> {
    let prefix = format!("{metric}{{node=\"{node}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}
