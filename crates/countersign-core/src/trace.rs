//! W3C Trace Context (Level 1): the `traceparent` an agent's call carried, recorded on its
//! request and on every audit entry about it, so an approval can be found from the agent's
//! trace. Only its form is checked here; an invalid value is ignored (not recorded), as the
//! specification asks of a receiver, and never refuses the call.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A valid `traceparent`, normalized to version `00`'s 55 characters
/// (`00-<trace-id>-<parent-id>-<flags>`, lower-case hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent(String);

impl TraceParent {
    /// Parses a header value (spaces and tabs around it allowed). Version `ff` and all-zero
    /// ids are invalid; a later version's extra fields after the fourth are dropped.
    pub fn parse(s: &str) -> Option<TraceParent> {
        let s = s.trim_matches([' ', '\t']);
        let bytes = s.as_bytes();
        if bytes.len() < 55 {
            return None;
        }
        let hex = |b: &[u8]| {
            b.iter()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
        };
        let (version, trace, parent, flags) =
            (&bytes[0..2], &bytes[3..35], &bytes[36..52], &bytes[53..55]);
        let dashes = bytes[2] == b'-' && bytes[35] == b'-' && bytes[52] == b'-';
        let well_formed = dashes
            && [version, trace, parent, flags].iter().all(|f| hex(f))
            && version != b"ff"
            && trace.iter().any(|&c| c != b'0')
            && parent.iter().any(|&c| c != b'0');
        // Version 00 is exactly these fields; a later one may add more after a dash.
        let length_ok = match version {
            b"00" => bytes.len() == 55,
            _ => bytes.len() == 55 || bytes[55] == b'-',
        };
        (well_formed && length_ok).then(|| TraceParent(format!("00-{}", &s[3..55])))
    }

    /// The trace id (32 hex digits), what a tracing system searches by.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TraceParent {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TraceParent::parse(&s).ok_or_else(|| format!("not a W3C traceparent: {s:?}"))
    }
}

impl From<TraceParent> for String {
    fn from(t: TraceParent) -> String {
        t.0
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_is_recorded_only_when_well_formed() {
        let t = TraceParent::parse(GOOD).expect("the specification's example");
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceParent::parse(&format!(" {GOOD}\t")).unwrap(), t);
        // A later version: its first four fields, as version 00.
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-adds";
        assert_eq!(TraceParent::parse(later).unwrap(), t);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0é",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
