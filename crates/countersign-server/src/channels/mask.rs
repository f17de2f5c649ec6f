//! Hiding secrets before an action's params leave the gateway in a chat message. A value is
//! masked when its key is named like a secret (`token`, `password`, `api_key`, ...) or when the
//! value itself looks like a credential (a known key prefix, a JWT, a PEM private key, or a
//! long random-looking token). The full params stay available to authorized callers of the API.

use serde_json::Value;

/// What replaces a masked value.
pub const MASK: &str = "••••••";

/// Key fragments that name a secret (compared case-insensitively, ignoring `-` and `_`).
const SECRET_KEYS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "accesskey",
    "privatekey",
    "credential",
    "authorization",
    "cookie",
    "sessionid",
];

/// Prefixes of well-known credential formats.
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
    "-----BEGIN",
    "cs_",
];

/// Returns `params` with every secret-looking value replaced by [`MASK`].
pub fn mask(params: &Value) -> Value {
    match params {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        Value::String(MASK.into())
                    } else {
                        mask(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask).collect()),
        Value::String(s) if looks_like_key(s) => Value::String(MASK.into()),
        other => other.clone(),
    }
}

/// Masks a free-text string that is, as a whole, a credential.
pub fn mask_text(text: &str) -> &str {
    if looks_like_key(text) { MASK } else { text }
}

fn is_secret_key(key: &str) -> bool {
    let folded: String = key
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.iter().any(|s| folded.contains(s))
}

fn looks_like_key(value: &str) -> bool {
    let v = value.trim();
    if KEY_PREFIXES
        .iter()
        .any(|p| v.starts_with(p) && v.len() >= p.len() + 8)
    {
        return true;
    }
    if v.contains("PRIVATE KEY") {
        return true;
    }
    // A JWT: three base64url parts, the first a JSON header (`eyJ` = `{"`).
    if v.starts_with("eyJ") && v.split('.').count() == 3 && !v.contains(' ') {
        return true;
    }
    looks_random(v)
}

/// A long run of token characters mixing letters and digits, with no spaces: how generated
/// keys look, and how prose, paths and ids mostly do not.
fn looks_random(v: &str) -> bool {
    if v.len() < 32 || v.len() > 4096 || looks_like_id(v) {
        return false;
    }
    let token_chars = v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'));
    if !token_chars {
        return false;
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let upper = v.chars().filter(char::is_ascii_uppercase).count();
    let lower = v.chars().filter(char::is_ascii_lowercase).count();
    // Separators every few characters read as words (`a-long-resource-name`), not keys.
    let separators = v.chars().filter(|c| matches!(c, '_' | '-' | '/')).count();
    let classes = [digits, upper, lower].iter().filter(|n| **n > 0).count();
    classes >= 2 && digits * 8 >= v.len() && separators * 6 < v.len()
}

/// Commit hashes, digests, UUIDs and prefixed ids (`req_0192…`) are random-looking but are
/// what a reviewer must see: lowercase hex, optionally after a short word and `_`, or a UUID.
fn looks_like_id(v: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f'));
    let body = match v.split_once('_') {
        Some((word, rest)) if word.len() <= 8 && word.chars().all(|c| c.is_ascii_lowercase()) => {
            rest
        }
        _ => v,
    };
    if hex(body) {
        return true;
    }
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 5
        && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts.iter().all(|p| hex(&p.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_under_secret_keys_are_masked_at_any_depth() {
        let p = json!({"db": {"Password": "hunter2", "host": "db1"}, "API_KEY": "x",
            "headers": [{"Authorization": "Bearer abc"}], "access-token": null});
        let m = mask(&p);
        assert_eq!(m["db"]["Password"], MASK);
        assert_eq!(m["db"]["host"], "db1");
        assert_eq!(m["API_KEY"], MASK);
        assert_eq!(m["headers"][0]["Authorization"], MASK);
        assert_eq!(m["access-token"], Value::Null);
    }

    #[test]
    fn values_that_look_like_keys_are_masked_whatever_their_key() {
        let p = json!({
            "note": "xoxb-1234567890-abcdefghijkl",
            "aws": "AKIAIOSFODNN7EXAMPLE",
            "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
            "random": "9fQ2x7LmA0pZ8cR4tY6uW1vB3nK5sD7eJ2hG",
            "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIE...",
        });
        let m = mask(&p);
        for k in ["note", "aws", "jwt", "random", "pem"] {
            assert_eq!(m[k], MASK, "{k} should be masked");
        }
    }

    #[test]
    fn ordinary_values_are_left_alone() {
        let p = json!({
            "resource": "db://prod/customers",
            "sentence": "Export the monthly report for finance review please",
            "id": "req_0192f3a4b5c6d7e8f9a0b1c2d3e4f5a6",
            "name": "a-very-long-resource-name-with-many-words-in-it",
            "count": 42,
            "commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
            "uuid": "0192F3A4-B5C6-7D8E-9F0A-1B2C3D4E5F6A",
            "sha": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        });
        assert_eq!(mask(&p), p);
    }
}
