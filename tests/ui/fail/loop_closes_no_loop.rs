use pipeline::prelude::*;

fn main() {
    // `loop` marks an edge that goes back to a node feeding it; this one goes forward.
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        a = stage::map(|n: u32| n + 1);
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => a;
        loop a => out;
    };
}
