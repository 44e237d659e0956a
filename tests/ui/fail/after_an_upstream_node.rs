use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        docs = source::iter(0..3u32);
        clean = stage::map(|n: u32| n + 1);
        out[after(clean)] = sink::for_each(|n: u32| println!("{n}"));
        docs => clean => out;
    };
}
