//! The seeds' graph, `inp => rev, out; rev => out`, as separate processes on NATS.
//!
//! Every process runs this same program; the environment says which nodes it hosts:
//!
//! ```sh
//! examples/distributed/run.sh            # starts nats-server and four processes
//! ```
//!
//! or by hand, with a server (`nats-server -js`) running:
//!
//! ```sh
//! export PIPELINE_RUN=demo1
//! PIPELINE_NODES=rev PIPELINE_INSTANCE=rev-1 cargo run --example distributed --features nats &
//! PIPELINE_NODES=rev PIPELINE_INSTANCE=rev-2 cargo run --example distributed --features nats &
//! PIPELINE_NODES=out PIPELINE_REPLICAS=rev=2 cargo run --example distributed --features nats &
//! PIPELINE_NODES=inp cargo run --example distributed --features nats
//! ```
//!
//! Without `PIPELINE_NODES` the whole graph runs in this one process, nothing over NATS.
//! `WORDS` sets how many words the source sends (default 1000), `REV_WORK_MS` how long
//! `rev` works on each.

use std::time::Duration;

use pipeline::prelude::*;

fn main() {
    let words: usize = env_or("WORDS", 1000);
    let work = Duration::from_millis(env_or("REV_WORK_MS", 0));
    let p = pipeline! {
        #![distributed("seeds")]
        inp = source::iter((0..words).map(|i| format!("word{i}")));
        rev = stage::map(move |word: String| {
            std::thread::sleep(work);
            word.chars().rev().collect::<String>()
        });
        out = sink::for_each(|(word, reversed): (String, String)| println!("{word} {reversed}"));
        inp => rev, out;
        rev => out;
    };
    match p.run_blocking() {
        Ok(report) => eprintln!("{report}"),
        Err(error) => {
            eprintln!("{}", error.report);
            eprintln!("failed: {error}");
            std::process::exit(1);
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
