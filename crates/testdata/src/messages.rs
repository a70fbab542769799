//! Inbound messages for the gateway (the load of `dedupd-bench gateway`). Two streams, each
//! written twice: as a wrk Lua script and as request bodies ([`Stream::bodies`]) that are the
//! same as the script's first thread writes.
//!
//! - [`Stream::Repeating`]: HTML-formatted SMS from many senders, `distinct` messages repeated,
//!   so the gateway sees both PROCESS and SUPPRESS and does its whole job per request.
//! - [`Stream::Unique`]: every request a new plain-text SMS of about 300 bytes from a few
//!   senders, the common case of a real inbound stream (most messages are not duplicates): each
//!   request is a PROCESS and a window insert.

/// Which messages a stream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// `distinct` different messages, repeated in a shuffled order.
    Repeating {
        /// Distinct messages (at least 1).
        distinct: u64,
    },
    /// Every message new, from `senders` phone numbers.
    Unique {
        /// Distinct senders (at least 1).
        senders: u64,
    },
}

/// wrk's `setup` numbers the threads, so no two threads write the same body (each thread's Lua
/// state would otherwise draw the same "random" offset).
const SETUP: &str = r#"
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local counter = 0
"#;

const REPEATING: &str = r#"
local distinct = DISTINCT
request = function()
  counter = counter + 1
  local n = (counter * 7919 + (tid - 1) * 104729) % distinct
  local body = string.format(
    '{"channel":"sms","from":"(201) 7%02d-%04d","text":"<p>Where is my <b>order</b> number %d?</p>","message_id":"m-%d-%d"}',
    n % 100, n % 10000, n, tid, counter)
  return wrk.format("POST", "/v1/messages", {["Content-Type"] = "application/json"}, body)
end
"#;

const UNIQUE: &str = r#"
local senders = SENDERS
request = function()
  counter = counter + 1
  local s = (counter * 31 + tid) % senders
  local body = string.format(
    '{"channel":"sms","from":"+1 201 555 %04d","text":"Hello, I placed order %d-%d last week and the tracking page still says it has not shipped. Could you check what is going on and tell me when it will arrive? The delivery address is unchanged. Thanks a lot!","message_id":"u-%d-%d"}',
    1000 + s, tid, counter, tid, counter)
  return wrk.format("POST", "/v1/messages", {["Content-Type"] = "application/json"}, body)
end
"#;

impl Stream {
    /// The wrk Lua script that posts this stream.
    pub fn wrk_script(self) -> String {
        let body = match self {
            Stream::Repeating { distinct } => {
                REPEATING.replace("DISTINCT", &distinct.max(1).to_string())
            }
            Stream::Unique { senders } => UNIQUE.replace("SENDERS", &senders.max(1).to_string()),
        };
        format!("{SETUP}{body}")
    }

    /// The first `count` request bodies of the script's first thread, in order.
    pub fn bodies(self, count: u64) -> Vec<Vec<u8>> {
        let tid = 1u64;
        (1..=count)
            .map(|counter| {
                let body = match self {
                Stream::Repeating { distinct } => {
                    let n = (counter * 7919 + (tid - 1) * 104_729) % distinct.max(1);
                    format!(
                        r#"{{"channel":"sms","from":"(201) 7{:02}-{:04}","text":"<p>Where is my <b>order</b> number {n}?</p>","message_id":"m-{tid}-{counter}"}}"#,
                        n % 100,
                        n % 10000,
                    )
                }
                Stream::Unique { senders } => {
                    let s = (counter * 31 + tid) % senders.max(1);
                    format!(
                        r#"{{"channel":"sms","from":"+1 201 555 {:04}","text":"Hello, I placed order {tid}-{counter} last week and the tracking page still says it has not shipped. Could you check what is going on and tell me when it will arrive? The delivery address is unchanged. Thanks a lot!","message_id":"u-{tid}-{counter}"}}"#,
                        1000 + s,
                    )
                }
                };
                body.into_bytes()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn contents(bodies: &[Vec<u8>]) -> (HashSet<String>, HashSet<(String, String)>) {
        let mut senders = HashSet::new();
        let mut messages = HashSet::new();
        for b in bodies {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            assert_eq!(v["channel"], "sms");
            let from = v["from"].as_str().unwrap().to_owned();
            senders.insert(from.clone());
            messages.insert((from, v["text"].as_str().unwrap().to_owned()));
        }
        (senders, messages)
    }

    #[test]
    fn the_repeating_stream_has_its_distinct_messages() {
        let bodies = Stream::Repeating { distinct: 10 }.bodies(25);
        assert_eq!(bodies.len(), 25);
        assert_eq!(contents(&bodies).1.len(), 10);
    }

    #[test]
    fn the_unique_stream_never_repeats_and_has_few_senders() {
        let bodies = Stream::Unique { senders: 8 }.bodies(5_000);
        let (senders, messages) = contents(&bodies);
        assert_eq!(messages.len(), 5_000);
        assert_eq!(senders.len(), 8);
        let mean = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
        assert!((280..=340).contains(&mean), "mean body {mean} bytes");
    }

    #[test]
    fn the_scripts_have_their_counts_and_number_their_threads() {
        let s = Stream::Repeating { distinct: 50_000 }.wrk_script();
        assert!(s.contains("local distinct = 50000"));
        assert!(!s.contains("DISTINCT"));
        assert!(
            Stream::Repeating { distinct: 0 }
                .wrk_script()
                .contains("local distinct = 1\n")
        );
        let u = Stream::Unique { senders: 8 }.wrk_script();
        assert!(u.contains("local senders = 8\n"));
        assert!(u.contains("thread:set(\"tid\""));
    }
}
