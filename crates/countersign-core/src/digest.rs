//! The digest that binds every vote, grant and redemption to exactly one action by exactly one
//! requester: SHA-256 over the canonical JSON of `{action, requester}`.

use crate::{Action, PrincipalId, canonical};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest([u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a digest looks like `sha256:` followed by 64 lowercase hex digits")]
pub struct InvalidDigest;

#[derive(Serialize)]
struct DigestInput<'a> {
    action: &'a Action,
    requester: &'a PrincipalId,
}

impl Digest {
    /// The digest of `action` as asked for by `requester`.
    pub fn of_action(action: &Action, requester: &PrincipalId) -> Self {
        Self::of_bytes(&canonical::to_vec(&DigestInput { action, requester }))
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Constant-time equality, for comparisons where the expected value is a secret or where
    /// timing would tell an attacker how much of a guess was right.
    pub fn ct_eq(&self, other: &Digest) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

/// Lower-case hex of a 32-byte hash, as bytes. `hex::encode` builds its string one `char` at a
/// time, which showed in instruction profiles of the submit path (several hashes are printed
/// per request); a table lookup per byte into a fixed buffer costs a tenth of that.
pub fn hex32(bytes: &[u8; 32]) -> [u8; 64] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    out
}

/// [`hex32`] as a `String`.
pub fn hex32_string(bytes: &[u8; 32]) -> String {
    let hex = hex32(bytes);
    // Hex digits are ASCII: always valid UTF-8.
    std::str::from_utf8(&hex)
        .map(str::to_owned)
        .unwrap_or_default()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = hex32(&self.0);
        // Hex digits are ASCII, so this never fails.
        let hex = std::str::from_utf8(&hex).map_err(|_| fmt::Error)?;
        f.write_str("sha256:")?;
        f.write_str(hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = InvalidDigest;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let hex_part = s.strip_prefix("sha256:").ok_or(InvalidDigest)?;
        if hex_part.len() != 64 || hex_part.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(InvalidDigest);
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_part, &mut out).map_err(|_| InvalidDigest)?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        s.push_str(std::str::from_utf8(&hex32(&d.0)).unwrap_or_default());
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn action(params: serde_json::Value) -> Action {
        Action {
            kind: "db.export".into(),
            resource: "postgres://prod/customers".into(),
            params,
            justification: Some("weekly report".into()),
            run: None,
            labels: Default::default(),
        }
    }

    #[test]
    fn digest_round_trips_through_text() {
        let d = Digest::of_bytes(b"x");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!("sha256:zz".parse::<Digest>().is_err());
        assert!(d.to_string().to_uppercase().parse::<Digest>().is_err());
        // The fast hex is the `hex` crate's, and `String::from` the same as `Display`.
        assert_eq!(hex32_string(d.as_bytes()), hex::encode(d.as_bytes()));
        assert_eq!(String::from(d), d.to_string());
    }

    #[test]
    fn key_order_does_not_change_the_digest() {
        let alice = PrincipalId::parse("agent:a").unwrap();
        let a: serde_json::Value = serde_json::from_str(r#"{"x":1,"y":[1,2]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"y":[1,2], "x":1.0}"#).unwrap();
        assert_eq!(
            Digest::of_action(&action(a), &alice),
            Digest::of_action(&action(b), &alice)
        );
    }

    #[test]
    fn requester_is_part_of_the_digest() {
        let a = action(json!({}));
        assert_ne!(
            Digest::of_action(&a, &PrincipalId::parse("agent:a").unwrap()),
            Digest::of_action(&a, &PrincipalId::parse("agent:b").unwrap())
        );
    }

    proptest! {
        /// Invariant 2 at the level of bytes: any change to a param string changes the digest.
        #[test]
        fn approval_binds_digest_any_changed_param_changes_digest(s in ".{0,40}", t in ".{0,40}") {
            prop_assume!(s != t);
            let who = PrincipalId::parse("agent:a").unwrap();
            prop_assert_ne!(
                Digest::of_action(&action(json!({"sql": s})), &who),
                Digest::of_action(&action(json!({"sql": t})), &who)
            );
        }
    }
}
