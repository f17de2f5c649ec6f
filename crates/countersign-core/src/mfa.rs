//! TOTP (RFC 6238) verification: the second factor a vote can carry when a rule says `mfa: true`.
//!
//! Written against `hmac` and `sha1` directly rather than a TOTP crate because we need what
//! those crates do not expose together: the time step that matched (so a code is never accepted
//! twice), a constant-time comparison, and no clock of their own (time is a parameter here).

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: u32 = 6;
/// One step of clock skew either way.
pub const SKEW_STEPS: u64 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("the one-time code is not valid now")]
    Invalid,
    #[error("this one-time code was already used; wait for the next one")]
    Reused,
}

/// The code for one time step (RFC 4226 dynamic truncation of HMAC-SHA1).
pub fn code_at_step(secret: &[u8], step: u64) -> u32 {
    let mut mac =
        <Hmac<Sha1> as KeyInit>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// Checks `code` at `unix_seconds`, allowing one step of skew. `last_step` is the step of the
/// last code this person used: a code at or before it is refused, so no code works twice.
/// Returns the step that matched, to be stored as the new `last_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: u64,
    last_step: Option<u64>,
) -> Result<u64, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::Invalid);
    }
    let now_step = unix_seconds / STEP_SECONDS;
    let mut matched = None;
    for step in now_step.saturating_sub(SKEW_STEPS)..=now_step + SKEW_STEPS {
        let expected = format!(
            "{:0width$}",
            code_at_step(secret, step),
            width = DIGITS as usize
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            matched = Some(step);
        }
    }
    let step = matched.ok_or(TotpError::Invalid)?;
    if last_step.is_some_and(|last| step <= last) {
        return Err(TotpError::Reused);
    }
    Ok(step)
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let secret = data_encoding::BASE32_NOPAD.encode(secret);
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 Appendix B (8-digit values; we keep the last 6).
        for (t, eight) in [
            (59u64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
        ] {
            assert_eq!(code_at_step(RFC_SECRET, t / 30), eight % 1_000_000, "t={t}");
        }
    }

    #[test]
    fn accepts_one_step_of_skew_and_no_more() {
        let t = 1_234_567_890;
        let code = |step: u64| format!("{:06}", code_at_step(RFC_SECRET, step));
        assert!(verify(RFC_SECRET, &code(t / 30 - 1), t, None).is_ok());
        assert!(verify(RFC_SECRET, &code(t / 30 + 1), t, None).is_ok());
        assert_eq!(
            verify(RFC_SECRET, &code(t / 30 - 2), t, None),
            Err(TotpError::Invalid)
        );
    }

    #[test]
    fn no_code_accepted_twice() {
        let t = 1_234_567_890;
        let code = format!("{:06}", code_at_step(RFC_SECRET, t / 30));
        let step = verify(RFC_SECRET, &code, t, None).unwrap();
        assert_eq!(
            verify(RFC_SECRET, &code, t, Some(step)),
            Err(TotpError::Reused)
        );
    }

    #[test]
    fn uri_names_issuer_and_secret() {
        let uri = otpauth_uri("Countersign", "alice@example.com", b"hello");
        assert!(uri.starts_with("otpauth://totp/Countersign:alice@example.com?secret=NBSWY3DP"));
    }
}
