use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::iter(0..10u32);
        plus = stage::map_async(|n: u32| n + 1);
        out = sink::for_each(|n: u32| println!("{n}"));
        nums => plus => out;
    };
}
