//! A run: the chain of actions of one autonomous run, which people (or policy) can pause, resume
//! or stop.

use crate::{PrincipalId, Timestamp};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    #[default]
    Active,
    /// New actions of the run are held as pending until it resumes.
    Paused,
    /// New actions of the run are denied with `run_stopped`. Final.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub state: RunState,
    pub updated_by: PrincipalId,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RunRefusal {
    #[error("the run is stopped; a stopped run cannot be paused or resumed")]
    Stopped,
}

impl RunState {
    /// True when the held requests of a run in `stored` state (none: never paused or stopped)
    /// may be released, once nothing else pauses it.
    pub fn may_release(stored: Option<RunState>) -> bool {
        matches!(stored, None | Some(RunState::Active))
    }

    /// The state after a person asks for `target`. Stopping is final.
    pub fn transition(self, target: RunState) -> Result<RunState, RunRefusal> {
        match (self, target) {
            (RunState::Stopped, RunState::Stopped) => Ok(RunState::Stopped),
            (RunState::Stopped, _) => Err(RunRefusal::Stopped),
            (_, t) => Ok(t),
        }
    }
}
