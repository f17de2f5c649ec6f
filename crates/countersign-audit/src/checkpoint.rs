//! Checkpoints in the C2SP `tlog-checkpoint` format (c2sp.org/tlog-checkpoint): the origin line,
//! the tree size in decimal, the base64 root hash, then optional extension lines, carried as the
//! text of a signed note ([`crate::note`]).

use crate::merkle::Hash;
use crate::note::{NoteError, NoteSigner, NoteVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// What a checkpoint states: the log named `origin` had `size` entries with root `root`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    /// Lines after the root, passed through unchanged.
    pub extensions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Note(#[from] NoteError),
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    #[error("the checkpoint is for log `{found}`, not `{expected}`")]
    WrongOrigin { expected: String, found: String },
}

impl Checkpoint {
    /// The note text of this checkpoint.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            BASE64.encode(self.root)
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// Reads a checkpoint's note text (already verified).
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        let bad = |why: &str| CheckpointError::Malformed(why.to_owned());
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| bad("it must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let origin = origin.ok_or_else(|| bad("the first line (origin) is empty"))?;
        let size = lines.next().ok_or_else(|| bad("no tree size line"))?;
        let canonical = !size.is_empty()
            && size.bytes().all(|b| b.is_ascii_digit())
            && (size == "0" || !size.starts_with('0'));
        if !canonical {
            return Err(bad("the tree size is not a decimal number"));
        }
        let size: u64 = size
            .parse()
            .map_err(|_| bad("the tree size is too large"))?;
        let root = lines.next().ok_or_else(|| bad("no root hash line"))?;
        let root = BASE64
            .decode(root)
            .ok()
            .and_then(|r| <Hash>::try_from(r).ok())
            .ok_or_else(|| bad("the root hash is not 32 bytes of base64"))?;
        let extensions: Vec<String> = lines.map(str::to_owned).collect();
        if extensions.iter().any(String::is_empty) {
            return Err(bad("extension lines must not be empty"));
        }
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }

    /// This checkpoint as a signed note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, CheckpointError> {
        Ok(signer.sign_note(&self.to_text())?)
    }

    /// Opens a signed checkpoint with a trusted key and, when given, checks its origin.
    pub fn open(
        note: &str,
        verifier: &NoteVerifier,
        origin: Option<&str>,
    ) -> Result<Checkpoint, CheckpointError> {
        let checkpoint = Checkpoint::parse(verifier.open(note)?)?;
        if let Some(expected) = origin
            && expected != checkpoint.origin
        {
            return Err(CheckpointError::WrongOrigin {
                expected: expected.to_owned(),
                found: checkpoint.origin,
            });
        }
        Ok(checkpoint)
    }

    pub fn root_base64(&self) -> String {
        BASE64.encode(self.root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "countersign.example/audit".into(),
            size: 8,
            root: crate::merkle::EMPTY_ROOT,
            extensions: vec![],
        }
    }

    #[test]
    fn text_is_the_c2sp_layout() {
        assert_eq!(
            checkpoint().to_text(),
            "countersign.example/audit\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
        );
        let mut with_ext = checkpoint();
        with_ext.extensions = vec!["ext one".into()];
        assert_eq!(Checkpoint::parse(&with_ext.to_text()).unwrap(), with_ext);
    }

    #[test]
    fn signed_round_trip_and_refusals() {
        let signer = NoteSigner::generate("countersign.example/audit").unwrap();
        let note = checkpoint().sign(&signer).unwrap();
        let v = signer.verifier();
        assert_eq!(Checkpoint::open(&note, &v, None).unwrap(), checkpoint());
        assert!(matches!(
            Checkpoint::open(&note, &v, Some("other.example/log")),
            Err(CheckpointError::WrongOrigin { .. })
        ));
        let other = NoteSigner::generate("countersign.example/audit").unwrap();
        assert!(Checkpoint::open(&note, &other.verifier(), None).is_err());
        assert!(Checkpoint::open(&note.replace("\n8\n", "\n9\n"), &v, None).is_err());
    }

    #[test]
    fn malformed_texts_are_refused() {
        for text in [
            "",
            "\n8\nAAAA\n",
            "o\n08\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "o\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "o\n8\nAAAA\n",
            "o\n8\n",
            "o\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
        ] {
            assert!(Checkpoint::parse(text).is_err(), "{text:?}");
        }
    }
}
