//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures: the gateway's signing key,
//! its verifier key string `<name>+<key id hex>+<base64(0x01 ‖ public key)>`, signing a text and
//! opening a signed note with a trusted key. Also signs raw messages with the same key (the DSSE
//! envelopes of attestations).
//!
//! Key strings follow the formats Go's `golang.org/x/mod/sumdb/note` reads and writes, so
//! existing signed-note tools can check our checkpoints. The text format is small and exact, so
//! it is written here; the cryptography is `ed25519-dalek`'s.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// The signature type byte of Ed25519 in signed notes.
pub const ED25519: u8 = 0x01;

/// The most signature lines a note may carry before we refuse to read it.
const MAX_SIGNATURES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("malformed key: {0}")]
    BadKey(String),
    #[error("malformed note: {0}")]
    Malformed(String),
    #[error("the note is not signed by {0}")]
    NotSigned(String),
    #[error(
        "the signature by {0} does not verify: the note was changed after signing, or signed by another key"
    )]
    BadSignature(String),
}

/// The 4-byte key id of signed-note: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)[:4], big-endian.
pub fn key_id(name: &str, public_key: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public_key);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(NoteError::BadKey(format!(
            "key name `{name}` must be non-empty, without spaces or `+`"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(NoteError::BadKey("key name has control characters".into()));
    }
    Ok(())
}

/// The gateway's signing key. Never printed: `Debug` shows only the name and key id.
#[derive(Clone)]
pub struct NoteSigner {
    name: String,
    id: u32,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NoteSigner({}+{:08x}, secret hidden)",
            self.name, self.id
        )
    }
}

impl NoteSigner {
    /// A new random key named `name` (a schema-less URL such as `example.com/audit`).
    pub fn generate(name: &str) -> Result<Self, NoteError> {
        Self::from_seed(name, rand::random())
    }

    /// The key with this 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, NoteError> {
        check_name(name)?;
        let key = SigningKey::from_bytes(&seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(NoteSigner {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// Reads `PRIVATE+KEY+<name>+<id hex>+<base64(0x01 ‖ seed)>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("not a signed-note private key: {why}"));
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it must start with PRIVATE+KEY+"))?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected PRIVATE+KEY+<name>+<id>+<key>"));
        };
        let raw = BASE64
            .decode(b64)
            .map_err(|_| bad("the key is not base64"))?;
        let (alg, seed) = raw.split_first().ok_or_else(|| bad("the key is empty"))?;
        if *alg != ED25519 {
            return Err(bad("only Ed25519 (type 0x01) keys are supported"));
        }
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| bad("the seed is not 32 bytes"))?;
        let signer = Self::from_seed(name, seed)?;
        if format!("{:08x}", signer.id) != id_hex {
            return Err(bad("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// The private key string (for the key file only).
    pub fn to_private_string(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(&self.key.to_bytes());
        format!(
            "PRIVATE+KEY+{}+{:08x}+{}",
            self.name,
            self.id,
            BASE64.encode(raw)
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `text` (which must end in a newline) as a note: the text, a blank line and one
    /// signature line.
    pub fn sign_note(&self, text: &str) -> Result<String, NoteError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!(
            "{text}\n\u{2014} {} {}\n",
            self.name,
            BASE64.encode(blob)
        ))
    }

    /// A raw Ed25519 signature over `message` (for DSSE).
    pub fn sign_raw(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// A trusted public key, as a signed-note verifier key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: u32,
    key: VerifyingKey,
}

impl std::fmt::Display for NoteVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{:08x}+{}", self.name, self.id, BASE64.encode(raw))
    }
}

impl std::str::FromStr for NoteVerifier {
    type Err = NoteError;

    fn from_str(s: &str) -> Result<Self, NoteError> {
        Self::parse(s)
    }
}

impl NoteVerifier {
    /// Reads `<name>+<id hex>+<base64(0x01 ‖ public key)>` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let bad = |why: &str| NoteError::BadKey(format!("not a signed-note verifier key: {why}"));
        let mut parts = text.trim().splitn(3, '+');
        let (Some(name), Some(id_hex), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("expected <name>+<key id>+<key>"));
        };
        check_name(name)?;
        if id_hex.len() != 8 || !id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key id is not 8 hex digits"));
        }
        let raw = BASE64
            .decode(b64)
            .map_err(|_| bad("the key is not base64"))?;
        let (alg, public) = raw.split_first().ok_or_else(|| bad("the key is empty"))?;
        if *alg != ED25519 {
            return Err(bad("only Ed25519 (type 0x01) keys are supported"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| bad("the public key is not 32 bytes"))?;
        let key = VerifyingKey::from_bytes(&public).map_err(|_| bad("not an Ed25519 point"))?;
        let id = key_id(name, &public);
        if format!("{id:08x}") != id_hex.to_ascii_lowercase() {
            return Err(bad("the key id does not match the name and key"));
        }
        Ok(NoteVerifier {
            name: name.to_owned(),
            id,
            key,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn key_id(&self) -> u32 {
        self.id
    }

    /// The raw 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    /// Checks a signed note and returns its text (with the final newline). Signatures by other
    /// keys are ignored, as the spec requires; a note with none by this key, or whose signature
    /// by this key fails, is refused.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, NoteError> {
        let (text, sigs) = split_note(note)?;
        let mut found = false;
        for line in sigs.lines() {
            let (name, blob) = parse_signature_line(line)?;
            if name != self.name || blob.len() < 4 {
                continue;
            }
            let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
            if id != self.id {
                continue;
            }
            found = true;
            let sig: [u8; 64] = blob[4..]
                .try_into()
                .map_err(|_| NoteError::BadSignature(self.to_string()))?;
            let sig = ed25519_dalek::Signature::from_bytes(&sig);
            self.key
                .verify_strict(text.as_bytes(), &sig)
                .map_err(|_| NoteError::BadSignature(self.to_string()))?;
        }
        match found {
            true => Ok(text),
            false => Err(NoteError::NotSigned(self.to_string())),
        }
    }

    /// Checks a raw Ed25519 signature (DSSE).
    pub fn verify_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(sig) = <[u8; 64]>::try_from(signature) else {
            return false;
        };
        let sig = ed25519_dalek::Signature::from_bytes(&sig);
        self.key.verify_strict(message, &sig).is_ok()
    }
}

/// A note's text must be UTF-8 (it is a `str`), end in a newline, and hold no control
/// characters but newlines.
fn check_text(text: &str) -> Result<(), NoteError> {
    if !text.ends_with('\n') {
        return Err(NoteError::Malformed(
            "the text must end with a newline".into(),
        ));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(NoteError::Malformed(
            "the text has control characters other than newline".into(),
        ));
    }
    Ok(())
}

/// Splits a note into its text (with the final newline) and its signature lines, at the last
/// blank line.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    if !note.ends_with('\n') {
        return Err(NoteError::Malformed(
            "a signed note ends with a newline".into(),
        ));
    }
    let at = note
        .rfind("\n\n")
        .ok_or_else(|| NoteError::Malformed("no blank line before the signatures".into()))?;
    let (text, sigs) = (&note[..=at], &note[at + 2..]);
    check_text(text)?;
    if sigs.is_empty() {
        return Err(NoteError::Malformed("no signature lines".into()));
    }
    if sigs.lines().count() > MAX_SIGNATURES {
        return Err(NoteError::Malformed("too many signatures".into()));
    }
    Ok((text, sigs))
}

/// `— <name> <base64>` → (name, decoded blob).
fn parse_signature_line(line: &str) -> Result<(&str, Vec<u8>), NoteError> {
    let bad = || NoteError::Malformed(format!("not a signature line: `{line}`"));
    let rest = line.strip_prefix("\u{2014} ").ok_or_else(bad)?;
    let (name, b64) = rest.split_once(' ').ok_or_else(bad)?;
    if name.is_empty() || b64.contains(' ') {
        return Err(bad());
    }
    let blob = BASE64.decode(b64).map_err(|_| bad())?;
    Ok((name, blob))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kat() -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(include_str!("../testdata/rfc9162-vectors.json")).unwrap();
        v["signed_note"].clone()
    }

    #[test]
    fn go_sumdb_note_known_answer() {
        let v = kat();
        let signer = NoteSigner::parse(v["signer_key"].as_str().unwrap()).unwrap();
        assert_eq!(
            signer.to_private_string(),
            v["signer_key"].as_str().unwrap()
        );
        assert_eq!(
            signer.verifier().to_string(),
            v["verifier_key"].as_str().unwrap()
        );
        let text = v["text"].as_str().unwrap();
        let note = signer.sign_note(text).unwrap();
        // Ed25519 is deterministic: the same key and text give Go's note byte for byte.
        assert_eq!(note, v["note"].as_str().unwrap());
        let verifier = NoteVerifier::parse(v["verifier_key"].as_str().unwrap()).unwrap();
        assert_eq!(verifier.open(&note).unwrap(), text);
    }

    #[test]
    fn a_round_trip_verifies_and_any_edit_or_other_key_is_refused() {
        let signer = NoteSigner::generate("countersign.example/audit").unwrap();
        let note = signer.sign_note("origin\n42\nroot\n").unwrap();
        let verifier: NoteVerifier = signer.verifier().to_string().parse().unwrap();
        assert_eq!(verifier.open(&note).unwrap(), "origin\n42\nroot\n");

        let edited = note.replace("42", "43");
        assert!(matches!(
            verifier.open(&edited),
            Err(NoteError::BadSignature(_))
        ));
        let other = NoteSigner::generate("countersign.example/audit").unwrap();
        assert!(matches!(
            other.verifier().open(&note),
            Err(NoteError::NotSigned(_))
        ));
        let renamed = NoteSigner::generate("someone.else/audit").unwrap();
        assert!(matches!(
            renamed.verifier().open(&note),
            Err(NoteError::NotSigned(_))
        ));
        // A second signature by an unknown key is ignored.
        let cosigned = format!(
            "{note}{}",
            other
                .sign_note("origin\n42\nroot\n")
                .unwrap()
                .lines()
                .last()
                .unwrap()
        ) + "\n";
        assert!(verifier.open(&cosigned).is_ok());
        for broken in [
            "no newline",
            "text\n",
            "text\n\n",
            "text\n\n\u{2014} x\n",
            "text\n\nnot a signature\n",
        ] {
            assert!(
                matches!(verifier.open(broken), Err(NoteError::Malformed(_))),
                "{broken:?}"
            );
        }
    }

    #[test]
    fn malformed_keys_are_refused() {
        let good = NoteSigner::generate("a.example/log")
            .unwrap()
            .verifier()
            .to_string();
        assert!(NoteVerifier::parse(&good).is_ok());
        let mut wrong_id = good.clone();
        let i = good.find('+').unwrap() + 1;
        let c = if &good[i..i + 1] == "0" { "1" } else { "0" };
        wrong_id.replace_range(i..i + 1, c);
        for bad in [
            "",
            "name",
            "name+1234",
            "name+zzzzzzzz+AAAA",
            "a b+12345678+AAAA",
            &wrong_id,
        ] {
            assert!(NoteVerifier::parse(bad).is_err(), "{bad}");
        }
        assert!(NoteSigner::parse("PRIVATE+KEY+x").is_err());
        assert!(NoteSigner::generate("has space").is_err());
        assert!(NoteSigner::generate("has+plus").is_err());
    }

    #[test]
    fn the_secret_never_prints() {
        let signer = NoteSigner::generate("a.example/log").unwrap();
        let secret = signer.to_private_string();
        let b64 = secret.splitn(5, '+').nth(4).unwrap();
        assert!(b64.len() > 40);
        assert!(!format!("{signer:?}").contains(b64));
    }
}
