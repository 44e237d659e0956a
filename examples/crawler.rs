//! A crawler over a fake web, written as a loop: the links found on each page go back to
//! the frontier, which lets through only pages it has not seen. The run ends by itself once
//! no page is left to visit: nothing in the loop, nothing on its way back.
//!
//! ```sh
//! cargo run --example crawler            # 10 000 pages
//! cargo run --example crawler -- 50000
//! ```
//!
//! It checks what it prints: every page visited exactly once, and every item accounted for
//! (it exits with status 1 otherwise).

use std::collections::HashSet;
use std::process::ExitCode;
use std::time::Duration;

use pipeline::prelude::*;
use pipeline::stage::Stateful;

/// The fake web: `pages` pages, each linking to three others by a fixed rule; every page
/// is reachable from page 0, most from several others.
#[derive(Clone, Copy)]
struct Web {
    pages: u32,
}

impl Web {
    /// "Downloads" a page: its links, after a short wait as a real fetch would.
    async fn fetch(self, page: u32) -> (u32, Vec<u32>) {
        tokio::time::sleep(Duration::from_micros(200)).await;
        let n = self.pages;
        let links = vec![
            (page.wrapping_mul(7).wrapping_add(1)) % n,
            (page.wrapping_mul(13).wrapping_add(5)) % n,
            (page + 1) % n,
        ];
        (page, links)
    }
}

/// The frontier: lets each page through once.
#[derive(Default)]
struct Unseen(HashSet<u32>);

impl Stateful for Unseen {
    type In = u32;
    type Out = u32;

    fn process(&mut self, page: u32, out: &mut Vec<u32>) -> Result<(), BoxError> {
        if self.0.insert(page) {
            out.push(page);
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let pages: u32 = std::env::args()
        .nth(1)
        .map_or(Ok(10_000), |n| n.parse())
        .unwrap_or(10_000)
        .max(1);
    let web = Web { pages };
    let visited = Collected::new();
    let pipeline = pipeline! {
        seeds = source::iter([0u32]);
        frontier = stage::stateful(Unseen::default());
        fetch[workers(32)] = stage::map_async(move |page: u32| web.fetch(page));
        links = stage::flat_map(|(_, links): (u32, Vec<u32>)| links);
        pages = stage::map(|(page, _): (u32, Vec<u32>)| page);
        out = visited.sink();
        seeds => frontier => fetch => links;
        fetch => pages => out;
        loop links => frontier;
    };
    let report = match pipeline.run().await {
        Ok(report) => report,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{report}");
    let mut seen: Vec<u32> = visited.take();
    seen.sort_unstable();
    let once = seen.len() == pages as usize && seen.iter().copied().eq(0..pages);
    println!(
        "visited {} of {pages} pages, {}",
        seen.len(),
        if once {
            "each exactly once"
        } else {
            "NOT each exactly once"
        }
    );
    if once && report.accounting().is_balanced() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
