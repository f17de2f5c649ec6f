//! Every YAML example shipped in this crate is valid: `*cases.yaml` files run against the sample
//! policy and every case passes; every other `.yaml` file loads as a policy.

use countersign_policy::{Policy, SAMPLE_POLICY, cases};
use std::path::{Path, PathBuf};

fn yaml_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [root.to_path_buf(), root.join("examples")] {
        for entry in std::fs::read_dir(&dir).expect("readable dir") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn every_example_parses_and_its_cases_pass() {
    let sample =
        Policy::parse(SAMPLE_POLICY, "sample-policy.yaml").unwrap_or_else(|e| panic!("{e}"));
    let files = yaml_files();
    assert!(files.iter().any(|f| f.ends_with("sample-policy.yaml")));
    let mut cases_run = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable");
        let name = path.display().to_string();
        if name.ends_with("cases.yaml") {
            let results = cases::run(&sample, &text, &name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!results.is_empty(), "{name} has no cases");
            let failed: Vec<String> = results
                .iter()
                .filter(|r| !r.passed)
                .map(|r| r.to_string())
                .collect();
            assert!(failed.is_empty(), "{name}:\n{}", failed.join("\n"));
            cases_run += results.len();
        } else {
            Policy::load(&path).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    assert!(cases_run > 0);
}

#[test]
fn failing_cases_say_what_was_expected_and_what_came() {
    let sample = Policy::parse(SAMPLE_POLICY, "sample-policy.yaml").expect("valid");
    let text = r#"
cases:
  - name: wrong on purpose
    principal: agent:deploy-bot
    action: {kind: db.export, resource: "postgres://prod/x", params: {rows: 5000}}
    expect: {effect: allow, rule: null}
  - name: right
    principal: agent:deploy-bot
    action: {kind: db.export, resource: "postgres://prod/x", params: {rows: 5000}}
    expect: {effect: review, rule: prod-export-needs-two, approvers: [{group: security}, {group: sre}]}
"#;
    let results = cases::run(&sample, text, "c.yaml").expect("valid cases");
    assert!(!results[0].passed);
    assert_eq!(results[0].expected, "allow by the policy default");
    assert!(
        results[0]
            .got
            .starts_with("review by rule prod-export-needs-two"),
        "{}",
        results[0].got
    );
    assert!(results[0].to_string().starts_with("FAIL wrong on purpose"));
    assert!(results[1].passed, "{}", results[1]);
}

#[test]
fn a_bad_cases_file_names_the_line() {
    let sample = Policy::parse(SAMPLE_POLICY, "sample-policy.yaml").expect("valid");
    let text = "cases:\n  - name: typo\n    principal: agent:x\n    action: {kind: a, resource: b}\n    expct: {effect: allow}\n";
    let e = cases::run(&sample, text, "c.yaml").expect_err("unknown key");
    assert_eq!(e.file, "c.yaml");
    assert_eq!(e.line, Some(5), "{e}");
    assert!(
        e.message.contains("typo") && e.message.contains("expct"),
        "{e}"
    );

    let text = "cases:\n  - name: bad id\n    principal: robot:x\n    action: {kind: a, resource: b}\n    expect: {effect: allow}\n";
    let e = cases::run(&sample, text, "c.yaml").expect_err("bad principal");
    assert_eq!(e.line, Some(2), "{e}");
    assert!(e.message.contains("case `bad id`"), "{e}");
}
