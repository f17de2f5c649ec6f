//! The directory of principals: who exists, who owns which agent, who is in which group. It is
//! read from configuration; identity itself always comes from authentication (`auth`).

use countersign_core::{Principal, PrincipalId};
use std::collections::HashMap;

#[derive(Debug, Clone, Default)]
pub struct Directory {
    by_id: HashMap<PrincipalId, Principal>,
}

impl Directory {
    pub fn new(principals: Vec<Principal>) -> Self {
        Self {
            by_id: principals.into_iter().map(|p| (p.id.clone(), p)).collect(),
        }
    }

    pub fn get(&self, id: &PrincipalId) -> Option<&Principal> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Principal> {
        self.by_id.values()
    }
}
