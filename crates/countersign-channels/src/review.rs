//! What a review message says, whatever the channel: the facts of a request as people are
//! shown them (who asks, what exactly, why, the masked params, the rule and what it needs, the
//! expiry, the progress, whether it can still be decided here), built from the request alone.
//! Every channel formats the same [`Review`] (Slack as Block Kit, Teams as an Adaptive Card),
//! so they never disagree, and secrets are masked here, once, for all of them (with
//! `countersign_app::mask`, which also counts what it masked: every message says so). Every string
//! that came from an agent or a person (kinds, resources, names, the justification, params,
//! comments, outcomes) is made visible here too (`countersign_core::text::visible`: control and
//! bidirectional characters escaped), so no channel can show text that reorders or forges.
//!
//! Pure: no I/O, no clock. Formatting (escaping, markup) is the channel's; nothing here is
//! channel markup.

use countersign_app::mask::{self, Masker};
use countersign_core::text::visible;
use countersign_core::{Request, State, Timestamp, VoteDecision};

/// Params shown in a message are cut at this many characters (the API has the full view).
pub const PARAMS_MAX: usize = 1_500;
/// User text (the justification) is cut at this many characters.
pub const TEXT_MAX: usize = 1_000;
/// Short values (ids, kinds, resources, rule names) are cut at this many characters.
pub const SHORT_MAX: usize = 200;

/// A review message's content.
pub struct Review {
    /// "Approval needed: db.export", "✅ Approved: db.export", ...
    pub title: String,
    /// The requester (an agent, or a person asking for themselves).
    pub requester: String,
    /// The agent's owner, if any.
    pub owner: Option<String>,
    pub kind: String,
    pub resource: String,
    /// The rule that asked for review (`default` when the policy's default did).
    pub rule: String,
    /// What the rule needs: "1 of sre, 1 of security".
    pub needs: String,
    /// When it expires, while it is pending.
    pub expires_at: Option<Timestamp>,
    pub run: Option<String>,
    /// The justification, masked and cut (or a note that none was given).
    pub why: String,
    /// The params as pretty JSON, masked and cut; `None` when there are none.
    pub params: Option<Params>,
    /// "2 values masked (…)" when anything in the message was masked.
    pub masked: Option<String>,
    pub progress: Progress,
    pub buttons: Buttons,
    /// The request's page for people (the API's `review_url`).
    pub url: String,
    /// A one-line text for notifications and clients that cannot show rich messages.
    pub text: String,
}

pub struct Params {
    /// What the block is: `Params`, or `Plan` (a plan's numbered steps).
    pub label: &'static str,
    /// The params as pretty JSON, or a plan's steps as a numbered list
    /// (`countersign_app::mask::plan::numbered`).
    pub json: String,
    /// True when `json` was cut; the full params are behind [`Review::url`].
    pub truncated: bool,
}

/// Where the request stands, piece by piece, for the channel to join in its own markup.
pub struct Progress {
    pub state: State,
    /// Approvals so far and approvals needed in all.
    pub approvals: usize,
    pub needed: u32,
    /// Pending, but held while its run is paused.
    pub held: bool,
    pub votes: Vec<VoteLine>,
    /// What is still missing, while pending: "1 of security".
    pub still_needs: Option<String>,
    /// How it ended, once closed (the denial reason, the expiry).
    pub outcome: Option<String>,
    pub request_id: String,
    /// How many comments and outcomes were masked (credentials as a whole).
    pub masked: usize,
}

pub struct VoteLine {
    pub approver: String,
    /// `approved` or `denied`.
    pub verb: &'static str,
    /// The channel the vote came through (`slack`, `teams`, `api`, ...).
    pub channel: &'static str,
    pub comment: Option<String>,
}

/// What people can do with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Buttons {
    /// Approve and deny here; the buttons carry the request id and the digest shown, and,
    /// when the rule allows standing approvals, a third approves for a while.
    Decide {
        request_id: String,
        digest: String,
        standing: Option<StandingOffer>,
    },
    /// The rule needs a second factor: only the console (or the CLI with `--otp`) decides.
    StepUp,
    /// The message cannot show the whole action (its params or resource were cut): it is
    /// decided where it can be read in full, the console or the CLI, never from a part.
    ReadInFull,
    /// Closed, or held while its run is paused: nothing to decide now.
    None,
}

/// The standing approval a chat button offers: 30 minutes and 20 uses, or less when the rule
/// allows less.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandingOffer {
    /// A duration as people write it (`30m`).
    pub for_: String,
    pub uses: u32,
}

impl StandingOffer {
    pub fn of(rule: &countersign_core::standing::StandingRule) -> StandingOffer {
        let seconds = rule.max_seconds.min(30 * 60);
        StandingOffer {
            for_: humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string(),
            uses: rule.max_uses.min(20),
        }
    }

    /// The button's title: "Approve for 30m (up to 20)".
    pub fn title(&self) -> String {
        format!("Approve for {} (up to {})", self.for_, self.uses)
    }
}

impl Review {
    pub fn of(req: &Request, public_url: &str, masker: &Masker) -> Review {
        let a = &req.action();
        let title = title(req);
        let requirements = req.decision().requirements.as_ref();
        let needs = visible(&requirements.map(|r| r.summary()).unwrap_or_default()).into_owned();
        let mut masked = 0;
        let why = a
            .justification
            .as_deref()
            .filter(|j| !j.trim().is_empty())
            .map(|j| {
                let shown = masker.text(j);
                masked += usize::from(shown.is_masked());
                cut(&shown.to_string(), TEXT_MAX)
            })
            .unwrap_or_else(|| "(no justification given)".into());
        let plan = req.plan().and_then(|_| {
            let decided = mask::plan::decisions(req);
            mask::plan::numbered(&a.params, &decided, masker)
        });
        let params = match plan {
            Some((steps, n)) => {
                masked += n;
                Some(Params::of("Plan", steps))
            }
            None => a.params.as_object().is_none_or(|o| !o.is_empty()).then(|| {
                let shown = masker.params(&a.params);
                masked += shown.masked;
                Params::of("Params", shown.text())
            }),
        };
        // Padding the params past the cut must not get an approval for what is beyond it.
        let cut_short = params.as_ref().is_some_and(|p| p.truncated)
            || a.resource.chars().count() > SHORT_MAX
            || a.kind.chars().count() > SHORT_MAX;
        let buttons = if req.state() != State::Pending || req.held() {
            Buttons::None
        } else if requirements.is_some_and(|r| r.mfa) {
            Buttons::StepUp
        } else if cut_short {
            Buttons::ReadInFull
        } else {
            Buttons::Decide {
                request_id: req.id().to_owned(),
                digest: req.digest().to_string(),
                standing: requirements
                    .and_then(|r| r.standing.as_ref())
                    .map(StandingOffer::of),
            }
        };
        let (requester, kind, resource) = (
            visible(req.requester().id.as_str()),
            visible(&a.kind),
            visible(&a.resource),
        );
        let text = match req.state() {
            State::Pending => {
                format!("{requester} asks to run {kind} on {resource}: needs {needs}")
            }
            _ => format!("{title} ({kind} on {resource})"),
        };
        let progress = Progress::of(req, masker);
        masked += progress.masked;
        Review {
            title,
            requester: requester.into_owned(),
            owner: req
                .requester()
                .owner
                .as_ref()
                .map(|o| visible(o.as_str()).into_owned()),
            kind: kind.into_owned(),
            resource: resource.into_owned(),
            rule: visible(req.decision().rule.as_deref().unwrap_or("default")).into_owned(),
            needs,
            expires_at: req.expires_at().filter(|_| req.state() == State::Pending),
            run: a.run.as_deref().map(|r| visible(r).into_owned()),
            why,
            params,
            masked: mask::notice(masked),
            progress,
            buttons,
            url: request_url(public_url, req),
            text,
        }
    }
}

impl Params {
    fn of(label: &'static str, text: String) -> Params {
        let truncated = text.chars().count() > PARAMS_MAX;
        Params {
            label,
            json: if truncated {
                cut(&text, PARAMS_MAX)
            } else {
                text
            },
            truncated,
        }
    }
}

fn title(req: &Request) -> String {
    let kind = visible(&req.action().kind);
    match req.state() {
        State::Pending => format!("Approval needed: {kind}"),
        State::Approved => format!("✅ Approved: {kind}"),
        State::Denied => format!("⛔ Denied: {kind}"),
        State::Expired => format!("⌛ Expired: {kind}"),
        State::Cancelled => format!("Cancelled: {kind}"),
        State::Executed => format!("✅ Executed: {kind}"),
        State::Failed => format!("❗ Failed: {kind}"),
    }
}

impl Progress {
    pub fn of(req: &Request, masker: &Masker) -> Progress {
        let mut masked = 0;
        let mut show = |text: &str, max: usize| {
            let shown = masker.text(text);
            masked += usize::from(shown.is_masked());
            cut(&shown.to_string(), max)
        };
        let needed: u32 = req
            .decision()
            .requirements
            .as_ref()
            .map(|r| r.approvers.iter().map(|c| c.count).sum())
            .unwrap_or(0);
        let approvals = req
            .votes()
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .count();
        let votes = req
            .votes()
            .iter()
            .map(|v| VoteLine {
                approver: visible(v.approver.as_str()).into_owned(),
                verb: match v.decision {
                    VoteDecision::Approve => "approved",
                    VoteDecision::Deny => "denied",
                },
                channel: v.channel.as_str(),
                comment: v.comment.as_deref().map(|c| show(c, SHORT_MAX)),
            })
            .collect();
        let pending = req.state() == State::Pending;
        let still_needs = pending
            .then(|| req.remaining())
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.iter()
                    .map(|c| format!("{} of {}", c.count, visible(&c.group)))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        let outcome = (!pending)
            .then(|| req.outcome().map(|o| show(o, 300)))
            .flatten();
        Progress {
            state: req.state(),
            approvals,
            needed,
            held: pending && req.held(),
            votes,
            still_needs,
            outcome,
            request_id: req.id().to_owned(),
            masked,
        }
    }

    /// The headline: "1 of 2 approvals" while pending, else the state (`approved`, ...).
    pub fn headline(&self) -> String {
        match self.state {
            State::Pending => format!("{} of {} approvals", self.approvals, self.needed),
            state => state.as_str().to_string(),
        }
    }

    /// Plain text: "1 of 2 approvals · user:bob@example.com approved via slack · still needs
    /// 1 of security · req_…".
    pub fn plain(&self) -> String {
        let mut parts = vec![self.headline()];
        if self.held {
            parts.push("held while its run is paused".into());
        }
        parts.extend(self.votes.iter().map(VoteLine::plain));
        if let Some(n) = &self.still_needs {
            parts.push(format!("still needs {n}"));
        }
        if let Some(o) = &self.outcome {
            parts.push(o.clone());
        }
        parts.push(self.request_id.clone());
        parts.join(" · ")
    }
}

impl VoteLine {
    pub fn plain(&self) -> String {
        let comment = self
            .comment
            .as_deref()
            .map(|c| format!(": “{c}”"))
            .unwrap_or_default();
        format!(
            "{} {} via {}{comment}",
            self.approver, self.verb, self.channel
        )
    }
}

/// The reminder sent while a request waits: the same words in every channel.
pub fn reminder(req: &Request, masker: &Masker) -> String {
    format!(
        "⏰ Reminder: {} is still waiting for approval of {} on {} ({}).",
        visible(req.requester().id.as_str()),
        visible(&req.action().kind),
        visible(&req.action().resource),
        Progress::of(req, masker).plain()
    )
}

/// The link to the request for people: its console page (the API's `review_url`).
pub fn request_url(public_url: &str, req: &Request) -> String {
    format!("{public_url}/console/requests/{}", req.id())
}

/// `s` cut to `max` characters, with `…` when it was longer.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::plan::{self, Plan, PlanStep, StepInput};
    use countersign_core::request::RunGate;
    use countersign_core::{Action, Clause, Decision, Digest, Effect, Principal, PrincipalId};
    use serde_json::json;

    /// A pending plan of two steps (the second's params hold a secret), as the gateway records
    /// it.
    fn plan_request() -> Request {
        let agent = Principal {
            id: PrincipalId::parse("agent:deploy-bot").unwrap(),
            owner: None,
            groups: vec![],
        };
        let shell = Action {
            kind: plan::PLAN_KIND.into(),
            resource: "plan of 2 steps".into(),
            params: json!({}),
            justification: Some("migrate".into()),
            run: None,
            labels: Default::default(),
        };
        let inputs = [
            StepInput {
                kind: "db.export".into(),
                resource: "postgres://prod/customers".into(),
                params: json!({"rows": 5000}),
            },
            StepInput {
                kind: "http.post".into(),
                resource: "https://api.example/hooks".into(),
                params: json!({"api_key": "sk_live_0123456789abcdef"}),
            },
        ];
        let mut review = plan::union_requirements(std::iter::empty());
        review.approvers = vec![Clause {
            group: "sre".into(),
            count: 1,
        }];
        let reviewed = Decision {
            effect: Effect::Review,
            rule: Some("exports".into()),
            reason: "r".into(),
            requirements: Some(review),
            policy_hash: "sha256:00".into(),
            grant_ttl_seconds: 300,
        };
        let allowed = Decision {
            effect: Effect::Allow,
            rule: Some("hooks".into()),
            requirements: None,
            ..reviewed.clone()
        };
        let actions: Vec<Action> = inputs
            .iter()
            .map(|s| plan::step_action(s, &shell))
            .collect();
        let decisions = [reviewed, allowed];
        let pairs: Vec<_> = actions.iter().zip(&decisions).collect();
        let digests: Vec<Digest> = actions
            .iter()
            .map(|a| Digest::of_action(a, &agent.id))
            .collect();
        let steps = actions
            .iter()
            .zip(&decisions)
            .zip(&digests)
            .map(|((a, d), digest)| PlanStep {
                kind: a.kind.clone(),
                resource: a.resource.clone(),
                digest: *digest,
                effect: d.effect,
                rule: d.rule.clone(),
                key: plan::step_key_for(&agent.id, a, d),
                used_by: None,
            })
            .collect();
        Request::submit_plan(
            "req_plan".into(),
            agent,
            Action {
                params: plan::plan_params(&inputs, &digests),
                ..shell
            },
            plan::decide(&pairs, "sha256:00"),
            Plan { steps },
            RunGate::Open,
            60,
            chrono::Utc::now(),
        )
        .0
    }

    #[test]
    fn a_plan_is_shown_as_a_numbered_list_with_its_secrets_masked() {
        let req = plan_request();
        let review = Review::of(&req, "https://cs.example", &Masker::random());
        let shown = review.params.expect("the steps");
        assert_eq!(shown.label, "Plan");
        assert!(
            shown
                .json
                .starts_with("1. db.export on postgres://prod/customers — review (exports)\n"),
            "{}",
            shown.json
        );
        assert!(
            shown
                .json
                .contains("2. http.post on https://api.example/hooks — allow (hooks)"),
            "{}",
            shown.json
        );
        assert!(!shown.json.contains("sk_live"), "{}", shown.json);
        assert!(review.masked.is_some());
        assert!(matches!(review.buttons, Buttons::Decide { .. }));
        // Both channels show it under its label.
        let slack = crate::slack::render::render(&req, "u", &Masker::random());
        assert!(slack.body.to_string().contains("*Plan*\\n```1. db.export"));
        let teams = crate::teams::card::render(&req, "u", &Masker::random());
        let card = teams.body.to_string();
        assert!(
            card.contains("\"Plan\"") && card.contains("1. db.export on"),
            "{card}"
        );
    }
}
