//! A fast path for [`super::text`]'s HTML stripping: a small tag/entity scanner that gives
//! byte for byte the string the full parse (html5ever through `scraper`, then a walk of the
//! tree) gives, for the simple markup real messages carry, without building a DOM.
//!
//! It models just enough of the HTML parsing algorithm to know where every text run and every
//! block boundary lands: the implied `html`/`head`/`body` elements, where whitespace goes
//! before `body`, the dropped `title`/`style`/`script` elements and a whitelist of common
//! inline and block elements that it sees properly nested. Anything whose outcome needs more
//! of the algorithm (a misnested or implied end tag, `<p>` closed by a block, tables, forms,
//! `<template>`, `<noscript>`, foreign content, CDATA, a named character reference outside a
//! small table, a NUL, an unclosed script, a bogus comment, …) makes it answer `None`, and the
//! caller runs the full parse. The differential tests in `text.rs` hold it to that.

/// The text of `s` as the full parse would give it, or `None` when `s` uses something this
/// scanner does not model.
pub(super) fn strip_html_fast(s: &str) -> Option<String> {
    if s.contains(['\u{FEFF}', '\0']) {
        // The tokenizer drops a BOM at the start of each chunk it is fed (the start, and after
        // every `</script>`), and has rules for NUL: leave both to it.
        return None;
    }
    if s.contains('\r') {
        // The input stream turns CR LF and lone CR into LF before tokenizing.
        let normalized = s.replace("\r\n", "\n").replace('\r', "\n");
        return Scanner::new(&normalized).run();
    }
    Scanner::new(s).run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Initial,
    BeforeHtml,
    BeforeHead,
    InHead,
    AfterHead,
    InBody,
    AfterBody,
}

/// How an element of the body whitelist behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// In the list of active formatting elements (`b`, `i`, `a`, …).
    Formatting,
    /// Any other non-special inline element (`span`, `sub`, …).
    Inline,
    /// A special element that closes an open `<p>` (`div`, `li`, `h1`, …); a block boundary.
    Block,
    /// A void element (`br`, `img`, …).
    Void,
    /// `title`, `style`, `script`: raw content, dropped.
    Raw,
}

fn body_kind(name: &str) -> Option<Kind> {
    Some(match name {
        "a" | "b" | "big" | "code" | "em" | "font" | "i" | "s" | "small" | "strike" | "strong"
        | "tt" | "u" => Kind::Formatting,
        "span" | "abbr" | "acronym" | "cite" | "dfn" | "kbd" | "mark" | "q" | "samp" | "sub"
        | "sup" | "var" | "time" | "bdi" | "bdo" | "ins" | "del" | "label" => Kind::Inline,
        "p" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6" | "ul" | "ol" | "li" | "dl"
        | "dt" | "dd" | "blockquote" | "section" | "article" | "header" | "footer" | "nav"
        | "aside" | "main" | "figure" | "figcaption" | "address" | "center" | "pre" => Kind::Block,
        "br" | "hr" | "img" | "wbr" | "meta" | "link" => Kind::Void,
        "title" | "style" | "script" => Kind::Raw,
        // Outlook's `o:p` is an "any other" element.
        "o:p" => Kind::Inline,
        _ => return None,
    })
}

fn is_heading(name: &str) -> bool {
    matches!(name, "h1" | "h2" | "h3" | "h4" | "h5" | "h6")
}

/// HTML whitespace as the tree builder splits it (CR is gone after preprocessing).
fn is_html_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0C')
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    out: String,
    mode: Mode,
    /// Open elements inside `body`, innermost last.
    stack: Vec<(&'static str, Kind)>,
    /// A `<pre>` start tag was the last token: a LF right after it is dropped.
    ignore_lf: bool,
    /// Decoded text of the current run.
    text: String,
}

impl<'a> Scanner<'a> {
    fn new(s: &'a str) -> Self {
        Scanner {
            s,
            b: s.as_bytes(),
            pos: 0,
            out: String::with_capacity(s.len() + 8),
            mode: Mode::Initial,
            stack: Vec::new(),
            ignore_lf: false,
            text: String::new(),
        }
    }

    fn run(mut self) -> Option<String> {
        while self.pos < self.b.len() {
            if self.b[self.pos] == b'<' {
                self.markup()?;
            } else {
                self.text_run()?;
            }
        }
        // End of input: the tree builder creates whatever of html/head/body is missing, then
        // every open element closes.
        if self.mode < Mode::InBody {
            self.enter_body();
        }
        while let Some((_, kind)) = self.stack.pop() {
            if kind == Kind::Block {
                self.out.push(' ');
            }
        }
        self.out.push_str("  ");
        Some(self.out)
    }

    /// Opens whatever is missing up to `body` (no text has been seen yet).
    fn enter_body(&mut self) {
        if self.mode < Mode::BeforeHead {
            self.out.push(' '); // html
        }
        self.out.push(' '); // body
        self.mode = Mode::InBody;
    }

    /// A run of text up to the next `<`, character references decoded.
    fn text_run(&mut self) -> Option<()> {
        let start = self.pos;
        let end = self.b[start..]
            .iter()
            .position(|&c| c == b'<')
            .map_or(self.b.len(), |i| start + i);
        self.pos = end;
        let raw = &self.s[start..end];
        let mut text = std::mem::take(&mut self.text);
        text.clear();
        let decoded: &str = if raw.contains('&') {
            decode_entities(raw, &mut text)?;
            &text
        } else {
            raw
        };
        let mut t = decoded;
        if std::mem::take(&mut self.ignore_lf) {
            t = t.strip_prefix('\n').unwrap_or(t);
        }
        let result = self.place_text(t);
        self.text = text;
        result
    }

    fn place_text(&mut self, t: &str) -> Option<()> {
        let trimmed = t.trim_start_matches(|c: char| c.is_ascii() && is_html_space(c as u8));
        match self.mode {
            Mode::Initial | Mode::BeforeHtml | Mode::BeforeHead | Mode::InHead => {
                // Leading whitespace is ignored (or goes into head, which is dropped).
                if !trimmed.is_empty() {
                    self.enter_body();
                    self.out.push_str(trimmed);
                }
            }
            Mode::AfterHead => {
                // Whitespace after `</head>` is a child of `html`; the rest opens `body`.
                self.out.push_str(&t[..t.len() - trimmed.len()]);
                if !trimmed.is_empty() {
                    self.enter_body();
                    self.out.push_str(trimmed);
                }
            }
            Mode::InBody => self.out.push_str(t),
            Mode::AfterBody => {
                if !trimmed.is_empty() {
                    return None;
                }
                self.out.push_str(t);
            }
        }
        Some(())
    }

    /// At a `<`: a tag, a comment, a doctype, or a literal `<`.
    fn markup(&mut self) -> Option<()> {
        let rest = &self.b[self.pos..];
        match rest.get(1) {
            Some(b'!') => {
                if rest.starts_with(b"<!--") {
                    self.ignore_lf = false;
                    return self.comment();
                }
                if self.mode == Mode::Initial
                    && rest.len() >= 15
                    && rest[..15].eq_ignore_ascii_case(b"<!doctype html>")
                {
                    self.pos += 15;
                    self.mode = Mode::BeforeHtml;
                    self.ignore_lf = false;
                    return Some(());
                }
                None
            }
            Some(b'/') if rest.get(2).is_some_and(u8::is_ascii_alphabetic) => {
                self.ignore_lf = false;
                let name = self.tag(true)?;
                self.end_tag(&name)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                self.ignore_lf = false;
                let name = self.tag(false)?;
                self.start_tag(&name)
            }
            Some(b'/' | b'?') => None,
            _ => {
                // Not a tag: `<` is text (and the token after a `<pre>`).
                self.pos += 1;
                self.ignore_lf = false;
                self.place_text("<")
            }
        }
    }

    /// `<!--` … `-->`.
    fn comment(&mut self) -> Option<()> {
        let body = &self.b[self.pos + 4..];
        if body.starts_with(b">") || body.starts_with(b"->") {
            return None; // abrupt closing
        }
        let close = find(body, b"-->")?;
        if find(&body[..close], b"--!").is_some() {
            return None; // `--!>` closes a comment too
        }
        self.pos += 4 + close + 3;
        Some(())
    }

    /// Reads a tag from `<` (or `</`) to its `>`, following the tokenizer's attribute states
    /// (so a `>` inside a quoted value does not end it); its lowercased name. `None` when the
    /// input ends inside it.
    fn tag(&mut self, end: bool) -> Option<String> {
        let b = self.b;
        let mut i = self.pos + if end { 2 } else { 1 };
        let name_start = i;
        while i < b.len() && !is_html_space(b[i]) && b[i] != b'/' && b[i] != b'>' {
            i += 1;
        }
        let name = self.s[name_start..i].to_ascii_lowercase();
        // Attributes (ignored, but they decide where the tag ends).
        loop {
            // Before attribute name.
            while i < b.len() && is_html_space(b[i]) {
                i += 1;
            }
            match b.get(i)? {
                b'>' => {
                    i += 1;
                    break;
                }
                b'/' => {
                    // Self-closing start tag state.
                    i += 1;
                    if b.get(i)? == &b'>' {
                        i += 1;
                        break;
                    }
                    continue;
                }
                _ => {}
            }
            // Attribute name (a leading `=` belongs to it).
            i += 1;
            while i < b.len() && !is_html_space(b[i]) && !matches!(b[i], b'/' | b'>' | b'=') {
                i += 1;
            }
            // After attribute name.
            while i < b.len() && is_html_space(b[i]) {
                i += 1;
            }
            match b.get(i)? {
                b'=' => i += 1,
                _ => continue,
            }
            // Before attribute value.
            while i < b.len() && is_html_space(b[i]) {
                i += 1;
            }
            match b.get(i)? {
                q @ (b'"' | b'\'') => {
                    let q = *q;
                    let close = b[i + 1..].iter().position(|&c| c == q)?;
                    i += 1 + close + 1;
                    // After attribute value (quoted): anything else reconsumes as a new name.
                }
                b'>' => {
                    i += 1;
                    break;
                }
                _ => {
                    while i < b.len() && !is_html_space(b[i]) && b[i] != b'>' {
                        i += 1;
                    }
                }
            }
        }
        self.pos = i;
        Some(name)
    }

    fn start_tag(&mut self, name: &str) -> Option<()> {
        loop {
            match self.mode {
                Mode::Initial | Mode::BeforeHtml => {
                    self.out.push(' '); // html
                    self.mode = Mode::BeforeHead;
                    if name == "html" {
                        return Some(());
                    }
                }
                Mode::BeforeHead => {
                    self.mode = Mode::InHead;
                    if name == "head" {
                        return Some(());
                    }
                    if name == "html" {
                        return None;
                    }
                }
                Mode::InHead => match name {
                    "title" | "style" | "script" => return self.raw_text(name),
                    "meta" | "link" | "base" => return Some(()),
                    "head" | "html" | "noscript" | "template" | "noframes" | "basefont"
                    | "bgsound" | "frameset" => return None,
                    _ => self.mode = Mode::AfterHead,
                },
                Mode::AfterHead => match name {
                    "body" => {
                        self.out.push(' ');
                        self.mode = Mode::InBody;
                        return Some(());
                    }
                    "html" | "head" | "frameset" | "base" | "basefont" | "bgsound" | "link"
                    | "meta" | "noframes" | "script" | "style" | "template" | "title" => {
                        return None;
                    }
                    _ => {
                        self.out.push(' ');
                        self.mode = Mode::InBody;
                    }
                },
                Mode::InBody => return self.body_start_tag(name),
                Mode::AfterBody => return None,
            }
        }
    }

    fn body_start_tag(&mut self, name: &str) -> Option<()> {
        let kind = body_kind(name)?;
        match kind {
            Kind::Raw => self.raw_text(name),
            Kind::Void => {
                if name == "hr" && self.p_open() {
                    return None;
                }
                if super::text::is_block(name) {
                    self.out.push_str("  ");
                }
                Some(())
            }
            Kind::Formatting => {
                if name == "a" && self.stack.iter().any(|(n, _)| *n == "a") {
                    return None; // adoption agency
                }
                self.stack.push((intern(name)?, kind));
                Some(())
            }
            Kind::Inline => {
                self.stack.push((intern(name)?, kind));
                Some(())
            }
            Kind::Block => {
                if self.p_open() {
                    return None; // the block closes the <p>
                }
                match name {
                    "li" if self.implies_end_of(&["li"]) => return None,
                    "dd" | "dt" if self.implies_end_of(&["dd", "dt"]) => return None,
                    _ if is_heading(name)
                        && self.stack.last().is_some_and(|(n, _)| is_heading(n)) =>
                    {
                        return None;
                    }
                    _ => {}
                }
                self.stack.push((intern(name)?, kind));
                self.out.push(' ');
                if name == "pre" {
                    if self.b.get(self.pos) == Some(&b'&') {
                        return None;
                    }
                    self.ignore_lf = true;
                }
                Some(())
            }
        }
    }

    fn p_open(&self) -> bool {
        self.stack.iter().any(|(n, _)| *n == "p")
    }

    /// The `li`/`dd`/`dt` start tag's walk down the stack: would it close one of `names`?
    fn implies_end_of(&self, names: &[&str]) -> bool {
        for (n, kind) in self.stack.iter().rev() {
            if names.contains(n) {
                return true;
            }
            if *kind == Kind::Block && !matches!(*n, "address" | "div" | "p") {
                return false;
            }
        }
        false
    }

    fn end_tag(&mut self, name: &str) -> Option<()> {
        match self.mode {
            Mode::InHead if name == "head" => {
                self.mode = Mode::AfterHead;
                Some(())
            }
            Mode::InBody if name == "body" || name == "html" => {
                self.mode = Mode::AfterBody;
                Some(())
            }
            Mode::AfterBody if name == "html" => Some(()),
            Mode::InBody => {
                let (top, kind) = self.stack.last()?;
                if *top != name {
                    return None;
                }
                let kind = *kind;
                self.stack.pop();
                if kind == Kind::Block {
                    self.out.push(' ');
                }
                Some(())
            }
            _ => None,
        }
    }

    /// Skips the content of `title`/`style`/`script` up to its end tag (all dropped).
    fn raw_text(&mut self, name: &str) -> Option<()> {
        let rest = &self.b[self.pos..];
        let mut close = Vec::with_capacity(name.len() + 2);
        close.extend_from_slice(b"</");
        close.extend_from_slice(name.as_bytes());
        let at = find_ascii_ci(rest, &close)?;
        if rest.get(at + close.len()) != Some(&b'>') {
            return None;
        }
        if name == "script" && find(&rest[..at], b"<!--").is_some() {
            return None; // script data escape states
        }
        self.pos += at + close.len() + 1;
        Some(())
    }
}

/// The whitelisted names as `'static` strings (the stack holds these).
fn intern(name: &str) -> Option<&'static str> {
    const NAMES: &[&str] = &[
        "a",
        "b",
        "big",
        "code",
        "em",
        "font",
        "i",
        "s",
        "small",
        "strike",
        "strong",
        "tt",
        "u",
        "span",
        "abbr",
        "acronym",
        "cite",
        "dfn",
        "kbd",
        "mark",
        "q",
        "samp",
        "sub",
        "sup",
        "var",
        "time",
        "bdi",
        "bdo",
        "ins",
        "del",
        "label",
        "p",
        "div",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "section",
        "article",
        "header",
        "footer",
        "nav",
        "aside",
        "main",
        "figure",
        "figcaption",
        "address",
        "center",
        "pre",
        "o:p",
    ];
    NAMES.iter().find(|n| **n == name).copied()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn find_ascii_ci(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle))
}

/// Decodes character references in a text run into `out`; `None` for any reference outside
/// the simple, exactly known ones.
fn decode_entities(raw: &str, out: &mut String) -> Option<()> {
    let b = raw.as_bytes();
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(|&c| c == b'&') {
        let amp = i + off;
        out.push_str(&raw[last..amp]);
        let after = amp + 1;
        match b.get(after) {
            Some(b'#') => {
                let (hex, digits_at) = match b.get(after + 1) {
                    Some(b'x' | b'X') => (true, after + 2),
                    _ => (false, after + 1),
                };
                let len = b[digits_at..]
                    .iter()
                    .take_while(|c| {
                        if hex {
                            c.is_ascii_hexdigit()
                        } else {
                            c.is_ascii_digit()
                        }
                    })
                    .count();
                if len == 0 || len > 7 || b.get(digits_at + len) != Some(&b';') {
                    return None;
                }
                let digits = &raw[digits_at..digits_at + len];
                let v = u32::from_str_radix(digits, if hex { 16 } else { 10 }).ok()?;
                let ok = matches!(v, 0x09 | 0x0A | 0x20..=0x7E | 0xA0..=0xD7FF | 0xE000..=0xFDCF | 0xFDF0..=0xFFFD);
                if !ok {
                    return None;
                }
                out.push(char::from_u32(v)?);
                i = digits_at + len + 1;
            }
            Some(c) if c.is_ascii_alphanumeric() => {
                let len = b[after..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .count();
                if b.get(after + len) != Some(&b';') {
                    return None;
                }
                out.push_str(named_entity(&raw[after..after + len])?);
                i = after + len + 1;
            }
            // `&` before anything else is a literal `&`.
            _ => {
                out.push('&');
                i = after;
            }
        }
        last = i;
    }
    out.push_str(&raw[last..]);
    Some(())
}

/// The named character references this scanner knows (with their `;`); the tests compare each
/// with the full parser.
pub(super) const NAMED: &[(&str, &str)] = &[
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", "\u{A0}"),
    ("copy", "©"),
    ("reg", "®"),
    ("trade", "™"),
    ("hellip", "…"),
    ("mdash", "—"),
    ("ndash", "–"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("laquo", "«"),
    ("raquo", "»"),
    ("euro", "€"),
    ("pound", "£"),
    ("yen", "¥"),
    ("cent", "¢"),
    ("middot", "·"),
    ("bull", "•"),
    ("deg", "°"),
    ("times", "×"),
    ("divide", "÷"),
    ("iexcl", "¡"),
    ("iquest", "¿"),
    ("eacute", "é"),
    ("egrave", "è"),
    ("ecirc", "ê"),
    ("aacute", "á"),
    ("agrave", "à"),
    ("acirc", "â"),
    ("iacute", "í"),
    ("oacute", "ó"),
    ("ocirc", "ô"),
    ("uacute", "ú"),
    ("ccedil", "ç"),
    ("ntilde", "ñ"),
    ("auml", "ä"),
    ("ouml", "ö"),
    ("uuml", "ü"),
    ("szlig", "ß"),
    ("Eacute", "É"),
    ("shy", "\u{AD}"),
    ("zwnj", "\u{200C}"),
    ("zwj", "\u{200D}"),
    ("ensp", "\u{2002}"),
    ("emsp", "\u{2003}"),
    ("thinsp", "\u{2009}"),
];

fn named_entity(name: &str) -> Option<&'static str> {
    NAMED.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::super::text::strip_html_full;
    use super::*;
    use proptest::prelude::*;

    /// The fast path either declines or agrees with the full parse, byte for byte.
    fn check(s: &str) -> bool {
        match strip_html_fast(s) {
            Some(fast) => {
                assert_eq!(fast, strip_html_full(s), "input: {s:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn sample_messages_agree_and_take_the_fast_path() {
        let fixture = include_str!("../../../gateway/tests/fixtures/messages.ndjson");
        let mut html = 0;
        let mut fast = 0;
        for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(body) = v["body"].as_str() {
                html += 1;
                fast += usize::from(check(body));
            }
        }
        assert!(html > 50);
        // Every sample body is simple markup (or none): all take the fast path.
        assert_eq!(fast, html);
    }

    #[test]
    fn known_shapes() {
        for s in [
            "",
            "   ",
            "x",
            "<p>Where is my <b>order</b> number 5?</p>",
            "<div style=\"font-family:Arial\">Is&nbsp;the store open on Sunday?<br></div>",
            "<html><head><title>T</title><style>p{}</style></head><body><p>The app</p><p>keeps <i>crash</i>ing</p><script>alert(1)</script></body></html>",
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n</head>\n<body>\n<p>Hi</p>\n</body>\n</html>\n",
            "<ul><li>one</li><li>two</li></ul>",
            "<ul><li>one<ul><li>two</li></ul></li></ul>",
            "a&amp;b &lt;c&gt; &#233; &#xE9; & x",
            "<pre>\nline</pre>",
            "<pre>\r\nline\r\nnext</pre>",
            "<a href=\"x>y\" title='a\"b' data=c>link</a>",
            "<p>a<!-- note --></p>b",
            "<b>x</b></body> \n</html> ",
            "<head> </head> <body>x</body>",
            "<html> <head> <title>t</title> </head> \n <p>x</p>",
            "<br/><img src=x /><hr>",
        ] {
            assert!(check(s), "declined: {s:?}");
        }
        // Declined: the full parse decides.
        for s in [
            "<p>a<div>b</div></p>",
            "<b><i>x</b></i>",
            "<table><tr><td>x</td></tr></table>",
            "<script>unclosed",
            "<template>x</template>",
            "<!-->",
            "&copy x",
            "&notin;",
            "\u{FEFF}<p>x</p>",
            "<![CDATA[x]]>",
            "<li>a<li>b",
            "<p>a<p>b",
        ] {
            assert!(strip_html_fast(s).is_none(), "accepted: {s:?}");
            check(s);
        }
    }

    #[test]
    fn named_references_match_the_parser() {
        for (name, value) in NAMED {
            let s = format!("<p>&{name};</p>");
            assert_eq!(strip_html_full(&s), format!("   {value}   "), "&{name};");
            assert!(check(&s));
        }
    }

    const TAGS: &[&str] = &[
        "a",
        "b",
        "i",
        "em",
        "strong",
        "span",
        "font",
        "u",
        "sub",
        "p",
        "div",
        "h1",
        "h2",
        "ul",
        "ol",
        "li",
        "dl",
        "dt",
        "dd",
        "blockquote",
        "pre",
        "center",
        "section",
        "br",
        "hr",
        "img",
        "wbr",
        "meta",
        "link",
        "title",
        "style",
        "script",
        "html",
        "head",
        "body",
        "table",
        "tr",
        "td",
        "tbody",
        "form",
        "noscript",
        "template",
        "svg",
        "math",
        "textarea",
        "select",
        "option",
        "button",
        "nobr",
        "frameset",
        "iframe",
        "plaintext",
        "xmp",
        "image",
        "o:p",
        "my-el",
        "P",
        "DIV",
        "B",
        "Br",
        "code",
        "label",
        "address",
        "listing",
        "caption",
    ];

    const ATTRS: &[&str] = &[
        "",
        "",
        "",
        " class=\"a>b\"",
        " x='y>'",
        " a=b",
        " c",
        "/",
        " d = \"e\" ",
        " \"q\"",
        " =x",
        " a=b/",
        " style=\"font-family:Arial\"",
        " x=\"unterminated",
        " /x",
        "\n\tid=1",
    ];

    const TEXTS: &[&str] = &[
        "hello",
        "Wörld",
        " ",
        "\n",
        "\r\n",
        "\r",
        "\t",
        "  ",
        "x",
        "é",
        "\u{A0}",
        "a < b",
        "<3",
        "& co",
        "&",
        "1>0",
        "<",
        "&amp;",
        "&lt;",
        "&nbsp;",
        "&amp",
        "&copy",
        "&foo;",
        "&AMP;",
        "&#65;",
        "&#x41;",
        "&#0;",
        "&#128;",
        "&#13;",
        "&#10;",
        "&#x1F600;",
        "&#;",
        "&#x;",
        "&hellip;",
        "&rsquo;",
        "\u{FEFF}",
        "\u{C}",
        "\u{200B}",
        "?",
        "!",
        "\0",
        "&#32;",
        "&#9;",
    ];

    const MARKUP: &[&str] = &[
        "<!-- c -->",
        "<!---->",
        "<!-->",
        "<!--->",
        "<!-- a --!> b -->",
        "<!-- -- -->",
        "<!--x",
        "<!DOCTYPE html>",
        "<!doctype html PUBLIC \"x\">",
        "<?xml version=\"1.0\"?>",
        "<![CDATA[x]]>",
        "<script>var a = \"</b>\";</script>",
        "<script><!-- x --></script>",
        "<style>p{}</style>",
        "<title>T &amp; x</title>",
        "<script>",
        "</script >",
        "</>",
        "</ x>",
        "</br>",
        "<pre>\n",
        "<pre>&#10;",
    ];

    fn piece() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => proptest::sample::select(TEXTS).prop_map(str::to_owned),
            3 => (proptest::sample::select(TAGS), proptest::sample::select(ATTRS))
                .prop_map(|(t, a)| format!("<{t}{a}>")),
            3 => (proptest::sample::select(TAGS), proptest::sample::select(ATTRS))
                .prop_map(|(t, a)| format!("</{t}{}>", if a.contains('"') { "" } else { a })),
            1 => proptest::sample::select(MARKUP).prop_map(str::to_owned),
        ]
    }

    /// Properly nested markup of the whitelisted elements (what the fast path mostly accepts).
    fn nested() -> impl Strategy<Value = String> {
        const INNER: &[&str] = &[
            "a",
            "b",
            "i",
            "em",
            "strong",
            "span",
            "font",
            "u",
            "p",
            "div",
            "h1",
            "h3",
            "ul",
            "ol",
            "li",
            "dl",
            "dt",
            "dd",
            "blockquote",
            "pre",
            "center",
            "code",
            "o:p",
        ];
        let leaf = prop_oneof![
            4 => proptest::sample::select(TEXTS).prop_map(str::to_owned),
            1 => proptest::sample::select(&["<br>", "<br/>", "<hr>", "<img src=x>", "<wbr>"][..])
                .prop_map(str::to_owned),
            1 => proptest::sample::select(&["<!-- c -->", "<style>p{}</style>", "<script>x()</script>", "<title>t</title>"][..])
                .prop_map(str::to_owned),
        ];
        let body = leaf.prop_recursive(5, 48, 6, |inner| {
            (
                proptest::sample::select(INNER),
                proptest::sample::select(ATTRS),
                proptest::collection::vec(inner, 0..6),
                any::<bool>(),
            )
                .prop_map(|(t, a, kids, close)| {
                    let a = if a.contains("unterminated") { "" } else { a };
                    let end = if close {
                        format!("</{t}>")
                    } else {
                        String::new()
                    };
                    format!("<{t}{a}>{}{end}", kids.concat())
                })
        });
        (
            proptest::collection::vec(body, 0..4),
            0u8..6,
            proptest::sample::select(&["", " ", "\n", "\r\n  "][..]),
        )
            .prop_map(|(parts, wrap, ws)| {
                let b = parts.concat();
                match wrap {
                    0 => b,
                    1 => format!("<html><body>{b}</body></html>"),
                    2 => format!("<!DOCTYPE html>{ws}<html>{ws}<head>{ws}<title>x</title>{ws}<meta charset=utf-8>{ws}</head>{ws}<body>{ws}{b}{ws}</body>{ws}</html>{ws}"),
                    3 => format!("{ws}<html>{ws}<head></head>{ws}{b}"),
                    4 => format!("<head><style>p{{}}</style></head>{ws}{b}{ws}</html>{ws}"),
                    _ => format!("{ws}{b}{ws}</body>{ws}"),
                }
            })
    }

    /// A longer differential run that also prints how often the fast path is taken:
    /// `N=1000000 cargo test -p dedupd-core --lib acceptance_rates -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn acceptance_rates() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let n: usize = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20000);
        let soup = proptest::collection::vec(piece(), 0..24);
        let (mut a, mut b) = (0, 0);
        for _ in 0..n {
            let s = soup.new_tree(&mut runner).unwrap().current().concat();
            a += usize::from(check(&s));
            let s = nested().new_tree(&mut runner).unwrap().current();
            b += usize::from(check(&s));
        }
        eprintln!("accepted: soup {a}/{n}, nested {b}/{n}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn fast_path_agrees_on_tag_soup(parts in proptest::collection::vec(piece(), 0..24)) {
            check(&parts.concat());
        }

        #[test]
        fn fast_path_agrees_on_nested_markup(s in nested()) {
            check(&s);
        }
    }
}
