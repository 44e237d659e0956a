//! At-least-once edges between processes, over JetStream: items are stored in a stream,
//! each receiving node shares a durable pull consumer with its replicas, and an item is
//! acknowledged only once it is finished in the receiving process. The book's chapter
//! "Across machines: how it works" states what this promises; the fault suite
//! (`tests/faults.rs`) checks it.

use std::collections::{HashMap, HashSet};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::{self, AckKind, consumer};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use super::envelope::{self, NOTE_HEADER, SCHEMA_HEADER};
use super::link::{Link, Stored};
use super::mishaps::{fail_on_error, rejection, retry_startup};
use super::notes::{Done, Sent, Watermark};
use crate::control::Control;
use crate::lineage::Lineage;
use crate::stats::RemoteEdgeStats;
use crate::wire::{Batch, EdgeReceiver, EdgeSender};

/// Items a receiving process asks for at a time while its node is busy: small, so that
/// processes sharing a consumer take turns instead of one of them taking everything.
const FETCH: usize = 64;
/// Items it asks for at a time, at most, while its node keeps up: each fetch is a round
/// trip to the server, which a fast node would otherwise wait on.
const FETCH_AT_MOST: usize = 512;
/// How long a fetch waits for items before the edge checks whether it has ended.
const FETCH_WAIT: Duration = Duration::from_millis(200);
/// Stream sequences looked at, at most, when looking for unreadable messages.
const SWEEP_AT_MOST: u64 = 10_000;
/// How long an acknowledgement may wait to be sent.
const ACK_AT_MOST: Duration = Duration::from_secs(2);
/// Items a receiving process may hold unacknowledged per edge.
const MAX_UNACKNOWLEDGED: i64 = 10_000;

/// Ends an end marker's count when the marker ends the producing node's whole work.
const WHOLE_NODE: &str = "all";

/// What an end marker's `Pipeline-Schema` header says: the edge's schema, marked as an end.
fn marker_schema(schema: &str) -> String {
    format!("{schema}#end")
}

/// Publishes what the hosted node `from` sends to `to`, then its end marker.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn publish_edge<T: Serialize + Send + 'static>(
    mut items: EdgeReceiver<T>,
    done: mpsc::UnboundedReceiver<u64>,
    alone: bool,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    let notes = Notes { done, alone };
    let result = publish(&mut items, notes, &link, from, to, &stats, &control).await;
    let failed = result.is_err();
    fail_on_error(result, from, to, &control);
    if failed {
        // What still comes is not stored: the report says how much, and the inputs it
        // came from are delivered again to whoever takes this process's place.
        while let Some(batch) = std::future::poll_fn(|cx| items.poll_recv(cx)).await {
            stats.pending.fetch_add(batch.items.len() as u64, Relaxed);
        }
    }
    link.ledger.node_done();
}

/// Where a sending edge learns what its notes say (see `notes`).
struct Notes {
    /// The roots from other processes that finished in this one.
    done: mpsc::UnboundedReceiver<u64>,
    /// Whether this is the only process hosting the sending node: only then does its own
    /// watermark speak for the edge.
    alone: bool,
}

async fn publish<T: Serialize>(
    items: &mut EdgeReceiver<T>,
    notes: Notes,
    link: &Link,
    from: &'static str,
    to: &'static str,
    stats: &RemoteEdgeStats,
    control: &Control,
) -> Result<(), String> {
    let stored = link.stored(control).await?;
    // Receivers learn from it that this process takes part, and ask after it if it never
    // ends the edge.
    let open = stored.subject(from, to, &format!("open.{}", link.instance));
    link.ride_through(control, "saying the edge is open", || async {
        stored
            .context
            .send_publish(open.clone(), PublishMessage::build())
            .await?
            .await
    })
    .await?;
    let subject = stored.subject(from, to, "data");
    let schema = envelope::schema::<T>(link.pipeline, from, to);
    // Items this process stored first: its end marker's count. A copy the stream dropped as
    // a duplicate was counted by whoever stored it.
    let mut fresh = 0u64;
    let max_payload = link.client().await?.server_info().max_payload;
    let edge = Outbound {
        link,
        stored,
        control,
        stats,
        from,
        to,
        subject: &subject,
        schema: &schema,
        max_payload,
    };
    // What the next note says, and how far the last one went (see `notes`).
    let mut note = Done::default();
    let mut noted_below = 0;
    let mut sent = Sent::default();
    let Notes { mut done, alone } = notes;
    loop {
        tokio::select! {
            batch = std::future::poll_fn(|cx| items.poll_recv(cx)) => {
                let Some(batch) = batch else { break };
                link.no_twin()?;
                fresh += edge.store(batch.items, &mut sent).await?;
                if alone {
                    sent.below(batch.watermark, &mut note);
                }
            }
            Some(root) = done.recv() => sent.finished(root, &mut note),
        }
        // Roots that finished as this batch was stored, or meanwhile.
        while let Ok(root) = done.try_recv() {
            sent.finished(root, &mut note);
        }
        if note.below > noted_below || !note.roots.is_empty() {
            edge.send_note(&note).await?;
            noted_below = note.below;
            note.roots.clear();
        }
    }
    while let Ok(root) = done.try_recv() {
        sent.finished(root, &mut note);
    }
    if !note.roots.is_empty() {
        edge.send_note(&note).await?;
    }
    link.no_twin()?;
    if !link.may_end() || control.is_failing() {
        // This process may not have sent everything it should have: without its marker,
        // the receivers wait for it to be restarted.
        tracing::warn!(
            from,
            to,
            "not ending the edge: this process did not finish its part"
        );
        return Ok(());
    }
    // `all`: this copy of a stateless node fed only from other processes ended its input,
    // so every copy of it did: receivers need not wait for the others' markers (a copy
    // that died for good sends none).
    let count = if link.ends_whole_node(from, control).await {
        format!("{fresh} {WHOLE_NODE}")
    } else {
        fresh.to_string()
    };
    let marker = PublishMessage::build()
        .payload(count.into())
        .header(SCHEMA_HEADER, marker_schema(&schema).as_str())
        .message_id(stored.marker_id(from, to, &link.instance));
    let end = stored.subject(from, to, &format!("end.{}", link.instance));
    link.ride_through(control, "storing the end marker", || async {
        stored
            .context
            .send_publish(end.clone(), marker.clone())
            .await?
            .await
    })
    .await?;
    Ok(())
}

/// A sending edge, while it runs.
struct Outbound<'a> {
    link: &'a Link,
    stored: &'a Stored,
    control: &'a Control,
    stats: &'a RemoteEdgeStats,
    from: &'static str,
    to: &'static str,
    subject: &'a str,
    schema: &'a str,
    max_payload: usize,
}

impl Outbound<'_> {
    /// Stores a batch's items, their publishes in flight together; how many the stream
    /// had not stored before.
    async fn store<T: Serialize>(
        &self,
        items: Vec<(Lineage, T)>,
        sent: &mut Sent,
    ) -> Result<u64, String> {
        let (link, stored, control, stats) = (self.link, self.stored, self.control, self.stats);
        let (from, to) = (self.from, self.to);
        let mut first_tries = Vec::with_capacity(items.len());
        for (lineage, item) in items {
            let payload = envelope::encode(lineage, &item)?;
            let id = stored.item_id(from, to, lineage);
            // The server closes the connection of whoever publishes more than it takes:
            // such an item fails here, as an item, and the run goes on.
            let size = payload.len() + HEADERS_UP_TO + self.schema.len() + id.len();
            if size > self.max_payload {
                too_large(
                    link,
                    stored,
                    control,
                    from,
                    to,
                    lineage,
                    size,
                    self.max_payload,
                )
                .await?;
                stats.failed.fetch_add(1, Relaxed);
                link.ledger.ended(lineage);
                continue;
            }
            let message = PublishMessage::build()
                .payload(payload.into())
                .header(SCHEMA_HEADER, self.schema)
                .message_id(id);
            let ack = stored
                .context
                .send_publish(self.subject.to_string(), message.clone())
                .await;
            first_tries.push((lineage, message, ack));
        }
        // Waited for together: each wait has its own time limit, which starts when it is
        // awaited, so one after the other, a batch lost in an outage would take that long
        // per item before the first retry.
        let (tried, waits): (Vec<_>, Vec<_>) = first_tries
            .into_iter()
            .map(|(lineage, message, ack)| {
                let wait = async move {
                    match ack {
                        Ok(ack) => ack.await,
                        Err(e) => Err(e),
                    }
                };
                ((lineage, message), wait)
            })
            .unzip();
        let firsts = futures::future::join_all(waits).await;
        let mut fresh = 0;
        let mut unconfirmed = tried.len() as u64;
        for ((lineage, message), first) in tried.into_iter().zip(firsts) {
            let ack = match first {
                Ok(ack) => ack,
                // Again, with the same message id: stored once however often it is sent.
                Err(_) => {
                    let again = link
                        .ride_through(control, "storing an item", || async {
                            stored
                                .context
                                .send_publish(self.subject.to_string(), message.clone())
                                .await?
                                .await
                        })
                        .await;
                    match again {
                        Ok(ack) => ack,
                        Err(error) => {
                            stats.pending.fetch_add(unconfirmed, Relaxed);
                            return Err(error);
                        }
                    }
                }
            };
            unconfirmed -= 1;
            // Items this process stored first count in its end marker; a copy the stream
            // dropped as a duplicate was counted by whoever stored it.
            fresh += u64::from(!ack.duplicate);
            stats.items.fetch_add(1, Relaxed);
            // Counted before the ledger may say the root is done here.
            sent.one(lineage.root_index());
            // Stored: finished in this process, so what it came from may be acknowledged.
            link.ledger.ended(lineage);
        }
        Ok(fresh)
    }

    /// Stores a note saying which roots are done on the edge (see `notes`).
    async fn send_note(&self, done: &Done) -> Result<(), String> {
        let note = PublishMessage::build()
            .payload(envelope::encode_done(done)?.into())
            .header(SCHEMA_HEADER, self.schema)
            .header(NOTE_HEADER, "done");
        let stored = self.stored;
        self.link
            .ride_through(self.control, "storing a note", || async {
                stored
                    .context
                    .send_publish(self.subject.to_string(), note.clone())
                    .await?
                    .await
            })
            .await?;
        Ok(())
    }
}

/// Bytes of a message's headers beyond the schema and the message id.
const HEADERS_UP_TO: usize = 256;

/// Logs an item too large for the server, and leaves a note of it (no payload) on the
/// edge's dead-letter subject.
#[allow(clippy::too_many_arguments)]
async fn too_large(
    link: &Link,
    stored: &Stored,
    control: &Control,
    from: &str,
    to: &str,
    lineage: Lineage,
    size: usize,
    max_payload: usize,
) -> Result<(), String> {
    let reason = format!(
        "the item (lineage {}.{}) takes {size} bytes with its headers, more than the server's maximum payload of {max_payload}",
        lineage.root_index(),
        lineage.path()
    );
    tracing::warn!(from, to, %reason, "item failed");
    let note = PublishMessage::build().header(super::envelope::REASON_HEADER, reason.as_str());
    let dead = stored.subject(from, to, "dead");
    link.ride_through(control, "dead-lettering an item too large", || async {
        stored
            .context
            .send_publish(dead.clone(), note.clone())
            .await?
            .await
    })
    .await?;
    Ok(())
}

/// Feeds the hosted node `to` with what `from`'s processes publish, until all of them have
/// ended and nothing is left to deliver; then acknowledges the rest as it finishes here.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn consume_edge<T: DeserializeOwned + Send + 'static>(
    into: EdgeSender<T>,
    link: Arc<Link>,
    from: &'static str,
    to: &'static str,
    producers: usize,
    watermarks: bool,
    stats: Arc<RemoteEdgeStats>,
    control: Arc<Control>,
) {
    let result = async {
        let stored = link.stored(&control).await?;
        let (finished_tx, finished) = mpsc::unbounded_channel();
        let mut inbound = Inbound {
            link: &link,
            stored,
            control: &control,
            stats: &stats,
            from,
            to,
            schema: envelope::schema::<T>(link.pipeline, from, to),
            held: HashMap::new(),
            done: HashSet::new(),
            finished_tx,
            finished,
            kept_alive: Instant::now(),
            bad_markers: HashSet::new(),
            short_since: None,
            stuck_since: None,
            acks_stalled: None,
            last_roll_call: None,
            gone: HashMap::new(),
            watermark: watermarks.then(Watermark::default),
            ranges: producers == 1,
            consumer: None,
            handed_below: 0,
        };
        let mut result = inbound.receive(into, producers).await;
        if result.is_ok() {
            result = inbound.drain().await;
        }
        // Whether every item of the edge is acknowledged now, by whichever process: then
        // this process's copy of `to` may end the node's whole work (see `Link`).
        let settled = match (&result, &inbound.consumer) {
            (Ok(()), Some(consumer)) if link.may_end() => {
                all_acknowledged(&link, &control, consumer).await
            }
            _ => false,
        };
        link.input_ended(to, settled);
        // Left unacknowledged: delivered again to whoever takes this process's place.
        stats.pending.store(inbound.held.len() as u64, Relaxed);
        result
    }
    .await;
    fail_on_error(result, from, to, &control);
}

/// Whether every item on the consumer is acknowledged. The server applies
/// acknowledgements a moment after it has them, so the last ones are given a second.
async fn all_acknowledged(
    link: &Link,
    control: &Control,
    consumer: &consumer::PullConsumer,
) -> bool {
    for _ in 0..20 {
        let info = link
            .ride_through(control, "reading the consumer's state", || {
                consumer.get_info()
            })
            .await;
        match info {
            Ok(info) if info.num_pending == 0 && info.num_ack_pending == 0 => return true,
            Ok(info) if info.num_pending > 0 => return false,
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(_) => return false,
        }
    }
    false
}

/// How many items to fetch next, after a fetch that gave `got` of `asked`: twice as many
/// while the stream has them and the node keeps up (its input has room for them), back to
/// [`FETCH`] once it does not.
fn next_fetch<T>(asked: usize, got: usize, into: &EdgeSender<T>) -> usize {
    let most = FETCH_AT_MOST.min(into.capacity());
    if got == asked && into.has_room_for(2 * asked) {
        (2 * asked).min(most)
    } else if into.has_room_for(asked) {
        asked
    } else {
        FETCH.min(most)
    }
}

/// A receiving edge's state.
struct Inbound<'a> {
    link: &'a Link,
    stored: &'a Stored,
    control: &'a Control,
    stats: &'a RemoteEdgeStats,
    from: &'static str,
    to: &'static str,
    schema: String,
    /// Messages whose items are in this process, by stream sequence: acknowledged when the
    /// ledger says they are finished, kept alive meanwhile.
    held: HashMap<u64, jetstream::Message>,
    /// Stream sequences finished here: a copy delivered again (an acknowledgement lost in
    /// an outage) is acknowledged again, not processed again.
    done: HashSet<u64>,
    finished_tx: mpsc::UnboundedSender<u64>,
    finished: mpsc::UnboundedReceiver<u64>,
    kept_alive: Instant,
    /// End markers that are not ours, by stream sequence: counted once.
    bad_markers: HashSet<u64>,
    /// Since when the producers' markers claim more items than the stream holds.
    short_since: Option<Instant>,
    /// Since when the edge has waited for items out that this process does not hold.
    stuck_since: Option<Instant>,
    /// When an acknowledgement last waited in vain to be sent.
    acks_stalled: Option<Instant>,
    /// When the producers that have not ended were last asked after.
    last_roll_call: Option<Instant>,
    /// Producing processes that did not answer, and since when.
    gone: HashMap<String, Instant>,
    /// The roots done on the edge, from the producers' notes; None when other processes
    /// share the edge, and may still get an item of any root.
    watermark: Option<Watermark>,
    /// The watermark handed to the node.
    handed_below: u64,
    /// Whether one process sends on the edge: only then does its own watermark in its
    /// notes speak for the edge (a copy's says "everything" when it ends, while the others
    /// may still send).
    ranges: bool,
    /// The edge's consumer, once opened.
    consumer: Option<consumer::PullConsumer>,
}

impl Inbound<'_> {
    async fn receive<T: DeserializeOwned + Send + 'static>(
        &mut self,
        into: EdgeSender<T>,
        producers: usize,
    ) -> Result<(), String> {
        let (link, control) = (self.link, self.control);
        let durable = self.stored.consumer(self.from, self.to);
        let config = consumer::pull::Config {
            durable_name: Some(durable.clone()),
            filter_subject: self.stored.subject(self.from, self.to, "data"),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: link.ack_wait,
            deliver_policy: consumer::DeliverPolicy::All,
            // Items wait unacknowledged while a zip here waits for their partners.
            max_ack_pending: MAX_UNACKNOWLEDGED,
            ..Default::default()
        };
        // The processes hosting `to` share this consumer and may race to create it.
        let consumer: consumer::PullConsumer = link
            .ride_through(control, "creating the edge's consumer", || {
                retry_startup(|| {
                    self.stored
                        .stream
                        .get_or_create_consumer(&durable, config.clone())
                })
            })
            .await?;
        self.consumer = Some(consumer.clone());
        let mut fetch = FETCH.min(into.capacity());
        let mut ended = false;
        let mut trouble: Option<Instant> = None;
        loop {
            link.no_twin()?;
            self.settle().await;
            if control.is_stopping() {
                if !control.is_failing() {
                    // Stopped before its input ended: this process's part is not done.
                    link.interrupted();
                }
                return Ok(());
            }
            let mut messages = link
                .ride_through(control, "fetching items", || {
                    consumer
                        .fetch()
                        .max_messages(fetch)
                        .expires(FETCH_WAIT)
                        .messages()
                })
                .await?;
            let mut items = Vec::with_capacity(fetch);
            while let Some(message) = messages.next().await {
                match message {
                    Ok(message) => {
                        trouble = None;
                        if let Some(item) = self.take(message).await {
                            items.push(item);
                        }
                    }
                    // What this fetch did not hand over is delivered again.
                    Err(e) => {
                        let since = *trouble.get_or_insert_with(Instant::now);
                        if since.elapsed() >= link.retry_for {
                            return Err(format!("fetching items failed: {e}"));
                        }
                        tracing::debug!(error = %e, "a fetch broke off");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        break;
                    }
                }
            }
            if !items.is_empty() {
                // Gone producers are only a problem once nothing comes any more: the
                // others may still be doing their share.
                self.gone.clear();
            }
            let below = self.watermark.as_ref().map_or(0, Watermark::get);
            if !items.is_empty() || below > self.handed_below {
                let n = items.len() as u64;
                let got_items = n > 0;
                let batch = Batch {
                    items,
                    watermark: below,
                };
                if !self.hand_on(&into, batch).await {
                    return Ok(());
                }
                fetch = next_fetch(fetch, n as usize, &into);
                self.handed_below = below;
                self.stats.items.fetch_add(n, Relaxed);
                if got_items {
                    continue;
                }
            }
            if !ended {
                ended = self.producers_ended(producers).await?;
            }
            if ended && self.nothing_left(&consumer).await? {
                return Ok(());
            }
        }
    }

    /// Sends a batch to the hosted node, keeping what this process holds alive while the
    /// node is busy; false if the node is gone.
    async fn hand_on<T>(&mut self, into: &EdgeSender<T>, batch: Batch<T>) -> bool {
        let mut send = pin!(into.send(batch));
        let keep_alive = self.keep_alive_every();
        loop {
            tokio::select! {
                sent = &mut send => return sent.is_ok(),
                () = tokio::time::sleep(keep_alive) => {
                    self.settle().await;
                }
            }
        }
    }

    /// Takes a delivered message: its item if it is new here, after checking it is ours.
    async fn take<T: DeserializeOwned>(
        &mut self,
        message: jetstream::Message,
    ) -> Option<(Lineage, T)> {
        let (sequence, delivered) = match message.info() {
            Ok(info) => (Some(info.stream_sequence), info.delivered),
            Err(_) => (None, 1),
        };
        if delivered > 1 {
            self.stats.redelivered.fetch_add(1, Relaxed);
        }
        if let Some(sequence) = sequence {
            if let Some(held) = self.held.get_mut(&sequence) {
                // Still being processed here: the newer delivery is the one to acknowledge.
                *held = message;
                return None;
            }
            if self.done.contains(&sequence) {
                self.acknowledge(&message).await;
                return None;
            }
        }
        let header = message
            .headers
            .as_ref()
            .and_then(|h| h.get(SCHEMA_HEADER))
            .map(|v| v.as_str());
        let is_note = message
            .headers
            .as_ref()
            .is_some_and(|h| h.get(NOTE_HEADER).is_some());
        if is_note {
            match envelope::decode_done(header, &self.schema, &message.payload) {
                Ok(mut done) => {
                    if !self.ranges {
                        done.below = 0;
                    }
                    if let Some(watermark) = &mut self.watermark {
                        watermark.note(&done);
                    }
                    self.acknowledge(&message).await;
                    if let Some(sequence) = sequence {
                        self.done.insert(sequence);
                    }
                    return None;
                }
                Err(rejected) => return self.reject(message, sequence, &rejected).await,
            }
        }
        match envelope::decode::<T>(header, &self.schema, &message.payload) {
            Ok((lineage, item)) => {
                // Without a sequence (never from a real server) it is acknowledged at once
                // when finished, and not recognised if delivered again.
                let key = sequence.unwrap_or(u64::MAX - self.held.len() as u64);
                self.held.insert(key, message);
                if let Some(watermark) = &mut self.watermark {
                    watermark.item(lineage.root_index());
                }
                let finished = self.finished_tx.clone();
                self.link.ledger.arrived(
                    lineage,
                    Box::new(move || {
                        // Err: this edge is gone (the run ended); the broker delivers the
                        // item again to whoever runs next.
                        let _ = finished.send(key);
                    }),
                );
                Some((lineage, item))
            }
            Err(rejected) => self.reject(message, sequence, &rejected).await,
        }
    }

    /// Dead-letters a message that is not this edge's, and acknowledges it.
    async fn reject<T>(
        &mut self,
        message: jetstream::Message,
        sequence: Option<u64>,
        rejected: &envelope::Rejected,
    ) -> Option<T> {
        let headers = rejection(
            rejected,
            message.headers.as_ref(),
            self.from,
            self.to,
            self.stats,
        );
        self.dead_letter(&message, headers).await;
        self.acknowledge(&message).await;
        if let Some(sequence) = sequence {
            self.done.insert(sequence);
        }
        None
    }

    /// Stores a rejected message on the edge's dead-letter subject; if even that fails (the
    /// original headers are too large, say), with the reason alone; if that fails too, the
    /// rejection is logged and counted, and the run goes on.
    async fn dead_letter(&self, message: &jetstream::Message, headers: async_nats::HeaderMap) {
        let dead = self.stored.subject(self.from, self.to, "dead");
        let context = &self.stored.context;
        let store = |headers: async_nats::HeaderMap| {
            let message = PublishMessage::build()
                .payload(message.payload.clone())
                .headers(headers);
            let dead = dead.clone();
            async move { context.send_publish(dead, message).await?.await }
        };
        if store(headers.clone()).await.is_ok() {
            return;
        }
        let mut reason = async_nats::HeaderMap::new();
        if let Some(why) = headers.get(super::envelope::REASON_HEADER) {
            reason.insert(super::envelope::REASON_HEADER, why.as_str());
        }
        let result = self
            .link
            .ride_through(self.control, "dead-lettering a message", || {
                store(reason.clone())
            })
            .await;
        if let Err(error) = result {
            tracing::error!(from = self.from, to = self.to, %error, "a rejected message could not be dead-lettered; it is dropped");
        }
    }

    /// Acknowledges what the ledger says is finished, and keeps the rest alive.
    async fn settle(&mut self) {
        while let Ok(key) = self.finished.try_recv() {
            self.finished_one(key).await;
        }
        if self.kept_alive.elapsed() >= self.keep_alive_every() {
            self.keep_alive().await;
        }
    }

    async fn finished_one(&mut self, key: u64) {
        if let Some(message) = self.held.remove(&key) {
            self.acknowledge(&message).await;
            self.done.insert(key);
        }
    }

    /// A third of the ack wait: two progress notes may be lost before a redelivery.
    fn keep_alive_every(&self) -> Duration {
        (self.link.ack_wait / 3).max(Duration::from_millis(10))
    }

    /// Tells the server that what this process holds is still being worked on, so that it
    /// is not delivered again while this process lives, however long it takes.
    async fn keep_alive(&mut self) {
        self.kept_alive = Instant::now();
        if self.control.is_failing() {
            return;
        }
        // Lost in an outage: the item may come back, and is then recognised. The client
        // queues what it cannot send while it reconnects; this waits no longer than until
        // the next round.
        let every = self.keep_alive_every();
        let _ = tokio::time::timeout(every, async {
            for message in self.held.values() {
                let _ = message.ack_with(AckKind::Progress).await;
            }
        })
        .await;
    }

    async fn acknowledge(&mut self, message: &jetstream::Message) {
        // A failing run may have dropped what it was doing: it acknowledges nothing more,
        // and the server delivers the rest again.
        if self.control.is_failing() {
            return;
        }
        // The last one waited in vain: the server is away. What is not acknowledged now
        // comes back later and is recognised.
        if self
            .acks_stalled
            .is_some_and(|at| at.elapsed() < ACK_AT_MOST)
        {
            return;
        }
        // Lost (or waiting in the client's queue too long): delivered again after the ack
        // wait, and then recognised as done.
        match tokio::time::timeout(ACK_AT_MOST, message.ack()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(error = %e, "an acknowledgement was lost"),
            Err(_) => {
                tracing::debug!("an acknowledgement timed out");
                self.acks_stalled = Some(Instant::now());
            }
        }
    }

    /// Whether every producing process has stored its end marker, and the stream holds at
    /// least the items their markers count.
    async fn producers_ended(&mut self, producers: usize) -> Result<bool, String> {
        let (link, control, stream) = (self.link, self.control, &self.stored.stream);
        let ends = self.stored.subject(self.from, self.to, "end.*");
        let markers = link
            .subjects(self.stored, control, "reading end markers", &ends)
            .await?;
        let expected = marker_schema(&self.schema);
        let mut claimed = 0u64;
        let mut valid = 0usize;
        let mut whole = false;
        let mut ended = HashSet::new();
        for (subject, _) in markers {
            let Some(marker) = link
                .last_message(stream, control, "reading an end marker", &subject)
                .await?
            else {
                continue;
            };
            let ours = marker
                .headers
                .get(SCHEMA_HEADER)
                .is_some_and(|h| h.as_str() == expected);
            let text = std::str::from_utf8(&marker.payload).unwrap_or("");
            let (count, all) = match text.trim().split_once(' ') {
                Some((count, WHOLE_NODE)) => (count.parse::<u64>().ok(), true),
                Some(_) => (None, false),
                None => (text.trim().parse::<u64>().ok(), false),
            };
            match count {
                Some(count) if ours => {
                    valid += 1;
                    claimed += count;
                    whole |= all;
                    ended.insert(subject.rsplit('.').next().unwrap_or("").to_string());
                }
                _ => {
                    if self.bad_markers.insert(marker.sequence) {
                        self.stats.rejected.fetch_add(1, Relaxed);
                        tracing::warn!(from = self.from, to = self.to, %subject, "an end marker not sent by this pipeline is ignored");
                    }
                }
            }
        }
        if valid < producers && !whole {
            self.roll_call(&ended).await?;
            return Ok(false);
        }
        let data = self.stored.subject(self.from, self.to, "data");
        let held: u64 = link
            .subjects(self.stored, control, "counting the edge's items", &data)
            .await?
            .iter()
            .map(|(_, count)| *count as u64)
            .sum();
        if held >= claimed {
            return Ok(true);
        }
        // The producers stored more than the stream holds: the server lost items (killed
        // before it wrote them out?). Ending now would lose them silently.
        let since = *self.short_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= link.retry_for {
            return Err(format!(
                "the producers of this edge stored {claimed} items, but the stream holds {held}: the NATS server lost {} of them",
                claimed - held
            ));
        }
        Ok(false)
    }

    /// Asks after every producing process that opened the edge and has not ended it: one
    /// that has not answered for `retry_for` while nothing came on the edge (it died, and
    /// nobody started it again) fails this run, saying whom to restart, instead of waiting
    /// for ever.
    async fn roll_call(&mut self, ended: &HashSet<String>) -> Result<(), String> {
        if self
            .last_roll_call
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            return Ok(());
        }
        self.last_roll_call = Some(Instant::now());
        let (link, control) = (self.link, self.control);
        let opened = self.stored.subject(self.from, self.to, "open.*");
        let opened = link
            .subjects(
                self.stored,
                control,
                "reading who sends on the edge",
                &opened,
            )
            .await?;
        let client = link.client().await?;
        for (subject, _) in opened {
            let instance = subject.rsplit('.').next().unwrap_or("").to_string();
            if ended.contains(&instance) {
                self.gone.remove(&instance);
                continue;
            }
            let asked = client.request(link.instance_subject(&instance), "".into());
            let alive = matches!(
                tokio::time::timeout(Duration::from_secs(1), asked).await,
                Ok(Ok(answer)) if answer.status.is_none()
            );
            if alive {
                self.gone.remove(&instance);
                continue;
            }
            let since = *self
                .gone
                .entry(instance.clone())
                .or_insert_with(Instant::now);
            if since.elapsed() >= link.retry_for {
                return Err(format!(
                    "the process `{instance}` hosting `{}` started sending on this edge, never ended it, and has not answered for {:.0?}: start it again with PIPELINE_INSTANCE={instance} to finish the run (raise PIPELINE_RETRY_FOR_S to wait longer)",
                    self.from,
                    since.elapsed()
                ));
            }
        }
        Ok(())
    }

    /// Whether the edge's consumer has nothing left to deliver, and nothing out but what
    /// this process holds (another process's items may still come back here if it died).
    async fn nothing_left(&mut self, consumer: &consumer::PullConsumer) -> Result<bool, String> {
        let info = self
            .link
            .ride_through(self.control, "reading the consumer's state", || {
                consumer.get_info()
            })
            .await?;
        if info.num_pending == 0 && info.num_ack_pending <= self.held.len() {
            return Ok(true);
        }
        // Something is out that this process does not hold: another process's items, or a
        // message the client cannot read (it drops its connection on one instead of
        // handing it over, and the server delivers it again and again). Look once an ack
        // wait has passed without change.
        let sweep_every = self.link.ack_wait.min(Duration::from_secs(2));
        let stuck = self.stuck_since.get_or_insert_with(Instant::now);
        if info.num_pending == 0 && stuck.elapsed() >= sweep_every {
            self.stuck_since = Some(Instant::now());
            self.set_aside_unreadable(
                info.ack_floor.stream_sequence + 1,
                info.delivered.stream_sequence,
            )
            .await?;
        }
        Ok(false)
    }

    /// Finds the messages between `first` and `last` (stream sequences) whose headers the
    /// client cannot read, through the server's JSON API; dead-letters each with the
    /// reason, and deletes it from the stream so that it is not delivered again.
    async fn set_aside_unreadable(&mut self, first: u64, last: u64) -> Result<(), String> {
        use base64::Engine;
        let (link, control) = (self.link, self.control);
        let client = link.client().await?;
        let api = format!("$JS.API.STREAM.MSG.GET.{}", link.stream);
        let data = self.stored.subject(self.from, self.to, "data");
        for sequence in first..=last.min(first + SWEEP_AT_MOST) {
            if self.held.contains_key(&sequence) || self.done.contains(&sequence) {
                continue;
            }
            let request = format!("{{\"seq\":{sequence}}}");
            let answer = link
                .ride_through(control, "reading a stored message", || {
                    client.request(api.clone(), request.clone().into())
                })
                .await?;
            let Ok(answer) = serde_json::from_slice::<serde_json::Value>(&answer.payload) else {
                continue;
            };
            let message = &answer["message"];
            if message["subject"].as_str() != Some(data.as_str()) {
                continue;
            }
            let engine = base64::engine::general_purpose::STANDARD;
            let bytes = |field: &str| {
                message[field]
                    .as_str()
                    .and_then(|b| engine.decode(b).ok())
                    .unwrap_or_default()
            };
            let Some(defect) = envelope::header_defect(&bytes("hdrs")) else {
                continue;
            };
            let reason = format!("the NATS client cannot read it: {defect}");
            self.stats.rejected.fetch_add(1, Relaxed);
            tracing::warn!(from = self.from, to = self.to, sequence, %reason, "message rejected, sent to dead-letter");
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(super::envelope::REASON_HEADER, reason.as_str());
            let payload = bytes("data");
            let dead = self.stored.subject(self.from, self.to, "dead");
            link.ride_through(control, "dead-lettering a message", || async {
                self.stored
                    .context
                    .send_publish(
                        dead.clone(),
                        PublishMessage::build()
                            .payload(payload.clone().into())
                            .headers(headers.clone()),
                    )
                    .await?
                    .await
            })
            .await?;
            link.ride_through(control, "deleting an unreadable message", || {
                self.stored.stream.delete_message(sequence)
            })
            .await?;
            self.done.insert(sequence);
        }
        Ok(())
    }

    /// After the edge ended: acknowledges what this process still holds as it finishes.
    async fn drain(&mut self) -> Result<(), String> {
        let link = self.link;
        let mut all_done = pin!(link.ledger.all_done());
        let mut nodes_ended = false;
        while !self.held.is_empty() {
            let keep_alive = self.keep_alive_every();
            tokio::select! {
                key = self.finished.recv() => {
                    let Some(key) = key else { break };
                    self.finished_one(key).await;
                }
                // Every node here has ended: whatever is still open was dealt with, unless
                // the run failed, and then the server delivers it again.
                () = &mut all_done, if !nodes_ended => {
                    nodes_ended = true;
                    if self.control.is_failing() {
                        break;
                    }
                    link.ledger.finish_all();
                }
                () = tokio::time::sleep(keep_alive) => self.keep_alive().await,
            }
        }
        // Acknowledgements are written in the background; the process may exit next.
        let client = link.client().await?;
        link.ride_through(self.control, "flushing acknowledgements", || client.flush())
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::edge;

    #[tokio::test]
    async fn fetches_grow_while_the_node_keeps_up_and_shrink_once_it_does_not() {
        let (into, _node) = edge::<u64>(2048);
        // Full fetches into an empty input: twice as many each time, up to the most.
        let mut fetch = FETCH;
        for _ in 0..6 {
            fetch = next_fetch(fetch, fetch, &into);
        }
        assert_eq!(fetch, FETCH_AT_MOST);
        // A fetch that came back short keeps the size; the stream had no more.
        assert_eq!(next_fetch(fetch, 3, &into), FETCH_AT_MOST);
        // The node falls behind: its input fills up, and fetches go back to the smallest.
        let items = (0..1900).map(|i| (Lineage::root(i), i)).collect();
        into.send(Batch {
            items,
            watermark: 0,
        })
        .await
        .unwrap();
        assert_eq!(next_fetch(fetch, fetch, &into), FETCH);
        // Never more than the input holds.
        let (small, _node) = edge::<u64>(100);
        assert_eq!(next_fetch(64, 64, &small), 100);
    }
}
