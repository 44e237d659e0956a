use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        out = sink::for_each(|n: u32| println!("{n}"));
        a = stage::map(|n: u32| n + 1);
        b = stage::map(|n: u32| n * 2);
        c = sink::for_each(|n: u32| println!("{n}"));
        inp => out;
        a => b => a;
        b => c;
    };
}
