//! Black-box tests: the real gateway on an ephemeral port with a temporary database file,
//! driven over HTTP and through the `countersign` binary, the way an agent and an approver
//! would. One test binary, so the slow link happens once.

mod approver_view;
mod audit;
mod authzen;
mod browser;
mod budget;
mod callbacks;
mod cli;
mod console;
mod console_oidc;
mod crash;
mod crash_loop;
mod exec_cli;
mod executors;
mod factors;
mod fatigue;
mod hardening;
mod hook;
mod identity;
mod integrity;
mod invariants;
mod limits;
mod mcp;
mod mcp_clients;
mod mcp_elicit;
mod mcp_exec;
mod mcp_policy;
mod mcp_tasks;
mod one_meaning;
mod openapi;
mod passkeys;
mod plans;
mod postgres;
mod replicas;
mod requests;
mod runs;
mod slack;
mod standing;
mod support;
mod teams;
mod trace;
