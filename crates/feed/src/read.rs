//! Readers for the three source formats. Each turns bytes into rows with their 1-based
//! physical line numbers, and never stops at a bad row: a row that cannot be read becomes a
//! reject and the reader goes on with the next one.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Why a record was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// A key field is empty.
    MissingKey,
    /// A phone number is present but not a valid number.
    InvalidPhone,
    /// An e-mail address is present but not shaped like one.
    InvalidEmail,
    /// The timestamp is missing or does not match the source's format.
    BadTimestamp,
    /// The row cannot be read (broken quoting, wrong field count, invalid JSON).
    MalformedRow,
    /// The bytes are not valid in the source's declared encoding.
    BadEncoding,
}

/// One refused record, as written to `rejects.ndjson`. Never carries the raw phone or e-mail.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reject {
    /// Source name.
    pub source: String,
    /// 1-based physical line in that source where the record starts.
    pub line: u64,
    /// The source field (column or JSON key) at fault, when one is.
    pub field: Option<String>,
    /// Reason code.
    pub reason: Reason,
    /// A short explanation.
    pub message: String,
}

impl Reject {
    pub fn new(
        source: &str,
        line: u64,
        field: Option<&str>,
        reason: Reason,
        message: String,
    ) -> Self {
        Self {
            source: source.to_owned(),
            line,
            field: field.map(str::to_owned),
            reason,
            message,
        }
    }
}

/// A row's field lookup, whatever the format.
pub trait Row {
    /// The value under `spec` (a CSV header name, a JSON key or JSON pointer); `Ok(None)` when
    /// absent, null or empty; `Err` (a reason and message) when present but unreadable.
    fn get(&self, spec: &str) -> Result<Option<Cow<'_, str>>, (Reason, String)>;
}

/// Receives rows and rejects as they are read.
pub trait RowSink {
    /// A CSV file's header (names trimmed), before its first row. An `Err` (a message naming
    /// no values) stops the read: the file does not fit the configuration.
    fn header(&mut self, _names: &[String]) -> Result<(), String> {
        Ok(())
    }
    fn row(&mut self, line: u64, row: &dyn Row);
    fn reject(&mut self, reject: Reject);
}

/// How a physical line ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Eol {
    Lf,
    CrLf,
    Cr,
    /// The last line of a file without a final line break.
    None,
}

impl Eol {
    fn bytes(self) -> &'static [u8] {
        match self {
            Eol::Lf => b"\n",
            Eol::CrLf => b"\r\n",
            Eol::Cr => b"\r",
            Eol::None => b"",
        }
    }
}

/// Splits a byte stream into physical lines at LF, CRLF or a bare CR (old Mac exports, some
/// Excel saves), whichever each line uses. Line ends are found with a vectorized search over
/// the reader's own buffer, so a line costs one copy and no per-byte work.
struct Lines {
    input: Box<dyn BufRead + Send>,
    line_no: u64,
}

impl Lines {
    fn new(input: Box<dyn BufRead + Send>) -> Self {
        Self { input, line_no: 0 }
    }

    /// The reader's buffer, refilled when empty; retries an interrupted read.
    fn fill(&mut self) -> std::io::Result<&[u8]> {
        loop {
            match self.input.fill_buf() {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
                Ok(_) => break,
            }
        }
        // Filled above: this returns the buffered bytes (it reads again only at the end).
        self.input.fill_buf()
    }

    /// Appends the next line's bytes (without its line end) to `out`; returns its 1-based number
    /// and how it ended, or `None` at the end of the input.
    fn next_into(
        &mut self,
        out: &mut Vec<u8>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> std::io::Result<Option<(u64, Eol)>> {
        let mut any = false;
        loop {
            let buf = self.fill()?;
            if buf.is_empty() {
                if !any {
                    return Ok(None);
                }
                self.line_no += 1;
                return Ok(Some((self.line_no, Eol::None)));
            }
            let Some(i) = memchr::memchr2(b'\r', b'\n', buf) else {
                out.extend_from_slice(buf);
                let n = buf.len();
                self.input.consume(n);
                on_bytes(n as u64);
                any = true;
                continue;
            };
            out.extend_from_slice(&buf[..i]);
            let (used, eol) = match (buf[i], buf.get(i + 1)) {
                (b'\n', _) => (i + 1, Eol::Lf),
                (_, Some(b'\n')) => (i + 2, Eol::CrLf),
                (_, Some(_)) => (i + 1, Eol::Cr),
                // A CR at the end of the buffer: the next byte decides CR or CRLF.
                (_, None) => (i + 1, Eol::Cr),
            };
            let at_end = eol == Eol::Cr && i + 1 == buf.len();
            self.input.consume(used);
            on_bytes(used as u64);
            let mut eol = eol;
            if at_end && self.fill()?.first() == Some(&b'\n') {
                self.input.consume(1);
                on_bytes(1);
                eol = Eol::CrLf;
            }
            self.line_no += 1;
            return Ok(Some((self.line_no, eol)));
        }
    }
}

/// Opens a feed for reading: the file at `path`, or stdin when `path` is `None`, decoded from
/// `encoding` (see [`decoded`]). The one way every job opens its input.
pub fn open(
    path: Option<&std::path::Path>,
    encoding: &'static encoding_rs::Encoding,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    let input: Box<dyn Read + Send> = match path {
        Some(p) => Box::new(std::fs::File::open(p)?),
        None => Box::new(std::io::stdin()),
    };
    Ok(decoded(input, encoding))
}

/// Wraps the input so that UTF-8 sources pass through untouched (invalid bytes are found per
/// field, with their line) and others are decoded to UTF-8 on the fly. A UTF-8 BOM is dropped.
pub fn decoded(
    input: Box<dyn Read + Send>,
    encoding: &'static encoding_rs::Encoding,
) -> Box<dyn BufRead + Send> {
    const CAP: usize = 256 * 1024;
    if encoding == encoding_rs::UTF_8 {
        let mut r = BufReader::with_capacity(CAP, input);
        if let Ok(buf) = r.fill_buf()
            && buf.starts_with(b"\xEF\xBB\xBF")
        {
            r.consume(3);
        }
        Box::new(r)
    } else {
        let dec = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(Some(encoding))
            .bom_override(true)
            .build(input);
        Box::new(BufReader::with_capacity(CAP, dec))
    }
}

fn utf8<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, (Reason, String)> {
    std::str::from_utf8(bytes).map_err(|e| {
        (
            Reason::BadEncoding,
            format!(
                "{what}: invalid UTF-8 at byte {} (declare the source's encoding)",
                e.valid_up_to()
            ),
        )
    })
}

// ---------------------------------------------------------------------------------------------
// CSV

/// Most physical lines one record may span (quoted newlines) before its opening line is judged
/// an unclosed quote and reading restarts on the next line.
const MAX_RECORD_LINES: usize = 200;

struct CsvRow<'a> {
    header: &'a [String],
    fields: &'a [u8],
    ends: &'a [usize],
}

impl Row for CsvRow<'_> {
    fn get(&self, spec: &str) -> Result<Option<Cow<'_, str>>, (Reason, String)> {
        let Some(i) = self.header.iter().position(|h| h == spec) else {
            return Ok(None);
        };
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        let s = utf8(&self.fields[start..self.ends[i]], spec)?;
        Ok(if s.trim().is_empty() {
            None
        } else {
            Some(Cow::Borrowed(s))
        })
    }
}

/// Splits one framed record into fields with `csv_core`: the field bytes go to `out` (grown as
/// needed, never shrunk), their end offsets to `ends`. Returns the bytes written, or `None` when
/// the bytes are not exactly one record (a quote left open, or a line break outside quotes).
fn split_record(
    parser: &mut csv_core::Reader,
    input: &[u8],
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> Option<usize> {
    use csv_core::ReadFieldResult;
    parser.reset();
    ends.clear();
    // Unquoting only shrinks a record.
    if out.len() < input.len() + 16 {
        out.resize(input.len() + 16, 0);
    }
    let mut inp = input;
    let mut written = 0;
    loop {
        let (res, nin, nout) = parser.read_field(inp, &mut out[written..]);
        inp = &inp[nin..];
        written += nout;
        match res {
            ReadFieldResult::InputEmpty => {
                // Signal end of input once; the parser then finishes the last field.
                let (res, _, nout) = parser.read_field(&[], &mut out[written..]);
                written += nout;
                match res {
                    ReadFieldResult::Field { .. } => ends.push(written),
                    ReadFieldResult::OutputFull => return None,
                    _ => {}
                }
                return Some(written);
            }
            ReadFieldResult::OutputFull => return None,
            ReadFieldResult::Field { record_end } => {
                ends.push(written);
                if record_end {
                    // Anything left is a second record joined to this one by a stray quote.
                    return inp.is_empty().then_some(written);
                }
            }
            ReadFieldResult::End => return Some(written),
        }
    }
}

fn quote_count(line: &[u8], quote: u8) -> usize {
    memchr::memchr_iter(quote, line).count()
}

/// Physical lines, with the lines of a refused multi-line record put back for re-framing.
struct LineSource {
    lines: Lines,
    requeued: std::collections::VecDeque<(u64, Vec<u8>, Eol)>,
}

impl LineSource {
    fn next_into(
        &mut self,
        out: &mut Vec<u8>,
        on_bytes: &mut dyn FnMut(u64),
    ) -> std::io::Result<Option<(u64, Eol)>> {
        if let Some((n, bytes, eol)) = self.requeued.pop_front() {
            out.extend_from_slice(&bytes);
            return Ok(Some((n, eol)));
        }
        self.lines.next_into(out, on_bytes)
    }

    /// Puts back every line of `record` after its first, to be read again next.
    fn requeue_after_first(&mut self, record: &[u8], spans: &[(u64, usize, Eol)]) {
        for (i, &(n, start, eol)) in spans.iter().enumerate().skip(1).rev() {
            let end = spans
                .get(i + 1)
                .map_or(record.len(), |next| next.1 - eol.bytes().len());
            self.requeued
                .push_front((n, record[start..end].to_vec(), eol));
        }
    }
}

/// Reads a delimited file with a header row.
///
/// Lines end at LF, CRLF or a bare CR. Records are framed by quote parity: a line with an odd
/// number of quotes continues on the next line (a quoted line break, kept as written). If a
/// multi-line record has the wrong number of fields, or a quote never closes, only its first
/// line is rejected and reading resumes on the line after it, so one stray quote never
/// swallows the rest of the file. Every line holding data is a row, a reject, or part of a
/// multi-line row.
pub fn read_csv(
    source: &str,
    input: Box<dyn BufRead + Send>,
    delimiter: u8,
    sink: &mut dyn RowSink,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<()> {
    let quote = b'"';
    let mut parser = csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .build();
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();
    let mut ends = Vec::new();
    let mut lines = LineSource {
        lines: Lines::new(input),
        requeued: std::collections::VecDeque::new(),
    };
    // The record being framed, and where each of its lines starts in it.
    let mut record = Vec::with_capacity(1024);
    let mut spans: Vec<(u64, usize, Eol)> = Vec::new();

    loop {
        record.clear();
        spans.clear();
        let Some((first_line, eol)) = lines.next_into(&mut record, &mut on_bytes)? else {
            break;
        };
        spans.push((first_line, 0, eol));
        let mut quotes = quote_count(&record, quote);
        while !quotes.is_multiple_of(2) && spans.len() < MAX_RECORD_LINES {
            let before = record.len();
            record.extend_from_slice(eol_of_last(&spans).bytes());
            let start = record.len();
            match lines.next_into(&mut record, &mut on_bytes)? {
                Some((n, eol)) => {
                    quotes += quote_count(&record[start..], quote);
                    spans.push((n, start, eol));
                }
                None => {
                    record.truncate(before);
                    break;
                }
            }
        }
        if !quotes.is_multiple_of(2) {
            // Unclosed quote: give up on the first line only.
            lines.requeue_after_first(&record, &spans);
            sink.reject(Reject::new(
                source,
                first_line,
                None,
                Reason::MalformedRow,
                "unclosed quote".into(),
            ));
            continue;
        }
        if spans.len() == 1 && record.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let split = split_record(&mut parser, &record, &mut out, &mut ends);
        match &header {
            None => {
                if split.is_none() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "unreadable header row",
                    ));
                }
                let mut names = Vec::with_capacity(ends.len());
                let mut start = 0;
                for &e in &ends {
                    let name = String::from_utf8_lossy(&out[start..e]).trim().to_owned();
                    names.push(name);
                    start = e;
                }
                sink.header(&names)
                    .map_err(|m| std::io::Error::new(std::io::ErrorKind::InvalidData, m))?;
                header = Some(names);
            }
            Some(h) => match split {
                Some(written) if ends.len() == h.len() => {
                    sink.row(
                        first_line,
                        &CsvRow {
                            header: h,
                            fields: &out[..written],
                            ends: &ends,
                        },
                    );
                }
                _ if spans.len() > 1 => {
                    // A stray quote joined lines that are not one record: refuse the first
                    // line and re-frame from the next.
                    lines.requeue_after_first(&record, &spans);
                    sink.reject(Reject::new(
                        source,
                        first_line,
                        None,
                        Reason::MalformedRow,
                        "stray quote: the row does not close its quoted field".into(),
                    ));
                }
                _ => {
                    sink.reject(Reject::new(
                        source,
                        first_line,
                        None,
                        Reason::MalformedRow,
                        format!("{} fields where the header has {}", ends.len(), h.len()),
                    ));
                }
            },
        }
    }
    Ok(())
}

fn eol_of_last(spans: &[(u64, usize, Eol)]) -> Eol {
    spans.last().map_or(Eol::None, |s| s.2)
}

/// Describes a header for an error message without echoing data: the number of columns and,
/// when the line looks like column names, the first few of them. A line holding values (an
/// e-mail address, a number of three or more digits, a long or unreadable cell: a file
/// without a header row, or in another encoding) is not quoted at all.
pub fn describe_header(names: &[String]) -> String {
    const SHOWN: usize = 12;
    const LONGEST: usize = 40;
    let value_like = |n: &str| {
        n.len() > LONGEST
            || n.contains('@')
            || n.contains('\u{FFFD}')
            || n.chars().any(char::is_control)
            || n.bytes().filter(u8::is_ascii_digit).count() >= 3
    };
    let count = match names.len() {
        1 => "1 column".to_owned(),
        n => format!("{n} columns"),
    };
    if names.iter().any(|n| value_like(n)) {
        return format!(
            "found {count}; the first line holds values, not column names (not shown): does the file have a header row, in the declared encoding and delimiter?"
        );
    }
    let mut shown: Vec<String> = names.iter().take(SHOWN).map(|n| format!("`{n}`")).collect();
    if names.len() > SHOWN {
        shown.push(format!("and {} more", names.len() - SHOWN));
    }
    format!("found {count}: {}", shown.join(", "))
}

// ---------------------------------------------------------------------------------------------
// JSON

/// One JSON object, read without building a tree: its top-level keys (borrowed from the input
/// unless they hold escapes) and each value's raw text, parsed only when a field asks for it. A
/// row reads a handful of fields, so the strings of the others are never allocated. The whole
/// object is still checked as JSON while it is split (the raw values are validated as they are
/// skipped).
struct JsonObject<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for JsonObject<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = JsonObject<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(key) = map.next_key::<CowStr<'de>>()? {
                    fields.push((key.0, map.next_value::<&'de RawValue>()?));
                }
                Ok(JsonObject(fields))
            }
        }
        d.deserialize_map(Fields)
    }
}

/// A string borrowed from the input when it holds no escape, owned when it does (serde's
/// `Cow<str>` always copies).
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Str;
        impl<'de> serde::de::Visitor<'de> for Str {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Str)
    }
}

impl<'a> JsonObject<'a> {
    /// The raw value under `key`; the last one when a key repeats (as a parsed tree keeps it).
    fn raw(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }

    /// The raw value at a JSON pointer (`/contact/phone`, with `~1` for `/` and `~0` for `~`),
    /// or under a top-level key.
    fn lookup(&self, spec: &str) -> Option<&'a RawValue> {
        let Some(pointer) = spec.strip_prefix('/') else {
            return self.raw(spec);
        };
        let mut tokens = pointer.split('/').map(|t| {
            if t.contains('~') {
                Cow::Owned(t.replace("~1", "/").replace("~0", "~"))
            } else {
                Cow::Borrowed(t)
            }
        });
        let first = tokens.next()?;
        let mut at = self.raw(&first)?;
        for token in tokens {
            at = step(at, &token)?;
        }
        Some(at)
    }
}

/// One step of a JSON pointer into a raw value: an object's key or an array's index.
fn step<'a>(raw: &'a RawValue, token: &str) -> Option<&'a RawValue> {
    match raw.get().as_bytes().first()? {
        b'{' => serde_json::from_str::<JsonObject<'a>>(raw.get())
            .ok()?
            .raw(token),
        b'[' => {
            // RFC 6901: a decimal index without leading zeros.
            if token.len() > 1 && token.starts_with('0') {
                return None;
            }
            let i: usize = token.parse().ok()?;
            serde_json::from_str::<Vec<&'a RawValue>>(raw.get())
                .ok()?
                .get(i)
                .copied()
        }
        _ => None,
    }
}

impl Row for JsonObject<'_> {
    fn get(&self, spec: &str) -> Result<Option<Cow<'_, str>>, (Reason, String)> {
        let Some(raw) = self.lookup(spec) else {
            return Ok(None);
        };
        let text = raw.get();
        let unexpected = || {
            (
                Reason::MalformedRow,
                format!("{spec}: expected a string, found an object or array"),
            )
        };
        match text.as_bytes().first() {
            Some(b'"') => {
                let s = serde_json::from_str::<CowStr<'_>>(text)
                    .map_err(|_| unexpected())?
                    .0;
                Ok((!s.trim().is_empty()).then_some(s))
            }
            Some(b'{' | b'[') => Err(unexpected()),
            Some(b'n') => Ok(None),
            Some(b't' | b'f') => Ok(Some(Cow::Borrowed(text))),
            // A number, written as a parsed tree writes it (`1.7e9` → `1700000000.0`).
            _ => serde_json::from_str::<serde_json::Number>(text)
                .map(|n| Some(Cow::Owned(n.to_string())))
                .map_err(|_| unexpected()),
        }
    }
}

fn json_object(source: &str, line: u64, bytes: &[u8], sink: &mut dyn RowSink) {
    let text = match utf8(bytes, "record") {
        Ok(t) => t,
        Err((reason, message)) => {
            sink.reject(Reject::new(source, line, None, reason, message));
            return;
        }
    };
    match serde_json::from_str::<JsonObject<'_>>(text) {
        Ok(object) => sink.row(line, &object),
        // Valid JSON, but an array, a string or a number.
        Err(_) if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() => {
            sink.reject(Reject::new(
                source,
                line,
                None,
                Reason::MalformedRow,
                "not a JSON object".into(),
            ));
        }
        Err(e) => sink.reject(Reject::new(
            source,
            line,
            None,
            Reason::MalformedRow,
            format!(
                "invalid JSON at column {}: {}",
                e.column(),
                e.classify_name()
            ),
        )),
    }
}

trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "syntax error",
            serde_json::error::Category::Data => "unexpected data",
            serde_json::error::Category::Eof => "unexpected end",
        }
    }
}

/// Reads one JSON object per line (lines end at LF, CRLF or a bare CR: JSON text holds no raw
/// line break inside a string); blank lines are skipped.
pub fn read_ndjson(
    source: &str,
    input: Box<dyn BufRead + Send>,
    sink: &mut dyn RowSink,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut lines = Lines::new(input);
    let mut buf = Vec::with_capacity(1024);
    loop {
        buf.clear();
        let Some((line, _)) = lines.next_into(&mut buf, &mut on_bytes)? else {
            return Ok(());
        };
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        json_object(source, line, &buf, sink);
    }
}

/// Streams the elements of one top-level JSON array: each element is cut out by a small
/// scanner (strings, escapes and nesting tracked) and parsed on its own, so memory stays flat
/// and a malformed element is rejected alone with the line it starts on.
pub fn read_json_array(
    source: &str,
    mut input: Box<dyn BufRead + Send>,
    sink: &mut dyn RowSink,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<()> {
    #[derive(PartialEq)]
    enum St {
        Before,
        Between,
        InElem,
        After,
    }
    let mut st = St::Before;
    let mut line = 1u64;
    let mut after_cr = false;
    let mut elem = Vec::with_capacity(1024);
    let mut elem_line = 0u64;
    let mut depth = 0usize;
    let mut in_str = false;
    let mut escaped = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        for &b in chunk {
            // A line ends at LF, CRLF or a bare CR.
            if b == b'\r' || (b == b'\n' && !after_cr) {
                line += 1;
            }
            after_cr = b == b'\r';
            match st {
                St::Before => {
                    if b == b'[' {
                        st = St::Between;
                    } else if !b.is_ascii_whitespace() {
                        sink.reject(Reject::new(
                            source,
                            line,
                            None,
                            Reason::MalformedRow,
                            "expected a JSON array".into(),
                        ));
                        st = St::After;
                    }
                }
                St::Between => {
                    if b == b']' {
                        st = St::After;
                    } else if b == b',' || b.is_ascii_whitespace() {
                    } else {
                        st = St::InElem;
                        elem.clear();
                        elem.push(b);
                        elem_line = line;
                        depth = usize::from(b == b'{' || b == b'[');
                        in_str = b == b'"';
                        escaped = false;
                    }
                }
                St::InElem => {
                    if in_str {
                        elem.push(b);
                        if escaped {
                            escaped = false;
                        } else if b == b'\\' {
                            escaped = true;
                        } else if b == b'"' {
                            in_str = false;
                        }
                        continue;
                    }
                    match b {
                        b'"' => in_str = true,
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' if depth > 0 => depth -= 1,
                        b',' | b']' if depth == 0 => {
                            json_object(source, elem_line, &elem, sink);
                            st = if b == b']' { St::After } else { St::Between };
                            continue;
                        }
                        _ => {}
                    }
                    elem.push(b);
                }
                St::After => {}
            }
        }
        input.consume(n);
        on_bytes(n as u64);
        if st == St::After {
            break;
        }
    }
    if st == St::InElem {
        // The array never closed: the last element is read on its own (a reject if it was
        // cut off mid-way), and the file is flagged as possibly truncated.
        tracing::warn!(
            source,
            line,
            "The JSON array is not closed; the file may be truncated."
        );
        json_object(source, elem_line, &elem, sink);
    } else if st == St::Before {
        // An empty (or whitespace-only) file holds no records: nothing to reject.
    } else if st != St::After {
        sink.reject(Reject::new(
            source,
            line,
            None,
            Reason::MalformedRow,
            "the JSON array is not closed".into(),
        ));
    }
    Ok(())
}

/// A labels file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LabelsError {
    /// The file could not be opened.
    #[error("opening {}: {source}", path.display())]
    Open {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be read to the end.
    #[error("reading {name}: {source}")]
    Read {
        /// The file's name.
        name: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A row without an id, or one the reader refused.
    #[error("{name}: line {line}: {message}")]
    Row {
        /// The file's name.
        name: String,
        /// 1-based line.
        line: u64,
        /// Why (names fields, never values).
        message: String,
    },
}

/// Reads the first two columns of a CSV file with a header row (a `clusters.csv` of
/// `record_id,cluster_id`, or a truth file such as `record_id,entity_id,…`) as
/// `(record id, label)` pairs, through [`read_csv`]: the same decoding, line ends and quoting as
/// every other CSV dedupd reads. A row without an id, or that the reader refuses, is an error
/// naming the file and line.
pub fn read_labels(path: &std::path::Path) -> Result<Vec<(String, String)>, LabelsError> {
    struct Labels {
        columns: Option<(String, String)>,
        pairs: Vec<(String, String)>,
        error: Option<(u64, String)>,
    }
    impl RowSink for Labels {
        fn header(&mut self, names: &[String]) -> Result<(), String> {
            match names {
                [id, label, ..] => {
                    self.columns = Some((id.clone(), label.clone()));
                    Ok(())
                }
                _ => Err(format!(
                    "expected record_id,label ({})",
                    describe_header(names)
                )),
            }
        }
        fn row(&mut self, line: u64, row: &dyn Row) {
            let Some((id_col, label_col)) = &self.columns else {
                return;
            };
            if self.error.is_some() {
                return;
            }
            match (row.get(id_col), row.get(label_col)) {
                (Ok(Some(id)), Ok(label)) => self.pairs.push((
                    id.into_owned(),
                    label.map_or_else(String::new, Cow::into_owned),
                )),
                (Err((_, message)), _) | (_, Err((_, message))) => {
                    self.error = Some((line, message));
                }
                (Ok(None), _) => {
                    self.error = Some((line, "expected record_id,label".into()));
                }
            }
        }
        fn reject(&mut self, reject: Reject) {
            if self.error.is_none() {
                self.error = Some((reject.line, reject.message));
            }
        }
    }
    let input = open(Some(path), encoding_rs::UTF_8).map_err(|source| LabelsError::Open {
        path: path.to_owned(),
        source,
    })?;
    let name = path.display().to_string();
    let mut sink = Labels {
        columns: None,
        pairs: Vec::new(),
        error: None,
    };
    read_csv(&name, input, b',', &mut sink, |_| {}).map_err(|source| LabelsError::Read {
        name: name.clone(),
        source,
    })?;
    if let Some((line, message)) = sink.error {
        return Err(LabelsError::Row {
            name,
            line,
            message,
        });
    }
    Ok(sink.pairs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Default)]
    struct Count {
        rows: Vec<u64>,
        rejects: Vec<u64>,
    }

    impl RowSink for Count {
        fn row(&mut self, line: u64, row: &dyn Row) {
            // Touch every kind of lookup a pipeline makes.
            for spec in ["a", "b", "/x/y", "missing"] {
                let _ = row.get(spec);
            }
            self.rows.push(line);
        }
        fn reject(&mut self, reject: Reject) {
            self.rejects.push(reject.line);
        }
    }

    /// What a parsed tree gives for `spec`: the reading before fields were read in place.
    fn tree_get(v: &serde_json::Value, spec: &str) -> Result<Option<String>, Reason> {
        use serde_json::Value;
        let v = if spec.starts_with('/') {
            v.pointer(spec)
        } else {
            v.get(spec)
        };
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(Reason::MalformedRow),
        }
    }

    #[test]
    fn fields_read_in_place_are_what_a_parsed_tree_gives() {
        let objects = [
            r#"{"a":"x","b":" ","c":null,"d":12,"e":1.7e9,"f":true,"g":{"h":"i"},"j":[1,"k",{"l":"m"}]}"#,
            r#"{"a":"dup","a":"last","q\"k":"esc\u00e9\n","s/t":"slash","u~v":"tilde","":"empty key"}"#,
            r#"{"contact":{"phone":"+1 415","email":null,"nested":{"deep":-0.5}},"n":-12e-3}"#,
            r#"{"a":"\ud83d\ude00 emoji","b":"  padded  ","big":18446744073709551616}"#,
        ];
        let specs = [
            "a",
            "b",
            "c",
            "d",
            "e",
            "f",
            "g",
            "j",
            "missing",
            "q\"k",
            "",
            "/g/h",
            "/g/missing",
            "/j/0",
            "/j/1",
            "/j/2/l",
            "/j/3",
            "/j/01",
            "/j/-",
            "/s~1t",
            "/u~0v",
            "/contact/phone",
            "/contact/email",
            "/contact/nested/deep",
            "/contact",
            "/a/b",
            "/",
            "n",
            "big",
        ];
        for text in objects {
            let tree: serde_json::Value = serde_json::from_str(text).unwrap();
            let object: JsonObject<'_> = serde_json::from_str(text).unwrap();
            for spec in specs {
                let in_place = object
                    .get(spec)
                    .map(|v| v.map(Cow::into_owned))
                    .map_err(|(reason, _)| reason);
                assert_eq!(in_place, tree_get(&tree, spec), "{spec} in {text}");
            }
        }
    }

    #[test]
    fn json_records_that_are_not_objects_or_not_json_are_told_apart() {
        #[derive(Default)]
        struct Messages(Vec<String>, usize);
        impl RowSink for Messages {
            fn row(&mut self, _: u64, _: &dyn Row) {
                self.1 += 1;
            }
            fn reject(&mut self, r: Reject) {
                self.0.push(r.message);
            }
        }
        let mut m = Messages::default();
        let text = b"[1,2]\n\"s\"\n42\n{\"a\":1,}\n{\"a\":\n{\"a\":[1}\n{\"ok\":1}\n";
        read_ndjson("s", input(text), &mut m, |_| {}).unwrap();
        assert_eq!(m.1, 1);
        assert_eq!(&m.0[..3], ["not a JSON object"; 3]);
        for msg in &m.0[3..] {
            assert!(msg.starts_with("invalid JSON at column"), "{msg}");
        }
        assert_eq!(m.0.len(), 6);
    }

    fn input(bytes: &[u8]) -> Box<dyn BufRead + Send> {
        decoded(
            Box::new(std::io::Cursor::new(bytes.to_vec())),
            encoding_rs::UTF_8,
        )
    }

    proptest! {
        /// No input makes a reader panic, and every row or reject carries a line number
        /// inside the input.
        #[test]
        fn readers_are_total(bytes in proptest::collection::vec(prop_oneof![
            Just(b'"'), Just(b','), Just(b'\n'), Just(b'\r'), Just(b'{'), Just(b'}'), Just(b'['),
            Just(b']'), Just(b':'), Just(b'\\'), Just(b'a'), Just(b'1'), any::<u8>()
        ], 0..400)) {
            let lines = line_breaks(&bytes) + 1;
            let mut c = Count::default();
            let _ = read_csv("s", input(&bytes), b',', &mut c, |_| {});
            let mut n = Count::default();
            let _ = read_ndjson("s", input(&bytes), &mut n, |_| {});
            let mut j = Count::default();
            let _ = read_json_array("s", input(&bytes), &mut j, |_| {});
            for (k, one_per_line) in [(&c, true), (&n, true), (&j, false)] {
                let mut all: Vec<u64> = k.rows.iter().chain(&k.rejects).copied().collect();
                prop_assert!(all.iter().all(|&l| l >= 1 && l <= lines), "{all:?} of {lines}");
                if one_per_line {
                    // CSV and NDJSON records start on distinct lines (JSON array elements may
                    // share one).
                    all.sort_unstable();
                    all.dedup();
                    prop_assert_eq!(all.len(), k.rows.len() + k.rejects.len(), "one record per start line");
                }
            }
        }
    }

    /// Line breaks in `bytes`: LF, CRLF and a bare CR each end one line.
    fn line_breaks(bytes: &[u8]) -> u64 {
        let mut n = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\r' || (b == b'\n' && (i == 0 || bytes[i - 1] != b'\r')) {
                n += 1;
            }
        }
        n
    }

    /// Rows with the values under `a`, `b` and `c`.
    #[derive(Default)]
    struct Values {
        rows: Vec<(u64, Vec<Option<String>>)>,
        rejects: Vec<u64>,
    }

    impl RowSink for Values {
        fn row(&mut self, line: u64, row: &dyn Row) {
            let v = ["a", "b", "c"]
                .iter()
                .map(|k| row.get(k).ok().flatten().map(|v| v.into_owned()))
                .collect();
            self.rows.push((line, v));
        }
        fn reject(&mut self, reject: Reject) {
            self.rejects.push(reject.line);
        }
    }

    /// One generated CSV line: a row of three fields (quoted ones may hold the delimiter,
    /// quotes and line breaks of any kind), a single-line row with the wrong number of fields,
    /// or a blank line.
    #[derive(Debug, Clone)]
    enum Line {
        Good(Vec<(String, bool)>),
        WrongCount(Vec<String>),
        Blank,
    }

    fn eol() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("\n"), Just("\r\n"), Just("\r")]
    }

    fn csv_line() -> impl Strategy<Value = Line> {
        let plain = "[a-z][a-z0-9 ]{0,5}";
        let quoted = "[a-z][a-z0-9 ,\"\r\n]{0,8}";
        let field = prop_oneof![
            plain.prop_map(|v| (v, false)),
            quoted.prop_map(|v| (v, true))
        ];
        prop_oneof![
            6 => proptest::collection::vec(field, 3).prop_map(Line::Good),
            2 => prop_oneof![Just(2usize), Just(4)].prop_flat_map(|n| {
                proptest::collection::vec("[a-z][a-z0-9 ]{0,5}", n)
            }).prop_map(Line::WrongCount),
            1 => Just(Line::Blank),
        ]
    }

    proptest! {
        /// Whatever the line endings (LF, CRLF, bare CR, mixed, with or without a final one),
        /// every data line is read: each record is a row at its first line, with its values as
        /// written, or a reject at its line; none is lost or invented.
        #[test]
        fn reads_and_rejects_account_for_every_data_line(
            header_eol in eol(),
            lines in proptest::collection::vec((csv_line(), eol()), 0..40),
            final_eol in any::<bool>(),
        ) {
            let mut text = format!("a,b,c{header_eol}");
            let mut at = 2u64;
            let mut want_rows = Vec::new();
            let mut want_rejects = Vec::new();
            let mut prev_eol = header_eol;
            let count = lines.len();
            for (i, (line, mut end)) in lines.into_iter().enumerate() {
                if i + 1 == count && !final_eol {
                    end = "";
                }
                let body = match line {
                    Line::Good(fields) => {
                        let body: Vec<String> = fields.iter().map(|(v, quoted)| {
                            if *quoted { format!("\"{}\"", v.replace('"', "\"\"")) } else { v.clone() }
                        }).collect();
                        let body = body.join(",");
                        want_rows.push((at, fields.into_iter().map(|(v, _)| Some(v)).collect::<Vec<_>>()));
                        body
                    }
                    Line::WrongCount(fields) => {
                        want_rejects.push(at);
                        fields.join(",")
                    }
                    Line::Blank => {
                        // A CR then an LF would be one CRLF, not two line ends.
                        if prev_eol == "\r" && end.starts_with('\n') {
                            end = "\r";
                        }
                        String::new()
                    }
                };
                at += line_breaks(body.as_bytes()) + 1;
                text.push_str(&body);
                text.push_str(end);
                prev_eol = end;
            }
            let mut got = Values::default();
            read_csv("s", input(text.as_bytes()), b',', &mut got, |_| {}).unwrap();
            prop_assert_eq!(&got.rows, &want_rows, "{:?}", text);
            prop_assert_eq!(&got.rejects, &want_rejects, "{:?}", text);
        }

        /// The same for NDJSON and for a JSON array laid out one element per line.
        #[test]
        fn json_readers_account_for_every_line(
            lines in proptest::collection::vec((0..3u8, eol()), 0..40),
        ) {
            let mut nd = String::new();
            let mut arr = String::from("[");
            let (mut want_rows, mut want_rejects) = (Vec::new(), Vec::new());
            let mut prev_eol = "";
            let mut first = true;
            for (i, (kind, mut end)) in lines.into_iter().enumerate() {
                let line = i as u64 + 1;
                let body = match kind {
                    0 => { want_rows.push(line); format!("{{\"a\": \"{i}\"}}") }
                    1 => { want_rejects.push(line); "{\"a\": tru}".to_owned() }
                    _ => {
                        if prev_eol == "\r" && end.starts_with('\n') {
                            end = "\r";
                        }
                        String::new()
                    }
                };
                nd.push_str(&body);
                nd.push_str(end);
                if !body.is_empty() {
                    if !first {
                        arr.push(',');
                    }
                    first = false;
                }
                arr.push_str(&body);
                arr.push_str(end);
                prev_eol = end;
            }
            arr.push(']');
            let mut n = Count::default();
            read_ndjson("s", input(nd.as_bytes()), &mut n, |_| {}).unwrap();
            prop_assert_eq!((&n.rows, &n.rejects), (&want_rows, &want_rejects), "{:?}", nd);
            let mut j = Count::default();
            read_json_array("s", input(arr.as_bytes()), &mut j, |_| {}).unwrap();
            prop_assert_eq!((&j.rows, &j.rejects), (&want_rows, &want_rejects), "{:?}", arr);
        }
    }

    #[test]
    fn a_line_end_split_across_reads_is_one_line_end() {
        // A reader that hands out one byte at a time puts every CR at the end of a buffer.
        let data = b"a,b\r\n1,x\r\r\n2,y\r3,z\n".to_vec();
        let one_byte = std::io::BufReader::with_capacity(1, std::io::Cursor::new(data));
        let mut c = Count::default();
        read_csv("s", Box::new(one_byte), b',', &mut c, |_| {}).unwrap();
        assert_eq!(c.rows, vec![2, 4, 5]);
        assert!(c.rejects.is_empty());
    }

    #[test]
    fn headers_are_described_without_values() {
        let names = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let d = describe_header(&names(&["id", "name", "email"]));
        assert_eq!(d, "found 3 columns: `id`, `name`, `email`");
        for data in [
            &["A1", "Ann", "ann@x.io"][..],
            &["A1", "Ann", "020 7946 0958"][..],
            &["x".repeat(41).as_str()][..],
        ] {
            let d = describe_header(&names(data));
            for v in data.iter().filter(|v| v.len() > 2) {
                assert!(!d.contains(v), "{d}");
            }
            assert!(d.contains("not shown"), "{d}");
        }
    }

    #[test]
    fn json_array_edges() {
        let run = |text: &str| {
            let mut c = Count::default();
            read_json_array("s", input(text.as_bytes()), &mut c, |_| {}).unwrap();
            (c.rows, c.rejects)
        };
        assert_eq!(run(""), (vec![], vec![]), "an empty export has no records");
        assert_eq!(run(" \n "), (vec![], vec![]));
        assert_eq!(run("[]"), (vec![], vec![]));
        assert_eq!(
            run("[{\"a\": 1},\n{\"a\": 2}"),
            (vec![1, 2], vec![]),
            "a complete last element is kept"
        );
        assert_eq!(
            run("[{\"a\": 1},\n{\"a\": "),
            (vec![1], vec![2]),
            "a cut-off element is the reject"
        );
        assert_eq!(run("{\"a\": 1}"), (vec![], vec![1]), "not an array");
    }

    #[test]
    fn a_csv_record_with_a_quoted_newline_keeps_its_first_line() {
        let mut c = Count::default();
        let data = b"a,b\n1,\"x\ny\"\n2,z\n";
        read_csv("s", input(data), b',', &mut c, |_| {}).unwrap();
        assert_eq!(c.rows, vec![2, 4]);
        assert!(c.rejects.is_empty());
    }

    #[test]
    fn read_labels_takes_the_first_two_columns_and_names_a_row_without_an_id() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("truth.csv");
        std::fs::write(
            &good,
            "record_id,entity_id,extra\r\nA,e1,x\nB,,y\n\"C\",e2,z\n",
        )
        .unwrap();
        assert_eq!(
            read_labels(&good).unwrap(),
            [
                ("A".to_owned(), "e1".to_owned()),
                ("B".to_owned(), String::new()),
                ("C".to_owned(), "e2".to_owned())
            ]
        );
        let bad = dir.path().join("clusters.csv");
        std::fs::write(&bad, "record_id,cluster_id\nA,k1\n,k2\n").unwrap();
        let err = read_labels(&bad).unwrap_err().to_string();
        assert!(err.contains("clusters.csv: line 3"), "{err}");
    }
}
