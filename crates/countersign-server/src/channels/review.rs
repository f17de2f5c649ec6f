//! What a review message says, whatever the channel: the facts of a request as people are
//! shown them (who asks, what exactly, why, the masked params, the rule and what it needs, the
//! expiry, the progress, whether it can still be decided here), built from the request alone.
//! Every channel formats the same [`Review`] (Slack as Block Kit, Teams as an Adaptive Card),
//! so they never disagree, and secrets are masked here, once, for all of them.
//!
//! Pure: no I/O, no clock. Formatting (escaping, markup) is the channel's; nothing here is
//! channel markup.

use crate::channels::mask;
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
    pub progress: Progress,
    pub buttons: Buttons,
    /// The request's page for people (the API's `review_url`).
    pub url: String,
    /// A one-line text for notifications and clients that cannot show rich messages.
    pub text: String,
}

pub struct Params {
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
    /// Approve and deny here; the buttons carry the request id and the digest shown.
    Decide { request_id: String, digest: String },
    /// The rule needs a second factor: only the console (or the CLI with `--otp`) decides.
    StepUp,
    /// Closed, or held while its run is paused: nothing to decide now.
    None,
}

impl Review {
    pub fn of(req: &Request, public_url: &str) -> Review {
        let a = &req.action;
        let title = title(req);
        let requirements = req.decision.requirements.as_ref();
        let needs = requirements.map(|r| r.summary()).unwrap_or_default();
        let why = a
            .justification
            .as_deref()
            .filter(|j| !j.trim().is_empty())
            .map(|j| cut(mask::mask_text(j), TEXT_MAX))
            .unwrap_or_else(|| "(no justification given)".into());
        let params = a.params.as_object().is_none_or(|o| !o.is_empty()).then(|| {
            let pretty = serde_json::to_string_pretty(&mask::mask(&a.params)).unwrap_or_default();
            let truncated = pretty.chars().count() > PARAMS_MAX;
            Params {
                json: if truncated {
                    cut(&pretty, PARAMS_MAX)
                } else {
                    pretty
                },
                truncated,
            }
        });
        let buttons = if req.state != State::Pending || req.held {
            Buttons::None
        } else if requirements.is_some_and(|r| r.mfa) {
            Buttons::StepUp
        } else {
            Buttons::Decide {
                request_id: req.id.clone(),
                digest: req.digest.to_string(),
            }
        };
        let text = match req.state {
            State::Pending => format!(
                "{} asks to run {} on {}: needs {}",
                req.requester.id, a.kind, a.resource, needs
            ),
            _ => format!("{title} ({} on {})", a.kind, a.resource),
        };
        Review {
            title,
            requester: req.requester.id.to_string(),
            owner: req.requester.owner.as_ref().map(|o| o.to_string()),
            kind: a.kind.clone(),
            resource: a.resource.clone(),
            rule: req
                .decision
                .rule
                .clone()
                .unwrap_or_else(|| "default".into()),
            needs,
            expires_at: req.expires_at.filter(|_| req.state == State::Pending),
            run: a.run.clone(),
            why,
            params,
            progress: Progress::of(req),
            buttons,
            url: request_url(public_url, req),
            text,
        }
    }
}

fn title(req: &Request) -> String {
    let kind = &req.action.kind;
    match req.state {
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
    pub fn of(req: &Request) -> Progress {
        let needed: u32 = req
            .decision
            .requirements
            .as_ref()
            .map(|r| r.approvers.iter().map(|c| c.count).sum())
            .unwrap_or(0);
        let approvals = req
            .votes
            .iter()
            .filter(|v| v.decision == VoteDecision::Approve)
            .count();
        let votes = req
            .votes
            .iter()
            .map(|v| VoteLine {
                approver: v.approver.to_string(),
                verb: match v.decision {
                    VoteDecision::Approve => "approved",
                    VoteDecision::Deny => "denied",
                },
                channel: v.channel.as_str(),
                comment: v.comment.as_deref().map(|c| cut(c, SHORT_MAX)),
            })
            .collect();
        let pending = req.state == State::Pending;
        let still_needs = pending
            .then(|| req.remaining())
            .filter(|r| !r.is_empty())
            .map(|r| {
                r.iter()
                    .map(|c| format!("{} of {}", c.count, c.group))
                    .collect::<Vec<_>>()
                    .join(", ")
            });
        Progress {
            state: req.state,
            approvals,
            needed,
            held: pending && req.held,
            votes,
            still_needs,
            outcome: (!pending)
                .then(|| req.outcome.as_deref().map(|o| cut(o, 300)))
                .flatten(),
            request_id: req.id.clone(),
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
pub fn reminder(req: &Request) -> String {
    format!(
        "⏰ Reminder: {} is still waiting for approval of {} on {} ({}).",
        req.requester.id,
        req.action.kind,
        req.action.resource,
        Progress::of(req).plain()
    )
}

/// The link to the request for people: its console page (the API's `review_url`).
pub fn request_url(public_url: &str, req: &Request) -> String {
    format!("{public_url}/console/requests/{}", req.id)
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
