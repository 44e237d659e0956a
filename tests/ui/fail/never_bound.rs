use pipeline::prelude::*;

fn main() {
    // `middle` is neither bound in the macro nor a local variable.
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => middle => out;
    };
}
