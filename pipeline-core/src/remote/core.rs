//! At-most-once edges between processes, over core NATS: nothing is stored or
//! acknowledged. A message carries a whole batch; processes hosting the receiving node share
//! the edge as a queue group. A sender waits until every receiver it expects has subscribed
//! (core NATS drops what nobody listens to). Ends: each sender's end marker says how many
//! messages it sent; the receivers of an edge publish how many they got from whom, and each
//! ends once all of them together got everything every sender sent (NATS keeps order per
//! subject, not between the items' subject and the markers').

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::envelope::{self, INSTANCE_HEADER, SCHEMA_HEADER};
use super::link::Link;
use super::mishaps::{fail_on_error, rejection};
use crate::control::Control;
use crate::stats::RemoteEdgeStats;
use crate::wire::{Batch, EdgeReceiver, EdgeSender};

/// How often a sender asks which receivers are listening, until all are.
const ASK_EVERY: Duration = Duration::from_millis(100);
/// How often a receiver that has every end marker says how many messages it got.
const TALLY_EVERY: Duration = Duration::from_millis(50);

/// Messages received, by sending instance.
type Tally = HashMap<String, u64>;

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
        let mut messages = 0u64;
        while let Some(batch) = std::future::poll_fn(|cx| items.poll_recv(cx)).await {
            let n = batch.items.len() as u64;
            let payload = envelope::encode_batch(&batch.items)?;
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(SCHEMA_HEADER, schema.as_str());
            headers.insert(INSTANCE_HEADER, link.instance.as_str());
            client
                .publish_with_headers(subject.clone(), headers, payload.into())
                .await
                .map_err(|e| format!("publishing failed: {e}"))?;
            messages += 1;
            stats.items.fetch_add(n, Relaxed);
        }
        link.no_twin()?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(INSTANCE_HEADER, link.instance.as_str());
        client
            .publish_with_headers(
                link.live_subject(from, to, "end"),
                headers,
                messages.to_string().into(),
            )
            .await
            .map_err(|e| format!("publishing the end marker failed: {e}"))?;
        client
            .flush()
            .await
            .map_err(|e| format!("flushing to NATS failed: {e}"))
    }
    .await;
    fail_on_error(result, from, to, &control);
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
    let mut soon = Duration::from_millis(1);
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
        // Until the next ask, or at once when every receiver has answered: waiting out the
        // interval cost every run 100 ms.
        while listening.len() < expected {
            tokio::select! {
                answer = answers.next() => match answer {
                    // The server says at once when nobody listens to the ask yet (a status
                    // message, "no responders"): that is no receiver. Counted as one, it
                    // let the sender start before its receiver had subscribed, and core
                    // NATS dropped what it sent meanwhile. Ask again soon: the receivers
                    // are likely starting.
                    Some(answer) if answer.status.is_some() || answer.payload.is_empty() => {
                        tokio::time::sleep(soon).await;
                        soon = (soon * 2).min(ASK_EVERY);
                        break;
                    }
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
#[allow(clippy::too_many_arguments)]
pub(crate) async fn consume_edge<T: DeserializeOwned + Send + 'static>(
    into: EdgeSender<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    producers: usize,
    receivers: usize,
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
        let tally_subject = link.live_subject(from, to, "tally");
        let mut tallies_in = subscribe(tally_subject.clone(), None).await?;
        // The server knows the subscriptions before any sender hears from this process.
        client
            .flush()
            .await
            .map_err(|e| format!("flushing to NATS failed: {e}"))?;
        let schema = envelope::schema::<T>(link.pipeline, from, to);
        let dead = link.live_subject(from, to, "dead");
        // Messages each sender sent (from its end marker), and what each receiver got.
        let mut sent: Tally = HashMap::new();
        let mut got: Tally = HashMap::new();
        let mut tallies: HashMap<String, Tally> = HashMap::new();
        let mut tick = tokio::time::interval(TALLY_EVERY);
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
                    let headers = rejection(&rejected, message.headers.as_ref(), from, to, &stats);
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
                        *got.entry(instance_of(&message)).or_default() += 1;
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
                    let count = std::str::from_utf8(&marker.payload)
                        .ok()
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    sent.insert(instance_of(&marker), count);
                    if sent.len() == producers {
                        // The last end marker: tally now rather than at the next tick.
                        tick.reset_immediately();
                    }
                }
                tally = tallies_in.next() => {
                    let Some(tally) = tally else {
                        return Err("the NATS connection closed".into());
                    };
                    if let Ok((receiver, counts)) =
                        rmp_serde::from_slice::<(String, Tally)>(&tally.payload)
                    {
                        tallies.insert(receiver, counts);
                    }
                }
                _ = tick.tick(), if sent.len() >= producers => {
                    link.no_twin()?;
                    // Whatever is queued here counts before telling the others.
                    while let Some(Some(message)) = data.next().now_or_never() {
                        *got.entry(instance_of(&message)).or_default() += 1;
                        if !take(message).await? {
                            return Ok(());
                        }
                    }
                    let mine = rmp_serde::to_vec(&(&link.instance, &got))
                        .map_err(|e| format!("encoding a tally failed: {e}"))?;
                    client
                        .publish(tally_subject.clone(), mine.into())
                        .await
                        .map_err(|e| format!("publishing a tally failed: {e}"))?;
                    tallies.insert(link.instance.clone(), got.clone());
                    if tallies.len() >= receivers && all_received(&sent, &tallies) {
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
    fail_on_error(result, from, to, &control);
}

/// The sending instance named in a message's headers.
fn instance_of(message: &async_nats::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(INSTANCE_HEADER))
        .map(|v| v.as_str().to_string())
        .unwrap_or_default()
}

/// Whether the receivers together got every message every sender sent.
fn all_received(sent: &Tally, tallies: &HashMap<String, Tally>) -> bool {
    sent.iter().all(|(sender, &count)| {
        let received: u64 = tallies
            .values()
            .map(|tally| tally.get(sender).copied().unwrap_or(0))
            .sum();
        received >= count
    })
}
