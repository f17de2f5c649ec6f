//! The Reviews page (issue 18): per approver, over a chosen period, their decisions, approval
//! rate, median time to decide and the share decided (approved) in under 10 s, so a team sees
//! when reviews have become a rubber stamp. The figures are `Gateway::reviews`.
//!
//! Must not: write anything, or compute the figures itself.

use super::ConsoleError;
use super::layout::{page as chrome, when};
use crate::ConsoleState;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use countersign_app::reviews::ApproverReviews;
use maud::{Markup, html};
use serde::Deserialize;

/// The periods offered; `7d` unless another is chosen.
const PERIODS: [&str; 4] = ["24h", "7d", "30d", "90d"];

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ReviewsQuery {
    since: Option<String>,
}

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    uri: Uri,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let viewer = state.page_viewer(&headers, &uri).await?;
    let q: ReviewsQuery = super::parse_query(raw.as_deref())?;
    let period = match q.since.as_deref() {
        None | Some("") => "7d",
        Some(p) if PERIODS.contains(&p) => p,
        Some(p) => {
            return Err(ConsoleError::bad_request(
                "invalid_query",
                format!("`since={p}` is not one of {}.", PERIODS.join(", ")),
            ));
        }
    };
    let span = humantime::parse_duration(period).map_err(|_| {
        ConsoleError::bad_request("invalid_query", format!("`since={period}` is no duration"))
    })?;
    let now = state.gateway.clock.now();
    let since = now - chrono::Duration::from_std(span).unwrap_or(chrono::Duration::days(90));
    let reviews = state.gateway.reviews(&viewer.principal, since).await?;
    let body = html! {
        section.card {
            h1 { "Reviews" }
            p { "How each person decided the requests created since " (when(&since)) ": "
                "a high approval rate with a short median time and many approvals in under 10 s "
                "is a sign that requests are approved without being read." }
            form.filters method="get" action="/console/reviews" {
                label { "Period " select name="since" {
                    @for p in PERIODS { option value=(p) selected[p == period] { "last " (p) } }
                } }
                button.secondary type="submit" { "Show" }
            }
            p.hint data-requests=(reviews.requests) { (reviews.requests) " request(s) read."
                @if let Some(cut) = reviews.cut_at {
                    " Only requests created since " (when(&cut)) " were read (the newest "
                    (countersign_app::reviews::MAX_SCANNED) "): choose a shorter period for the rest."
                }
            }
            (table(&reviews.approvers))
        }
    };
    Ok(super::html(chrome("Reviews", Some(&viewer), None, body)))
}

fn table(approvers: &[ApproverReviews]) -> Markup {
    let percent = |x: f64| format!("{:.0} %", x * 100.0);
    html! {
        @if approvers.is_empty() {
            p.empty { "Nobody decided a request in this period." }
        } @else {
            div.table-wrap {
                table.list {
                    thead { tr {
                        th scope="col" { "Approver" }
                        th scope="col" { "Decisions" }
                        th scope="col" { "Approval rate" }
                        th scope="col" { "Median time to decide" }
                        th scope="col" { "Approved in under 10 s" }
                    } }
                    tbody {
                        @for a in approvers {
                            tr data-approver=(a.approver) {
                                td.mono { (a.approver) }
                                td data-decisions=(a.decisions) { (a.decisions) }
                                td data-approvals=(a.approvals) { (percent(a.approval_rate())) }
                                td data-median=(format!("{:.1}", a.median_seconds)) { (seconds(a.median_seconds)) }
                                td data-fast=(a.fast_approvals) {
                                    (percent(a.fast_share()))
                                    @if a.fast_approvals > 0 { " (" (a.fast_approvals) ")" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A duration for people: `8.2 s`, `4 min`, `3.5 h`.
fn seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}
