//! Prometheus metrics served at `/metrics`: decisions, votes, refusals, wait times, pending
//! requests, policy reloads. Labels never carry secrets or free text from requests.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EffectLabel {
    pub effect: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StateLabel {
    pub state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VoteLabel {
    pub decision: String,
    pub channel: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

/// How an execution ended (`succeeded`, `failed`, `unknown`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub status: String,
}

/// The rule that sent a request to review, and the channel a vote came through.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleChannelLabel {
    pub rule: String,
    pub channel: String,
}

/// A channel a vote came through.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabel {
    pub channel: String,
}

/// Approvals cast sooner than this after the request was created count as fast (a sign of
/// approving without reading).
pub const FAST_APPROVAL_SECONDS: f64 = 10.0;

/// A refused inbound callback's channel and reason (both fixed strings from our code).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallbackLabel {
    pub channel: String,
    pub reason: String,
}

pub struct Metrics {
    registry: Registry,
    pub decisions: Family<EffectLabel, Counter>,
    pub closed: Family<StateLabel, Counter>,
    pub votes: Family<VoteLabel, Counter>,
    pub refusals: Family<CodeLabel, Counter>,
    pub decision_wait_seconds: Histogram,
    pub pending: Gauge,
    pub waiting_clients: Gauge,
    pub policy_reloads: Family<StateLabel, Counter>,
    pub callbacks_refused: Family<CallbackLabel, Counter>,
    pub executions: Family<StatusLabel, Counter>,
    pub time_to_vote: Family<RuleChannelLabel, Histogram, fn() -> Histogram>,
    pub fast_approvals: Family<ChannelLabel, Counter>,
    /// Changes other replicas committed that this one heard of (`Store::changes`).
    pub replica_changes: Counter,
    /// Times this replica woke every waiter because it may have missed other replicas'
    /// changes (it started listening again, or fell behind).
    pub replica_resyncs: Counter,
}

fn vote_histogram() -> Histogram {
    Histogram::new([2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0])
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("countersign");
        let decisions = Family::<EffectLabel, Counter>::default();
        let closed = Family::<StateLabel, Counter>::default();
        let votes = Family::<VoteLabel, Counter>::default();
        let refusals = Family::<CodeLabel, Counter>::default();
        let decision_wait_seconds =
            Histogram::new([1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0]);
        let pending = Gauge::default();
        let waiting_clients = Gauge::default();
        let policy_reloads = Family::<StateLabel, Counter>::default();
        let callbacks_refused = Family::<CallbackLabel, Counter>::default();
        let executions = Family::<StatusLabel, Counter>::default();
        let time_to_vote = Family::new_with_constructor(vote_histogram as fn() -> Histogram);
        let fast_approvals = Family::<ChannelLabel, Counter>::default();
        let replica_changes = Counter::default();
        let replica_resyncs = Counter::default();
        registry.register(
            "policy_decisions",
            "Policy decisions by effect",
            decisions.clone(),
        );
        registry.register(
            "requests_closed",
            "Requests that reached a final state",
            closed.clone(),
        );
        registry.register(
            "votes",
            "Votes accepted, by decision and channel",
            votes.clone(),
        );
        registry.register(
            "refusals",
            "Refused operations, by machine code",
            refusals.clone(),
        );
        registry.register(
            "review_wait_seconds",
            "Time from submission to decision of reviewed requests",
            decision_wait_seconds.clone(),
        );
        registry.register(
            "pending_requests",
            "Requests waiting for a decision",
            pending.clone(),
        );
        registry.register(
            "waiting_clients",
            "Requests being waited on",
            waiting_clients.clone(),
        );
        registry.register(
            "policy_reloads",
            "Policy reload attempts by outcome",
            policy_reloads.clone(),
        );
        registry.register(
            "callbacks_refused",
            "Inbound channel callbacks refused (bad signature or token, stale, foreign tenant), by channel and reason",
            callbacks_refused.clone(),
        );
        registry.register(
            "executions",
            "Approved actions carried out (by an executor, or reported by their requester), by outcome",
            executions.clone(),
        );
        registry.register(
            "time_to_vote_seconds",
            "Time from a request's creation to each vote on it, by the rule that asked and the channel",
            time_to_vote.clone(),
        );
        registry.register(
            "fast_approvals",
            "Approvals cast less than 10 s after the request was created, by channel",
            fast_approvals.clone(),
        );
        registry.register(
            "replica_changes",
            "Changes committed by other replicas on the same database that this one heard of",
            replica_changes.clone(),
        );
        registry.register(
            "replica_resyncs",
            "Times every waiter re-read its request because other replicas' changes may have been missed (listening started again, or fell behind)",
            replica_resyncs.clone(),
        );
        Self {
            registry,
            decisions,
            closed,
            votes,
            refusals,
            decision_wait_seconds,
            pending,
            waiting_clients,
            policy_reloads,
            callbacks_refused,
            executions,
            time_to_vote,
            fast_approvals,
            replica_changes,
            replica_resyncs,
        }
    }
}

impl Metrics {
    pub fn refusal(&self, code: &str) {
        self.refusals
            .get_or_create(&CodeLabel {
                code: code.to_string(),
            })
            .inc();
    }

    /// Counts a vote cast `seconds` after its request was created.
    pub fn vote_timed(&self, rule: &str, channel: &str, approve: bool, seconds: f64) {
        self.time_to_vote
            .get_or_create(&RuleChannelLabel {
                rule: rule.to_owned(),
                channel: channel.to_owned(),
            })
            .observe(seconds);
        if approve && seconds < FAST_APPROVAL_SECONDS {
            self.fast_approvals
                .get_or_create(&ChannelLabel {
                    channel: channel.to_owned(),
                })
                .inc();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
