//! Verbs that work on local files, no gateway needed: check/test/explain policies, create API
//! keys. (The audit verbs are in `audit`.)

use crate::cli::{Global, KeyVerb, PolicyVerb};
use crate::outcome::{self, Failure};
use countersign_core::{Action, PrincipalId};
use countersign_policy::Policy;
use countersign_server::Config;
use std::path::Path;

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
    let KeyVerb::Create { principal, config } = verb;
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
    let key = countersign_server::auth::new_key();
    store
        .create_key(
            &countersign_server::auth::key_hash(&key),
            &id,
            chrono::Utc::now(),
        )
        .await
        .map_err(|e| Failure::other(format!("cannot store the key: {e}")))?;
    println!("{key}");
    Ok(outcome::OK)
}
