//! Secrets the gateway must read back, sealed before they reach the store. A TOTP seed cannot
//! be stored hashed (each check recomputes codes from it), so it is encrypted with AES-256-GCM
//! (aws-lc-rs, the one crypto backend) under a key derived from the audit signing key, the one
//! secret file the gateway already keeps (mode 0600). The principal's id is the associated
//! data, so a sealed seed copied onto another principal's row does not open.
//!
//! Layout: `cs1:` ‖ 12-byte random nonce ‖ ciphertext ‖ 16-byte tag. Rows written before
//! sealing hold the bare 20-byte seed; they are shorter than any sealed value and are read as
//! they are (they stay in clear until the person enrolls again).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

const MAGIC: &[u8] = b"cs1:";
const TAG_LEN: usize = 16;

/// Why a stored secret could not be opened.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error(
        "a stored secret does not open with this gateway's key (was the audit key replaced, or the row copied?)"
    )]
    WrongKeyOrTampered,
}

pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// The key is HMAC-SHA256 of `secret` and a fixed label (the console's derivation), so it
    /// is independent of the other keys derived from the same secret (the console's session
    /// and CSRF keys).
    pub fn from_secret(secret: &[u8]) -> Sealer {
        let bytes = crate::tokens::hmac(secret, &[b"countersign secrets at rest v1"]);
        let key = UnboundKey::new(&AES_256_GCM, &bytes).expect("32 bytes is an AES-256 key");
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    pub fn seal(&self, owner: &str, plain: &[u8]) -> Vec<u8> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut body,
            )
            .expect("AES-GCM seals any input this small");
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        out
    }

    pub fn open(&self, owner: &str, stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        let Some(rest) = stored
            .strip_prefix(MAGIC)
            .filter(|rest| rest.len() >= NONCE_LEN + TAG_LEN)
        else {
            // Written before secrets were sealed.
            return Ok(stored.to_vec());
        };
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::WrongKeyOrTampered)?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut body)
            .map_err(|_| OpenError::WrongKeyOrTampered)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_for_its_owner_only() {
        let sealer = Sealer::from_secret(b"audit key");
        let sealed = sealer.seal("user:carol@example.com", b"twenty byte secret!!");
        assert!(sealed.starts_with(MAGIC));
        assert!(!sealed.windows(20).any(|w| w == b"twenty byte secret!!"));
        assert_eq!(
            sealer.open("user:carol@example.com", &sealed).unwrap(),
            b"twenty byte secret!!"
        );
        assert_eq!(
            sealer.open("user:dave@example.com", &sealed),
            Err(OpenError::WrongKeyOrTampered)
        );
        let other_key = Sealer::from_secret(b"another audit key");
        assert_eq!(
            other_key.open("user:carol@example.com", &sealed),
            Err(OpenError::WrongKeyOrTampered)
        );
    }

    #[test]
    fn a_tampered_secret_does_not_open() {
        let sealer = Sealer::from_secret(b"audit key");
        let sealed = sealer.seal("user:carol@example.com", b"twenty byte secret!!");
        for i in MAGIC.len()..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert_eq!(
                sealer.open("user:carol@example.com", &bad),
                Err(OpenError::WrongKeyOrTampered),
                "byte {i}"
            );
        }
    }

    #[test]
    fn secrets_stored_before_sealing_are_read_as_they_are() {
        let sealer = Sealer::from_secret(b"audit key");
        let legacy = *b"cs1:sixteen more by";
        assert_eq!(
            sealer.open("user:carol@example.com", &legacy).unwrap(),
            legacy
        );
        let seals_differ = sealer.seal("u", b"x") != sealer.seal("u", b"x");
        assert!(seals_differ, "each seal draws a fresh nonce");
    }
}
