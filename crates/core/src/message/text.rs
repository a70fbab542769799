//! Message text normalization: charset → markup stripped → NFKC → case-folded → whitespace
//! collapsed → punctuation at the ends ignored.
//!
//! The goal is one string per *meaning a customer typed*, whatever the channel did to it: an
//! e-mail client wraps it in `<div style=…>` with `&nbsp;`, a chat widget sends `**bold**`, an
//! SMS gateway adds spaces, a mail server sends ISO-8859-1 bytes. Accents are kept
//! (`upgradé` ≠ `upgrade`): they can change meaning, and senders that re-type a message keep
//! them.

use std::borrow::Cow;
use std::fmt;

use ego_tree::iter::Edge;
use pulldown_cmark::{Event, Parser, TagEnd};
use scraper::{Html, Node};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

/// How the body is marked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyFormat {
    /// Unknown: HTML when the body looks like HTML (a tag such as `<p` or `</`), Markdown
    /// otherwise (plain text reads as Markdown without emphasis, so it comes out unchanged
    /// apart from Markdown punctuation).
    #[default]
    Auto,
    /// `text/plain`: no markup is removed.
    Plain,
    /// `text/html`: text content only, entities decoded, block boundaries as spaces,
    /// `script`/`style`/`head`/`template`/`noscript` dropped.
    Html,
    /// `text/markdown`: text and code spans only (emphasis, links, list markers and headings
    /// dropped); embedded HTML blocks are stripped as HTML.
    Markdown,
}

impl BodyFormat {
    /// The format named by a MIME type (`text/html; charset=utf-8` → `Html`); parameters and
    /// case are ignored. `None` for a type that is not a text format this module knows.
    pub fn from_mime(mime: &str) -> Option<BodyFormat> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case("text/plain") {
            Some(BodyFormat::Plain)
        } else if essence.eq_ignore_ascii_case("text/html")
            || essence.eq_ignore_ascii_case("application/xhtml+xml")
        {
            Some(BodyFormat::Html)
        } else if essence.eq_ignore_ascii_case("text/markdown")
            || essence.eq_ignore_ascii_case("text/x-markdown")
        {
            Some(BodyFormat::Markdown)
        } else {
            None
        }
    }
}

/// A charset label that the WHATWG Encoding Standard does not know.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("unknown charset label {label:?}")]
pub struct CharsetError {
    /// The label as given (cut to 40 characters).
    pub label: String,
}

/// Decodes `bytes` in the charset named by a WHATWG label (`utf-8`, `iso-8859-1`, `latin1`,
/// `windows-1252`, `shift_jis`, …). As the standard says, `iso-8859-1` decodes as
/// windows-1252, which is what real senders mean. A leading BOM is honoured; bytes invalid in
/// the charset become U+FFFD rather than an error (a message is still a message).
pub fn decode_charset(bytes: &[u8], label: &str) -> Result<String, CharsetError> {
    let encoding =
        encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| CharsetError {
            label: label.chars().take(40).collect(),
        })?;
    let (text, _, _) = encoding.decode(bytes);
    Ok(text.into_owned())
}

/// Markup stripped and text normalized: the string the fingerprint is taken over.
///
/// Total (never panics) for any input. Plain bodies are idempotent
/// (`normalize_body(normalize_body(x, Plain), Plain) == normalize_body(x, Plain)`).
pub fn normalize_body(body: &str, format: BodyFormat) -> String {
    let stripped = match format {
        BodyFormat::Plain => return normalize_text(body),
        BodyFormat::Html => Cow::Owned(strip_html(body)),
        BodyFormat::Markdown => markdown_text(body),
        BodyFormat::Auto if looks_like_html(body) => Cow::Owned(strip_html(body)),
        BodyFormat::Auto => markdown_text(body),
    };
    normalize_text(&stripped)
}

/// Markup stripped, case and accents kept, whitespace collapsed: the readable text to hand on
/// to an agent (the platform gets this, not the fingerprint form).
pub fn strip_markup(body: &str, format: BodyFormat) -> String {
    let stripped = match format {
        BodyFormat::Plain => return crate::normalize::text::clean(body),
        BodyFormat::Html => Cow::Owned(strip_html(body)),
        BodyFormat::Markdown => markdown_text(body),
        BodyFormat::Auto if looks_like_html(body) => Cow::Owned(strip_html(body)),
        BodyFormat::Auto => markdown_text(body),
    };
    crate::normalize::text::clean(&stripped)
}

/// [`strip_markdown`], or the text itself when it holds nothing Markdown reads as markup:
/// most messages (an SMS, a chat line) are plain text, and parsing them as Markdown yields the
/// same words with line breaks as spaces, which both callers collapse anyway. A property test
/// holds the two equal after the whitespace collapse.
fn markdown_text(s: &str) -> Cow<'_, str> {
    if has_markdown_syntax(s) {
        Cow::Owned(strip_markdown(s))
    } else {
        Cow::Borrowed(s)
    }
}

/// Whether Markdown (CommonMark, no extensions) could read `s` as anything but paragraphs of
/// its own text: emphasis, code, links, HTML, entities, escapes anywhere; headings, quotes,
/// lists, fences, breaks and setext underlines at the start of a line. NUL (which the parser
/// replaces) and carriage returns (whose line endings the parser reads its own way) count
/// too. It may say yes for plain text; never no for markup.
fn has_markdown_syntax(s: &str) -> bool {
    let anywhere = |b: u8| {
        matches!(
            b,
            b'*' | b'_' | b'`' | b'[' | b']' | b'<' | b'&' | b'\\' | b'\r' | 0
        )
    };
    if s.bytes().any(anywhere) {
        return true;
    }
    s.split('\n').any(|line| {
        matches!(
            line.trim_start_matches([' ', '\t']).bytes().next(),
            Some(b'#' | b'>' | b'-' | b'+' | b'=' | b'~' | b'0'..=b'9')
        )
    })
}

/// The text-level steps alone: zero-width characters removed, NFKC, case-folded, NFKC again,
/// every run of whitespace or control characters → one space, then whitespace and
/// punctuation trimmed at both ends (`"  Where is my refund?! "` → `"where is my refund"`).
///
/// Total and idempotent. The zero-width characters go first because NFKC orders and composes
/// only across what is left: a mark on either side of one (`U+0301 U+FEFF U+033C`) would
/// otherwise come out in an order the next normalization changes.
pub fn normalize_text(s: &str) -> String {
    if s.is_ascii() {
        return normalize_ascii(s);
    }
    let visible: Cow<'_, str> = if s.contains(is_invisible) {
        Cow::Owned(s.chars().filter(|&c| !is_invisible(c)).collect())
    } else {
        Cow::Borrowed(s)
    };
    let once = nfkc(&visible);
    let folded = case_fold(&once);
    let folded = nfkc(&folded);
    let mut out = String::with_capacity(folded.len());
    let mut pending_space = false;
    for c in folded.chars() {
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(c);
        }
    }
    trim_edges(out)
}

/// [`normalize_text`] for ASCII input, in one pass and one allocation: ASCII is its own NFKC,
/// its case fold is `to_ascii_lowercase`, it has no invisible characters, and its whitespace
/// and control characters are exactly the bytes up to `' '` and DEL.
fn normalize_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for &b in s.as_bytes() {
        if b <= b' ' || b == 0x7F {
            pending_space = !out.is_empty();
        } else {
            if pending_space {
                out.push(' ');
                pending_space = false;
            }
            out.push(char::from(b.to_ascii_lowercase()));
        }
    }
    trim_edges(out)
}

/// Whitespace and edge punctuation trimmed at both ends, reusing `out`'s buffer.
fn trim_edges(mut out: String) -> String {
    let edge = |c: char| c.is_whitespace() || is_edge_punctuation(c);
    let end = out.trim_end_matches(edge).len();
    out.truncate(end);
    let start = out.len() - out.trim_start_matches(edge).len();
    if start > 0 {
        out.drain(..start);
    }
    out
}

/// NFKC, borrowing when `s` is already in NFKC (always for ASCII; otherwise by the quick
/// check, which answers "yes" only when it is sure).
fn nfkc(s: &str) -> Cow<'_, str> {
    if s.is_ascii()
        || unicode_normalization::is_nfkc_quick(s.chars())
            == unicode_normalization::IsNormalized::Yes
    {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfkc().collect())
    }
}

/// Lowercase plus the full case foldings that matter in customer text (`ß` → `ss`, final
/// sigma → sigma), so `STRASSE` and `straße` meet.
fn case_fold(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let lower = s.to_lowercase();
    if lower.contains(['ß', 'ς']) {
        lower.replace('ß', "ss").replace('ς', "σ")
    } else {
        lower
    }
}

/// Format characters that render as nothing: zero-width space/joiners, word joiner, BOM,
/// soft hyphen.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}' | '\u{00AD}'
    )
}

/// Punctuation ignored at the ends of a message: ASCII punctuation and the common Unicode
/// quotes, dashes, ellipsis and inverted marks (full-width forms are ASCII after NFKC).
fn is_edge_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '¡' | '¿'
                | '…'
                | '‘'
                | '’'
                | '‚'
                | '“'
                | '”'
                | '„'
                | '«'
                | '»'
                | '‹'
                | '›'
                | '–'
                | '—'
                | '·'
                | '。'
                | '、'
                | '・'
                | '\u{FFFD}'
        )
}

/// True when `s` contains something shaped like an HTML tag: `<` followed by a letter, `/` or
/// `!`, and a `>` later on.
fn looks_like_html(s: &str) -> bool {
    let bytes = s.as_bytes();
    let mut i = 0;
    while let Some(pos) = bytes[i..].iter().position(|&b| b == b'<') {
        let at = i + pos;
        if let Some(&next) = bytes.get(at + 1)
            && (next.is_ascii_alphabetic() || next == b'/' || next == b'!')
            && bytes[at + 1..].contains(&b'>')
        {
            return true;
        }
        i = at + 1;
    }
    false
}

/// Elements whose content is not message text.
fn is_dropped(name: &str) -> bool {
    matches!(
        name,
        "script" | "style" | "head" | "template" | "noscript" | "title"
    )
}

/// Elements whose boundaries separate words (`<p>a</p><p>b</p>` is `a b`, not `ab`).
pub(super) fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "br"
            | "hr"
            | "li"
            | "ul"
            | "ol"
            | "dl"
            | "dt"
            | "dd"
            | "td"
            | "th"
            | "tr"
            | "table"
            | "thead"
            | "tbody"
            | "tfoot"
            | "caption"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "blockquote"
            | "pre"
            | "section"
            | "article"
            | "header"
            | "footer"
            | "nav"
            | "aside"
            | "main"
            | "figure"
            | "figcaption"
            | "address"
            | "form"
            | "fieldset"
            | "body"
            | "html"
            | "center"
    )
}

/// HTML → text: the text nodes in document order, entities decoded, a space at every block
/// boundary and none inside inline elements (`Hello <b>World</b>,` stays `Hello World,`).
/// Walks the tree iteratively, so deep nesting cannot overflow the stack.
///
/// Simple markup takes [`super::html_fast`], which gives the same string without building a
/// DOM; anything it does not model exactly goes through the full parse.
fn strip_html(s: &str) -> String {
    super::html_fast::strip_html_fast(s).unwrap_or_else(|| strip_html_full(s))
}

/// [`strip_html`] through the full HTML parser (html5ever): the reference.
pub(super) fn strip_html_full(s: &str) -> String {
    let doc = Html::parse_document(s);
    let mut out = String::with_capacity(s.len());
    let mut dropped_depth = 0usize;
    for edge in doc.tree.root().traverse() {
        match edge {
            Edge::Open(node) => match node.value() {
                Node::Element(e) if is_dropped(e.name()) => dropped_depth += 1,
                Node::Element(e) if dropped_depth == 0 && is_block(e.name()) => out.push(' '),
                Node::Text(t) if dropped_depth == 0 => out.push_str(t),
                _ => {}
            },
            Edge::Close(node) => match node.value() {
                Node::Element(e) if is_dropped(e.name()) => {
                    dropped_depth = dropped_depth.saturating_sub(1);
                }
                Node::Element(e) if dropped_depth == 0 && is_block(e.name()) => out.push(' '),
                _ => {}
            },
        }
    }
    out
}

/// Markdown → text: text and code spans, a space at every block end and line break; link
/// targets, emphasis markers, list markers and heading markers are dropped. HTML blocks are
/// stripped as HTML; inline tags are dropped (their text content is separate events).
fn strip_markdown(s: &str) -> String {
    // CR LF and a lone CR are line endings to CommonMark as LF is; pulldown-cmark loses text
    // after some of them (an LF CR pair after an indented block), so it only ever sees LF.
    let s: Cow<'_, str> = if s.contains('\r') {
        Cow::Owned(s.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        Cow::Borrowed(s)
    };
    let mut out = String::with_capacity(s.len());
    let mut html_block = String::new();
    for event in Parser::new(&s) {
        if let Event::Html(h) = &event {
            html_block.push_str(h);
            continue;
        }
        if !html_block.is_empty() {
            out.push(' ');
            out.push_str(&strip_html(&html_block));
            out.push(' ');
            html_block.clear();
        }
        match event {
            Event::Text(t) | Event::Code(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak | Event::Rule => out.push(' '),
            Event::InlineHtml(tag) if is_inline_break(&tag) => out.push(' '),
            Event::End(end) if is_block_end(end) => out.push(' '),
            _ => {}
        }
    }
    if !html_block.is_empty() {
        out.push(' ');
        out.push_str(&strip_html(&html_block));
    }
    out
}

fn is_inline_break(tag: &str) -> bool {
    let t = tag.trim_start_matches('<').trim_start_matches('/');
    let name: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    is_block(&name)
}

fn is_block_end(end: TagEnd) -> bool {
    matches!(
        end,
        TagEnd::Paragraph
            | TagEnd::Heading(_)
            | TagEnd::BlockQuote(_)
            | TagEnd::CodeBlock
            | TagEnd::Item
            | TagEnd::List(_)
            | TagEnd::Table
            | TagEnd::TableHead
            | TagEnd::TableRow
            | TagEnd::TableCell
            | TagEnd::HtmlBlock
            | TagEnd::FootnoteDefinition
            | TagEnd::DefinitionList
            | TagEnd::DefinitionListTitle
            | TagEnd::DefinitionListDefinition
    )
}

impl fmt::Display for BodyFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BodyFormat::Auto => "auto",
            BodyFormat::Plain => "text/plain",
            BodyFormat::Html => "text/html",
            BodyFormat::Markdown => "text/markdown",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn auto(s: &str) -> String {
        normalize_body(s, BodyFormat::Auto)
    }

    /// The text steps as first written (no fast paths): the reference for the fast paths.
    fn normalize_text_general(s: &str) -> String {
        let nfkc = |s: &str| -> String { s.nfkc().collect() };
        let visible: String = s.chars().filter(|&c| !is_invisible(c)).collect();
        let folded = {
            let lower = nfkc(&visible).to_lowercase();
            lower.replace('ß', "ss").replace('ς', "σ")
        };
        let folded = nfkc(&folded);
        let mut out = String::new();
        crate::normalize::text::push_collapsed(folded.chars(), &mut out);
        out.trim_matches(|c: char| c.is_whitespace() || is_edge_punctuation(c))
            .to_owned()
    }

    #[test]
    fn zero_width_characters_go_before_marks_are_ordered_and_composed() {
        // What the fuzzer found: a BOM between two marks of different classes.
        let once = normalize_text("\u{301}\u{FEFF}\u{33C}x");
        assert_eq!(once, "\u{33C}\u{301}x");
        assert_eq!(normalize_text(&once), once);
        assert_eq!(normalize_text("e\u{200B}\u{301}"), "é");
        assert_eq!(normalize_text("\u{1100}\u{AD}\u{1161}"), "가");
    }

    #[test]
    fn fast_paths_match_the_general_steps_on_samples() {
        let fixture = include_str!("../../../gateway/tests/fixtures/messages.ndjson");
        for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            if let Some(body) = v["body"].as_str() {
                for text in [body.to_owned(), strip_html_full(body)] {
                    assert_eq!(
                        normalize_text(&text),
                        normalize_text_general(&text),
                        "{text:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn html_text_entities_blocks_and_dropped_elements() {
        assert_eq!(
            auto("<div style=\"font-family:Arial\">Is&nbsp;the store open on Sunday?<br></div>"),
            "is the store open on sunday"
        );
        assert_eq!(
            auto(
                "<html><head><title>T</title><style>p{}</style></head><body><p>The app</p><p>keeps <i>crash</i>ing</p><script>alert(1)</script></body></html>"
            ),
            "the app keeps crashing"
        );
        assert_eq!(auto("<p>Hello <b>World</b>,</p>"), "hello world");
        assert_eq!(auto("<ul><li>one</li><li>two</li></ul>"), "one two");
        assert_eq!(auto("a&amp;b &lt;c&gt;"), "a&b <c");
    }

    /// pulldown-cmark loses the text after an LF CR pair that follows an indented block
    /// (`"\tA\n\rB"` came out as `"A"`), so two different messages had one fingerprint. Line
    /// endings are made LF before parsing, which CommonMark reads the same.
    #[test]
    fn no_text_is_lost_to_carriage_returns() {
        for format in [BodyFormat::Auto, BodyFormat::Markdown] {
            assert_eq!(normalize_body("\tA\n\rB", format), "a b");
            assert_ne!(
                normalize_body("\tA\n\rB", format),
                normalize_body("\tA\n\rC", format)
            );
            assert_eq!(
                normalize_body("Hi *you*\r\nsee\rthis", format),
                "hi you see this"
            );
        }
        assert_eq!(strip_markup("\tA\n\rB", BodyFormat::Markdown), "A B");
    }

    #[test]
    fn markdown_emphasis_links_lists_and_headings() {
        assert_eq!(
            auto("**I WAS PROMISÉD A DISCOUNT**"),
            "i was promiséd a discount"
        );
        assert_eq!(
            auto("*Is the store open on Sunday?*"),
            "is the store open on sunday"
        );
        assert_eq!(
            auto("# Help\nPlease [cancel](https://x.test/c) my `plan`\n\n- item one\n- item two"),
            "help please cancel my plan item one item two"
        );
        assert_eq!(
            normalize_body("<p>x</p>\n\n**y**", BodyFormat::Markdown),
            "x y"
        );
    }

    #[test]
    fn readable_text_keeps_case() {
        assert_eq!(
            strip_markup("<p>Where is my <b>Refund</b>?</p>", BodyFormat::Auto),
            "Where is my Refund?"
        );
        assert_eq!(
            strip_markup("**Hi**  there", BodyFormat::Markdown),
            "Hi there"
        );
    }

    #[test]
    fn plain_keeps_markup_characters() {
        assert_eq!(
            normalize_body("a *hi* <b> z", BodyFormat::Plain),
            "a *hi* <b> z"
        );
    }

    #[test]
    fn text_steps() {
        assert_eq!(normalize_text("  I   néed   help  "), "i néed help");
        assert_eq!(
            normalize_text("ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ！"),
            "full-width abc"
        );
        assert_eq!(normalize_text("STRASSE straße"), "strasse strasse");
        assert_eq!(
            normalize_text("zero\u{200B}width\u{00A0}space"),
            "zerowidth space"
        );
        assert_eq!(normalize_text("¿Dónde está?…"), "dónde está");
        assert_eq!(normalize_text("!!!"), "");
        assert_eq!(normalize_text("upgradé"), "upgradé");
        assert_ne!(normalize_text("upgradé"), normalize_text("upgrade"));
    }

    #[test]
    fn charsets_follow_whatwg_labels() {
        assert_eq!(
            decode_charset(b"Caf\xe9 cr\xe8me", "iso-8859-1").unwrap(),
            "Café crème"
        );
        assert_eq!(decode_charset(b"\xef\xbb\xbfhi", "utf-8").unwrap(), "hi");
        assert_eq!(decode_charset("é".as_bytes(), " UTF8 ").unwrap(), "é");
        assert_eq!(
            decode_charset(b"x", "no-such-charset").unwrap_err().label,
            "no-such-charset"
        );
    }

    #[test]
    fn mime_types() {
        assert_eq!(
            BodyFormat::from_mime("TEXT/HTML; charset=x"),
            Some(BodyFormat::Html)
        );
        assert_eq!(BodyFormat::from_mime("text/plain"), Some(BodyFormat::Plain));
        assert_eq!(
            BodyFormat::from_mime("text/markdown"),
            Some(BodyFormat::Markdown)
        );
        assert_eq!(BodyFormat::from_mime("image/png"), None);
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = "<div>".repeat(20_000) + "x" + &"</div>".repeat(20_000);
        assert_eq!(auto(&deep), "x");
        let quotes = ">".repeat(5_000) + " y";
        assert_eq!(auto(&quotes), "y");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn plain_text_skips_the_markdown_parser_with_the_same_result(
            lines in proptest::collection::vec(
                (
                    "[ \\t]{0,5}",
                    proptest::sample::select(vec![
                        "", "-", "- ", "+ ", "#", "# ", "> ", "1. ", "2) ", "=", "===", "---",
                        "~~~", "```", "*", "_", "|", "!", "Order #", "a & b", "[x]", "<b>",
                    ]),
                    "[a-zA-Z0-9 \\t.,!?'\"():;/@$%#>~|=+\\-é\u{a0}\u{3000}]{0,30}",
                ),
                0..6,
            )
        ) {
            let s = lines
                .iter()
                .map(|(indent, prefix, words)| format!("{indent}{prefix}{words}"))
                .collect::<Vec<_>>()
                .join("\n");
            if !has_markdown_syntax(&s) {
                let parsed = strip_markdown(&s);
                prop_assert_eq!(normalize_text(&s), normalize_text(&parsed));
                prop_assert_eq!(
                    crate::normalize::text::clean(&s),
                    crate::normalize::text::clean(&parsed)
                );
            }
        }

        #[test]
        fn markdown_text_agrees_with_the_parser_on_any_text(s in "\\PC{0,60}") {
            let parsed = strip_markdown(&s);
            prop_assert_eq!(normalize_text(&markdown_text(&s)), normalize_text(&parsed));
        }

        #[test]
        fn ascii_fast_path_matches_the_general_steps(s in "[\\x00-\\x7F]{0,60}") {
            prop_assert_eq!(normalize_text(&s), normalize_text_general(&s));
        }

        #[test]
        fn normalize_text_is_idempotent(s in "\\PC{0,60}") {
            let once = normalize_text(&s);
            prop_assert_eq!(normalize_text(&once), once.clone());
        }

        #[test]
        fn marks_and_jamo_around_zero_width_characters_are_idempotent(
            s in "[ae.\u{300}-\u{305}\u{316}\u{31A}\u{33C}\u{200B}\u{200D}\u{FEFF}\u{AD}\u{1100}\u{1161}\u{11A8} \x01]{0,24}"
        ) {
            let once = normalize_text(&s);
            prop_assert_eq!(normalize_text(&once), once.clone());
            prop_assert_eq!(once, normalize_text_general(&s));
        }

        #[test]
        fn quick_check_path_matches_the_general_steps(s in "\\PC{0,40}|[a-zA-Z \u{A0}\u{2003}é\u{301}ßς\u{FF21}-\u{FF3A}ﬁ\u{200B}!?…]{0,40}") {
            prop_assert_eq!(normalize_text(&s), normalize_text_general(&s));
        }

        #[test]
        fn plain_bodies_are_idempotent(s in any::<String>()) {
            let once = normalize_body(&s, BodyFormat::Plain);
            prop_assert_eq!(normalize_body(&once, BodyFormat::Plain), once.clone());
        }

        #[test]
        fn never_panics_on_any_format(
            s in "[<>/a-zA-Z!*_#`&;\\[\\]() \n\\-é]{0,80}|\\PC{0,40}",
            f in 0u8..4,
        ) {
            let format = [BodyFormat::Auto, BodyFormat::Plain, BodyFormat::Html, BodyFormat::Markdown][usize::from(f)];
            let out = normalize_body(&s, format);
            prop_assert!(!out.starts_with(' ') && !out.ends_with(' '));
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), label in "utf-8|iso-8859-1|shift_jis|utf-16le|gb18030|x") {
            let _ = decode_charset(&bytes, &label);
        }
    }
}
