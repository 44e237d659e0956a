//! At-most-once edges between processes, over core NATS: nothing is stored or
//! acknowledged. A message carries a whole batch; processes hosting the receiving node share
//! the edge as a queue group. A sender waits until every receiver it expects has subscribed
//! (core NATS drops what nobody listens to), and a receiver ends the edge once every sender
//! has sent its end marker.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::envelope::{self, INSTANCE_HEADER, REASON_HEADER, SCHEMA_HEADER};
use super::split::{Link, edge_name};
use crate::control::Control;
use crate::report::Failure;
use crate::stats::RemoteEdgeStats;
use crate::wire::{Batch, EdgeReceiver, EdgeSender};

/// How often a sender asks which receivers are listening, until all are.
const ASK_EVERY: Duration = Duration::from_millis(100);

/// Publishes what the hosted node `from` sends to `to`, batch by batch, then its end marker.
pub(crate) async fn publish_edge<T: Serialize + Send + 'static>(
    mut items: EdgeReceiver<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    receivers: usize,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    let result: Result<(), String> = async {
        let client = link.client().await?;
        if !receivers_listen(client, &link, from, to, receivers, &control).await? {
            return Ok(());
        }
        let subject = link.live_subject(from, to, "data");
        let schema = envelope::schema::<T>(link.pipeline, from, to);
        while let Some(batch) = std::future::poll_fn(|cx| items.poll_recv(cx)).await {
            let n = batch.items.len() as u64;
            let payload = envelope::encode_batch(&batch.items)?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(SCHEMA_HEADER, schema.as_str());
            client
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| format!("publishing failed: {e}"))?;
            stats.items.fetch_add(n, Relaxed);
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(INSTANCE_HEADER, link.instance.as_str());
        // On the same connection as the items, so every receiver gets it after them.
        client
            .publish_with_headers(
                link.live_subject(from, to, "end"),
                headers,
                stats.items.load(Relaxed).to_string().into(),
            )
            .await
            .map_err(|e| format!("publishing the end marker failed: {e}"))?;
        client
            .flush()
            .await
            .map_err(|e| format!("flushing to NATS failed: {e}"))
    }
    .await;
    if let Err(error) = result {
        tracing::error!(from, to, %error, "edge across processes failed");
        control.fail(Failure::Remote {
            edge: edge_name(from, to),
            error,
        });
    }
    link.ledger.node_done();
}

/// Asks until `expected` receivers of the edge answered; false if the run stopped first.
async fn receivers_listen(
    client: &async_nats::Client,
    link: &Link,
    from: &str,
    to: &str,
    expected: usize,
    control: &Control,
) -> Result<bool, String> {
    let inbox = client.new_inbox();
    let mut answers = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("subscribing failed: {e}"))?;
    let mut listening = HashSet::new();
    let ask = link.live_subject(from, to, "ready");
    while listening.len() < expected {
        if control.is_stopping() {
            return Ok(false);
        }
        client
            .publish_with_reply(ask.clone(), inbox.clone(), "".into())
            .await
            .map_err(|e| format!("publishing failed: {e}"))?;
        let wait = tokio::time::sleep(ASK_EVERY);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                answer = answers.next() => match answer {
                    Some(answer) => {
                        listening.insert(answer.payload);
                    }
                    None => return Err("the NATS connection closed".into()),
                },
                () = &mut wait => break,
            }
        }
    }
    Ok(true)
}

/// Feeds the hosted node `to` with what `from`'s processes publish, until each of them has
/// sent its end marker.
pub(crate) async fn consume_edge<T: DeserializeOwned + Send + 'static>(
    into: EdgeSender<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    producers: usize,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    let result: Result<(), String> = async {
        let client = link.client().await?;
        let subscribe = |subject: String, group: Option<&str>| {
            let client = client.clone();
            let group = group.map(str::to_string);
            async move {
                match group {
                    Some(group) => client.queue_subscribe(subject, group).await,
                    None => client.subscribe(subject).await,
                }
                .map_err(|e| format!("subscribing failed: {e}"))
            }
        };
        let mut data = subscribe(link.live_subject(from, to, "data"), Some(to)).await?;
        let mut ends = subscribe(link.live_subject(from, to, "end"), None).await?;
        let mut asks = subscribe(link.live_subject(from, to, "ready"), None).await?;
        // The server knows the subscriptions before any sender hears from this process.
        client
            .flush()
            .await
            .map_err(|e| format!("flushing to NATS failed: {e}"))?;
        let schema = envelope::schema::<T>(link.pipeline, from, to);
        let dead = link.live_subject(from, to, "dead");
        let mut ended = HashSet::new();
        let take = async |message: async_nats::Message| -> Result<bool, String> {
            let header = message
                .headers
                .as_ref()
                .and_then(|h| h.get(SCHEMA_HEADER))
                .map(|v| v.as_str());
            match envelope::decode_batch::<T>(header, &schema, &message.payload) {
                Ok(items) => {
                    let n = items.len() as u64;
                    if into
                        .send(Batch {
                            items,
                            watermark: 0,
                        })
                        .await
                        .is_err()
                    {
                        return Ok(false);
                    }
                    stats.items.fetch_add(n, Relaxed);
                }
                Err(rejected) => {
                    stats.rejected.fetch_add(1, Relaxed);
                    let reason = rejected.to_string();
                    tracing::warn!(from, to, %reason, "message rejected, sent to dead-letter");
                    let mut headers = message.headers.clone().unwrap_or_default();
                    headers.insert(REASON_HEADER, reason.as_str());
                    client
                        .publish_with_headers(dead.clone(), headers, message.payload)
                        .await
                        .map_err(|e| format!("dead-lettering failed: {e}"))?;
                }
            }
            Ok(true)
        };
        loop {
            tokio::select! {
                message = data.next() => match message {
                    Some(message) => {
                        if !take(message).await? {
                            break;
                        }
                    }
                    None => return Err("the NATS connection closed".into()),
                },
                marker = ends.next() => {
                    let Some(marker) = marker else {
                        return Err("the NATS connection closed".into());
                    };
                    let instance = marker
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(INSTANCE_HEADER))
                        .map(|v| v.as_str().to_string())
                        .unwrap_or_default();
                    ended.insert(instance);
                    if ended.len() >= producers {
                        // A sender's items came on its connection before its marker, so
                        // they are already here: take what is queued, then stop.
                        while let Some(Some(message)) = data.next().now_or_never() {
                            if !take(message).await? {
                                break;
                            }
                        }
                        break;
                    }
                }
                ask = asks.next() => {
                    if let Some(reply) = ask.and_then(|ask| ask.reply) {
                        client
                            .publish(reply, link.instance.clone().into())
                            .await
                            .map_err(|e| format!("answering a sender failed: {e}"))?;
                    }
                }
                () = control.stopped() => break,
            }
        }
        // Dead-lettered messages are written in the background; the process may exit next.
        client
            .flush()
            .await
            .map_err(|e| format!("flushing to NATS failed: {e}"))
    }
    .await;
    if let Err(error) = result {
        tracing::error!(from, to, %error, "edge across processes failed");
        control.fail(Failure::Remote {
            edge: edge_name(from, to),
            error,
        });
    }
}
