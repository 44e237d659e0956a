//! Which comparisons a benchmark run makes: `cargo bench --bench <name> -- a,b` runs those
//! whose name contains `a` or `b`; no filter runs all.

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
