//! Inbound messages: what makes two messages "the same" for the gateway.
//!
//! Three pure steps, no I/O:
//!
//! - [`text`]: the body as the channel rendered it (bytes in a declared charset, HTML, Markdown
//!   or plain text) → one normalized string ([`normalize_body`]).
//! - [`address`]: the sender's address as the channel gave it (national or E.164 phone, an
//!   e-mail in any case, an opaque id) → an [`Address`], normalized by the same
//!   [`crate::normalize`] functions as ingest, so an SMS and an e-mail of one customer meet.
//! - [`fingerprint`]: SHA-256 over (customer, normalized text, sorted attachment hashes) with a
//!   documented, versioned byte layout ([`Fingerprint`]).
//! - [`near`]: a small sketch of the normalized text ([`TextSketch`]), so almost the same
//!   question from one customer can be flagged as a near-duplicate.
//!
//! ```
//! use dedupd_core::message::{
//!     Address, BodyFormat, Customer, fingerprint, normalize_body, parse_address,
//! };
//! use dedupd_core::normalize::Region;
//!
//! let us: Region = "US".parse().unwrap();
//! let sms = parse_address("sms", "(201) 555-0123", Some(us));
//! assert_eq!(sms, Address::Phone("+12015550123".into()));
//! let html = normalize_body("<p>Where is my <b>refund</b>?</p>", BodyFormat::Auto);
//! let md = normalize_body("**WHERE IS MY REFUND**", BodyFormat::Auto);
//! assert_eq!(html, "where is my refund");
//! assert_eq!(html, md);
//! let customer = Customer::Known("C00042".into());
//! assert_eq!(fingerprint(&customer, &html, &[]), fingerprint(&customer, &md, &[]));
//! ```

pub mod address;
pub mod fingerprint;
pub mod near;
pub mod text;

mod html_fast;

pub use address::{Address, Customer, parse_address};
pub use fingerprint::{AttachmentHash, FINGERPRINT_VERSION, Fingerprint, fingerprint};
pub use near::{SKETCH_SIZE, TextSketch};
pub use text::{
    BodyFormat, CharsetError, decode_charset, normalize_body, normalize_text, strip_markup,
};
