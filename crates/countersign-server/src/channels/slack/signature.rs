//! Slack's request signing (v0): `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret,
//! "v0:" + X-Slack-Request-Timestamp + ":" + raw body)>`. Checked on the raw bytes before
//! anything is parsed; the comparison is constant-time (`Mac::verify_slice`), and a timestamp
//! more than five minutes from now is refused so a captured request cannot be replayed later.

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

/// Verifies a request from Slack. `timestamp` and `signature` are the raw header values,
/// `now` is the current Unix time in seconds.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
        return Err(SignatureError::Missing);
    };
    let ts: i64 = timestamp.parse().map_err(|_| SignatureError::Missing)?;
    if (now - ts).abs() > MAX_SKEW_SECONDS {
        return Err(SignatureError::Stale);
    }
    let hex_sig = signature
        .strip_prefix("v0=")
        .ok_or(SignatureError::Missing)?;
    let given = hex::decode(hex_sig).map_err(|_| SignatureError::Invalid)?;
    mac(secret, timestamp, body)
        .verify_slice(&given)
        .map_err(|_| SignatureError::Invalid)
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
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY, 1531420618),
            Ok(())
        );
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
        assert_eq!(verify(SECRET, Some(TS), Some(SIG), BODY, ts + 300), Ok(()));
    }
}
