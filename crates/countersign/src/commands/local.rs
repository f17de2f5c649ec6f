//! Verbs that work on local files, no gateway needed: check/test/explain policies, create API
//! keys, reset a person's second factors. (The audit verbs are in `audit`.)

use crate::cli::{Global, KeyVerb, PolicyVerb};
use crate::outcome::{self, Failure};
use countersign_core::{Action, PrincipalId};
use countersign_policy::Policy;
use countersign_server::Config;
use std::path::{Path, PathBuf};

fn load_config(path: Option<&Path>) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| Failure::usage(e.to_string()))
}

fn load_policy(file: &Path) -> Result<Policy, Failure> {
    Policy::load(file).map_err(|e| Failure::usage(e.to_string()))
}

pub fn policy(g: &Global, verb: PolicyVerb) -> Result<u8, Failure> {
    match verb {
        PolicyVerb::Check { file } => {
            let p = load_policy(&file)?;
            if g.json {
                println!("{}", serde_json::json!({"ok": true, "hash": p.hash()}));
            } else {
                println!("{}: valid ({})", file.display(), p.hash());
            }
            Ok(outcome::OK)
        }
        PolicyVerb::Test { file, cases } => {
            let p = load_policy(&file)?;
            let text = std::fs::read_to_string(&cases)
                .map_err(|e| Failure::usage(format!("cannot read {}: {e}", cases.display())))?;
            let results = countersign_policy::cases::run(&p, &text, &cases.display().to_string())
                .map_err(|e| Failure::usage(e.to_string()))?;
            let failed = results.iter().filter(|r| !r.passed).count();
            for r in &results {
                if r.passed {
                    println!("PASS  {}", r.name);
                } else {
                    println!(
                        "FAIL  {}\n      expected {}\n      got      {}",
                        r.name, r.expected, r.got
                    );
                }
            }
            println!("{} passed, {} failed", results.len() - failed, failed);
            Ok(if failed == 0 {
                outcome::OK
            } else {
                outcome::FAILURE
            })
        }
        // Reads the database: `commands::replay`, dispatched before this.
        PolicyVerb::Replay { .. } => Err(Failure::other("policy replay runs on its own path")),
        PolicyVerb::Explain {
            file,
            principal,
            action,
            config,
        } => {
            let p = load_policy(&file)?;
            let id = PrincipalId::parse(&principal).map_err(|e| Failure::usage(e.to_string()))?;
            let config = load_config(config.as_deref())?;
            let principals = config.principals().map_err(Failure::usage)?;
            let who = principals.into_iter().find(|p| p.id == id).unwrap_or(
                countersign_core::Principal {
                    id,
                    owner: None,
                    groups: vec![],
                },
            );
            countersign_core::json_text::check(action.as_bytes())
                .map_err(|e| Failure::usage(format!("--action: {e}")))?;
            let action: Action = serde_json::from_str(&action)
                .map_err(|e| Failure::usage(format!("--action is not a valid action: {e}")))?;
            action
                .validate()
                .map_err(|e| Failure::usage(e.to_string()))?;
            let explanation = p.explain(&who, &action, chrono::Utc::now());
            if g.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&explanation).unwrap_or_default()
                );
            } else {
                print!("{explanation}");
            }
            Ok(outcome::OK)
        }
    }
}

pub async fn key(verb: KeyVerb) -> Result<u8, Failure> {
    let (principal, config) = match verb {
        KeyVerb::Create { principal, config } => (principal, config),
        KeyVerb::Revoke { principal, config } => return revoke_keys(principal, config).await,
    };
    let config = load_config(config.as_deref())?;
    let id = PrincipalId::parse(&principal).map_err(|e| Failure::usage(e.to_string()))?;
    let known = config.principals().map_err(Failure::usage)?;
    if !known.iter().any(|p| p.id == id) {
        return Err(Failure::usage(format!(
            "{id} is not a configured principal; add it under `principals:` first"
        )));
    }
    let store = countersign_server::serve::open_store(&config.database)
        .await
        .map_err(|e| Failure::other(format!("cannot open the database: {e}")))?;
    let key = countersign_app::auth::new_key();
    store
        .create_key(
            &countersign_app::auth::key_hash(&key),
            &id,
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| Failure::other(format!("cannot store the key: {e}")))?;
    println!("{key}");
    Ok(outcome::OK)
}

/// `key revoke`: any well-formed id, configured or not (a person removed from the config may
/// still hold keys); the id is taken in its canonical form, like every other entry.
async fn revoke_keys(principal: String, config: Option<PathBuf>) -> Result<u8, Failure> {
    let config = load_config(config.as_deref())?;
    let id = PrincipalId::parse(&principal).map_err(|e| Failure::usage(e.to_string()))?;
    let store = countersign_server::serve::open_store(&config.database)
        .await
        .map_err(|e| Failure::other(format!("cannot open the database: {e}")))?;
    let (keys, sessions) = store
        .revoke_keys(&id, "system", chrono::Utc::now())
        .await
        .map_err(|e| Failure::other(format!("cannot revoke the keys: {e}")))?;
    println!("revoked {keys} key(s) of {id} and ended {sessions} console session(s)");
    Ok(outcome::OK)
}

/// `mfa reset PRINCIPAL`: removes every second factor of a person, in the database the
/// configuration names (recorded as `mfa.reset`), and tells them on Slack when configured.
pub async fn mfa_reset(g: &Global, principal: &str, config: Option<&Path>) -> Result<u8, Failure> {
    let config = load_config(config)?;
    let id = PrincipalId::parse(principal).map_err(|e| {
        Failure::usage(format!(
            "{e}; give the person's id as configured, e.g. user:alice@example.com"
        ))
    })?;
    let known = config
        .principals()
        .map_err(Failure::usage)?
        .iter()
        .any(|p| p.id == id);
    let store = countersign_server::serve::open_store(&config.database)
        .await
        .map_err(|e| Failure::other(format!("cannot open the database: {e}")))?;
    let now = chrono::Utc::now();
    let removed = countersign_app::gateway::factors::reset(&*store, &id, known, now)
        .await
        .map_err(|e| match e {
            countersign_app::gateway::factors::ResetError::Store(e) => {
                Failure::other(format!("cannot reset: {e}"))
            }
            e => Failure::usage(e.to_string()),
        })?;
    let change = countersign_store::FactorChange {
        principal: id.clone(),
        at: now,
        change: countersign_store::FactorChangeKind::Reset,
        proof: countersign_store::FactorProof::Operator,
        actor: "system".into(),
    };
    let told = match &config.channels.slack {
        Some(slack) => {
            let api = countersign_channels::slack::api::SlackApi::new(
                &slack.api_base_url,
                slack.bot_token.clone(),
            );
            match countersign_channels::slack::factors::announce_on_slack(&api, &change).await {
                Ok(()) => Some(true),
                Err(e) => {
                    eprintln!("warning: could not tell {id} on Slack: {e}");
                    Some(false)
                }
            }
        }
        None => None,
    };
    if g.json {
        println!(
            "{}",
            serde_json::json!({"principal": id, "totp": removed.totp,
                "passkeys": removed.passkeys, "told_on_slack": told})
        );
    } else {
        println!(
            "reset the second factors of {id}: {} TOTP app, {} passkey(s) removed; recorded as mfa.reset. They can enrol a new factor now (`countersign mfa enroll` or the console's second-factor page).",
            if removed.totp { "1" } else { "no" },
            removed.passkeys
        );
    }
    Ok(outcome::OK)
}
