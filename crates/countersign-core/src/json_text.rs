//! The text of a JSON body as it arrived, checked before it is parsed: every number means
//! exactly one IEEE double, and no object has the same key twice. Parsing loses both facts
//! (`serde_json` rounds `9007199254740993.0` to ...992 and keeps the last of two equal keys), so
//! once a body is a `serde_json::Value`, two different texts can have become one action and one
//! digest, while an approver or an executor may have read the other. Every entry point that
//! reads JSON from outside (the HTTP API, the MCP gateway, Slack and Teams callbacks, the CLI's
//! `--params`) runs [`check`] on the bytes first.
//!
//! What "means one number" is, precisely: the text is parsed to the nearest double (correct
//! rounding), that double is printed as RFC 8785 prints numbers (the shortest decimal that reads
//! back as the same double, ECMAScript's `Number.prototype.toString`), and the two decimal
//! values must be equal. So `1`, `1.0`, `1e2`, `0.1` and `2.5E-3` are accepted (the canonical
//! form `1`, `1`, `100`, `0.1`, `0.0025` has the same value), while `9007199254740993`,
//! `9007199254740993.0`, `1e400` (no double), `1e-400` (rounds to zero), `18446744073709551616`
//! (the double prints as `18446744073709552000`) and
//! `0.1000000000000000055511151231257827` (prints as `0.1`) are refused. Negative zero is
//! refused too: RFC 8785 prints it as `0`, so `-0` and `0` would share a digest while an
//! executor forwards `-0.0`.
//!
//! The scan is one pass over the bytes with no allocation for keys without escapes. It does not
//! replace the parser: on anything that is not JSON it stops and answers `Ok`, and the caller's
//! parser then refuses the body with its own message. Pure: no I/O.

use std::borrow::Cow;
use std::fmt;

/// Deepest nesting scanned; `serde_json` refuses deeper documents (its recursion limit is 128).
const MAX_DEPTH: usize = 128;
/// How much of an offending key or number an error message quotes.
const QUOTE_LIMIT: usize = 80;

/// Why a JSON text is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTextError {
    /// A number whose text does not round-trip exactly through an IEEE double.
    ImpreciseNumber { path: String, text: String },
    /// An object with two members of the same name (after unescaping).
    DuplicateKey { path: String, key: String },
}

impl JsonTextError {
    /// The stable machine code of the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            JsonTextError::ImpreciseNumber { .. } => "imprecise_number",
            JsonTextError::DuplicateKey { .. } => "duplicate_key",
        }
    }
}

impl fmt::Display for JsonTextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JsonTextError::ImpreciseNumber { path, text } => write!(
                f,
                "the number {text} at `{path}` does not mean exactly one value: an IEEE double \
                 cannot hold it exactly (integers beyond ±2^53, more digits than a double keeps, \
                 out of range, or negative zero), so it could be read as another number; send it \
                 as a string"
            ),
            JsonTextError::DuplicateKey { path, key } => write!(
                f,
                "the object at `{path}` has the key {key:?} more than once; every key may appear \
                 only once, so that everyone reads the same value"
            ),
        }
    }
}

impl std::error::Error for JsonTextError {}

/// Checks a JSON text: every number means one double, every object's keys are distinct. Text
/// that is not JSON is left to the parser (answered `Ok`).
pub fn check(text: &[u8]) -> Result<(), JsonTextError> {
    Scanner {
        text,
        pos: 0,
        frames: Vec::new(),
    }
    .run()
}

/// Whether `text`, a JSON number, means exactly one IEEE double (see the module's doc). `false`
/// also for text that is not a JSON number.
pub fn number_means_one_thing(text: &str) -> bool {
    number_verdict(text) == Some(true)
}

/// `None`: not a JSON number at all (a syntax error, for the parser to report).
fn number_verdict(text: &str) -> Option<bool> {
    let bytes = text.as_bytes();
    // The common case: a short integer. Up to 15 digits is below 2^53, and a double prints it
    // back as the same digits.
    let digits = bytes.strip_prefix(b"-").unwrap_or(bytes);
    if !digits.is_empty()
        && digits.len() <= 15
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || digits.len() == 1)
    {
        return Some(!(bytes[0] == b'-' && digits == b"0"));
    }
    let decimal = Decimal::parse(bytes)?;
    if decimal.digits.is_empty() {
        // Zero, in any spelling; negative zero is refused (RFC 8785 prints it as `0`).
        return Some(!decimal.negative);
    }
    // Up to 15 significant digits within the normal range: distinct such decimals read as
    // distinct doubles (DBL_DIG is 15), so the shortest decimal of the double is this one.
    if decimal.digits.len() <= 15 && (-306..=308).contains(&decimal.exponent) {
        return Some(true);
    }
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || value == 0.0 {
        return Some(false);
    }
    let mut buffer = ryu_js::Buffer::new();
    let shortest = buffer.format_finite(value);
    Some(Decimal::parse(shortest.as_bytes()).as_ref() == Some(&decimal))
}

/// A decimal number as sign, significant digits (no leading or trailing zeros) and the power of
/// ten of the first digit's position: value = 0.d1d2… × 10^exponent. Two spellings of one value
/// give equal `Decimal`s.
#[derive(Debug, PartialEq, Eq)]
struct Decimal<'a> {
    negative: bool,
    digits: Cow<'a, [u8]>,
    exponent: i64,
}

impl<'a> Decimal<'a> {
    /// Parses the JSON number grammar (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`), also
    /// with a `+` exponent sign as ECMAScript prints it. `None` for anything else.
    fn parse(text: &'a [u8]) -> Option<Self> {
        let (negative, rest) = match text.strip_prefix(b"-") {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (int, rest) = rest.split_at(int_len);
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let (frac, rest) = match rest.strip_prefix(b".") {
            Some(after) => {
                let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
                if n == 0 {
                    return None;
                }
                after.split_at(n)
            }
            None => (&rest[..0], rest),
        };
        let exponent = match rest.first() {
            None => 0,
            Some(b'e' | b'E') => {
                let mut exp = &rest[1..];
                let negative_exp = match exp.first() {
                    Some(b'-') => {
                        exp = &exp[1..];
                        true
                    }
                    Some(b'+') => {
                        exp = &exp[1..];
                        false
                    }
                    _ => false,
                };
                if exp.is_empty() || !exp.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                // Saturates far beyond any double's range: such numbers are refused anyway
                // (they parse to infinity or zero), and saturation keeps the arithmetic safe.
                let magnitude = exp.iter().fold(0i64, |acc, d| {
                    (acc * 10 + i64::from(d - b'0')).min(1_000_000_000)
                });
                if negative_exp { -magnitude } else { magnitude }
            }
            Some(_) => return None,
        };
        // All digits with the point after `int`; strip leading zeros (moving the point) and
        // trailing zeros (which do not).
        let leading = int.iter().chain(frac).take_while(|&&d| d == b'0').count();
        let all: Cow<'a, [u8]> = if frac.is_empty() {
            Cow::Borrowed(int)
        } else {
            Cow::Owned([int, frac].concat())
        };
        let significant_end = all.len()
            - all[leading..]
                .iter()
                .rev()
                .take_while(|&&d| d == b'0')
                .count();
        let point = int.len() as i64 - leading as i64;
        let digits = match all {
            Cow::Borrowed(b) => Cow::Borrowed(&b[leading..significant_end]),
            Cow::Owned(v) => Cow::Owned(v[leading..significant_end].to_vec()),
        };
        Some(Decimal {
            negative,
            exponent: if digits.is_empty() {
                0
            } else {
                point + exponent
            },
            digits,
        })
    }
}

/// One open object or array.
enum Frame<'a> {
    Object {
        keys: Vec<Cow<'a, [u8]>>,
        /// Whether the next string is a key (after `{` or `,`).
        expect_key: bool,
    },
    Array {
        index: usize,
    },
}

struct Scanner<'a> {
    text: &'a [u8],
    pos: usize,
    frames: Vec<Frame<'a>>,
}

impl<'a> Scanner<'a> {
    fn run(mut self) -> Result<(), JsonTextError> {
        let text = self.text;
        while self.pos < text.len() {
            let b = text[self.pos];
            match b {
                b' ' | b'\t' | b'\n' | b'\r' | b':' => self.pos += 1,
                b'{' => {
                    if self.frames.len() >= MAX_DEPTH {
                        return Ok(());
                    }
                    self.frames.push(Frame::Object {
                        keys: Vec::new(),
                        expect_key: true,
                    });
                    self.pos += 1;
                }
                b'[' => {
                    if self.frames.len() >= MAX_DEPTH {
                        return Ok(());
                    }
                    self.frames.push(Frame::Array { index: 0 });
                    self.pos += 1;
                }
                b'}' | b']' => {
                    if let Some(Frame::Object { keys, .. }) = self.frames.last()
                        && let Some(key) = first_duplicate(keys)
                    {
                        let key = quote(&String::from_utf8_lossy(key));
                        return Err(JsonTextError::DuplicateKey {
                            path: self.path(false),
                            key,
                        });
                    }
                    self.frames.pop();
                    self.pos += 1;
                }
                b',' => {
                    match self.frames.last_mut() {
                        Some(Frame::Object { expect_key, .. }) => *expect_key = true,
                        Some(Frame::Array { index }) => *index += 1,
                        None => return Ok(()),
                    }
                    self.pos += 1;
                }
                b'"' => {
                    let Some((raw, escaped)) = self.string() else {
                        return Ok(());
                    };
                    if let Some(Frame::Object { keys, expect_key }) = self.frames.last_mut()
                        && *expect_key
                    {
                        *expect_key = false;
                        let key = if escaped {
                            match unescape(raw) {
                                Some(k) => Cow::Owned(k.into_bytes()),
                                None => return Ok(()),
                            }
                        } else {
                            Cow::Borrowed(raw)
                        };
                        keys.push(key);
                    }
                }
                b'-' | b'0'..=b'9' => {
                    let start = self.pos;
                    while self.pos < text.len()
                        && matches!(
                            text[self.pos],
                            b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'
                        )
                    {
                        self.pos += 1;
                    }
                    let token = std::str::from_utf8(&text[start..self.pos]).unwrap_or_default();
                    match number_verdict(token) {
                        Some(true) => {}
                        Some(false) => {
                            return Err(JsonTextError::ImpreciseNumber {
                                path: self.path(true),
                                text: quote(token),
                            });
                        }
                        None => return Ok(()),
                    }
                }
                b't' | b'f' | b'n' => {
                    while self.pos < text.len() && text[self.pos].is_ascii_alphabetic() {
                        self.pos += 1;
                    }
                }
                _ => return Ok(()),
            }
        }
        Ok(())
    }

    /// The string starting at `pos` (its raw bytes between the quotes, and whether it has
    /// escapes); `pos` moves past it. `None` when it is not closed.
    fn string(&mut self) -> Option<(&'a [u8], bool)> {
        let text = self.text;
        let start = self.pos + 1;
        let mut i = start;
        let mut escaped = false;
        while i < text.len() {
            match text[i] {
                b'"' => {
                    self.pos = i + 1;
                    return Some((&text[start..i], escaped));
                }
                b'\\' => {
                    escaped = true;
                    i += 2;
                }
                _ => i += 1,
            }
        }
        None
    }

    /// Where the scan is, as `params.items[2].id`; `with_last` includes the member or element
    /// being read in the innermost frame (for a number), otherwise the innermost frame itself
    /// (for a duplicate key).
    fn path(&self, with_last: bool) -> String {
        let mut out = String::new();
        let count = self.frames.len();
        for (i, frame) in self.frames.iter().enumerate() {
            if i + 1 == count && !with_last {
                break;
            }
            match frame {
                Frame::Object { keys, .. } => {
                    if let Some(key) = keys.last() {
                        let key = String::from_utf8_lossy(key);
                        let plain = !key.is_empty()
                            && key
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                        if plain {
                            if !out.is_empty() {
                                out.push('.');
                            }
                            out.push_str(&key);
                        } else {
                            out.push_str(&format!("[{}]", quote(&key)));
                        }
                    }
                }
                Frame::Array { index } => out.push_str(&format!("[{index}]")),
            }
        }
        if out.is_empty() {
            out.push('$');
        }
        out
    }
}

/// A key's text after JSON unescaping (the same rules as the parser, by using it); `None` when
/// the escapes are invalid, which the parser will refuse.
fn unescape(raw: &[u8]) -> Option<String> {
    if !raw.contains(&b'\\') {
        return std::str::from_utf8(raw).ok().map(str::to_string);
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

/// The first key that occurs twice. Few keys: compared pairwise; many: sorted, so an object
/// with a hundred thousand keys costs n log n, not n².
fn first_duplicate<'k>(keys: &'k [Cow<'_, [u8]>]) -> Option<&'k [u8]> {
    if keys.len() <= 16 {
        for (i, a) in keys.iter().enumerate() {
            if keys[..i].iter().any(|b| b == a) {
                return Some(a);
            }
        }
        return None;
    }
    let mut sorted: Vec<&[u8]> = keys.iter().map(|k| k.as_ref()).collect();
    sorted.sort_unstable();
    sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
}

/// `text` for an error message: shortened, with a mark when cut.
fn quote(text: &str) -> String {
    if text.chars().count() <= QUOTE_LIMIT {
        return text.to_string();
    }
    let mut out: String = text.chars().take(QUOTE_LIMIT).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests;
