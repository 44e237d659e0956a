//! A source of text lines read in blocks: one read and one UTF-8 check per block, and each
//! line an item that shares its block instead of a `String` of its own.
//!
//! `source::try_iter(reader.lines())` allocates, copies and later frees one `String` per
//! line, on whichever thread ends it: for a log job that is a large part of the work,
//! and a free on another thread than the allocation's is costly with the common
//! allocators. Here a block of lines is one allocation, freed once its last line is done.

use std::fmt;
use std::io::{self, Read};
use std::ops::Deref;
use std::sync::Arc;

use crate::error::NodeError;
use crate::node::output::Output;
use crate::node::{BoxError, Source, SourceNode};

/// Bytes read at a time unless [`SourceNode::block_size`] says otherwise.
const BLOCK: usize = 64 << 10;

/// A source of the lines of `reader`, read in blocks, each line one [`Line`] item: the
/// text without its `\n` or `\r\n`, as `BufRead::lines` gives it. It runs on a thread of
/// its own, so `reader` may block (a file, a socket, standard input); it needs no
/// `BufReader`, as it reads whole blocks itself.
///
/// An I/O error ends the source, and the run, with `Failure::SourceFailed` carrying the
/// error; the lines before it are delivered. A line that is not UTF-8 is a bad record,
/// not a broken input: it is one failed item of the source (counted in the report, by
/// kind, with its line number) and the lines after it go on.
///
/// ```
/// use pipeline::prelude::*;
///
/// let text = std::io::Cursor::new("GET /a 200\r\nGET /b 404\n\nlast, without newline");
/// let got = Collected::new();
/// let p = pipeline! {
///     log = source::lines(text);
///     lengths = stage::map(|line: source::Line| line.len());
///     out = got.sink();
///     log => lengths => out;
/// };
/// p.run_blocking().unwrap();
/// assert_eq!(got.take(), vec![10, 10, 0, 21]);
/// ```
pub fn lines<R: Read + Send + 'static>(reader: R) -> SourceNode<LinesSource<R>> {
    SourceNode(LinesSource {
        reader,
        block: BLOCK,
    })
}

/// The source [`lines`] makes.
pub struct LinesSource<R> {
    reader: R,
    block: usize,
}

impl<R> SourceNode<LinesSource<R>> {
    /// Reads `bytes` at a time (64 KiB unless set; at least 1). A line longer than a block
    /// still comes whole: the block grows to hold it. Smaller blocks hand the first lines
    /// on sooner; larger ones read less often.
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.0.block = bytes.max(1);
        self
    }
}

impl<R: Read + Send + 'static> Source for LinesSource<R> {
    type Out = Line;
    const BLOCKING: bool = true;

    async fn run(self, mut out: Output<Line>) -> Result<(), BoxError> {
        let LinesSource { mut reader, block } = self;
        let failures = out.failures();
        let mut blocks = Blocks::new(block);
        // Lines read so far, for the number in a bad line's error.
        let mut line_no = 0u64;
        let mut failed = 0u64;
        let result = loop {
            let bytes = match blocks.next(&mut reader) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => break Ok(()),
                Err(error) => break Err(error.into()),
            };
            let failed_before = failed;
            let text = match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(bad) => keep_utf8_lines(bad.into_bytes(), line_no, |error| {
                    failed += 1;
                    failures.item_failed(NodeError::from(BoxError::from(error)));
                }),
            };
            let block = Arc::new(text);
            let base = block.as_ptr() as usize;
            let lines = block.lines().map(|line| Line {
                start: line.as_ptr() as usize - base,
                end: line.as_ptr() as usize - base + line.len(),
                block: block.clone(),
            });
            let mut pushed = 0u64;
            let lines = lines.inspect(|_| pushed += 1);
            // `Err` is the pipeline stopping: the source just ends.
            let stopped = out.push_all(lines).await.is_err();
            line_no += pushed + (failed - failed_before);
            if stopped {
                break Ok(());
            }
        };
        out.failed_items(failed).await;
        result
    }
}

/// Cuts what a reader gives into blocks of whole lines.
struct Blocks {
    size: usize,
    /// The start of a line the last block did not end.
    carried: Vec<u8>,
}

impl Blocks {
    fn new(size: usize) -> Self {
        Blocks {
            size,
            carried: Vec::new(),
        }
    }

    /// The next block: whole lines, up to the last newline read (or to the end of the
    /// input, for a last line without one); `None` once the input has ended.
    fn next(&mut self, reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
        let mut buf = std::mem::take(&mut self.carried);
        buf.reserve(self.size);
        loop {
            let filled = buf.len();
            if filled == buf.capacity() {
                // A line longer than a block: it comes whole, in a larger one.
                buf.reserve(filled.max(self.size));
            }
            buf.resize(buf.capacity(), 0);
            let read = loop {
                match reader.read(&mut buf[filled..]) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                    other => break other,
                }
            };
            let n = match read {
                Ok(n) => n,
                Err(error) => {
                    // What was read stays for a caller that tries again.
                    buf.truncate(filled);
                    self.carried = buf;
                    return Err(error);
                }
            };
            buf.truncate(filled + n);
            if n == 0 {
                return Ok((!buf.is_empty()).then_some(buf));
            }
            // Only the bytes just read can hold the block's last newline.
            if let Some(last) = buf[filled..].iter().rposition(|&b| b == b'\n') {
                let end = filled + last + 1;
                let mut rest = Vec::with_capacity(self.size);
                rest.extend_from_slice(&buf[end..]);
                self.carried = rest;
                buf.truncate(end);
                return Ok(Some(buf));
            }
        }
    }
}

/// The UTF-8 lines of a block that has some others, each with its newline; `bad` hears of
/// each other line. `line_no`: the lines before the block.
fn keep_utf8_lines(bytes: Vec<u8>, line_no: u64, mut bad: impl FnMut(NotUtf8)) -> String {
    let mut text = String::with_capacity(bytes.len());
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    for (i, line) in body.split(|&b| b == b'\n').enumerate() {
        match std::str::from_utf8(line) {
            Ok(line) => {
                text.push_str(line);
                text.push('\n');
            }
            Err(error) => bad(NotUtf8 {
                line: line_no + i as u64 + 1,
                column: error.valid_up_to() + 1,
            }),
        }
    }
    text
}

/// A line of [`lines`]'s input that is not UTF-8.
#[derive(Debug)]
struct NotUtf8 {
    line: u64,
    /// Of the first byte that is not.
    column: usize,
}

impl fmt::Display for NotUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {} is not UTF-8 (byte {} of the line)",
            self.line, self.column
        )
    }
}

impl std::error::Error for NotUtf8 {}

/// A line of text from [`lines`]: a `str` (it derefs to one) that shares the block it was
/// read in. Cloning it is cheap; the block's memory is freed when its last line is
/// dropped, so a line kept for long keeps its block: keep [`Line::into_string`] instead.
#[derive(Clone)]
pub struct Line {
    block: Arc<String>,
    start: usize,
    end: usize,
}

impl Line {
    /// The line's text.
    pub fn as_str(&self) -> &str {
        &self.block[self.start..self.end]
    }

    /// The line as a `String` of its own, which no longer keeps the block.
    pub fn into_string(self) -> String {
        self.as_str().to_owned()
    }
}

impl Deref for Line {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Line {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Line {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Line {
    fn from(text: &str) -> Self {
        Line::from(text.to_owned())
    }
}

impl From<String> for Line {
    fn from(text: String) -> Self {
        let end = text.len();
        Line {
            block: Arc::new(text),
            start: 0,
            end,
        }
    }
}

impl From<Line> for String {
    fn from(line: Line) -> Self {
        line.into_string()
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Line {
    fn eq(&self, other: &Line) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Line {}

impl PartialEq<str> for Line {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Line {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Line {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialOrd for Line {
    fn partial_cmp(&self, other: &Line) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Line {
    fn cmp(&self, other: &Line) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Line {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// A line crosses processes (`#![distributed]`) as its text.
#[cfg(feature = "serde")]
impl serde::Serialize for Line {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Line {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Line::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn blocks_of(text: &[u8], size: usize, step: usize) -> Vec<Vec<u8>> {
        let mut reader = Trickle { bytes: text, step };
        let mut blocks = Blocks::new(size);
        std::iter::from_fn(|| blocks.next(&mut reader).unwrap()).collect()
    }

    #[test]
    fn blocks_end_at_a_newline_and_together_are_the_input() {
        let text = b"one\ntwo\r\nthree\n\nfour, a longer line than a block\nlast";
        for size in [1, 3, 8, 64] {
            for step in [1, 2, 5, 100] {
                let blocks = blocks_of(text, size, step);
                assert_eq!(blocks.concat(), text, "size {size}, step {step}");
                for block in &blocks[..blocks.len() - 1] {
                    assert_eq!(block.last(), Some(&b'\n'), "size {size}, step {step}");
                }
            }
        }
        assert!(blocks_of(b"", 8, 8).is_empty());
    }

    #[test]
    fn a_block_with_bad_bytes_keeps_its_good_lines_and_numbers_the_bad() {
        let mut bad = Vec::new();
        let text = keep_utf8_lines(b"ok\nb\xffd\nfine\n".to_vec(), 10, |e| bad.push(e));
        assert_eq!(text, "ok\nfine\n");
        assert_eq!(bad.len(), 1);
        assert_eq!(
            bad[0].to_string(),
            "line 12 is not UTF-8 (byte 2 of the line)"
        );
    }

    #[test]
    fn a_line_is_its_text() {
        let line = Line::from("a line");
        assert_eq!(line, "a line");
        assert_eq!(line.len(), 6);
        assert_eq!(format!("{line} {line:?}"), "a line \"a line\"");
        assert_eq!(String::from(line.clone()), "a line");
        let set: std::collections::HashSet<Line> = [line].into_iter().collect();
        assert!(set.contains("a line"));
    }
}
