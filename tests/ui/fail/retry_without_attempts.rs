use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        parse[retry] = stage::try_map(|n: u32| u8::try_from(n));
        out = sink::for_each(|n: u8| println!("{n}"));
        inp => parse => out;
    };
}
