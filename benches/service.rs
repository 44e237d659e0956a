//! A pipeline as a web service, measured from a Rust HTTP client on the same machine.
//!
//! ```sh
//! cargo bench --bench service --features http
//! ```
//!
//! - `service_rps`: requests per second of request/reply calls on the seeds' graph
//!   (`inp => rev, out; rev => out`), from 64 concurrent connections;
//! - `service_p99_us`: the 99th percentile of a call's latency at half that rate;
//! - `service_vs_axum_handler`: our requests per second over those of a bare axum handler
//!   doing the same work inline (reverse the word, answer the pair), same client, same load.
//!   Goal: at least 0.8.
//!
//! Client and server share the machine's cores, so the numbers say how the two servers
//! compare more than what either could do alone.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pipeline::http::HttpFront;
use pipeline::prelude::*;
use pipeline::service;

const CONNECTIONS: usize = 64;
const RUN: Duration = Duration::from_secs(4);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("cores {cores}; {CONNECTIONS} connections; {RUN:?} per measurement");
        let (ours, stop_ours) = our_service().await;
        let axum = bare_axum().await;
        // Alternate, and keep the best of two: a noisy neighbour hurts both alike.
        let mut our_rps: f64 = 0.0;
        let mut axum_rps: f64 = 0.0;
        for _ in 0..2 {
            our_rps = our_rps.max(load(ours, None).await.0);
            axum_rps = axum_rps.max(load(axum, None).await.0);
        }
        let (_, latencies) = load(ours, Some(our_rps / 2.0)).await;
        stop_ours.start();
        println!("ratio service_rps {our_rps:.0}");
        println!("ratio service_p99_us {:.0}", percentile(latencies, 0.99));
        println!("ratio service_vs_axum_handler {:.3}", our_rps / axum_rps);
        println!("(bare axum handler: {axum_rps:.0} requests/s)");
    });
}

/// The seeds' graph behind an HTTP front in reply mode.
async fn our_service() -> (SocketAddr, pipeline::http::Drain) {
    let (requests, replies, svc) = service::channel::<String, (String, String)>(1024);
    let p = pipeline! {
        inp = requests;
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = replies;
        inp => rev, out;
        rev => out;
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let front = HttpFront::reply(svc);
    let drain = front.drain_handle();
    tokio::spawn(front.serve(listener, p.spawn()));
    (addr, drain)
}

/// The same work in a plain axum handler.
async fn bare_axum() -> SocketAddr {
    use axum::routing::post;
    async fn handler(axum::Json(word): axum::Json<String>) -> axum::Json<(String, String)> {
        let reversed = word.chars().rev().collect::<String>();
        axum::Json((word, reversed))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/items", post(handler));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// `CONNECTIONS` callers for `RUN`, each as fast as it can or, given `rate` (requests per
/// second in all), paced. Returns the requests per second and each call's latency.
async fn load(addr: SocketAddr, rate: Option<f64>) -> (f64, Vec<Duration>) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .unwrap();
    let url = format!("http://{addr}/items");
    let started = Instant::now();
    let callers: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut pace = rate.map(|rate| {
                    let every = Duration::from_secs_f64(CONNECTIONS as f64 / rate);
                    tokio::time::interval(every)
                });
                let mut n = 0u64;
                while started.elapsed() < RUN {
                    if let Some(pace) = &mut pace {
                        pace.tick().await;
                    }
                    let word = format!("w{c}-{n}");
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(format!("\"{word}\""))
                        .send()
                        .await
                        .expect("the server answers");
                    assert_eq!(response.status(), 200);
                    let pair: (String, String) = response.json().await.unwrap();
                    assert_eq!(pair.0, word);
                    latencies.push(sent.elapsed());
                    n += 1;
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for caller in callers {
        latencies.extend(caller.await.unwrap());
    }
    let rps = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rps, latencies)
}

fn percentile(mut latencies: Vec<Duration>, p: f64) -> f64 {
    latencies.sort();
    let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
    latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}
