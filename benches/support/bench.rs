//! What every benchmark run shares: which comparisons it makes, and how it prints them.
//! `cargo bench --bench <name> -- a,b` runs the comparisons whose name contains `a` or `b`;
//! no filter runs all. Each ends with one `ratio <name> <value>` line per measurement.

use std::time::Duration;

/// Whether the comparison `name` was asked for on the command line.
pub fn wanted() -> impl Fn(&str) -> bool {
    let filter: Option<String> = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .filter(|a| !a.is_empty());
    move |name: &str| {
        filter
            .as_deref()
            .is_none_or(|f| f.split(',').any(|f| name.contains(f)))
    }
}

/// The runtime the contenders run on (all the machine's cores), and how many cores that is.
pub fn runtime() -> (tokio::runtime::Runtime, usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    (runtime, cores)
}

/// One contender's time, on a line of its own.
pub fn show(what: &str, took: Duration) {
    println!("  {what:<52} {took:>12.2?}");
}

/// The other's time over ours: above 1, ours is faster.
pub fn ratio(other: Duration, ours: Duration) -> f64 {
    other.as_secs_f64() / ours.as_secs_f64()
}

/// The median of timings.
pub fn middle(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// The closing lines, one `ratio <name> <value>` each.
pub fn summary(cores: usize, ratios: &[(&str, f64)]) {
    println!("summary ({cores} cores)");
    for (name, value) in ratios {
        println!("ratio {name} {value:.3}");
    }
}
