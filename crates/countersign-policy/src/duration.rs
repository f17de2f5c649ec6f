//! Durations as people write them in policy files: `90s`, `15m`, `1h`, `2h30m`, `1d`. Parsing
//! is strict (units in descending order, each at most once, total above zero) so that a typo is a
//! load error rather than a surprising timeout; this module knows nothing of rules or defaults.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Longest duration accepted anywhere in a policy: a year. Anything longer is almost surely a typo.
const MAX_SECONDS: u64 = 366 * 86_400;

const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];

/// A parsed, positive duration in whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Duration(pub(crate) u64);

/// Parses `2h30m`-style text into seconds, or says what is wrong and how to write it.
pub(crate) fn parse_seconds(text: &str) -> Result<u64, String> {
    let hint = "write a number followed by a unit (s, m, h, d), e.g. `90s`, `15m`, `2h30m`, `1d`";
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(format!("empty duration: {hint}"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    // Index into UNITS of the next unit allowed: each unit once, largest first.
    let mut next_unit = 0;
    for c in trimmed.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let position = UNITS[next_unit..].iter().position(|(u, _)| *u == c);
        let (Some(offset), false) = (position, digits.is_empty()) else {
            return Err(format!("invalid duration `{trimmed}`: {hint}"));
        };
        let (_, unit_seconds) = UNITS[next_unit + offset];
        next_unit += offset + 1;
        let amount: u64 = digits
            .parse()
            .map_err(|_| format!("duration `{trimmed}` is too long"))?;
        digits.clear();
        total = amount
            .checked_mul(unit_seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(|| format!("duration `{trimmed}` is too long"))?;
    }
    if !digits.is_empty() {
        return Err(format!(
            "invalid duration `{trimmed}`: the number {digits} has no unit; {hint}"
        ));
    }
    if total == 0 {
        return Err(format!("duration `{trimmed}` must be longer than zero"));
    }
    if total > MAX_SECONDS {
        return Err(format!(
            "duration `{trimmed}` is longer than the maximum of 366d"
        ));
    }
    Ok(total)
}

/// Formats seconds the way they are written in a policy: `15m`, `2h30m`, `1d`, `0s`.
pub fn format_seconds(seconds: u64) -> String {
    if seconds == 0 {
        return "0s".to_string();
    }
    let mut left = seconds;
    let mut out = String::new();
    for (unit, size) in UNITS {
        let amount = left / size;
        if amount > 0 {
            out.push_str(&amount.to_string());
            out.push(unit);
            left %= size;
        }
    }
    out
}

impl<'de> de::Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;

        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `90s`, `15m`, `2h30m` or `1d`")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                parse_seconds(v).map(Duration).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit: write `{v}s` for seconds or `{v}m` for minutes"
                )))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit: write e.g. `90s`, `15m`, `2h30m`"
                )))
            }
        }

        deserializer.deserialize_any(DurationVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_seconds("90s"), Ok(90));
        assert_eq!(parse_seconds("15m"), Ok(900));
        assert_eq!(parse_seconds("1h"), Ok(3600));
        assert_eq!(parse_seconds("2h30m"), Ok(9000));
        assert_eq!(parse_seconds("1d"), Ok(86_400));
        assert_eq!(parse_seconds("1d2h3m4s"), Ok(93_784));
    }

    #[test]
    fn refuses_what_is_probably_a_typo() {
        for bad in [
            "",
            "0s",
            "0m0s",
            "15",
            "m",
            "15x",
            "1.5h",
            "30m1h",
            "1h1h",
            "-5m",
            "5 m",
            "367d",
            "99999999999999999999s",
        ] {
            assert!(parse_seconds(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(parse_seconds("15").unwrap_err().contains("no unit"));
        assert!(
            parse_seconds("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
    }

    #[test]
    fn formats_back_to_what_people_write() {
        assert_eq!(format_seconds(900), "15m");
        assert_eq!(format_seconds(9000), "2h30m");
        assert_eq!(format_seconds(86_400), "1d");
        assert_eq!(format_seconds(61), "1m1s");
        assert_eq!(format_seconds(0), "0s");
    }
}
