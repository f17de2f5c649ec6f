//! Refused inbound callbacks (a forged or stale Slack signature, a Teams token that does not
//! verify, a foreign tenant), recorded in bounded form: anyone on the network can send them,
//! so each one must cost a counter increment, not an audit entry and an fsync.
//!
//! Invariant (DESIGN 11): unauthenticated input never causes unbounded writes. Refusals are
//! counted in memory per *source* — (channel, reason), both `&'static str` chosen by our code,
//! never a string from the request — so the map holds at most a few dozen keys whatever
//! arrives. At most one `callback.refused` audit entry is written per source per
//! [`INTERVAL`], carrying how many refusals it stands for, the first and last time, and a few
//! distinct tenants (Teams, when the token verified). The first refusal after a quiet interval
//! is written before the caller is answered (an auditor sees an attack begin at once); the
//! rest are written by [`RefusedCallbacks::run`] when the interval has passed, and when it is
//! stopped at shutdown. Every refusal also counts in the Prometheus
//! counter `countersign_callbacks_refused_total{channel, reason}`.
//!
//! This module never decides whether a callback is refused (`slack::signature`,
//! `teams::auth` do); it only records that it was.

use countersign_app::gateway::Gateway;
use countersign_app::metrics::CallbackLabel;
use countersign_core::{Event, Timestamp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most one audit entry per source per interval.
pub const INTERVAL: Duration = Duration::from_secs(60);
/// How often the background task looks for counts whose interval has passed.
const TICK: Duration = Duration::from_secs(5);
/// Distinct tenants kept per entry, and characters kept of each.
const SAMPLES: usize = 4;
const SAMPLE_CHARS: usize = 64;

/// Where refusals come from: the channel and the machine code of the reason. Both are static
/// strings, so the key space is fixed by the code, not by callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Source {
    channel: &'static str,
    reason: &'static str,
}

/// Refusals from one source not yet written.
#[derive(Debug, Default)]
struct Tally {
    count: u64,
    first: Option<Timestamp>,
    last: Option<Timestamp>,
    tenants: Vec<String>,
    /// When an entry was last written for this source (`None`: never, or not this interval).
    written: Option<Instant>,
}

impl Tally {
    /// Counts one refusal at `now`, keeping its tenant if there is room for a new one.
    fn add(&mut self, now: Timestamp, tenant: Option<&str>) {
        self.count = self.count.saturating_add(1);
        self.first.get_or_insert(now);
        self.last = Some(now);
        if let Some(t) = tenant {
            let t: String = t.chars().take(SAMPLE_CHARS).collect();
            if self.tenants.len() < SAMPLES && !self.tenants.contains(&t) {
                self.tenants.push(t);
            }
        }
    }

    /// Takes what is counted, as the event to write, leaving the tally empty.
    fn take(&mut self, source: Source) -> Option<Event> {
        let (first, last) = (self.first.take()?, self.last.take()?);
        let count = std::mem::take(&mut self.count);
        Some(Event::CallbackRefused {
            channel: source.channel.to_string(),
            code: source.reason.to_string(),
            count,
            first,
            last,
            tenants: std::mem::take(&mut self.tenants),
        })
    }

    fn due(&self, now: Instant) -> bool {
        self.written
            .is_none_or(|at| now.saturating_duration_since(at) >= INTERVAL)
    }
}

/// The in-memory counts of refused callbacks, shared by every channel's inbound endpoint.
pub struct RefusedCallbacks {
    gateway: Arc<Gateway>,
    tallies: Mutex<HashMap<Source, Tally>>,
    stop: tokio::sync::Notify,
}

impl RefusedCallbacks {
    pub fn new(gateway: Arc<Gateway>) -> Self {
        RefusedCallbacks {
            gateway,
            tallies: Mutex::default(),
            stop: tokio::sync::Notify::new(),
        }
    }

    /// Records one refused callback from `channel` for `reason`; `tenant` is the tenant it came
    /// from when the channel vouched for it. Writes an audit entry only when this source has
    /// had none for [`INTERVAL`].
    pub async fn record(&self, channel: &'static str, reason: &'static str, tenant: Option<&str>) {
        self.gateway
            .metrics
            .callbacks_refused
            .get_or_create(&CallbackLabel {
                channel: channel.into(),
                reason: reason.into(),
            })
            .inc();
        let source = Source { channel, reason };
        let now = self.gateway.clock.now();
        let leading = {
            let mut tallies = lock(&self.tallies);
            let tally = tallies.entry(source).or_default();
            tally.add(now, tenant);
            let at = Instant::now();
            if tally.due(at) {
                tally.written = Some(at);
                tally.take(source)
            } else {
                None
            }
        };
        if let Some(event) = leading {
            self.write(event).await;
        }
    }

    /// Writes the counts whose interval has passed, every few seconds, until [`Self::stop`];
    /// then writes whatever is left.
    pub async fn run(self: Arc<Self>) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = tick.tick() => self.flush(false).await,
                () = self.stop.notified() => break,
            }
        }
        self.flush(true).await;
    }

    /// Asks [`Self::run`] to write what is left and end.
    pub fn stop(&self) {
        self.stop.notify_one();
    }

    async fn flush(&self, all: bool) {
        let events: Vec<Event> = {
            let mut tallies = lock(&self.tallies);
            let at = Instant::now();
            let mut sources: Vec<Source> = tallies.keys().copied().collect();
            sources.sort();
            sources
                .into_iter()
                .filter_map(|source| {
                    let tally = tallies.get_mut(&source)?;
                    if tally.count == 0 || !(all || tally.due(at)) {
                        return None;
                    }
                    tally.written = Some(at);
                    tally.take(source)
                })
                .collect()
        };
        for event in events {
            self.write(event).await;
        }
    }

    async fn write(&self, event: Event) {
        let Event::CallbackRefused {
            channel,
            code,
            count,
            ..
        } = &event
        else {
            return;
        };
        tracing::warn!(channel, code, count, "refused inbound channel callbacks");
        let actor = channel.clone();
        if let Err(e) = self.gateway.record(&actor, event, None).await {
            tracing::error!(error = %e, channel = %actor, "could not record refused callbacks");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        chrono::DateTime::from_timestamp(s, 0).unwrap_or_default()
    }

    #[test]
    fn a_tally_stands_for_every_refusal_and_keeps_few_short_tenants() {
        let source = Source {
            channel: "teams",
            reason: "tenant_not_allowed",
        };
        let mut t = Tally::default();
        assert!(
            t.take(source).is_none(),
            "nothing counted, nothing to write"
        );
        for i in 0..1000 {
            t.add(at(i), Some(&format!("{i}{}", "x".repeat(500))));
            t.add(at(i), None);
        }
        let Some(Event::CallbackRefused {
            count,
            first,
            last,
            tenants,
            ..
        }) = t.take(source)
        else {
            panic!("an event");
        };
        assert_eq!((count, first, last), (2000, at(0), at(999)));
        assert_eq!(tenants.len(), SAMPLES);
        assert!(tenants.iter().all(|t| t.chars().count() <= SAMPLE_CHARS));
        assert!(t.take(source).is_none(), "taken once");
    }

    #[test]
    fn a_source_is_due_once_per_interval() {
        let now = Instant::now();
        let mut t = Tally::default();
        assert!(t.due(now), "never written: due at once");
        t.written = Some(now);
        assert!(!t.due(now + Duration::from_secs(59)));
        assert!(t.due(now + INTERVAL));
    }
}
