//! MCP tasks in the store: the gateway's side of `countersign_store::StoredTask`. A task is
//! recorded for its requester only, ended once, and read back by its owner alone; what a task
//! means (its states, its result) is the MCP gateway's business.

use super::{Gateway, GatewayError};
use countersign_core::{Digest, Principal, Request};
use countersign_store::{StoredTask, TaskEnd};

impl Gateway {
    /// Records the task `who` was answered with for `req` (which `who` requested), unless one
    /// is recorded already, and returns the task as stored.
    pub async fn task_start(
        &self,
        who: &Principal,
        req: &Request,
        carrier: &str,
        parked: Option<&Digest>,
    ) -> Result<StoredTask, GatewayError> {
        if req.requester().id != who.id {
            return Err(GatewayError::Forbidden(
                "not_requester",
                "a task is begun only by whoever made its request".into(),
            ));
        }
        let task = StoredTask {
            request_id: req.id().to_owned(),
            owner: who.id.clone(),
            carrier: carrier.to_owned(),
            parked: parked.map(|d| d.to_string()),
            created_at: self.clock.now(),
            ended: None,
        };
        if self.store.task_start(&task).await? {
            return Ok(task);
        }
        self.task(who, req.id())
            .await?
            .ok_or(GatewayError::NotFound("task"))
    }

    /// The task of request `id`, if `who` began it.
    pub async fn task(
        &self,
        who: &Principal,
        id: &str,
    ) -> Result<Option<StoredTask>, GatewayError> {
        Ok(self.store.task_get(id, &who.id).await?)
    }

    /// Takes the lease on carrying out task `id` for `lease`, if it has not ended and nobody
    /// else holds it. True when taken.
    pub async fn task_claim(
        &self,
        id: &str,
        lease: std::time::Duration,
    ) -> Result<bool, GatewayError> {
        let now = self.clock.now();
        // At most a day: a lease outlives the call it covers, not the task.
        let day = chrono::Duration::days(1);
        let lease = chrono::Duration::from_std(lease).unwrap_or(day).min(day);
        Ok(self.store.task_claim(id, now, now + lease).await?)
    }

    /// Ends task `id` with `status` and `result` (JSON), unless it has ended. True when this
    /// call ended it.
    pub async fn task_end(
        &self,
        id: &str,
        status: &str,
        result: &serde_json::Value,
    ) -> Result<bool, GatewayError> {
        let end = TaskEnd {
            status: status.to_owned(),
            result: result.to_string(),
            at: self.clock.now(),
        };
        Ok(self.store.task_end(id, &end).await?)
    }
}
