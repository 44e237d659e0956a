use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        a = source::iter(0..3u32);
        b = source::iter(0..3u32);
        out = sink::for_each(|n: u32| println!("{n}"));
        a => b => out;
    };
}
