//! What a run says in its log: thousands of failed items do not make thousands of WARN lines.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pipeline::prelude::*;

/// Collects what the subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn failed_items_are_logged_at_warn_only_while_their_kind_is_new_and_then_by_tens() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let p = pipeline! {
        lines = source::iter((0..5000u32).map(|n| format!("{n}x")));
        parse = stage::try_map(|s: String| s.parse::<u32>());
        out = sink::for_each(|_n: u32| {});
        lines => parse => out;
    };
    let report = p.run_blocking().unwrap();
    assert_eq!(report.node("parse").unwrap().failed, 5000);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
    // The first ten, then the 100th and the 1 000th, each with the count so far.
    assert_eq!(warnings.len(), 12, "{text}");
    assert!(warnings[11].contains("so_far=1000"), "{}", warnings[11]);
}
