//! Readers for the three source formats. Each turns bytes into rows with their 1-based
//! physical line numbers, and never stops at a bad row: a row that cannot be read becomes a
//! reject and the reader goes on with the next one.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use serde_json::Value;

use super::{Reason, Reject};

/// A row's field lookup, whatever the format.
pub(crate) trait Row {
    /// The value under `spec` (a CSV header name, a JSON key or JSON pointer); `Ok(None)` when
    /// absent, null or empty; `Err` (a reason and message) when present but unreadable.
    fn get(&self, spec: &str) -> Result<Option<Cow<'_, str>>, (Reason, String)>;
}

/// Receives rows and rejects as they are read.
pub(crate) trait RowSink {
    fn row(&mut self, line: u64, row: &dyn Row);
    fn reject(&mut self, reject: Reject);
}

/// Wraps the input so that UTF-8 sources pass through untouched (invalid bytes are found per
/// field, with their line) and others are decoded to UTF-8 on the fly. A UTF-8 BOM is dropped.
pub(crate) fn decoded(
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

/// Splits one framed record into fields with `csv_core`. Returns whether quoting was balanced.
fn split_record(
    parser: &mut csv_core::Reader,
    input: &[u8],
    out: &mut Vec<u8>,
    ends: &mut Vec<usize>,
) -> bool {
    use csv_core::ReadFieldResult;
    parser.reset();
    out.clear();
    ends.clear();
    out.resize(input.len() + 16, 0);
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
                    ReadFieldResult::OutputFull => return false,
                    _ => {}
                }
                break;
            }
            ReadFieldResult::OutputFull => return false,
            ReadFieldResult::Field { record_end } => {
                ends.push(written);
                if record_end {
                    break;
                }
            }
            ReadFieldResult::End => break,
        }
    }
    out.truncate(written);
    true
}

fn quote_count(line: &[u8], quote: u8) -> usize {
    line.iter().filter(|&&b| b == quote).count()
}

/// Reads a delimited file with a header row.
///
/// Records are framed by quote parity: a line with an odd number of quotes continues on the
/// next line (a quoted newline). If a multi-line record has the wrong number of fields, or a
/// quote never closes, only its first line is rejected and reading resumes on the line after
/// it, so one stray quote never swallows the rest of the file.
pub(crate) fn read_csv(
    source: &str,
    mut input: Box<dyn BufRead + Send>,
    delimiter: u8,
    sink: &mut dyn RowSink,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<Option<Vec<String>>> {
    let quote = b'"';
    let mut parser = csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .quote(quote)
        .build();
    let mut header: Option<Vec<String>> = None;
    let mut out = Vec::new();
    let mut ends = Vec::new();
    // Pending physical lines of the record being framed: (line number, bytes without EOL).
    let mut pending: std::collections::VecDeque<(u64, Vec<u8>)> = std::collections::VecDeque::new();
    let mut line_no = 0u64;
    let mut eof = false;
    let mut buf = Vec::with_capacity(512);

    loop {
        // Frame one record out of `pending`, reading more lines as needed.
        let mut take = 0usize;
        let mut quotes = 0usize;
        let framed = loop {
            if take < pending.len() {
                quotes += quote_count(&pending[take].1, quote);
                take += 1;
                if quotes.is_multiple_of(2) {
                    break true;
                }
                if take >= MAX_RECORD_LINES {
                    break false;
                }
                continue;
            }
            if eof {
                break false;
            }
            buf.clear();
            let n = input.read_until(b'\n', &mut buf)?;
            on_bytes(n as u64);
            if n == 0 {
                eof = true;
                continue;
            }
            line_no += 1;
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            pending.push_back((line_no, std::mem::take(&mut buf)));
        };
        if pending.is_empty() {
            break;
        }
        let first_line = pending[0].0;
        if !framed {
            // Unclosed quote: give up on the first line only.
            pending.pop_front();
            sink.reject(Reject::new(
                source,
                first_line,
                None,
                Reason::MalformedRow,
                "unclosed quote".into(),
            ));
            continue;
        }
        let mut joined = Vec::new();
        for (i, (_, l)) in pending.iter().take(take).enumerate() {
            if i > 0 {
                joined.push(b'\n');
            }
            joined.extend_from_slice(l);
        }
        let balanced = split_record(&mut parser, &joined, &mut out, &mut ends);
        let blank = joined.iter().all(u8::is_ascii_whitespace);
        match &header {
            _ if blank && take == 1 => {
                pending.pop_front();
            }
            None => {
                if !balanced {
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
                header = Some(names);
                pending.drain(..take);
            }
            Some(h) => {
                if balanced && ends.len() == h.len() {
                    sink.row(
                        first_line,
                        &CsvRow {
                            header: h,
                            fields: &out,
                            ends: &ends,
                        },
                    );
                    pending.drain(..take);
                } else if take > 1 {
                    // A stray quote joined lines that are not one record: refuse the first
                    // line and re-frame from the next.
                    pending.pop_front();
                    sink.reject(Reject::new(
                        source,
                        first_line,
                        None,
                        Reason::MalformedRow,
                        "stray quote: the row does not close its quoted field".into(),
                    ));
                } else {
                    pending.pop_front();
                    sink.reject(Reject::new(
                        source,
                        first_line,
                        None,
                        Reason::MalformedRow,
                        format!("{} fields where the header has {}", ends.len(), h.len()),
                    ));
                }
            }
        }
    }
    Ok(header)
}

// ---------------------------------------------------------------------------------------------
// JSON

struct JsonRow<'a>(&'a Value);

impl Row for JsonRow<'_> {
    fn get(&self, spec: &str) -> Result<Option<Cow<'_, str>>, (Reason, String)> {
        let v = if spec.starts_with('/') {
            self.0.pointer(spec)
        } else {
            self.0.get(spec)
        };
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(Cow::Borrowed(s))),
            Some(Value::Number(n)) => Ok(Some(Cow::Owned(n.to_string()))),
            Some(Value::Bool(b)) => Ok(Some(Cow::Owned(b.to_string()))),
            Some(_) => Err((
                Reason::MalformedRow,
                format!("{spec}: expected a string, found an object or array"),
            )),
        }
    }
}

fn json_object(source: &str, line: u64, bytes: &[u8], sink: &mut dyn RowSink) {
    if let Err((reason, message)) = utf8(bytes, "record") {
        sink.reject(Reject::new(source, line, None, reason, message));
        return;
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v @ Value::Object(_)) => sink.row(line, &JsonRow(&v)),
        Ok(_) => sink.reject(Reject::new(
            source,
            line,
            None,
            Reason::MalformedRow,
            "not a JSON object".into(),
        )),
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

/// Reads one JSON object per line; blank lines are skipped.
pub(crate) fn read_ndjson(
    source: &str,
    mut input: Box<dyn BufRead + Send>,
    sink: &mut dyn RowSink,
    mut on_bytes: impl FnMut(u64),
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(());
        }
        on_bytes(n as u64);
        line += 1;
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        json_object(source, line, &buf, sink);
    }
}

/// Streams the elements of one top-level JSON array: each element is cut out by a small
/// scanner (strings, escapes and nesting tracked) and parsed on its own, so memory stays flat
/// and a malformed element is rejected alone with the line it starts on.
pub(crate) fn read_json_array(
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
            if b == b'\n' {
                line += 1;
            }
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
            let lines = bytes.iter().filter(|&&b| b == b'\n').count() as u64 + 1;
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
}
