//! The comparisons over NATS: a `nats-server -js` of the benchmark's own on a free port,
//! one pipeline edge between two halves of a graph (each half a `Pipeline` of its own, as
//! two processes would run them), against raw async-nats publish/subscribe of the same items.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pipeline::prelude::*;
use pipeline::remote::{Delivery, Plan, async_nats, with_plan};

/// Items through the edge per run.
pub const NATS_ITEMS: u64 = 100_000;

#[path = "../../tests/support/nats_server.rs"]
mod nats_server;

pub use nats_server::NatsServer as Server;

/// What a user would write instead: each item serialized and published on its own, a
/// subscriber taking them. Core NATS drops messages for a subscriber that falls behind,
/// and so does this baseline now and then: the time is until the last message that
/// arrived, and the losses are returned too.
pub async fn raw(url: &str) -> (Duration, u64) {
    let publisher = async_nats::connect(url).await.unwrap();
    // Room for every item on the client's side.
    let subscriber = async_nats::ConnectOptions::new()
        .subscription_capacity(NATS_ITEMS as usize)
        .connect(url)
        .await
        .unwrap();
    let subject = format!("raw.{}", publisher.new_inbox());
    let mut items = subscriber.subscribe(subject.clone()).await.unwrap();
    subscriber.flush().await.unwrap();
    let started = Instant::now();
    let (published_tx, mut published) = tokio::sync::watch::channel(false);
    let receiving = tokio::spawn(async move {
        let mut received = 0u64;
        let mut last = Instant::now();
        while received < NATS_ITEMS {
            match tokio::time::timeout(Duration::from_millis(100), items.next()).await {
                Ok(message) => {
                    let message = message.unwrap();
                    let (_root, _path, x): (u64, u64, u64) =
                        rmp_serde::from_slice(&message.payload).unwrap();
                    black_box(x);
                    received += 1;
                    last = Instant::now();
                }
                // Quiet after the publisher finished: what has not come is lost. (A round
                // trip first: the client can sit on the last messages it read until more
                // traffic comes.)
                Err(_) if *published.borrow_and_update() => {
                    // Bounded: a server that cut this subscriber off as too slow may not
                    // answer until the client has reconnected.
                    let _ = tokio::time::timeout(Duration::from_secs(1), subscriber.flush()).await;
                    if let Ok(Some(_)) =
                        tokio::time::timeout(Duration::from_millis(100), items.next()).await
                    {
                        received += 1;
                        last = Instant::now();
                        continue;
                    }
                    break;
                }
                Err(_) => {}
            }
        }
        (received, last)
    });
    for x in 0..NATS_ITEMS {
        let payload = rmp_serde::to_vec(&(x, 0u64, x)).unwrap();
        publisher
            .publish(subject.clone(), payload.into())
            .await
            .unwrap();
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), publisher.flush()).await;
    published_tx.send_replace(true);
    let (received, last) = receiving.await.unwrap();
    (last - started, NATS_ITEMS - received)
}

/// The same items from a source in one half of a graph to a sink in the other.
pub async fn pipeline_edge(url: &str, delivery: Delivery, run: &str) -> Duration {
    let total = Arc::new(AtomicU64::new(0));
    let half = |nodes: &'static str| {
        let plan = Plan::hosting(url, [nodes])
            .run(run)
            .instance(nodes)
            .delivery(delivery);
        let seen = total.clone();
        with_plan(plan, move || {
            pipeline! {
                #![distributed("bench")]
                numbers = source::iter(0..NATS_ITEMS);
                sum = sink::for_each(move |x: u64| {
                    seen.fetch_add(x, Ordering::Relaxed);
                });
                numbers => sum;
            }
        })
    };
    let (sending, receiving) = (half("numbers"), half("sum"));
    let started = Instant::now();
    let receiving = receiving.spawn();
    let sending = sending.spawn();
    sending.wait().await.expect("the sending half failed");
    receiving.wait().await.expect("the receiving half failed");
    let took = started.elapsed();
    assert_eq!(
        total.load(Ordering::Relaxed),
        NATS_ITEMS * (NATS_ITEMS - 1) / 2
    );
    took
}

/// What a user would write instead of the at-least-once edge: the same payloads published
/// to a JetStream stream one message per item, their acknowledgements awaited together in
/// windows (async publish), and a pull consumer taking them and acknowledging each. The
/// time is until the last item was received and acknowledged.
pub async fn raw_jetstream(url: &str, run: &str) -> Duration {
    use async_nats::jetstream::{self, consumer, stream};
    /// Publishes in flight at once, as an async publisher keeps them.
    const IN_FLIGHT: usize = 1024;
    let client = async_nats::connect(url).await.unwrap();
    let context = jetstream::new(client);
    let subject = format!("rawjs.{run}.items");
    let stream = context
        .get_or_create_stream(stream::Config {
            name: format!("RAWJS_{run}"),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let consumer: consumer::PullConsumer = stream
        .get_or_create_consumer(
            "taker",
            consumer::pull::Config {
                durable_name: Some("taker".into()),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let started = Instant::now();
    let receiving = tokio::spawn(async move {
        let mut messages = consumer.messages().await.unwrap();
        let mut received = 0u64;
        while received < NATS_ITEMS {
            let message = messages.next().await.unwrap().unwrap();
            let (_root, _path, x): (u64, u64, u64) =
                rmp_serde::from_slice(&message.payload).unwrap();
            black_box(x);
            message.ack().await.unwrap();
            received += 1;
        }
    });
    let mut acks = Vec::with_capacity(IN_FLIGHT);
    for x in 0..NATS_ITEMS {
        let payload = rmp_serde::to_vec(&(x, 0u64, x)).unwrap();
        acks.push(
            context
                .publish(subject.clone(), payload.into())
                .await
                .unwrap(),
        );
        if acks.len() == IN_FLIGHT {
            for ack in acks.drain(..) {
                ack.await.unwrap();
            }
        }
    }
    for ack in acks {
        ack.await.unwrap();
    }
    receiving.await.unwrap();
    let took = started.elapsed();
    context.delete_stream(format!("RAWJS_{run}")).await.unwrap();
    took
}
