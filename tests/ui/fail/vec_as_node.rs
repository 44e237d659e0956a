use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = vec![1u32, 2, 3];
        out = sink::for_each(|n: u32| println!("{n}"));
        nums => out;
    };
}
