//! The tests every [`Store`] implementation must pass, written once against the trait. A
//! backend implements [`Backend`] (open its database, and tamper with it the way someone with
//! the file could) and expands [`store_suite!`](crate::store_suite) to get one `#[tokio::test]`
//! per check. Enabled by the `test-suite` feature (and in this crate's own tests).
//!
//! The fixtures here build requests through the core's state machine exactly as the server
//! does; nothing in this module reaches behind the trait except the `Backend` tampering hooks.

mod accounts;
mod gates;
mod integrity;
mod notify;
mod parked;
mod passkeys;
mod plans;
mod record;
mod requests;
mod sessions;
mod tasks;
mod tree;

pub use accounts::*;
pub use gates::*;
pub use integrity::*;
pub use notify::*;
pub use parked::*;
pub use passkeys::*;
pub use plans::*;
pub use record::*;
pub use requests::*;
pub use sessions::*;
pub use tasks::*;
pub use tree::*;

use crate::{RunOf, Store, Submit};
use async_trait::async_trait;
use chrono::TimeZone;
use countersign_audit::AuditEntry;
use countersign_core::{
    Action, Channel, Clause, Decision, Digest, Effect, OnTimeout, Principal, PrincipalId, Request,
    Requirements, Timestamp, Transition, VoteDecision,
};
use std::sync::Arc;

/// What a backend provides to the suite.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Opens the backend's database. Called again after the previous store was dropped, it
    /// must reopen the same database (that is how restarts are tested).
    async fn open(&self) -> Arc<dyn Store>;
    /// Overwrites the stored bytes of audit entry `seq`, as someone with the file could.
    async fn overwrite_audit_bytes(&self, seq: u64, bytes: Vec<u8>);
    /// Deletes audit entry `seq`, as someone with the file could.
    async fn delete_audit_entry(&self, seq: u64);
    /// Replaces the stored body (and state column) of request `id`, as someone with the file
    /// could.
    async fn overwrite_request(&self, id: &str, body: &str, state: &str);
    /// Sets the log back to how a version without the Merkle tree left it: no entry has its
    /// tree nodes (and no frontier is stored). The store must build them when it next opens.
    async fn forget_tree(&self);
    /// Removes what the backend created, after a check passed.
    async fn cleanup(&self) {}
}

/// Expands to one `#[tokio::test]` per suite check. `$backend` is an expression evaluating to
/// a future of `Option<impl Backend>`; `None` skips the test (e.g. no database server).
#[macro_export]
macro_rules! store_suite {
    ($backend:expr) => {
        $crate::store_suite!(@each $backend;
            submit_allowed_is_approved_and_recorded,
            submit_denied_by_policy_is_recorded,
            duplicate_request_ids_fail_alone,
            submit_for_the_wrong_run_is_refused,
            a_panicking_closure_fails_alone,
            update_refusal_writes_nothing,
            update_without_events_writes_nothing,
            update_of_an_unknown_request_is_not_found,
            concurrent_votes_counted_once,
            first_decision_wins,
            grant_redeems_once,
            due_requests_lists_expired_pending_oldest_first,
            list_requests_filters_and_pages,
            paused_run_holds_new_requests_until_resumed,
            pausing_request_holds_later_ones_and_releases_them_when_decided,
            release_stops_at_the_next_pausing_request,
            a_held_request_past_its_deadline_expires_instead_of_being_released,
            a_run_paused_by_a_person_stays_paused_when_the_pausing_request_is_decided,
            stopped_run_denies_pending_and_new_requests,
            concurrent_submissions_meet_their_runs_gates,
            pending_request_survives_restart,
            audit_chain_verifies_and_pages,
            edited_audit_row_is_detected,
            deleted_audit_row_is_detected,
            append_event_returns_its_seq,
            keys_map_hashes_to_principals,
            sessions_are_revocable_one_by_one_and_with_the_keys,
            tasks_are_begun_and_ended_once_and_outlive_a_restart,
            a_lease_has_one_holder_at_a_time,
            a_replay_key_is_seen_first_once_within_its_window,
            parked_calls_are_found_replaced_and_kept_across_a_restart,
            parked_calls_are_unparked_only_by_the_request_they_name,
            parked_calls_are_per_requester_and_digest,
            parked_calls_are_forgotten_after_the_retention,
            parked_calls_attach_a_submission_in_its_transaction,
            idempotency_keys_name_the_first_request,
            standing_uses_are_counted_in_the_submissions_transaction,
            plan_steps_are_used_in_the_submissions_transaction,
            totp_use_step_refuses_reuse,
            factor_changes_are_recorded_and_a_reset_removes_every_factor,
            passkeys_are_stored_per_person_and_unique,
            a_ceremony_is_taken_once_for_what_it_was_begun_for,
            concurrent_finishes_take_a_ceremony_once,
            a_submitted_review_is_queued_for_its_channels,
            an_auto_decided_request_is_not_queued,
            a_vote_requeues_a_claimed_review_at_once,
            run_changes_requeue_the_reviews_they_change,
            a_claim_is_leased_until_it_ends,
            concurrent_claims_never_share_a_request,
            finishing_the_claimed_generation_removes_or_reschedules_it,
            finishing_a_stale_generation_leaves_it_due_now,
            channel_messages_are_upserted_by_target,
            a_queued_marker_survives_a_restart,
            conversation_references_are_upserted_and_survive_a_restart,
            the_tree_matches_the_log_and_every_proof_verifies,
            the_tree_goes_on_after_a_restart,
            a_log_without_tree_nodes_gets_them_when_opened,
            proofs_beyond_the_log_are_not_found,
            checkpoints_are_kept_one_per_size,
            a_request_lists_its_audit_entries,
            audit_cursors_move_and_survive_a_restart,
            the_audit_watch_follows_commits,
            stored_state_matches_the_log_or_nothing_is_acted_on,
        );
    };
    (@each $backend:expr; $($check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let Some(backend) = $backend.await else {
                    return;
                };
                $crate::suite::$check(&backend).await;
                $crate::suite::Backend::cleanup(&backend).await;
            }
        )*
    };
}

/// 2026-11-23T03:00:00Z, plus `seconds`.
pub fn at(seconds: i64) -> Timestamp {
    chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 3, 0, 0)
        .single()
        .expect("a valid fixed time")
        + chrono::Duration::seconds(seconds)
}

pub fn principal_id(id: &str) -> PrincipalId {
    PrincipalId::parse(id).expect("a valid fixture principal")
}

/// The sample agent, owned by alice.
pub fn agent() -> Principal {
    Principal {
        id: principal_id("agent:deploy-bot"),
        owner: Some(principal_id("user:alice@example.com")),
        groups: vec!["deployers".into()],
    }
}

pub fn person(id: &str, groups: &[&str]) -> Principal {
    Principal {
        id: principal_id(id),
        owner: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// bob, an SRE.
pub fn bob() -> Principal {
    person("user:bob@example.com", &["sre"])
}

pub fn action(run: Option<&str>) -> Action {
    Action {
        kind: "db.export".into(),
        resource: "postgres://prod/customers".into(),
        params: serde_json::json!({"rows": 5000}),
        justification: Some("quarterly report".into()),
        run: run.map(str::to_owned),
        labels: Default::default(),
    }
}

pub const POLICY_HASH: &str =
    "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn decision(effect: Effect, requirements: Option<Requirements>) -> Decision {
    Decision {
        effect,
        rule: Some(format!("rule-{}", effect.as_str())),
        reason: format!("the fixture policy says {}", effect.as_str()),
        requirements,
        policy_hash: POLICY_HASH.into(),
        grant_ttl_seconds: 300,
    }
}

pub fn allow() -> Decision {
    decision(Effect::Allow, None)
}

pub fn deny() -> Decision {
    decision(Effect::Deny, None)
}

/// A review needing `count` SREs within 15 minutes, optionally pausing the run meanwhile.
pub fn review(count: u32, pause_run: bool) -> Decision {
    decision(
        Effect::Review,
        Some(Requirements {
            approvers: vec![Clause {
                group: "sre".into(),
                count,
            }],
            mfa: false,
            timeout_seconds: 900,
            on_timeout: OnTimeout::Deny,
            pause_run,
            grant_ttl_seconds: 300,
            notify: vec![],
            remind_seconds: None,
            escalate: None,
            require_comment: false,
            min_review_seconds: None,
            standing: None,
            amend: false,
        }),
    )
}

/// How long an allowed action may wait for its paused run in these fixtures.
pub const HOLD_SECONDS: u64 = 60;

/// A submission of `action` by the sample agent, decided by `decision`, created at `now`.
pub fn submission(id: &str, action: Action, decision: Decision, now: Timestamp) -> Submit {
    let id = id.to_owned();
    Box::new(move |gate| Request::submit(id, agent(), action, decision, gate, HOLD_SECONDS, now))
}

/// Submits a request and returns it as stored.
pub async fn submit(
    store: &dyn Store,
    id: &str,
    run: Option<&str>,
    decision: Decision,
    now: Timestamp,
) -> Request {
    let requester = agent().id;
    let run_of = run.map(|run| RunOf {
        run,
        requester: &requester,
    });
    store
        .submit(run_of, now, submission(id, action(run), decision, now))
        .await
        .expect("submit")
}

/// `voter` votes `decision` on the digest they were shown.
pub fn vote(voter: Principal, digest: Digest, decision: VoteDecision) -> Transition {
    Transition::Vote {
        voter,
        decision,
        digest,
        channel: Channel::Api,
        mfa: None,
        comment: None,
        standing: None,
    }
}

/// Every audit entry, parsed.
pub async fn audit_log(store: &dyn Store) -> Vec<AuditEntry> {
    store
        .audit_entries(0, u32::MAX)
        .await
        .expect("audit entries")
        .iter()
        .map(|e| serde_json::from_slice(&e.bytes).expect("an audit entry"))
        .collect()
}

/// How many audit entries there are, checking on the way that they verify.
pub async fn audit_count(store: &dyn Store) -> u64 {
    let report = store.verify_audit().await.expect("verify");
    assert!(report.is_intact(), "{:?}", report.first_bad);
    report.entries
}

/// The event names of the audit entries about request `id`.
pub async fn events_about(store: &dyn Store, id: &str) -> Vec<String> {
    audit_log(store)
        .await
        .into_iter()
        .filter(|e| e.request.as_deref() == Some(id))
        .map(|e| e.event)
        .collect()
}
