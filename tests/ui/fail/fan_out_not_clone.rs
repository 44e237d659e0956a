use pipeline::prelude::*;

struct Token(u32);

fn main() {
    let _p = pipeline! {
        tokens = source::iter((0..3).map(Token));
        a = sink::for_each(|t: Token| println!("{}", t.0));
        b = sink::for_each(|t: Token| println!("{}", t.0));
        tokens => a, b;
    };
}
