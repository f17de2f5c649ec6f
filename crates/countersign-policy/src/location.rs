//! Finding where in a YAML file something is written, for error messages: the line of a list
//! item by its `name`, the line of a key inside it, the line of a top-level key. The YAML parser
//! gives locations only for syntax and type errors, so the checks that come after parsing
//! (duplicate names, CEL, approvers) find their line here by reading the text. A line found here
//! is a best effort that only ever improves a message; nothing depends on it being found.

/// The text of a YAML file, split into lines once.
pub(crate) struct SourceText<'t> {
    lines: Vec<&'t str>,
}

impl<'t> SourceText<'t> {
    pub(crate) fn new(text: &'t str) -> Self {
        Self {
            lines: text.lines().collect(),
        }
    }

    /// 1-based line of the top-level `key:` (written at column 0).
    pub(crate) fn top_level_key(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|line| {
                line.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
            .map(|i| i + 1)
    }

    /// 1-based lines where the items of the top-level list `list_key` start (their `- `), found
    /// by their `name:` values, in order. An item whose name cannot be found gets `None`; names
    /// may repeat.
    pub(crate) fn named_items(&self, list_key: &str, names: &[&str]) -> Vec<Option<usize>> {
        let start = self.top_level_key(list_key).unwrap_or(0);
        let mut from = start;
        let mut found = Vec::with_capacity(names.len());
        for name in names {
            let line = (from..self.lines.len())
                .find(|&i| name_value(self.lines[i]).is_some_and(|v| v == *name));
            if let Some(i) = line {
                from = i + 1;
            }
            found.push(line.map(|i| self.item_start(i) + 1));
        }
        found
    }

    /// The 0-based line of the `- ` that opens the list item containing the key on line `at`.
    fn item_start(&self, at: usize) -> usize {
        let indent = |l: &str| l.len() - l.trim_start().len();
        let key_indent = indent(self.lines[at]);
        (0..=at)
            .rev()
            .find(|&i| {
                let line = self.lines[i];
                line.trim_start().starts_with("- ") && (i == at || indent(line) < key_indent)
            })
            .unwrap_or(at)
    }

    /// 1-based line of the first `key:` at or after line `from` (1-based) and before `until`.
    pub(crate) fn key_between(
        &self,
        key: &str,
        from: usize,
        until: Option<usize>,
    ) -> Option<usize> {
        let end = until.map_or(self.lines.len(), |u| {
            u.saturating_sub(1).min(self.lines.len())
        });
        (from.saturating_sub(1)..end)
            .find(|&i| has_key(self.lines[i], key))
            .map(|i| i + 1)
    }
}

/// Whether `line` writes `key:` as a mapping key (at the start, after `- `, `{` or `, `).
fn has_key(line: &str, key: &str) -> bool {
    let code = strip_comment(line);
    code.match_indices(key).any(|(at, _)| {
        let before = code[..at].trim_end();
        let boundary = before.is_empty() || before.ends_with(['-', '{', ',']);
        let after = code[at + key.len()..].trim_start();
        boundary && after.starts_with(':')
    })
}

/// The value of a `name:` key written on this line, unquoted.
fn name_value(line: &str) -> Option<&str> {
    let code = strip_comment(line);
    let (at, _) = code.match_indices("name").find(|(at, _)| {
        let before = code[..*at].trim_end();
        let boundary = before.is_empty() || before.ends_with(['-', '{', ',']);
        boundary && code[at + 4..].trim_start().starts_with(':')
    })?;
    let rest = code[at + 4..].trim_start().strip_prefix(':')?.trim_start();
    let value = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].split(q).next().unwrap_or_default(),
        _ => rest.split([',', '}']).next().unwrap_or_default().trim_end(),
    };
    Some(value)
}

fn strip_comment(line: &str) -> &str {
    match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"version: 1
default: review
rules:
  - name: first   # a comment
    when: 'params.a'
  - effect: allow
    name: "second"
    match: {kind: x}
  - {name: third, effect: deny}
  - name: first
"#;

    #[test]
    fn finds_items_by_name_in_order() {
        let s = SourceText::new(TEXT);
        assert_eq!(s.top_level_key("rules"), Some(3));
        assert_eq!(
            s.named_items("rules", &["first", "second", "third", "first"]),
            vec![Some(4), Some(6), Some(9), Some(10)]
        );
        assert_eq!(s.named_items("rules", &["missing"]), vec![None]);
    }

    #[test]
    fn finds_keys_inside_an_item() {
        let s = SourceText::new(TEXT);
        assert_eq!(s.key_between("when", 4, Some(7)), Some(5));
        assert_eq!(s.key_between("match", 6, Some(9)), Some(8));
        assert_eq!(s.key_between("kind", 6, Some(9)), Some(8));
        assert_eq!(s.key_between("effect", 6, Some(9)), Some(6));
        assert_eq!(s.key_between("when", 6, Some(9)), None);
    }
}
