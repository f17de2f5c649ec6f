//! Compiled `match` globs over an action's kind, resource and the principal's id. `*` matches any
//! run of characters, `/` and `.` included; `?` matches one character; `[abc]` and `{a,b}` work
//! as in globset, and `\` escapes. Globs compile once at load; the common shapes (a literal,
//! `prefix*`, `*suffix`, `*`) skip the regex engine, and the other globs of one key share a
//! single regex, because most rules of a large policy are ruled out right here. This module must
//! never allocate while matching.

use globset::GlobBuilder;
use regex::bytes::Regex;

/// One glob in a shape that needs no regex.
#[derive(Debug, Clone)]
enum Simple {
    Any,
    Literal(String),
    Prefix(String),
    Suffix(String),
}

impl Simple {
    fn is_match(&self, text: &str) -> bool {
        match self {
            Simple::Any => true,
            Simple::Literal(l) => text == l,
            Simple::Prefix(p) => text.starts_with(p.as_str()),
            Simple::Suffix(s) => text.ends_with(s.as_str()),
        }
    }
}

/// A simple shape, or globset's translation of the glob into a regex.
fn compile_one(pattern: &str) -> Result<Result<Simple, String>, String> {
    if pattern.is_empty() {
        return Err("empty glob: write `*` to match everything, or leave the key out".into());
    }
    // Build it with globset even when a fast path applies, so every pattern is validated the
    // same way.
    let glob = GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))?;
    let special = |c: char| "*?[]{}\\".contains(c);
    if pattern == "*" {
        return Ok(Ok(Simple::Any));
    }
    if !pattern.contains(special) {
        return Ok(Ok(Simple::Literal(pattern.to_string())));
    }
    if let Some(prefix) = pattern.strip_suffix('*')
        && !prefix.contains(special)
    {
        return Ok(Ok(Simple::Prefix(prefix.to_string())));
    }
    if let Some(suffix) = pattern.strip_prefix('*')
        && !suffix.contains(special)
    {
        return Ok(Ok(Simple::Suffix(suffix.to_string())));
    }
    Ok(Err(glob.regex().to_string()))
}

/// The globs of one `match` key: matches when any of them does.
#[derive(Debug, Clone)]
pub(crate) struct Globs {
    simple: Vec<Simple>,
    /// The other globs, as one alternation. Matched directly rather than through
    /// `GlobMatcher`, which allocates a path candidate on every call.
    regex: Option<Regex>,
    /// As written, for explanations.
    source: Vec<String>,
}

impl Globs {
    pub(crate) fn compile(patterns: &[String]) -> Result<Self, String> {
        let mut simple = Vec::new();
        let mut regexes = Vec::new();
        for pattern in patterns {
            match compile_one(pattern)? {
                Ok(s) => simple.push(s),
                Err(regex) => regexes.push(format!("(?:{regex})")),
            }
        }
        let regex = if regexes.is_empty() {
            None
        } else {
            let joined = regexes.join("|");
            Some(
                Regex::new(&joined)
                    .map_err(|e| format!("invalid glob in {}: {e}", patterns.join(", ")))?,
            )
        };
        Ok(Self {
            simple,
            regex,
            source: patterns.to_vec(),
        })
    }

    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.simple.iter().any(|g| g.is_match(text))
            || self
                .regex
                .as_ref()
                .is_some_and(|r| r.is_match(text.as_bytes()))
    }

    /// The patterns as written.
    pub(crate) fn patterns(&self) -> &[String] {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn globs(patterns: &[&str]) -> Globs {
        let owned: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        Globs::compile(&owned).expect("valid globs")
    }

    #[test]
    fn star_crosses_slashes_and_dots() {
        let g = globs(&["postgres://prod/*"]);
        assert!(g.is_match("postgres://prod/customers"));
        assert!(g.is_match("postgres://prod/customers/orders.2024"));
        assert!(!g.is_match("postgres://staging/customers"));
        assert!(globs(&["db.*"]).is_match("db.export.csv"));
        assert!(globs(&["*"]).is_match(""));
        assert!(globs(&["mcp.tool.*.delete_*"]).is_match("mcp.tool.github/x.delete_repo"));
    }

    #[test]
    fn question_mark_is_one_character() {
        let g = globs(&["db.quer?"]);
        assert!(g.is_match("db.query"));
        assert!(!g.is_match("db.quer"));
        assert!(!g.is_match("db.queryy"));
    }

    #[test]
    fn literals_match_exactly_and_lists_match_any() {
        let g = globs(&["db.query", "db.export"]);
        assert!(g.is_match("db.query"));
        assert!(g.is_match("db.export"));
        assert!(!g.is_match("db.query2"));
        assert!(!g.is_match("Db.query"));
        assert!(globs(&["*.prod"]).is_match("db.prod"));
        assert!(!globs(&["*.prod"]).is_match("db.prod2"));
        assert!(globs(&["agent:{ci,deploy}-*"]).is_match("agent:ci-runner"));
        assert!(globs(&[r"literal\*"]).is_match("literal*"));
        let several = globs(&["svc.{create,delete}", "ops.*.restart", "x?", "plain"]);
        for yes in ["svc.create", "svc.delete", "ops.a.b.restart", "xy", "plain"] {
            assert!(several.is_match(yes), "{yes}");
        }
        for no in [
            "svc.update",
            "ops.restart.now",
            "x",
            "plainer",
            "svc.createx",
        ] {
            assert!(!several.is_match(no), "{no}");
        }
        assert!(!globs(&[r"literal\*"]).is_match("literalx"));
    }

    #[test]
    fn refuses_broken_globs() {
        assert!(Globs::compile(&["db.[".to_string()]).is_err());
        assert!(Globs::compile(&[String::new()]).is_err());
    }
}
