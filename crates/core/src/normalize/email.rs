//! E-mail addresses: trimmed, NFKC, lowercased, shape-checked.

use thiserror::Error;

use super::text;

/// Why an e-mail value was refused. The message never repeats the address itself.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum EmailError {
    /// The value is not shaped like `local@domain.tld`.
    #[error("not an e-mail address: {0}")]
    Shape(&'static str),
}

/// Normalizes an e-mail address: NFKC, whitespace trimmed, lowercased (the whole address: every
/// mailbox provider dedupd's users meet treats the local part case-insensitively), and checks its
/// shape: one `@`, a local part of 1–64 characters, a domain of dot-separated labels with at least
/// two labels, no whitespace, at most 254 characters in all.
///
/// Returns `Ok(None)` for an empty value.
pub fn normalize_email(raw: &str) -> Result<Option<String>, EmailError> {
    let cleaned = text::clean(raw);
    if cleaned.is_empty() {
        return Ok(None);
    }
    let email = cleaned.to_lowercase();
    validate(&email)?;
    Ok(Some(email))
}

fn validate(email: &str) -> Result<(), EmailError> {
    if email.chars().count() > 254 {
        return Err(EmailError::Shape("longer than 254 characters"));
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(EmailError::Shape("contains whitespace"));
    }
    let (local, domain) = email.split_once('@').ok_or(EmailError::Shape("no '@'"))?;
    if domain.contains('@') {
        return Err(EmailError::Shape("more than one '@'"));
    }
    if local.is_empty() || local.chars().count() > 64 {
        return Err(EmailError::Shape(
            "local part empty or longer than 64 characters",
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(EmailError::Shape("misplaced '.' in the local part"));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(EmailError::Shape("domain has no '.'"));
    }
    for label in labels {
        if label.is_empty() {
            return Err(EmailError::Shape("empty domain label"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(EmailError::Shape("domain label starts or ends with '-'"));
        }
        if !label.chars().all(|c| c.is_alphanumeric() || c == '-') {
            return Err(EmailError::Shape("invalid character in the domain"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lowercases_and_trims() {
        assert_eq!(
            normalize_email("  NEW.KATIE.SMITH10@GMAIL.COM ")
                .unwrap()
                .as_deref(),
            Some("new.katie.smith10@gmail.com")
        );
        assert_eq!(
            normalize_email("new.leander.bärer33@gmail.com")
                .unwrap()
                .as_deref(),
            Some("new.leander.bärer33@gmail.com")
        );
        assert_eq!(normalize_email("   ").unwrap(), None);
    }

    #[test]
    fn rejects_bad_shapes() {
        for bad in [
            "a",
            "a@b",
            "@b.com",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            "a@-b.com",
            ".a@b.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn idempotent_and_total(s in any::<String>()) {
            if let Ok(Some(e)) = normalize_email(&s) {
                prop_assert_eq!(normalize_email(&e), Ok(Some(e.clone())));
            }
        }

        #[test]
        fn plausible_addresses_survive(local in "[a-z0-9_%+-]{1,8}(\\.[a-z0-9_%+-]{1,8}){0,2}", dom in "[a-z0-9]{1,10}", tld in "[a-z]{2,6}") {
            let addr = format!("{}@{}.{}", local.to_uppercase(), dom, tld);
            let out = normalize_email(&addr);
            prop_assert_eq!(out, Ok(Some(addr.to_lowercase())));
        }
    }
}
