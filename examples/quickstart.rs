//! The seeds' graph: `inp` makes 20 random strings, `rev` reverses them, and `out` gets
//! each original together with its reversal.
//!
//! Run it with `cargo run --example quickstart`.

use pipeline::prelude::*;

/// 20 random hex strings shaped like UUIDs, from a small xorshift generator seeded by the
/// clock (the example needs no dependency for randomness).
fn random_ids(count: usize) -> Vec<String> {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|_| {
            let (a, b) = (next(), next());
            format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                a >> 32,
                (a >> 16) & 0xffff,
                a & 0xffff,
                b >> 48,
                b & 0xffff_ffff_ffff
            )
        })
        .collect()
}

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
