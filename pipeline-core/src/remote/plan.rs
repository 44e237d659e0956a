//! Which nodes a process hosts, and where the others are.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// How one process takes part in a distributed pipeline.
///
/// Built in code, or read from the environment by [`Plan::from_env`]:
///
/// | variable | meaning | default |
/// |---|---|---|
/// | `PIPELINE_NODES` | the nodes this process hosts, comma-separated | (unset: all nodes, no NATS) |
/// | `PIPELINE_NATS_URL` | the NATS server | `nats://127.0.0.1:4222` |
/// | `PIPELINE_RUN` | names this run: subjects and consumers are per run | `default` |
/// | `PIPELINE_INSTANCE` | this process's name among those hosting the same nodes | host name and process id |
/// | `PIPELINE_REPLICAS` | processes hosting a node, e.g. `rev=2,out=1` | 1 per node |
/// | `PIPELINE_ACK_WAIT_MS` | how long an unacknowledged item waits before redelivery | 30 000 |
/// | `PIPELINE_DELIVERY` | `at-least-once` (JetStream) or `at-most-once` (core NATS) | `at-least-once` |
/// | `PIPELINE_RETRY_FOR_S` | how long a NATS operation is retried through an outage before the process gives up | 120 |
/// | `PIPELINE_DUPLICATE_WINDOW_S` | how long the stream remembers a message id, to store an item published again once (set when the stream is created) | 120 |
/// | `PIPELINE_NATS_CA` | a PEM file of the CA that signed the server's certificate: TLS is then required | (system roots, TLS if the server asks) |
/// | `PIPELINE_NATS_CERT`, `PIPELINE_NATS_KEY` | PEM files of this process's client certificate and key, for servers that verify clients | none |
/// | `PIPELINE_NATS_CREDS` | a `.creds` file (user JWT and NKey seed) | none |
/// | `PIPELINE_NATS_NKEY` | a file holding an NKey seed (`SU…`) | none |
///
/// A user and password, or a token, go in the URL: `nats://user:pass@host:4222`,
/// `nats://token@host:4222`. Secrets are never printed: URLs show as `nats://***@host`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub(crate) url: String,
    /// `None`: every node, in this process.
    pub(crate) hosted: Option<HashSet<String>>,
    pub(crate) run: String,
    pub(crate) instance: String,
    pub(crate) replicas: HashMap<String, usize>,
    pub(crate) ack_wait: Duration,
    pub(crate) delivery: Delivery,
    pub(crate) retry_for: Duration,
    pub(crate) duplicate_window: Duration,
    pub(crate) security: Security,
}

/// How a process proves who it is to the server, and checks the server, beyond what the
/// URL says. Paths to files: secrets stay out of the environment and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Security {
    pub ca: Option<PathBuf>,
    pub client_certificate: Option<(PathBuf, PathBuf)>,
    pub creds: Option<PathBuf>,
    pub nkey: Option<PathBuf>,
}

/// What an edge between processes promises (see the book's chapter "Across machines").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// Over JetStream: items are stored, and acknowledged once finished by the receiving
    /// process; what a dead process held is delivered again.
    #[default]
    AtLeastOnce,
    /// Over core NATS: faster, nothing stored; an item a process held when it died, or one
    /// a slow receiver could not take in time, is lost.
    AtMostOnce,
}

/// A plan that cannot work, with what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

thread_local! {
    static CURRENT: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// Builds the pipelines created inside `build` with `plan` instead of the environment's.
pub fn with_plan<R>(plan: Plan, build: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|current| current.replace(Some(plan)));
    // Restored even if `build` panics.
    struct Restore(Option<Plan>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            CURRENT.with(|current| *current.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    build()
}

impl Plan {
    /// A plan hosting every node in this process: nothing goes over NATS.
    pub fn local() -> Self {
        Plan {
            url: "nats://127.0.0.1:4222".into(),
            hosted: None,
            run: "default".into(),
            instance: default_instance(),
            replicas: HashMap::new(),
            ack_wait: Duration::from_secs(30),
            delivery: Delivery::AtLeastOnce,
            retry_for: Duration::from_secs(120),
            duplicate_window: Duration::from_secs(120),
            security: Security::default(),
        }
    }

    /// A plan for a process hosting `nodes`, with the server at `url`.
    pub fn hosting<'a>(url: &str, nodes: impl IntoIterator<Item = &'a str>) -> Self {
        Plan {
            url: url.into(),
            hosted: Some(nodes.into_iter().map(str::to_string).collect()),
            ..Plan::local()
        }
    }

    /// Names the run; every process of one run must use the same name.
    pub fn run(mut self, run: &str) -> Self {
        self.run = run.into();
        self
    }

    /// Names this process among those hosting the same nodes.
    pub fn instance(mut self, instance: &str) -> Self {
        self.instance = instance.into();
        self
    }

    /// Says that `count` processes host `node`: whoever receives from it waits for that
    /// many end markers.
    pub fn replicas(mut self, node: &str, count: usize) -> Self {
        self.replicas.insert(node.into(), count.max(1));
        self
    }

    /// What edges between processes promise; every process of a run must say the same.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// How long a delivered item may stay unacknowledged before it is delivered again.
    pub fn ack_wait(mut self, wait: Duration) -> Self {
        self.ack_wait = wait;
        self
    }

    /// How long a publish, fetch or acknowledgement that meets an unreachable or restarting
    /// server is retried (with backoff) before this process gives up and fails its run.
    pub fn retry_for(mut self, patience: Duration) -> Self {
        self.retry_for = patience;
        self
    }

    /// How long the stream remembers a message id: an item published again within it (by
    /// a process restarted after a crash, say) is stored once; after it, twice. Applies
    /// when this process creates the pipeline's stream.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// Requires TLS, with the server's certificate checked against the CA in `pem_file`.
    pub fn tls_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.security.ca = Some(pem_file.into());
        self
    }

    /// Shows the server this client certificate (for servers that verify clients).
    pub fn tls_client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.security.client_certificate = Some((certificate.into(), key.into()));
        self
    }

    /// Authenticates with a `.creds` file (a user JWT and its NKey seed).
    pub fn credentials_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.security.creds = Some(path.into());
        self
    }

    /// Authenticates with the NKey seed (`SU…`) written in `path`.
    pub fn nkey_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.security.nkey = Some(path.into());
        self
    }

    /// The plan the environment describes (see the table above); [`Plan::local`] when
    /// `PIPELINE_NODES` is unset.
    pub fn from_env() -> Result<Self, PlanError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, PlanError> {
        let mut plan = Plan::local();
        let Some(nodes) = var("PIPELINE_NODES") else {
            return Ok(plan);
        };
        let hosted: HashSet<String> = nodes
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string)
            .collect();
        if hosted.is_empty() {
            return Err(PlanError(
                "PIPELINE_NODES is empty: name the nodes this process hosts, e.g. PIPELINE_NODES=rev"
                    .into(),
            ));
        }
        plan.hosted = Some(hosted);
        if let Some(url) = var("PIPELINE_NATS_URL") {
            plan.url = url;
        }
        if let Some(run) = var("PIPELINE_RUN") {
            plan.run = run;
        }
        if let Some(instance) = var("PIPELINE_INSTANCE") {
            plan.instance = instance;
        }
        if let Some(replicas) = var("PIPELINE_REPLICAS") {
            for entry in replicas.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let parsed = entry
                    .split_once('=')
                    .and_then(|(node, n)| Some((node.trim(), n.trim().parse::<usize>().ok()?)));
                match parsed {
                    Some((node, n)) if n > 0 => plan.replicas.insert(node.into(), n),
                    _ => {
                        return Err(PlanError(format!(
                            "PIPELINE_REPLICAS: `{entry}` is not `node=count` with a count of at least 1 (e.g. PIPELINE_REPLICAS=rev=2)"
                        )));
                    }
                };
            }
        }
        if let Some(delivery) = var("PIPELINE_DELIVERY") {
            plan.delivery = match delivery.trim() {
                "at-least-once" => Delivery::AtLeastOnce,
                "at-most-once" => Delivery::AtMostOnce,
                other => {
                    return Err(PlanError(format!(
                        "PIPELINE_DELIVERY: `{other}` is neither `at-least-once` nor `at-most-once`"
                    )));
                }
            };
        }
        if let Some(ms) = var("PIPELINE_ACK_WAIT_MS") {
            let ms = ms.trim().parse::<u64>().map_err(|_| {
                PlanError(format!(
                    "PIPELINE_ACK_WAIT_MS: `{ms}` is not a number of milliseconds"
                ))
            })?;
            plan.ack_wait = Duration::from_millis(ms.max(1));
        }
        if let Some(s) = var("PIPELINE_DUPLICATE_WINDOW_S") {
            let s = s.trim().parse::<u64>().map_err(|_| {
                PlanError(format!(
                    "PIPELINE_DUPLICATE_WINDOW_S: `{s}` is not a number of seconds"
                ))
            })?;
            plan.duplicate_window = Duration::from_secs(s.max(1));
        }
        plan.security.ca = var("PIPELINE_NATS_CA").map(PathBuf::from);
        match (var("PIPELINE_NATS_CERT"), var("PIPELINE_NATS_KEY")) {
            (Some(cert), Some(key)) => {
                plan.security.client_certificate = Some((cert.into(), key.into()));
            }
            (None, None) => {}
            _ => {
                return Err(PlanError(
                    "PIPELINE_NATS_CERT and PIPELINE_NATS_KEY go together: set both, or neither"
                        .into(),
                ));
            }
        }
        plan.security.creds = var("PIPELINE_NATS_CREDS").map(PathBuf::from);
        plan.security.nkey = var("PIPELINE_NATS_NKEY").map(PathBuf::from);
        if let Some(s) = var("PIPELINE_RETRY_FOR_S") {
            let s = s.trim().parse::<u64>().map_err(|_| {
                PlanError(format!(
                    "PIPELINE_RETRY_FOR_S: `{s}` is not a number of seconds"
                ))
            })?;
            plan.retry_for = Duration::from_secs(s);
        }
        Ok(plan)
    }

    /// The plan for a pipeline being built: the one `with_plan` set, else the environment's.
    pub(crate) fn current() -> Result<Self, PlanError> {
        match CURRENT.with(|current| current.borrow().clone()) {
            Some(plan) => Ok(plan),
            None => Self::from_env(),
        }
    }

    /// Whether nothing goes over NATS.
    #[cfg(test)]
    pub(crate) fn is_local(&self) -> bool {
        self.hosted.is_none()
    }

    pub(crate) fn hosts(&self, node: &str) -> bool {
        self.hosted.as_ref().is_none_or(|h| h.contains(node))
    }

    pub(crate) fn replicas_of(&self, node: &str) -> usize {
        self.replicas.get(node).copied().unwrap_or(1)
    }

    /// The nodes the plan names that the graph does not have.
    pub(crate) fn unknown_nodes(&self, graph: &[&str]) -> Vec<String> {
        let mut unknown: Vec<String> = self
            .hosted
            .iter()
            .flatten()
            .chain(self.replicas.keys())
            .filter(|n| !graph.contains(&n.as_str()))
            .cloned()
            .collect();
        unknown.sort();
        unknown.dedup();
        unknown
    }
}

fn default_instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn without_nodes_everything_is_local() {
        let plan = Plan::from_vars(vars(&[])).unwrap();
        assert!(plan.is_local());
        assert!(plan.hosts("anything"));
    }

    #[test]
    fn the_environment_names_nodes_run_instance_and_replicas() {
        let plan = Plan::from_vars(vars(&[
            ("PIPELINE_NODES", "rev, out"),
            ("PIPELINE_NATS_URL", "nats://10.0.0.1:4222"),
            ("PIPELINE_RUN", "r7"),
            ("PIPELINE_INSTANCE", "rev-a"),
            ("PIPELINE_REPLICAS", "rev=2"),
            ("PIPELINE_ACK_WAIT_MS", "500"),
            ("PIPELINE_DELIVERY", "at-most-once"),
            ("PIPELINE_RETRY_FOR_S", "7"),
        ]))
        .unwrap();
        assert_eq!(plan.delivery, Delivery::AtMostOnce);
        assert!(plan.hosts("rev") && plan.hosts("out") && !plan.hosts("inp"));
        assert_eq!(
            (plan.url.as_str(), plan.run.as_str(), plan.instance.as_str()),
            ("nats://10.0.0.1:4222", "r7", "rev-a")
        );
        assert_eq!((plan.replicas_of("rev"), plan.replicas_of("out")), (2, 1));
        assert_eq!(plan.ack_wait, Duration::from_millis(500));
        assert_eq!(plan.retry_for, Duration::from_secs(7));
        assert_eq!(plan.unknown_nodes(&["inp", "rev"]), vec!["out".to_string()]);
    }

    #[test]
    fn malformed_variables_say_what_is_expected() {
        let bad = Plan::from_vars(vars(&[
            ("PIPELINE_NODES", "rev"),
            ("PIPELINE_REPLICAS", "rev:2"),
        ]))
        .unwrap_err();
        assert!(bad.0.contains("`rev:2` is not `node=count`"), "{bad}");
        let half = Plan::from_vars(vars(&[
            ("PIPELINE_NODES", "rev"),
            ("PIPELINE_NATS_CERT", "c.pem"),
        ]))
        .unwrap_err();
        assert!(half.0.contains("go together"), "{half}");
        let empty = Plan::from_vars(vars(&[("PIPELINE_NODES", " , ")])).unwrap_err();
        assert!(empty.0.contains("PIPELINE_NODES is empty"), "{empty}");
    }

    #[test]
    fn with_plan_applies_inside_only() {
        let inside = with_plan(Plan::hosting("nats://x:1", ["a"]), || {
            Plan::current().unwrap()
        });
        assert!(inside.hosts("a") && !inside.hosts("b"));
        // Outside, the environment's plan (no PIPELINE_NODES in the test environment).
        if std::env::var("PIPELINE_NODES").is_err() {
            assert!(Plan::current().unwrap().is_local());
        }
    }
}
