use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::iter(0..10u32);
        parse[retry_if(|e| e.to_string() != "404")] = stage::try_map(|n: u32| u8::try_from(n));
        out = sink::for_each(|n: u8| println!("{n}"));
        nums => parse => out;
    };
}
