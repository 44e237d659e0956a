use pipeline::prelude::*;
use pipeline::{BoxError, Stage, StageNode};

/// A handle that cannot be copied.
struct Connection;

/// A stage holding the handle: it cannot be copied either, so it cannot run on several workers.
struct Lookup {
    conn: Connection,
}

impl Stage for Lookup {
    type In = u32;
    type Out = u32;

    async fn process(&mut self, n: u32, out: &mut Vec<u32>) -> Result<(), BoxError> {
        let _in_use = &self.conn;
        out.push(n);
        Ok(())
    }
}

fn main() {
    let lookup = StageNode::new(Lookup { conn: Connection });
    let _p = pipeline! {
        inp = source::iter(0..3u32);
        lookup[workers(4)];
        out = sink::for_each(|n: u32| println!("{n}"));
        inp => lookup => out;
    };
}
