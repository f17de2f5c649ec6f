//! Suite checks for MCP tasks: a task is begun once per request, seen only by its owner,
//! carried out under one lease at a time, ended once (the first ending wins, also between concurrent enders), kept across a restart,
//! and forgotten a day after it ended.

use super::{Backend, at, principal_id};
use crate::{StoredTask, TASK_RETENTION_MS, TaskEnd};

fn task(id: &str, owner: &str, from: i64) -> StoredTask {
    StoredTask {
        request_id: id.into(),
        owner: principal_id(owner),
        carrier: "forward".into(),
        parked: Some(format!("sha256:{}", "ab".repeat(32))),
        created_at: at(from),
        ended: None,
    }
}

fn end(status: &str, result: &str, when: i64) -> TaskEnd {
    TaskEnd {
        status: status.into(),
        result: result.into(),
        at: at(when),
    }
}

pub async fn tasks_are_begun_and_ended_once_and_outlive_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    let bot = principal_id("agent:deploy-bot");
    let other = principal_id("agent:other");
    let first = task("req_t1", "agent:deploy-bot", 0);
    assert!(store.task_start(&first).await.unwrap());
    // The same call's task begun again (a retry) changes nothing.
    let mut again = task("req_t1", "agent:deploy-bot", 5);
    again.parked = None;
    assert!(!store.task_start(&again).await.unwrap());
    assert_eq!(
        store.task_get("req_t1", &bot).await.unwrap(),
        Some(first.clone())
    );
    // Another principal's task does not exist for them.
    assert_eq!(store.task_get("req_t1", &other).await.unwrap(), None);
    assert_eq!(store.task_get("req_nope", &bot).await.unwrap(), None);

    // The lease on carrying it out: one taker at a time, free again when it ends.
    assert!(store.task_claim("req_t1", at(1), at(61)).await.unwrap());
    assert!(
        !store.task_claim("req_t1", at(2), at(62)).await.unwrap(),
        "held"
    );
    assert!(
        store.task_claim("req_t1", at(61), at(121)).await.unwrap(),
        "lapsed"
    );
    assert!(!store.task_claim("req_nope", at(1), at(61)).await.unwrap());

    // Concurrent endings: exactly one wins, and it is the one kept.
    let endings = futures::future::join_all((0..8).map(|i| {
        let store = &store;
        async move {
            let e = end("completed", &format!("{{\"n\":{i}}}"), 10);
            (store.task_end("req_t1", &e).await.unwrap(), e)
        }
    }))
    .await;
    let won: Vec<_> = endings.iter().filter(|(w, _)| *w).collect();
    assert_eq!(won.len(), 1, "ended once");
    assert!(
        !store
            .task_end("req_t1", &end("cancelled", "{}", 11))
            .await
            .unwrap()
    );
    let ended = store.task_get("req_t1", &bot).await.unwrap().unwrap();
    assert_eq!(ended.ended.as_ref(), Some(&won[0].1));
    assert!(
        !store.task_claim("req_t1", at(500), at(560)).await.unwrap(),
        "an ended task is not carried out"
    );
    assert!(
        !store
            .task_end("req_nope", &end("failed", "{}", 12))
            .await
            .unwrap()
    );

    // Kept across a restart.
    drop(store);
    let store = b.open().await;
    assert_eq!(store.task_get("req_t1", &bot).await.unwrap(), Some(ended));

    // A day after it ended, the next task begun forgets it; an unended one stays.
    store
        .task_start(&task("req_t2", "agent:deploy-bot", 20))
        .await
        .unwrap();
    let later = task(
        "req_t3",
        "agent:deploy-bot",
        10 + TASK_RETENTION_MS / 1000 + 1,
    );
    store.task_start(&later).await.unwrap();
    assert_eq!(store.task_get("req_t1", &bot).await.unwrap(), None);
    assert!(store.task_get("req_t2", &bot).await.unwrap().is_some());
}

pub async fn a_lease_has_one_holder_at_a_time(b: &dyn Backend) {
    let store = b.open().await;
    assert!(store.lease("webhook:x", "r1", at(0), at(30)).await.unwrap());
    assert!(
        !store.lease("webhook:x", "r2", at(1), at(31)).await.unwrap(),
        "held"
    );
    assert!(
        store
            .lease("webhook:x", "r1", at(10), at(40))
            .await
            .unwrap(),
        "renewed"
    );
    assert!(
        !store
            .lease("webhook:x", "r2", at(39), at(69))
            .await
            .unwrap(),
        "renewal counts"
    );
    assert!(
        store
            .lease("webhook:y", "r2", at(39), at(69))
            .await
            .unwrap(),
        "per name"
    );
    assert!(
        store
            .lease("webhook:x", "r2", at(40), at(70))
            .await
            .unwrap(),
        "lapsed"
    );
    assert!(
        !store
            .lease("webhook:x", "r1", at(41), at(71))
            .await
            .unwrap(),
        "lost"
    );
    // Many at once: one holder.
    let takers = futures::future::join_all((0..8).map(|i| {
        let store = &store;
        async move {
            store
                .lease("race", &format!("r{i}"), at(100), at(130))
                .await
                .unwrap()
        }
    }))
    .await;
    assert_eq!(takers.iter().filter(|t| **t).count(), 1);
}

pub async fn a_replay_key_is_seen_first_once_within_its_window(b: &dyn Backend) {
    let store = b.open().await;
    assert!(store.first_sight("slack:k1", at(0), at(600)).await.unwrap());
    assert!(
        !store.first_sight("slack:k1", at(1), at(601)).await.unwrap(),
        "replayed"
    );
    assert!(
        store.first_sight("teams:k1", at(1), at(601)).await.unwrap(),
        "per key"
    );
    // Many at once (a retry reaching two replicas): one first sight.
    let sights = futures::future::join_all((0..8).map(|_| {
        let store = &store;
        async move { store.first_sight("slack:k2", at(2), at(602)).await.unwrap() }
    }))
    .await;
    assert_eq!(sights.iter().filter(|s| **s).count(), 1);
    // Kept across a restart; seen first again once the window ended.
    drop(store);
    let store = b.open().await;
    assert!(
        !store
            .first_sight("slack:k1", at(599), at(1199))
            .await
            .unwrap()
    );
    assert!(
        store
            .first_sight("slack:k1", at(600), at(1200))
            .await
            .unwrap()
    );
}
