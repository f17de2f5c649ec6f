//! How people review (issue 18): per approver, over a period, how many decisions they made,
//! how many were approvals, how long they took to decide (from the request's creation to their
//! vote) and how many of their approvals came faster than anyone reads. A rubber stamp shows
//! as a high approval rate with a short median and a large share of fast approvals.
//!
//! Read only: computed from the requests' recorded votes (`Gateway::reviews`), never stored.

use crate::gateway::{Gateway, GatewayError};
use crate::metrics::FAST_APPROVAL_SECONDS;
use countersign_core::{Principal, Request, Timestamp, VoteDecision};
use countersign_store::{MAX_PAGE, RequestQuery};
use std::collections::BTreeMap;

/// The most requests one tally reads (newest first); an older period is reported as cut short.
pub const MAX_SCANNED: usize = 20_000;

/// The reviews of a period, and how much of it they cover.
#[derive(Debug, Clone, PartialEq)]
pub struct Reviews {
    pub approvers: Vec<ApproverReviews>,
    /// Requests read.
    pub requests: usize,
    /// When the requests read stop short of the period's start (more than [`MAX_SCANNED`]
    /// were created in it): the creation time of the oldest one read.
    pub cut_at: Option<Timestamp>,
}

impl Gateway {
    /// The reviews of the votes cast on requests created at or after `since` (see the
    /// module), for a person (how others review is not an agent's business).
    pub async fn reviews(
        &self,
        viewer: &Principal,
        since: Timestamp,
    ) -> Result<Reviews, GatewayError> {
        if !viewer.is_person() {
            return Err(GatewayError::Forbidden(
                "forbidden",
                "only people may read how requests are reviewed".into(),
            ));
        }
        let mut requests: Vec<Request> = Vec::new();
        let mut before = None;
        let mut cut_at = None;
        loop {
            let page = self
                .store
                .list_requests(&RequestQuery {
                    limit: MAX_PAGE,
                    before: before.take(),
                    ..RequestQuery::default()
                })
                .await?;
            let full = page.len() == MAX_PAGE as usize;
            let last = page.last().map(|r| (r.id().to_owned(), r.created_at()));
            requests.extend(page.into_iter().filter(|r| r.created_at() >= since));
            match last {
                Some((id, created)) if full && created >= since => {
                    if requests.len() >= MAX_SCANNED {
                        cut_at = Some(created);
                        break;
                    }
                    before = Some(id);
                }
                _ => break,
            }
        }
        Ok(Reviews {
            approvers: tally(&requests, since),
            requests: requests.len(),
            cut_at,
        })
    }
}

/// One approver's reviews over the period.
#[derive(Debug, Clone, PartialEq)]
pub struct ApproverReviews {
    pub approver: String,
    /// Votes cast (approvals and denials).
    pub decisions: u64,
    pub approvals: u64,
    /// The median time from a request's creation to this approver's vote on it, in seconds.
    pub median_seconds: f64,
    /// Approvals cast less than [`FAST_APPROVAL_SECONDS`] after the request was created.
    pub fast_approvals: u64,
}

impl ApproverReviews {
    /// Approvals among decisions, 0 to 1.
    pub fn approval_rate(&self) -> f64 {
        ratio(self.approvals, self.decisions)
    }

    /// Decisions that were approvals under [`FAST_APPROVAL_SECONDS`], among all decisions.
    pub fn fast_share(&self) -> f64 {
        ratio(self.fast_approvals, self.decisions)
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// The reviews of each approver in the votes of `requests` cast at or after `since`, the
/// approvers in order of their ids.
pub fn tally<'a>(
    requests: impl IntoIterator<Item = &'a Request>,
    since: Timestamp,
) -> Vec<ApproverReviews> {
    #[derive(Default)]
    struct Acc {
        approvals: u64,
        fast: u64,
        waits: Vec<f64>,
    }
    let mut by: BTreeMap<String, Acc> = BTreeMap::new();
    for req in requests {
        for vote in req.votes().iter().filter(|v| v.at >= since) {
            let waited = (vote.at - req.created_at()).num_milliseconds().max(0) as f64 / 1000.0;
            let acc = by.entry(vote.approver.to_string()).or_default();
            acc.waits.push(waited);
            if vote.decision == VoteDecision::Approve {
                acc.approvals += 1;
                if waited < FAST_APPROVAL_SECONDS {
                    acc.fast += 1;
                }
            }
        }
    }
    by.into_iter()
        .map(|(approver, mut acc)| ApproverReviews {
            approver,
            decisions: acc.waits.len() as u64,
            approvals: acc.approvals,
            median_seconds: median(&mut acc.waits),
            fast_approvals: acc.fast,
        })
        .collect()
}

/// The median of `xs` (the mean of the middle two for an even count); 0 when empty.
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let mid = xs.len() / 2;
    if xs.len().is_multiple_of(2) {
        (xs[mid - 1] + xs[mid]) / 2.0
    } else {
        xs[mid]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::{
        Action, Ballot, Channel, Clause, Decision, Effect, OnTimeout, Principal, PrincipalId,
        Requirements, RunGate,
    };

    fn at(seconds: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(1_790_000_000 + seconds, 0).unwrap()
    }

    fn person(name: &str) -> Principal {
        Principal {
            id: PrincipalId::parse(&format!("user:{name}@example.com")).unwrap(),
            owner: None,
            groups: vec!["sre".into()],
        }
    }

    /// A request created at `at(created)` that needs `count` of sre.
    fn request(n: u32, created: i64, count: u32) -> Request {
        let agent = Principal {
            id: PrincipalId::parse("agent:deploy-bot").unwrap(),
            owner: None,
            groups: vec![],
        };
        let decision = Decision {
            effect: Effect::Review,
            rule: Some("r".into()),
            reason: "matched".into(),
            requirements: Some(Requirements {
                approvers: vec![Clause {
                    group: "sre".into(),
                    count,
                }],
                mfa: false,
                timeout_seconds: 3600,
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
        };
        let action = Action {
            kind: "db.export".into(),
            resource: format!("postgres://prod/t{n}"),
            params: serde_json::json!({}),
            justification: None,
            run: None,
            labels: Default::default(),
        };
        let (req, _) = Request::submit(
            format!("req_{n}"),
            agent,
            action,
            decision,
            RunGate::Open,
            60,
            at(created),
        );
        req
    }

    fn vote(req: &mut Request, who: &Principal, decision: VoteDecision, seconds: i64) {
        let ballot = Ballot {
            voter: who,
            decision,
            digest: req.digest(),
            channel: Channel::Api,
            mfa: None,
            comment: None,
            standing: None,
        };
        req.vote(&ballot, at(seconds)).unwrap();
    }

    #[test]
    fn each_approvers_decisions_rates_times_and_fast_approvals_are_counted_in_the_period() {
        let (bob, carol) = (person("bob"), person("carol"));
        let mut old = request(0, -500, 1);
        vote(&mut old, &bob, VoteDecision::Approve, -499); // before the period: not counted
        let mut a = request(1, 0, 2);
        vote(&mut a, &bob, VoteDecision::Approve, 3); // fast
        vote(&mut a, &carol, VoteDecision::Approve, 40);
        let mut b = request(2, 0, 1);
        vote(&mut b, &bob, VoteDecision::Deny, 5); // fast, but a denial
        let mut c = request(3, 0, 1);
        vote(&mut c, &bob, VoteDecision::Approve, 600);
        let got = tally([&old, &a, &b, &c], at(-100));
        assert_eq!(got.len(), 2);
        let (b, c) = (&got[0], &got[1]);
        assert_eq!(b.approver, "user:bob@example.com");
        assert_eq!((b.decisions, b.approvals, b.fast_approvals), (3, 2, 1));
        assert_eq!(b.median_seconds, 5.0);
        assert!((b.approval_rate() - 2.0 / 3.0).abs() < 1e-9);
        assert!((b.fast_share() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(c.approver, "user:carol@example.com");
        assert_eq!((c.decisions, c.approvals, c.fast_approvals), (1, 1, 0));
        assert_eq!(c.median_seconds, 40.0);
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median(&mut []), 0.0);
        assert_eq!(median(&mut [7.0]), 7.0);
        assert_eq!(median(&mut [30.0, 1.0, 4.0]), 4.0);
        assert_eq!(median(&mut [4.0, 1.0, 30.0, 2.0]), 3.0);
    }

    #[test]
    fn rates_of_nothing_are_zero() {
        let r = ApproverReviews {
            approver: "user:a@example.com".into(),
            decisions: 0,
            approvals: 0,
            median_seconds: 0.0,
            fast_approvals: 0,
        };
        assert_eq!(r.approval_rate(), 0.0);
        assert_eq!(r.fast_share(), 0.0);
        let r = ApproverReviews {
            decisions: 4,
            approvals: 3,
            fast_approvals: 1,
            ..r
        };
        assert_eq!(r.approval_rate(), 0.75);
        assert_eq!(r.fast_share(), 0.25);
    }
}
