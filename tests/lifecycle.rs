//! Stateful stages (setup per worker, finish at end of stream, teardown), the shared context,
//! and per-item timeouts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pipeline::prelude::*;
use pipeline::{BoxError, Context, Failure, Stage, StageNode};

/// Groups items into batches of `size`; the last, shorter batch goes out at end of stream.
#[derive(Clone)]
struct Batcher {
    size: usize,
    current: Vec<u32>,
    setups: Arc<AtomicUsize>,
    teardowns: Arc<AtomicUsize>,
}

impl Stage for Batcher {
    type In = u32;
    type Out = Vec<u32>;
    const BLOCKING: bool = true;

    async fn setup(&mut self, _context: &Context) -> Result<(), BoxError> {
        self.setups.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn process(&mut self, item: u32, out: &mut Vec<Vec<u32>>) -> Result<(), BoxError> {
        self.current.push(item);
        if self.current.len() == self.size {
            out.push(std::mem::take(&mut self.current));
        }
        Ok(())
    }

    async fn finish(&mut self, out: &mut Vec<Vec<u32>>) -> Result<(), BoxError> {
        if !self.current.is_empty() {
            out.push(std::mem::take(&mut self.current));
        }
        Ok(())
    }

    async fn teardown(&mut self) {
        self.teardowns.fetch_add(1, Ordering::SeqCst);
    }
}

fn batcher(size: usize) -> (StageNode<Batcher>, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let (setups, teardowns) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stage = Batcher {
        size,
        current: Vec::new(),
        setups: setups.clone(),
        teardowns: teardowns.clone(),
    };
    (StageNode::new(stage), setups, teardowns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_stage_flushes_its_last_items_at_end_of_stream() {
    let (batch, setups, teardowns) = batcher(4);
    let batches = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..10u32);
        out = batches.sink();
        nums => batch => out;
    };
    let report = p.run().await.unwrap();
    let got = batches.take();
    assert_eq!(got, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7], vec![8, 9]]);
    assert_eq!(
        (
            setups.load(Ordering::SeqCst),
            teardowns.load(Ordering::SeqCst)
        ),
        (1, 1)
    );
    assert!(report.accounting().is_balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_worker_sets_up_once_and_finishes_once() {
    let (batch, setups, teardowns) = batcher(5);
    let batches = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..1000u32);
        batch[workers(3)];
        out = batches.sink();
        nums => batch => out;
    };
    p.run().await.unwrap();
    assert_eq!(
        (
            setups.load(Ordering::SeqCst),
            teardowns.load(Ordering::SeqCst)
        ),
        (3, 3)
    );
    let mut all: Vec<u32> = batches.take().into_iter().flatten().collect();
    all.sort();
    assert_eq!(
        all,
        (0..1000).collect::<Vec<_>>(),
        "every item is in exactly one batch"
    );
}

struct Config {
    factor: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_read_the_shared_context() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(1..=3u64);
        scale = stage::map_with(|cfg: &Config, n: u64| n * cfg.factor);
        sink = out.sink();
        nums => scale => sink;
    };
    p.with_context(Config { factor: 10 }).run().await.unwrap();
    assert_eq!(out.take(), vec![10, 20, 30]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_context_stops_the_run_naming_the_node_and_the_type() {
    let p = pipeline! {
        nums = source::iter(1..=3u64);
        scale = stage::map_with(|cfg: &Config, n: u64| n * cfg.factor);
        sink = sink::for_each(|_n: u64| {});
        nums => scale => sink;
    };
    let err = p.run().await.unwrap_err();
    match &err.failure {
        Failure::SetupFailed { node, error } => {
            assert_eq!(node, "scale");
            assert!(error.to_string().contains("lifecycle::Config"), "{error}");
        }
        other => panic!("unexpected failure {other:?}"),
    }
    let a = err.report.accounting();
    assert_eq!(
        a.failed, a.source_items,
        "the items that reached it count as failed"
    );
    assert!(a.is_balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_over_the_timeout_fail_and_the_rest_go_on() {
    let out = Collected::new();
    let p = pipeline! {
        delays = source::iter([1u64, 500, 2, 600, 3]);
        sleepy[timeout(Duration::from_millis(100))] = stage::map_async(|ms: u64| async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            ms
        });
        sink = out.sink();
        delays => sleepy => sink;
    };
    let started = std::time::Instant::now();
    let report = p.run().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "slow items are cancelled, not awaited"
    );
    assert_eq!(out.take(), vec![1, 2, 3]);
    let sleepy = report.node("sleepy").unwrap();
    assert_eq!(sleepy.failed, 2);
    assert!(
        sleepy.errors.iter().all(|e| e == "timed out after 100ms"),
        "{:?}",
        sleepy.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_stage_over_its_timeout_fails_the_item_after_the_fact() {
    let out = Collected::new();
    let p = pipeline! {
        delays = source::iter([1u64, 150, 2]);
        sleepy[workers(2), timeout(Duration::from_millis(50))] = stage::map(|ms: u64| {
            std::thread::sleep(Duration::from_millis(ms));
            ms
        });
        sink = out.sink();
        delays => sleepy => sink;
    };
    let report = p.run().await.unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![1, 2]);
    assert_eq!(report.node("sleepy").unwrap().failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aggregate_absorbs_its_inputs_and_emits_at_the_end() {
    let counts = Collected::new();
    let p = pipeline! {
        codes = source::iter((0..1000u32).map(|n| [200u16, 404, 500][(n % 3) as usize]));
        per_code = stage::aggregate(
            std::collections::BTreeMap::new(),
            |counts: &mut std::collections::BTreeMap<u16, u32>, code: u16| *counts.entry(code).or_default() += 1,
            |counts| counts,
        );
        out = counts.sink();
        codes => per_code => out;
    };
    let report = p.run().await.unwrap();
    assert_eq!(counts.take(), vec![(200, 334), (404, 333), (500, 333)]);
    let node = report.node("per_code").unwrap();
    assert_eq!((node.absorbed, node.filtered, node.emitted), (1000, 0, 3));
    let a = report.accounting();
    assert!(a.is_balanced(), "{report}");
    assert_eq!((a.absorbed, a.filtered, a.delivered), (1000, 0, 3));
    assert!(report.to_string().contains("1000 absorbed"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_ends_a_fallible_source_with_that_error() {
    let lines: Vec<std::io::Result<String>> = vec![
        Ok("a".into()),
        Ok("b".into()),
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not UTF-8",
        )),
        Ok("never".into()),
    ];
    let got = Collected::new();
    let p = pipeline! {
        log = source::try_iter(lines);
        out = got.sink();
        log => out;
    };
    let err = p.run().await.unwrap_err();
    assert_source_failed_with_io(&err, std::io::ErrorKind::InvalidData);
    assert_eq!(got.take(), vec!["a", "b"]);
    assert!(err.report.accounting().is_balanced(), "{}", err.report);
}

/// A writer whose last flush fails, as a full disk makes a `BufWriter`'s last block fail.
struct FullDisk(Vec<u8>);

impl std::io::Write for FullDisk {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "disk full",
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_last_write_fails_fails_the_run() {
    let p = pipeline! {
        words = source::iter(["a", "b"]);
        out = sink::write(FullDisk(Vec::new()), |w: &mut FullDisk, word: &str| {
            use std::io::Write;
            writeln!(w, "{word}")
        });
        words => out;
    };
    let err = p.run().await.unwrap_err();
    match &err.failure {
        Failure::FinishFailed { node, error } => {
            assert_eq!(node, "out");
            assert!(
                error.downcast_ref::<std::io::Error>().is_some(),
                "{error:?}"
            );
        }
        other => panic!("unexpected failure {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_whose_finish_fails_fails_the_run() {
    struct Total(u32);
    impl pipeline::stage::Stateful for Total {
        type In = u32;
        type Out = u32;
        const ABSORBS: bool = true;
        fn process(&mut self, n: u32, _out: &mut Vec<u32>) -> Result<(), BoxError> {
            self.0 += n;
            Ok(())
        }
        fn finish(&mut self, _out: &mut Vec<u32>) -> Result<(), BoxError> {
            Err("the total overflowed its store".into())
        }
    }
    let p = pipeline! {
        nums = source::iter(0..10u32);
        total = stage::stateful(Total(0));
        out = sink::for_each(|_n: u32| {});
        nums => total => out;
    };
    let err = p.run().await.unwrap_err();
    assert!(
        matches!(&err.failure, Failure::FinishFailed { node, .. } if node == "total"),
        "{err}"
    );
}

/// The handles a user holds print something useful with `{:?}`: which nodes and edges a
/// pipeline has, and whether a run is still going.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_print_what_they_hold() {
    let out = Collected::new();
    let p = pipeline! {
        nums = source::iter(0..3u32);
        keep = out.sink();
        nums => keep;
    };
    let shown = format!("{p:?}");
    assert!(
        shown.contains("\"nums\"") && shown.contains("(\"nums\", \"keep\")"),
        "{shown}"
    );
    let handle = p.spawn();
    let progress = handle.progress();
    assert!(format!("{handle:?}").starts_with("RunHandle"));
    handle.wait().await.unwrap();
    assert!(format!("{progress:?}").contains("finished: true"));
    assert_eq!(format!("{out:?}"), "Collected { held: 3 }");
}

#[test]
fn a_fallible_source_that_skips_errors_counts_each_as_a_failed_item_and_goes_on() {
    // Every third line is bad; the rest go through, each once.
    let lines: Vec<Result<u32, String>> = (0..3000u32)
        .map(|n| {
            if n % 3 == 2 {
                Err(format!("line {n}: not a number"))
            } else {
                Ok(n)
            }
        })
        .collect();
    let got = pipeline::Collected::new();
    let p = pipeline::pipeline! {
        log = pipeline::source::try_iter(lines).skip_errors();
        double = pipeline::stage::map(|n: u32| n * 2);
        out = got.sink();
        log => double => out;
    };
    let report = p.run_blocking().unwrap();
    let mut delivered = got.take();
    delivered.sort_unstable();
    let expected: Vec<u32> = (0..3000u32).filter(|n| n % 3 != 2).map(|n| n * 2).collect();
    assert_eq!(delivered, expected);
    let log = report.node("log").unwrap();
    assert_eq!(log.failed, 1000);
    assert_eq!(log.error_kinds.iter().map(|(_, n)| n).sum::<u64>(), 1000);
    let a = report.accounting();
    assert_eq!(a.source_items, 3000);
    assert!(a.is_balanced(), "{report}");
}

/// A file as `source::lines` reads it: every line once, in order, whatever the block size
/// (lines longer than a block, blocks that end mid-line, `\r\n`, an empty line, a last line
/// without a newline); a line that is not UTF-8 fails as an item and the rest goes on.
#[test]
fn lines_come_whole_and_a_line_that_is_not_utf8_fails_alone() {
    let dir = std::env::temp_dir().join(format!("pipeweave-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("log.txt");
    let mut text = Vec::new();
    let mut expected = Vec::new();
    for n in 0..5000u32 {
        let line = match n % 7 {
            0 => String::new(),
            1 => "x".repeat(300 + n as usize % 50),
            _ => format!("line {n}"),
        };
        text.extend_from_slice(line.as_bytes());
        text.extend_from_slice(if n % 5 == 0 { b"\r\n" } else { b"\n" });
        expected.push(line);
        if n == 2500 {
            text.extend_from_slice(b"bad \xff byte\n");
        }
    }
    text.extend_from_slice(b"the last, without a newline");
    expected.push("the last, without a newline".to_string());
    std::fs::write(&path, &text).unwrap();
    for block in [16, 100, 4096, 1 << 20] {
        let got = pipeline::Collected::new();
        let p = pipeline::pipeline! {
            log = pipeline::source::lines(std::fs::File::open(&path).unwrap()).block_size(block);
            owned = pipeline::stage::map(|line: pipeline::source::Line| line.into_string());
            out = got.sink();
            log => owned => out;
        };
        let report = p.run_blocking().unwrap();
        assert_eq!(got.take(), expected, "block size {block}");
        let log = report.node("log").unwrap();
        assert_eq!(log.failed, 1, "{report}");
        let kinds = format!("{:?}", log.error_kinds);
        assert!(kinds.contains("NotUtf8"), "{kinds}");
        assert!(report.accounting().is_balanced(), "{report}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A reader that gives some lines, then an I/O error.
struct BrokenPipe(std::io::Cursor<&'static [u8]>);

impl std::io::Read for BrokenPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self.0.read(buf)? {
            0 => Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the writer went away",
            )),
            n => Ok(n),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_error_under_lines_ends_the_run_after_the_lines_before_it() {
    let got = Collected::new();
    let p = pipeline! {
        log = source::lines(BrokenPipe(std::io::Cursor::new(b"a\nb\nhalf a li"))).block_size(2);
        out = got.sink();
        log => out;
    };
    let err = p.run().await.unwrap_err();
    assert_source_failed_with_io(&err, std::io::ErrorKind::BrokenPipe);
    let got: Vec<String> = got.take().into_iter().map(String::from).collect();
    assert_eq!(got, vec!["a", "b"]);
    assert!(err.report.accounting().is_balanced(), "{}", err.report);
}

/// The run ended because the source `log` met an I/O error of `kind`, kept as a value.
fn assert_source_failed_with_io(err: &pipeline::RunError, kind: std::io::ErrorKind) {
    match &err.failure {
        Failure::SourceFailed { node, error } => {
            assert_eq!(node, "log");
            let io = error
                .downcast_ref::<std::io::Error>()
                .expect("the I/O error");
            assert_eq!(io.kind(), kind);
        }
        other => panic!("unexpected failure {other:?}"),
    }
}
