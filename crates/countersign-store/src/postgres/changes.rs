//! Telling the other replicas on the same database what changed, with PostgreSQL's
//! `LISTEN/NOTIFY`: every write that records audit entries sends, in its own transaction (so
//! only once it commits, and in commit order), one notification on [`CHANNEL`] naming the
//! replica that wrote it, the audit log's new size and the requests the entries are about. Each
//! replica listens on one connection of its own ([`Changes::subscribe`] starts it) and turns the
//! notifications of others into [`StoreChange`]s and moves of its audit watch; its own are
//! skipped (it told its waiters already).
//!
//! A lost listening connection loses the notifications sent meanwhile, so after every
//! (re)connection the listener re-reads the log's size and says [`StoreChange::Everything`]:
//! every waiter re-reads what it waits on. Waiters keep their periodic re-read as a backstop.

use crate::StoreChange;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// The notification channel.
pub(super) const CHANNEL: &str = "countersign_changes";

/// PostgreSQL refuses payloads of 8000 bytes or more; past this, a notification names no
/// requests and means "everything may have changed".
const MAX_PAYLOAD: usize = 7000;

/// How long the listener waits before connecting again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// This replica's side of the notifications: its id (in every notification it sends) and, once
/// someone subscribed, the listener's channel.
#[derive(Debug)]
pub(super) struct Changes {
    pub replica: String,
    sender: OnceLock<broadcast::Sender<StoreChange>>,
}

impl Changes {
    /// Each store opened gets its own id (a process may open several), so none skips another's
    /// notifications.
    pub fn new() -> Arc<Changes> {
        static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Arc::new(Changes {
            replica: format!("{}.{n}", crate::process_name()),
            sender: OnceLock::new(),
        })
    }

    /// The changes other replicas commit, from now on; the first call starts the listener
    /// (it stops once the pool is closed).
    pub fn subscribe(
        self: &Arc<Self>,
        pool: &PgPool,
        audit_size: &Arc<watch::Sender<u64>>,
    ) -> broadcast::Receiver<StoreChange> {
        let mut started = false;
        let sender = self.sender.get_or_init(|| {
            started = true;
            broadcast::channel(1024).0
        });
        let receiver = sender.subscribe();
        if started {
            tokio::spawn(listen(
                self.clone(),
                pool.clone(),
                audit_size.clone(),
                sender.clone(),
            ));
        }
        receiver
    }
}

/// The payload of a write's notification: `<replica> <audit size> <request,request,…>`, or
/// `*` for the requests when they would not fit.
pub(super) fn payload(replica: &str, audit_size: u64, requests: &[&str]) -> String {
    let mut out = format!("{replica} {audit_size} ");
    let start = out.len();
    for (i, id) in requests.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(id);
        if out.len() > MAX_PAYLOAD {
            out.truncate(start);
            out.push('*');
            break;
        }
    }
    out
}

/// A notification read back: who wrote it, the log's size after it, and what it changed.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Notice<'a> {
    pub replica: &'a str,
    pub audit_size: u64,
    pub change: StoreChange,
}

pub(super) fn parse(payload: &str) -> Option<Notice<'_>> {
    let mut parts = payload.splitn(3, ' ');
    let replica = parts.next()?;
    let audit_size = parts.next()?.parse().ok()?;
    let change = match parts.next().unwrap_or("") {
        "*" => StoreChange::Everything,
        "" => StoreChange::Requests(vec![]),
        ids => StoreChange::Requests(ids.split(',').map(str::to_owned).collect()),
    };
    Some(Notice {
        replica,
        audit_size,
        change,
    })
}

async fn listen(
    me: Arc<Changes>,
    pool: PgPool,
    audit_size: Arc<watch::Sender<u64>>,
    sender: broadcast::Sender<StoreChange>,
) {
    let moved = |size: u64| {
        audit_size.send_if_modified(|now| {
            let grew = size > *now;
            if grew {
                *now = size;
            }
            grew
        });
    };
    while !pool.is_closed() {
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
                tokio::time::sleep(RECONNECT_DELAY).await;
                continue;
            }
        };
        if let Err(e) = listener.listen(CHANNEL).await {
            tracing::warn!(error = %e, "cannot listen for other replicas' changes; retrying");
            tokio::time::sleep(RECONNECT_DELAY).await;
            continue;
        }
        // Listening: whatever was committed before now is read again by everyone waiting.
        match super::open::committed_size(&pool).await {
            Ok(size) => moved(size),
            Err(e) => tracing::warn!(error = %e, "cannot read the audit log's size"),
        }
        let _ = sender.send(StoreChange::Everything);
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) => {
                    let Some(notice) = parse(notification.payload()) else {
                        tracing::warn!("an unreadable change notification");
                        continue;
                    };
                    if notice.replica == me.replica {
                        continue;
                    }
                    moved(notice.audit_size);
                    let _ = sender.send(notice.change);
                }
                // The connection was lost: connect again, and re-read.
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "lost the connection listening for other replicas' changes");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_names_its_replica_the_log_size_and_the_requests() {
        let p = payload("r1", 42, &["req_a", "req_b"]);
        assert_eq!(p, "r1 42 req_a,req_b");
        let n = parse(&p).unwrap();
        assert_eq!(n.replica, "r1");
        assert_eq!(n.audit_size, 42);
        assert_eq!(
            n.change,
            StoreChange::Requests(vec!["req_a".into(), "req_b".into()])
        );
        assert_eq!(
            parse(&payload("r1", 7, &[])).unwrap().change,
            StoreChange::Requests(vec![])
        );
        // Too many to name: everything.
        let many: Vec<String> = (0..1000).map(|i| format!("req_{i:020}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        let big = payload("r1", 9, &refs);
        assert!(big.len() < 8000);
        assert_eq!(parse(&big).unwrap().change, StoreChange::Everything);
        assert!(parse("garbage").is_none());
        assert!(parse("r1 notanumber x").is_none());
    }
}
