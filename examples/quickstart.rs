//! The seeds' graph: `inp` makes 20 random strings, `rev` reverses them, and `out` gets
//! each original together with its reversal.
//!
//! Run it with `cargo run --example quickstart`.

use pipeline::prelude::*;

#[path = "support/ids.rs"]
mod ids;

use ids::random_ids;

#[tokio::main]
async fn main() -> Result<(), RunError> {
    let pipeline = pipeline! {
        inp = source::iter(random_ids(20));
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        out = sink::for_each(|(original, reversed): (String, String)| {
            println!("output~> ({original}, {reversed})");
        });
        inp => rev, out;
        rev => out;
    };
    let report = pipeline.run().await?;
    println!("\n{report}");
    Ok(())
}
