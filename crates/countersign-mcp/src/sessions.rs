//! How long an agent's MCP session lives, and whether the agent is still there to receive an
//! answer.
//!
//! - **Held calls outlive idle timeouts** (invariant: *a held call is never cut by an idle
//!   timeout*). A session ends after `mcp.session_idle_timeout` (default 5 min) without a
//!   request from its agent, but never while one of its calls is held: a held call lasts as
//!   long as its rule allows. rmcp's own timer counts only messages, so a call held without
//!   progress notifications looked idle and was cut at 300 s; it is switched off, and
//!   [`Liveness`] keeps the sessions' clocks instead.
//! - **Nothing is executed for an agent that has gone** (invariant: *no forwarding without a
//!   caller*). Every `/mcp` request carries a [`ClientGone`] token that fires when its response
//!   stream is dropped before it ended: the agent timed out, crashed or disconnected. A held
//!   call watches it, and is cancelled (recorded as `abandoned`, with the reason) instead of
//!   being forwarded after a later approval. Clients cannot resume a request's stream (no
//!   priming events are sent), so a closed stream is final.

use super::Mcp;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt as _;
use rmcp::transport::streamable_http_server::session::SessionManager as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};

/// The header naming a Streamable HTTP session.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// Fires when the agent can no longer receive the answer to the request it rides on.
#[derive(Clone, Debug, Default)]
pub struct ClientGone(pub CancellationToken);

/// The sessions' last activity and their held calls.
pub struct Liveness {
    idle: Duration,
    sessions: Mutex<HashMap<String, Activity>>,
}

#[derive(Debug, Clone, Copy)]
struct Activity {
    last: Instant,
    held: usize,
}

/// Marks a session busy while a call is held; dropping it counts as activity.
pub struct HeldGuard {
    liveness: Arc<Liveness>,
    session: String,
}

impl Drop for HeldGuard {
    fn drop(&mut self) {
        let mut sessions = self.liveness.lock();
        if let Some(a) = sessions.get_mut(&self.session) {
            a.held = a.held.saturating_sub(1);
            a.last = Instant::now();
        }
    }
}

impl Liveness {
    pub fn new(idle: Duration) -> Arc<Self> {
        Arc::new(Liveness {
            idle,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Activity>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The agent did something in `session` (or the session was just created).
    pub fn touch(&self, session: &str) {
        let now = Instant::now();
        let mut sessions = self.lock();
        match sessions.get_mut(session) {
            Some(a) => a.last = now,
            None => {
                sessions.insert(session.to_owned(), Activity { last: now, held: 0 });
            }
        }
    }

    /// The session was closed.
    pub fn forget(&self, session: &str) {
        self.lock().remove(session);
    }

    /// Keeps `session` alive until the guard is dropped.
    pub fn hold(self: &Arc<Self>, session: &str) -> HeldGuard {
        let now = Instant::now();
        self.lock()
            .entry(session.to_owned())
            .and_modify(|a| {
                a.held += 1;
                a.last = now;
            })
            .or_insert(Activity { last: now, held: 1 });
        HeldGuard {
            liveness: self.clone(),
            session: session.to_owned(),
        }
    }

    /// Sessions idle for longer than the timeout at `now`, with nothing held; forgotten here.
    pub fn take_idle(&self, now: Instant) -> Vec<String> {
        let mut sessions = self.lock();
        let idle: Vec<String> = sessions
            .iter()
            .filter(|(_, a)| a.held == 0 && now.saturating_duration_since(a.last) > self.idle)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle {
            sessions.remove(id);
        }
        idle
    }

    /// Closes idle sessions in the background, checking a few times per timeout.
    pub fn spawn_reaper(self: &Arc<Self>, manager: Arc<LocalSessionManager>) {
        let liveness = Arc::downgrade(self);
        let every = (self.idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(liveness) = liveness.upgrade() else {
                    break;
                };
                for id in liveness.take_idle(Instant::now()) {
                    tracing::debug!(session = %id, "MCP session idle; closed");
                    if let Err(e) = manager.close_session(&Arc::from(id.as_str())).await {
                        tracing::debug!(session = %id, error = %e, "closing an idle MCP session");
                    }
                }
            }
        });
    }
}

/// The `/mcp` middleware: counts the agent's requests as its session's activity, and gives
/// every request a [`ClientGone`] that fires if its response stream is dropped unfinished.
pub async fn track(State(mcp): State<Arc<Mcp>>, mut request: Request, next: Next) -> Response {
    let session = header_value(request.headers(), SESSION_HEADER);
    if let Some(id) = &session {
        mcp.liveness.touch(id);
    }
    let deleting = request.method() == Method::DELETE;
    let gone = ClientGone::default();
    request.extensions_mut().insert(gone.clone());
    // Fires if this future is dropped before it answers (the agent left before any byte).
    let guard = gone.0.clone().drop_guard();
    let response = next.run(request).await;
    match (&session, header_value(response.headers(), SESSION_HEADER)) {
        (Some(id), _) if deleting && response.status().is_success() => mcp.liveness.forget(id),
        (None, Some(created)) => mcp.liveness.touch(&created),
        _ => {}
    }
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !streaming {
        // The whole answer is in hand: nothing more can be lost.
        guard.disarm();
        return response;
    }
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, watched(body, guard))
}

/// `body`, disarming `guard` when it ends; dropped before its end, the guard fires.
fn watched(body: Body, guard: DropGuard) -> Body {
    let stream = futures::stream::unfold(
        (body.into_data_stream(), Some(guard)),
        |(mut inner, mut guard)| async move {
            match inner.next().await {
                Some(item) => Some((item, (inner, guard))),
                None => {
                    if let Some(g) = guard.take() {
                        g.disarm();
                    }
                    None
                }
            }
        },
    );
    Body::from_stream(stream)
}

fn header_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_call_is_never_cut_by_an_idle_timeout() {
        let liveness = Liveness::new(Duration::from_secs(10));
        let start = Instant::now();
        liveness.touch("quiet");
        liveness.touch("busy");
        let held = liveness.hold("busy");
        let later = start + Duration::from_secs(60);
        assert_eq!(liveness.take_idle(later), vec!["quiet".to_string()]);
        // Still held an hour later: not idle, whatever the timeout.
        assert!(
            liveness
                .take_idle(later + Duration::from_secs(3600))
                .is_empty()
        );
        // Released: its idle time counts from the release.
        drop(held);
        assert!(liveness.take_idle(Instant::now()).is_empty());
        assert_eq!(
            liveness.take_idle(Instant::now() + Duration::from_secs(11)),
            vec!["busy".to_string()]
        );
        // Two calls held: busy until both end.
        let (a, b) = (liveness.hold("two"), liveness.hold("two"));
        drop(a);
        assert!(
            liveness
                .take_idle(Instant::now() + Duration::from_secs(60))
                .is_empty()
        );
        drop(b);
        assert_eq!(
            liveness.take_idle(Instant::now() + Duration::from_secs(60)),
            vec!["two".to_string()]
        );
    }

    #[tokio::test]
    async fn a_stream_dropped_unfinished_means_the_client_is_gone() {
        // Read to its end: the client got everything.
        let finished = ClientGone::default();
        let body = watched(Body::from("data: x\n\n"), finished.0.clone().drop_guard());
        axum::body::to_bytes(body, usize::MAX).await.expect("body");
        assert!(!finished.0.is_cancelled());
        // Dropped half way (the connection closed): gone.
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<axum::body::Bytes, std::io::Error>>(1);
        let dropped = ClientGone::default();
        let frames = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|frame| (frame, rx))
        });
        let body = watched(Body::from_stream(frames), dropped.0.clone().drop_guard());
        tx.send(Ok(axum::body::Bytes::from_static(b": ping\n\n")))
            .await
            .expect("sent");
        let mut stream = body.into_data_stream();
        assert!(stream.next().await.is_some());
        assert!(!dropped.0.is_cancelled());
        drop(stream);
        assert!(dropped.0.is_cancelled());
    }
}
