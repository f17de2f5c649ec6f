//! What the upstreams say on their own, routed to the agents: progress of a forwarded call goes
//! to the agent that made it (under the agent's own progress token), and "my list changed" goes
//! to every connected agent session.

use rmcp::model::{
    ClientCapabilities, ClientConfig, Implementation, NumberOrString, ProgressNotificationParam,
    ProgressToken, ResourceUpdatedNotificationParam,
};
use rmcp::service::NotificationContext;
use rmcp::{ClientHandler, Peer, RoleClient, RoleServer};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// A change an upstream announced, for the agent sessions to pass on.
#[derive(Debug, Clone)]
pub enum Change {
    Tools,
    Resources,
    Prompts,
    ResourceUpdated(ResourceUpdatedNotificationParam),
}

pub struct Hub {
    progress: Mutex<HashMap<String, (Peer<RoleServer>, ProgressToken)>>,
    tools_changed: Mutex<HashSet<String>>,
    changes: broadcast::Sender<Change>,
    next: AtomicU64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            progress: Mutex::new(HashMap::new()),
            tools_changed: Mutex::new(HashSet::new()),
            changes: broadcast::channel(64).0,
            next: AtomicU64::new(1),
        }
    }
}

/// While alive, progress an upstream reports under `token` reaches the agent. Dropping it ends
/// the route.
pub struct ProgressRoute {
    hub: Arc<Hub>,
    pub token: ProgressToken,
}

impl Drop for ProgressRoute {
    fn drop(&mut self) {
        if let NumberOrString::String(key) = &self.token.0 {
            lock(&self.hub.progress).remove(key.as_ref());
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A fresh upstream progress token that leads back to `agent`'s `token`.
    pub fn route_progress(
        self: &Arc<Self>,
        agent: Peer<RoleServer>,
        token: ProgressToken,
    ) -> ProgressRoute {
        let key = format!("countersign-{}", self.next.fetch_add(1, Ordering::Relaxed));
        lock(&self.progress).insert(key.clone(), (agent, token));
        ProgressRoute {
            hub: self.clone(),
            token: ProgressToken(NumberOrString::String(key.into())),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Whether `server` announced a new tool list since the last call (and forgets it).
    pub fn take_tools_changed(&self, server: &str) -> bool {
        lock(&self.tools_changed).remove(server)
    }

    fn announce(&self, change: Change) {
        let _ = self.changes.send(change);
    }
}

/// The gateway's client side of one upstream connection.
pub struct Listener {
    upstream: String,
    hub: Arc<Hub>,
}

impl Listener {
    pub fn new(upstream: String, hub: Arc<Hub>) -> Self {
        Listener { upstream, hub }
    }
}

impl ClientHandler for Listener {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let NumberOrString::String(key) = &params.progress_token.0 else {
            return;
        };
        let route = lock(&self.hub.progress).get(key.as_ref()).cloned();
        if let Some((agent, token)) = route {
            let mut params = params;
            params.progress_token = token;
            let _ = agent.notify_progress(params).await;
        }
    }

    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        self.hub.announce(Change::ResourceUpdated(params));
    }

    async fn on_resource_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.hub.announce(Change::Resources);
    }

    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        lock(&self.hub.tools_changed).insert(self.upstream.clone());
        self.hub.announce(Change::Tools);
    }

    async fn on_prompt_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.hub.announce(Change::Prompts);
    }

    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("countersign-gateway", env!("CARGO_PKG_VERSION")),
        )
    }
}
