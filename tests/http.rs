//! The HTTP front (feature `http`) from outside: a real client against a server on a free
//! loopback port. Every status code, request/reply through a zip and a filter, a thousand
//! concurrent calls, and a drain under load that loses no accepted item.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use pipeline::http::{Drain, HttpFront};
use pipeline::prelude::*;
use pipeline::{RunError, RunHandle, service};
use reqwest::StatusCode;
use tokio::task::JoinHandle;

type Served = JoinHandle<std::io::Result<Result<RunReport, RunError>>>;

/// Serves `front` for `run` on a free loopback port.
async fn serve<In, Out>(front: HttpFront<In, Out>, run: RunHandle) -> (String, Drain, Served)
where
    In: serde::de::DeserializeOwned + Send + 'static,
    Out: serde::Serialize + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let drain = front.drain_handle();
    let served = tokio::spawn(front.serve(listener, run));
    (format!("http://{addr}"), drain, served)
}

fn json(client: &reqwest::Client, url: &str, body: &str) -> reqwest::RequestBuilder {
    client
        .post(format!("{url}/items"))
        .header("content-type", "application/json")
        .body(body.to_string())
}

fn multiset<T: Ord>(items: impl IntoIterator<Item = T>) -> BTreeMap<T, usize> {
    let mut counts = BTreeMap::new();
    for item in items {
        *counts.entry(item).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_through_a_zip_and_a_filter() {
    let (requests, replies, svc) = service::channel::<String, (String, usize)>(64);
    let p = pipeline! {
        inp = requests;
        long = stage::filter(|s: &String| s.len() > 2);
        len = stage::map(|s: String| s.len());
        out = replies;
        inp => long => len, out;
        len => out;
    };
    let (url, drain, served) = serve(HttpFront::reply(svc), p.spawn()).await;
    let client = reqwest::Client::new();

    let ok = json(&client, &url, r#""hello""#).send().await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["pipeline-outputs"], "1");
    assert_eq!(ok.text().await.unwrap(), r#"["hello",5]"#);

    let filtered = json(&client, &url, r#""hi""#).send().await.unwrap();
    assert_eq!(filtered.status(), StatusCode::NO_CONTENT);
    assert_eq!(filtered.headers()["pipeline-reply"], "filtered");

    let lines = client
        .post(format!("{url}/items"))
        .header("content-type", "application/x-ndjson")
        .body("\"abc\"\n\"x\"\n")
        .send()
        .await
        .unwrap();
    assert_eq!(lines.status(), StatusCode::OK);
    assert_eq!(
        lines.text().await.unwrap(),
        "{\"outputs\":[[\"abc\",3]]}\n{\"filtered\":true}\n"
    );

    drain.start();
    let report = served.await.unwrap().unwrap().unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_item_answers_422_with_its_error() {
    let (requests, replies, svc) = service::channel::<u32, u32>(8);
    let p = pipeline! {
        inp = requests;
        check = stage::try_map(|n: u32| if n == 0 { Err("zero is not allowed") } else { Ok(n) });
        out = replies;
        inp => check => out;
    };
    let (url, drain, served) = serve(HttpFront::reply(svc), p.spawn()).await;
    let client = reqwest::Client::new();
    let failed = json(&client, &url, "0").send().await.unwrap();
    assert_eq!(failed.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(failed.text().await.unwrap().contains("zero is not allowed"));
    drain.start();
    served.await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_400_413_and_415_and_nothing_of_them_goes_in() {
    let (requests, ingress) = source::channel::<u32>(64);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        out = got.sink();
        inp => out;
    };
    let (url, drain, served) = serve(HttpFront::accept(ingress).body_limit(64), p.spawn()).await;
    let client = reqwest::Client::new();

    let bad = json(&client, &url, "not json").send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.text().await.unwrap().contains("not a valid item"));

    let bad_line = client
        .post(format!("{url}/items"))
        .header("content-type", "application/x-ndjson")
        .body("1\n2\nthree\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_line.status(), StatusCode::BAD_REQUEST);
    assert!(bad_line.text().await.unwrap().contains("line 3"));

    let big = json(&client, &url, &format!("\"{}\"", "x".repeat(100)))
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let plain = client
        .post(format!("{url}/items"))
        .header("content-type", "text/plain")
        .body("1")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(plain.text().await.unwrap().contains("application/json"));

    let packed = rmp_serde::to_vec(&7u32).unwrap();
    let ok = client
        .post(format!("{url}/items"))
        .header("content-type", "application/msgpack")
        .body(packed)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::ACCEPTED);

    assert_eq!(
        client
            .get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    drain.start();
    let report = served.await.unwrap().unwrap().unwrap();
    // Only the MessagePack item went in.
    assert_eq!(got.take(), [7]);
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pipeline_answers_429_with_retry_after_and_a_draining_one_503() {
    let (requests, ingress) = source::channel::<u32>(1);
    let (sink, mut outputs) = sink::channel::<u32>(1);
    let p = pipeline! {
        inp = requests;
        out[capacity(1)] = sink;
        inp => out;
    };
    let (url, drain, served) = serve(HttpFront::accept(ingress), p.spawn()).await;
    let client = reqwest::Client::new();
    // Nobody reads the outputs: the pipeline fills up.
    let mut accepted = Vec::new();
    let mut full = None;
    for n in 0..1000u32 {
        let response = json(&client, &url, &n.to_string()).send().await.unwrap();
        match response.status() {
            StatusCode::ACCEPTED => accepted.push(n),
            StatusCode::TOO_MANY_REQUESTS => {
                full = Some(response);
                break;
            }
            other => panic!("{other}"),
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let full = full.expect("a pipeline nobody reads fills up");
    assert_eq!(full.headers()["retry-after"], "1");
    assert_eq!(full.headers()["pipeline-accepted"], "0");

    drain.start();
    // Give the drain a moment to reach the front, then it refuses.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = json(&client, &url, "5000").send().await;
    if let Ok(refused) = refused {
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let mut got = Vec::new();
    while let Some(n) = outputs.recv().await {
        got.push(n);
    }
    let report = served.await.unwrap().unwrap().unwrap();
    assert_eq!(got, accepted, "every accepted item, and only those");
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_are_all_answered_correctly() {
    let (requests, replies, svc) = service::channel::<String, (String, String)>(256);
    let p = pipeline! {
        inp = requests;
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = replies;
        inp => rev, out;
        rev => out;
    };
    let (url, drain, served) = serve(HttpFront::reply(svc), p.spawn()).await;
    let client = reqwest::Client::new();
    let calls: Vec<_> = (0..1000)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let word = format!("w{i}q");
                loop {
                    let response = json(&client, &url, &format!("\"{word}\""))
                        .send()
                        .await
                        .unwrap();
                    if response.status() == StatusCode::TOO_MANY_REQUESTS {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                    assert_eq!(response.status(), StatusCode::OK);
                    let pair: (String, String) = response.json().await.unwrap();
                    assert_eq!(pair, (word.clone(), word.chars().rev().collect()));
                    return;
                }
            })
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    drain.start();
    let report = served.await.unwrap().unwrap().unwrap();
    assert_eq!(report.accounting().source_items, 1000);
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_under_load_loses_no_item_that_got_a_2xx() {
    let (requests, ingress) = source::channel::<u64>(32);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        slow = stage::map_async(|n: u64| async move {
            tokio::time::sleep(Duration::from_micros(100)).await;
            n
        });
        out = got.sink();
        inp => slow => out;
    };
    let (url, drain, served) = serve(HttpFront::accept(ingress), p.spawn()).await;
    let client = reqwest::Client::new();
    let senders: Vec<_> = (0..8u64)
        .map(|t| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut accepted = Vec::new();
                for i in 0..100_000u64 {
                    let n = t * 1_000_000 + i;
                    let Ok(response) = json(&client, &url, &n.to_string()).send().await else {
                        return accepted; // the server has gone
                    };
                    match response.status() {
                        StatusCode::ACCEPTED => accepted.push(n),
                        StatusCode::TOO_MANY_REQUESTS => {
                            tokio::time::sleep(Duration::from_millis(1)).await
                        }
                        StatusCode::SERVICE_UNAVAILABLE => return accepted,
                        other => panic!("{other}"),
                    }
                }
                accepted
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    drain.start();
    let mut accepted = Vec::new();
    for sender in senders {
        accepted.extend(sender.await.unwrap());
    }
    let report = served.await.unwrap().unwrap().unwrap();
    assert!(!accepted.is_empty());
    assert_eq!(multiset(got.take()), multiset(accepted.iter().copied()));
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_views_events_reach_the_final_reports_counts() {
    let (requests, ingress) = source::channel::<u32>(64);
    let got = Collected::new();
    let p = pipeline! {
        inp = requests;
        double = stage::map(|n: u32| n * 2);
        out = got.sink();
        inp => double => out;
    };
    let (url, drain, served) = serve(HttpFront::accept(ingress), p.spawn()).await;
    let client = reqwest::Client::new();
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("EventSource(\"view/events\")"));
    // Self-contained: no script, style or font from anywhere else.
    for outside in ["<script src", "<link", "url(http", "@import", "https://"] {
        assert!(!html.contains(outside), "the page fetches {outside}");
    }

    let mut events = client
        .get(format!("{url}/view/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    for n in 0..100u32 {
        assert_eq!(
            json(&client, &url, &n.to_string())
                .send()
                .await
                .unwrap()
                .status(),
            StatusCode::ACCEPTED
        );
    }
    drain.start();
    // Read frames until the one that says the run is over.
    let mut text = String::new();
    let mut last = None;
    while let Some(chunk) = events.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data: ")) {
                last = Some(serde_json::from_str::<serde_json::Value>(data).unwrap());
            }
        }
        if last.as_ref().is_some_and(|f| f["finished"] == true) {
            break;
        }
    }
    let last = last.expect("frames");
    let report = served.await.unwrap().unwrap().unwrap();
    assert_eq!(last["finished"], true);
    assert_eq!(last["delivered"], report.accounting().delivered);
    assert_eq!(last["delivered"], 100);
    assert_eq!(last["balanced"], true);
    let names: Vec<&str> = last["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["inp", "double", "out"]);
}
