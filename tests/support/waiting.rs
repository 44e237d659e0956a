//! A node that waited for input from outside the pipeline is reported as waiting: starved,
//! not busy, and not the bottleneck.

use pipeline::RunReport;

pub fn assert_starved_not_busy(report: &RunReport, node: &str) {
    let n = report.node(node).unwrap();
    assert!(
        n.starved > n.busy * 10,
        "starved {:?}, busy {:?}\n{report}",
        n.starved,
        n.busy
    );
    let verdict = report.verdict();
    assert!(
        verdict.as_ref().is_none_or(|v| v.bottleneck != node),
        "{verdict:?}"
    );
}
