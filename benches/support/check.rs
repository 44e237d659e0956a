//! How long `cargo check` takes on a user's crate with one long chain of stages: the type
//! checking of what `pipeline!` expands to must grow in step with the graph, not faster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The crate, with a chain of `stages` maps between a source and a sink.
fn write_crate(dir: &Path, stages: usize) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let facade = env!("CARGO_MANIFEST_DIR");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"chain{stages}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [dependencies]\npipeweave = {{ path = {facade:?} }}\n\n[workspace]\n"
        ),
    )
    .unwrap();
    let mut code = String::from(
        "use pipeline::prelude::*;\n\npub fn build() -> Pipeline {\n    pipeline! {\n        src = source::iter(0..10u64);\n",
    );
    for i in 1..=stages {
        code.push_str(&format!("        s{i} = stage::map(|x: u64| x + 1);\n"));
    }
    code.push_str("        out = sink::for_each(|_x: u64| {});\n        src");
    for i in 1..=stages {
        code.push_str(&format!(" => s{i}"));
    }
    code.push_str(" => out;\n    }\n}\n");
    std::fs::write(dir.join("src/lib.rs"), code).unwrap();
}

fn cargo_check(dir: &Path, target: &Path) -> Duration {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let started = Instant::now();
    let status = Command::new(cargo)
        .args(["check", "--quiet", "--offline"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target)
        // Every run type-checks the whole crate again.
        .env("CARGO_INCREMENTAL", "0")
        .status()
        .unwrap();
    assert!(status.success(), "cargo check failed in {}", dir.display());
    started.elapsed()
}

/// The median of `runs` checks of a crate with a chain of `stages`, after one that builds
/// the dependencies. Crates and their shared target dir live under `target/check-bench`.
pub fn check_chain(stages: usize, runs: usize) -> Duration {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/check-bench");
    let dir = root.join(format!("chain{stages}"));
    write_crate(&dir, stages);
    let target = root.join("target");
    cargo_check(&dir, &target);
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            // Changed, so cargo checks it again.
            write_crate(&dir, stages);
            cargo_check(&dir, &target)
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}
