//! Slack interactions over HTTP as `/slack/interactions` reads them: the signature headers and
//! body (`signature::verify`), then the form and its `payload` (`parse_form`), then the
//! buttons' values. Input: timestamp header, newline, signature header, newline, body.
//! Properties: never panics; a body signed with the secret at a timestamp within the window
//! verifies, and the same body under any other signature does not.
#![no_main]

use countersign_channels::slack::{interactions, render, signature};
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
const NOW: i64 = 1_800_000_000;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(ts), Some(sig), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(ts), Ok(sig)) = (std::str::from_utf8(ts), std::str::from_utf8(sig)) else {
        return;
    };
    let given = signature::verify(SECRET, Some(ts), Some(sig), body, NOW);
    let signed = signature::sign(SECRET, ts, body);
    let genuine = signature::verify(SECRET, Some(ts), Some(&signed), body, NOW);
    let in_window = ts
        .parse::<i64>()
        .is_ok_and(|t| t.checked_sub(NOW).is_some_and(|d| d.abs() <= 300));
    assert_eq!(genuine.is_ok(), in_window, "ts {ts:?}");
    if given.is_ok() {
        assert_eq!(
            sig.to_ascii_lowercase(),
            signed,
            "only Slack's signature verifies"
        );
    }
    let Ok(payload) = interactions::parse_form(body) else {
        return;
    };
    if let Some(actions) = payload["actions"].as_array() {
        for action in actions {
            let value = action["value"].as_str().unwrap_or_default();
            let _ = render::parse_button_value(value);
            let _ = render::parse_standing_value(value);
        }
    }
});
