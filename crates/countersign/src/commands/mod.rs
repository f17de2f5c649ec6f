//! The verbs. Remote ones talk to the gateway over HTTP (`client`; `exec` and `invoke` carry
//! out what was approved, each in its module); local ones (`serve`, `audit verify`, `policy`,
//! `key create`, `mfa reset`) work on files; `hook` answers an agent's hook.

mod audit;
mod exec;
mod hook;
mod invoke;
mod local;
mod remote;
mod replay;
mod serve;

use crate::cli::{Cli, Command, HookAgent, MfaVerb, PolicyVerb};
use crate::outcome::Failure;

pub async fn run(cli: Cli) -> Result<u8, Failure> {
    let g = cli.global;
    match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()).await,
        Command::Request(args) => remote::request(&g, args).await,
        Command::Plan(args) => remote::plan(&g, args).await,
        Command::Exec(args) => exec::exec(&g, args).await,
        Command::Invoke(args) => invoke::invoke(&g, args).await,
        Command::Ls { state, run, limit } => remote::ls(&g, &state, run, limit).await,
        Command::Show { id } => remote::show(&g, &id).await,
        Command::Approve {
            id,
            comment,
            digest,
            otp,
            for_,
            uses,
        } => {
            let standing = for_
                .zip(uses)
                .map(|(for_, uses)| countersign_http::wire::StandingAskBody { for_, uses });
            remote::vote(
                &g,
                &id,
                countersign_core::VoteDecision::Approve,
                comment,
                digest,
                otp,
                standing,
            )
            .await
        }
        Command::Deny {
            id,
            reason,
            digest,
            otp,
        } => {
            remote::vote(
                &g,
                &id,
                countersign_core::VoteDecision::Deny,
                Some(reason),
                digest,
                otp,
                None,
            )
            .await
        }
        Command::Cancel { id } => remote::cancel(&g, &id).await,
        Command::Amend {
            id,
            params,
            comment,
            otp,
        } => remote::amend(&g, &id, &params, comment, otp).await,
        Command::Run { verb } => remote::run_control(&g, verb).await,
        Command::Standing { verb } => remote::standing(&g, verb).await,
        Command::Mfa {
            verb: MfaVerb::Enroll { otp },
        } => remote::mfa_enroll(&g, otp).await,
        Command::Mfa {
            verb: MfaVerb::Reset { principal, config },
        } => local::mfa_reset(&g, &principal, config.as_deref()).await,
        Command::Hook {
            agent: HookAgent::ClaudeCode { timeout },
        } => hook::claude_code(&g, timeout).await,
        Command::Audit { verb } => audit::run(&g, verb).await,
        Command::Attest { id, key } => audit::attest(&g, &id, key).await,
        Command::Policy {
            verb:
                PolicyVerb::Replay {
                    policy,
                    since,
                    database,
                    config,
                },
        } => replay::replay(&g, &policy, &since, database, config.as_deref()).await,
        Command::Policy { verb } => local::policy(&g, verb),
        Command::Key { verb } => local::key(verb).await,
        Command::Mcp { verb } => remote::mcp(&g, verb).await,
    }
}
