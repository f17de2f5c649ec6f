//! `countersign audit verify --export DIR` reading `entries.jsonl` (one canonical entry per
//! line), first without checkpoints, then against a signed checkpoint of what it read.
//! Properties: never panics; lines that verify also verify against a checkpoint signed at
//! their size and root (read back through the note format); one changed byte in any of them
//! is then a fault.
#![no_main]

use countersign_audit::{Checkpoint, NoteSigner, Verifier};
use libfuzzer_sys::fuzz_target;

fn run(lines: &[Vec<u8>], checkpoints: Vec<Checkpoint>) -> (bool, u64, countersign_audit::Hash) {
    let mut v = Verifier::with_checkpoints(checkpoints);
    for line in lines {
        if !v.push_line(line) {
            break;
        }
    }
    let (size, root) = (v.size(), v.root());
    (v.finish().is_intact(), size, root)
}

fuzz_target!(|data: &[u8]| {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    if body.is_empty() {
        return;
    }
    let lines: Vec<Vec<u8>> = body.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let (intact, size, root) = run(&lines, vec![]);
    if !intact || size == 0 {
        return;
    }
    let signer = NoteSigner::from_seed("countersign.fuzz", [7; 32]).expect("a signer");
    let note = Checkpoint {
        origin: "countersign.fuzz".into(),
        size,
        root,
        extensions: vec![],
    }
    .sign(&signer)
    .expect("signs");
    let checkpoint = Checkpoint::open(&note, &signer.verifier(), Some("countersign.fuzz"))
        .expect("its own checkpoint opens");
    assert!(
        run(&lines, vec![checkpoint.clone()]).0,
        "verifies against its checkpoint"
    );
    let at = data.len() % lines.len();
    let mut edited = lines.clone();
    let line = &mut edited[at];
    let byte = data.first().copied().unwrap_or(0) as usize % line.len().max(1);
    if line.is_empty() {
        line.push(b' ');
    } else {
        line[byte] ^= 0x01;
    }
    assert!(!run(&edited, vec![checkpoint]).0, "an edited line is found");
});
