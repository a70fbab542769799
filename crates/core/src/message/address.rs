//! The sender of a message: its address as the channel gave it → a normalized [`Address`], and
//! the [`Customer`] the fingerprint is keyed on.
//!
//! Addresses go through the very functions ingest and matching use ([`normalize_phone_as`],
//! [`normalize_email`]), so the contact index built from ingest data, the resolution index and
//! the gateway agree on what an address is.

use std::fmt;

use crate::normalize::phone::{Validity, normalize_phone_as};
use crate::normalize::{Region, normalize_email, text};

/// A sender address, normalized.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// E.164 (`+12015550123`).
    Phone(String),
    /// Lowercased, shape-checked e-mail.
    Email(String),
    /// Anything else (a chat user id, a social handle): its channel and the id, NFKC-cleaned,
    /// case kept. Opaque ids are only meaningful within their channel.
    Opaque {
        /// The channel, lowercased.
        channel: String,
        /// The id.
        id: String,
    },
}

/// Reads an address: an e-mail when it contains `@` and has an e-mail's shape, a phone when it
/// has a possible length for a full number of its country (national numbers take
/// `default_region`), otherwise an opaque id of `channel`. Total: every input is some address.
///
/// A sender's number is evidence of who sent it, as a contact's number is evidence for
/// matching, so it is read with the matching engine's strictness ([`Validity::Possible`]), not
/// a dialer's: a number in a range the numbering-plan metadata does not list as assigned yet is
/// still the same digits in the message and in the contact records, and reading it as an
/// opaque id would keep it from its customer.
pub fn parse_address(channel: &str, raw: &str, default_region: Option<Region>) -> Address {
    if raw.contains('@')
        && let Ok(Some(email)) = normalize_email(raw)
    {
        return Address::Email(email);
    }
    if let Ok(Some(phone)) = normalize_phone_as(raw, default_region, Validity::Possible) {
        return Address::Phone(phone);
    }
    Address::Opaque {
        channel: text::clean(channel).to_lowercase(),
        id: text::clean(raw),
    }
}

impl Address {
    /// `phone`, `email` or `opaque`: safe to log, unlike the address.
    pub fn kind(&self) -> &'static str {
        match self {
            Address::Phone(_) => "phone",
            Address::Email(_) => "email",
            Address::Opaque { .. } => "opaque",
        }
    }

    /// The canonical id of a customer known only by this address: `phone:+12015550123`,
    /// `email:ann@example.com`, `opaque:chat:u-42`.
    pub fn canonical_id(&self) -> String {
        match self {
            Address::Phone(p) => format!("phone:{p}"),
            Address::Email(e) => format!("email:{e}"),
            Address::Opaque { channel, id } => format!("opaque:{channel}:{id}"),
        }
    }
}

/// Debug never shows the address itself (it is personal data and Debug output ends up in
/// logs); only its kind.
impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address::{}(<redacted>)", self.kind())
    }
}

/// Who sent a message, as far as deduplication is concerned.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum Customer {
    /// A customer of the contact index, by its canonical id: every address of it meets here.
    Known(String),
    /// An address the contact index does not know (or shares between customers): its own
    /// customer.
    Unknown(Address),
}

impl Customer {
    /// The canonical id reported to callers: the contact's id, or [`Address::canonical_id`].
    pub fn canonical_id(&self) -> String {
        match self {
            Customer::Known(id) => id.clone(),
            Customer::Unknown(a) => a.canonical_id(),
        }
    }
}

impl fmt::Debug for Customer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Customer::Known(id) => f.debug_tuple("Known").field(id).finish(),
            Customer::Unknown(a) => f.debug_tuple("Unknown").field(a).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn us() -> Option<Region> {
        Some("US".parse().unwrap())
    }

    #[test]
    fn phones_emails_and_opaque_ids() {
        assert_eq!(
            parse_address("sms", "(201) 336-7089", us()),
            Address::Phone("+12013367089".into())
        );
        assert_eq!(
            parse_address("chat", "+12013367089", None),
            Address::Phone("+12013367089".into())
        );
        assert_eq!(
            parse_address("email", " MAX.WALSH37@EXAMPLE.COM ", us()),
            Address::Email("max.walsh37@example.com".into())
        );
        assert_eq!(
            parse_address("Chat", "User-42", us()),
            Address::Opaque {
                channel: "chat".into(),
                id: "User-42".into()
            }
        );
        // A national number without a default region is not a phone.
        assert_eq!(
            parse_address("sms", "(201) 336-7089", None).kind(),
            "opaque"
        );
        assert_eq!(parse_address("x", "a@@b", us()).kind(), "opaque");
        // A full-length number in a range no numbering plan lists as assigned (area code 456)
        // is still a phone, as it is for matching; a local number without its area code is not.
        assert_eq!(
            parse_address("sms", "(456) 555-0123", us()),
            Address::Phone("+14565550123".into())
        );
        assert_eq!(parse_address("sms", "555-0123", us()).kind(), "opaque");
    }

    #[test]
    fn canonical_ids_and_redacted_debug() {
        let a = Address::Phone("+12013367089".into());
        assert_eq!(a.canonical_id(), "phone:+12013367089");
        assert_eq!(format!("{a:?}"), "Address::phone(<redacted>)");
        let c = Customer::Unknown(a);
        assert!(!format!("{c:?}").contains("2013367089"));
        assert_eq!(Customer::Known("C1".into()).canonical_id(), "C1");
    }

    proptest! {
        #[test]
        fn parse_address_never_panics_and_is_stable(channel in "\\PC{0,8}", raw in "\\PC{0,30}") {
            let a = parse_address(&channel, &raw, us());
            if let Address::Phone(p) | Address::Email(p) = &a {
                prop_assert_eq!(parse_address(&channel, p, us()), a.clone());
            }
        }
    }
}
