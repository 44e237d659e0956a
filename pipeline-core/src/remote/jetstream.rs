//! At-least-once edges between processes, over JetStream: items are stored in a stream,
//! each receiving node shares a durable pull consumer with its replicas, and an item is
//! acknowledged only once it is finished in the receiving process.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::envelope::{self, SCHEMA_HEADER};
use super::split::{Link, fail_on_error, rejection, retry_startup};
use crate::control::Control;
use crate::stats::RemoteEdgeStats;
use crate::wire::{Batch, EdgeReceiver, EdgeSender};

/// Items a receiving process asks for at a time: small, so that processes sharing a
/// consumer take turns instead of one of them taking everything.
const FETCH: usize = 64;
/// How long a fetch waits for items before the edge checks whether it has ended.
const FETCH_WAIT: Duration = Duration::from_millis(200);
/// Items a receiving process may hold unacknowledged per edge.
const MAX_UNACKNOWLEDGED: i64 = 10_000;

/// Publishes what the hosted node `from` sends to `to`, then its end marker.
pub(crate) async fn publish_edge<T: Serialize + Send + 'static>(
    mut items: EdgeReceiver<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    let result: Result<(), String> = async {
        let context = link.context().await?;
        let subject = link.subject(from, to, "data");
        let schema = envelope::schema::<T>(link.pipeline, from, to);
        let mut acks = Vec::new();
        while let Some(batch) = std::future::poll_fn(|cx| items.poll_recv(cx)).await {
            for (lineage, item) in batch.items {
                let payload = envelope::encode(lineage, &item)?;
                let message = jetstream::message::PublishMessage::build()
                    .payload(payload.into())
                    .header(SCHEMA_HEADER, schema.as_str())
                    // Stored once however often a crash makes it be published again.
                    .message_id(format!(
                        "{}.{from}.{to}.{}.{}",
                        link.run,
                        lineage.root_index(),
                        lineage.path()
                    ));
                let ack = context
                    .send_publish(subject.clone(), message)
                    .await
                    .map_err(|e| format!("publishing failed: {e}"))?;
                acks.push((lineage, ack));
            }
            // The batch's publishes are in flight together; an item counts as sent, and is
            // finished in this process, once the stream has stored it.
            for (lineage, ack) in acks.drain(..) {
                ack.await
                    .map_err(|e| format!("the stream did not store an item: {e}"))?;
                stats.items.fetch_add(1, Relaxed);
                link.ledger.ended(lineage);
            }
        }
        let end = jetstream::message::PublishMessage::build()
            .payload(stats.items.load(Relaxed).to_string().into())
            .message_id(format!("{}.{from}.{to}.end.{}", link.run, link.instance));
        context
            .send_publish(
                link.subject(from, to, &format!("end.{}", link.instance)),
                end,
            )
            .await
            .map_err(|e| format!("publishing the end marker failed: {e}"))?
            .await
            .map_err(|e| format!("the stream did not store the end marker: {e}"))?;
        Ok(())
    }
    .await;
    fail_on_error(result, from, to, &control);
    link.ledger.node_done();
}

/// Feeds the hosted node `to` with what `from`'s processes publish, until all of them have
/// ended and nothing is left to deliver; then acknowledges the rest as it finishes here.
pub(crate) async fn consume_edge<T: DeserializeOwned + Send + 'static>(
    into: EdgeSender<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    producers: usize,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    // The ledger hands back each message once its item is finished here; this task sends
    // the acknowledgements.
    let (finished, mut to_ack) = tokio::sync::mpsc::unbounded_channel::<jetstream::Message>();
    let mut unacked: usize = 0;
    let result: Result<(), String> = async {
        let context = link.context().await?;
        let stream = context
            .get_stream(&link.stream)
            .await
            .map_err(|e| format!("cannot open the stream `{}`: {e}", link.stream))?;
        let durable = format!("{}-{from}-{to}", link.run);
        let config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: link.subject(from, to, "data"),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: link.ack_wait,
            deliver_policy: consumer::DeliverPolicy::All,
            // Items wait unacknowledged while a zip here waits for their partners.
            max_ack_pending: MAX_UNACKNOWLEDGED,
            ..Default::default()
        };
        // The processes hosting `to` share this consumer and may race to create it.
        let mut consumer: consumer::PullConsumer =
            retry_startup(|| stream.get_or_create_consumer(&durable, config.clone()))
                .await
                .map_err(|e| format!("cannot create the consumer `{durable}`: {e}"))?;
        let schema = envelope::schema::<T>(link.pipeline, from, to);
        let ends = link.subject(from, to, "end.>");
        let dead = link.subject(from, to, "dead");
        let fetch = FETCH.min(into.capacity());
        let mut ended = false;
        loop {
            while let Ok(message) = to_ack.try_recv() {
                acknowledge(&message).await?;
                unacked -= 1;
            }
            if control.is_stopping() {
                break;
            }
            let mut messages = consumer
                .fetch()
                .max_messages(fetch)
                .expires(FETCH_WAIT)
                .messages()
                .await
                .map_err(|e| format!("fetching items failed: {e}"))?;
            let mut items = Vec::with_capacity(fetch);
            while let Some(message) = messages.next().await {
                let message = message.map_err(|e| format!("fetching items failed: {e}"))?;
                if message.info().is_ok_and(|info| info.delivered > 1) {
                    stats.redelivered.fetch_add(1, Relaxed);
                }
                let header = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(SCHEMA_HEADER))
                    .map(|v| v.as_str());
                match envelope::decode::<T>(header, &schema, &message.payload) {
                    Ok((lineage, item)) => {
                        unacked += 1;
                        let finished = finished.clone();
                        link.ledger.arrived(
                            lineage,
                            Box::new(move || {
                                // Err: this task is gone (the run was aborted); the broker
                                // delivers the item again to whoever runs next.
                                let _ = finished.send(message);
                            }),
                        );
                        items.push((lineage, item));
                    }
                    Err(rejected) => {
                        let headers =
                            rejection(&rejected, message.headers.as_ref(), from, to, &stats);
                        context
                            .send_publish(
                                dead.clone(),
                                jetstream::message::PublishMessage::build()
                                    .payload(message.payload.clone())
                                    .headers(headers),
                            )
                            .await
                            .map_err(|e| format!("dead-lettering failed: {e}"))?
                            .await
                            .map_err(|e| format!("dead-lettering failed: {e}"))?;
                        acknowledge(&message).await?;
                    }
                }
            }
            if !items.is_empty() {
                let n = items.len() as u64;
                // Zips behind this edge learn nothing from watermarks across processes:
                // items arrive in any order, so they hold partial tuples until the end.
                if into
                    .send(Batch {
                        items,
                        watermark: 0,
                    })
                    .await
                    .is_err()
                {
                    break;
                }
                stats.items.fetch_add(n, Relaxed);
                continue;
            }
            if !ended {
                let mut seen = HashSet::new();
                let mut info = stream
                    .info_with_subjects(&ends)
                    .await
                    .map_err(|e| format!("reading end markers failed: {e}"))?;
                while let Some((subject, _)) = info
                    .try_next()
                    .await
                    .map_err(|e| format!("reading end markers failed: {e}"))?
                {
                    seen.insert(subject);
                }
                ended = seen.len() >= producers;
            }
            if ended {
                let info = consumer
                    .info()
                    .await
                    .map_err(|e| format!("reading the consumer's state failed: {e}"))?;
                // Items another process holds unacknowledged may still come back here (it
                // may have died), so the edge ends only when all that are out are ours.
                if info.num_pending == 0 && info.num_ack_pending <= unacked {
                    break;
                }
            }
        }
        // The hosted node's input ends; its items still finish, and are acknowledged then.
        drop(into);
        let mut all_done = std::pin::pin!(link.ledger.all_done());
        let mut nodes_ended = false;
        while unacked > 0 {
            tokio::select! {
                message = to_ack.recv() => {
                    let Some(message) = message else { break };
                    acknowledge(&message).await?;
                    unacked -= 1;
                }
                // Every node here has ended: whatever is still open was dealt with.
                () = &mut all_done, if !nodes_ended => {
                    nodes_ended = true;
                    link.ledger.finish_all();
                }
            }
        }
        // Acknowledgements are written in the background; the process may exit next.
        link.client()
            .await?
            .flush()
            .await
            .map_err(|e| format!("flushing acknowledgements failed: {e}"))
    }
    .await;
    fail_on_error(result, from, to, &control);
}

async fn acknowledge(message: &jetstream::Message) -> Result<(), String> {
    message
        .ack()
        .await
        .map_err(|e| format!("acknowledging failed: {e}"))
}
