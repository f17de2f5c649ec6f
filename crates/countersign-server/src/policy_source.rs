//! The live policy: loaded at start, swapped atomically on reload (file change or SIGHUP). An
//! invalid file is refused with its error logged, and the previous policy stays in force.

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
