//! DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1): the pre-authentication
//! encoding `PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`, signed with
//! the gateway's Ed25519 key, and its verification.

use crate::note::{NoteSigner, NoteVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// The payload type of in-toto statements.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// A signed DSSE envelope, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope {
    /// base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvelopeSignature {
    /// The signed-note verifier key of the gateway (it names and pins the key).
    pub keyid: String,
    /// base64 of the Ed25519 signature over the PAE.
    pub sig: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DsseError {
    #[error("the envelope's payload is not base64")]
    BadPayload,
    #[error("the envelope carries no valid signature by {0}")]
    NoValidSignature(String),
    #[error("the payload type is `{0}`, not `{IN_TOTO_PAYLOAD_TYPE}`")]
    WrongType(String),
}

/// DSSE's pre-authentication encoding.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Signs `payload` of type `payload_type`.
pub fn sign(signer: &NoteSigner, payload_type: &str, payload: &[u8]) -> Envelope {
    let sig = signer.sign_raw(&pae(payload_type, payload));
    Envelope {
        payload: BASE64.encode(payload),
        payload_type: payload_type.to_owned(),
        signatures: vec![EnvelopeSignature {
            keyid: signer.verifier().to_string(),
            sig: BASE64.encode(sig),
        }],
    }
}

/// Checks that `envelope` is signed by `verifier` and returns its payload bytes.
pub fn verify(envelope: &Envelope, verifier: &NoteVerifier) -> Result<Vec<u8>, DsseError> {
    let payload = BASE64
        .decode(&envelope.payload)
        .map_err(|_| DsseError::BadPayload)?;
    let message = pae(&envelope.payload_type, &payload);
    let ok = envelope.signatures.iter().any(|s| {
        BASE64
            .decode(&s.sig)
            .is_ok_and(|sig| verifier.verify_raw(&message, &sig))
    });
    match ok {
        true => Ok(payload),
        false => Err(DsseError::NoValidSignature(verifier.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_exactly_the_spec_encoding() {
        // The DSSE protocol document's example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ".to_vec());
    }

    #[test]
    fn envelopes_verify_and_refuse_edits_and_other_keys() {
        let signer = NoteSigner::generate("countersign.example/audit").unwrap();
        let env = sign(&signer, IN_TOTO_PAYLOAD_TYPE, br#"{"a":1}"#);
        assert_eq!(verify(&env, &signer.verifier()).unwrap(), br#"{"a":1}"#);
        let mut edited = env.clone();
        edited.payload = BASE64.encode(br#"{"a":2}"#);
        assert!(verify(&edited, &signer.verifier()).is_err());
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(verify(&retyped, &signer.verifier()).is_err());
        let other = NoteSigner::generate("countersign.example/audit").unwrap();
        assert!(verify(&env, &other.verifier()).is_err());
    }
}
