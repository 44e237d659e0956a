use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        #![distributed("seeds")]
        inp = source::iter(0..3u32);
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => out;
    };
}
