use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::iter(5u32);
        out = sink::for_each(|n: u32| println!("{n}"));
        nums => out;
    };
}
