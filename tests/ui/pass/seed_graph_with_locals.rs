//! Nodes bound before the macro, options on a declaration, a zip and a merge.
use pipeline::prelude::*;

fn main() {
    let words = source::iter(["a", "bb", "ccc"].map(String::from));
    let pairs = Collected::new();
    let lengths = Collected::<usize>::new();
    let out = pairs.sink();
    let p = pipeline! {
        out[capacity(4)];
        rev = stage::map(|s: String| s.chars().rev().collect::<String>());
        len_a = stage::map(|s: String| s.len());
        len_b = stage::map(|s: String| s.len() * 10);
        lens[merge] = lengths.sink();
        words => rev, out, len_a;
        rev => out;
        rev => len_b;
        len_a, len_b => lens;
    };
    let report = p.run_blocking().unwrap();
    let mut got = pairs.take();
    got.sort();
    assert_eq!(got, [("a", "a"), ("bb", "bb"), ("ccc", "ccc")].map(|(a, b)| (a.to_string(), b.to_string())));
    let mut lens = lengths.take();
    lens.sort();
    assert_eq!(lens, [1, 2, 3, 10, 20, 30]);
    assert!(report.accounting().is_balanced());
}

/// Raw identifiers work as node names.
#[allow(dead_code)]
fn raw_identifiers() {
    let p = pipeline! {
        r#type = source::iter(0..3u8);
        r#move = sink::for_each(|_n: u8| {});
        r#type => r#move;
    };
    p.run_blocking().unwrap();
}
