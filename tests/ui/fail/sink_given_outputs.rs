use pipeline::prelude::*;

fn main() {
    let (first, second) = (Collected::<u32>::new(), Collected::<u32>::new());
    let _p = pipeline! {
        nums = source::iter(0..3u32);
        out = first.sink();
        more = second.sink();
        nums => out => more;
    };
}
