//! The run report as a text table: one row a node in declaration order, then the totals,
//! the wall time and throughput, the verdict and any warnings.
//!
//! Columns that would be zero for every node (retries, dead letters, restarts, partial
//! tuples) are left out, so the table stays narrow for the common run and still shows the
//! unusual ones when they happen.

use std::fmt;
use std::time::Duration;

use crate::report::{NodeReport, RunReport};
use crate::run::Role;

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

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let columns: Vec<Column> = columns(self).into_iter().filter(|c| c.shown).collect();
        let names: Vec<&str> = self.nodes.iter().map(|n| n.name.as_str()).collect();
        let cells: Vec<Vec<String>> = columns
            .iter()
            .map(|c| self.nodes.iter().map(|n| (c.cell)(n)).collect())
            .collect();
        let name_width = names.iter().map(|n| n.len()).max().unwrap_or(0).max(4);
        let widths: Vec<usize> = columns
            .iter()
            .zip(&cells)
            .map(|(c, cells)| {
                cells
                    .iter()
                    .map(String::len)
                    .chain([c.header.len()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();

        // The role is text and reads best left-aligned; numbers align right.
        write!(f, "{:<name_width$}", "node")?;
        for (i, (c, width)) in columns.iter().zip(&widths).enumerate() {
            if i == 0 {
                write!(f, "  {:<width$}", c.header)?;
            } else {
                write!(f, "  {:>width$}", c.header)?;
            }
        }
        writeln!(f)?;
        for (row, name) in names.iter().enumerate() {
            write!(f, "{name:<name_width$}")?;
            for (i, (cells, width)) in cells.iter().zip(&widths).enumerate() {
                if i == 0 {
                    write!(f, "  {:<width$}", cells[row])?;
                } else {
                    write!(f, "  {:>width$}", cells[row])?;
                }
            }
            writeln!(f)?;
        }

        let a = self.accounting();
        write!(
            f,
            "{} source items, {} delivered, {} filtered, {} failed",
            a.source_items, a.delivered, a.filtered, a.failed
        )?;
        if a.dropped_partial_tuples > 0 {
            write!(f, ", {} dropped partial tuples", a.dropped_partial_tuples)?;
        }
        let balance = if a.is_balanced() {
            "every item accounted for"
        } else {
            "ITEMS UNACCOUNTED FOR"
        };
        writeln!(f, "; {balance}")?;
        writeln!(
            f,
            "wall time {:.1?}; throughput {} source items/s, {} delivered/s",
            self.elapsed,
            rate(a.source_items, self.elapsed),
            rate(a.delivered, self.elapsed)
        )?;
        if let Some(verdict) = self.verdict() {
            writeln!(f, "{verdict}")?;
        }
        for warning in self.warnings() {
            writeln!(f, "warning: {warning}")?;
        }
        if let Some(failure) = &self.failure {
            writeln!(f, "stopped: {failure}")?;
        }
        Ok(())
    }
}

pub(crate) fn share(part: Duration, whole: Duration) -> f64 {
    if whole.is_zero() {
        0.0
    } else {
        (part.as_secs_f64() / whole.as_secs_f64()).min(1.0)
    }
}

/// Items per second, to three significant digits.
fn rate(items: u64, over: Duration) -> String {
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
fn short(d: Duration) -> String {
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
