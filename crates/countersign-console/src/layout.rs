//! The page chrome every console page shares (head, navigation, sign-out, the banner naming
//! recent changes to the viewer's second factors), the HTML error page,
//! and small formatting pieces (state badges, time left, highlighted JSON). Templates are
//! `maud`: markup is checked at compile time and every interpolated value is escaped unless it
//! is wrapped in `PreEscaped` — which only [`json`] does, over text it escaped itself.
//!
//! Must not: emit inline script or style (the Content-Security-Policy forbids both), or
//! interpolate request data unescaped.

use super::Viewer;
use countersign_app::mask::Shown;
use countersign_core::{State, Timestamp};
use countersign_store::{FactorChange, FactorChangeKind};
use maud::{DOCTYPE, Markup, PreEscaped, html};

/// A whole page: `title`, the signed-in person (for navigation and sign-out), and the body.
pub fn page(title: &str, viewer: Option<&Viewer>, live: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Countersign" }
                link rel="stylesheet" href="/console/static/console.css";
                script src="/console/static/console.js" defer {}
            }
            body data-live=[live] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console/" { span.mark aria-hidden="true" { "✓" } "Countersign" }
                    @if let Some(v) = viewer {
                        nav aria-label="Main" {
                            a href="/console/" { "Inbox" }
                            a href="/console/standing" { "Standing" }
                            a href="/console/reviews" { "Reviews" }
                            a href="/console/audit" { "Audit" }
                            a href="/console/mfa" { "Second factor" }
                        }
                        div.who {
                            span title=(v.principal.id.as_str()) { (v.principal.id.as_str().trim_start_matches("user:")) }
                            form method="post" action="/console/sign-out" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button.link type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main id="main" tabindex="-1" { (factor_banner()) (body) }
                footer.foot { "Countersign · every decision is recorded in a verifiable audit log" }
            }
        }
    }
}

/// The page shown for a refusal: the sentence, and the machine code for scripts and support.
pub fn error_page(status: u16, code: &str, message: &str, viewer: Option<&Viewer>) -> Markup {
    page(
        "Something went wrong",
        viewer,
        None,
        html! {
            section.card.error role="alert" data-error-code=(code) {
                h1 { (status_title(status)) }
                p.lead { (message) }
                p.muted { "Code: " code { (code) } " · HTTP " (status) }
                p { a href="/console/" { "Back to the inbox" } }
            }
        },
    )
}

fn status_title(status: u16) -> &'static str {
    match status {
        400 => "That request was not understood",
        401 => "Please sign in",
        403 => "Not allowed",
        404 => "Not found",
        409 => "That can no longer be done",
        429 => "Too many attempts",
        _ => "Something went wrong",
    }
}

/// A coloured badge for a request state.
pub fn state_badge(state: State, held: bool) -> Markup {
    let label = if held && state == State::Pending {
        "held"
    } else {
        state.as_str()
    };
    html! { span class={ "badge s-" (label) } { (label) } }
}

/// "12 min left", "1 h 5 min left", "expired" — the time left until `expires_at`.
pub fn time_left(expires_at: Option<Timestamp>, now: Timestamp) -> String {
    let Some(at) = expires_at else {
        return "no deadline".into();
    };
    let secs = (at - now).num_seconds();
    if secs <= 0 {
        return "expired".into();
    }
    let (h, m) = (secs / 3600, (secs % 3600) / 60);
    match (h, m) {
        (0, 0) => format!("{secs} s left"),
        (0, m) => format!("{m} min left"),
        (h, 0) => format!("{h} h left"),
        (h, m) => format!("{h} h {m} min left"),
    }
}

/// A timestamp as people read it (UTC, to the second), in a `<time>` element.
pub fn when(t: &Timestamp) -> Markup {
    html! {
        time datetime=(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (t.format("%Y-%m-%d %H:%M:%S UTC"))
        }
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Params as shown to people (`countersign_app::mask`: masked, escaped, indented), with a `<span>`
/// class per token kind (key, string, number, bool, null, masked secret), HTML-escaped here.
pub fn json(shown: &Shown) -> Markup {
    let mut out = String::new();
    for (token, text) in &shown.tokens {
        match token.class() {
            Some(class) => span(class, text, &mut out),
            None => escape(text, &mut out),
        }
    }
    PreEscaped(out)
}

fn span(class: &str, text: &str, out: &mut String) {
    out.push_str("<span class=\"");
    out.push_str(class);
    out.push_str("\">");
    escape(text, out);
    out.push_str("</span>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_highlighted_and_escaped() {
        let v = serde_json::json!({"sql": "<script>alert(1)</script>", "n": 5, "ok": true, "x": null, "token": "abc"});
        let shown = countersign_app::mask::Masker::random().params(&v);
        let html = json(&shown).into_string();
        assert!(!html.contains("<script>"));
        assert!(html.contains("&lt;script&gt;"));
        assert!(html.contains(r#"<span class="j-num">5</span>"#));
        assert!(html.contains(r#"<span class="j-bool">true</span>"#));
        assert!(html.contains(r#"<span class="j-null">null</span>"#));
        assert!(html.contains(r#"<span class="j-mask">"#));
        assert!(html.contains(r#"<span class="j-key">&quot;sql&quot;</span>"#));
    }

    #[test]
    fn time_left_reads_naturally() {
        let now = chrono::Utc::now();
        let s = |secs: i64| time_left(Some(now + chrono::Duration::seconds(secs)), now);
        assert_eq!(s(30), "30 s left");
        assert_eq!(s(600), "10 min left");
        assert_eq!(s(3600), "1 h left");
        assert_eq!(s(3900), "1 h 5 min left");
        assert_eq!(s(-1), "expired");
        assert_eq!(time_left(None, now), "no deadline");
    }
}

tokio::task_local! {
    /// The recent changes to the factors of the person whose request is being answered, set
    /// by `mfa::with_factor_notices` around each console request so that every page shows them
    /// without each handler reading them.
    pub static FACTOR_NOTICES: Vec<FactorChange>;
}

/// The banner naming each recent change to the viewer's factors (empty when none).
pub fn factor_banner() -> Markup {
    let notices = FACTOR_NOTICES.try_with(Clone::clone).unwrap_or_default();
    html! {
        @if !notices.is_empty() {
            div.notice role="status" data-factor-changes {
                p { strong { "Your second factors changed." } " If you did not make a change below, ask an operator to reset your factors (" code { "countersign mfa reset" } ") and revoke your API keys." }
                ul {
                    @for n in &notices {
                        li data-factor-change=(n.change.as_str()) {
                            (when(&n.at)) " · "
                            (match n.change {
                                FactorChangeKind::TotpEnrolled => "an authenticator app was enrolled",
                                FactorChangeKind::PasskeyAdded => "a passkey was added",
                                FactorChangeKind::Reset => "an operator removed all your second factors",
                            })
                        }
                    }
                }
                p.muted { "This notice stays for 7 days after each change." }
            }
        }
    }
}
