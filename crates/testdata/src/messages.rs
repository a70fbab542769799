//! Inbound messages for the gateway (the load of `dedupd-bench gateway`): a stream of
//! HTML-formatted SMS from `distinct` senders, so the gateway does its whole job per request and
//! sees both PROCESS and SUPPRESS. The wrk Lua script and [`stream`] write the same bodies.

/// The wrk script; `DISTINCT` stands for the number of distinct messages (see [`wrk_script`]).
const SCRIPT: &str = r#"
local counter = 0
local distinct = DISTINCT
local thread_salt = math.random(1, 1000000)
request = function()
  counter = counter + 1
  local n = (counter * 7919 + thread_salt) % distinct
  local body = string.format(
    '{"channel":"sms","from":"(201) 7%02d-%04d","text":"<p>Where is my <b>order</b> number %d?</p>","message_id":"m-%d"}',
    n % 100, n % 10000, n, counter)
  return wrk.format("POST", "/v1/messages", {["Content-Type"] = "application/json"}, body)
end
"#;

/// The wrk Lua script that posts the stream with `distinct` distinct messages (each wrk thread
/// starts at a random offset).
pub fn wrk_script(distinct: u64) -> String {
    SCRIPT.replace("DISTINCT", &distinct.max(1).to_string())
}

/// The request bodies of the wrk script, in the same order (one wrk thread with salt 0).
pub fn stream(distinct: u64, count: u64) -> Vec<Vec<u8>> {
    let distinct = distinct.max(1);
    (1..=count)
        .map(|counter| {
            let n = (counter * 7919) % distinct;
            format!(
                r#"{{"channel":"sms","from":"(201) 7{:02}-{:04}","text":"<p>Where is my <b>order</b> number {n}?</p>","message_id":"m-{counter}"}}"#,
                n % 100,
                n % 10000,
            )
            .into_bytes()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_process_stream_is_valid_json_with_duplicates() {
        let stream = stream(10, 25);
        assert_eq!(stream.len(), 25);
        let first: serde_json::Value = serde_json::from_slice(&stream[0]).unwrap();
        assert_eq!(first["channel"], "sms");
        let distinct: std::collections::HashSet<_> = stream
            .iter()
            .map(|b| {
                let v: serde_json::Value = serde_json::from_slice(b).unwrap();
                (v["from"].clone(), v["text"].clone())
            })
            .collect();
        assert_eq!(distinct.len(), 10);
    }

    #[test]
    fn the_script_has_its_count() {
        let s = wrk_script(50_000);
        assert!(s.contains("local distinct = 50000"));
        assert!(!s.contains("DISTINCT"));
        assert!(wrk_script(0).contains("local distinct = 1\n"));
    }
}
