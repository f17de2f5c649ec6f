//! WebAuthn credentials as the console's passkey pages post them (`RegisterPublicKeyCredential`,
//! `PublicKeyCredential` JSON, with `clientDataJSON` and the attestation inside), finished
//! against a begun registration as the gateway does. The ceremony's challenge is fixed (all
//! zero bytes) so that inputs can get past the challenge check into the attestation. Never
//! panics; nothing the fuzzer makes registers a passkey without a valid attestation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use webauthn_rs::prelude::{
    PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid,
};
use webauthn_rs::{Webauthn, WebauthnBuilder};

struct Party {
    webauthn: Webauthn,
    registration: PasskeyRegistration,
}

fn party() -> &'static Party {
    static PARTY: OnceLock<Party> = OnceLock::new();
    PARTY.get_or_init(|| {
        let origin = Url::parse("https://countersign.example.com").expect("a URL");
        let webauthn = WebauthnBuilder::new("countersign.example.com", &origin)
            .expect("a relying party")
            .rp_name("Countersign")
            .build()
            .expect("builds");
        let (_, state) = webauthn
            .start_passkey_registration(Uuid::from_u128(1), "bob@example.com", "Bob", None)
            .expect("a registration begins");
        let mut state = serde_json::to_value(&state).expect("the state serialises");
        fix_challenges(&mut state);
        let registration = serde_json::from_value(state).expect("the fixed state reads back");
        Party {
            webauthn,
            registration,
        }
    })
}

/// Replaces every `challenge` in the serialised ceremony with 32 zero bytes, in the same form.
fn fix_challenges(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                match (k.as_str(), &*v) {
                    ("challenge", Value::String(s)) => {
                        *v = Value::String("A".repeat(s.len()));
                    }
                    ("challenge", Value::Array(a)) => {
                        *v = Value::Array(vec![Value::from(0); a.len()]);
                    }
                    _ => fix_challenges(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(fix_challenges),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let party = party();
    if let Ok(credential) = serde_json::from_slice::<RegisterPublicKeyCredential>(data) {
        let _ = party
            .webauthn
            .finish_passkey_registration(&credential, &party.registration);
    }
    let _ = serde_json::from_slice::<PublicKeyCredential>(data);
});
