//! The same graphs built by `pipeline!` and from a spec file (a registry and `GraphSpec`),
//! for `spec_vs_macro_*`: what a graph chosen at run time costs against one the compiler
//! saw.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pipeline::graph::{GraphSpec, Registry};
use pipeline::prelude::*;
use pipeline::{Sink, SinkNode};

use crate::sum::sum_into;
use crate::words::reverse;

/// Counts the pairs and checks each is a string with its reversal.
fn pairs_checked(count: Arc<AtomicU64>) -> SinkNode<impl Sink<In = (String, String)>> {
    let mut local = 0u64;
    sink::for_each(move |(original, reversed): (String, String)| {
        debug_assert!(original.chars().eq(reversed.chars().rev()));
        black_box((&original, &reversed));
        local += 1;
        count.store(local, Ordering::Relaxed);
    })
}

/// The seeds' graph by the macro, on `data`.
pub fn seeds_by_macro(data: Vec<String>, count: &Arc<AtomicU64>) -> Pipeline {
    pipeline! {
        inp = source::iter(data);
        rev = stage::map(reverse);
        out = pairs_checked(count.clone());
        inp => rev, out;
        rev => out;
    }
}

/// The seeds' graph from a spec, on `data`.
pub fn seeds_by_spec(data: Vec<String>, count: &Arc<AtomicU64>) -> Pipeline {
    let data = Mutex::new(Some(data));
    let count = count.clone();
    let mut registry = Registry::new();
    registry
        .source("uuids", move |_: ()| {
            source::iter(data.lock().unwrap().take().unwrap_or_default())
        })
        .stage("reverse", |_: ()| stage::map(reverse))
        .zip_sink("pairs", move |_: ()| pairs_checked(count.clone()));
    GraphSpec::from_toml(
        r#"
        edges = ["inp => rev, out", "rev => out"]
        nodes.inp.use = "uuids"
        nodes.rev.use = "reverse"
        nodes.out.use = "pairs"
        "#,
    )
    .and_then(|spec| spec.build(&registry))
    .unwrap()
}

/// 20 identity stages from a spec, `items` numbers through them into a sum.
pub fn identity20_by_spec(items: u64, total: &Arc<AtomicU64>) -> Pipeline {
    let total = total.clone();
    let mut registry = Registry::new();
    registry
        .source("numbers", move |_: ()| source::iter(0..items))
        .stage("identity", |_: ()| stage::map(|x: u64| black_box(x)))
        .sink("sum", move |_: ()| sum_into(&total));
    let mut spec = String::from("edges = [\"numbers => s1");
    for n in 2..=20 {
        spec.push_str(&format!(" => s{n}"));
    }
    spec.push_str(" => total\"]\nnodes.numbers.use = \"numbers\"\nnodes.total.use = \"sum\"\n");
    for n in 1..=20 {
        spec.push_str(&format!("nodes.s{n}.use = \"identity\"\n"));
    }
    GraphSpec::from_toml(&spec)
        .and_then(|spec| spec.build(&registry))
        .unwrap()
}
