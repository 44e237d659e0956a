use pipeline::prelude::*;

fn main() {
    let failed = Collected::new();
    let _p = pipeline! {
        lines = source::iter(["1", "x"].map(String::from));
        parse[dead_letter(rejets)] = stage::try_map(|s: String| s.parse::<u32>());
        out = sink::for_each(|n: u32| println!("{n}"));
        rejects = failed.sink();
        lines => parse => out;
    };
}
