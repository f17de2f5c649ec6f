//! The Countersign gateway, composed: the one configuration file (`config`, built from each
//! subsystem's own section), the router over the `/v1` API, the chat channels' endpoints, MCP
//! and the console (`router`), and `serve`, which opens the store, builds the application
//! service and runs the background duties.
//!
//! The roles it composes are crates of their own, and arrows only run down:
//! `countersign-app` (the Gateway) ← `countersign-http` (the API and the one HTTP error
//! mapping) ← `countersign-console`, `countersign-channels`, `countersign-mcp` ← this crate ←
//! the `countersign` binary.
#![forbid(unsafe_code)]

pub mod config;
pub mod router;
pub mod serve;
pub mod telemetry;

pub use config::Config;
pub use serve::{Running, start};
