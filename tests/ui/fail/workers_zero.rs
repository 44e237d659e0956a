use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        double[workers(0)] = stage::map(|n: u32| n * 2);
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => double => out;
    };
}
