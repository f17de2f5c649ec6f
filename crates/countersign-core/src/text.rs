//! Text that comes from outside (an agent's kind, resource, justification and params, a
//! person's comment, a principal's name) made safe to show to an approver. Such text must not
//! forge or control what the approver sees: a newline could add a fake field to the CLI's
//! output, an escape sequence (ANSI CSI, OSC 8 hyperlinks, OSC 52 clipboard writes, the C1
//! CSI U+009B) reaches the approver's terminal, and a bidirectional override makes
//! `exe.txt` of `txt.exe` in a browser, a chat client or a terminal alike.
//!
//! [`visible`] is the one function that renders such text for people: every control
//! character (C0, DEL, C1) and every bidirectional control is replaced by a visible escape.
//! [`json_string`] is the same rule for a JSON string literal. [`is_bidi_control`] is the set
//! that `Action::validate` refuses in `kind` and `resource`.
//!
//! Pure: no I/O.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The bidirectional formatting characters: the embeddings and overrides (U+202A–U+202E), the
/// isolates (U+2066–U+2069), and the implicit marks (U+200E LRM, U+200F RLM, U+061C ALM).
/// The marks cannot reorder text by themselves, but they change how neighbouring neutral
/// characters (`.`, `/`, digits) are placed, which is enough to make a path or a number read
/// differently; none of them has a place in a kind or a resource.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// True for every character [`visible`] escapes: the controls (C0, DEL, C1; `char::is_control`
/// is exactly Unicode's `Cc`), the bidirectional controls, and the line and paragraph
/// separators U+2028/U+2029 (a line break in browsers' and some clients' text layout).
pub fn needs_escape(c: char) -> bool {
    c.is_control() || is_bidi_control(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `s` with every character of [`needs_escape`] replaced by a visible escape: `\n`, `\r`, `\t`
/// for the three common ones, `\x1b` for the rest of C0 and DEL, `\u{9b}` for C1 and the
/// others. Borrowed when there is nothing to escape (the common case: no allocation).
///
/// A backslash is left as it is, so paths and regexes read as written; text that spells out
/// `\n` with a backslash forges nothing, since it cannot start a line or reach the terminal.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `s` with only the bidirectional controls replaced by visible escapes (`\u{202e}`): for
/// whole HTML pages, whose own line breaks are layout, where a bidi control in any text would
/// still reorder what the browser shows.
pub fn visible_bidi(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_bidi_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if is_bidi_control(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `s` as a JSON string literal (quoted), escaping what JSON requires and, as `\uXXXX`, every
/// character of [`needs_escape`]: still valid JSON that parses back to `s`, and safe to show.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approver_text_cannot_forge_output_controls_become_visible_escapes() {
        let cases = [
            ("a\nstate     approved", "a\\nstate     approved"),
            ("x\r\ty", "x\\r\\ty"),
            ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
            (
                "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07",
                "\\x1b]8;;https://evil.example\\x07click\\x1b]8;;\\x07",
            ),
            (
                "\x1b]52;c;cm0gLXJmIH4=\x1b\\",
                "\\x1b]52;c;cm0gLXJmIH4=\\x1b\\",
            ),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("del\u{7f}", "del\\x7f"),
            ("nul\0", "nul\\x00"),
            ("abc\u{202e}txt.exe", "abc\\u{202e}txt.exe"),
            (
                "\u{2066}\u{2069}\u{200e}\u{200f}\u{61c}",
                "\\u{2066}\\u{2069}\\u{200e}\\u{200f}\\u{61c}",
            ),
            ("line\u{2028}sep", "line\\u{2028}sep"),
        ];
        for (raw, shown) in cases {
            assert_eq!(visible(raw), shown, "{raw:?}");
            assert!(!visible(raw).chars().any(needs_escape));
        }
    }

    #[test]
    fn only_bidi_is_escaped_in_pages() {
        assert_eq!(visible_bidi("<p>a\u{202e}b\n</p>"), "<p>a\\u{202e}b\n</p>");
        assert!(matches!(visible_bidi("<p>\n</p>"), Cow::Borrowed(_)));
    }

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for s in [
            "db.export",
            "postgres://prod/customers",
            "Grüße, 日本語 ✅",
            "C:\\temp",
        ] {
            assert!(matches!(visible(s), Cow::Borrowed(x) if x == s));
        }
    }

    #[test]
    fn json_strings_stay_json_and_escape_what_could_forge() {
        for s in [
            "plain",
            "a\"b\\c",
            "\n\x1b[31m\u{9b}\u{202e}\u{2069}\u{7f}",
            "日本",
        ] {
            let quoted = json_string(s);
            assert!(!quoted.chars().any(needs_escape), "{quoted}");
            let back: String = serde_json::from_str(&quoted).unwrap();
            assert_eq!(back, s);
        }
        assert_eq!(json_string("\u{202e}"), "\"\\u202e\"");
    }

    #[test]
    fn the_bidi_set_is_the_overrides_isolates_and_marks() {
        let bidi: Vec<char> = ('\0'..='\u{FFFF}')
            .filter(|c| is_bidi_control(*c))
            .collect();
        assert_eq!(
            bidi,
            [
                '\u{61C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}',
                '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}'
            ]
        );
    }
}
