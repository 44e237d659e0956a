use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        a[bogus] = stage::map(|n: u32| n + 1);
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => a => out;
        out => a;
        inp => a;
    };
}
