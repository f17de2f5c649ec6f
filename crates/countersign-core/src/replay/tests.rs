//! Replaying a request's events gives back the request the state machine produced, and every
//! edit of its state, votes, grant or digest is named.

use super::*;
use crate::{
    Action, Ballot, Channel, Clause, Decision, Effect, Event, OnTimeout, Principal, Requirements,
    RunGate,
};
use chrono::TimeZone;
use serde_json::json;

/// `r` edited behind the state machine's back, as a row edited in the database would be.
fn tampered(r: &Request, edit: impl FnOnce(&mut serde_json::Value)) -> Request {
    let mut v = serde_json::to_value(r).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
}

fn principal(id: &str, owner: Option<&str>, groups: &[&str]) -> Principal {
    Principal {
        id: PrincipalId::parse(id).unwrap(),
        owner: owner.map(|o| PrincipalId::parse(o).unwrap()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn decision(effect: Effect) -> Decision {
    Decision {
        effect,
        rule: Some("r".into()),
        reason: "matched".into(),
        requirements: (effect == Effect::Review).then(|| Requirements {
            approvers: vec![Clause {
                group: "sre".into(),
                count: 2,
            }],
            mfa: false,
            timeout_seconds: 900,
            on_timeout: OnTimeout::Deny,
            pause_run: false,
            grant_ttl_seconds: 300,
            notify: vec![],
            remind_seconds: None,
            escalate: None,
            require_comment: false,
            min_review_seconds: None,
            standing: None,
            amend: false,
        }),
        policy_hash: "sha256:00".into(),
        grant_ttl_seconds: 300,
    }
}

fn submit(effect: Effect) -> (Request, Vec<Event>) {
    let action = Action {
        kind: "db.export".into(),
        resource: "postgres://prod/customers".into(),
        params: json!({"rows": 5000}),
        justification: None,
        run: None,
        labels: Default::default(),
    };
    Request::submit(
        "req_1".into(),
        principal("agent:bot", Some("user:alice@example.com"), &[]),
        action,
        decision(effect),
        RunGate::Open,
        60,
        t0(),
    )
}

fn vote(r: &mut Request, who: &str, decision: VoteDecision) -> Vec<Event> {
    let voter = principal(who, None, &["sre"]);
    let ballot = Ballot {
        voter: &voter,
        decision,
        digest: r.digest(),
        channel: Channel::Api,
        mfa: None,
        comment: None,
        standing: None,
    };
    r.vote(&ballot, t0()).unwrap()
}

/// Replays `events` as the store records them, each entry noting the hash of `r`'s body.
fn replay(r: &Request, events: &[Event]) -> (Replayed, String) {
    let body = serde_json::to_string(r).unwrap();
    let hash = body_sha256(body.as_bytes());
    let mut replayed = Replayed::default();
    for (seq, e) in events.iter().enumerate() {
        let mut data = e.data();
        data.as_object_mut()
            .unwrap()
            .insert(RECORDED_HASH.into(), hash.clone().into());
        replayed.apply(seq as u64, e.name(), Some(&r.digest().to_string()), &data);
    }
    (replayed, hash)
}

/// A reviewed request, approved by two people and redeemed once, and all its events.
fn executed() -> (Request, Vec<Event>) {
    let (mut r, mut events) = submit(Effect::Review);
    events.extend(vote(&mut r, "user:bob@example.com", VoteDecision::Approve));
    events.extend(vote(
        &mut r,
        "user:carol@example.com",
        VoteDecision::Approve,
    ));
    let digest = r.digest();
    events.extend(r.redeem(&digest, t0()).unwrap());
    (r, events)
}

#[test]
fn stored_state_matches_the_log_when_nothing_was_edited() {
    for (r, events) in [executed(), submit(Effect::Allow), submit(Effect::Deny)] {
        let (replayed, hash) = replay(&r, &events);
        assert_eq!(replayed.differences(&r, &hash), Vec::<String>::new());
    }
    let (mut r, mut events) = submit(Effect::Review);
    events.extend(vote(&mut r, "user:bob@example.com", VoteDecision::Deny));
    let (replayed, hash) = replay(&r, &events);
    assert!(replayed.differences(&r, &hash).is_empty());
    assert_eq!(replayed.state, Some(State::Denied));
}

#[test]
fn stored_state_matches_the_log_or_each_edit_is_named() {
    let (r, events) = executed();
    let (replayed, hash) = replay(&r, &events);
    let says = |edit: &dyn Fn(&mut serde_json::Value), expect: &str| {
        let edited = tampered(&r, edit);
        let found = replayed.differences(&edited, &hash);
        assert!(
            found.iter().any(|f| f.contains(expect)),
            "{expect}: {found:?}"
        );
    };
    says(&|v| v["state"] = json!("approved"), "state is approved");
    says(&|v| v["grant"]["uses"] = json!(0), "grant uses are 0");
    says(
        &|v| v["grant"]["expires_at"] = json!(t0() + chrono::Duration::days(9)),
        "grant expires at",
    );
    says(&|v| v["grant"]["max_uses"] = json!(5), "grant allows 5");
    says(
        &|v| drop(v["votes"].as_array_mut().unwrap().pop()),
        "votes are",
    );
    says(&|v| v["votes"][0]["mfa"] = json!(true), "votes are");
    says(
        &|v| drop(v.as_object_mut().unwrap().remove("grant")),
        "is missing",
    );
    says(
        &|v| v["action"]["params"] = json!({"rows": 1}),
        "not the digest",
    );
    // A whole new digest, consistent with a new action, is still not the log's.
    let mut other = r.action().clone();
    other.params = json!({"rows": 1});
    let digest = Digest::of_action(&other, &r.requester().id);
    says(
        &|v| {
            v["action"] = json!(other);
            v["digest"] = json!(digest);
        },
        "the log says sha256:",
    );
    // The hash names an edit the replay cannot see (a comment, a group).
    let edited = tampered(&r, |v| v["votes"][0]["comment"] = json!("fine"));
    let edited_hash = body_sha256(serde_json::to_string(&edited).unwrap().as_bytes());
    let found = replayed.differences(&edited, &edited_hash);
    assert_eq!(
        found,
        vec!["the stored row is not the one its last audit entry recorded".to_string()]
    );
}

#[test]
fn a_denied_request_turned_approved_with_an_invented_grant_is_named() {
    let (mut r, mut events) = submit(Effect::Review);
    events.extend(vote(&mut r, "user:bob@example.com", VoteDecision::Deny));
    let (replayed, hash) = replay(&r, &events);
    let invented = crate::Grant::single_use(r.grant_id(), r.digest(), t0(), 3600);
    let r = tampered(&r, |v| {
        v["state"] = json!("approved");
        v["grant"] = json!(invented);
    });
    let found = replayed.differences(&r, &hash);
    assert!(
        found
            .iter()
            .any(|f| f.contains("state is approved, the log says denied")),
        "{found:?}"
    );
    assert!(
        found.iter().any(|f| f.contains("the log hands out none")),
        "{found:?}"
    );
}
