//! How the gateway names what its upstreams offer, so that agents see one flat list.
//!
//! A tool or prompt `<tool>` of upstream `<server>` is offered as `<server>__<tool>`. Upstream
//! names are lowercase letters, digits and `-` (config validation), so the first `__` always
//! ends the server name, whatever the tool name contains. Names stay within the characters
//! model APIs accept for tool names (`[A-Za-z0-9_-]`) whenever the upstream's own names do.
//!
//! The gateway's own executors are the tools of a built-in server, [`BUILTIN`]
//! (`countersign__<executor>`); their actions are the executors' (`exec.<family>.<name>`).
//!
//! The action for a call is `mcp.tool.<server>.<tool>` on `mcp://<server>/<tool>`; characters
//! an action kind cannot hold (anything but letters, digits, `.`, `_`, `-`) become `_` in the
//! kind only. Resources keep their own URIs.

pub const SEPARATOR: &str = "__";

/// The built-in server: the gateway's executors as tools (`countersign__<executor>`, see
/// `builtin`). No upstream may take this name (config validation).
pub const BUILTIN: &str = "countersign";

/// The executor an outcome names for a request forwarded to `upstream` (`mcp:<upstream>`).
pub fn forwarded_to(upstream: &str) -> String {
    format!("mcp:{upstream}")
}

/// The name agents see for `name` of upstream `server`.
pub fn qualify(server: &str, name: &str) -> String {
    format!("{server}{SEPARATOR}{name}")
}

/// Splits an agent-facing name into (server, upstream name).
pub fn split(qualified: &str) -> Option<(&str, &str)> {
    let (server, name) = qualified.split_once(SEPARATOR)?;
    (!server.is_empty() && !name.is_empty()).then_some((server, name))
}

/// The action kind of a call to `tool` on `server`.
pub fn tool_kind(server: &str, tool: &str) -> String {
    let tool: String = tool
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("mcp.tool.{server}.{}", tool.trim_end_matches('.'))
}

/// The action resource of a call to `tool` on `server`.
/// The labels that record a tool's annotations in the action of a call (see
/// `countersign_core::action::ANNOTATION_LABEL_PREFIX`): each hint the tool gives, as `true` or
/// `false`, and its title, cut to the label limit at a character boundary. None for a tool
/// without annotations (the policy then sees the specification's defaults).
pub fn annotation_labels(
    annotations: Option<&rmcp::model::ToolAnnotations>,
) -> std::collections::BTreeMap<String, String> {
    use countersign_core::action::ANNOTATION_LABEL_PREFIX;
    let mut labels = std::collections::BTreeMap::new();
    let Some(a) = annotations else {
        return labels;
    };
    let hints = [
        ("readOnlyHint", a.read_only_hint),
        ("destructiveHint", a.destructive_hint),
        ("idempotentHint", a.idempotent_hint),
        ("openWorldHint", a.open_world_hint),
    ];
    for (name, hint) in hints {
        if let Some(value) = hint {
            labels.insert(
                format!("{ANNOTATION_LABEL_PREFIX}{name}"),
                value.to_string(),
            );
        }
    }
    if let Some(title) = &a.title {
        let mut end = title.len().min(MAX_LABEL_VALUE);
        while !title.is_char_boundary(end) {
            end -= 1;
        }
        labels.insert(
            format!("{ANNOTATION_LABEL_PREFIX}title"),
            title[..end].to_owned(),
        );
    }
    labels
}

/// The longest label value the core accepts.
const MAX_LABEL_VALUE: usize = 200;

pub fn tool_resource(server: &str, tool: &str) -> String {
    format!("mcp://{server}/{tool}")
}

/// The action kind of `resources/read`.
pub const RESOURCE_READ_KIND: &str = "mcp.resource.read";

/// The prefix of the run `countersign mcp stdio` makes up for each launch (`mcp-stdio:<id>`).
pub const BRIDGE_RUN_PREFIX: &str = "mcp-stdio:";

/// The run an MCP session's actions belong to: `mcp:<session>` with characters a run id
/// cannot hold replaced.
pub fn session_run(session: &str) -> Option<String> {
    let cleaned: String = session
        .chars()
        .take(190)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-:".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (!cleaned.is_empty()).then(|| format!("mcp:{cleaned}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_whatever_the_tool_is_called() {
        for tool in ["echo", "get__env", "a.b-c", "__x", "日本"] {
            let q = qualify("every-thing2", tool);
            assert_eq!(split(&q), Some(("every-thing2", tool)));
        }
        assert_eq!(split("no-separator"), None);
        assert_eq!(split("__tool"), None);
        assert_eq!(split("server__"), None);
    }

    #[test]
    fn kinds_are_valid_action_kinds() {
        assert_eq!(tool_kind("e", "get-sum"), "mcp.tool.e.get-sum");
        assert_eq!(tool_kind("e", "a/b c"), "mcp.tool.e.a_b_c");
        assert_eq!(tool_kind("e", "dots."), "mcp.tool.e.dots");
        assert_eq!(tool_resource("e", "a/b"), "mcp://e/a/b");
        assert_eq!(session_run("abc-123").as_deref(), Some("mcp:abc-123"));
        assert_eq!(session_run("a b").as_deref(), Some("mcp:a_b"));
        assert_eq!(session_run(""), None);
    }
}
