//! State-machine tests: the invariants of DESIGN.md at the level of one request.

use super::*;
use crate::{OnTimeout, Requirements};
use chrono::TimeZone;
use proptest::prelude::*;
use serde_json::json;

pub(super) fn t0() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2026, 11, 23, 3, 0, 0).unwrap()
}

pub(super) fn person(id: &str, groups: &[&str]) -> Principal {
    Principal {
        id: PrincipalId::parse(id).unwrap(),
        owner: None,
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

pub(super) fn agent() -> Principal {
    Principal {
        id: PrincipalId::parse("agent:deploy-bot").unwrap(),
        owner: Some(PrincipalId::parse("user:alice@example.com").unwrap()),
        groups: vec!["deployers".into()],
    }
}

pub(super) fn review(clauses: &[(&str, u32)], mfa: bool) -> Decision {
    Decision {
        effect: Effect::Review,
        rule: Some("prod-export-needs-two".into()),
        reason: "matched".into(),
        requirements: Some(Requirements {
            approvers: clauses
                .iter()
                .map(|(g, n)| Clause {
                    group: g.to_string(),
                    count: *n,
                })
                .collect(),
            mfa,
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

pub(super) fn action() -> Action {
    Action {
        kind: "db.export".into(),
        resource: "postgres://prod/customers".into(),
        params: json!({"rows": 5000}),
        justification: Some("quarterly report".into()),
        run: Some("run-1".into()),
        labels: Default::default(),
    }
}

pub(super) fn ids(n: u32) -> String {
    format!("req_{n}")
}

fn pending(clauses: &[(&str, u32)]) -> Request {
    Request::submit(
        ids(1),
        agent(),
        action(),
        review(clauses, false),
        RunGate::Open,
        60,
        t0(),
    )
    .0
}

pub(super) fn ballot<'a>(
    voter: &'a Principal,
    req: &Request,
    decision: VoteDecision,
) -> Ballot<'a> {
    Ballot {
        voter,
        decision,
        digest: req.digest,
        channel: Channel::Api,
        mfa: None,
        comment: None,
        standing: None,
    }
}

#[test]
fn no_self_approval_requester_owner_and_agents_cannot_vote() {
    let mut req = pending(&[("sre", 1)]);
    let mut alice = person("user:alice@example.com", &["sre"]); // the agent's owner
    assert_eq!(
        req.vote(&ballot(&alice, &req.clone(), VoteDecision::Approve), t0()),
        Err(Refusal::SelfApproval)
    );
    alice.groups.push("security".into());
    let mut other_agent = agent();
    other_agent.id = PrincipalId::parse("agent:helper").unwrap();
    other_agent.groups = vec!["sre".into()];
    assert_eq!(
        req.vote(
            &ballot(&other_agent, &req.clone(), VoteDecision::Approve),
            t0()
        ),
        Err(Refusal::AgentCannotVote)
    );
    let requester = agent();
    assert_eq!(
        req.vote(
            &ballot(&requester, &req.clone(), VoteDecision::Approve),
            t0()
        ),
        Err(Refusal::AgentCannotVote)
    );
    assert!(req.votes.is_empty());
    assert_eq!(req.state, State::Pending);
}

#[test]
fn quorum_counts_distinct_people_person_in_two_groups_fills_one_slot() {
    let mut req = pending(&[("sre", 1), ("security", 1)]);
    let dana = person("user:dana@example.com", &["sre", "security"]);
    let carol = person("user:carol@example.com", &["security"]);
    req.vote(&ballot(&dana, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(req.state, State::Pending);
    assert_eq!(req.remaining().len(), 1);
    req.vote(&ballot(&carol, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(req.state, State::Approved);
    assert!(req.grant.is_some());
}

#[test]
fn approval_binds_digest_vote_on_other_digest_is_refused() {
    let mut req = pending(&[("sre", 1)]);
    let bob = person("user:bob@example.com", &["sre"]);
    let mut b = ballot(&bob, &req.clone(), VoteDecision::Approve);
    b.digest = Digest::of_bytes(b"something else");
    assert!(matches!(
        req.vote(&b, t0()),
        Err(Refusal::DigestMismatch { .. })
    ));
    assert!(req.votes.is_empty());
}

#[test]
fn eligible_deny_closes_the_request() {
    let mut req = pending(&[("sre", 2)]);
    let bob = person("user:bob@example.com", &["sre"]);
    let mut b = ballot(&bob, &req.clone(), VoteDecision::Deny);
    b.comment = Some("not during the freeze".into());
    req.vote(&b, t0()).unwrap();
    assert_eq!(req.state, State::Denied);
    assert!(req.outcome.as_deref().unwrap().contains("freeze"));
}

#[test]
fn mfa_rule_refuses_votes_without_second_factor() {
    let (mut req, _) = Request::submit(
        ids(1),
        agent(),
        action(),
        review(&[("sre", 1)], true),
        RunGate::Open,
        60,
        t0(),
    );
    let bob = person("user:bob@example.com", &["sre"]);
    let mut b = ballot(&bob, &req.clone(), VoteDecision::Approve);
    assert_eq!(req.vote(&b, t0()), Err(Refusal::MfaRequired));
    b.mfa = Some(crate::MfaMethod::Totp);
    req.vote(&b, t0()).unwrap();
    assert_eq!(req.state, State::Approved);
}

#[test]
fn grant_redeems_once_and_never_after_expiry() {
    let mut req = pending(&[("sre", 1)]);
    let bob = person("user:bob@example.com", &["sre"]);
    req.vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    let d = req.digest;
    let mut late = req.clone();
    assert_eq!(
        late.redeem(&d, t0() + chrono::Duration::seconds(301)),
        Err(Refusal::GrantExpired)
    );
    assert!(matches!(
        req.redeem(&Digest::of_bytes(b"x"), t0()),
        Err(Refusal::DigestMismatch { .. })
    ));
    req.redeem(&d, t0()).unwrap();
    assert_eq!(req.state, State::Executed);
    assert_eq!(req.redeem(&d, t0()), Err(Refusal::GrantUsed));
}

#[test]
fn pending_request_expires_distinctly_from_denied() {
    let mut req = pending(&[("sre", 1)]);
    assert!(
        req.expire_if_due(t0() + chrono::Duration::seconds(899))
            .is_empty()
    );
    let later = t0() + chrono::Duration::seconds(900);
    let bob = person("user:bob@example.com", &["sre"]);
    assert_eq!(
        req.clone()
            .vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), later),
        Err(Refusal::RequestExpired)
    );
    assert_eq!(req.expire_if_due(later), vec![Event::RequestExpired]);
    assert_eq!(req.state, State::Expired);
}

#[test]
fn held_request_is_not_approved_until_released() {
    let (mut req, _) = Request::submit(
        ids(1),
        agent(),
        action(),
        review(&[("sre", 1)], false),
        RunGate::Paused,
        60,
        t0(),
    );
    assert!(req.held);
    let bob = person("user:bob@example.com", &["sre"]);
    req.vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(req.state, State::Pending);
    req.release(t0());
    assert_eq!(req.state, State::Approved);
}

#[test]
fn stopped_run_denies_new_actions() {
    let (req, events) = Request::submit(
        ids(1),
        agent(),
        action(),
        review(&[("sre", 1)], false),
        RunGate::Stopped,
        60,
        t0(),
    );
    assert_eq!(req.state, State::Denied);
    assert_eq!(req.outcome_code.as_deref(), Some("run_stopped"));
    assert_eq!(events.len(), 2);
}

#[test]
fn run_rules_live_in_the_core() {
    use crate::RunState;
    // The gate a new request meets.
    assert_eq!(RunGate::of(None, false), RunGate::Open);
    assert_eq!(RunGate::of(Some(RunState::Active), false), RunGate::Open);
    assert_eq!(RunGate::of(None, true), RunGate::Paused);
    assert_eq!(RunGate::of(Some(RunState::Paused), false), RunGate::Paused);
    assert_eq!(RunGate::of(Some(RunState::Stopped), true), RunGate::Stopped);
    // Held requests are released only from an active run.
    assert!(RunState::may_release(None));
    assert!(RunState::may_release(Some(RunState::Active)));
    assert!(!RunState::may_release(Some(RunState::Paused)));
    assert!(!RunState::may_release(Some(RunState::Stopped)));
    // Only a pending, unheld request whose review pauses the run pauses it.
    let mut pausing = review(&[("sre", 1)], false);
    if let Some(r) = pausing.requirements.as_mut() {
        r.pause_run = true;
    }
    let submit = |decision: Decision, gate| {
        Request::submit(ids(1), agent(), action(), decision, gate, 60, t0()).0
    };
    assert!(submit(pausing.clone(), RunGate::Open).pauses_run());
    assert!(
        !submit(pausing.clone(), RunGate::Paused).pauses_run(),
        "held"
    );
    assert!(!submit(review(&[("sre", 1)], false), RunGate::Open).pauses_run());
    // A held request freed after its deadline expires; before it, it is released.
    let mut late = submit(review(&[("sre", 1)], false), RunGate::Paused);
    late.free_held(t0() + chrono::Duration::seconds(3600));
    assert_eq!(late.state, State::Expired);
    let mut early = submit(review(&[("sre", 1)], false), RunGate::Paused);
    early.free_held(t0());
    assert!(!early.held);
    assert_eq!(early.state, State::Pending);
}

#[derive(Debug, Clone)]
enum Op {
    Vote {
        who: usize,
        approve: bool,
        right_digest: bool,
        mfa: bool,
    },
    Cancel {
        by_requester: bool,
    },
    Redeem {
        right_digest: bool,
    },
    Tick(u32),
    Release,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..6, any::<bool>(), prop::bool::weighted(0.85), any::<bool>())
            .prop_map(|(who, approve, right_digest, mfa)| Op::Vote { who, approve, right_digest, mfa }),
        1 => any::<bool>().prop_map(|by_requester| Op::Cancel { by_requester }),
        2 => any::<bool>().prop_map(|right_digest| Op::Redeem { right_digest }),
        1 => (0u32..1000).prop_map(Op::Tick),
        1 => Just(Op::Release),
    ]
}

fn voters() -> Vec<Principal> {
    vec![
        person("user:alice@example.com", &["sre"]), // owner of the agent
        person("user:bob@example.com", &["sre"]),
        person("user:carol@example.com", &["security"]),
        person("user:dana@example.com", &["sre", "security"]),
        person("user:erin@example.com", &["finance"]),
        agent(),
    ]
}

proptest! {
    /// Invariants 1-3 over random histories: only eligible distinct people count, approval
    /// needs a full matching, terminal states never change, a grant is redeemed at most once
    /// and never after it expires, and a refused transition changes nothing.
    #[test]
    fn state_machine_invariants_hold_over_random_histories(
        ops in prop::collection::vec(arb_op(), 0..40),
        mfa in any::<bool>(),
        paused in any::<bool>(),
    ) {
        let gate = if paused { RunGate::Paused } else { RunGate::Open };
        let (mut req, _) = Request::submit(
            ids(1), agent(), action(), review(&[("sre", 1), ("security", 1)], mfa), gate, 60, t0(),
        );
        let people = voters();
        let mut now = t0();
        let mut redemptions = 0;
        for op in ops {
            let before = req.clone();
            let result = match op {
                Op::Vote { who, approve, right_digest, mfa } => {
                    let mut b = ballot(&people[who], &req.clone(),
                        if approve { VoteDecision::Approve } else { VoteDecision::Deny });
                    if !right_digest { b.digest = Digest::of_bytes(b"other"); }
                    b.mfa = mfa.then_some(crate::MfaMethod::Totp);
                    // Through the store's entry point, which must be the same call.
                    let transition = Transition::Vote {
                        voter: b.voter.clone(), decision: b.decision, digest: b.digest,
                        channel: b.channel, mfa: b.mfa, comment: b.comment.clone(), standing: None,
                    };
                    let mut direct = req.clone();
                    let expected = direct.vote(&b, now);
                    let result = req.apply(&transition, now);
                    prop_assert_eq!(&result, &expected);
                    prop_assert_eq!(&req, &direct);
                    result
                }
                Op::Cancel { by_requester } => {
                    let by = if by_requester { agent().id } else { people[1].id.clone() };
                    req.apply(&Transition::Cancel { by, why: None }, now)
                }
                Op::Redeem { right_digest } => {
                    let d = if right_digest { req.digest } else { Digest::of_bytes(b"x") };
                    let r = req.apply(&Transition::Redeem { digest: d }, now);
                    if r.is_ok() {
                        redemptions += 1;
                        prop_assert!(now < before.grant.as_ref().unwrap().expires_at);
                    }
                    r
                }
                Op::Tick(s) => { now += chrono::Duration::seconds(i64::from(s)); req.apply(&Transition::Expire, now) }
                Op::Release => Ok(req.release(now)),
            };
            if result.is_err() {
                prop_assert_eq!(&req, &before, "a refused transition changed the request");
            }
            if before.state.is_terminal() {
                prop_assert_eq!(before.state, req.state, "terminal state changed");
            }
            // Only eligible people's votes are ever recorded, once each.
            for (i, v) in req.votes.iter().enumerate() {
                prop_assert!(v.approver.kind() == crate::PrincipalKind::User);
                prop_assert!(v.approver.as_str() != "user:alice@example.com");
                prop_assert!(req.votes[..i].iter().all(|w| w.approver != v.approver));
                prop_assert!(!mfa || v.mfa);
            }
            if matches!(req.state, State::Approved | State::Executed) {
                let approvals: Vec<_> = req.votes.iter()
                    .filter(|v| v.decision == VoteDecision::Approve)
                    .map(|v| crate::quorum::Approver { id: v.approver.as_str(), groups: &v.groups })
                    .collect();
                let clauses = &req.decision.requirements.as_ref().unwrap().approvers;
                prop_assert!(crate::quorum::is_met(clauses, &approvals));
                prop_assert!(approvals.len() >= 2);
                prop_assert!(!req.held);
            }
            prop_assert!(redemptions <= 1);
        }
    }
}

fn approved() -> Request {
    let mut req = pending(&[("sre", 1)]);
    let bob = person("user:bob@example.com", &["sre"]);
    req.vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    req
}

#[test]
fn an_execution_runs_at_most_once_and_exactly_as_recorded() {
    use crate::execution::{ExecStatus, Outcome};
    let mut req = approved();
    let d = req.digest;
    let deadline = t0() + chrono::Duration::seconds(60);
    let by = req.requester.id.clone();
    let bob = person("user:bob@example.com", &["sre"]).id;
    assert_eq!(
        req.clone().execute(&bob, &d, "api", deadline, t0()),
        Err(Refusal::NotGrantHolder)
    );
    assert!(matches!(
        req.clone()
            .execute(&by, &Digest::of_bytes(b"other"), "api", deadline, t0()),
        Err(Refusal::DigestMismatch { .. })
    ));
    let events = req.execute(&by, &d, "api", deadline, t0()).unwrap();
    assert_eq!(events.len(), 2, "grant.redeemed and execution.started");
    assert_eq!(
        req.clone().execute(&by, &d, "api", deadline, t0()),
        Err(Refusal::GrantUsed)
    );
    // Not interrupted before its deadline; closed as unknown after it, once.
    assert!(req.clone().interrupt_if_due(t0()).is_empty());
    let mut dead = req.clone();
    assert_eq!(dead.interrupt_if_due(deadline).len(), 1);
    assert_eq!(dead.state, State::Failed);
    assert_eq!(
        dead.execution().unwrap().outcome.status,
        ExecStatus::Unknown
    );
    assert!(dead.interrupt_if_due(deadline).is_empty());
    // It ends once: a `running` end is recorded as unknown, and a second end is refused.
    let mut running_end = req.clone();
    running_end
        .finish(Outcome::with_status(ExecStatus::Running), t0())
        .unwrap();
    assert_eq!(
        running_end.execution().unwrap().outcome.status,
        ExecStatus::Unknown
    );
    req.finish(Outcome::with_status(ExecStatus::Succeeded), t0())
        .unwrap();
    assert_eq!(req.state, State::Executed);
    assert_eq!(
        req.finish(Outcome::with_status(ExecStatus::Failed), t0()),
        Err(Refusal::OutcomeRecorded)
    );
}

#[test]
fn a_requester_reports_once_and_only_after_redeeming() {
    use crate::execution::{ExecStatus, Outcome};
    let mut req = approved();
    let by = req.requester.id.clone();
    let failed = || Outcome::with_status(ExecStatus::Failed);
    assert_eq!(
        req.report(&by, failed(), t0()),
        Err(Refusal::NotRedeemed(State::Approved))
    );
    let d = req.digest;
    req.redeem(&d, t0()).unwrap();
    let bob = person("user:bob@example.com", &["sre"]).id;
    assert_eq!(req.report(&bob, failed(), t0()), Err(Refusal::NotRequester));
    assert_eq!(req.report(&by, failed(), t0()).unwrap().len(), 1);
    assert_eq!(req.state, State::Failed);
    assert!(req.execution().unwrap().reported);
    assert_eq!(
        req.report(&by, failed(), t0()),
        Err(Refusal::OutcomeRecorded)
    );
}

#[test]
fn an_executions_output_is_read_only_by_its_requester_and_its_approvers() {
    use crate::execution::{ExecStatus, HttpOutcome, Outcome};
    let mut req = approved();
    let d = req.digest;
    let by = req.requester.id.clone();
    req.execute(&by, &d, "api", t0() + chrono::Duration::seconds(60), t0())
        .unwrap();
    let outcome = Outcome {
        http: Some(HttpOutcome {
            status: 200,
            headers: [("content-type".to_string(), "text/plain".to_string())].into(),
            body: "customer rows".into(),
        }),
        stdout: Some("out".into()),
        stderr: Some("err".into()),
        columns: Some(vec!["email".into()]),
        rows: Some(vec![vec![json!("a@example.com")]]),
        output_sha256: Some("ab".repeat(32)),
        bytes: 13,
        ..Outcome::with_status(ExecStatus::Succeeded)
    };
    req.finish(outcome.clone(), t0()).unwrap();
    let full = |p: &Principal| req.execution_for(p).unwrap().outcome == outcome;
    // The requester, its owner, who voted, and who may decide: the whole copy.
    assert!(full(&req.requester.clone()));
    assert!(full(&person("user:alice@example.com", &[])));
    assert!(full(&person("user:bob@example.com", &[])), "bob voted");
    assert!(full(&person("user:carol@example.com", &["sre"])));
    // Another person, another agent, someone in an unrelated group: what ran, not the output.
    for other in [
        person("user:mallory@example.com", &[]),
        person("user:dave@example.com", &["finance"]),
        person("agent:other-bot", &["sre-readers"]),
    ] {
        assert!(!req.may_read_output(&other), "{}", other.id);
        let seen = req.execution_for(&other).unwrap().outcome;
        assert_eq!(seen.status, ExecStatus::Succeeded);
        assert_eq!(seen.output_sha256, outcome.output_sha256);
        assert_eq!(seen.bytes, 13);
        let http = seen.http.unwrap();
        assert_eq!(http.status, 200);
        assert!(http.body.is_empty() && http.headers.is_empty());
        assert!(seen.stdout.is_none() && seen.stderr.is_none());
        assert!(seen.rows.is_none() && seen.columns.is_none());
    }
}

#[test]
fn an_outcome_is_recorded_at_most_once() {
    use crate::execution::{ExecStatus, Outcome};
    let ok = || Outcome::with_status(ExecStatus::Succeeded);
    let failed = || Outcome::with_status(ExecStatus::Failed);
    let mut req = approved();
    let by = req.requester.id.clone();
    let d = req.digest;
    // Only after the grant was redeemed.
    assert_eq!(
        req.clone().observe("mcp:e", t0(), ok(), t0()),
        Err(Refusal::NotRedeemed(State::Approved))
    );
    req.redeem(&d, t0()).unwrap();
    // The gateway's observation: recorded once, as seen (not reported), ending the request.
    let mut seen = req.clone();
    let events = seen.observe("mcp:e", t0(), failed(), t0()).unwrap();
    assert_eq!(events.len(), 1, "execution.finished alone");
    assert!(
        matches!(
            events[0],
            Event::ExecutionFinished {
                reported: false,
                status: ExecStatus::Failed,
                ..
            }
        ),
        "{events:?}"
    );
    assert_eq!(seen.state, State::Failed);
    let execution = seen.execution().unwrap();
    assert_eq!(execution.executor.as_deref(), Some("mcp:e"));
    assert!(!execution.reported);
    // Once recorded, every way of recording another is refused and changes nothing.
    let before = seen.clone();
    assert_eq!(
        seen.observe("mcp:e", t0(), ok(), t0()),
        Err(Refusal::OutcomeRecorded)
    );
    assert_eq!(seen.report(&by, ok(), t0()), Err(Refusal::OutcomeRecorded));
    assert_eq!(seen.finish(ok(), t0()), Err(Refusal::OutcomeRecorded));
    assert_eq!(seen, before);
    // A requester's report first: the gateway's observation is refused.
    let mut claimed = req.clone();
    claimed.report(&by, ok(), t0()).unwrap();
    assert_eq!(
        claimed.observe("mcp:e", t0(), failed(), t0()),
        Err(Refusal::OutcomeRecorded)
    );
    // An execution the gateway runs has its outcome recorded by its end alone.
    let mut run = approved();
    let deadline = t0() + chrono::Duration::seconds(60);
    run.execute(&by, &d, "api", deadline, t0()).unwrap();
    assert_eq!(
        run.observe("mcp:e", t0(), ok(), t0()),
        Err(Refusal::OutcomeRecorded)
    );
}

#[test]
fn approvals_are_read_not_clicked() {
    let mut req = pending(&[("sre", 1)]);
    if let Some(r) = req.decision.requirements.as_mut() {
        r.require_comment = true;
        r.min_review_seconds = Some(10);
    }
    let bob = person("user:bob@example.com", &["sre"]);
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    let digest = req.digest;
    let with = |comment: Option<&str>, decision| Ballot {
        voter: &bob,
        decision,
        digest,
        channel: Channel::Api,
        mfa: None,
        comment: comment.map(str::to_owned),
        standing: None,
    };
    for blank in [None, Some(""), Some("  \n")] {
        assert_eq!(
            req.clone()
                .vote(&with(blank, VoteDecision::Approve), at(60)),
            Err(Refusal::CommentRequired),
            "{blank:?}"
        );
    }
    assert_eq!(
        req.clone().vote(
            &with(Some("checked the diff"), VoteDecision::Approve),
            at(3)
        ),
        Err(Refusal::TooFast {
            elapsed_seconds: 3,
            min_seconds: 10
        })
    );
    // A denial is never slowed down, and needs no comment.
    let mut denied = req.clone();
    denied
        .vote(&with(None, VoteDecision::Deny), at(1))
        .expect("a quick deny");
    assert_eq!(denied.state, State::Denied);
    req.vote(
        &with(Some("checked the diff"), VoteDecision::Approve),
        at(10),
    )
    .expect("read, then approved");
    assert_eq!(req.state, State::Approved);
}

/// A decision of `review(clauses)` whose rule allows standing approvals over `scope`.
fn standing_review(clauses: &[(&str, u32)], scope: &[crate::standing::ScopeField]) -> Decision {
    let mut d = review(clauses, false);
    if let Some(r) = d.requirements.as_mut() {
        r.standing = Some(crate::standing::StandingRule {
            max_seconds: 3600,
            max_uses: 5,
            scope: scope.to_vec(),
        });
    }
    d
}

fn ask(seconds: u64, uses: u32) -> Option<crate::standing::StandingAsk> {
    Some(crate::standing::StandingAsk { seconds, uses })
}

#[test]
fn a_standing_approval_forms_only_when_every_approval_asked_for_it() {
    use crate::standing::ScopeField;
    let decision = standing_review(&[("sre", 1), ("security", 1)], &ScopeField::ALL);
    let new = || {
        Request::submit(
            ids(7),
            agent(),
            action(),
            decision.clone(),
            RunGate::Open,
            60,
            t0(),
        )
        .0
    };
    let bob = person("user:bob@example.com", &["sre"]);
    let carol = person("user:carol@example.com", &["security"]);
    let vote = |req: &mut Request, who: &Principal, standing| {
        let mut b = ballot(who, &req.clone(), VoteDecision::Approve);
        b.standing = standing;
        req.vote(&b, t0())
    };
    // Both ask: the smaller duration and uses win, and the event names both approvers.
    let mut both = new();
    vote(&mut both, &bob, ask(3600, 5)).unwrap();
    let events = vote(&mut both, &carol, ask(600, 9)).unwrap_err();
    assert_eq!(
        events,
        Refusal::StandingNotAllowed(
            "this rule allows standing approvals of at most 5 uses (asked 9)".into()
        ),
        "beyond the rule: refused, nothing recorded"
    );
    let events = vote(&mut both, &carol, ask(600, 2)).unwrap();
    let s = both.standing().expect("formed");
    assert_eq!((s.uses, s.used), (2, 0));
    assert_eq!(s.until, t0() + chrono::Duration::seconds(600));
    assert_eq!(s.approvers.len(), 2);
    assert!(matches!(
        events.last(),
        Some(Event::StandingGranted { uses: 2, .. })
    ));
    // One did not ask: nothing forms.
    let mut one = new();
    vote(&mut one, &bob, ask(3600, 5)).unwrap();
    vote(&mut one, &carol, None).unwrap();
    assert_eq!(one.state, State::Approved);
    assert!(one.standing().is_none());
    // A rule without `standing`, or with MFA: refused.
    let mut plain = pending(&[("sre", 1)]);
    assert_eq!(
        vote(&mut plain, &bob, ask(60, 1)).unwrap_err().code(),
        "standing_not_allowed"
    );
    let mut mfa = Request::submit(
        ids(8),
        agent(),
        action(),
        review(&[("sre", 1)], true),
        RunGate::Open,
        60,
        t0(),
    )
    .0;
    if let Some(r) = mfa.decision.requirements.as_mut() {
        r.standing = standing_review(&[("sre", 1)], &ScopeField::ALL)
            .requirements
            .unwrap()
            .standing;
    }
    assert_eq!(
        vote(&mut mfa, &bob, ask(60, 1)).unwrap_err().code(),
        "standing_not_allowed"
    );
}

#[test]
fn a_standing_approval_covers_only_what_its_approvers_approved() {
    use crate::standing::ScopeField;
    let decision = standing_review(&[("sre", 1)], &[ScopeField::Kind, ScopeField::Resource]);
    let mut holder = Request::submit(
        ids(1),
        agent(),
        action(),
        decision.clone(),
        RunGate::Open,
        60,
        t0(),
    )
    .0;
    let bob = person("user:bob@example.com", &["sre"]);
    let mut b = ballot(&bob, &holder.clone(), VoteDecision::Approve);
    b.standing = ask(600, 2);
    holder.vote(&b, t0()).unwrap();
    let at = |s: i64| t0() + chrono::Duration::seconds(s);
    // The store took one use (1 of 2 left) before it offers the holder.
    let mut counted = holder.clone();
    counted.count_standing_uses(1);
    let cover = |a: Action, who: Principal, d: &Decision| {
        Request::submit_covered(ids(2), who, a, d.clone(), &counted, at(1))
    };

    // Params are out of scope: covered, approved at once with its own grant.
    let mut other_params = action();
    other_params.params = json!({"rows": 1});
    let (covered, events) = cover(other_params, agent(), &decision).expect("covered");
    assert_eq!(covered.state, State::Approved);
    assert_eq!(covered.covered_by().unwrap().standing, holder.id);
    assert_ne!(covered.digest, holder.digest);
    assert!(covered.grant().unwrap().digest.ct_eq(&covered.digest));
    assert_eq!(events.len(), 2, "created (naming the approval), approved");
    // Another requester, resource, rule or policy: another key, never covered.
    let mut helper = agent();
    helper.id = PrincipalId::parse("agent:helper-bot").unwrap();
    assert!(cover(action(), helper, &decision).is_none());
    let mut elsewhere = action();
    elsewhere.resource = "postgres://prod/orders".into();
    assert!(cover(elsewhere, agent(), &decision).is_none());
    let mut other_rule = decision.clone();
    other_rule.rule = Some("another".into());
    assert!(cover(action(), agent(), &other_rule).is_none());
    let mut other_policy = decision.clone();
    other_policy.policy_hash = "sha256:01".into();
    assert!(cover(action(), agent(), &other_policy).is_none());
    assert!(
        matches!(
            &events[0],
            Event::RequestCreated {
                standing: Some(crate::event::StandingUse { uses: 2, standing, .. }),
                ..
            } if *standing == holder.id
        ),
        "its creation names the approval: {:?}",
        events[0]
    );
    // The count only grows; an expired or revoked approval covers nothing.
    let mut recount = counted.clone();
    recount.count_standing_uses(2);
    assert_eq!(recount.standing().unwrap().used, 1);
    recount.count_standing_uses(0);
    assert_eq!(recount.standing().unwrap().used, 2);
    assert!(
        Request::submit_covered(
            ids(3),
            agent(),
            action(),
            decision.clone(),
            &counted,
            at(600)
        )
        .is_none(),
        "expired"
    );
    let mut revoked = holder.clone();
    let carol = person("user:carol@example.com", &["security"]);
    assert_eq!(
        revoked.revoke_standing(&carol, at(1)).unwrap_err().code(),
        "not_an_approver"
    );
    assert_eq!(
        revoked.revoke_standing(&agent(), at(1)).unwrap_err().code(),
        "not_an_approver"
    );
    let alice = person("user:alice@example.com", &[]);
    revoked
        .revoke_standing(&alice, at(1))
        .expect("the agent's owner");
    revoked.count_standing_uses(1);
    assert!(
        Request::submit_covered(ids(4), agent(), action(), decision.clone(), &revoked, at(1))
            .is_none(),
        "revoked"
    );
}

#[test]
fn an_amendment_binds_the_approval_to_the_amended_action() {
    let mut decision = review(&[("sre", 1), ("security", 1)], false);
    if let Some(r) = decision.requirements.as_mut() {
        r.amend = true;
    }
    let mut req = Request::submit(ids(3), agent(), action(), decision, RunGate::Open, 60, t0()).0;
    let old = req.digest;
    let bob = person("user:bob@example.com", &["sre"]);
    let carol = person("user:carol@example.com", &["security"]);
    let alice = person("user:alice@example.com", &["sre"]);
    req.vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    let amend = |req: &mut Request, who: &Principal, params: serde_json::Value| {
        let b = ballot(who, &req.clone(), VoteDecision::Approve);
        req.amend(&b, params, t0())
    };
    // The requester's owner may not; nor an agent; nor with the params unchanged.
    assert_eq!(
        amend(&mut req.clone(), &alice, json!({"rows": 10})),
        Err(Refusal::SelfApproval)
    );
    assert_eq!(
        amend(&mut req.clone(), &agent(), json!({"rows": 10})),
        Err(Refusal::AgentCannotVote)
    );
    assert_eq!(
        amend(&mut req.clone(), &carol, json!({"rows": 5000})),
        Err(Refusal::AmendUnchanged)
    );
    let events = amend(&mut req, &carol, json!({"rows": 10})).unwrap();
    assert!(
        matches!(events[0], Event::RequestAmended { .. }),
        "{events:?}"
    );
    assert_ne!(req.digest, old);
    assert_eq!(
        req.digest,
        Digest::of_action(&req.action, &req.requester.id)
    );
    assert_eq!(req.action.params, json!({"rows": 10}));
    assert_eq!(
        req.amendments()[0].patch,
        json!([{"op": "replace", "path": "/rows", "value": 10}])
    );
    // Bob approved the old digest: his vote no longer counts, and he may vote again.
    assert_eq!(req.votes.len(), 1);
    assert_eq!(req.state, State::Pending);
    req.vote(&ballot(&bob, &req.clone(), VoteDecision::Approve), t0())
        .unwrap();
    assert_eq!(req.state, State::Approved);
    assert!(req.grant().unwrap().digest.ct_eq(&req.digest));
    assert_eq!(
        req.redeem(&old, t0()).unwrap_err().code(),
        "digest_mismatch"
    );
    // A rule without `amend`.
    let mut plain = pending(&[("sre", 1)]);
    assert_eq!(
        amend(&mut plain, &bob, json!({"rows": 10})),
        Err(Refusal::AmendNotAllowed)
    );
}
