//! What one principal may hold open at once (issue 21 part 5): server-sent event streams (a
//! request's events, the audit stream, the console's inbox and request pages) and long-poll
//! waits (`GET /v1/requests/{id}?wait=`). Each costs a task, a connection and a wake-up on
//! every change, so one caller's loop must not starve everyone else.
//!
//! Invariant: a stream or a wait is served only while its principal holds a [`Slot`] of that
//! kind, and [`Limits::hold`] is the one place slots are given, counted per canonical
//! principal id; a slot is given back when dropped (the stream or the wait ended, however).
//! Over the limit the edge answers 429 (`too_many_streams`, `too_many_waits`) at once.

use countersign_core::PrincipalId;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// `limits:` in the configuration.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Server-sent event streams one principal may have open at once.
    #[serde(default = "default_streams")]
    pub streams_per_principal: usize,
    /// Long-poll waits one principal may have open at once.
    #[serde(default = "default_waits")]
    pub waits_per_principal: usize,
}

fn default_streams() -> usize {
    32
}

fn default_waits() -> usize {
    256
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            streams_per_principal: default_streams(),
            waits_per_principal: default_waits(),
        }
    }
}

/// What a slot is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Held {
    Stream,
    Wait,
}

/// The slots taken, per principal and kind.
#[derive(Debug, Default)]
pub struct Limits {
    config: LimitsConfig,
    open: Mutex<HashMap<(PrincipalId, Held), usize>>,
}

/// A principal holds all the slots of a kind: the stable code (`too_many_streams`,
/// `too_many_waits`) and a message naming the limit (the gateway answers it 429).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    pub code: &'static str,
    pub message: String,
}

/// One stream or wait being served; gives its slot back when dropped.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<Limits>,
    key: Option<(PrincipalId, Held)>,
}

impl Limits {
    pub fn new(config: LimitsConfig) -> Self {
        Limits {
            config,
            open: Mutex::default(),
        }
    }

    pub fn config(&self) -> LimitsConfig {
        self.config
    }

    /// A slot of `kind` for `who`, or the refusal to answer (429) when they hold all of them.
    pub fn hold(self: &Arc<Self>, who: &PrincipalId, kind: Held) -> Result<Slot, LimitExceeded> {
        let (max, code, what, key) = match kind {
            Held::Stream => (
                self.config.streams_per_principal,
                "too_many_streams",
                "event streams",
                "limits.streams_per_principal",
            ),
            Held::Wait => (
                self.config.waits_per_principal,
                "too_many_waits",
                "long-poll waits",
                "limits.waits_per_principal",
            ),
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry((who.clone(), kind)).or_insert(0);
        if *count >= max {
            return Err(LimitExceeded {
                code,
                message: format!(
                    "{who} already has {max} {what} open, the most this gateway serves one \
                     principal (`{key}`); close one, or wait for one to end"
                ),
            });
        }
        *count += 1;
        Ok(Slot {
            limits: self.clone(),
            key: Some((who.clone(), kind)),
        })
    }

    /// How many slots of `kind` `who` holds now.
    pub fn held(&self, who: &PrincipalId, kind: Held) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&(who.clone(), kind)).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> PrincipalId {
        PrincipalId::parse(s).expect("an id")
    }

    #[test]
    fn slots_are_counted_per_principal_and_kind_and_given_back_when_dropped() {
        let limits = Arc::new(Limits::new(LimitsConfig {
            streams_per_principal: 2,
            waits_per_principal: 1,
        }));
        let (bob, carol) = (id("user:bob@example.com"), id("user:carol@example.com"));
        let a = limits.hold(&bob, Held::Stream).expect("first");
        let _b = limits.hold(&bob, Held::Stream).expect("second");
        let refused = limits.hold(&bob, Held::Stream).expect_err("third");
        assert_eq!(refused.code, "too_many_streams");
        // Another principal, and another kind, have their own slots.
        let _c = limits.hold(&carol, Held::Stream).expect("carol's");
        let w = limits.hold(&bob, Held::Wait).expect("a wait");
        assert_eq!(
            limits.hold(&bob, Held::Wait).expect_err("second wait").code,
            "too_many_waits"
        );
        drop(a);
        drop(w);
        assert_eq!(limits.held(&bob, Held::Stream), 1);
        let _again = limits
            .hold(&bob, Held::Stream)
            .expect("a slot was given back");
        let _wait = limits
            .hold(&bob, Held::Wait)
            .expect("the wait was given back");
    }

    #[test]
    fn slots_are_counted_on_the_canonical_id() {
        let limits = Arc::new(Limits::new(LimitsConfig {
            streams_per_principal: 1,
            waits_per_principal: 1,
        }));
        let _a = limits
            .hold(&id("user:Bob@Example.com"), Held::Stream)
            .expect("first");
        assert!(
            limits
                .hold(&id("USER:bob@example.COM"), Held::Stream)
                .is_err(),
            "one person, however spelled"
        );
    }
}
