//! A plan's steps on its request page (issue 18): a numbered list, each step's kind, resource,
//! what the policy decided, which request used it, and its params, masked like any params.

use super::layout::json;
use countersign_app::mask::Masker;
use countersign_core::{Effect, Request};
use maud::{Markup, html};

/// The "Plan" card of a plan's request, and how many values it masked; `None` for a request
/// that is not a plan.
pub fn card(req: &Request, masker: &Masker) -> Option<(Markup, usize)> {
    let plan = req.plan()?;
    let steps = req.action().params.get("steps")?.as_array()?;
    let mut masked = 0;
    let shown: Vec<_> = steps
        .iter()
        .map(|s| {
            let params = s
                .get("params")
                .filter(|p| p.as_object().is_none_or(|o| !o.is_empty()))
                .map(|p| masker.params(p));
            masked += params.as_ref().map_or(0, |p| p.masked);
            params
        })
        .collect();
    let text = |s: &serde_json::Value, name: &str| {
        s.get(name)
            .and_then(|v| v.as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let masked_here = masked;
    let markup = html! {
        section.card.plan {
            h2 { "Plan: " (steps.len()) " step" @if steps.len() != 1 { "s" } }
            p.hint { "Approving approves each step marked review, once, for exactly what it shows; "
                "the agent then submits it as an action and gets its own grant." }
            @if let Some(n) = countersign_app::mask::notice(masked_here) {
                p.hint data-masked=(masked_here) { "🔒 " (n) "." }
            }
            ol.plan-steps {
                @for ((s, params), decided) in steps.iter().zip(&shown).zip(&plan.steps) {
                    li {
                        div.step-head {
                            code { (text(s, "kind")) } " on " span.mono { (text(s, "resource")) }
                            " " span class={ "step-effect e-" (decided.effect.as_str()) } {
                                (match decided.effect {
                                    Effect::Allow => "allowed",
                                    Effect::Review => "review",
                                    Effect::Deny => "denied",
                                })
                            }
                            @if let Some(rule) = &decided.rule { " " span.muted { "(" (rule) ")" } }
                            @if let Some(by) = &decided.used_by {
                                " · used by " a.mono href={ "/console/requests/" (by) } { (by) }
                            }
                        }
                        @if let Some(p) = params { pre.json tabindex="0" { code { (json(p)) } } }
                    }
                }
            }
        }
    };
    Some((markup, masked))
}
