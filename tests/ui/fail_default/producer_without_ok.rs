use pipeline::prelude::*;

fn main() {
    let _p = pipeline! {
        nums = source::producer(|mut out: Output<u32>| async move {
            out.push(1).await.unwrap();
        });
        sink = sink::for_each(|n: u32| println!("{n}"));
        nums => sink;
    };
}
