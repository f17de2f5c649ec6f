//! The Countersign application service: the decision flow (the [`gateway::Gateway`]:
//! authenticate → evaluate policy → record → notify → collect votes → decide → grant → record)
//! and what it stands on: API keys and the directory of principals (`auth`, `directory`), the
//! policy source and its evaluation budget, the waiters woken by each change, the audit signer
//! (`audit`), secrets at rest, masking what people are shown, and metrics.
//!
//! Architecture invariant: this crate speaks no protocol. It has no HTTP server or client, no
//! MCP and no chat API (`cargo tree -p countersign-app -e normal` shows no axum, hyper, rmcp
//! or reqwest). The edges (`countersign-http`, `-console`, `-channels`, `-mcp`) parse what
//! arrives into core types and call the Gateway with typed commands; it answers with
//! [`gateway::GatewayError`], whose machine codes each edge maps in one place. It holds no
//! decision rule of its own: state transitions are the core's, decisions are the policy's,
//! durability is the store's.
#![forbid(unsafe_code)]

pub mod at_rest;
pub mod audit;
pub mod auth;
pub mod directory;
pub mod evaluator;
pub mod executors;
pub mod gateway;
pub mod limits;
pub mod mask;
pub mod metrics;
pub mod policy_source;
pub mod reviews;
pub mod settings;
pub mod telemetry;
pub mod tokens;
pub mod trace;
pub mod waiters;
