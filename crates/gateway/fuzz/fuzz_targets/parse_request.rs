//! The request parser answers any body with a value or an error envelope, never a panic.
#![no_main]

use dedupd_gateway::MessageRequest;
use dedupd_http::parse_json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_json::<MessageRequest>(data) {
        Ok(_) => {}
        Err(e) => {
            let envelope = e.envelope();
            assert!(envelope.error.status >= 400 && envelope.error.status < 500);
        }
    }
});
