use super::*;

fn executor(base: &str) -> HttpExecutor {
    let config: HttpConfig = yaml_serde::from_str(&format!(
        "base_url: {base}\nheaders: {{Authorization: \"Bearer ${{env:T}}\"}}\nmethods: [GET, POST]\n"
    ))
    .unwrap();
    let mut r = Resolver::with_env(|_| Some("token-value-123".into()));
    HttpExecutor::build("api", &config, &mut r).unwrap()
}

fn action(resource: &str, params: serde_json::Value) -> Action {
    Action {
        kind: "exec.http.api".into(),
        resource: resource.into(),
        params,
        justification: None,
        run: None,
        labels: Default::default(),
    }
}

#[test]
fn a_call_stays_under_its_base_url() {
    let e = executor("https://api.example.com/v3");
    assert_eq!(
        e.target("/repos/a/b").unwrap().as_str(),
        "https://api.example.com/v3/repos/a/b"
    );
    for path in [
        "//evil.example/x",
        "/../admin",
        "/repos/../../admin",
        "/%2e%2e/admin",
        "/%2E%2E/admin",
        "/%252e%252e/admin",
        "/.%2e/admin",
        "/./x",
        "/a%2f..%2fb",
        "/a%5c..",
        "/a\\..\\b",
        "https://evil.example/",
        "http:/evil",
        "evil.example/x",
        "",
        "/x?admin=1",
        "/x#frag",
        "/x y",
        "/x\n",
        "/@evil.example",
    ] {
        let got = e.target(path);
        match got {
            Err(ExecRefusal::InvalidParams { param, .. }) => assert_eq!(param, "path", "{path}"),
            Ok(url) => {
                // Some odd paths are harmless: they must still land under the base URL.
                assert_eq!(url.host_str(), Some("api.example.com"), "{path}");
                assert!(url.path().starts_with("/v3/"), "{path} → {url}");
                assert!(!url.path().contains(".."), "{path} → {url}");
            }
            Err(other) => panic!("{path}: {other:?}"),
        }
    }
}

#[test]
fn params_are_checked_whole_and_named() {
    let e = executor("https://api.example.com");
    let ok = action(
        "https://api.example.com/x",
        serde_json::json!({"method": "GET", "path": "/x", "query": {"a": 1}}),
    );
    assert!(e.check(&ok).is_ok());
    for (params, resource, named) in [
        (
            serde_json::json!({"method": "DELETE", "path": "/x"}),
            "https://api.example.com/x",
            "method",
        ),
        (
            serde_json::json!({"method": "get", "path": "/x"}),
            "https://api.example.com/x",
            "method",
        ),
        (
            serde_json::json!({"path": "/x"}),
            "https://api.example.com/x",
            "method",
        ),
        (
            serde_json::json!({"method": "GET"}),
            "https://api.example.com/x",
            "path",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x"}),
            "https://api.example.com/y",
            "resource",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x", "extra": 1}),
            "https://api.example.com/x",
            "extra",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x", "headers": {"Authorization": "Bearer mine"}}),
            "https://api.example.com/x",
            "headers",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x", "headers": {"Host": "evil"}}),
            "https://api.example.com/x",
            "headers",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x", "query": {"a": [1]}}),
            "https://api.example.com/x",
            "query",
        ),
        (
            serde_json::json!({"method": "GET", "path": "/x", "query": "a=1"}),
            "https://api.example.com/x",
            "query",
        ),
    ] {
        match e.check(&action(resource, params.clone())) {
            Err(ExecRefusal::InvalidParams { param, .. }) => assert_eq!(param, named, "{params}"),
            other => panic!("{params}: {other:?}"),
        }
    }
}

#[test]
fn only_listed_response_headers_are_shown() {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("set-cookie", "session=abc"),
        ("authorization", "Bearer x"),
        ("x-api-key", "k"),
        ("x-amz-security-token", "t"),
        ("content-type", "application/json"),
        ("x-ratelimit-remaining", "10"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    let shown = shown_headers(&h);
    assert_eq!(
        shown.keys().collect::<Vec<_>>(),
        ["content-type", "x-ratelimit-remaining"]
    );
}

#[test]
fn a_base_url_must_be_plain_http() {
    for base in ["ftp://x", "https://u:p@x", "https://x/?a=1", "not a url"] {
        let config: HttpConfig = yaml_serde::from_str(&format!("base_url: \"{base}\"")).unwrap();
        let mut r = Resolver::with_env(|_| None);
        assert!(
            HttpExecutor::build("api", &config, &mut r).is_err(),
            "{base}"
        );
    }
}
