//! The policy crate's black-box tests, in one binary so the link step happens once: loading and
//! its errors, evaluation (first match, globs, failing closed), the sample policy and the example
//! cases, `explain`, and property tests.

mod evaluation;
mod examples;
mod load_errors;
mod properties;
mod sample;
mod support;
