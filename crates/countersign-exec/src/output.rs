//! What every executor makes of its output: the size and SHA-256 of all of it, and a bounded
//! copy to record and show.

use sha2::{Digest as _, Sha256};

/// The most of one output (a body, stdout, stderr) a request keeps.
pub const COPY_LIMIT: usize = 64 * 1024;

/// An output as it streams in.
pub struct Capture {
    hash: Sha256,
    bytes: u64,
    copy: Vec<u8>,
    keep: usize,
    cut: bool,
}

/// A finished capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub bytes: u64,
    /// Lower-case hex SHA-256 of every byte received.
    pub sha256: String,
    /// The first bytes, as text (invalid UTF-8 replaced).
    pub copy: String,
    /// True when the copy is not all of the output.
    pub cut: bool,
}

impl Default for Capture {
    fn default() -> Self {
        Capture::keeping(COPY_LIMIT)
    }
}

impl Capture {
    /// A capture that copies at most `keep` bytes.
    pub fn keeping(keep: usize) -> Self {
        Capture {
            hash: Sha256::new(),
            bytes: 0,
            copy: Vec::new(),
            keep,
            cut: false,
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        self.hash.update(chunk);
        self.bytes += chunk.len() as u64;
        let room = self.keep.saturating_sub(self.copy.len());
        if chunk.len() > room {
            self.cut = true;
        }
        self.copy.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> Captured {
        Captured {
            bytes: self.bytes,
            sha256: hex::encode(self.hash.finalize()),
            copy: String::from_utf8_lossy(&self.copy).into_owned(),
            cut: self.cut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_covers_everything_and_the_copy_is_bounded() {
        let mut c = Capture::keeping(4);
        c.push(b"abc");
        c.push(b"def");
        let got = c.finish();
        assert_eq!(got.bytes, 6);
        assert_eq!(got.copy, "abcd");
        assert!(got.cut);
        assert_eq!(got.sha256, hex::encode(Sha256::digest(b"abcdef")));
    }
}
