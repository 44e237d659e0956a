//! The run report as a text table: one row a node in declaration order, then the totals,
//! the wall time and throughput, the verdict and any warnings.
//!
//! Columns that would be zero for every node (retries, dead letters, restarts, partial
//! tuples) are left out, so the table stays narrow for the common run and still shows the
//! unusual ones when they happen.

use std::fmt;
use std::time::Duration;

use crate::report::{NodeReport, RunReport, share};
use crate::spec::{FanIn, Role};

/// One column: its header, whether it is shown, and how a node's cell reads.
struct Column {
    header: &'static str,
    shown: bool,
    cell: Box<dyn Fn(&NodeReport) -> String>,
}

impl Column {
    fn always(header: &'static str, cell: impl Fn(&NodeReport) -> String + 'static) -> Self {
        Column {
            header,
            shown: true,
            cell: Box::new(cell),
        }
    }

    /// A count column, shown only when some node counted something.
    fn when_any(
        report: &RunReport,
        header: &'static str,
        count: impl Fn(&NodeReport) -> u64 + 'static,
    ) -> Self {
        Column {
            header,
            shown: report.nodes.iter().any(|n| count(n) > 0),
            cell: Box::new(move |n| count(n).to_string()),
        }
    }
}

fn columns(report: &RunReport) -> Vec<Column> {
    let wall = report.elapsed;
    let percent = |share: f64| format!("{:.0}%", share * 100.0);
    vec![
        Column::always("role", |n| n.role.to_string()),
        Column {
            header: "workers",
            shown: report.nodes.iter().any(|n| n.workers > 1),
            cell: Box::new(|n| n.workers.to_string()),
        },
        Column::always("in", |n| match n.role {
            Role::Source => "-".to_string(),
            _ => n.received.to_string(),
        }),
        Column::always("out", |n| match n.role {
            Role::Sink => "-".to_string(),
            _ => n.emitted.to_string(),
        }),
        Column::always("filtered", |n| n.filtered.to_string()),
        Column::when_any(report, "absorbed", |n| n.absorbed),
        Column::always("failed", |n| n.failed.to_string()),
        Column::when_any(report, "retried", |n| n.retried),
        Column::when_any(report, "dead-lettered", |n| n.dead_lettered),
        Column::when_any(report, "restarts", |n| n.restarts),
        Column::when_any(report, "partial", |n| n.dropped_partial_tuples),
        Column::always("busy", move |n| percent(n.utilisation(wall))),
        Column::always("starved", move |n| {
            percent(share(n.starved, wall.mul_f64(n.workers.max(1) as f64)))
        }),
        Column::always("blocked", move |n| percent(n.blocked_share(wall))),
        Column::always("queue peak", |n| n.queue_peak.to_string()),
        Column::always("p50", |n| n.latency.map_or("-".into(), |l| short(l.p50))),
        Column::always("p99", |n| n.latency.map_or("-".into(), |l| short(l.p99))),
    ]
}

/// The table's shown columns: headers, then one row of cells per node (name first).
pub(crate) struct Grid {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

pub(crate) fn grid(report: &RunReport) -> Grid {
    let columns: Vec<Column> = columns(report).into_iter().filter(|c| c.shown).collect();
    let headers = std::iter::once("node")
        .chain(columns.iter().map(|c| c.header))
        .collect();
    let rows = report
        .nodes
        .iter()
        .map(|n| {
            std::iter::once(n.name.clone())
                .chain(columns.iter().map(|c| (c.cell)(n)))
                .collect()
        })
        .collect();
    Grid { headers, rows }
}

/// The lines under the table: where every item went, time and throughput, the verdict,
/// warnings and how the run stopped.
pub(crate) fn summary(report: &RunReport) -> Vec<String> {
    let a = report.accounting();
    let mut items = format!(
        "{} source items, {} delivered, {} filtered, {} failed",
        a.source_items, a.delivered, a.filtered, a.failed
    );
    if a.absorbed > 0 {
        items += &format!(
            ", {} absorbed into aggregates (which emitted {} at the end)",
            a.absorbed,
            report
                .nodes
                .iter()
                .filter(|n| n.absorbed > 0)
                .map(|n| n.expanded)
                .sum::<u64>()
        );
    }
    if a.dropped_partial_tuples > 0 {
        items += &format!(", {} dropped partial tuples", a.dropped_partial_tuples);
    }
    if !report.remote.is_empty() {
        items += &format!(
            ", {} from other processes, {} to them",
            a.arrived, a.departed
        );
    }
    if a.handed_back > 0 {
        items += &format!(", {} handed back to be done again", a.handed_back);
    }
    items += if a.is_balanced() {
        "; every item accounted for"
    } else {
        "; ITEMS UNACCOUNTED FOR"
    };
    let mut throughput = format!(
        "wall time {:.1?}; throughput {} source items/s, {} delivered/s",
        report.elapsed,
        rate(a.source_items, report.elapsed),
        rate(a.delivered, report.elapsed)
    );
    // In a loop most items come round again: a few seeds may make the run's whole work.
    for entry in report.nodes.iter().filter(|n| n.fan_in == FanIn::Loop) {
        throughput += &format!(
            ", {} items/s into `{}` (a loop's entry: from its sources and back round the loop)",
            rate(entry.received, report.elapsed),
            entry.name
        );
    }
    let mut lines = vec![items, throughput];
    for edge in &report.remote {
        let (from, to) = (&edge.from, &edge.to);
        let mut line = if edge.outbound {
            format!(
                "edge {from} => {to} (to another process): {} items sent",
                edge.items
            )
        } else {
            format!(
                "edge {from} => {to} (from another process): {} items received, {} redelivered, {} rejected",
                edge.items, edge.redelivered, edge.rejected
            )
        };
        if edge.failed > 0 {
            line += &format!(
                ", {} failed (larger than the server's maximum payload)",
                edge.failed
            );
        }
        if edge.pending > 0 {
            line += &format!(
                ", {} pending (left to be delivered again to whoever takes this process's place)",
                edge.pending
            );
        }
        lines.push(line);
    }
    for node in report.nodes.iter().filter(|n| !n.error_kinds.is_empty()) {
        lines.push(format!(
            "errors in {}: {}",
            node.name,
            kinds(&node.error_kinds)
        ));
    }
    lines.extend(report.verdict().map(|v| v.to_string()));
    lines.extend(
        report
            .warnings()
            .into_iter()
            .map(|w| format!("warning: {w}")),
    );
    lines.extend(report.failure.as_ref().map(|f| format!("stopped: {f}")));
    lines
}

/// `412 × ParseIntError, 3 × timed out, ...`: the five most frequent kinds, and how many
/// more.
pub(crate) fn kinds(kinds: &[(String, u64)]) -> String {
    const SHOWN: usize = 5;
    let mut text = kinds
        .iter()
        .take(SHOWN)
        .map(|(kind, n)| format!("{n} × {kind}"))
        .collect::<Vec<_>>()
        .join(", ");
    if kinds.len() > SHOWN {
        let rest: u64 = kinds[SHOWN..].iter().map(|(_, n)| n).sum();
        text += &format!(", {rest} of {} other kinds", kinds.len() - SHOWN);
    }
    text
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Grid { headers, rows } = grid(self);
        let widths: Vec<usize> = (0..headers.len())
            .map(|c| {
                rows.iter()
                    .map(|row| row[c].chars().count())
                    .chain([headers[c].len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        // Names and roles are text and read best left-aligned; numbers align right.
        let line = |f: &mut fmt::Formatter<'_>, cells: &mut dyn Iterator<Item = &str>| {
            for (c, cell) in cells.enumerate() {
                let width = widths[c];
                let gap = if c == 0 { "" } else { "  " };
                if c < 2 {
                    write!(f, "{gap}{cell:<width$}")?;
                } else {
                    write!(f, "{gap}{cell:>width$}")?;
                }
            }
            writeln!(f)
        };
        line(f, &mut headers.iter().copied())?;
        for row in &rows {
            line(f, &mut row.iter().map(String::as_str))?;
        }
        for text in summary(self) {
            writeln!(f, "{text}")?;
        }
        Ok(())
    }
}

/// Items per second, to three significant digits.
pub(crate) fn rate(items: u64, over: Duration) -> String {
    if over.is_zero() {
        return "-".to_string();
    }
    let per_second = items as f64 / over.as_secs_f64();
    match per_second {
        r if r >= 1e6 => format!("{:.2}M", r / 1e6),
        r if r >= 1e4 => format!("{:.0}k", r / 1e3),
        r if r >= 100.0 => format!("{r:.0}"),
        r => format!("{r:.1}"),
    }
}

/// A duration in a few characters: `850ns`, `12.3µs`, `4.0ms`, `1.2s`.
pub(crate) fn short(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        format!("{nanos}ns")
    } else if nanos < 1_000_000 {
        format!("{:.1}µs", nanos as f64 / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.1}ms", nanos as f64 / 1e6)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_durations_read_at_a_glance() {
        assert_eq!(rate(2_500_000, Duration::from_secs(1)), "2.50M");
        assert_eq!(rate(45_000, Duration::from_secs(1)), "45k");
        assert_eq!(rate(250, Duration::from_secs(2)), "125");
        assert_eq!(rate(3, Duration::from_secs(2)), "1.5");
        assert_eq!(rate(3, Duration::ZERO), "-");
        assert_eq!(short(Duration::from_nanos(850)), "850ns");
        assert_eq!(short(Duration::from_nanos(12_340)), "12.3µs");
        assert_eq!(short(Duration::from_millis(4)), "4.0ms");
        assert_eq!(short(Duration::from_millis(1200)), "1.2s");
    }
}
