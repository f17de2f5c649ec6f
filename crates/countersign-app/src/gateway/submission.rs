//! What a submission may do beyond recording, and where it may find the request it repeats:
//! the parameters `Gateway::submit_with` takes from its callers.

use countersign_core::{Digest, Request, State, Timestamp};

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
