//! The builder's side of a distributed pipeline: which nodes run in this process, and a
//! bridge for every edge to or from another process.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::link::Link;
use super::plan::{Delivery, Plan};
use super::{core, epoch, jetstream as stored};
use crate::ledger::Ledger;
use crate::run::{Bridge, Finisher};
use crate::stats::RemoteEdgeStats;
use crate::wire::handoff;
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
    /// Every node of the graph, with how many processes host it.
    nodes: Vec<(String, usize)>,
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
        let link = Arc::new(Link::new(pipeline, &plan));
        Split {
            plan,
            link,
            inbound: false,
            bridges: Vec::new(),
            nodes: Vec::new(),
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
        zips: &[&str],
        stateless: &[&str],
        edges: &[(&'static str, &'static str)],
        after: &[(&'static str, &'static str)],
        dead_letter_edges: &[(&'static str, &'static str)],
    ) {
        self.nodes = nodes
            .iter()
            .map(|n| (n.to_string(), self.plan.replicas_of(n)))
            .collect();
        // A stateless stage hosted here whose every input comes from another process: once
        // this copy has finished its inputs, every copy has (see `jetstream`).
        let replaceable = stateless
            .iter()
            .filter(|node| self.hosts(node))
            .filter_map(|node| {
                let inputs: Vec<_> = edges
                    .iter()
                    .chain(dead_letter_edges)
                    .filter(|(_, to)| to == node)
                    .collect();
                let remote = !inputs.is_empty() && inputs.iter().all(|(from, _)| !self.hosts(from));
                remote.then(|| (node.to_string(), inputs.len()))
            })
            .collect();
        self.link.set_replaceable(replaceable);
        for zip in zips {
            if self.plan.replicas_of(zip) > 1 {
                // The parts of one tuple would go to different processes, and neither
                // could pair them.
                self.error.get_or_insert(format!(
                    "`{zip}` pairs the items of its inputs, so one process must host it: its replicas are {} (PIPELINE_REPLICAS); put the stages before it on more processes instead",
                    self.plan.replicas_of(zip)
                ));
            }
        }
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

    /// What this process does once its part of the run succeeded: says so, so that the
    /// run's epoch closes when every process has (see `epoch`). None when nothing here
    /// goes through the stream.
    pub(crate) fn finisher(&self) -> Option<Finisher> {
        if self.plan.delivery != Delivery::AtLeastOnce || self.bridges.is_empty() {
            return None;
        }
        let link = self.link.clone();
        let hosted: Vec<String> = self
            .nodes
            .iter()
            .filter(|(n, _)| self.hosts(n))
            .map(|(n, _)| n.clone())
            .collect();
        let nodes = self.nodes.clone();
        Some(Box::new(move |control| {
            Box::pin(async move {
                let Some(stored) = link.opened() else {
                    return Ok(());
                };
                if !link.may_end() {
                    return Ok(());
                }
                epoch::finish(&link, stored, &hosted, &nodes, &control).await
            })
        }))
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
                    Delivery::AtLeastOnce => {
                        // Watching from now: a root may finish before the edge's task starts.
                        let done = self.link.ledger.watch_roots();
                        // A copy's own watermark says nothing of what the other copies
                        // still send (at its end it says "everything").
                        let alone = self.plan.replicas_of(from) == 1;
                        Box::new(move |control| {
                            Box::pin(stored::publish_edge(
                                published, done, alone, link, from, to, counts, control,
                            ))
                        })
                    }
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
                    drop(handoff::take_offer(slot));
                }
                self.inbound = true;
                let producers = self.plan.replicas_of(from);
                let stats = Arc::new(RemoteEdgeStats::new(from, to, false));
                let (link, counts) = (self.link.clone(), stats.clone());
                // Only a process that receives everything of the edge can tell when a
                // root is done on it: with copies sharing it, another may get an item yet.
                let watermarks = self.plan.replicas_of(to) == 1;
                let bridge: Bridge = match self.plan.delivery {
                    Delivery::AtLeastOnce => Box::new(move |control| {
                        Box::pin(stored::consume_edge(
                            tx, link, from, to, producers, watermarks, counts, control,
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
