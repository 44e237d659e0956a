use pipeline::prelude::*;

/// A handle that cannot be copied, captured by the stage.
struct Connection;

impl Connection {
    fn lookup(&self, n: u32) -> u32 {
        n
    }
}

fn main() {
    let conn = Connection;
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        lookup[workers(4)] = stage::map(move |n: u32| conn.lookup(n));
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => lookup => out;
    };
}
