//! Slack's request signing (v0): `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:" + X-Slack-Request-Timestamp + ":" + raw body)>`. Checked on the raw bytes before
//! anything is parsed; the comparison is constant-time (`Mac::verify_slice`), and a timestamp
//! more than five minutes from now is refused so a captured request cannot be replayed later.
//!
//! Within those five minutes a replay is caught by the caller's replay cache, keyed on
//! [`Verified::replay_key`]: the MAC this module computed itself over the request's exact
//! timestamp and body. It never depends on how the signature header was written (hex case,
//! spacing), so a request is the same request whatever encoding of its signature comes with it.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// How far a request's timestamp may be from our clock.
pub const MAX_SKEW_SECONDS: i64 = 5 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// A header is absent or not in Slack's format.
    Missing,
    /// The timestamp is more than [`MAX_SKEW_SECONDS`] away from now.
    Stale,
    /// The signature does not match.
    Invalid,
}

impl SignatureError {
    pub fn code(self) -> &'static str {
        match self {
            SignatureError::Missing => "missing_signature",
            SignatureError::Stale => "stale_request",
            SignatureError::Invalid => "invalid_signature",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            SignatureError::Missing => {
                "X-Slack-Request-Timestamp and X-Slack-Signature (v0=…) are required"
            }
            SignatureError::Stale => "the request timestamp is more than 5 minutes from now",
            SignatureError::Invalid => "the Slack signature does not match this request",
        }
    }
}

/// A request whose signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Identifies the request for replay detection: the lowercase hex of the HMAC we computed
    /// over `v0:<timestamp>:<body>`. Two deliveries of the same timestamp and body have the same
    /// key, however their signature headers are spelled; a different body or timestamp cannot
    /// verify with another request's key.
    pub replay_key: String,
}

/// Verifies a request from Slack. `timestamp` and `signature` are the raw header values,
/// `now` is the current Unix time in seconds.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<Verified, SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Missing)?;
    // Any i64 may arrive: the distance is computed without overflow (a timestamp near i64::MIN
    // panicked in debug builds and, wrapped, could have read as fresh).
    if now.abs_diff(ts) > MAX_SKEW_SECONDS.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let hex_sig = signature
        .strip_prefix("v0=")
        .ok_or(SignatureError::Missing)?;
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::Invalid)?;
    let computed = mac(secret, timestamp, body).finalize().into_bytes();
    // Constant-time comparison of what was sent with what we computed.
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Invalid)?;
    Ok(Verified {
        replay_key: hex::encode(computed),
    })
}

/// The `X-Slack-Signature` value for `body` sent at `timestamp` (what Slack computes).
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        hex::encode(mac(secret, timestamp, body).finalize().into_bytes())
    )
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's documented example ("Verifying requests from Slack").
    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(sign(SECRET, TS, BODY), SIG);
        assert!(verify(SECRET, Some(TS), Some(SIG), BODY, 1531420618).is_ok());
    }

    #[test]
    fn a_replayed_callback_has_one_replay_key_whatever_its_encoding() {
        let now = 1531420618;
        let hex = SIG.strip_prefix("v0=").unwrap_or_default();
        let mixed: String = hex
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let key = verify(SECRET, Some(TS), Some(SIG), BODY, now)
            .map(|v| v.replay_key)
            .expect("verifies");
        for sig in [
            SIG.to_string(),
            format!("v0={}", hex.to_ascii_uppercase()),
            format!("v0={mixed}"),
        ] {
            assert_eq!(
                verify(SECRET, Some(TS), Some(&sig), BODY, now).map(|v| v.replay_key),
                Ok(key.clone()),
                "{sig}"
            );
        }
        // Spacing inside the value is not Slack's format: refused, never a second request.
        for sig in [
            format!("v0= {hex}"),
            format!("v0={hex} x"),
            format!("v0 ={hex}"),
        ] {
            assert!(
                verify(SECRET, Some(TS), Some(&sig), BODY, now).is_err(),
                "{sig}"
            );
        }
        // Another body or timestamp is another request with another key (and needs its own
        // signature).
        let other = sign(SECRET, "1531420619", BODY);
        let k2 = verify(SECRET, Some("1531420619"), Some(&other), BODY, now)
            .map(|v| v.replay_key)
            .expect("verifies");
        assert_ne!(k2, key);
    }

    #[test]
    fn a_changed_body_or_secret_or_signature_is_refused() {
        let now = 1531420618;
        let mut body = BODY.to_vec();
        body[0] ^= 1;
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), &body, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(b"other", Some(TS), Some(SIG), BODY, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("v0=zz"), BODY, now),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some("a2114d"), BODY, now),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(SECRET, None, Some(SIG), BODY, now),
            Err(SignatureError::Missing)
        );
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_stale_even_when_signed() {
        let ts: i64 = 1531420618;
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY, ts + 301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY, ts - 301),
            Err(SignatureError::Stale)
        );
        assert!(verify(SECRET, Some(TS), Some(SIG), BODY, ts + 300).is_ok());
    }

    /// Timestamps at the ends of i64, signed or not, are stale, never an overflow.
    #[test]
    fn a_timestamp_at_the_ends_of_the_integers_is_stale_not_an_overflow() {
        for ts in [
            i64::MIN.to_string(),
            (i64::MIN + 1).to_string(),
            i64::MAX.to_string(),
            "-1".to_string(),
        ] {
            for now in [1531420618, 0, -5, i64::MAX, i64::MIN] {
                let signed = sign(SECRET, &ts, BODY);
                let fresh = ts
                    .parse::<i64>()
                    .is_ok_and(|t| (i128::from(t) - i128::from(now)).abs() <= 300);
                let got = verify(SECRET, Some(&ts), Some(&signed), BODY, now);
                assert_eq!(got.is_ok(), fresh, "ts {ts} now {now}: {got:?}");
            }
        }
    }
}
