//! Standing approvals at the gateway (issue 18; the rules are `countersign_core::standing`):
//! listing them, revoking one. (`Gateway::submit_with` offers the store a `Cover` for a
//! submission that one may approve.)
//!
//! Must not: decide whether an approval covers an action (the core's key and
//! `Request::submit_covered` do, in the submission's transaction, where the store takes the
//! use), or count a use outside it.

use super::{Gateway, GatewayError};
use countersign_core::{Principal, Request, Transition};
use countersign_store::RequestQuery;

/// The most standing approvals `GET /v1/standing` reads.
const LISTED: u32 = 500;

impl Gateway {
    /// The requests holding standing approvals that `viewer` may see (a person: all; an agent:
    /// its own), newest first; with `active`, only those still in force.
    pub async fn standing(
        &self,
        viewer: &Principal,
        active: bool,
    ) -> Result<Vec<Request>, GatewayError> {
        let now = self.clock.now();
        let mut out = Vec::new();
        let mut before = None;
        // Standing approvals are formed by approvals: read the approved and executed requests
        // of the last 7 days (the longest a standing approval may last).
        let since = now
            - chrono::Duration::seconds(countersign_core::standing::MAX_STANDING_SECONDS as i64);
        'pages: loop {
            let page = self
                .list(
                    viewer,
                    RequestQuery {
                        limit: 500,
                        before: before.take(),
                        ..RequestQuery::default()
                    },
                )
                .await?;
            let full = page.len() == 500;
            let last = page.last().map(|r| (r.id().to_owned(), r.created_at()));
            for req in page {
                if req.created_at() < since {
                    break 'pages;
                }
                if let Some(s) = req.standing()
                    && (!active || s.is_active(now))
                {
                    out.push(req);
                    if out.len() >= LISTED as usize {
                        break 'pages;
                    }
                }
            }
            match last {
                Some((id, _)) if full => before = Some(id),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Revokes the standing approval held by request `id` (an eligible approver of its rule,
    /// or the owner of the requesting agent): the next action is asked about again.
    pub async fn revoke_standing(&self, by: &Principal, id: &str) -> Result<Request, GatewayError> {
        let now = self.clock.now();
        let change = Transition::RevokeStanding { by: by.clone() };
        match self
            .store
            .update_request(id, by.id.as_str(), now, change)
            .await?
        {
            Ok(updated) => {
                tracing::info!(request = %id, principal = %by.id, "standing approval revoked");
                self.waiters.notify(id);
                Ok(updated.request)
            }
            Err(refusal) => Err(refusal.into()),
        }
    }
}
