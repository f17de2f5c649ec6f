//! Secret references in the executors' configuration, and the one place that keeps their values
//! out of every outcome.
//!
//! A configured string may hold `${env:NAME}` (the gateway's environment variable) and
//! `${file:/path}` (a file's content, one trailing newline removed) anywhere in it; `$${` is a
//! literal `${`. They are resolved once, at start: a missing variable or file stops the start
//! with an error that names it, never a value. Every resolved value is remembered by the
//! [`Redactor`], which replaces it with `[redacted]` in every outcome before it is recorded.

use countersign_core::{HttpOutcome, Outcome};
use std::collections::BTreeSet;

/// What replaces a secret value in an outcome.
pub const REDACTED: &str = "[redacted]";

/// The shortest secret value accepted: a shorter one could not be told apart from ordinary
/// output, so it could not be kept out of it.
pub const MIN_SECRET_LEN: usize = 4;

/// Where a resolver reads environment variables.
type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send>;

/// Resolves references, remembering every value it produced.
pub struct Resolver {
    env: EnvLookup,
    secrets: BTreeSet<String>,
}

impl Resolver {
    /// Reads variables from the process environment.
    pub fn from_env() -> Self {
        Self::with_env(|name| std::env::var(name).ok())
    }

    /// Reads variables through `env` (tests).
    pub fn with_env(env: impl Fn(&str) -> Option<String> + Send + 'static) -> Self {
        Resolver {
            env: Box::new(env),
            secrets: BTreeSet::new(),
        }
    }

    /// `text` with its references replaced by their values.
    pub fn resolve(&mut self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            if let Some(after) = rest.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
                continue;
            }
            let Some(inner) = rest.strip_prefix("${") else {
                out.push('$');
                rest = &rest[1..];
                continue;
            };
            let end = inner
                .find('}')
                .ok_or_else(|| format!("`${{` without its `}}` in {:?}", redact_hint(text)))?;
            let reference = &inner[..end];
            rest = &inner[end + 1..];
            let value = match reference.split_once(':') {
                Some(("env", name)) if !name.is_empty() => (self.env)(name)
                    .ok_or_else(|| format!("the environment variable {name} is not set"))?,
                Some(("file", path)) if !path.is_empty() => {
                    let mut content = std::fs::read_to_string(path)
                        .map_err(|e| format!("cannot read the secret file {path}: {e}"))?;
                    if content.ends_with('\n') {
                        content.pop();
                        if content.ends_with('\r') {
                            content.pop();
                        }
                    }
                    content
                }
                _ => {
                    return Err(format!(
                        "`${{{reference}}}` is not a reference: write ${{env:NAME}} or \
                         ${{file:/path}} (and $${{ for a literal ${{)"
                    ));
                }
            };
            if value.chars().count() < MIN_SECRET_LEN {
                return Err(format!(
                    "the secret `${{{reference}}}` is shorter than {MIN_SECRET_LEN} characters, \
                     too short to keep out of outputs"
                ));
            }
            self.remember(&value);
            out.push_str(&value);
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Remembers `value`, each long line of it, and the password of a URL it is.
    fn remember(&mut self, value: &str) {
        self.secrets.insert(value.to_owned());
        for line in value.lines().map(str::trim) {
            if line.len() >= 8 {
                self.secrets.insert(line.to_owned());
            }
        }
        if let Ok(url) = url::Url::parse(value)
            && let Some(password) = url.password()
        {
            for form in [password.to_owned(), percent_decode(password)] {
                if form.chars().count() >= MIN_SECRET_LEN {
                    self.secrets.insert(form);
                }
            }
        }
    }

    pub fn into_redactor(self) -> Redactor {
        // Longest first, so a value that contains another is replaced whole.
        let mut values: Vec<String> = self.secrets.into_iter().collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Redactor { values }
    }
}

/// The text of a config string with its references shown, not resolved (for errors).
fn redact_hint(text: &str) -> String {
    text.chars().take(60).collect()
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_owned())
}

/// Replaces every secret value with [`REDACTED`].
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: Vec<String>,
}

impl Redactor {
    /// `text` with every secret value replaced.
    pub fn text(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), REDACTED);
            }
        }
        out
    }

    fn json(&self, value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => *s = self.text(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.json(v)),
            serde_json::Value::Object(map) => {
                let entries = std::mem::take(map);
                for (k, mut v) in entries {
                    self.json(&mut v);
                    map.insert(self.text(&k), v);
                }
            }
            _ => {}
        }
    }

    /// `outcome` with every secret value replaced in every text it carries.
    pub fn outcome(&self, mut outcome: Outcome) -> Outcome {
        if self.values.is_empty() {
            return outcome;
        }
        let text = |s: &mut Option<String>| {
            if let Some(v) = s {
                *v = self.text(v);
            }
        };
        text(&mut outcome.stdout);
        text(&mut outcome.stderr);
        text(&mut outcome.error);
        if let Some(HttpOutcome { headers, body, .. }) = &mut outcome.http {
            *body = self.text(body);
            *headers = std::mem::take(headers)
                .into_iter()
                .map(|(k, v)| (self.text(&k), self.text(&v)))
                .collect();
        }
        if let Some(columns) = &mut outcome.columns {
            columns.iter_mut().for_each(|c| *c = self.text(c));
        }
        if let Some(rows) = &mut outcome.rows {
            rows.iter_mut().flatten().for_each(|v| self.json(v));
        }
        outcome
    }

    /// Whether `text` holds a secret value (tests, and a last check before logging).
    pub fn leaks(&self, text: &str) -> bool {
        self.values.iter().any(|v| text.contains(v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        Resolver::with_env(|n| match n {
            "TOKEN" => Some("s3cr3t-token-value".into()),
            "SHORT" => Some("ab".into()),
            "DB" => Some("postgres://app:p%40ss-word@db.example/prod".into()),
            _ => None,
        })
    }

    #[test]
    fn references_resolve_anywhere_in_a_string() {
        let mut r = resolver();
        assert_eq!(
            r.resolve("Bearer ${env:TOKEN}").unwrap(),
            "Bearer s3cr3t-token-value"
        );
        assert_eq!(
            r.resolve("plain $x and $${env:X}").unwrap(),
            "plain $x and ${env:X}"
        );
        let dir = std::env::temp_dir().join(format!("cs-secret-{}", std::process::id()));
        std::fs::write(&dir, "file-secret-value\n").unwrap();
        let text = format!("${{file:{}}}", dir.display());
        assert_eq!(r.resolve(&text).unwrap(), "file-secret-value");
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn a_bad_reference_is_an_error_that_shows_no_value() {
        let mut r = resolver();
        for (text, says) in [
            ("${env:MISSING}", "MISSING is not set"),
            ("${env:SHORT}", "shorter than"),
            ("${vault:x}", "not a reference"),
            ("${env:TOKEN", "without its"),
            ("${file:/nonexistent/countersign}", "cannot read"),
        ] {
            let e = r.resolve(text).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
    }

    #[test]
    fn every_secret_value_is_redacted_from_outcomes() {
        let mut r = resolver();
        r.resolve("${env:TOKEN}").unwrap();
        r.resolve("${env:DB}").unwrap();
        let red = r.into_redactor();
        let mut o = Outcome::with_error(
            countersign_core::ExecStatus::Failed,
            "auth with s3cr3t-token-value failed; password p@ss-word",
        );
        o.stdout = Some("x p%40ss-word y".into());
        o.http = Some(HttpOutcome {
            status: 200,
            headers: [("x-echo".into(), "Bearer s3cr3t-token-value".into())].into(),
            body: "{\"token\":\"s3cr3t-token-value\"}".into(),
        });
        o.rows = Some(vec![vec![serde_json::json!({"k": ["s3cr3t-token-value"]})]]);
        let o = red.outcome(o);
        let text = serde_json::to_string(&o).unwrap();
        assert!(!red.leaks(&text), "{text}");
        assert!(text.contains(REDACTED));
    }
}
