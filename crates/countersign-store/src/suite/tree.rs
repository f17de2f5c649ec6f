//! Suite checks for the Merkle tree the store keeps over the audit log (issue 5): it matches a
//! tree recomputed from the entries alone, its proofs verify, it is kept across restarts and
//! built for logs written before it existed; and what hangs off it: checkpoints, each
//! request's entry list, consumer cursors, the watch of committed entries.

use super::{Backend, agent, allow, at, bob, review, submit, vote};
use crate::{Store, StoreError, StoredCheckpoint};
use countersign_audit::merkle::{self, Frontier, Hash};
use countersign_core::{Event, VoteDecision};
use std::sync::Arc;

/// The leaves of the whole log, read back as entries.
async fn leaves(store: &dyn Store) -> Vec<Hash> {
    store
        .audit_entries(0, u32::MAX)
        .await
        .expect("entries")
        .iter()
        .map(|e| e.leaf)
        .collect()
}

fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push(*l, |_| {});
    }
    f.root()
}

/// Some history: reviews, votes, allowed requests, events.
async fn some_history(store: &dyn Store, tag: &str, t: i64) {
    for i in 0..3 {
        let id = format!("req_{tag}_{i}");
        let pending = submit(store, &id, None, review(1, false), at(t + i)).await;
        let change = vote(bob(), pending.digest(), VoteDecision::Approve);
        store
            .update_request(&id, "user:bob@example.com", at(t + i), change)
            .await
            .unwrap()
            .unwrap();
        submit(store, &format!("{id}_a"), None, allow(), at(t + i)).await;
    }
    let loaded = Event::PolicyLoaded {
        hash: super::POLICY_HASH.into(),
    };
    store
        .append_event("system", loaded, None, at(t + 9))
        .await
        .unwrap();
}

async fn check_tree(store: &dyn Store) {
    let leaves = leaves(store).await;
    let n = leaves.len() as u64;
    assert_eq!(store.audit_size().await.unwrap(), n);
    let root = store.audit_root(n).await.unwrap();
    assert_eq!(root, root_of(&leaves));
    for (i, leaf) in leaves.iter().enumerate() {
        let proof = store.inclusion_proof(i as u64, n).await.unwrap();
        merkle::verify_inclusion(i as u64, n, leaf, &proof, &root)
            .unwrap_or_else(|e| panic!("inclusion of {i} in {n}: {e}"));
    }
    for m in 1..=n {
        let old = root_of(&leaves[..m as usize]);
        assert_eq!(store.audit_root(m).await.unwrap(), old);
        let proof = store.consistency_proof(m, n).await.unwrap();
        merkle::verify_consistency(m, n, &proof, &old, &root)
            .unwrap_or_else(|e| panic!("consistency {m} -> {n}: {e}"));
    }
}

pub async fn the_tree_matches_the_log_and_every_proof_verifies(b: &dyn Backend) {
    let store = b.open().await;
    assert_eq!(store.audit_root(0).await.unwrap(), merkle::EMPTY_ROOT);
    some_history(&*store, "a", 0).await;
    check_tree(&*store).await;
    // Many writers at once: group commits grow the tree by many leaves at a time.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                submit(&*store, &format!("req_c{i}"), None, allow(), at(20)).await;
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    check_tree(&*store).await;
}

pub async fn the_tree_goes_on_after_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    some_history(&*store, "a", 0).await;
    drop(store);
    let store = b.open().await;
    some_history(&*store, "b", 30).await;
    check_tree(&*store).await;
}

pub async fn a_log_without_tree_nodes_gets_them_when_opened(b: &dyn Backend) {
    let store = b.open().await;
    some_history(&*store, "a", 0).await;
    let before = store
        .audit_root(store.audit_size().await.unwrap())
        .await
        .unwrap();
    drop(store);
    b.forget_tree().await;
    let store = b.open().await;
    let n = store.audit_size().await.unwrap();
    assert_eq!(store.audit_root(n).await.unwrap(), before);
    some_history(&*store, "b", 30).await;
    check_tree(&*store).await;
    assert!(store.verify_audit().await.unwrap().is_intact());
}

pub async fn proofs_beyond_the_log_are_not_found(b: &dyn Backend) {
    let store = b.open().await;
    some_history(&*store, "a", 0).await;
    let n = store.audit_size().await.unwrap();
    assert!(matches!(
        store.audit_root(n + 1).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.inclusion_proof(0, n + 5).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.inclusion_proof(n, n).await.is_err());
    assert!(store.consistency_proof(n, n - 1).await.is_err());
}

pub async fn checkpoints_are_kept_one_per_size(b: &dyn Backend) {
    let store = b.open().await;
    assert_eq!(store.latest_checkpoint().await.unwrap(), None);
    let cp = |size: u64, note: &str| StoredCheckpoint {
        size,
        root: [size as u8; 32],
        note: note.into(),
        signed_at: at(size as i64),
    };
    store.save_checkpoint(&cp(3, "three\n")).await.unwrap();
    store.save_checkpoint(&cp(9, "nine\n")).await.unwrap();
    store
        .save_checkpoint(&cp(3, "three again\n"))
        .await
        .unwrap();
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(cp(9, "nine\n"))
    );
    assert_eq!(
        store.checkpoints(0, 10).await.unwrap(),
        vec![cp(3, "three\n"), cp(9, "nine\n")]
    );
    assert_eq!(
        store.checkpoints(3, 10).await.unwrap(),
        vec![cp(9, "nine\n")]
    );
    assert_eq!(
        store.checkpoints(0, 1).await.unwrap(),
        vec![cp(3, "three\n")]
    );
    drop(store);
    let store = b.open().await;
    assert_eq!(
        store.latest_checkpoint().await.unwrap(),
        Some(cp(9, "nine\n"))
    );
}

pub async fn a_request_lists_its_audit_entries(b: &dyn Backend) {
    let store = b.open().await;
    submit(&*store, "req_0", None, allow(), at(0)).await;
    let pending = submit(&*store, "req_1", None, review(1, false), at(1)).await;
    let change = vote(bob(), pending.digest(), VoteDecision::Approve);
    let updated = store
        .update_request("req_1", "user:bob@example.com", at(2), change)
        .await
        .unwrap()
        .unwrap();
    let entries = store.audit_entries(0, 1000).await.unwrap();
    let about = |id: &str| -> Vec<u64> {
        entries
            .iter()
            .filter(|e| {
                let v: serde_json::Value = serde_json::from_slice(&e.bytes).unwrap();
                v["request"] == id
            })
            .map(|e| e.seq)
            .collect()
    };
    assert_eq!(
        store.request_audit_seqs("req_1").await.unwrap(),
        Some(about("req_1"))
    );
    assert_eq!(
        store.request_audit_seqs("req_0").await.unwrap(),
        Some(about("req_0"))
    );
    assert_eq!(store.request_audit_seqs("req_9").await.unwrap(), None);
    // The vote's own entries, as the update reports them.
    let vote_seqs: Vec<u64> = about("req_1").into_iter().skip(1).collect();
    assert_eq!(updated.audit_entries, vote_seqs);
    assert!(!updated.audit_entries.is_empty());
    let _ = agent();
}

pub async fn audit_cursors_move_and_survive_a_restart(b: &dyn Backend) {
    let store = b.open().await;
    assert_eq!(store.audit_cursor("webhook:a").await.unwrap(), None);
    store.set_audit_cursor("webhook:a", 5).await.unwrap();
    store.set_audit_cursor("webhook:a", 7).await.unwrap();
    store.set_audit_cursor("webhook:b", 1).await.unwrap();
    drop(store);
    let store = b.open().await;
    assert_eq!(store.audit_cursor("webhook:a").await.unwrap(), Some(7));
    assert_eq!(store.audit_cursor("webhook:b").await.unwrap(), Some(1));
}

pub async fn the_audit_watch_follows_commits(b: &dyn Backend) {
    let store = b.open().await;
    let mut watch = store.audit_watch();
    let start = *watch.borrow_and_update();
    submit(&*store, "req_0", None, allow(), at(0)).await;
    assert!(watch.has_changed().unwrap());
    let now = *watch.borrow_and_update();
    assert!(now > start);
    assert_eq!(now, store.audit_size().await.unwrap());
}
