//! Running a built pipeline: one task per node, a supervisor that waits for all of them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::context::Context;
use crate::control::Control;
use crate::error::Failure;
use crate::exec::workers::run_with_workers;
use crate::exec::{
    ErrorPolicy, ErrorWiring, NodeCtx, NodeTask, SharedOffer, panic_message, place,
    run_fusable_sink, run_fusable_stage, run_sink, run_source, run_stage,
};
use crate::inlet::Inlet;
use crate::node::{Sink, SinkNode, Source, SourceNode, Stage, StageNode};
use crate::outlet::Outlet;
use crate::picture::{Drawing, Drawn};
use crate::report::{RemoteEdgeReport, RunError, RunReport};
use crate::spec::{FanIn, NodeConfig, NodeSpec, Role};
use crate::stats::{NodeStats, RemoteEdgeStats};
use crate::wire::handoff::Offer;

/// What a node's task needs besides its node, inlet and outlet.
type Launch = Box<dyn FnOnce(NodeCtx) -> NodeTask + Send>;
/// A task serving one edge to or from another process; it gets the run's control.
pub(crate) type Bridge = Box<dyn FnOnce(Arc<Control>) -> NodeTask + Send>;
/// Run once this process's part of a distributed run succeeded; Err fails the run.
pub(crate) type Finisher = Box<
    dyn FnOnce(Arc<Control>) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send,
>;

/// Collects nodes and edges; the `pipeline!` macro drives it.
#[derive(Default)]
pub struct Builder {
    nodes: Vec<(NodeSpec, Launch)>,
    edges: Vec<(&'static str, &'static str)>,
    dead_letter_edges: Vec<(&'static str, &'static str)>,
    after: Vec<(&'static str, &'static str)>,
    /// Withdraws a node's offer to run inline, by node name (see [`crate::fuse`]).
    declines: HashMap<&'static str, Box<dyn FnOnce() + Send>>,
    /// A node asks the run to follow every item to its end (a service's; see `service`).
    traced: bool,
    /// Which nodes run in this process, for a distributed pipeline (see [`crate::remote`]).
    #[cfg(feature = "nats")]
    split: Option<crate::remote::Split>,
}

/// The offer a node's input edges carry, if they do (see `Inlet::take_offer`).
fn take_offer<T: 'static, I: Inlet<T>>(inlet: &mut I) -> Option<Offer<T>> {
    inlet.take_offer().map(|offer| offer.0)
}

/// Reports what `inlet` and `outlet` join, renumber or copy to the run's ledger, when it
/// follows items (see [`crate::ledger`]).
fn track<T, U: Send + 'static, I: Inlet<T>>(ctx: &NodeCtx, inlet: &mut I, outlet: &mut Outlet<U>) {
    track_inlet(ctx, inlet);
    track_outlet(ctx, outlet);
}

fn track_inlet<T, I: Inlet<T>>(ctx: &NodeCtx, inlet: &mut I) {
    if let Some(ledger) = &ctx.ledger {
        inlet.track(ledger.clone());
    }
    inlet.watch_run(ctx.control.clone(), ctx.name);
}

fn track_outlet<U: Send + 'static>(ctx: &NodeCtx, outlet: &mut Outlet<U>) {
    if let Some(ledger) = &ctx.ledger {
        outlet.track(ledger.clone());
    }
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder for a `#![distributed("name")]` pipeline: it runs the nodes the current
    /// [`Plan`](crate::remote::Plan) hosts, and serves edges to other processes over NATS.
    #[cfg(feature = "nats")]
    pub fn distributed(pipeline: &'static str) -> Self {
        Builder {
            split: Some(crate::remote::Split::new(pipeline)),
            ..Self::default()
        }
    }

    /// The sender `from` uses for its edge to `to`; see [`crate::remote`].
    #[cfg(feature = "nats")]
    pub fn across<T>(
        &mut self,
        from: &'static str,
        to: &'static str,
        tx: crate::wire::EdgeSender<T>,
    ) -> crate::wire::EdgeSender<T>
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        match &mut self.split {
            Some(split) => split.across(from, to, tx),
            None => tx,
        }
    }

    /// Adds source `name`, sending on `outlet`.
    pub fn source<S: Source>(
        &mut self,
        name: &'static str,
        node: SourceNode<S>,
        mut outlet: Outlet<S::Out>,
        config: NodeConfig,
    ) {
        outlet.set_on_thread(S::BLOCKING);
        self.traced |= S::TRACED;
        let spec = self.spec(name, Role::Source, FanIn::Single, config, false);
        self.nodes.push((
            spec,
            Box::new(move |ctx: NodeCtx| {
                track_outlet(&ctx, &mut outlet);
                let stats = ctx.stats.clone();
                place(S::BLOCKING, &stats, run_source(node.0, outlet, ctx))
            }),
        ));
    }

    /// Adds stage `name`, taking from `inlet` and sending on `outlet`; `errors` carries out
    /// what `config` says about failed items.
    pub fn stage<S: Stage, I: Inlet<S::In>>(
        &mut self,
        name: &'static str,
        node: StageNode<S>,
        mut inlet: I,
        mut outlet: Outlet<S::Out>,
        config: NodeConfig,
        errors: ErrorWiring<S::In>,
    ) {
        let policy = ErrorPolicy::new(name, &config, errors);
        // Only a stage whose items need no per-item policy can run in another node's loop.
        let fusable = config.runs_plain(S::SYNC);
        let spec = self.spec(name, Role::Stage, inlet.fan_in(), config, !S::HAS_HOOKS);
        outlet.set_on_thread(S::BLOCKING);
        let launch: Launch = match take_offer(&mut inlet).filter(|_| fusable) {
            Some(offer) => {
                let offer = self.withdrawable(name, offer);
                Box::new(move |ctx| {
                    track(&ctx, &mut inlet, &mut outlet);
                    Box::pin(run_fusable_stage(node.0, inlet, outlet, ctx, policy, offer))
                })
            }
            None => Box::new(move |ctx: NodeCtx| {
                track(&ctx, &mut inlet, &mut outlet);
                let stats = ctx.stats.clone();
                place(
                    S::BLOCKING,
                    &stats,
                    run_stage(node.0, inlet, outlet, ctx, policy),
                )
            }),
        };
        self.nodes.push((spec, launch));
    }

    /// Adds sink `name`, taking from `inlet`.
    pub fn sink<S: Sink, I: Inlet<S::In>>(
        &mut self,
        name: &'static str,
        node: SinkNode<S>,
        mut inlet: I,
        config: NodeConfig,
    ) {
        self.traced |= S::TRACED;
        let spec = self.spec(name, Role::Sink, inlet.fan_in(), config, false);
        let launch: Launch = match take_offer(&mut inlet).filter(|_| S::SYNC) {
            Some(offer) => {
                let offer = self.withdrawable(name, offer);
                Box::new(move |ctx| {
                    track_inlet(&ctx, &mut inlet);
                    Box::pin(run_fusable_sink(node.0, inlet, ctx, offer))
                })
            }
            None => Box::new(move |ctx: NodeCtx| {
                track_inlet(&ctx, &mut inlet);
                let stats = ctx.stats.clone();
                place(S::BLOCKING, &stats, run_sink(node.0, inlet, ctx))
            }),
        };
        self.nodes.push((spec, launch));
    }

    /// A node's spec; records what it waits for (`after`).
    fn spec(
        &mut self,
        name: &'static str,
        role: Role,
        fan_in: FanIn,
        config: NodeConfig,
        stateless: bool,
    ) -> NodeSpec {
        for first in &config.after {
            self.after.push((name, crate::name::intern(first)));
        }
        NodeSpec {
            name,
            role,
            fan_in,
            config,
            stateless,
        }
    }

    /// Keeps a node's offer to run inline where `build` can still withdraw it.
    fn withdrawable<T: 'static>(&mut self, name: &'static str, offer: Offer<T>) -> SharedOffer<T> {
        let offer = Arc::new(std::sync::Mutex::new(Some(offer)));
        let withdraw = offer.clone();
        self.declines.insert(
            name,
            Box::new(move || drop(withdraw.lock().map(|mut o| o.take()))),
        );
        offer
    }

    /// A stage run by several workers, one per copy of the stage in `copies`.
    pub fn stage_with_workers<S: Stage, I: Inlet<S::In>>(
        &mut self,
        name: &'static str,
        copies: Vec<StageNode<S>>,
        mut inlet: I,
        mut outlet: Outlet<S::Out>,
        config: NodeConfig,
        errors: ErrorWiring<S::In>,
    ) {
        drop(take_offer(&mut inlet));
        outlet.set_on_thread(S::BLOCKING);
        assert!(
            !copies.is_empty(),
            "node `{name}`: workers(0) would never process anything"
        );
        let policy = ErrorPolicy::new(name, &config, errors);
        let ordered = config.ordered;
        let config = NodeConfig {
            workers: Some(copies.len()),
            ..config
        };
        let spec = self.spec(name, Role::Stage, inlet.fan_in(), config, !S::HAS_HOOKS);
        let copies: Vec<S> = copies.into_iter().map(|node| node.0).collect();
        self.nodes.push((
            spec,
            // The workers run the node's loop on threads of their own if they block; the
            // node's task only starts them and waits.
            Box::new(move |ctx| {
                track(&ctx, &mut inlet, &mut outlet);
                Box::pin(run_with_workers(
                    copies, ordered, inlet, outlet, ctx, policy,
                ))
            }),
        ));
    }

    /// Records the edge carrying `from`'s failed items to its dead-letter node.
    pub fn dead_letter_edge(&mut self, from: &'static str, to: &'static str) {
        self.dead_letter_edges.push((from, to));
    }

    /// Records an edge for the report (the wiring itself is already done).
    pub fn edge(&mut self, from: &'static str, to: &'static str) {
        self.edges.push((from, to));
    }

    pub fn build(mut self) -> Pipeline {
        // A node that waits for another to finish cannot run inside the node feeding it: that
        // node would wait for it in turn.
        for (waiting, _) in &self.after {
            if let Some(withdraw) = self.declines.remove(waiting) {
                withdraw();
            }
        }
        let mut pipeline = Pipeline {
            nodes: self.nodes,
            edges: self.edges,
            dead_letter_edges: self.dead_letter_edges,
            after: self.after,
            context: Context::default(),
            bridges: Vec::new(),
            plan_error: None,
            unrunnable: None,
            ledger: None,
            follows_items: false,
            finisher: None,
        };
        #[cfg(feature = "nats")]
        if let Some(mut split) = self.split {
            let names: Vec<&str> = pipeline.nodes.iter().map(|(spec, _)| spec.name).collect();
            let zips: Vec<&str> = pipeline
                .nodes
                .iter()
                .filter(|(spec, _)| spec.fan_in == FanIn::Zip)
                .map(|(spec, _)| spec.name)
                .collect();
            let stateless: Vec<&str> = pipeline
                .nodes
                .iter()
                .filter(|(spec, _)| spec.stateless)
                .map(|(spec, _)| spec.name)
                .collect();
            split.check(
                &names,
                &zips,
                &stateless,
                &pipeline.edges,
                &pipeline.after,
                &pipeline.dead_letter_edges,
            );
            // Nodes hosted elsewhere do not run here; dropping them closes their edges.
            pipeline.nodes.retain(|(spec, _)| split.hosts(spec.name));
            let touches_here =
                |(from, to): &(&'static str, &'static str)| split.hosts(from) || split.hosts(to);
            pipeline.edges.retain(touches_here);
            pipeline.dead_letter_edges.retain(touches_here);
            pipeline.ledger = split.ledger();
            pipeline.finisher = split.finisher();
            pipeline.bridges = std::mem::take(&mut split.bridges);
            pipeline.plan_error = split.error.take();
        }
        let loops = pipeline
            .nodes
            .iter()
            .any(|(spec, _)| spec.fan_in == FanIn::Loop);
        // A node running inside another's loop tells the ledger where its items end as
        // it does in a loop of its own (distributed runs rely on it too).
        if self.traced {
            pipeline.follow_items();
        } else if loops {
            pipeline.follow_loops();
        }
        pipeline
    }
}

/// A wired pipeline, ready to run. Nothing runs until `run`, `spawn` or `run_blocking`.
pub struct Pipeline {
    nodes: Vec<(NodeSpec, Launch)>,
    /// Edges to and from nodes in other processes (distributed pipelines only).
    bridges: Vec<(Arc<RemoteEdgeStats>, Bridge)>,
    /// Why this process's part of a distributed pipeline cannot run.
    plan_error: Option<String>,
    /// Items taken from other processes, acknowledged once finished here.
    ledger: Option<Arc<crate::ledger::Ledger>>,
    /// The ledger follows this process's own items (a service's requests), which are never
    /// acknowledged to anyone: what is open at the end never finished.
    follows_items: bool,
    /// Why the graph cannot run, found when it was built.
    unrunnable: Option<String>,
    /// Says this process's part of a distributed run is done, once it succeeded.
    finisher: Option<Finisher>,
    edges: Vec<(&'static str, &'static str)>,
    dead_letter_edges: Vec<(&'static str, &'static str)>,
    /// `(waiting, first)`: `waiting` starts once `first` has finished.
    after: Vec<(&'static str, &'static str)>,
    context: Context,
}

impl Pipeline {
    /// A node asks the run to follow every item to its end (a service's requests): the
    /// ledger, which a distributed run keeps for items from other processes, keeps this
    /// process's items. Their lineage roots must be one source's numbering, unbroken.
    fn follow_items(&mut self) {
        let sources: Vec<&str> = self
            .nodes
            .iter()
            .filter(|(spec, _)| spec.role == Role::Source)
            .map(|(spec, _)| spec.name)
            .collect();
        let merges: Vec<&str> = self
            .nodes
            .iter()
            .filter(|(spec, _)| spec.fan_in == FanIn::Merge)
            .map(|(spec, _)| spec.name)
            .collect();
        if let Some((entry, _)) = self
            .nodes
            .iter()
            .find(|(spec, _)| spec.fan_in == FanIn::Loop)
        {
            self.unrunnable = Some(format!(
                "`{}` is a loop's entry, where items start afresh each time round, so replies cannot be traced through it to their requests: run the loop in a pipeline of its own",
                entry.name
            ));
        } else if sources.len() > 1 {
            self.unrunnable = Some(format!(
                "a service's requests must be its only source, and this graph has {} sources ({}): feed the others' items through the service, or run them in a pipeline of their own",
                sources.len(),
                sources.join(", ")
            ));
        } else if let Some(merge) = merges.first() {
            self.unrunnable = Some(format!(
                "`{merge}` merges its inputs, which numbers their items afresh, so replies cannot be traced through it to their requests: zip the inputs instead, or take the merge out of the service's graph"
            ));
        }
        if self.ledger.is_some() {
            self.unrunnable = Some(
                "a service cannot be split over processes (`#![distributed]`) yet".to_string(),
            );
        }
        self.ledger = Some(Arc::new(crate::ledger::Ledger::default()));
        self.follows_items = true;
    }

    /// A graph with a loop follows its items, so that a loop's entry can tell when
    /// nothing is left in the loop (see `inlet::LoopInlet`).
    fn follow_loops(&mut self) {
        if self.ledger.is_some() {
            self.unrunnable = Some(
                "a graph with a loop cannot be split over processes (`#![distributed]`) yet"
                    .to_string(),
            );
            return;
        }
        self.ledger = Some(Arc::new(crate::ledger::Ledger::default()));
        self.follows_items = true;
    }

    /// Shares `value` with every node: stages read it in their `setup` with
    /// `context.require::<C>()`, and `stage::map_with` hands it to a closure.
    pub fn with_context<C: Send + Sync + 'static>(mut self, value: C) -> Self {
        self.context = Context::new(value);
        self
    }

    /// The declared graph as a Mermaid flowchart (before any run).
    pub fn mermaid(&self) -> String {
        self.drawing().mermaid()
    }

    /// The declared graph in Graphviz DOT (before any run).
    pub fn dot(&self) -> String {
        self.drawing().dot()
    }

    pub(crate) fn drawing(&self) -> Drawing<'_> {
        let nodes = self
            .nodes
            .iter()
            .map(|(spec, _)| {
                let details = if spec.config.worker_count() > 1 {
                    vec![format!("{} workers", spec.config.worker_count())]
                } else {
                    Vec::new()
                };
                Drawn {
                    name: spec.name.to_string(),
                    role: spec.role,
                    fan_in: spec.fan_in,
                    details,
                    highlighted: false,
                    utilisation: None,
                }
            })
            .collect();
        Drawing {
            nodes,
            edges: self.edges.clone(),
            dead_letter_edges: self.dead_letter_edges.clone(),
        }
    }

    /// Node names in declaration order.
    pub fn node_names(&self) -> Vec<&'static str> {
        self.nodes.iter().map(|(spec, _)| spec.name).collect()
    }

    /// Edges `(from, to)` in declaration order.
    pub fn edges(&self) -> &[(&'static str, &'static str)] {
        &self.edges
    }

    /// Runs to completion: every source exhausted and every item drained.
    pub async fn run(self) -> Result<RunReport, RunError> {
        self.spawn().wait().await
    }

    /// Runs on a runtime of its own, for programs without an async `main`.
    /// Panics if called from inside an async runtime (use `run().await` there).
    pub fn run_blocking(self) -> Result<RunReport, RunError> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("failed to start the tokio runtime")
            .block_on(self.run())
    }

    /// Starts the run in the background. Must be called within a tokio runtime.
    pub fn spawn(self) -> RunHandle {
        let control = Arc::new(Control::new());
        let (abort_tx, abort_rx) = watch::channel(false);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        let mut nodes = Vec::with_capacity(self.nodes.len());
        // A node others wait for says when it has finished.
        let finished: HashMap<&str, watch::Sender<bool>> = self
            .after
            .iter()
            .map(|&(_, first)| (first, watch::channel(false).0))
            .collect();
        let refusal = match (self.plan_error, self.unrunnable) {
            (Some(error), _) => Some(Failure::Remote {
                edge: "the distribution plan".into(),
                error,
            }),
            (None, Some(reason)) => Some(Failure::Unrunnable { reason }),
            (None, None) => None,
        };
        let (launches, bridges) = match refusal {
            Some(failure) => {
                control.fail(failure);
                // Nothing runs: the report says why.
                (Vec::new(), Vec::new())
            }
            None => (self.nodes, self.bridges),
        };
        if let Some(ledger) = &self.ledger {
            let publishing = bridges.iter().filter(|(edge, _)| edge.outbound).count();
            ledger.starting(launches.len() + publishing);
        }
        for (spec, launch) in launches {
            let stats = Arc::new(NodeStats::new(spec.name, spec.config.worker_count()));
            let ctx = NodeCtx {
                name: spec.name,
                stats: stats.clone(),
                control: control.clone(),
                context: self.context.clone(),
                config: Arc::new(spec.config.clone()),
                ledger: self.ledger.clone(),
            };
            let waits: Vec<watch::Receiver<bool>> = self
                .after
                .iter()
                .filter(|(waiting, _)| *waiting == spec.name)
                .filter_map(|(_, first)| finished.get(first).map(watch::Sender::subscribe))
                .collect();
            let done = finished.get(spec.name).cloned();
            let ledger = self.ledger.clone();
            let clock = stats.clone();
            // Every event of a node (failed items, restarts) is inside its span.
            let span = tracing::info_span!("node", name = spec.name);
            tasks.spawn(tracing::Instrument::instrument(
                async move {
                    for mut first in waits {
                        // Err: the sender is gone, which only happens once the run is over.
                        let _ = first.wait_for(|finished| *finished).await;
                    }
                    clock.start();
                    launch(ctx).await;
                    clock.finish();
                    if let Some(done) = done {
                        done.send_replace(true);
                    }
                    if let Some(ledger) = ledger {
                        ledger.node_done();
                    }
                },
                span,
            ));
            nodes.push((spec, stats));
        }
        let mut remote = Vec::with_capacity(bridges.len());
        for (stats, bridge) in bridges {
            tasks.spawn(bridge(control.clone()));
            remote.push(stats);
        }
        in_graph_order(&mut nodes, &self.edges, &self.dead_letter_edges);
        let snapshot = Arc::new(Snapshot {
            nodes,
            remote,
            edges: self.edges,
            dead_letter_edges: self.dead_letter_edges,
            started,
            over: std::sync::atomic::AtomicBool::new(false),
        });
        let done = tokio::spawn(supervise(
            tasks,
            control.clone(),
            abort_rx,
            snapshot.clone(),
            self.finisher,
            self.ledger.clone().filter(|_| self.follows_items),
        ));
        RunHandle {
            control,
            abort_tx,
            snapshot,
            done,
        }
    }
}

/// Orders the nodes as the data flows (each after the nodes feeding it), keeping the
/// order they were declared in among nodes that could go either way. Nodes bound before
/// the macro are registered last, yet a source reads best first.
fn in_graph_order<T>(
    nodes: &mut Vec<(NodeSpec, T)>,
    edges: &[(&'static str, &'static str)],
    dead_letter_edges: &[(&'static str, &'static str)],
) {
    let all_edges: Vec<&(&str, &str)> = edges.iter().chain(dead_letter_edges).collect();
    let mut waiting_on: Vec<usize> = nodes
        .iter()
        .map(|(spec, _)| all_edges.iter().filter(|(_, to)| *to == spec.name).count())
        .collect();
    let mut order = Vec::with_capacity(nodes.len());
    let mut placed = vec![false; nodes.len()];
    while order.len() < nodes.len() {
        // The first node declared whose inputs are all placed; in a loop (which has no
        // such node), the first one left.
        let next = (0..nodes.len())
            .find(|&i| !placed[i] && waiting_on[i] == 0)
            .or_else(|| (0..nodes.len()).find(|&i| !placed[i]))
            .expect("a node is left");
        placed[next] = true;
        order.push(next);
        let name = nodes[next].0.name;
        for (from, to) in &all_edges {
            if *from == name
                && let Some(i) = nodes.iter().position(|(spec, _)| spec.name == *to)
            {
                waiting_on[i] = waiting_on[i].saturating_sub(1);
            }
        }
    }
    let mut taken: Vec<Option<(NodeSpec, T)>> = nodes.drain(..).map(Some).collect();
    nodes.extend(order.into_iter().filter_map(|i| taken[i].take()));
}

struct Snapshot {
    nodes: Vec<(NodeSpec, Arc<NodeStats>)>,
    remote: Vec<Arc<RemoteEdgeStats>>,
    edges: Vec<(&'static str, &'static str)>,
    dead_letter_edges: Vec<(&'static str, &'static str)>,
    started: Instant,
    /// Set once every node task has ended or was cancelled (an aborted node never says it
    /// finished).
    over: std::sync::atomic::AtomicBool,
}

impl Snapshot {
    fn report(&self, failure: Option<Failure>) -> RunReport {
        let outputs = |name| self.edges.iter().filter(|(from, _)| *from == name).count();
        // A dead-letter edge is an input of its target, but not an output of its source:
        // the source's items do not fan out to it, only its failures go there.
        let inputs = |name| {
            self.edges
                .iter()
                .chain(&self.dead_letter_edges)
                .filter(|(_, to)| *to == name)
                .count()
        };
        let nodes = self
            .nodes
            .iter()
            .map(|(spec, stats)| stats.report(spec, inputs(spec.name), outputs(spec.name)))
            .collect();
        let remote = self
            .remote
            .iter()
            .map(|r| RemoteEdgeReport {
                from: r.from.to_string(),
                to: r.to.to_string(),
                outbound: r.outbound,
                items: r.items.load(std::sync::atomic::Ordering::Relaxed),
                redelivered: r.redelivered.load(std::sync::atomic::Ordering::Relaxed),
                rejected: r.rejected.load(std::sync::atomic::Ordering::Relaxed),
                failed: r.failed.load(std::sync::atomic::Ordering::Relaxed),
                pending: r.pending.load(std::sync::atomic::Ordering::Relaxed),
            })
            .collect();
        RunReport {
            nodes,
            remote,
            edges: owned(&self.edges),
            dead_letter_edges: owned(&self.dead_letter_edges),
            elapsed: self.started.elapsed(),
            failure,
        }
    }
}

async fn supervise(
    mut tasks: JoinSet<()>,
    control: Arc<Control>,
    mut abort: watch::Receiver<bool>,
    snapshot: Arc<Snapshot>,
    finisher: Option<Finisher>,
    followed: Option<Arc<crate::ledger::Ledger>>,
) -> Result<RunReport, RunError> {
    let mut aborted = false;
    loop {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(())) => {}
                // Runners catch user panics; a panic here is the runtime's own.
                Some(Err(e)) if e.is_panic() => control.fail(Failure::Internal { message: panic_message(e.into_panic()) }),
                Some(Err(_)) => {}
            },
            _ = abort.wait_for(|a| *a), if !aborted => {
                aborted = true;
                control.fail(Failure::Aborted);
                tasks.abort_all();
            }
        }
    }
    if let Some(ledger) = followed {
        // Every node has ended: what is still open will never finish.
        ledger.abandon_all();
    }
    snapshot
        .over
        .store(true, std::sync::atomic::Ordering::Release);
    if let Some(finish) = finisher
        && !control.is_failing()
        && let Err(error) = finish(control.clone()).await
    {
        control.fail(Failure::Remote {
            edge: "the run's completion record".into(),
            error,
        });
    }
    let report = snapshot.report(control.take_failure());
    match report.failure.clone() {
        None => Ok(report),
        Some(failure) => Err(RunError {
            failure,
            report: Box::new(report),
        }),
    }
}

/// `pipeline.await` runs it, as `pipeline.run().await` does.
impl std::future::IntoFuture for Pipeline {
    type Output = Result<RunReport, RunError>;
    type IntoFuture = std::pin::Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.run())
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let nodes: Vec<&str> = self.nodes.iter().map(|(spec, _)| spec.name).collect();
        f.debug_struct("Pipeline")
            .field("nodes", &nodes)
            .field("edges", &self.edges)
            .field("dead_letter_edges", &self.dead_letter_edges)
            .field("remote_edges", &self.bridges.len())
            .finish_non_exhaustive()
    }
}

/// Reads a running pipeline's counts; see [`RunHandle::progress`].
#[derive(Clone)]
pub struct Progress {
    snapshot: Arc<Snapshot>,
}

impl Progress {
    /// The counts so far.
    pub fn snapshot(&self) -> RunReport {
        self.snapshot.report(None)
    }

    /// True once every node has finished, or the run was aborted.
    pub fn is_finished(&self) -> bool {
        self.snapshot
            .over
            .load(std::sync::atomic::Ordering::Acquire)
            || self
                .snapshot
                .nodes
                .iter()
                .all(|(_, stats)| stats.is_finished())
    }

    /// One line saying how far the run is: items in, delivered, failed, the rate, how far
    /// along and how long to go when every source knows its length, and the busiest node.
    pub fn line(&self) -> String {
        let report = self.snapshot();
        let a = report.accounting();
        let rate = format!(
            "; {} items/s",
            crate::table::rate(a.source_items, report.elapsed)
        );
        let sources = self
            .snapshot
            .nodes
            .iter()
            .filter(|(spec, _)| spec.role == Role::Source);
        let expected: Option<u64> = sources.map(|(_, stats)| stats.expected()).sum();
        let eta = match expected {
            Some(total) if total > 0 && a.source_items > 0 && a.entered() > 0 => {
                // All the work there will be, in items, estimated from what each source
                // item has become so far (copies, flat-map extras); what has ended of it.
                let work = a.entered() as f64 * total as f64 / a.source_items as f64;
                let done = (a.ended() as f64 / work).min(1.0);
                let left = if done > 0.0 {
                    crate::table::short(report.elapsed.mul_f64((1.0 - done) / done))
                } else {
                    "?".to_string()
                };
                format!("; {:.0}% of {total}, {left} to go", done * 100.0)
            }
            _ => String::new(),
        };
        let busiest = report
            .nodes
            .iter()
            .max_by(|x, y| {
                x.utilisation(report.elapsed)
                    .total_cmp(&y.utilisation(report.elapsed))
            })
            .map(|n| {
                format!(
                    ", busiest `{}` {:.0}%",
                    n.name,
                    n.utilisation(report.elapsed) * 100.0
                )
            })
            .unwrap_or_default();
        format!(
            "{:.1?}: {} in, {} delivered, {} filtered, {} failed{rate}{eta}{busiest}",
            report.elapsed, a.source_items, a.delivered, a.filtered, a.failed
        )
    }
}

/// A running pipeline.
///
/// Dropping the handle aborts the run, as [`abort`](Self::abort) does; so does dropping
/// the future of [`Pipeline::run`] (under `tokio::time::timeout`, say) before it is ready.
/// To let a run go on in the background, keep the handle, or move it into a task that
/// waits for it.
pub struct RunHandle {
    control: Arc<Control>,
    abort_tx: watch::Sender<bool>,
    snapshot: Arc<Snapshot>,
    done: tokio::task::JoinHandle<Result<RunReport, RunError>>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("stopping", &self.control.is_stopping())
            .field("finished", &self.done.is_finished())
            .finish_non_exhaustive()
    }
}

impl RunHandle {
    /// Graceful stop: sources stop producing, everything already produced drains through
    /// the graph. `wait` then returns the report as usual.
    pub fn shutdown(&self) {
        self.control.stop();
    }

    /// A handle that can [`shutdown`](Stopper::shutdown) the run from elsewhere (a signal
    /// handler, an HTTP front), while this handle waits for the report.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            control: self.control.clone(),
        }
    }

    /// Immediate stop: every node task is cancelled; items in flight are lost, and the
    /// report says so (it does not balance).
    pub fn abort(&self) {
        self.abort_tx.send_replace(true);
    }

    /// Calls [`shutdown`](Self::shutdown) when the process gets Ctrl-C.
    pub fn shutdown_on_ctrl_c(&self) {
        let control = self.control.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                tracing::info!("Ctrl-C: shutting down the pipeline gracefully");
                control.stop();
            }
        });
    }

    /// Prints [`Progress::line`] to standard error every `every` until the run ends: on a
    /// terminal, on one line that is rewritten; otherwise (a log file, a pipe), one plain
    /// line each time, without control characters.
    pub fn show_progress(&self, every: Duration) {
        let progress = self.progress();
        tokio::spawn(async move {
            use std::io::{IsTerminal, Write};
            let terminal = std::io::stderr().is_terminal();
            loop {
                tokio::time::sleep(every).await;
                let mut err = std::io::stderr().lock();
                let line = progress.line();
                let _ = if terminal {
                    write!(err, "\r{line}\x1b[K")
                } else {
                    writeln!(err, "{line}")
                };
                let _ = err.flush();
                if progress.is_finished() {
                    if terminal {
                        let _ = writeln!(err);
                    }
                    break;
                }
            }
        });
    }

    /// The counts so far, while the run goes on.
    pub fn snapshot(&self) -> RunReport {
        self.snapshot.report(None)
    }

    /// A handle that reads the counts from elsewhere (another task, a progress line), even
    /// after this handle was consumed by `wait`.
    pub fn progress(&self) -> Progress {
        Progress {
            snapshot: self.snapshot.clone(),
        }
    }

    /// Waits for the end of the run. Dropping this future before it is ready drops the
    /// handle, which aborts the run.
    pub async fn wait(mut self) -> Result<RunReport, RunError> {
        match (&mut self.done).await {
            Ok(result) => result,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// Shuts a run down from anywhere; see [`RunHandle::stopper`].
#[derive(Clone)]
pub struct Stopper {
    control: Arc<Control>,
}

impl Stopper {
    /// As [`RunHandle::shutdown`]: sources stop, what is in flight drains.
    pub fn shutdown(&self) {
        self.control.stop();
    }

    /// True once the run was asked to stop (or failed).
    pub fn is_stopping(&self) -> bool {
        self.control.is_stopping()
    }
}

impl std::fmt::Debug for Stopper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stopper")
            .field("stopping", &self.control.is_stopping())
            .finish()
    }
}

/// `handle.await` is [`handle.wait()`](RunHandle::wait).
impl std::future::IntoFuture for RunHandle {
    type Output = Result<RunReport, RunError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

impl Drop for RunHandle {
    /// A run nobody can wait for or stop any more is aborted, as by [`RunHandle::abort`].
    fn drop(&mut self) {
        if !self.done.is_finished() {
            // At once, not only through the supervisor: at the end of `main` the runtime
            // may cancel it before it gets to run, and then wait forever for a source
            // that runs on a thread of its own.
            self.control.fail(Failure::Aborted);
            self.abort_tx.send_replace(true);
        }
    }
}

fn owned(edges: &[(&str, &str)]) -> Vec<(String, String)> {
    edges
        .iter()
        .map(|(from, to)| (from.to_string(), to.to_string()))
        .collect()
}
