//! The Countersign gateway: it loads configuration and policy, authenticates callers, runs the
//! decision flow (authenticate → evaluate policy → record → notify → collect votes → decide →
//! grant → record) and serves it over HTTP.
//!
//! Architecture invariant: this crate owns the wire. It is the only place that maps domain
//! refusals to HTTP statuses and machine codes (`http::error`), and the only place that
//! serializes wire types (`wire`). It holds no decision rule of its own: state transitions are
//! the core's, decisions are the policy's, durability is the store's.
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod audit;
pub mod auth;
pub mod channels;
pub mod config;
pub mod console;
pub mod directory;
pub mod evaluator;
pub mod gateway;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod policy_source;
pub mod serve;
pub mod waiters;
pub mod wire;

pub use config::Config;
pub use serve::{Running, start};
