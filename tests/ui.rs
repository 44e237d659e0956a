//! Compile-time behaviour of `pipeline!`: one case per diagnostic in `ui/fail` (with the
//! exact compiler output beside it), programs that must compile and run in `ui/pass`, and
//! every example that ends by itself, so none of them can rot.

#[test]
fn diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    // What a `#![distributed]` pipeline is told depends on whether the `nats` feature is on.
    #[cfg(feature = "nats")]
    t.compile_fail("tests/ui/fail_nats/*.rs");
    #[cfg(not(feature = "nats"))]
    t.compile_fail("tests/ui/fail_without_nats/*.rs");
    // Cases whose output names `Send` by its full path once the `nats` crates are in the
    // build (rustc shortens a path only while its name is unique among the crates).
    #[cfg(not(feature = "nats"))]
    t.compile_fail("tests/ui/fail_default/*.rs");
}

#[test]
fn passing_programs_and_examples() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    // The Prometheus example serves until Ctrl-C; CI runs it with `--check` instead.
    t.pass("examples/quickstart.rs");
    t.pass("examples/stages.rs");
    t.pass("examples/crawler.rs");
}
