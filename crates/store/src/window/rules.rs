//! How long a first message suppresses later ones, by channel pair.
//!
//! A phone that retries an SMS repeats itself within seconds; a customer who asks again by
//! e-mail after an SMS may take an hour. [`WindowRules`] holds one default window and any number
//! of windows for a pair of channels. A pair is unordered (`sms/email` also covers an e-mail
//! first and an SMS later), channel names are compared without regard to ASCII case, and `*`
//! stands for any channel:
//!
//! ```
//! use std::time::Duration;
//! use dedupd_store::window::WindowRules;
//!
//! let rules = WindowRules::uniform(Duration::from_secs(300))
//!     .with_pair("sms/sms", Duration::from_secs(60)).unwrap()
//!     .with_pair("sms/email", Duration::from_secs(3600)).unwrap()
//!     .with_pair("email/*", Duration::from_secs(900)).unwrap();
//! assert_eq!(rules.between("sms", "SMS"), Duration::from_secs(60));
//! assert_eq!(rules.between("email", "sms"), Duration::from_secs(3600));
//! assert_eq!(rules.between("chat", "email"), Duration::from_secs(900));
//! assert_eq!(rules.between("chat", "sms"), Duration::from_secs(300));
//! // An SMS must be remembered as long as any later channel may still be suppressed by it.
//! assert_eq!(rules.longest_from("sms"), Duration::from_secs(3600));
//! ```
//!
//! Lookup goes from the most specific rule to the least: the exact pair, then a pair with one
//! `*` (when both channels have one, the longer window), then the default.

use std::fmt;
use std::time::Duration;

use thiserror::Error;

/// The wildcard channel.
pub const ANY_CHANNEL: &str = "*";

/// The longest window accepted: a year. Longer is a configuration mistake (a dedup window is
/// minutes to days), and it would overflow Redis's expiry.
pub const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 3600);

/// A channel-pair rule that could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("window pair {pair:?}: {reason}")]
pub struct RuleError {
    /// The pair as written.
    pub pair: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// The dedup windows, by channel pair. See the module docs.
#[derive(Clone, PartialEq, Eq)]
pub struct WindowRules {
    default: Duration,
    /// `(a, b, window)`, lowercased, `a <= b`, no duplicates.
    pairs: Vec<(String, String, Duration)>,
}

impl fmt::Debug for WindowRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        m.entry(&"*/*", &self.default);
        for (a, b, d) in &self.pairs {
            m.entry(&format!("{a}/{b}"), d);
        }
        m.finish()
    }
}

impl WindowRules {
    /// One window for every channel pair.
    pub fn uniform(window: Duration) -> WindowRules {
        WindowRules {
            default: window,
            pairs: Vec::new(),
        }
    }

    /// Adds (or replaces) the window of `pair`, written `a/b` (`sms/email`, `chat/*`; `*/*`
    /// sets the default). Channels are trimmed and lowercased.
    pub fn with_pair(mut self, pair: &str, window: Duration) -> Result<WindowRules, RuleError> {
        let refuse = |reason| RuleError {
            pair: pair.to_owned(),
            reason,
        };
        let (a, b) = pair
            .split_once('/')
            .ok_or_else(|| refuse("write a pair as channel/channel, e.g. sms/email or sms/*"))?;
        let (a, b) = (a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase());
        if a.is_empty() || b.is_empty() || b.contains('/') {
            return Err(refuse(
                "write a pair as channel/channel, e.g. sms/email or sms/*",
            ));
        }
        if window.is_zero() {
            return Err(refuse("a window must be at least 1 second"));
        }
        if window > MAX_WINDOW {
            return Err(refuse(
                "a window must be at most 365 days (31536000 seconds)",
            ));
        }
        if a == ANY_CHANNEL && b == ANY_CHANNEL {
            self.default = window;
            return Ok(self);
        }
        let (a, b) = if a <= b { (a, b) } else { (b, a) };
        match self.pairs.iter_mut().find(|(x, y, _)| *x == a && *y == b) {
            Some(slot) => slot.2 = window,
            None => self.pairs.push((a, b, window)),
        }
        Ok(self)
    }

    /// The window for any pair no rule names.
    pub fn default_window(&self) -> Duration {
        self.default
    }

    /// True when every pair has the default window.
    pub fn is_uniform(&self) -> bool {
        self.pairs.iter().all(|(_, _, d)| *d == self.default)
    }

    /// How long a message on `later` is a duplicate of a first message on `first`.
    pub fn between(&self, first: &str, later: &str) -> Duration {
        let first = first.trim();
        let later = later.trim();
        let mut wildcard: Option<Duration> = None;
        for (a, b, d) in &self.pairs {
            if pair_is(a, b, first, later) {
                return *d;
            }
            let star = (b == ANY_CHANNEL
                && (a.eq_ignore_ascii_case(first) || a.eq_ignore_ascii_case(later)))
                || (a == ANY_CHANNEL
                    && (b.eq_ignore_ascii_case(first) || b.eq_ignore_ascii_case(later)));
            if star {
                wildcard = Some(wildcard.map_or(*d, |w| w.max(*d)));
            }
        }
        wildcard.unwrap_or(self.default)
    }

    /// The longest window in which a first message on `channel` can suppress a later one: how
    /// long the window must remember it.
    pub fn longest_from(&self, channel: &str) -> Duration {
        let channel = channel.trim();
        self.pairs
            .iter()
            .filter(|(a, b, _)| {
                a == ANY_CHANNEL
                    || b == ANY_CHANNEL
                    || a.eq_ignore_ascii_case(channel)
                    || b.eq_ignore_ascii_case(channel)
            })
            .map(|(_, _, d)| *d)
            .fold(self.default, Duration::max)
    }

    /// The longest window of any pair.
    pub fn longest(&self) -> Duration {
        self.pairs
            .iter()
            .map(|(_, _, d)| *d)
            .fold(self.default, Duration::max)
    }

    /// The windows a message on `later` sees, for a backend that must decide without this
    /// process (Redis): the window for every channel a rule names (`(channel, window)`), and the
    /// window for any other first channel.
    pub fn seen_from(&self, later: &str) -> (Vec<(&str, Duration)>, Duration) {
        let mut named: Vec<(&str, Duration)> = Vec::new();
        for (a, b, _) in &self.pairs {
            for c in [a.as_str(), b.as_str()] {
                if c != ANY_CHANNEL && !named.iter().any(|(n, _)| *n == c) {
                    named.push((c, self.between(c, later)));
                }
            }
        }
        // A first channel no rule names: only `later/*` (or `*/later`) or the default apply.
        let other = self
            .pairs
            .iter()
            .filter(|(a, b, _)| {
                (a == ANY_CHANNEL && b.eq_ignore_ascii_case(later.trim()))
                    || (b == ANY_CHANNEL && a.eq_ignore_ascii_case(later.trim()))
            })
            .map(|(_, _, d)| *d)
            .max()
            .unwrap_or(self.default);
        (named, other)
    }
}

fn pair_is(a: &str, b: &str, x: &str, y: &str) -> bool {
    (a.eq_ignore_ascii_case(x) && b.eq_ignore_ascii_case(y))
        || (a.eq_ignore_ascii_case(y) && b.eq_ignore_ascii_case(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn rules() -> WindowRules {
        WindowRules::uniform(s(300))
            .with_pair("sms/sms", s(60))
            .unwrap()
            .with_pair("Email / SMS", s(3600))
            .unwrap()
            .with_pair("chat/*", s(120))
            .unwrap()
            .with_pair("*/whatsapp", s(600))
            .unwrap()
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let r = rules();
        assert_eq!(r.between("sms", "sms"), s(60));
        assert_eq!(r.between("sms", "email"), s(3600), "pairs are unordered");
        assert_eq!(r.between("EMAIL", "sms"), s(3600), "case does not matter");
        assert_eq!(r.between("chat", "email"), s(120));
        assert_eq!(r.between("email", "chat"), s(120));
        assert_eq!(
            r.between("chat", "whatsapp"),
            s(600),
            "two wildcards: the longer"
        );
        assert_eq!(
            r.between("webform", "email"),
            s(300),
            "no rule: the default"
        );
        assert!(!r.is_uniform());
        assert!(WindowRules::uniform(s(5)).is_uniform());
    }

    #[test]
    fn longest_from_bounds_every_pair() {
        let r = rules();
        for first in ["sms", "email", "chat", "whatsapp", "webform"] {
            let longest = r.longest_from(first);
            for later in ["sms", "email", "chat", "whatsapp", "webform", "x"] {
                assert!(r.between(first, later) <= longest, "{first}/{later}");
            }
        }
        assert_eq!(r.longest_from("sms"), s(3600));
        assert_eq!(r.longest_from("webform"), s(600));
        assert_eq!(r.longest(), s(3600));
    }

    #[test]
    fn seen_from_agrees_with_between() {
        let r = rules();
        for later in ["sms", "email", "chat", "whatsapp", "webform"] {
            let (named, other) = r.seen_from(later);
            for first in ["sms", "email", "chat", "whatsapp", "webform", "fax"] {
                let expect = r.between(first, later);
                let got = named
                    .iter()
                    .find(|(c, _)| *c == first)
                    .map_or(other, |(_, d)| *d);
                assert_eq!(got, expect, "{first} then {later}");
            }
        }
    }

    #[test]
    fn bad_pairs_are_refused_with_the_reason() {
        let base = WindowRules::uniform(s(300));
        for bad in ["sms", "sms/", "/email", "a/b/c"] {
            let e = base.clone().with_pair(bad, s(1)).unwrap_err();
            assert_eq!(e.pair, bad);
        }
        assert!(base.clone().with_pair("sms/email", s(0)).is_err());
        assert!(base.clone().with_pair("sms/email", MAX_WINDOW).is_ok());
        assert!(
            base.clone()
                .with_pair("sms/email", MAX_WINDOW + s(1))
                .is_err()
        );
        let r = base.with_pair("*/*", s(30)).unwrap();
        assert_eq!(r.default_window(), s(30));
        let r = r.with_pair("sms/email", s(10)).unwrap();
        let r = r.with_pair("email/sms", s(20)).unwrap();
        assert_eq!(
            r.between("sms", "email"),
            s(20),
            "a pair is replaced, not added"
        );
    }
}
