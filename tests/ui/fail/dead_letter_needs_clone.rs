use pipeline::prelude::*;

/// A request that cannot be copied, so a failed one cannot be kept for the dead letter.
struct Request(u32);

fn main() {
    let _p = pipeline! {
        requests = source::iter((0..3).map(Request));
        handle[dead_letter(bad)] = stage::try_map(|r: Request| if r.0 > 0 { Ok(r.0) } else { Err("zero") });
        ok = sink::for_each(|n: u32| println!("{n}"));
        bad = sink::for_each(|f: pipeline::Failed<Request>| eprintln!("{}", f.error));
        requests => handle => ok;
    };
}
