use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        words = source::iter(["a".to_string()]);
        len = stage::map(|s: String| s.len());
        out = sink::for_each(|(n, word): (usize, String)| println!("{word} {n}"));
        words => len, out;
        len => out;
    };
}
