use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        out[buffer(4)] = sink::for_each(|n: u32| println!("{n}"));
        inp => out;
    };
}
