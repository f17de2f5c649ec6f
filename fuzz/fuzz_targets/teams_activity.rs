//! Teams activities as `/teams/messages` reads them once the token verified: the JSON check,
//! the tenant, the conversations named, and an Adaptive Card click. Input: the bearer token,
//! newline, the activity body; the token's header is read as the verifier reads it before any
//! key is fetched. Never panics.
#![no_main]

use countersign_channels::teams::activity;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (token, body) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (&[][..], data),
    };
    if let Ok(token) = std::str::from_utf8(token) {
        let _ = jsonwebtoken::decode_header(token.trim());
    }
    if countersign_core::json_text::check(body).is_err() {
        return;
    }
    let Ok(activity @ Value::Object(_)) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let _ = activity::tenant_of(&activity);
    if let Some(conversation) = activity["conversation"]["id"].as_str() {
        let conversation = activity::base_conversation(conversation);
        let named = activity::conversations_named(&activity, conversation);
        assert_eq!(named.first(), Some(&conversation));
        assert!(named.iter().all(|c| !c.contains(';')));
    }
    let _ = activity::click(&activity);
});
