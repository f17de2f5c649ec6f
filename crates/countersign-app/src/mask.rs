//! What approvers are shown of an action's params and free text: the one place that decides
//! what is masked, used by every view made for people (Slack and Teams through
//! `channels::review`, the console's request page, the CLI's `show`).
//!
//! The rule (invariant: nothing is hidden from approvers that changes what the action does):
//! only **string leaves** are ever masked — a string whose key is named like a secret
//! (`password`, `api_key`, `clientSecret`, ...; an array's strings take the array's key), or a
//! string that is, as a whole, a credential of a well-known format (`xoxb-…`, `ghp_…`,
//! `AKIA…`, a JWT, a PEM private key). Objects, arrays, numbers, booleans and null are always
//! shown, whatever their key, and the strings inside them are judged by their own keys, so a
//! payload put under `password` is in plain view. A masked string is shown as its length and a
//! short fingerprint, so two masked values can be told apart and an equal one recognised; every
//! view says how many values it masked.
//!
//! The fingerprint is keyed (HMAC-SHA256 under a key derived from the gateway's audit key, the
//! first 32 bits in hex): a plain hash of a short password would give it away to anyone who
//! can read the chat message and try a dictionary. Every replica derives the same key, so a
//! message renders the same wherever it is rendered. The CLI, which has no such key, uses a
//! random one per run ([`Masker::random`]): its fingerprints compare values within one output.
//!
//! Everything shown is also made safe to show (`countersign_core::text`): keys and strings
//! are JSON literals with control and bidirectional characters escaped.
//!
//! Pure: no I/O.

use countersign_core::text;
use serde_json::Value;
use std::borrow::Cow;

/// What a masked value starts with.
pub const MASK: &str = "••••••";

/// Words that name a secret. A key is split into words (at `_`, `-`, `.`, spaces and camelCase
/// boundaries, lowercased); see [`is_secret_key`] for how they are matched (`accesstoken`,
/// `api`+`key`, `clientsecret` name secrets; `tokenizer`, `secretary` do not).
const SECRET_WORDS: &[&str] = &[
    "token",
    "tokens",
    "password",
    "passwords",
    "passwd",
    "passphrase",
    "secret",
    "secrets",
    "apikey",
    "apikeys",
    "accesskey",
    "privatekey",
    "secretkey",
    "signingkey",
    "credential",
    "credentials",
    "authorization",
    "cookie",
    "cookies",
    "sessionid",
];

/// Prefixes of well-known credential formats: a string that is one of them, as a whole, is a
/// credential whatever its key. The rest must be token characters only (see [`is_credential`]).
const KEY_PREFIXES: &[&str] = &[
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xoxr-",
    "xapp-",
    "ghp_",
    "gho_",
    "ghs_",
    "ghu_",
    "github_pat_",
    "glpat-",
    "sk-",
    "sk_live_",
    "rk_live_",
    "AKIA",
    "ASIA",
    "AIza",
    "cs_",
];

/// Computes fingerprints of masked values.
pub struct Masker {
    key: [u8; 32],
}

/// A masked string, as shown: its length in characters and its fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masked {
    pub chars: usize,
    pub fingerprint: String,
}

impl std::fmt::Display for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{MASK}({} chars, fp {})", self.chars, self.fingerprint)
    }
}

/// A piece of shown JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    /// Brackets, commas, colons, newlines and indentation.
    Punct,
    Key,
    Str,
    Num,
    Bool,
    Null,
    /// A masked string (never quoted, so no string value can pass for one).
    Masked,
}

impl Token {
    /// The console's CSS class for the token, if it has one.
    pub fn class(self) -> Option<&'static str> {
        match self {
            Token::Punct => None,
            Token::Key => Some("j-key"),
            Token::Str => Some("j-str"),
            Token::Num => Some("j-num"),
            Token::Bool => Some("j-bool"),
            Token::Null => Some("j-null"),
            Token::Masked => Some("j-mask"),
        }
    }
}

/// Params as shown to people: indented JSON as tokens, and how many strings were masked.
pub struct Shown {
    pub tokens: Vec<(Token, String)>,
    pub masked: usize,
}

impl Shown {
    /// The whole text (JSON, except masked strings, which are unquoted).
    pub fn text(&self) -> String {
        self.tokens.iter().map(|(_, t)| t.as_str()).collect()
    }
}

/// Free text as shown to people: as it is, or masked when it is a credential as a whole.
pub enum ShownText<'a> {
    Plain(Cow<'a, str>),
    Masked(Masked),
}

impl ShownText<'_> {
    pub fn is_masked(&self) -> bool {
        matches!(self, ShownText::Masked(_))
    }
}

impl std::fmt::Display for ShownText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShownText::Plain(s) => f.write_str(s),
            ShownText::Masked(m) => m.fmt(f),
        }
    }
}

/// The sentence every view shows when it masked something: "2 values masked (shown as
/// length and fingerprint)"; `None` when nothing was.
pub fn notice(masked: usize) -> Option<String> {
    match masked {
        0 => None,
        1 => Some("1 value masked (shown as its length and fingerprint)".into()),
        n => Some(format!(
            "{n} values masked (shown as length and fingerprint; equal fingerprints, equal values)"
        )),
    }
}

impl Masker {
    /// The gateway's masker: its key derived from `secret` (the audit key's private form) and
    /// a fixed label, independent of the other keys derived from it.
    pub fn from_secret(secret: &[u8]) -> Masker {
        Masker {
            key: crate::tokens::hmac(secret, &[b"countersign mask fingerprints v1"]),
        }
    }

    /// A masker with a random key: fingerprints that only compare within one process.
    pub fn random() -> Masker {
        Masker {
            key: rand::random(),
        }
    }

    fn masked(&self, s: &str) -> Masked {
        let mac = crate::tokens::hmac(&self.key, &[s.as_bytes()]);
        Masked {
            chars: s.chars().count(),
            fingerprint: hex::encode(&mac[..4]),
        }
    }

    /// `params` as shown to people (see the module's rule).
    pub fn params(&self, params: &Value) -> Shown {
        let mut shown = Shown {
            tokens: Vec::new(),
            masked: 0,
        };
        self.write(params, false, 0, &mut shown);
        shown
    }

    /// Free text (a justification, a comment, an outcome) as shown to people: masked only when
    /// it is, as a whole, a credential; otherwise with control characters made visible.
    pub fn text<'a>(&self, s: &'a str) -> ShownText<'a> {
        if is_credential(s) {
            ShownText::Masked(self.masked(s))
        } else {
            ShownText::Plain(text::visible(s))
        }
    }

    /// Like [`Masker::text`], but keeps line breaks (for views that show text in its own
    /// block, such as the console's "Why" card): every other control is made visible.
    pub fn text_lines<'a>(&self, s: &'a str) -> ShownText<'a> {
        if is_credential(s) {
            return ShownText::Masked(self.masked(s));
        }
        if !s.contains('\n') {
            return ShownText::Plain(text::visible(s));
        }
        let lines: Vec<Cow<str>> = s.split('\n').map(text::visible).collect();
        ShownText::Plain(Cow::Owned(lines.join("\n")))
    }

    fn write(&self, value: &Value, secret_key: bool, depth: usize, out: &mut Shown) {
        let punct = |out: &mut Shown, s: &str| match out.tokens.last_mut() {
            Some((Token::Punct, last)) => last.push_str(s),
            _ => out.tokens.push((Token::Punct, s.to_string())),
        };
        match value {
            Value::Null => out.tokens.push((Token::Null, "null".into())),
            Value::Bool(b) => out.tokens.push((Token::Bool, b.to_string())),
            Value::Number(n) => out.tokens.push((Token::Num, n.to_string())),
            Value::String(s) if secret_key || is_credential(s) => {
                out.masked += 1;
                out.tokens.push((Token::Masked, self.masked(s).to_string()));
            }
            Value::String(s) => out.tokens.push((Token::Str, text::json_string(s))),
            Value::Array(items) if items.is_empty() => punct(out, "[]"),
            Value::Array(items) => {
                punct(out, "[\n");
                for (i, item) in items.iter().enumerate() {
                    punct(out, &"  ".repeat(depth + 1));
                    // An array's strings are what its key names: `"tokens": ["…", "…"]`.
                    self.write(item, secret_key, depth + 1, out);
                    punct(out, if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                punct(out, &"  ".repeat(depth));
                punct(out, "]");
            }
            Value::Object(map) if map.is_empty() => punct(out, "{}"),
            Value::Object(map) => {
                punct(out, "{\n");
                for (i, (k, v)) in map.iter().enumerate() {
                    punct(out, &"  ".repeat(depth + 1));
                    out.tokens.push((Token::Key, text::json_string(k)));
                    punct(out, ": ");
                    // Each member is judged by its own key: a secret key's object is shown.
                    self.write(v, is_secret_key(k), depth + 1, out);
                    punct(out, if i + 1 < map.len() { ",\n" } else { "\n" });
                }
                punct(out, &"  ".repeat(depth));
                punct(out, "}");
            }
        }
    }
}

/// The words of a key: split at separators and at lower-to-upper (camelCase) boundaries,
/// lowercased. `clientSecret` → `client`, `secret`; `API-KEY` → `api`, `key`.
fn words(key: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Words after a secret's name that do not change what it names (`password_confirmation`,
/// `token_value`, `api_key_b64`).
const QUALIFIERS: &[&str] = &[
    "value",
    "confirm",
    "confirmation",
    "b64",
    "base64",
    "hex",
    "raw",
    "plain",
    "plaintext",
    "old",
    "new",
    "current",
    "enc",
    "encrypted",
    "data",
];

/// True when `key` names a secret: its head (the last word, after qualifiers and numbers), or
/// its last two words run together, ends with one of [`SECRET_WORDS`]. The head, because a
/// compound names what its last word names: `password_policy` is a policy and
/// `credentials_file` a path, which approvers must see.
pub fn is_secret_key(key: &str) -> bool {
    let digits = |w: &str| w.trim_end_matches(|c: char| c.is_ascii_digit()).to_string();
    let mut words: Vec<String> = words(key).iter().map(|w| digits(w)).collect();
    while words
        .last()
        .is_some_and(|w| w.is_empty() || QUALIFIERS.contains(&w.as_str()))
    {
        words.pop();
    }
    let names_secret = |w: &str| SECRET_WORDS.iter().any(|s| w.ends_with(s));
    match words.as_slice() {
        [] => false,
        [.., last] if names_secret(last) => true,
        [.., before, last] => names_secret(&format!("{before}{last}")),
        [_] => false,
    }
}

/// True when `value`, as a whole, is a credential of a well-known format: a known prefix then
/// only token characters, a JWT (three base64url parts, the first a JSON header), or a PEM
/// private key. Strict on purpose: anything with spaces, quotes or punctuation is prose, a
/// command or a query, which approvers must read, so a prefix cannot hide a payload.
fn is_credential(value: &str) -> bool {
    let token_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let prefixed = KEY_PREFIXES.iter().any(|p| {
        value.strip_prefix(p).is_some_and(|rest| {
            rest.len() >= 8 && rest.len() <= 512 && rest.chars().all(token_char)
        })
    });
    if prefixed {
        return true;
    }
    let parts: Vec<&str> = value.split('.').collect();
    let jwt = value.starts_with("eyJ")
        && value.len() <= 8192
        && parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(token_char));
    jwt || is_pem_private_key(value)
}

/// A PEM private key block and nothing else: the BEGIN line, base64 lines, the END line.
fn is_pem_private_key(value: &str) -> bool {
    let lines: Vec<&str> = value.trim().lines().map(str::trim).collect();
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return false;
    };
    let label = |l: &str, edge: &str| {
        l.strip_prefix(edge)
            .and_then(|l| l.strip_suffix("-----"))
            .is_some_and(|name| name.ends_with("PRIVATE KEY"))
    };
    let base64 = |l: &&str| {
        l.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))
    };
    lines.len() >= 3
        && label(first, "-----BEGIN ")
        && label(last, "-----END ")
        && lines[1..lines.len() - 1].iter().all(base64)
}

pub mod plan;
#[cfg(test)]
mod tests;
