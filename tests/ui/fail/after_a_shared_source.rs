use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        docs = source::iter(0..3u32);
        index = sink::for_each(|n: u32| println!("{n}"));
        serve[after(index)] = stage::map(|n: u32| n + 1);
        out = sink::for_each(|n: u32| println!("{n}"));
        docs => index, serve;
        serve => out;
    };
}
