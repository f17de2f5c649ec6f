//! What a submission may do beyond recording, and where it may find the request it repeats:
//! the parameters `Gateway::submit_with` takes from its callers.

use countersign_core::plan::Plan;
use countersign_core::{Action, Decision, Digest, Principal, Request, State, Timestamp};
use countersign_store::{CoverSubmit, Covering};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the policy decided for a submission, and what the request keeps with it.
#[derive(Clone)]
pub(crate) struct Decided {
    pub decision: Decision,
    /// The steps of a plan, on a plan's request.
    pub plan: Option<Plan>,
    /// How long an allowed action may wait for a paused run.
    pub hold_timeout: u64,
}

/// An earlier approval that may approve a submission at once: the key it is found under,
/// whether its uses are counted beside the pair (a standing approval), the holder as last seen,
/// and what builds the covered request from its holder.
pub(crate) struct CoverOffer {
    pub key: Digest,
    pub counted: bool,
    pub known: Option<Arc<Request>>,
    pub submit: CoverSubmit,
}

/// The holders of standing approvals as the store last handed them over (verified), by key:
/// a holder changes only by a revocation, which ends its count, so the store may use the copy
/// instead of loading and checking the row on every use. Bounded; dropped when full.
#[derive(Default)]
pub(crate) struct Holders(Mutex<HashMap<Digest, Arc<Request>>>);

/// The most holders [`Holders`] keeps.
const HOLDERS_KEPT: usize = 4096;

impl Holders {
    fn get(&self, key: &Digest) -> Option<Arc<Request>> {
        self.0.lock().ok()?.get(key).cloned()
    }

    fn keep(&self, key: Digest, holder: &Request) {
        let Ok(mut map) = self.0.lock() else {
            return;
        };
        if map.get(&key).is_some_and(|h| h.id() == holder.id()) {
            return;
        }
        if map.len() >= HOLDERS_KEPT {
            map.clear();
        }
        map.insert(key, Arc::new(holder.clone()));
    }
}

/// What a cover builds its request from, shared by the offers of one submission: one copy of
/// the submission (the ordinary one keeps the original) instead of one per offer.
struct Inputs {
    requester: Principal,
    action: Action,
    decision: Decision,
    at_once: AtOnce,
    trace: Option<countersign_core::trace::TraceParent>,
}

/// The earlier approvals that may approve a submission of `action` by `requester` decided by
/// `decision` at once: a standing approval first (its uses are counted beside the pair, so it
/// costs the least), then an approved plan's step.
pub(crate) fn covers(
    requester: &Principal,
    action: &Action,
    decision: &Decision,
    at_once: &AtOnce,
    holders: &Arc<Holders>,
    now: Timestamp,
) -> Vec<CoverOffer> {
    let standing = Request::standing_key_for(requester, action, decision);
    let step = countersign_core::plan::step_key_for(&requester.id, action, decision);
    if standing.is_none() && step.is_none() {
        return vec![];
    }
    let inputs = Arc::new(Inputs {
        requester: requester.clone(),
        action: action.clone(),
        decision: decision.clone(),
        at_once: at_once.clone(),
        trace: crate::trace::current(),
    });
    let mut out: Vec<CoverOffer> = Vec::with_capacity(2);
    if let Some(key) = standing {
        let inputs = inputs.clone();
        let holders = holders.clone();
        out.push(CoverOffer {
            key,
            counted: true,
            known: holders.get(&key),
            submit: Box::new(move |holder: &Request| {
                let (mut request, mut events) = Request::submit_covered_under(
                    &key,
                    super::new_request_id(),
                    inputs.requester.clone(),
                    inputs.action.clone(),
                    inputs.decision.clone(),
                    holder,
                    now,
                )?;
                holders.keep(key, holder);
                request.set_trace(inputs.trace.clone());
                inputs.at_once.apply(&mut request, &mut events, now);
                Some(Covering {
                    request,
                    events,
                    holder_change: None,
                })
            }),
        });
    }
    if let Some(key) = step {
        out.push(CoverOffer {
            key,
            counted: false,
            known: None,
            submit: Box::new(move |plan: &Request| {
                let (mut request, mut events, step) = Request::submit_planned(
                    super::new_request_id(),
                    inputs.requester.clone(),
                    inputs.action.clone(),
                    inputs.decision.clone(),
                    plan,
                    now,
                )?;
                request.set_trace(inputs.trace.clone());
                inputs.at_once.apply(&mut request, &mut events, now);
                let by_request = request.id().to_owned();
                Some(Covering {
                    request,
                    events,
                    holder_change: Some(countersign_core::Transition::UsePlanStep {
                        step,
                        by_request,
                    }),
                })
            }),
        });
    }
    out
}

/// Where a submission may find the request it repeats (`Store::submit_parked`): under `key`,
/// a request `attachable` accepts; under the idempotency key (hashed), the request first
/// submitted with it, which must be for the same action (its digest).
pub(crate) struct Park {
    pub key: Digest,
    pub attachable: fn(&Request) -> bool,
    pub idempotency: Option<(Digest, Digest)>,
}

impl AtOnce {
    /// Redeems (or starts executing) the grant of `req` when it was approved at once. A fresh
    /// grant cannot be refused; if it ever were, the request stays approved and the caller
    /// redeems (or executes) it the ordinary way.
    pub(crate) fn apply(
        &self,
        req: &mut Request,
        events: &mut Vec<countersign_core::Event>,
        now: Timestamp,
    ) {
        if req.state() != State::Approved {
            return;
        }
        let digest = req.digest();
        let done = match self {
            AtOnce::Record => Ok(vec![]),
            AtOnce::Redeem => req.redeem(&digest, now),
            AtOnce::Execute { executor, deadline } => {
                let by = req.requester().id.clone();
                req.execute(&by, &digest, executor, *deadline, now)
            }
        };
        if let Ok(more) = done {
            events.extend(more);
        }
    }
}

/// What a submission does beyond recording when policy allows the action at once.
#[derive(Clone)]
pub(crate) enum AtOnce {
    /// Nothing: the requester redeems the grant later.
    Record,
    /// Redeems the grant in the same write (a caller that forwards the action itself).
    Redeem,
    /// Starts the execution with `executor` in the same write (redeeming the grant).
    Execute {
        executor: String,
        deadline: Timestamp,
    },
}
