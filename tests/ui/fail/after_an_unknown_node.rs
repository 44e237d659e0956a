use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        docs = source::iter(0..3u32);
        out[after(index)] = sink::for_each(|n: u32| println!("{n}"));
        docs => out;
    };
}
