use pipeline::prelude::*;

fn main() {
    // What comes round must be what the loop's entry takes.
    let _p = pipeline! {
        seeds = source::iter([1u32]);
        frontier = stage::filter(|n: &u32| *n < 100);
        grow = stage::map(|n: u32| n.to_string());
        out = sink::for_each(|s: String| println!("{s}"));
        seeds => frontier => grow => out;
        loop grow => frontier;
    };
}
