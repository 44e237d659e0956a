use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::iter(0..10u32);
        big = stage::filter(|n: u32| n > 3);
        out = sink::for_each(|n: u32| println!("{n}"));
        nums => big => out;
    };
}
