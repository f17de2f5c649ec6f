//! What the black-box tests share, in one place: spawning gateways and acting as their
//! principals (`app`), the console as a browser uses it (`console`), fake Slack and Teams
//! (`fake_slack`, `fake_teams`), the MCP peers with a gateway in front of them (`mcp`), and a
//! real HTTP service that needs the secret only an executor holds, and a gateway with an
//! executor for it (`upstream`).

pub mod app;
pub mod console;
pub mod fake_slack;
pub mod fake_teams;
pub mod mcp;
pub mod upstream;
