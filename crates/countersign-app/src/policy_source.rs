//! The live policy: loaded at start, swapped atomically on reload (file change or SIGHUP). An
//! invalid file is refused with its error logged, and the previous policy stays in force.
//! A changed file is reloaded only once it has stopped changing ([`Settling`]), so a file caught
//! half-written is never loaded, even when its first half is a valid policy. The safe way to
//! deploy a policy is still to write it beside the old one and rename it over it (`mv` is
//! atomic within a file system; a ConfigMap's symlink swap is too), or to send SIGHUP after
//! writing: SIGHUP reloads at once.

use arc_swap::ArcSwap;
use countersign_policy::{Policy, PolicyError};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub struct PolicySource {
    current: ArcSwap<Policy>,
    path: Option<PathBuf>,
}

impl PolicySource {
    /// Loads the policy at `path`, or the built-in sample policy when `path` is `None`.
    pub fn load(path: Option<&Path>) -> Result<Self, PolicyError> {
        let policy = match path {
            Some(p) => Policy::load(p)?,
            None => Policy::parse(
                countersign_policy::SAMPLE_POLICY,
                "<built-in sample policy>",
            )?,
        };
        Ok(Self {
            current: ArcSwap::from_pointee(policy),
            path: path.map(Path::to_path_buf),
        })
    }

    pub fn current(&self) -> Arc<Policy> {
        self.current.load_full()
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Re-reads the file. `Ok(Some(hash))` when a different policy is now in force, `Ok(None)`
    /// when the file is unchanged, `Err` when it is invalid (the old policy stays).
    pub fn reload(&self) -> Result<Option<String>, PolicyError> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let policy = Policy::load(path)?;
        if policy.hash() == self.current.load().hash() {
            return Ok(None);
        }
        let hash = policy.hash().to_string();
        self.current.store(Arc::new(policy));
        Ok(Some(hash))
    }
}

/// When a polled file may be loaded: only when it differs from the version last loaded and
/// has looked the same (modification time, length, inode) on two consecutive polls. A writer
/// that is still writing changes the length or the time between polls, so a prefix of a file
/// is never loaded while it grows (a writer that stalls for a whole poll interval cannot be
/// told from one that finished; renaming a complete file into place is the deployment that
/// never depends on timing).
#[derive(Debug)]
pub struct Settling<S> {
    /// The stamp last handed over for loading (or seen at start).
    loaded: S,
    /// A new stamp seen on the previous poll, waiting to be seen once more.
    changing: Option<S>,
}

impl<S: PartialEq> Settling<S> {
    pub fn new(loaded: S) -> Self {
        Settling {
            loaded,
            changing: None,
        }
    }

    /// One poll's stamp; true when the file should be loaded now.
    pub fn observe(&mut self, now: S) -> bool {
        if now == self.loaded {
            self.changing = None;
            return false;
        }
        if self.changing.as_ref() == Some(&now) {
            self.changing = None;
            self.loaded = now;
            return true;
        }
        self.changing = Some(now);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Settling;

    /// Each poll's stamp and whether it loads: a file is loaded only after two equal polls.
    fn loads(polls: &[u32]) -> Vec<bool> {
        let mut s = Settling::new(0);
        polls.iter().map(|p| s.observe(*p)).collect()
    }

    #[test]
    fn a_half_written_policy_is_never_loaded() {
        // 1 = first half (a valid policy on its own), 2 = the whole file.
        assert_eq!(loads(&[1, 2, 2]), [false, false, true]);
        // Still growing at every poll: nothing loads until it stops.
        assert_eq!(
            loads(&[1, 2, 3, 4, 4, 4]),
            [false, false, false, false, true, false]
        );
        // Unchanged files are never reloaded, and a change back to what is loaded is no change.
        assert_eq!(loads(&[0, 0, 1, 0, 0]), [false; 5]);
        // A later change settles on its own.
        assert_eq!(
            loads(&[1, 1, 1, 5, 6, 6, 6]),
            [false, true, false, false, false, true, false]
        );
    }
}
