//! Waking the agents that wait for a decision. Each waiting long-poll or event stream watches
//! its request id; every committed change notifies the watchers of the requests it touched.
//! Changes committed by another replica wake them too, as the store hears of them
//! (`Gateway::follow_other_replicas`); watchers also re-read the store on a slow tick, as a
//! backstop.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Default)]
pub struct Waiters {
    map: Mutex<HashMap<String, Arc<Notify>>>,
}

/// A registration for one request id; dropping it unregisters when no one else watches.
pub struct Watch<'a> {
    waiters: &'a Waiters,
    id: String,
    notify: Arc<Notify>,
}

impl Watch<'_> {
    /// A future that completes at the next notification. Create it *before* reading the state
    /// you are about to wait on: from creation on it is registered, so no change is missed.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        let mut map = self.waiters.map.lock().unwrap_or_else(|e| e.into_inner());
        // The map holds one reference and this watch another: if that is all, nobody else
        // is waiting on this id.
        if Arc::strong_count(&self.notify) <= 2 {
            map.remove(&self.id);
        }
    }
}

impl Waiters {
    pub fn watch(&self, id: &str) -> Watch<'_> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let notify = map.entry(id.to_string()).or_default().clone();
        Watch {
            waiters: self,
            id: id.to_string(),
            notify,
        }
    }

    pub fn notify(&self, id: &str) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get(id) {
            n.notify_waiters();
        }
    }

    /// Wakes every watcher (anything may have changed).
    pub fn notify_all(&self) {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        for n in map.values() {
            n.notify_waiters();
        }
    }

    /// How many request ids are being watched (for metrics).
    pub fn watched(&self) -> usize {
        self.map.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_notification_wakes_a_registered_watcher_and_cleans_up() {
        let waiters = Arc::new(Waiters::default());
        let w2 = waiters.clone();
        let task = tokio::spawn(async move {
            let watch = w2.watch("req_1");
            let fut = watch.notified();
            tokio::time::timeout(Duration::from_secs(5), fut)
                .await
                .is_ok()
        });
        while waiters.watched() == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waiters.notify("req_1");
        assert!(task.await.unwrap());
        assert_eq!(waiters.watched(), 0);
    }
}
