//! Tells a person on Slack, by direct message, about each change to their second factors that
//! this gateway commits (the sentence is the Gateway's: `gateway::factors::announcement`).

use super::api::{SlackApi, SlackError};
use countersign_app::gateway::factors::announcement;
use countersign_store::FactorChange;
use std::sync::Arc;

/// Sends `change`'s announcement to the person's Slack user (found by their email with
/// `users.lookupByEmail`) as a direct message.
pub async fn announce_on_slack(api: &SlackApi, change: &FactorChange) -> Result<(), SlackError> {
    let email = change.principal.as_str().trim_start_matches("user:");
    let user = api.user_by_email(email).await?;
    let text = announcement(change);
    let blocks =
        serde_json::json!([{"type": "section", "text": {"type": "plain_text", "text": text}}]);
    api.post_message(&user, &text, &blocks, None)
        .await
        .map(drop)
}

/// Announces each change this gateway commits on Slack, until the task is aborted. A change
/// missed here (Slack down, process restarted) is still in the audit log and on the console.
pub async fn run_slack_announcer(
    api: Arc<SlackApi>,
    mut news: tokio::sync::broadcast::Receiver<FactorChange>,
) {
    loop {
        match news.recv().await {
            Ok(change) => {
                if let Err(e) = announce_on_slack(&api, &change).await {
                    tracing::warn!(principal = %change.principal, error = %e, "could not tell the person on Slack about a change to their second factors");
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "second-factor announcements dropped");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}
