//! How events become audit entries, backend-neutral: the head of the chain (the next sequence
//! number and the last chain hash), sealing an event after it, and reading stored rows back.
//!
//! A backend keeps the head in memory only while it alone appends (SQLite's single writer) and
//! must reload it whenever a transaction it advanced the head in fails to commit. A
//! [`Journal`] holds the entries sealed inside a transaction until they are written, so a
//! backend can write a whole group's entries with a few multi-row inserts.

use crate::StoreError;
use countersign_audit::{
    AuditEntry, AuditReport, StoredEntry, UnsequencedEntry, Verifier, format_at,
};
use countersign_core::replay::RECORDED_HASH;

/// The key, in a request entry's `data`, of the W3C `traceparent` the request's call carried.
pub const TRACEPARENT: &str = "traceparent";
use countersign_core::{Event, Request};

/// Where the next audit entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuditHead {
    pub next_seq: u64,
    /// The chain hash of the last entry (32 zero bytes before the first).
    pub prev: [u8; 32],
}

/// What an event is about, beyond the event itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subject<'a> {
    /// A request: its id, digest and deciding policy are recorded with the event, and the
    /// SHA-256 of its body as stored after the change (the second field, see
    /// [`countersign_core::replay::body_sha256`]) in the event's data, so the row can later be
    /// checked against its last entry.
    Request(&'a Request, &'a str),
    /// Nothing in particular, optionally under a policy (`policy.loaded`).
    None { policy: Option<&'a str> },
}

impl AuditHead {
    pub fn empty() -> Self {
        AuditHead {
            next_seq: 0,
            prev: [0; 32],
        }
    }

    /// The head after a stored last entry, read back from the database.
    pub fn after_row(seq: i64, chain: &[u8]) -> Result<Self, String> {
        let seq = u64::try_from(seq).map_err(|_| format!("audit entry has seq {seq}"))?;
        let prev = hash32(chain).map_err(|e| format!("audit entry {seq}: chain {e}"))?;
        Ok(AuditHead {
            next_seq: seq + 1,
            prev,
        })
    }

    /// Seals `entry` as the next one and advances the head past it.
    pub fn seal(&mut self, entry: &UnsequencedEntry) -> StoredEntry {
        let stored = entry.seal(self.next_seq, &self.prev);
        self.next_seq += 1;
        self.prev = stored.chain;
        stored
    }
}

/// The entry recording `event`, by `actor`, about `subject`, at `at` (already formatted, see
/// [`at_of`]), ready to be sealed at whatever position it gets. The costly part of appending
/// (canonical JSON), so it is done before entering the writer where possible.
pub(crate) fn prepare(
    at: &str,
    actor: &str,
    event: &Event,
    subject: Subject<'_>,
) -> UnsequencedEntry {
    let mut data = event.data();
    let (request, digest, policy) = match subject {
        Subject::Request(r, body_sha256) => {
            if let Some(map) = data.as_object_mut() {
                map.insert(RECORDED_HASH.to_owned(), body_sha256.into());
                // Every entry about a request names the trace its call carried.
                if let Some(trace) = r.trace() {
                    map.insert(TRACEPARENT.to_owned(), trace.as_str().into());
                }
            }
            (
                Some(r.id().to_owned()),
                Some(r.digest().to_string()),
                Some(r.decision().policy_hash.clone()),
            )
        }
        Subject::None { policy } => (None, None, policy.map(str::to_owned)),
    };
    AuditEntry {
        seq: 0,
        at: at.to_owned(),
        actor: actor.to_owned(),
        event: event.name().to_owned(),
        request,
        digest,
        policy,
        data,
    }
    .unsequenced()
}

/// The audit head plus the entries sealed since they were last written out.
#[derive(Debug)]
pub(crate) struct Journal {
    head: AuditHead,
    staged: Vec<StoredEntry>,
    /// The requests the staged entries are about, when the journal tracks them
    /// ([`Journal::tracking_requests`]: a store that tells other replicas what changed).
    requests: Option<Vec<String>>,
}

/// A point a [`Journal`] can be rolled back to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    head: AuditHead,
    staged: usize,
    requests: usize,
}

impl Journal {
    pub fn new(head: AuditHead) -> Self {
        Journal {
            head,
            staged: Vec::new(),
            requests: None,
        }
    }

    /// A journal that also keeps which requests its staged entries are about.
    pub fn tracking_requests(head: AuditHead) -> Self {
        Journal {
            requests: Some(Vec::new()),
            ..Journal::new(head)
        }
    }

    /// The requests the staged entries are about (each once, in order of first mention), when
    /// tracked.
    pub fn requests(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for id in self.requests.iter().flatten() {
            if !out.contains(&id.as_str()) {
                out.push(id);
            }
        }
        out
    }

    /// Seals the next entry and stages it; returns its seq.
    pub fn append(&mut self, at: &str, actor: &str, event: &Event, subject: Subject<'_>) -> u64 {
        self.append_prepared(&prepare(at, actor, event, subject))
    }

    /// Seals an already prepared entry as the next one and stages it; returns its seq.
    pub fn append_prepared(&mut self, entry: &UnsequencedEntry) -> u64 {
        if let (Some(requests), Some(id)) = (self.requests.as_mut(), entry.request()) {
            requests.push(id.to_owned());
        }
        let stored = self.head.seal(entry);
        let seq = stored.seq;
        self.staged.push(stored);
        seq
    }

    /// Where the next entry goes, including everything staged.
    pub fn head(&self) -> AuditHead {
        self.head
    }

    pub fn mark(&self) -> Mark {
        Mark {
            head: self.head,
            staged: self.staged.len(),
            requests: self.requests.as_ref().map_or(0, Vec::len),
        }
    }

    /// Forgets everything sealed since `mark`.
    pub fn roll_back_to(&mut self, mark: Mark) {
        self.head = mark.head;
        self.staged.truncate(mark.staged);
        if let Some(requests) = self.requests.as_mut() {
            requests.truncate(mark.requests);
        }
    }

    /// The entries sealed and not yet written, in order.
    pub fn staged(&self) -> &[StoredEntry] {
        &self.staged
    }

    /// The staged entries were committed.
    pub fn committed(&mut self) {
        self.staged.clear();
        if let Some(requests) = self.requests.as_mut() {
            requests.clear();
        }
    }

    /// Starts over from `head` (after a failed commit), dropping anything staged.
    pub fn reset(&mut self, head: AuditHead) {
        self.head = head;
        self.committed();
    }
}

/// The `at` of entries written at `now`.
pub(crate) fn at_of(now: countersign_core::Timestamp) -> String {
    format_at(now)
}

fn hash32(bytes: &[u8]) -> Result<[u8; 32], String> {
    <[u8; 32]>::try_from(bytes).map_err(|_| format!("is {} bytes, not 32", bytes.len()))
}

/// A stored audit row as an entry, or a sentence saying why it is not one.
pub(crate) fn entry_from_row(seq: i64, bytes: Vec<u8>, leaf: &[u8], chain: &[u8]) -> AuditRow {
    let seq = u64::try_from(seq).map_err(|_| (None, format!("a row has seq {seq}")))?;
    let leaf = hash32(leaf).map_err(|e| (Some(seq), format!("stored leaf {e}")))?;
    let chain = hash32(chain).map_err(|e| (Some(seq), format!("stored chain {e}")))?;
    Ok(StoredEntry {
        seq,
        bytes,
        leaf,
        chain,
    })
}

/// One stored audit row: an entry, or the seq (when known) and why it is not one.
pub(crate) type AuditRow = Result<StoredEntry, (Option<u64>, String)>;

/// How many audit entries a verification reads at a time.
pub(crate) const VERIFY_PAGE: u32 = 1000;

/// Verifies the whole log, reading it `VERIFY_PAGE` rows at a time with `page(from, limit)`
/// (rows with seq >= `from`, in order), so memory stays flat however long the log is.
pub(crate) async fn verify_in_pages<F, Fut>(
    mut verifier: Verifier,
    mut page: F,
) -> Result<AuditReport, StoreError>
where
    F: FnMut(u64, u32) -> Fut,
    Fut: Future<Output = Result<Vec<AuditRow>, StoreError>>,
{
    let mut from = 0u64;
    loop {
        let rows = page(from, VERIFY_PAGE).await?;
        let count = rows.len();
        for row in rows {
            let go_on = match row {
                Ok(entry) => {
                    from = entry.seq + 1;
                    verifier.push(&entry)
                }
                Err((seq, problem)) => verifier.push_unreadable(seq.unwrap_or(from), &problem),
            };
            if !go_on {
                return Ok(verifier.finish());
            }
        }
        if count < VERIFY_PAGE as usize {
            return Ok(verifier.finish());
        }
    }
}

/// Audit rows as entries, for callers that want entries or an error.
pub(crate) fn entries_or_corrupt(rows: Vec<AuditRow>) -> Result<Vec<StoredEntry>, StoreError> {
    rows.into_iter()
        .map(|row| {
            row.map_err(|(seq, problem)| match seq {
                Some(seq) => StoreError::Corrupt(format!("audit entry {seq}: {problem}")),
                None => StoreError::Corrupt(format!("audit log: {problem}")),
            })
        })
        .collect()
}
