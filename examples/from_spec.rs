//! A graph chosen by a file, not by the code: the nodes come from a registry of named
//! constructors, the edges and options from a spec (TOML or JSON) written in the macro's
//! grammar.
//!
//! ```sh
//! cargo run --example from_spec -- examples/specs/seeds.toml     # the quickstart's graph
//! cargo run --example from_spec -- examples/specs/shouting.toml  # one stage inserted
//! cargo run --example from_spec -- examples/specs/diamonds.json   # theboxahaan/pipelines' test graph
//! cargo run --example from_spec -- examples/specs/mistakes.toml  # every mistake, with its line
//! ```
//!
//! A spec with mistakes makes it exit with status 1, printing each one as
//! `file:line:column: message`.

use std::process::ExitCode;

use pipeline::graph::{GraphSpec, Registry};
use pipeline::{sink, source, stage};

#[path = "support/ids.rs"]
mod ids;

/// `uuids`' arguments: how many strings to make.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Count {
    count: usize,
}

/// The nodes a spec can `use`. A plug-in crate would export a function like this one.
fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .source("uuids", |args: Count| {
            source::iter(ids::random_ids(args.count))
        })
        .stage("reverse", |_: ()| {
            stage::map(|s: String| s.chars().rev().collect::<String>())
        })
        .stage("upper", |_: ()| stage::map(|s: String| s.to_uppercase()))
        .stage("lower", |_: ()| stage::map(|s: String| s.to_lowercase()))
        .stage("length", |_: ()| stage::map(|s: String| s.len()))
        .zip_stage("join", |_: ()| {
            stage::map(|(a, b): (String, String)| format!("{a}+{b}"))
        })
        .sink("print", |_: ()| {
            sink::for_each(|s: String| println!("output~> {s}"))
        })
        .zip_sink("print_pairs", |_: ()| {
            sink::for_each(|(original, reversed): (String, String)| {
                println!("output~> ({original}, {reversed})");
            })
        });
    registry
}

fn main() -> ExitCode {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "examples/specs/seeds.toml".to_string());
    let pipeline = match GraphSpec::read(&path).and_then(|spec| spec.build(&registry())) {
        Ok(pipeline) => pipeline,
        Err(mistakes) => {
            eprint!("{mistakes}");
            return ExitCode::FAILURE;
        }
    };
    match pipeline.run_blocking() {
        Ok(report) => {
            println!("\n{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
