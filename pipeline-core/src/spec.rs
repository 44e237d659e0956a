//! What a node is and how it is set up, as plain data: its role, how it combines several
//! inputs, and the options the DSL sets on it. Everything above reads these; they import
//! nothing of the runtime.

use std::sync::Arc;
use std::time::Duration;

use crate::error::NodeError;

pub use pipeline_lang::role::{FanIn, Role};

/// How one node runs: everything its options (`name[workers(4), retry(3)] = ..`) say, in
/// one value. The macro fills it from the options written on a node; the run-time
/// [`GraphBuilder`](crate::graph::GraphBuilder) takes it as is; the node's loop reads it.
///
/// Each method is named as the option it sets and does what the option table of
/// `pipeline!` says:
///
/// ```
/// use std::time::Duration;
/// use pipeline_core::NodeConfig;
///
/// let config = NodeConfig::new()
///     .workers(4)
///     .retry(3)
///     .retry_pauses(Duration::from_millis(50), Duration::from_secs(5))
///     .timeout(Duration::from_secs(1));
/// assert_eq!(config.worker_count(), 4);
/// assert!(!config.runs_plain(true));
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct NodeConfig {
    /// Most items each input edge holds (`capacity(n)`); [`DEFAULT_CAPACITY`] when `None`.
    pub capacity: Option<usize>,
    /// Workers running copies of the stage (`workers(n)`); one when `None`.
    pub workers: Option<usize>,
    /// Several workers' outputs leave in input order (`ordered`).
    pub ordered: bool,
    /// An item that takes longer fails (`timeout(d)`; an async stage is cancelled at the limit).
    pub timeout: Option<Duration>,
    /// Failed items are tried again (`retry(..)`, `retry_if(..)`).
    pub retry: Option<RetryConfig>,
    /// Workers replaced after a panic before the run stops (`restarts(n)`);
    /// [`DEFAULT_RESTARTS`] when `None`.
    pub restarts: Option<u32>,
    /// The node that receives this stage's failed items (`dead_letter(node)`).
    pub dead_letter: Option<String>,
    /// Nodes that must finish before this one starts (`after(node, ..)`).
    pub after: Vec<String>,
    /// Stop the whole run at this node's first failed item (`fail_fast`).
    pub fail_fast: bool,
    /// Interleave several inputs instead of zipping them (`merge`).
    pub merge: bool,
}

/// How a stage tries failed items again (`retry(n, first, longest)`, `retry_if(..)`).
#[derive(Clone)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Tries after the first.
    pub attempts: u32,
    /// The pause before the first retry; later ones about double, up to `longest`, with jitter.
    pub first: Duration,
    /// The longest pause between two tries.
    pub longest: Duration,
    /// Which errors are worth another try; all of them when `None`.
    pub only_if: Option<RetryIf>,
}

/// A predicate on errors: true when the item is worth another try (`retry_if`).
pub type RetryIf = Arc<dyn Fn(&NodeError) -> bool + Send + Sync>;

/// The pause before the first retry when `retry(n)` does not give one.
pub const DEFAULT_BACKOFF: Duration = Duration::from_millis(10);

/// The longest pause between two tries when `retry` does not say.
pub const DEFAULT_LONGEST_PAUSE: Duration = Duration::from_secs(30);

/// Items an input edge holds when `capacity(n)` does not say.
pub const DEFAULT_CAPACITY: usize = 1024;

impl NodeConfig {
    /// A node with no options: one worker, no retries, the default capacity.
    pub fn new() -> Self {
        Self::default()
    }

    /// `capacity(n)`: each input edge holds at most `n` items.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n);
        self
    }

    /// `workers(n)`: `n` workers, each with its own copy of the stage.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// `workers(auto)`: one worker per core of this machine (for a CPU-bound stage).
    pub fn workers_auto(self) -> Self {
        self.workers(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// `ordered`: several workers' outputs leave in input order.
    pub fn ordered(mut self) -> Self {
        self.ordered = true;
        self
    }

    /// `timeout(d)`: an item taking longer than `d` fails with `error::TimedOut`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// `retry(n)`: a failed item is tried up to `n` more times, with the default pauses.
    pub fn retry(mut self, attempts: u32) -> Self {
        let retry = self.retry.get_or_insert_with(RetryConfig::default);
        retry.attempts = attempts;
        self
    }

    /// `retry(n, first, longest)`: the pauses between tries (with `retry`).
    pub fn retry_pauses(mut self, first: Duration, longest: Duration) -> Self {
        let retry = self.retry.get_or_insert_with(RetryConfig::default);
        retry.first = first;
        retry.longest = longest;
        self
    }

    /// `retry_if(predicate)`: only errors for which `predicate` is true are tried again.
    pub fn retry_if(
        mut self,
        predicate: impl Fn(&NodeError) -> bool + Send + Sync + 'static,
    ) -> Self {
        let retry = self.retry.get_or_insert_with(RetryConfig::default);
        retry.only_if = Some(Arc::new(predicate));
        self
    }

    /// `restarts(n)`: panicking workers replaced before the run stops.
    pub fn restarts(mut self, n: u32) -> Self {
        self.restarts = Some(n);
        self
    }

    /// `dead_letter(node)`: items that finally fail go to `node`.
    pub fn dead_letter(mut self, node: impl Into<String>) -> Self {
        self.dead_letter = Some(node.into());
        self
    }

    /// `after(node)`: start only once `node` has finished (call again for several).
    pub fn after(mut self, node: impl Into<String>) -> Self {
        self.after.push(node.into());
        self
    }

    /// `fail_fast`: the node's first failed item stops the run.
    pub fn fail_fast(mut self) -> Self {
        self.fail_fast = true;
        self
    }

    /// `merge`: interleave the inputs instead of zipping them.
    pub fn merge(mut self) -> Self {
        self.merge = true;
        self
    }

    /// The options this configuration sets, by their names in the DSL, for checks that
    /// say which nodes an option fits (those of `pipeline!`, shared with the graph builder).
    pub fn options_set(&self) -> Vec<&'static str> {
        let retry_if = self.retry.as_ref().is_some_and(|r| r.only_if.is_some());
        [
            ("capacity", self.capacity.is_some()),
            ("workers", self.workers.is_some()),
            ("ordered", self.ordered),
            ("timeout", self.timeout.is_some()),
            ("retry", self.retry.is_some()),
            ("retry_if", retry_if),
            ("restarts", self.restarts.is_some()),
            ("dead_letter", self.dead_letter.is_some()),
            ("after", !self.after.is_empty()),
            ("fail_fast", self.fail_fast),
            ("merge", self.merge),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }

    /// Sets option `name` from arguments written as text (a spec file's
    /// `options = ["retry(3, 50ms)"]`): the same methods as above, chosen by the option's
    /// name. Says what is wrong when the arguments do not fit; the option's name and the
    /// number of its arguments are checked against the option table before.
    #[cfg(feature = "spec")]
    pub(crate) fn set(self, name: &str, args: &[OptionArg]) -> Result<Self, String> {
        let count = |n: usize| match args.get(n) {
            Some(OptionArg::Count(value)) => Ok(*value),
            other => Err(format!("`{name}` takes a whole number here{}", got(other))),
        };
        let duration = |n: usize| match args.get(n) {
            Some(OptionArg::Duration(value)) => Ok(*value),
            other => Err(format!(
                "`{name}` takes a duration here, such as `500ms` or `2s`{}",
                got(other)
            )),
        };
        let nodes = || {
            args.iter()
                .map(|arg| match arg {
                    OptionArg::Node(node) => Ok(node.clone()),
                    other => Err(format!("`{name}` takes node names{}", got(Some(other)))),
                })
                .collect::<Result<Vec<String>, String>>()
        };
        let small = |n: u64| u32::try_from(n).map_err(|_| format!("`{name}({n})` is too large"));
        Ok(match name {
            "capacity" => self.capacity(count(0)? as usize),
            "workers" => match args.first() {
                Some(OptionArg::Node(auto)) if auto == "auto" => self.workers_auto(),
                _ => self.workers(count(0)? as usize),
            },
            "ordered" => self.ordered(),
            "timeout" => self.timeout(duration(0)?),
            "retry" => {
                let config = self.retry(small(count(0)?)?);
                match args.len() {
                    1 => config,
                    2 => config.retry_pauses(duration(1)?, DEFAULT_LONGEST_PAUSE),
                    _ => config.retry_pauses(duration(1)?, duration(2)?),
                }
            }
            "restarts" => self.restarts(small(count(0)?)?),
            "dead_letter" => self.dead_letter(nodes()?.remove(0)),
            "after" => nodes()?.into_iter().fold(self, NodeConfig::after),
            "fail_fast" => self.fail_fast(),
            "merge" => self.merge(),
            "retry_if" => {
                return Err(
                    "`retry_if` takes a Rust predicate, which a spec cannot hold: without it, `retry` tries every error again"
                        .to_string(),
                );
            }
            other => return Err(format!("there is no option `{other}`")),
        })
    }

    /// Items each input edge holds.
    pub fn edge_capacity(&self) -> usize {
        self.capacity.unwrap_or(DEFAULT_CAPACITY)
    }

    /// Workers running the node.
    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or(1)
    }

    /// Worker restarts allowed before the run stops.
    pub fn restart_budget(&self) -> u32 {
        self.restarts.unwrap_or(DEFAULT_RESTARTS)
    }

    /// Whether the node's items need no handling one by one, given whether its code is
    /// synchronous: no item is timed out, retried or sent to a dead-letter node. Only such
    /// a node runs whole batches in one loop, or runs inside the node that feeds it. The
    /// one place this rule is written in the runtime (the macro decides the same at
    /// compile time, for the kernels it names).
    pub fn runs_plain(&self, sync: bool) -> bool {
        sync && self.timeout.is_none() && self.retry.is_none() && self.dead_letter.is_none()
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 0,
            first: DEFAULT_BACKOFF,
            longest: DEFAULT_LONGEST_PAUSE,
            only_if: None,
        }
    }
}

impl std::fmt::Debug for RetryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryConfig")
            .field("attempts", &self.attempts)
            .field("first", &self.first)
            .field("longest", &self.longest)
            .field("only_if", &self.only_if.as_ref().map(|_| ".."))
            .finish()
    }
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only what was set, as the options would be written.
        let mut f = f.debug_struct("NodeConfig");
        let d = Self::default();
        if self.capacity != d.capacity {
            f.field("capacity", &self.capacity);
        }
        if self.workers != d.workers {
            f.field("workers", &self.workers);
        }
        if self.ordered {
            f.field("ordered", &true);
        }
        if self.timeout.is_some() {
            f.field("timeout", &self.timeout);
        }
        if self.retry.is_some() {
            f.field("retry", &self.retry);
        }
        if self.restarts.is_some() {
            f.field("restarts", &self.restarts);
        }
        if self.dead_letter.is_some() {
            f.field("dead_letter", &self.dead_letter);
        }
        if !self.after.is_empty() {
            f.field("after", &self.after);
        }
        if self.fail_fast {
            f.field("fail_fast", &true);
        }
        if self.merge {
            f.field("merge", &true);
        }
        f.finish()
    }
}

/// One argument of an option written as text (see `NodeConfig::set`).
#[cfg(feature = "spec")]
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum OptionArg {
    /// `4`
    Count(u64),
    /// `500ms`, `2s`
    Duration(Duration),
    /// `rejects`: a node's name.
    Node(String),
}

#[cfg(feature = "spec")]
fn got(arg: Option<&OptionArg>) -> String {
    match arg {
        None => ", and none is given".to_string(),
        Some(OptionArg::Count(n)) => format!(", not `{n}`"),
        Some(OptionArg::Duration(d)) => format!(", not the duration `{d:?}`"),
        Some(OptionArg::Node(node)) => format!(", not `{node}`"),
    }
}

/// Worker restarts after panics a node is allowed when the DSL does not say (`restarts(n)`).
pub const DEFAULT_RESTARTS: u32 = 3;

/// A node as the builder registered it.
pub(crate) struct NodeSpec {
    pub name: &'static str,
    pub role: Role,
    pub fan_in: FanIn,
    pub config: NodeConfig,
    /// A stage without hooks: it emits nothing at the end of its input, so any copy of it
    /// that finished its input finished the node's work (see `remote`).
    #[cfg_attr(not(feature = "nats"), allow(dead_code))]
    pub stateless: bool,
}
