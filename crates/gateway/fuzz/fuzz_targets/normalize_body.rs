//! The message normalizer never panics, plain-text normalization is idempotent, and the
//! near-duplicate sketch of any normalized text round-trips through its stored form.
#![no_main]

use dedupd_core::message::{
    BodyFormat, TextSketch, decode_charset, normalize_body, normalize_text,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let text = match selector % 3 {
        0 => String::from_utf8_lossy(rest).into_owned(),
        1 => decode_charset(rest, "iso-8859-1").unwrap_or_default(),
        _ => decode_charset(rest, "shift_jis").unwrap_or_default(),
    };
    let format = [
        BodyFormat::Auto,
        BodyFormat::Plain,
        BodyFormat::Html,
        BodyFormat::Markdown,
    ][usize::from(selector / 3 % 4)];
    let out = normalize_body(&text, format);
    assert_eq!(
        normalize_text(&out),
        out,
        "normalize_text is idempotent on its own output"
    );
    let sketch = TextSketch::of(&out);
    assert_eq!(
        TextSketch::from_hex(&sketch.to_hex()).as_ref(),
        Some(&sketch)
    );
    if !out.is_empty() {
        assert_eq!(sketch.similarity(&sketch), 1.0);
    }
});
