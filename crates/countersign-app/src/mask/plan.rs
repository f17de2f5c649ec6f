//! A plan's steps as people are shown them, the same in every view (chat messages, the
//! console, the CLI): a numbered list, each step's kind, resource and what the policy decided,
//! then its params, masked like any params.

use super::Masker;
use countersign_core::Effect;
use countersign_core::text::visible;
use std::fmt::Write as _;

/// What the policy decided for one step, as the plan's request records it.
pub struct StepDecision<'a> {
    pub effect: Effect,
    pub rule: Option<&'a str>,
    /// The request the plan's approval approved for this step, once one did.
    pub used_by: Option<&'a str>,
}

/// The steps in a plan's params (`{"steps": [{kind, resource, params}, …]}`) as numbered
/// lines, with `decided[i]` for step i where known; and how many values were masked. `None`
/// when the params hold no steps.
pub fn numbered(
    params: &serde_json::Value,
    decided: &[StepDecision<'_>],
    masker: &Masker,
) -> Option<(String, usize)> {
    let steps = params.get("steps")?.as_array()?;
    let mut out = String::new();
    let mut masked = 0;
    for (i, step) in steps.iter().enumerate() {
        let field = |name: &str| {
            visible(step.get(name).and_then(|v| v.as_str()).unwrap_or("?")).into_owned()
        };
        let decision = decided.get(i).map(|d| {
            let rule = d
                .rule
                .map(|r| format!(" ({})", visible(r)))
                .unwrap_or_default();
            let used = d
                .used_by
                .map(|u| format!(", used by {}", visible(u)))
                .unwrap_or_default();
            format!(" — {}{rule}{used}", d.effect.as_str())
        });
        let _ = writeln!(
            out,
            "{}. {} on {}{}",
            i + 1,
            field("kind"),
            field("resource"),
            decision.unwrap_or_default()
        );
        if let Some(p) = step
            .get("params")
            .filter(|p| p.as_object().is_none_or(|o| !o.is_empty()))
        {
            let shown = masker.params(p);
            masked += shown.masked;
            let _ = writeln!(out, "   {}", shown.text().replace('\n', "\n   "));
        }
    }
    Some((out.trim_end().to_owned(), masked))
}

/// The decisions a plan's request records, in the form [`numbered`] takes.
pub fn decisions(req: &countersign_core::Request) -> Vec<StepDecision<'_>> {
    req.plan()
        .map(|p| {
            p.steps
                .iter()
                .map(|s| StepDecision {
                    effect: s.effect,
                    rule: s.rule.as_deref(),
                    used_by: s.used_by.as_deref(),
                })
                .collect()
        })
        .unwrap_or_default()
}
