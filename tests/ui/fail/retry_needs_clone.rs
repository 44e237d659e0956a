use pipeline::prelude::*;

/// A job that cannot be copied, so it cannot be tried twice.
struct Job(u32);

fn main() {
    let _p = pipeline! {
        jobs = source::iter((0..3).map(Job));
        run[retry(3)] = stage::try_map(|job: Job| if job.0 > 1 { Ok(job.0) } else { Err("too small") });
        out = sink::for_each(|n: u32| println!("{n}"));
        jobs => run => out;
    };
}
