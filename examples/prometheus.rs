//! A pipeline whose per-node counters are scraped by Prometheus from `/metrics`.
//!
//! ```text
//! cargo run --example prometheus --features metrics                 # serves 127.0.0.1:9898 until Ctrl-C
//! cargo run --example prometheus --features metrics -- --listen 0.0.0.0:9000
//! cargo run --example prometheus --features metrics -- --check      # a finite run that checks itself
//! ```
//!
//! While it runs, `curl http://127.0.0.1:9898/metrics` shows, per node, the items received,
//! emitted, filtered and failed, the busy, starved and blocked seconds, the queue depth and a
//! histogram of the time per item. Any exporter of the `metrics` facade works the same way:
//! install its recorder before the pipeline starts.
//!
//! The HTTP side is a few lines on tokio rather than an HTTP framework: it answers
//! `GET /metrics`, and says clearly what is wrong with anything else (404, 405, 400).

use std::net::SocketAddr;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pipeline::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

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
    tokio::spawn(serve(listener, metrics.clone()));

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
    let (status, body) = get(address, "GET /metrics HTTP/1.1").await?;
    if status != 200 {
        return Err(format!("GET /metrics answered {status}").into());
    }
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
    for (request, expected) in [
        ("GET /nothing-here HTTP/1.1", 404),
        ("POST /metrics HTTP/1.1", 405),
        ("garbage", 400),
    ] {
        let (status, _) = get(address, request).await?;
        if status != expected {
            return Err(format!("`{request}` answered {status}, expected {expected}").into());
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

async fn serve(listener: TcpListener, metrics: PrometheusHandle) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // A client that goes away mid-answer is its own problem, not the server's.
            let _ = answer(stream, &metrics).await;
        });
    }
}

/// Reads one request head and answers it, closing the connection after.
async fn answer(mut stream: TcpStream, metrics: &PrometheusHandle) -> std::io::Result<()> {
    const LARGEST_HEAD: usize = 8 * 1024;
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < LARGEST_HEAD {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .unwrap_or(Ok(0))?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let request_line = head
        .split(|&b| b == b'\r' || b == b'\n')
        .next()
        .and_then(|line| std::str::from_utf8(line).ok())
        .unwrap_or("");
    let (status, content_type, body) = match request_line.split(' ').collect::<Vec<_>>()[..] {
        ["GET", "/metrics", version] if version.starts_with("HTTP/1.") => {
            ("200 OK", "text/plain; version=0.0.4", metrics.render())
        }
        [_, "/metrics", version] if version.starts_with("HTTP/1.") => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served here\n".to_string(),
        ),
        [_, _, version] if version.starts_with("HTTP/1.") => (
            "404 Not Found",
            "text/plain",
            "the metrics are at /metrics\n".to_string(),
        ),
        _ => (
            "400 Bad Request",
            "text/plain",
            "expected an HTTP/1.x request line, such as `GET /metrics HTTP/1.1`\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Sends one request head and returns the status code and body.
async fn get(address: SocketAddr, request_line: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect(address).await?;
    stream
        .write_all(format!("{request_line}\r\nHost: {address}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, body)| body.to_string());
    Ok((status, body))
}
