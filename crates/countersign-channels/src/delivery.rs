//! Bringing one chat channel up to date for one request, the same way for every channel: who is
//! asked (the rule's audience for this channel, or the channel's default, plus the escalation
//! audience once due), posting to targets not yet posted to while people can still decide,
//! replacing messages whose content changed (and posting again where one was deleted),
//! reminding while pending, and saying when to come back (next reminder, escalation, expiry).
//!
//! What a channel does is behind [`ChatChannel`]; when and to whom is decided here, once. The
//! message references are in the store (`channel_messages`), so any replica, or this one after
//! a restart, updates the same message; a first post to a target is made under a claim in the
//! store, so two replicas working the same request at once post it once.

use super::{ChatChannel, DeliveryError, Edit, Rendered};
use countersign_core::{Request, State, Timestamp};
use countersign_store::{ChannelMessage, Store};
use std::collections::HashSet;

/// The targets of `channel` asked about `req` at `now`: the rule's audience in this channel (or
/// the channel's default when the rule names none), plus the escalation audience once due.
pub fn audience(channel: &dyn ChatChannel, req: &Request, now: Timestamp) -> Vec<String> {
    let Some(r) = req.decision().requirements.as_ref() else {
        return vec![];
    };
    let prefix = format!("{}:", channel.name());
    let mine = |t: &&String| t.starts_with(&prefix);
    let mut out: Vec<String> = if r.notify.is_empty() {
        channel.default_audience().to_vec()
    } else {
        r.notify.iter().filter(mine).cloned().collect()
    };
    if let Some(e) = &r.escalate
        && escalation_due(req, e.after_seconds, now)
    {
        out.extend(e.notify.iter().filter(mine).cloned());
    }
    let mut seen = HashSet::new();
    out.retain(|t| seen.insert(t.clone()));
    out
}

/// Brings `channel` up to date for `req`. Returns when to come back (next reminder, escalation
/// or expiry), or the first failure (the other targets were still worked).
pub async fn deliver(
    channel: &dyn ChatChannel,
    store: &dyn Store,
    req: &Request,
    now: Timestamp,
) -> Result<Option<Timestamp>, DeliveryError> {
    let stored = store
        .channel_messages(req.id())
        .await
        .map_err(DeliveryError::store)?;
    let prefix = format!("{}:", channel.name());
    let stored: Vec<ChannelMessage> = stored
        .into_iter()
        .filter(|m| m.target.starts_with(&prefix))
        .collect();
    let targets = audience(channel, req, now);
    let rendered = channel.render(req);
    let pending = req.state() == State::Pending;
    let remind = req
        .decision()
        .requirements
        .as_ref()
        .and_then(|r| r.remind_seconds)
        .filter(|_| pending && !req.held());
    let mut first_error = None;
    let mut next: Option<Timestamp> = None;
    let mut later = |t: Timestamp| next = Some(next.map_or(t, |n: Timestamp| n.min(t)));
    // Targets with a message, plus targets still to post to.
    let mut all: Vec<&str> = stored.iter().map(|m| m.target.as_str()).collect();
    for t in &targets {
        if !all.contains(&t.as_str()) {
            all.push(t);
        }
    }
    for target in all {
        let existing = stored.iter().find(|m| m.target == target);
        let outcome = match existing {
            None if pending => {
                match first_post(channel, store, req, target, &rendered, now).await {
                    // Another replica is posting it: come back to update it.
                    Ok(false) => {
                        later(now + chrono::Duration::seconds(2));
                        Ok(())
                    }
                    done => done.map(|_| ()),
                }
            }
            None => Ok(()),
            Some(m) => {
                let mut m = m.clone();
                let mut result = Ok(());
                let mut reposted = false;
                if m.rendered != rendered.hash {
                    match channel.update(&m, &rendered).await {
                        Ok(Edit::Done) => {
                            m.rendered = rendered.hash.clone();
                            result = save(store, &m).await;
                        }
                        // Someone deleted the message: while people can still decide, post it
                        // again (the new reference replaces the old); once closed, there is
                        // nothing left to show.
                        Ok(Edit::Gone) => {
                            if pending {
                                result = post(channel, store, req, target, &rendered).await;
                            }
                            // `m` is the old reference now: come back soon for reminders.
                            reposted = true;
                            later(now + chrono::Duration::seconds(1));
                        }
                        Err(e) => result = Err(e),
                    }
                }
                if let Some(every) = remind
                    && result.is_ok()
                    && !reposted
                {
                    let since = m.reminded_at.unwrap_or(req.created_at());
                    let due = since + chrono::Duration::seconds(every as i64);
                    if now >= due {
                        result = match channel.remind(req, &m).await {
                            Ok(()) => {
                                m.reminded_at = Some(now);
                                later(now + chrono::Duration::seconds(every as i64));
                                save(store, &m).await
                            }
                            Err(e) => Err(e),
                        };
                    } else {
                        later(due);
                    }
                }
                result
            }
        };
        if let Err(e) = outcome {
            tracing::warn!(request = %req.id(), target, channel = channel.name(), error = %e,
                "channel delivery failed");
            first_error.get_or_insert(e);
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if pending {
        if let Some(exp) = req.expires_at() {
            later(exp + chrono::Duration::seconds(1));
        }
        if let Some(e) = req
            .decision()
            .requirements
            .as_ref()
            .and_then(|r| r.escalate.as_ref())
            && !escalation_due(req, e.after_seconds, now)
        {
            later(req.created_at() + chrono::Duration::seconds(e.after_seconds as i64));
        }
    }
    Ok(next)
}

/// How long a replica's claim on posting the first message of a request to one target lasts
/// (longer than a post takes).
const POSTING: chrono::Duration = chrono::Duration::seconds(60);

/// Posts the first message about `req` to `target`, once whichever replica gets there first:
/// under a claim on (request, target) in the store (`Store::lease`), and only if no message is
/// stored for the target by then. False when another replica holds the claim or has posted.
async fn first_post(
    channel: &dyn ChatChannel,
    store: &dyn Store,
    req: &Request,
    target: &str,
    rendered: &Rendered,
    now: Timestamp,
) -> Result<bool, DeliveryError> {
    let claim = format!("post:{}:{target}", req.id());
    let held = store
        .lease(
            &claim,
            countersign_store::process_name(),
            now,
            now + POSTING,
        )
        .await
        .map_err(DeliveryError::store)?;
    if !held {
        return Ok(false);
    }
    let posted = store
        .channel_messages(req.id())
        .await
        .map_err(DeliveryError::store)?
        .iter()
        .any(|m| m.target == target);
    if posted {
        return Ok(false);
    }
    post(channel, store, req, target, rendered).await?;
    Ok(true)
}

async fn post(
    channel: &dyn ChatChannel,
    store: &dyn Store,
    req: &Request,
    target: &str,
    rendered: &Rendered,
) -> Result<(), DeliveryError> {
    let posted = match channel.post(req, target, rendered).await {
        Ok(Some(p)) => p,
        // The channel cannot reach this target at all (a misconfiguration it has logged).
        Ok(None) => return Ok(()),
        Err(e) => return Err(e),
    };
    let m = ChannelMessage {
        request_id: req.id().to_owned(),
        target: target.to_string(),
        conversation: posted.conversation,
        ts: posted.ts,
        rendered: rendered.hash.clone(),
        reminded_at: None,
    };
    save(store, &m).await
}

fn escalation_due(req: &Request, after_seconds: u64, now: Timestamp) -> bool {
    now >= req.created_at() + chrono::Duration::seconds(after_seconds as i64)
}

async fn save(store: &dyn Store, m: &ChannelMessage) -> Result<(), DeliveryError> {
    store
        .save_channel_message(m)
        .await
        .map_err(DeliveryError::store)
}
