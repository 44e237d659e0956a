//! The seeds' graph as a web service: `POST /items` with a word answers with the pair
//! `(word, reversed)`, computed by the pipeline; `GET /healthz`, `/readyz` and `/metrics`
//! say how it is doing. SIGTERM (or Ctrl-C) drains it and prints the run's report.
//!
//! ```text
//! cargo run --example service --features http -- --addr 127.0.0.1:8080
//! curl -s -H 'content-type: application/json' -d '"hello"' 127.0.0.1:8080/items   # ["hello","olleh"]
//! curl -s 127.0.0.1:8080/metrics | grep node=
//! ```

use std::net::SocketAddr;

use metrics_exporter_prometheus::PrometheusBuilder;
use pipeline::http::HttpFront;
use pipeline::prelude::*;
use pipeline::service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().skip_while(|a| a != "--addr").nth(1) {
        Some(addr) => addr.parse()?,
        None => "127.0.0.1:8080".parse()?,
    };
    // The recorder goes in before the run starts, so that every node registers with it.
    let metrics = PrometheusBuilder::new().install_recorder()?;

    let (requests, replies, svc) = service::channel::<String, (String, String)>(1024);
    let p = pipeline! {
        inp = requests;
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = replies;
        inp => rev, out;
        rev => out;
    };
    let run = p.spawn();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("serving on http://{}", listener.local_addr()?);
    let report = HttpFront::reply(svc)
        .metrics(metrics)
        .serve(listener, run)
        .await??;
    println!("{report}");
    assert!(
        report.accounting().is_balanced(),
        "every item accounted for"
    );
    Ok(())
}
