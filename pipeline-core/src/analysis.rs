//! Reading a run: which node limited it, why, and what to change.
//!
//! A node's *utilisation* is the share of the run's time (times its workers) it spent running
//! its own code.
//! The bottleneck is the node with the highest utilisation, provided it was busy most of the
//! time: then the nodes feeding it were blocked on it (their `blocked` share says how much)
//! and the nodes after it starved. A stage can take more workers; the suggestion scales its
//! workers so that it would be about as busy as the next busiest node, but no further than
//! the machine's cores when the stage computes (its threads' CPU time says so): more
//! threads than cores only take turns.

use std::fmt;
use std::time::Duration;

use crate::report::{NodeReport, RunReport};
use crate::spec::Role;
use crate::stats::LONG_POLL;

/// Below this, a run is too short for its timings to mean much.
const SHORTEST_RUN: Duration = Duration::from_millis(5);
/// A node busier than this is saturated.
const SATURATED: f64 = 0.5;
/// A node whose threads were on a CPU this share of the time computes, rather than waits.
pub(crate) const COMPUTES: f64 = 0.7;

/// The bottleneck of a run and what to do about it.
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Verdict {
    /// The node the run waited for.
    pub bottleneck: String,
    /// Its utilisation, 0 to 1.
    pub utilisation: f64,
    /// The node feeding it that waited on it the most, and that node's blocked share.
    pub blocked_upstream: Option<(String, f64)>,
    /// A concrete change to try.
    pub suggestion: String,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bottleneck: `{}`, busy {:.0}% of the time",
            self.bottleneck,
            self.utilisation * 100.0
        )?;
        if let Some((upstream, share)) = &self.blocked_upstream {
            write!(
                f,
                " while `{upstream}` waited on it {:.0}% of the time",
                share * 100.0
            )?;
        }
        write!(f, "; {}", self.suggestion)
    }
}

impl RunReport {
    /// The node that limited the run, if one did (and the run was long enough to tell).
    pub fn verdict(&self) -> Option<Verdict> {
        if self.elapsed < SHORTEST_RUN {
            return None;
        }
        let wall = self.elapsed;
        let by_utilisation =
            |a: &&NodeReport, b: &&NodeReport| a.utilisation(wall).total_cmp(&b.utilisation(wall));
        let bottleneck = self.nodes.iter().max_by(by_utilisation)?;
        let utilisation = bottleneck.utilisation(wall);
        if utilisation < SATURATED {
            return None;
        }
        let blocked_upstream = self
            .edges
            .iter()
            .filter(|(_, to)| *to == bottleneck.name)
            .filter_map(|(from, _)| self.node(from))
            .map(|n| (n.name.clone(), n.blocked_share(wall)))
            .filter(|(_, share)| *share > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let next_busiest = self
            .nodes
            .iter()
            .filter(|n| n.name != bottleneck.name)
            .map(|n| n.utilisation(wall))
            .fold(0.0_f64, f64::max);
        let suggestion = match bottleneck.role {
            Role::Stage => {
                // As many workers as it takes to be about as busy as the next busiest node.
                let target = next_busiest.max(0.25);
                let mut wanted = ((bottleneck.workers as f64 * utilisation / target).ceil()
                    as usize)
                    .max(bottleneck.workers + 1);
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                if bottleneck.computes(wall, cores) {
                    wanted = wanted.min(cores);
                }
                if wanted > bottleneck.workers {
                    format!(
                        "raise workers on `{}` to {wanted}: `{}[workers({wanted})]`",
                        bottleneck.name, bottleneck.name
                    )
                } else {
                    format!(
                        "`{}` computes on its {} workers all the time, and this machine has \
                         {cores} cores: make its work cheaper, or split the graph over more \
                         machines (`#![distributed]`)",
                        bottleneck.name, bottleneck.workers
                    )
                }
            }
            Role::Sink => format!(
                "make `{}` faster: a sink runs on one worker",
                bottleneck.name
            ),
            Role::Source => {
                format!(
                    "the source `{}` is the limit: the rest of the graph waited for its items",
                    bottleneck.name
                )
            }
        };
        Some(Verdict {
            bottleneck: bottleneck.name.clone(),
            utilisation,
            blocked_upstream,
            suggestion,
        })
    }
}

impl NodeReport {
    /// Whether the node's threads computed most of a run of length `wall`, on a machine of
    /// `cores` cores: its CPU time, over the time of as many threads as could run at once.
    /// False when that was not measured (see [`NodeReport::cpu`]).
    pub fn computes(&self, wall: Duration, cores: usize) -> bool {
        let Some(cpu) = self.cpu else {
            return false;
        };
        let threads = self.workers.min(cores).max(1) as f64;
        !wall.is_zero() && cpu.as_secs_f64() >= COMPUTES * threads * wall.as_secs_f64()
    }
}

impl RunReport {
    /// Problems worth fixing whatever the bottleneck: async stages whose code blocks the
    /// async workers.
    ///
    /// A stage is said to block the async workers when it did so on at least 1 % of its
    /// items, or once for 100 ms or more: a thread descheduled now and then makes a few
    /// items in a million look like that, and is no fault of the stage.
    pub fn warnings(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| {
                n.long_polls > 0
                    && (n.long_polls * 100 >= n.received
                        || n.longest_poll >= Duration::from_millis(100))
            })
            .map(|n| {
                format!(
                    "`{}` blocks the async workers: on {} of {} items its code ran {:.1?} or more without awaiting (up to {:.1?}); \
                     make it a synchronous stage (`stage::map` runs on a thread of its own) or await async calls",
                    n.name,
                    n.long_polls,
                    n.received,
                    LONG_POLL,
                    n.longest_poll
                )
            })
            .collect()
    }
}
