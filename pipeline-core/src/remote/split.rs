//! The builder's side of a distributed pipeline: which nodes run in this process, and a
//! bridge for every edge to or from another process; and the process's connection to NATS.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, Context, stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use super::envelope::{REASON_HEADER, Rejected};
use super::plan::{Delivery, Plan};
use super::{core, jetstream as stored};
use crate::control::Control;
use crate::fuse;
use crate::ledger::Ledger;
use crate::report::Failure;
use crate::run::Bridge;
use crate::stats::RemoteEdgeStats;
use crate::wire::{EdgeSender, edge};

/// The distributed part of a pipeline's builder: which nodes run here, and a bridge for
/// every edge that crosses to another process.
pub(crate) struct Split {
    plan: Plan,
    link: Arc<Link>,
    /// Whether some edge brings items from another process: only then do nodes report to
    /// the ledger.
    inbound: bool,
    pub bridges: Vec<(Arc<RemoteEdgeStats>, Bridge)>,
    /// Set when the plan cannot work; the run then fails at once, saying why.
    pub error: Option<String>,
}

impl Split {
    pub(crate) fn new(pipeline: &'static str) -> Self {
        let (plan, mut error) = match Plan::current() {
            Ok(plan) => (plan, None),
            Err(e) => (Plan::local(), Some(e.0)),
        };
        for (what, value) in [
            ("the run name", &plan.run),
            ("the instance name", &plan.instance),
        ] {
            if !is_token(value) {
                error.get_or_insert(format!(
                    "{what} `{value}` cannot be part of a NATS subject: use letters, digits, `-` and `_`"
                ));
            }
        }
        let link = Arc::new(Link {
            url: plan.url.clone(),
            stream: format!("PIPELINE_{pipeline}"),
            subjects: format!("pipeline.{pipeline}.>"),
            prefix: format!("pipeline.{pipeline}.{}", plan.run),
            live_prefix: format!("pipeline-live.{pipeline}.{}", plan.run),
            pipeline,
            run: plan.run.clone(),
            instance: plan.instance.clone(),
            ack_wait: plan.ack_wait,
            client: OnceCell::new(),
            context: OnceCell::new(),
            ledger: Arc::default(),
        });
        Split {
            plan,
            link,
            inbound: false,
            bridges: Vec::new(),
            error,
        }
    }

    /// The ledger this process's nodes report to, if it takes items from other processes.
    pub(crate) fn ledger(&self) -> Option<Arc<Ledger>> {
        (self.inbound && self.plan.delivery == Delivery::AtLeastOnce)
            .then(|| self.link.ledger.clone())
    }

    pub(crate) fn hosts(&self, node: &str) -> bool {
        self.plan.hosts(node)
    }

    /// Checks the plan against the whole graph, once every node is known.
    pub(crate) fn check(
        &mut self,
        nodes: &[&str],
        after: &[(&'static str, &'static str)],
        dead_letter_edges: &[(&'static str, &'static str)],
    ) {
        let unknown = self.plan.unknown_nodes(nodes);
        if !unknown.is_empty() {
            self.error.get_or_insert(format!(
                "the plan names nodes the graph does not have: {}; the graph's nodes are {}",
                unknown.join(", "),
                nodes.join(", ")
            ));
        }
        for (stage, dead_letter) in dead_letter_edges {
            if self.hosts(stage) != self.hosts(dead_letter) {
                self.error.get_or_insert(format!(
                    "`{stage}` sends its failed items to `{dead_letter}`, so both must run in the same process"
                ));
            }
        }
        for (waiting, first) in after {
            if self.hosts(waiting) != self.hosts(first) {
                self.error.get_or_insert(format!(
                    "`{waiting}` runs after `{first}`, so both must run in the same process"
                ));
            }
        }
    }

    /// The sender the node `from` should use for its edge to `to`: the edge itself when
    /// both run here, a publisher when only `from` does; when only `to` runs here, its
    /// input is fed from NATS and `from` (not hosted) gets a sender to nowhere.
    pub(crate) fn across<T>(
        &mut self,
        from: &'static str,
        to: &'static str,
        tx: EdgeSender<T>,
    ) -> EdgeSender<T>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
    {
        match (self.hosts(from), self.hosts(to)) {
            (true, false) => {
                let (publish, published) = edge(tx.capacity());
                let stats = Arc::new(RemoteEdgeStats::new(from, to, true));
                let (link, counts) = (self.link.clone(), stats.clone());
                let bridge: Bridge = match self.plan.delivery {
                    Delivery::AtLeastOnce => Box::new(move |control| {
                        Box::pin(stored::publish_edge(
                            published, link, from, to, counts, control,
                        ))
                    }),
                    Delivery::AtMostOnce => {
                        let consumers = self.plan.replicas_of(to);
                        Box::new(move |control| {
                            Box::pin(core::publish_edge(
                                published, link, from, to, consumers, counts, control,
                            ))
                        })
                    }
                };
                self.bridges.push((stats, bridge));
                publish
            }
            (false, true) => {
                // The node behind this edge cannot run inside a bridge: decline its offer.
                if let Some(slot) = tx.offer_slot() {
                    drop(fuse::take_offer(slot));
                }
                self.inbound = true;
                let producers = self.plan.replicas_of(from);
                let stats = Arc::new(RemoteEdgeStats::new(from, to, false));
                let (link, counts) = (self.link.clone(), stats.clone());
                let bridge: Bridge = match self.plan.delivery {
                    Delivery::AtLeastOnce => Box::new(move |control| {
                        Box::pin(stored::consume_edge(
                            tx, link, from, to, producers, counts, control,
                        ))
                    }),
                    Delivery::AtMostOnce => {
                        let receivers = self.plan.replicas_of(to);
                        Box::new(move |control| {
                            Box::pin(core::consume_edge(
                                tx, link, from, to, producers, receivers, counts, control,
                            ))
                        })
                    }
                };
                self.bridges.push((stats, bridge));
                edge(1).0
            }
            _ => tx,
        }
    }
}

/// Letters, digits, `-` and `_`: safe in subjects, stream and consumer names.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// One process's connection to NATS, opened by the first edge that needs it.
pub(crate) struct Link {
    url: String,
    pub stream: String,
    subjects: String,
    /// `pipeline.<name>.<run>`: every stored subject of this run starts with it.
    prefix: String,
    /// The same for at-most-once edges, outside the stream's subjects so nothing stores them.
    live_prefix: String,
    pub pipeline: &'static str,
    pub run: String,
    pub instance: String,
    pub ack_wait: Duration,
    client: OnceCell<async_nats::Client>,
    context: OnceCell<Context>,
    pub ledger: Arc<Ledger>,
}

impl Link {
    pub(crate) async fn client(&self) -> Result<&async_nats::Client, String> {
        self.client
            .get_or_try_init(|| async {
                async_nats::connect(&self.url)
                    .await
                    .map_err(|e| format!("cannot connect to NATS at {}: {e}", self.url))
            })
            .await
    }

    /// JetStream, with the pipeline's stream created if it was not there yet.
    pub(crate) async fn context(&self) -> Result<&Context, String> {
        let client = self.client().await?;
        self.context
            .get_or_try_init(|| async {
                let context = jetstream::new(client.clone());
                let config = stream::Config {
                    name: self.stream.clone(),
                    subjects: vec![self.subjects.clone()],
                    // Runs leave their items behind for a day, to look into.
                    max_age: Duration::from_secs(24 * 3600),
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                };
                // Processes starting together race to create the stream: one creates it,
                // the others find it on a second try.
                retry_startup(|| context.get_or_create_stream(config.clone()))
                    .await
                    .map_err(|e| {
                        format!(
                            "cannot create or open the JetStream stream `{}` at {} (is the server started with `-js`?): {e}",
                            self.stream, self.url
                        )
                    })?;
                Ok(context)
            })
            .await
    }

    /// A stored subject of edge `from => to`.
    pub(crate) fn subject(&self, from: &str, to: &str, what: &str) -> String {
        format!("{}.{from}.{to}.{what}", self.prefix)
    }

    /// An at-most-once subject of edge `from => to`.
    pub(crate) fn live_subject(&self, from: &str, to: &str, what: &str) -> String {
        format!("{}.{from}.{to}.{what}", self.live_prefix)
    }
}

/// Counts and logs a message that is not this edge's item; the headers to dead-letter it
/// with, which say why.
pub(crate) fn rejection(
    rejected: &Rejected,
    headers: Option<&async_nats::HeaderMap>,
    from: &str,
    to: &str,
    stats: &RemoteEdgeStats,
) -> async_nats::HeaderMap {
    stats
        .rejected
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let reason = rejected.to_string();
    tracing::warn!(from, to, %reason, "message rejected, sent to dead-letter");
    let mut headers = headers.cloned().unwrap_or_default();
    headers.insert(REASON_HEADER, reason.as_str());
    headers
}

/// Stops the run when an edge to or from another process could not be served.
pub(crate) fn fail_on_error(result: Result<(), String>, from: &str, to: &str, control: &Control) {
    if let Err(error) = result {
        tracing::error!(from, to, %error, "edge across processes failed");
        control.fail(Failure::Remote {
            edge: format!("edge `{from} => {to}` across processes"),
            error,
        });
    }
}

/// Retries a setup step that processes starting together may race on (creating the stream
/// or a shared consumer): a few tries, a moment apart.
pub(crate) async fn retry_startup<F, Fut, T, E>(mut attempt: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(_) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50 * tries)).await;
            }
            Err(error) => return Err(error),
        }
    }
}
