//! Real programs, written as a new user would write them, against what users write instead,
//! side by side in one process. Inputs are generated here (nothing is downloaded), before
//! any clock starts.
//!
//! ```sh
//! cargo bench --bench programs              # everything, then one `ratio <name> <value>` line each
//! cargo bench --bench programs -- logs      # only the comparisons whose name contains `logs`
//! ```
//!
//! Each contender runs several times, alternating with the other, and the median counts.
//! Ratios are the other's time over the pipeline's (above 1: the pipeline is faster), except
//! `async_io_cpu_vs_buffer_unordered`, which compares CPU time the same way.

use std::collections::HashMap;
use std::fs::File;
use std::hint::black_box;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use pipeline::prelude::*;
use rayon::prelude::*;

#[path = "support/bench.rs"]
mod bench;
use bench::{middle, ratio, show, summary};
#[path = "support/words.rs"]
mod words;
use words::{reverse, uuids};

fn main() {
    let wanted = bench::wanted();
    let (runtime, cores) = bench::runtime();
    println!("programs: {cores} cores\n");
    let mut ratios: Vec<(&str, f64)> = Vec::new();

    if wanted("logs") {
        let log = Log::generate(120 << 20);
        println!(
            "logs: {} MB, {} lines ({} malformed)",
            log.bytes >> 20,
            log.lines,
            log.malformed
        );
        let expected = log.expected.clone();
        let (mut ours, mut by_line, mut stream, mut par) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(log.timed(&expected, |path, out| {
                runtime.block_on(logs_pipeline(path, out))
            }));
            by_line.push(log.timed(&expected, |path, out| {
                runtime.block_on(logs_pipeline_by_line(path, out))
            }));
            stream.push(log.timed(&expected, |path, out| {
                runtime.block_on(logs_stream(path, out))
            }));
            par.push(log.timed(&expected, logs_rayon));
        }
        let (ours, by_line) = (middle(ours), middle(by_line));
        let (stream, par) = (middle(stream), middle(par));
        show("pipeline! (lines, try_map, aggregate, write)", ours);
        show("pipeline!, reading with try_iter(reader.lines())", by_line);
        show("futures stream, one task", stream);
        show("rayon par_bridge, fold and reduce", par);
        ratios.push(("logs_vs_stream", ratio(stream, ours)));
        ratios.push(("logs_vs_rayon", ratio(par, ours)));
        println!();
    }

    if wanted("async_io") {
        const ITEMS: u64 = 100_000;
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            ours.push(measured(|| runtime.block_on(lookups_pipeline(ITEMS))));
            theirs.push(measured(|| {
                runtime.block_on(lookups_buffer_unordered(ITEMS))
            }));
        }
        let wall = |runs: &[(Duration, Duration)]| middle(runs.iter().map(|r| r.0).collect());
        let cpu = |runs: &[(Duration, Duration)]| middle(runs.iter().map(|r| r.1).collect());
        println!("async_io: {ITEMS} items, a 1 ms async lookup each, 64 in flight");
        show("pipeline!, map_async with workers(64), wall", wall(&ours));
        show("pipeline!, CPU", cpu(&ours));
        show("futures buffer_unordered(64), wall", wall(&theirs));
        show("futures buffer_unordered(64), CPU", cpu(&theirs));
        ratios.push((
            "async_io_cpu_vs_buffer_unordered",
            ratio(cpu(&theirs), cpu(&ours)),
        ));
        ratios.push((
            "async_io_wall_vs_buffer_unordered",
            ratio(wall(&theirs), wall(&ours)),
        ));
        println!();
    }

    if wanted("json") {
        let records = json_records(400_000);
        let expected: u64 = json_rayon(records.clone()).1;
        let (mut ours, mut par) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            let input = records.clone();
            ours.push(timed(|| {
                let (took, sum) = runtime.block_on(json_pipeline(input));
                assert_eq!(sum, expected);
                took
            }));
            let input = records.clone();
            par.push(timed(|| {
                let (took, sum) = json_rayon(input);
                assert_eq!(sum, expected);
                took
            }));
        }
        let (ours, par) = (middle(ours), middle(par));
        println!(
            "json: {} NDJSON records decoded, changed, encoded",
            records.len()
        );
        show(&format!("pipeline!, workers(auto): {cores}"), ours);
        show("rayon into_par_iter", par);
        ratios.push(("json_vs_rayon", ratio(par, ours)));
        println!();
    }

    if wanted("seeds") {
        let data = uuids(1_000_000);
        let (mut ours, mut plain) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let input = data.clone();
            ours.push(timed(|| runtime.block_on(seeds_pipeline(input))));
            let input = data.clone();
            plain.push(timed(|| seeds_plain_loop(input)));
        }
        let (ours, plain) = (middle(ours), middle(plain));
        println!("seeds: 1M uuid-shaped strings, reversed and paired with their original");
        show("pipeline! (inp => rev, out; rev => out)", ours);
        show("one plain loop", plain);
        ratios.push(("seeds_vs_plain_loop", ratio(plain, ours)));
        println!();
    }

    summary(cores, &ratios);
}

fn timed(run: impl FnOnce() -> Duration) -> Duration {
    run()
}

/// Wall and CPU time of the whole process while `run` runs.
fn measured(run: impl FnOnce()) -> (Duration, Duration) {
    let (wall, cpu) = (Instant::now(), process_cpu());
    run();
    (wall.elapsed(), process_cpu() - cpu)
}

fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to; the clock id is a constant.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

// ---- the access-log job ----

/// An access log in a temporary file, and what the job must find in it.
struct Log {
    path: PathBuf,
    bytes: u64,
    lines: u64,
    malformed: u64,
    /// Requests and bytes per status code.
    expected: Vec<(u16, u64, u64)>,
}

impl Log {
    fn generate(size: u64) -> Log {
        let path = std::env::temp_dir().join(format!("pipeweave-bench-{}.log", std::process::id()));
        let mut file = BufWriter::new(File::create(&path).unwrap());
        let (mut bytes, mut lines, mut malformed) = (0u64, 0u64, 0u64);
        let mut totals: HashMap<u16, (u64, u64)> = HashMap::new();
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let paths = [
            "/",
            "/index.html",
            "/api/items",
            "/api/items/42",
            "/static/app.js",
            "/login",
        ];
        let statuses = [200u16, 200, 200, 200, 304, 404, 500, 301];
        while bytes < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let line = if state % 97 == 0 {
                malformed += 1;
                format!("{:x} garbage without a request\n", state)
            } else {
                let status = statuses[(state >> 8) as usize % statuses.len()];
                let size = (state >> 20) % 50_000;
                let entry = totals.entry(status).or_default();
                entry.0 += 1;
                entry.1 += size;
                format!(
                    "10.{}.{}.{} - - [27/Nov/2026:10:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" {status} {size} \"-\" \"bench/1.0\"\n",
                    (state >> 24) & 0xff,
                    (state >> 32) & 0xff,
                    (state >> 40) & 0xff,
                    (state >> 48) % 60,
                    (state >> 54) % 60,
                    paths[(state >> 12) as usize % paths.len()],
                )
            };
            bytes += line.len() as u64;
            lines += 1;
            file.write_all(line.as_bytes()).unwrap();
        }
        file.flush().unwrap();
        let mut expected: Vec<(u16, u64, u64)> =
            totals.into_iter().map(|(s, (n, b))| (s, n, b)).collect();
        expected.sort_unstable();
        Log {
            path,
            bytes,
            lines,
            malformed,
            expected,
        }
    }

    /// Runs one contender, which writes its result to a file of its own, and checks it.
    fn timed(&self, expected: &[(u16, u64, u64)], job: impl FnOnce(&Path, &Path)) -> Duration {
        let out = self.path.with_extension("out");
        let started = Instant::now();
        job(&self.path, &out);
        let took = started.elapsed();
        let written = std::fs::read_to_string(&out).unwrap();
        let mut got: Vec<(u16, u64, u64)> = written
            .lines()
            .map(|line| {
                let mut fields = line.split(' ').map(|f| f.parse::<u64>().unwrap());
                let mut next = || fields.next().unwrap();
                (next() as u16, next(), next())
            })
            .collect();
        got.sort_unstable();
        assert_eq!(got, expected, "the job's result");
        took
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = std::fs::remove_file(self.path.with_extension("out"));
    }
}

#[derive(Debug)]
struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed line")
    }
}

impl std::error::Error for Malformed {}

/// A request's status and size, from a line of the log.
fn parse(line: &str) -> Result<(u16, u64), Malformed> {
    let after_request = line.split('"').nth(2).ok_or(Malformed)?;
    let mut fields = after_request.split_ascii_whitespace();
    let status = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed)?;
    let size = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or(Malformed)?;
    Ok((status, size))
}

type Totals = HashMap<u16, (u64, u64)>;

fn add(totals: &mut Totals, (status, size): (u16, u64)) {
    let entry = totals.entry(status).or_default();
    entry.0 += 1;
    entry.1 += size;
}

fn write_totals(out: &Path, totals: impl IntoIterator<Item = (u16, (u64, u64))>) {
    let mut file = BufWriter::new(File::create(out).unwrap());
    for (status, (count, bytes)) in totals {
        writeln!(file, "{status} {count} {bytes}").unwrap();
    }
    file.flush().unwrap();
}

/// The job as a pipeline: lines, parsed (malformed ones are failed items, counted), counted
/// per status, written.
async fn logs_pipeline(path: &Path, out: &Path) {
    let file = BufWriter::new(File::create(out).unwrap());
    let p = pipeline! {
        read = source::lines(File::open(path).unwrap());
        parsed = stage::try_map(|line: source::Line| parse(&line));
        totals = stage::aggregate(Totals::new(), add, |totals| totals);
        write = sink::write(file, |file: &mut BufWriter<File>, (status, (count, bytes)): (u16, (u64, u64))| {
            writeln!(file, "{status} {count} {bytes}")
        });
        read => parsed => totals => write;
    };
    let report = p.run().await.unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
    show_report(&report);
}

/// The same job reading a `String` per line, as `BufRead::lines` gives them.
async fn logs_pipeline_by_line(path: &Path, out: &Path) {
    let lines = BufReader::new(File::open(path).unwrap()).lines();
    let file = BufWriter::new(File::create(out).unwrap());
    let p = pipeline! {
        read = source::try_iter(lines);
        parsed = stage::try_map(|line: String| parse(&line));
        totals = stage::aggregate(Totals::new(), add, |totals| totals);
        write = sink::write(file, |file: &mut BufWriter<File>, (status, (count, bytes)): (u16, (u64, u64))| {
            writeln!(file, "{status} {count} {bytes}")
        });
        read => parsed => totals => write;
    };
    let report = p.run().await.unwrap();
    assert!(report.accounting().is_balanced(), "{report}");
    show_report(&report);
}

/// With `PROGRAMS_REPORTS=1`, each run's report: where the pipeline's time went.
fn show_report(report: &RunReport) {
    if std::env::var_os("PROGRAMS_REPORTS").is_some() {
        println!("{report}");
    }
}

/// The job as a futures stream, as one would write it without the pipeline.
async fn logs_stream(path: &Path, out: &Path) {
    let lines = BufReader::new(File::open(path).unwrap()).lines();
    let totals = futures::stream::iter(lines)
        .filter_map(|line| async move { parse(&line.unwrap()).ok() })
        .fold(Totals::new(), |mut totals, request| async move {
            add(&mut totals, request);
            totals
        })
        .await;
    write_totals(out, totals);
}

/// The job with rayon: lines bridged into its pool, folded per thread, reduced.
fn logs_rayon(path: &Path, out: &Path) {
    let lines = BufReader::new(File::open(path).unwrap()).lines();
    let totals = lines
        .par_bridge()
        .filter_map(|line| parse(&line.unwrap()).ok())
        .fold(Totals::new, |mut totals, request| {
            add(&mut totals, request);
            totals
        })
        .reduce(Totals::new, |mut a, b| {
            for (status, (count, bytes)) in b {
                let entry = a.entry(status).or_default();
                entry.0 += count;
                entry.1 += bytes;
            }
            a
        });
    write_totals(out, totals);
}

// ---- many slow async lookups ----

async fn lookup(key: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(1)).await;
    key.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn lookups_expected(items: u64) -> u64 {
    (0..items).fold(0u64, |sum, key| {
        sum.wrapping_add(key.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    })
}

async fn lookups_pipeline(items: u64) {
    let total = Arc::new(AtomicU64::new(0));
    let sum = total.clone();
    let mut local = 0u64;
    let p = pipeline! {
        keys = source::iter(0..items);
        looked_up[workers(64)] = stage::map_async(lookup);
        out = sink::for_each(move |value: u64| {
            local = local.wrapping_add(value);
            sum.store(local, Ordering::Relaxed);
        });
        keys => looked_up => out;
    };
    p.run().await.unwrap();
    assert_eq!(total.load(Ordering::Relaxed), lookups_expected(items));
}

async fn lookups_buffer_unordered(items: u64) {
    let sum = futures::stream::iter(0..items)
        .map(lookup)
        .buffer_unordered(64)
        .fold(0u64, |sum, value| async move { sum.wrapping_add(value) })
        .await;
    assert_eq!(sum, lookups_expected(items));
}

// ---- NDJSON records ----

#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    id: u64,
    name: String,
    tags: Vec<String>,
    score: f64,
}

fn json_records(count: u64) -> Vec<String> {
    (0..count)
        .map(|id| {
            serde_json::to_string(&Record {
                id,
                name: format!("record number {id}"),
                tags: (0..id % 5).map(|t| format!("tag{t}")).collect(),
                score: id as f64 / 7.0,
            })
            .unwrap()
        })
        .collect()
}

/// Decodes a record, changes it, encodes it again; returns the line and its id.
fn transform(line: &str) -> (String, u64) {
    let mut record: Record = serde_json::from_str(line).unwrap();
    record.name.make_ascii_uppercase();
    record.tags.push("seen".to_string());
    record.score *= 2.0;
    (serde_json::to_string(&record).unwrap(), record.id)
}

async fn json_pipeline(records: Vec<String>) -> (Duration, u64) {
    let total = Arc::new(AtomicU64::new(0));
    let sum = total.clone();
    let mut local = 0u64;
    let p = pipeline! {
        lines = source::iter(records);
        changed[workers(auto)] = stage::map(|line: String| transform(&line));
        out = sink::for_each(move |(line, id): (String, u64)| {
            black_box(&line);
            local = local.wrapping_add(id);
            sum.store(local, Ordering::Relaxed);
        });
        lines => changed => out;
    };
    let started = Instant::now();
    p.run().await.unwrap();
    (started.elapsed(), total.load(Ordering::Relaxed))
}

/// The same work with rayon, on the same owned lines (a source of lines hands them over).
fn json_rayon(records: Vec<String>) -> (Duration, u64) {
    let started = Instant::now();
    let sum = records
        .into_par_iter()
        .map(|line| {
            let (line, id) = transform(&line);
            black_box(&line);
            id
        })
        .reduce(|| 0, u64::wrapping_add);
    (started.elapsed(), sum)
}

// ---- the seeds' graph ----

async fn seeds_pipeline(data: Vec<String>) -> Duration {
    let count = Arc::new(AtomicU64::new(0));
    let seen = count.clone();
    let mut local = 0u64;
    let p = pipeline! {
        inp = source::iter(data);
        rev = stage::map(reverse);
        out = sink::for_each(move |(original, reversed): (String, String)| {
            black_box((&original, &reversed));
            local += 1;
            seen.store(local, Ordering::Relaxed);
        });
        inp => rev, out;
        rev => out;
    };
    let started = Instant::now();
    p.run().await.unwrap();
    let took = started.elapsed();
    assert_eq!(count.load(Ordering::Relaxed), 1_000_000);
    took
}

fn seeds_plain_loop(data: Vec<String>) -> Duration {
    let started = Instant::now();
    let mut pairs = 0u64;
    for original in data {
        let reversed = reverse(original.clone());
        black_box((&original, &reversed));
        pairs += 1;
    }
    assert_eq!(pairs, 1_000_000);
    started.elapsed()
}
