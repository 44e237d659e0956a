use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::iter(vec![1u32, 2, 3]);
        shout = stage::map(|s: String| s.to_uppercase());
        out = sink::for_each(|s: String| println!("{s}"));
        nums => shout => out;
    };
}
