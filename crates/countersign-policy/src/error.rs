//! The one error type of this crate: what is wrong with a policy file (or a cases file), where,
//! and how to fix it. Every failure to load names the file, and the line and rule when known,
//! so that `countersign policy check` and a refused reload point a person straight at the fix.
//! This module only describes errors; it never decides what counts as one.

use std::fmt;

/// A policy (or policy cases) file that cannot be used. Displays as
/// `policy.yaml:12: rule `prod-export-needs-two`: <what is wrong and how to fix it>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Located(self))]
pub struct PolicyError {
    /// The file name the text came from, as given to [`crate::Policy::parse`] or `load`.
    pub file: String,
    /// 1-based line of the offending text, when it could be found.
    pub line: Option<usize>,
    /// The rule (or, in a cases file, the case) the problem belongs to.
    pub rule: Option<String>,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl PolicyError {
    pub(crate) fn new(file: &str, message: impl Into<String>) -> Self {
        Self {
            file: file.to_string(),
            line: None,
            rule: None,
            message: message.into(),
        }
    }

    pub(crate) fn at(mut self, line: Option<usize>) -> Self {
        self.line = line;
        self
    }

    pub(crate) fn in_rule(mut self, rule: impl Into<String>) -> Self {
        self.rule = Some(rule.into());
        self
    }
}

struct Located<'a>(&'a PolicyError);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        f.write_str(&e.file)?;
        if let Some(line) = e.line {
            write!(f, ":{line}")?;
        }
        f.write_str(": ")?;
        if let Some(rule) = &e.rule {
            write!(f, "rule `{rule}`: ")?;
        }
        f.write_str(&e.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_file_line_rule_and_message() {
        let e = PolicyError::new("policy.yaml", "bad duration")
            .at(Some(12))
            .in_rule("prod-export-needs-two");
        assert_eq!(
            e.to_string(),
            "policy.yaml:12: rule `prod-export-needs-two`: bad duration"
        );
        assert_eq!(
            PolicyError::new("p.yaml", "oops").to_string(),
            "p.yaml: oops"
        );
    }
}
