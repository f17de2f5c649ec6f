//! Signed notes, checkpoints, verifier keys and DSSE envelopes, as `countersign audit verify`
//! reads them from files (`--key`, `--checkpoint`, attestations). Input: a verifier key line,
//! newline, the rest. Never panics; a note this target signs itself always opens.
#![no_main]

use countersign_audit::{Checkpoint, NoteSigner, NoteVerifier, dsse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (key, rest) = text.split_once('\n').unwrap_or((text, ""));
    let _ = NoteSigner::parse(key);
    let signer = NoteSigner::from_seed("countersign.fuzz", [9; 32]).expect("a signer");
    let ours = signer.verifier();
    let theirs = NoteVerifier::parse(key).ok();
    for verifier in std::iter::once(&ours).chain(theirs.as_ref()) {
        let _ = Checkpoint::open(rest, verifier, None);
        let _ = verifier.open(rest);
        if let Ok(envelope) = serde_json::from_str::<dsse::Envelope>(rest) {
            let _ = dsse::verify(&envelope, verifier);
        }
    }
    let _ = Checkpoint::parse(rest);
    // Any text that is a valid note body, signed by us, opens with our key.
    if !rest.is_empty() && rest.ends_with('\n') && !rest.contains("\n\n") {
        if let Ok(note) = signer.sign_note(rest) {
            assert_eq!(ours.open(&note).ok(), Some(rest), "a signed note opens");
        }
    }
});
