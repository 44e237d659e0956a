use pipeline::prelude::*;

/// Not Serialize: it cannot travel between processes.
struct Reading(u32);

fn main() {
    let _p = pipeline! {
        #![distributed("sensors")]
        inp = source::iter((0..3u32).map(Reading));
        out = sink::for_each(|r: Reading| println!("{}", r.0));
        inp => out;
    };
}
