//! What a request's audit entries say it is: its events folded, in order, into the state, votes
//! and grant they produce, and compared with a request as stored. This is invariant 10 ("the
//! stored state of a request is what its audit entries produce"): `countersign audit verify`
//! replays every request this way and names each one whose row disagrees.
//!
//! Each request entry also records `request_sha256`, the SHA-256 of the request's stored body
//! after the change ([`body_sha256`]), so the gateway can check a row against its last entry
//! with one comparison before it acts on it.
//!
//! Pure: it reads entry fields handed to it, never a database.

use crate::{Digest, ExecStatus, PrincipalId, Request, State, Timestamp, VoteDecision};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// The key, in a request entry's `data`, of the SHA-256 of the request as stored after the
/// change the entry records.
pub const RECORDED_HASH: &str = "request_sha256";

/// The hex SHA-256 of a stored request body (the exact bytes stored), as recorded in the
/// entries under [`RECORDED_HASH`].
pub fn body_sha256(body: &[u8]) -> String {
    crate::digest::hex32_string(&Sha256::digest(body).into())
}

/// The events that change a request, as the audit log records them (`event` name, `data`).
#[derive(Debug, Deserialize)]
#[serde(tag = "event")]
enum RequestEvent {
    #[serde(rename = "request.created")]
    Created { state: State, held: bool },
    #[serde(rename = "vote.cast")]
    VoteCast {
        approver: PrincipalId,
        decision: VoteDecision,
        channel: String,
        mfa: bool,
    },
    #[serde(rename = "request.approved")]
    Approved {
        grant: String,
        grant_expires_at: Timestamp,
    },
    #[serde(rename = "request.denied")]
    Denied {},
    #[serde(rename = "request.expired")]
    Expired {},
    #[serde(rename = "request.cancelled")]
    Cancelled {},
    #[serde(rename = "request.released")]
    Released {},
    #[serde(rename = "grant.redeemed")]
    Redeemed { grant: String, uses: u32 },
    #[serde(rename = "execution.started")]
    ExecutionStarted {},
    #[serde(rename = "execution.finished")]
    ExecutionFinished { status: ExecStatus },
}

/// A vote as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedVote {
    pub approver: PrincipalId,
    pub decision: VoteDecision,
    pub channel: String,
    pub mfa: bool,
}

/// A grant as the log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayedGrant {
    pub id: String,
    pub expires_at: Timestamp,
    pub uses: u32,
}

/// One request as its audit entries, replayed in order, make it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replayed {
    /// `None` until a `request.created` entry is seen.
    pub state: Option<State>,
    pub held: bool,
    pub digest: Option<String>,
    pub votes: Vec<ReplayedVote>,
    pub grant: Option<ReplayedGrant>,
    /// The seqs of the entries, in order.
    pub seqs: Vec<u64>,
    /// Where the request's execution stands (`None`: it has none).
    pub execution: Option<ExecStatus>,
    /// The `request_sha256` of the last entry (`None` on entries written before it existed).
    pub last_hash: Option<String>,
    /// Entries that could not be read as what their name says, or that contradict the ones
    /// before them.
    pub problems: Vec<String>,
}

impl Replayed {
    /// Applies the entry `seq` (its `event` name, `digest` and `data`).
    pub fn apply(&mut self, seq: u64, event: &str, digest: Option<&str>, data: &serde_json::Value) {
        self.seqs.push(seq);
        self.last_hash = data
            .get(RECORDED_HASH)
            .and_then(|h| h.as_str())
            .map(str::to_owned);
        match (&self.digest, digest) {
            (None, Some(d)) => self.digest = Some(d.to_owned()),
            // An amendment gives the request its new digest (and its votes start over).
            (Some(_), Some(d)) if event == "request.amended" => {
                self.digest = Some(d.to_owned());
                self.votes.clear();
            }
            (Some(known), Some(d)) if known != d => self.problems.push(format!(
                "entry #{seq} names digest {d}, earlier ones {known}"
            )),
            _ => {}
        }
        let mut tagged = data.clone();
        if let Some(map) = tagged.as_object_mut() {
            map.insert("event".into(), event.into());
        }
        let parsed = match RequestEvent::deserialize(&tagged) {
            Ok(e) => e,
            // Events not about a request's state (`vote.refused`, ...) change nothing here.
            Err(_) if !is_request_event(event) => return,
            Err(e) => {
                self.problems
                    .push(format!("entry #{seq} ({event}) cannot be read: {e}"));
                return;
            }
        };
        match parsed {
            RequestEvent::Created { state, held } => {
                if self.state.is_some() {
                    self.problems
                        .push(format!("entry #{seq} creates the request a second time"));
                }
                self.state = Some(state);
                self.held = held;
            }
            RequestEvent::VoteCast {
                approver,
                decision,
                channel,
                mfa,
            } => self.votes.push(ReplayedVote {
                approver,
                decision,
                channel,
                mfa,
            }),
            RequestEvent::Approved {
                grant,
                grant_expires_at,
            } => {
                self.state = Some(State::Approved);
                self.held = false;
                self.grant = Some(ReplayedGrant {
                    id: grant,
                    expires_at: grant_expires_at,
                    uses: 0,
                });
            }
            RequestEvent::Denied {} => self.close(State::Denied),
            RequestEvent::Expired {} => self.close(State::Expired),
            RequestEvent::Cancelled {} => self.close(State::Cancelled),
            RequestEvent::Released {} => self.held = false,
            RequestEvent::Redeemed { grant, uses } => match &mut self.grant {
                Some(g) if g.id == grant => {
                    g.uses = uses;
                    if self.state == Some(State::Approved) {
                        self.state = Some(State::Executed);
                    }
                }
                _ => self.problems.push(format!(
                    "entry #{seq} redeems grant {grant}, never handed out"
                )),
            },
            RequestEvent::ExecutionStarted {} => {
                if self.execution.is_some() || self.state != Some(State::Executed) {
                    self.problems.push(format!(
                        "entry #{seq} starts an execution the grant does not allow"
                    ));
                }
                self.execution = Some(ExecStatus::Running);
            }
            RequestEvent::ExecutionFinished { status } => {
                let started = self.execution == Some(ExecStatus::Running);
                // Observed by the gateway that forwarded it, or reported by the requester: after
                // the redemption, without a start.
                let after_redeem = self.execution.is_none() && self.state == Some(State::Executed);
                if !started && !after_redeem {
                    self.problems.push(format!(
                        "entry #{seq} ends an execution that was not running"
                    ));
                }
                self.execution = Some(status);
                if status != ExecStatus::Succeeded {
                    self.state = Some(State::Failed);
                }
            }
        }
    }

    fn close(&mut self, state: State) {
        self.state = Some(state);
        self.held = false;
    }

    /// Every way `stored` differs from what the log produced, as sentences (empty: it matches).
    /// `body_sha256` is the hash of the stored body, compared with the last entry's record.
    pub fn differences(&self, stored: &Request, body_sha256: &str) -> Vec<String> {
        let mut out = self.problems.clone();
        let Some(state) = self.state else {
            out.push("the log never created it".into());
            return out;
        };
        if stored.state() != state {
            out.push(format!("state is {}, the log says {state}", stored.state()));
        }
        if stored.held() != self.held {
            out.push(format!(
                "held is {}, the log says {}",
                stored.held(),
                self.held
            ));
        }
        let recomputed = Digest::of_action(stored.action(), &stored.requester().id);
        if !recomputed.ct_eq(&stored.digest()) {
            out.push("its digest is not the digest of its action and requester".into());
        }
        match &self.digest {
            Some(d) if *d != stored.digest().to_string() => {
                out.push(format!("digest is {}, the log says {d}", stored.digest()))
            }
            _ => {}
        }
        let votes: Vec<ReplayedVote> = stored
            .votes()
            .iter()
            .map(|v| ReplayedVote {
                approver: v.approver.clone(),
                decision: v.decision,
                channel: v.channel.as_str().to_owned(),
                mfa: v.mfa,
            })
            .collect();
        if votes != self.votes {
            out.push(format!(
                "votes are [{}], the log says [{}]",
                list_votes(&votes),
                list_votes(&self.votes)
            ));
        }
        self.grant_differences(stored, &mut out);
        let execution = stored.execution().map(|e| e.outcome.status);
        if execution != self.execution {
            let say = |s: Option<ExecStatus>| s.map_or("none", ExecStatus::as_str);
            out.push(format!(
                "execution is {}, the log says {}",
                say(execution),
                say(self.execution)
            ));
        }
        match &self.last_hash {
            Some(h) if h != body_sha256 => {
                out.push("the stored row is not the one its last audit entry recorded".into());
            }
            _ => {}
        }
        out
    }

    fn grant_differences(&self, stored: &Request, out: &mut Vec<String>) {
        match (&stored.grant(), &self.grant) {
            (None, None) => {}
            (Some(g), None) => out.push(format!("it holds grant {}, the log hands out none", g.id)),
            (None, Some(g)) => out.push(format!("grant {} is missing", g.id)),
            (Some(s), Some(r)) => {
                if s.id != r.id {
                    out.push(format!("grant is {}, the log says {}", s.id, r.id));
                }
                if s.uses != r.uses {
                    out.push(format!(
                        "grant uses are {}, the log says {}",
                        s.uses, r.uses
                    ));
                }
                if s.expires_at != r.expires_at {
                    out.push(format!(
                        "grant expires at {}, the log says {}",
                        s.expires_at.to_rfc3339(),
                        r.expires_at.to_rfc3339()
                    ));
                }
                if s.max_uses != 1 {
                    out.push(format!("grant allows {} uses, the log 1", s.max_uses));
                }
                if !s.digest.ct_eq(&stored.digest()) {
                    out.push("the grant's digest is not the request's".into());
                }
            }
        }
    }
}

fn list_votes(votes: &[ReplayedVote]) -> String {
    votes
        .iter()
        .map(|v| format!("{} {:?}", v.approver, v.decision).to_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_request_event(name: &str) -> bool {
    matches!(
        name,
        "request.created"
            | "vote.cast"
            | "request.approved"
            | "request.denied"
            | "request.expired"
            | "request.cancelled"
            | "request.released"
            | "grant.redeemed"
            | "execution.started"
            | "execution.finished"
    )
}

#[cfg(test)]
mod tests;
