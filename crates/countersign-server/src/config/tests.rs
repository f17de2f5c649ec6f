use super::*;

fn mcp(upstreams: &str) -> Result<Config, ConfigError> {
    let c = Config::parse(&format!("mcp:\n  upstreams:\n{upstreams}"), "c.yaml")?;
    c.validate("c.yaml").map(|()| c)
}

#[test]
fn mcp_upstreams_are_checked_and_their_secrets_never_print() {
    let ok = mcp("    - {name: every-thing, command: npx, env: {API_KEY: sekrit}}\n    - {name: t2, url: 'https://t.example/mcp', headers: {Authorization: 'Bearer sekrit'}}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{ok:?}").contains("sekrit"));
    for (bad, says) in [
        ("    - {name: Bad_Name, command: x}\n", "lowercase"),
        (
            "    - {name: a, command: x}\n    - {name: a, command: y}\n",
            "twice",
        ),
        (
            "    - {name: a, command: x, url: 'http://h/mcp'}\n",
            "not both",
        ),
        ("    - {name: a}\n", "give `command`"),
        ("    - {name: a, url: 'ftp://h'}\n", "http://"),
        (
            "    - {name: a, command: x, headers: {A: b}}\n",
            "`url` upstreams only",
        ),
        (
            "    - {name: a, url: 'http://h/mcp', env: {A: b}}\n",
            "`command` upstreams only",
        ),
        (
            "    - {name: a, command: x, colour: red}\n",
            "unknown field",
        ),
        ("    - {name: countersign, command: x}\n", "reserved"),
    ] {
        let err = mcp(bad).expect_err(bad).to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn the_mcp_session_idle_timeout_is_a_duration_of_at_least_a_second() {
    let parse = |v: &str| {
        let c = Config::parse(
            &format!("mcp:\n  session_idle_timeout: {v}\n  upstreams: []\n"),
            "c.yaml",
        )?;
        c.validate("c.yaml").map(|()| c)
    };
    let ok = parse("90s").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok.mcp.map(|m| m.session_idle_timeout),
        Some(std::time::Duration::from_secs(90))
    );
    for (bad, says) in [
        ("500ms", "at least 1s"),
        ("0s", "at least 1s"),
        ("soon", "not a duration"),
        ("-5m", "not a duration"),
    ] {
        let err = parse(bad).expect_err(bad).to_string();
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn mcp_hold_for_is_off_or_a_duration_and_a_principal_may_override_it() {
    let parse = |mcp: &str, principal: &str| {
        let c = Config::parse(
            &format!(
                "principals:\n  - {{id: agent:a, owner: user:o@example.com{principal}}}\n  - {{id: user:o@example.com}}\n\
                 mcp:\n{mcp}  upstreams: []\n"
            ),
            "c.yaml",
        )?;
        c.validate("c.yaml").map(|()| c)
    };
    let default = parse("", "").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        default.mcp.map(|m| m.hold_for),
        Some(HoldFor(Some(std::time::Duration::from_secs(50))))
    );
    assert_eq!(default.principals[0].mcp_hold_for, None);
    let set = parse("  hold_for: off\n", ", mcp_hold_for: 3s").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.mcp.map(|m| m.hold_for), Some(HoldFor(None)));
    assert_eq!(
        set.principals[0].mcp_hold_for,
        Some(HoldFor(Some(std::time::Duration::from_secs(3))))
    );
    let at_once =
        parse("  hold_for: 0s\n", ", mcp_hold_for: off").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        at_once.mcp.map(|m| m.hold_for),
        Some(HoldFor(Some(std::time::Duration::ZERO)))
    );
    assert_eq!(at_once.principals[0].mcp_hold_for, Some(HoldFor(None)));
    for (mcp, principal) in [
        ("  hold_for: never\n", ""),
        ("  hold_for: -1s\n", ""),
        ("", ", mcp_hold_for: soon"),
        ("  hold_for: 5\n", ""),
    ] {
        let err = parse(mcp, principal)
            .expect_err(&format!("{mcp}{principal}"))
            .to_string();
        assert!(
            err.contains("neither `off` nor a duration"),
            "{mcp}{principal}: {err}"
        );
    }
}

fn slack(body: &str) -> Result<Config, ConfigError> {
    let c = Config::parse(&format!("channels:\n  slack:\n{body}"), "c.yaml")?;
    c.validate("c.yaml").map(|()| c)
}

#[test]
fn slack_config_is_checked_and_its_secrets_never_print() {
    let ok = slack("    bot_token: xoxb-1\n    signing_secret: s3cr3t\n    notify: [\"#approvals\", \"@bob@example.com\"]\n    user_cache_ttl: 5m\n")
        .unwrap();
    let s = ok.channels.slack.as_ref().unwrap();
    assert_eq!(s.api_base_url, DEFAULT_SLACK_API);
    assert_eq!(s.user_cache_ttl, std::time::Duration::from_secs(300));
    let printed = format!("{ok:?}");
    assert!(
        !printed.contains("xoxb-1") && !printed.contains("s3cr3t"),
        "{printed}"
    );
    for (body, says) in [
        ("    bot_token: xapp-1\n", "xoxb-"),
        ("    bot_token: xoxb-1\n    app_token: xoxb-2\n", "xapp-"),
        (
            "    bot_token: xoxb-1\n    notify: [\"@bob\"]\n",
            "by email",
        ),
        (
            "    bot_token: xoxb-1\n    api_base_url: slack.com\n",
            "http(s) URL",
        ),
        (
            "    bot_token: xoxb-1\n    user_cache_ttl: soon\n",
            "not a duration",
        ),
        ("    bot_token: xoxb-1\n    botToken: x\n", "unknown field"),
    ] {
        let e = slack(body).unwrap_err().to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
}

fn teams(body: &str) -> Result<Config, ConfigError> {
    let c = Config::parse(&format!("channels:\n  teams:\n{body}"), "c.yaml")?;
    c.validate("c.yaml").map(|()| c)
}

const TEAMS_OK: &str = "    app_id: 7d1e2f3a-0000-4000-8000-000000000001\n    app_password: pa55-w0rd-sekrit\n    tenant_ids: [contoso-tenant-id]\n    conversations: {approvals: \"19:abc@thread.tacv2\"}\n    notify: [approvals]\n";

#[test]
fn teams_config_takes_the_issues_keys_with_defaults() {
    let ok = teams(&format!(
        "{TEAMS_OK}    openid_metadata_url: https://login.botframework.com/v1/.well-known/openidconfiguration\n    token_url: https://login.microsoftonline.com/contoso/oauth2/v2.0/token\n    user_cache_ttl: 5m\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let t = ok.channels.teams.as_ref().unwrap();
    assert_eq!(t.app_id, "7d1e2f3a-0000-4000-8000-000000000001");
    assert_eq!(t.tenant_ids, ["contoso-tenant-id"]);
    assert_eq!(t.conversations["approvals"], "19:abc@thread.tacv2");
    assert_eq!(
        t.token_url,
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token"
    );
    assert_eq!(t.user_cache_ttl, std::time::Duration::from_secs(300));
    let d = teams(TEAMS_OK).unwrap();
    let d = d.channels.teams.as_ref().unwrap();
    assert_eq!(d.openid_metadata_url, DEFAULT_TEAMS_OPENID_METADATA);
    assert_eq!(d.token_url, DEFAULT_TEAMS_TOKEN_URL);
}

#[test]
fn teams_config_is_checked_and_its_secret_never_prints() {
    let ok = teams(TEAMS_OK).unwrap();
    let printed = format!("{ok:?}");
    assert!(!printed.contains("pa55-w0rd-sekrit"), "{printed}");
    assert!(printed.contains("Secret(***)"), "{printed}");
    let base = "    app_id: a1\n    app_password: p\n";
    for (body, says) in [
        ("    app_password: p\n    tenant_ids: [t]\n", "app_id"),
        ("    app_id: a1\n    tenant_ids: [t]\n", "app_password"),
        (base, "tenant_ids"),
        (
            &format!("{base}    tenant_ids: []\n"),
            "`tenant_ids` is empty",
        ),
        (
            &format!("{base}    tenant_ids: [\"a b\"]\n"),
            "not a tenant id",
        ),
        (
            "    app_id: a1\n    app_password: \"\"\n    tenant_ids: [t]\n",
            "`app_password` is empty",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    token_url: login.example\n"),
            "http(s) URL",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    openid_metadata_url: ftp://x\n"),
            "http(s) URL",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    conversations: {{\"bad name\": \"19:x\"}}\n"),
            "malformed",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    conversations: {{a: \"\"}}\n"),
            "conversation id",
        ),
        (
            &format!(
                "{base}    tenant_ids: [t]\n    conversations: {{a: \"19:x\"}}\n    notify: [b]\n"
            ),
            "not one of `conversations`",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    user_cache_ttl: soon\n"),
            "not a duration",
        ),
        (
            &format!("{base}    tenant_ids: [t]\n    appId: x\n"),
            "unknown field",
        ),
    ] {
        let e = teams(body).expect_err(body).to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
}

#[test]
fn teams_env_overrides_and_secrets_from_the_environment_never_print() {
    let env = |k: &str| match k {
        "COUNTERSIGN_TEAMS_APP_ID" => Some("env-app".to_string()),
        "COUNTERSIGN_TEAMS_APP_PASSWORD" => Some("env-sekrit".to_string()),
        "COUNTERSIGN_TEAMS_TENANT_IDS" => Some("t1, t2".to_string()),
        "COUNTERSIGN_TEAMS_TOKEN_URL" => Some("https://login.example/t1/token".to_string()),
        _ => None,
    };
    let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
    c.apply_env(env);
    c.validate("sample").unwrap();
    let t = c.channels.teams.as_ref().unwrap();
    assert_eq!(t.app_id, "env-app");
    assert_eq!(t.app_password.expose(), "env-sekrit");
    assert_eq!(t.tenant_ids, ["t1", "t2"]);
    assert_eq!(t.token_url, "https://login.example/t1/token");
    assert!(!format!("{c:?}").contains("env-sekrit"));
    // An app id alone is not enough: the password and tenants are still required.
    let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
    c.apply_env(|k| (k == "COUNTERSIGN_TEAMS_APP_ID").then(|| "a".to_string()));
    assert!(
        c.validate("sample")
            .unwrap_err()
            .to_string()
            .contains("app_password")
    );
}

#[test]
fn audit_config_has_defaults_and_is_checked() {
    let c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
    assert_eq!(c.audit.checkpoint_every, 1000);
    assert_eq!(
        c.audit.key_path("/var/lib/cs/countersign.db"),
        PathBuf::from("/var/lib/cs/countersign-audit.key")
    );
    let ok = Config::parse(
        "audit:\n  key: k.key\n  origin: example.com/cs\n  checkpoint_every: 5\n  checkpoint_interval: 2s\n  webhooks:\n    - {url: 'http://127.0.0.1:9/hook', secret: whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=}\n",
        "c.yaml",
    )
    .unwrap();
    ok.validate("c.yaml").unwrap();
    assert!(!format!("{ok:?}").contains("c2VjcmV0"));
    for (body, says) in [
        ("audit:\n  checkpoint_every: 0\n", "at least 1"),
        ("audit:\n  origin: 'a b'\n", "without spaces"),
        ("audit:\n  checkpoints: 3\n", "unknown field"),
        ("audit:\n  checkpoint_interval: soon\n", "not a duration"),
        ("audit:\n  webhooks: [{url: 'ftp://x'}]\n", "http(s)"),
        (
            "audit:\n  webhooks: [{url: 'http://x', secret: nope}]\n",
            "whsec_",
        ),
        (
            "audit:\n  webhooks: [{url: 'http://x', ed25519: false}]\n",
            "unsigned",
        ),
    ] {
        let e = Config::parse(body, "c.yaml")
            .and_then(|c| c.validate("c.yaml").map(|()| c))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{body}: {e}");
    }
}

#[test]
fn sample_config_is_valid() {
    let c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
    c.validate("sample").unwrap();
    assert_eq!(c.principals().unwrap().len(), 4);
}

#[test]
fn unknown_key_names_the_line() {
    let err = Config::parse("listen: 127.0.0.1:1\nlisten_port: 3\n", "c.yaml").unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("c.yaml") && text.contains("line 2") && text.contains("listen_port"),
        "{text}"
    );
}

#[test]
fn env_overrides_the_file() {
    let mut c = Config::parse(SAMPLE_CONFIG, "sample").unwrap();
    c.apply_env(|k| (k == "COUNTERSIGN_LISTEN").then(|| "127.0.0.1:9999".to_string()));
    assert_eq!(c.listen, "127.0.0.1:9999");
}

#[test]
fn owner_must_exist() {
    let c = Config::parse(
        "principals:\n  - id: agent:x\n    owner: user:ghost@example.com\n",
        "c",
    )
    .unwrap();
    assert!(c.validate("c").unwrap_err().to_string().contains("ghost"));
}

#[test]
fn person_ids_are_canonical_in_config_and_duplicates_are_refused_at_load() {
    for (a, b) in [
        ("user:bob@example.com", "user:Bob@example.com"),
        ("user:BOB@EXAMPLE.COM", "USER:bob@example.com"),
        ("agent:deploy-bot", "agent:Deploy-Bot"),
    ] {
        let text = format!("principals:\n  - id: {a}\n  - id: '{b}'\n");
        let e = Config::parse(&text, "c")
            .unwrap()
            .validate("c")
            .unwrap_err()
            .to_string();
        assert!(e.contains(a) && e.contains(b), "{e}");
    }
    // An owner written in another case is the listed person, stored canonical.
    let c = Config::parse(
        "principals:\n  - id: agent:Bot\n    owner: user:Alice@Example.com\n  - id: user:alice@example.COM\n",
        "c",
    )
    .unwrap();
    let ps = c.principals().unwrap();
    assert_eq!(ps[0].id.as_str(), "agent:bot");
    assert_eq!(ps[0].owner, Some(ps[1].id.clone()));
    assert_eq!(ps[1].id.as_str(), "user:alice@example.com");
    // Look-alikes are not folded onto the person: they are refused.
    let e = Config::parse("principals:\n  - id: user:\u{212A}arol@example.com\n", "c")
        .unwrap()
        .validate("c");
    assert!(e.is_err());
}

#[test]
fn database_urls_are_checked_and_their_passwords_never_printed() {
    assert!(is_postgres_url("postgres://cs@db:5432/cs"));
    assert!(is_postgres_url("postgresql://cs@db/cs"));
    assert!(!is_postgres_url("countersign.db"));
    assert_eq!(
        database_display("postgres://cs:hunter2@db:5432/cs"),
        "postgres://cs:***@db:5432/cs"
    );
    assert_eq!(database_display("/var/lib/cs.db"), "/var/lib/cs.db");
    let mut config: Config = yaml_serde::from_str("database: 'postgres://cs:pw@db/cs'").unwrap();
    assert!(config.validate("c.yaml").is_ok());
    config.database = "mysql://root:pw@db/cs".into();
    let e = config.validate("c.yaml").unwrap_err().to_string();
    assert!(e.contains("postgres://") && !e.contains("pw@"), "{e}");
    config.database = "postgres://".into();
    let e = config.validate("c.yaml").unwrap_err().to_string();
    assert!(e.contains("not a PostgreSQL URL"), "{e}");
}

#[test]
fn only_a_pep_evaluates_for_others_and_it_must_say_for_whom() {
    let ok = Config::parse(
        "principals:\n  - id: pep:Gateway\n    evaluates_for: [\"agent:*\", user:alice@example.com]\n  - id: agent:bot\n",
        "c",
    )
    .unwrap();
    ok.validate("c").expect("valid");
    let evaluators = ok.evaluators().unwrap();
    assert_eq!(evaluators.len(), 1);
    assert_eq!(
        evaluators[&PrincipalId::parse("pep:gateway").unwrap()].len(),
        2
    );
    for (bad, says) in [
        ("  - id: pep:gateway\n", "needs `evaluates_for`"),
        (
            "  - id: agent:bot\n    evaluates_for: [\"agent:*\"]\n",
            "only a policy enforcement point",
        ),
        (
            "  - id: pep:gateway\n    evaluates_for: [\"*\"]\n",
            "must start with",
        ),
        (
            "  - id: pep:gateway\n    evaluates_for: [pep:other]\n",
            "agents and people only",
        ),
    ] {
        let e = Config::parse(&format!("principals:\n{bad}"), "c")
            .unwrap()
            .validate("c")
            .expect_err(bad)
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

/// A control character in a configuration file is reported on its own line (the YAML reader
/// gives none; found while fuzzing policies, which share the reader).
#[test]
fn config_errors_name_the_line_of_a_control_character() {
    for (text, line) in [
        ("listen: 127.0.0.1:0\ndatabase: \"x\u{7f}\"\n", 2),
        (
            "listen: 127.0.0.1:0\n# é\nprincipals:\n  - id: \"agent:a\u{1}\"\n",
            4,
        ),
    ] {
        let e = Config::parse(text, "c.yaml")
            .expect_err("refused")
            .to_string();
        assert!(e.contains(&format!("line {line}:")), "{e}");
    }
}

#[test]
fn limits_are_at_least_one() {
    let c = Config::parse("limits: {streams_per_principal: 0}\n", "c.yaml").expect("parses");
    let e = c.validate("c.yaml").expect_err("refused").to_string();
    assert!(e.contains("limits.streams_per_principal"), "{e}");
    let c = Config::parse("limits: {waits_per_principal: 3}\n", "c.yaml").expect("parses");
    assert_eq!(c.limits.waits_per_principal, 3);
    assert_eq!(c.limits.streams_per_principal, 32);
}
