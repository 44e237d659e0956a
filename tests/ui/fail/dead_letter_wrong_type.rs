use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        lines = source::iter(["1", "x"].map(String::from));
        parse[dead_letter(bad)] = stage::try_map(|s: String| s.parse::<u32>());
        ok = sink::for_each(|n: u32| println!("{n}"));
        bad = sink::for_each(|line: String| eprintln!("rejected {line}"));
        lines => parse => ok;
    };
}
