//! Operations (issue #21 part A): `/metrics` counted exactly after a known set of requests, the separate metrics
//! listener, request ids on every answer and in the ledger and logs, the log files with their size rotation, and
//! no key in any log line.

use crate::common::*;
use ccgate_mock::MockConfig;
use serde_json::{json, Value};
use std::collections::BTreeMap;

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef";

/// One sample of the exposition: `name{labels} value`.
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// The samples of a Prometheus text exposition (comments skipped). Label values here never hold `,` or `"`.
fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label=value");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            Sample {
                name: name.to_string(),
                labels,
                value: value.parse().expect("a number"),
            }
        })
        .collect()
}

/// The value of the series `name` with exactly these labels (0 when absent: a counter not yet incremented).
fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Sample> = all
        .iter()
        .filter(|s| s.name == name && s.labels == want)
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?} twice");
    found.first().map_or(0.0, |s| s.value)
}

async fn scrape(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(format!("{url}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// `(request_id, client_request_id, upstream_request_id, tenant_id, model, cost_nanousd)` of every row, oldest first.
async fn id_rows(
    gw: &Gateway,
) -> Vec<(String, Option<String>, Option<String>, String, String, i64)> {
    let url = format!("sqlite://{}", gw.db_path().display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .unwrap();
    let rows = sqlx::query_as(
        "SELECT request_id, client_request_id, upstream_request_id, tenant_id, model, cost_nanousd FROM requests ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows
}

async fn wait_rows(
    gw: &Gateway,
    n: usize,
) -> Vec<(String, Option<String>, Option<String>, String, String, i64)> {
    eventually(10, || async {
        let rows = id_rows(gw).await;
        (rows.len() == n).then_some(rows)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_a_known_set_of_requests_exactly() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["metricsToken"] = json!(METRICS_TOKEN);
    let gw = Gateway::start(&files).await;
    let sonnet = "claude-sonnet-4-6";

    // Who may scrape.
    assert_eq!(scrape(&gw.url, None).await.status(), 401);
    let wrong = scrape(&gw.url, Some("metrics-token-but-the-wrong-one")).await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Bearer");

    // t1: 3 plain + 1 streamed messages, 1 refused (opus is not on its allow-list).
    for stream in [false, false, false, true] {
        let r = post_messages(&gw, TENANT_KEY, &messages_body(sonnet, stream)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let refused = post_messages(&gw, TENANT_KEY, &messages_body("claude-opus-4-6", false)).await;
    assert_eq!(refused.status(), 403);
    // t2: 2 on /openai through the alias gpt-4o → sonnet, 1 with a name no catalog knows.
    for _ in 0..2 {
        let r = post_chat(
            &gw,
            TENANT2_KEY,
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let made_up = "totally-made-up-model-xyz";
    let r = post_messages(&gw, TENANT2_KEY, &messages_body(made_up, false)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    // A wrong key has no tenant: not a request of anyone's, so not counted.
    assert_eq!(
        post_messages(
            &gw,
            "not-a-key-of-anyone-at-all",
            &messages_body(sonnet, false)
        )
        .await
        .status(),
        401
    );

    let rows = wait_rows(&gw, 8).await;
    let resp = scrape(&gw.url, Some(METRICS_TOKEN)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = resp.text().await.unwrap();
    let all = samples(&text);
    let requests = |tenant, model, upstream, protocol, status| {
        value(
            &all,
            "ccgate_requests_total",
            &[
                ("tenant", tenant),
                ("model", model),
                ("upstream", upstream),
                ("protocol", protocol),
                ("status", status),
            ],
        )
    };
    assert_eq!(
        requests("t1", sonnet, "up1", "anthropic", "2xx"),
        4.0,
        "{text}"
    );
    assert_eq!(
        requests("t1", "claude-opus-4-6", "none", "anthropic", "4xx"),
        1.0,
        "{text}"
    );
    assert_eq!(
        requests("t2", sonnet, "up1", "openai", "2xx"),
        2.0,
        "{text}"
    );
    assert_eq!(
        requests("t2", "other", "up1", "anthropic", "2xx"),
        1.0,
        "{text}"
    );
    let total: f64 = all
        .iter()
        .filter(|s| s.name == "ccgate_requests_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total, 8.0, "one per ledger row: {text}");
    // The unknown model added no label value; nothing per request is a label.
    assert!(!text.contains(made_up), "{text}");
    for (id, ..) in &rows {
        assert!(!text.contains(id.as_str()), "a request id became a label");
    }
    assert_eq!(
        value(
            &all,
            "ccgate_refusals_total",
            &[("tenant", "t1"), ("reason", "model_not_allowed")]
        ),
        1.0
    );
    // Tokens: the mock reports 25 in and 12 out per answer.
    let tokens = |tenant, model, kind| {
        value(
            &all,
            "ccgate_tokens_total",
            &[("tenant", tenant), ("model", model), ("type", kind)],
        )
    };
    assert_eq!(tokens("t1", sonnet, "input"), 4.0 * 25.0);
    assert_eq!(tokens("t1", sonnet, "output"), 4.0 * 12.0);
    assert_eq!(tokens("t2", sonnet, "input"), 2.0 * 25.0);
    assert_eq!(tokens("t2", "other", "output"), 12.0);
    assert_eq!(tokens("t1", sonnet, "cache_read"), 0.0);
    // Cost: the same nano-USD as the ledger's rows.
    let ledger_cost = |tenant: &str, models: &[&str]| -> f64 {
        rows.iter()
            .filter(|r| r.3 == tenant && models.contains(&r.4.as_str()))
            .map(|r| r.5 as f64)
            .sum()
    };
    let t1_cost = value(
        &all,
        "ccgate_cost_nanousd_total",
        &[("tenant", "t1"), ("model", sonnet)],
    );
    assert!(t1_cost > 0.0);
    assert_eq!(t1_cost, ledger_cost("t1", &[sonnet]));
    assert_eq!(
        value(
            &all,
            "ccgate_cost_nanousd_total",
            &[("tenant", "t2"), ("model", sonnet)]
        ),
        ledger_cost("t2", &["gpt-4o"])
    );
    // Nothing in flight once every answer was read; latency observed once per row.
    for p in ["anthropic", "openai"] {
        assert_eq!(
            value(&all, "ccgate_requests_in_flight", &[("protocol", p)]),
            0.0
        );
    }
    let observed: f64 = all
        .iter()
        .filter(|s| s.name == "ccgate_request_duration_seconds_count")
        .map(|s| s.value)
        .sum();
    assert_eq!(observed, 8.0, "{text}");
    assert_eq!(
        value(
            &all,
            "ccgate_time_to_first_token_seconds_count",
            &[("protocol", "anthropic"), ("upstream", "up1")]
        ),
        5.0,
        "{text}"
    );
    // Upstream health is read at scrape time.
    assert_eq!(
        value(&all, "ccgate_upstream_healthy", &[("upstream", "up1")]),
        1.0
    );
    assert_eq!(
        value(&all, "ccgate_upstream_in_flight", &[("upstream", "up1")]),
        0.0
    );
    // The ledger wrote every row.
    assert_eq!(
        value(&all, "ccgate_ledger_rows_written_total", &[]),
        8.0,
        "{text}"
    );
    assert_eq!(value(&all, "ccgate_ledger_write_failures_total", &[]), 0.0);
}

/// An upstream that fails moves requests to the next one: a failover and, after repeated failures, a cooldown,
/// both counted against the failing upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failovers_and_cooldowns_are_counted() {
    let bad = mock_with(MockConfig {
        status: 500,
        ..MockConfig::default()
    })
    .await;
    let good = mock().await;
    let mut files = Files::new(&[bad.url(), good.url()]);
    files.server["server"]["metricsToken"] = json!(METRICS_TOKEN);
    // Only up1 first: priority makes every request try it before up2.
    files.upstreams["upstreams"][1]["priority"] = json!(1);
    let gw = Gateway::start(&files).await;
    let first = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(first.status(), 200);
    let text = scrape(&gw.url, Some(METRICS_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    let all = samples(&text);
    assert_eq!(
        value(&all, "ccgate_failovers_total", &[("upstream", "up1")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&all, "ccgate_failovers_total", &[("upstream", "up2")]),
        0.0
    );
    // Until it cools down, up1 is tried (and failed over) each time.
    for _ in 0..4 {
        post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    }
    let text = scrape(&gw.url, Some(METRICS_TOKEN))
        .await
        .text()
        .await
        .unwrap();
    let all = samples(&text);
    assert!(
        value(
            &all,
            "ccgate_upstream_cooldowns_total",
            &[("upstream", "up1")]
        ) >= 1.0,
        "{text}"
    );
    assert_eq!(
        value(&all, "ccgate_upstream_cooling_down", &[("upstream", "up1")]),
        1.0,
        "{text}"
    );
    assert_eq!(
        value(&all, "ccgate_upstream_healthy", &[("upstream", "up1")]),
        0.0
    );
    assert_eq!(
        value(&all, "ccgate_upstream_healthy", &[("upstream", "up2")]),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_and_can_have_their_own_listener() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    // An enabled upstream without a key: the banner warns.
    files.upstreams["upstreams"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "keyless", "url": m.url(), "key": ""}));
    let gw = Gateway::start(&files).await;
    let off = scrape(&gw.url, Some(METRICS_TOKEN)).await;
    assert_eq!(off.status(), 404);
    let body: Value = off.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server.metricsToken"),
        "{body}"
    );
    let banner = eventually(5, || async {
        let out = gw.stdout.lock().clone();
        out.contains("Metrics:").then_some(out)
    })
    .await;
    assert!(banner.contains("Metrics:          off"), "{banner}");
    assert!(
        banner.contains("2 upstream(s) (2 enabled), 2 tenant(s)"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "Store:            sqlite://{}",
            gw.db_path().display()
        )),
        "{banner}"
    );
    assert!(
        banner.contains("Admin:            http://127.0.0.1:"),
        "{banner}"
    );
    assert!(
        banner.contains(&format!(
            "Logs:             {}",
            gw.data.0.join("logs").display()
        )),
        "{banner}"
    );
    assert!(
        banner.contains("WARNING: upstream keyless has no key"),
        "{banner}"
    );
    assert!(
        !banner.contains(UPSTREAM_KEY) && !banner.contains(ADMIN_PASSWORD),
        "{banner}"
    );
    drop(gw);

    let mut files = Files::new(&[m.url()]);
    files.server["server"]["metricsListen"] = json!("127.0.0.1:0");
    let gw = Gateway::start(&files).await;
    let banner = eventually(5, || async {
        let out = gw.stdout.lock().clone();
        out.contains("Metrics:").then_some(out)
    })
    .await;
    let metrics_url = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("Metrics:"))
        .map(|rest| rest.trim().trim_end_matches("/metrics").to_string())
        .unwrap();
    assert!(metrics_url.starts_with("http://127.0.0.1:"), "{banner}");
    post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false))
        .await
        .bytes()
        .await
        .unwrap();
    // Not on the main listener; on its own, without a token (none is configured).
    assert_eq!(scrape(&gw.url, None).await.status(), 404);
    let text = eventually(5, || async {
        let text = scrape(&metrics_url, None).await.text().await.unwrap();
        text.contains("ccgate_requests_total{").then_some(text)
    })
    .await;
    let all = samples(&text);
    assert_eq!(
        value(
            &all,
            "ccgate_requests_total",
            &[
                ("tenant", "t1"),
                ("model", "claude-sonnet-4-6"),
                ("upstream", "up1"),
                ("protocol", "anthropic"),
                ("status", "2xx")
            ]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_a_request_id_that_the_ledger_and_the_access_log_share() {
    let m = mock().await;
    let files = Files::new(&[m.url()]);
    let gw = Gateway::start(&files).await;
    let is_uuid = |s: &str| s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4;

    // No id from the client: the gateway's own, which is the row's request_id; the upstream's id beside it.
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    let own = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let upstream_id = r.headers()["request-id"].to_str().unwrap().to_string();
    assert!(is_uuid(&own), "{own}");
    assert!(upstream_id.starts_with("req_mock_"), "{upstream_id}");
    r.bytes().await.unwrap();

    // A sane client id is reused in the answer; the row keeps its own unique key and the client's beside it.
    let mut with_id = Vec::new();
    for _ in 0..2 {
        let r = client()
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", TENANT_KEY)
            .header("x-request-id", "client-trace-42")
            .json(&messages_body("claude-sonnet-4-6", true))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-request-id"], "client-trace-42");
        with_id.push(
            r.headers()["x-ccgate-request-id"]
                .to_str()
                .unwrap()
                .to_string(),
        );
        r.bytes().await.unwrap();
    }
    assert_ne!(with_id[0], with_id[1]);
    // An insane one (spaces, quotes) is replaced.
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(TENANT_KEY)
        .header("x-request-id", "bad id \"}")
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let replaced = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(is_uuid(&replaced), "{replaced}");
    r.bytes().await.unwrap();

    let rows = wait_rows(&gw, 4).await;
    assert_eq!(rows[0].0, own);
    assert_eq!(rows[0].1, None);
    assert_eq!(rows[0].2.as_deref(), Some(upstream_id.as_str()));
    for (row, key) in rows[1..3].iter().zip(&with_id) {
        assert_eq!(&row.0, key, "the row key is the gateway's");
        assert_eq!(row.1.as_deref(), Some("client-trace-42"));
        assert!(row.2.as_deref().unwrap().starts_with("req_mock_"));
    }
    assert_eq!(rows[3].0, replaced);
    assert_eq!(rows[3].1, None);

    // Errors and the other endpoints carry one too, on both protocols.
    let bad_key = post_messages(
        &gw,
        "wrong-key-wrong-key-wrong",
        &messages_body("claude-sonnet-4-6", false),
    )
    .await;
    assert_eq!(bad_key.status(), 401);
    assert!(is_uuid(bad_key.headers()["x-request-id"].to_str().unwrap()));
    let bad_key = post_chat(
        &gw,
        "wrong-key-wrong-key-wrong",
        &json!({"model": "gpt-4o", "messages": []}),
        &[("x-request-id", "mine-1")],
    )
    .await;
    assert_eq!(bad_key.status(), 401);
    assert_eq!(bad_key.headers()["x-request-id"], "mine-1");
    for path in ["/health", "/no/such/path", "/openai/v1/models"] {
        let r = client()
            .get(format!("{}{path}", gw.url))
            .send()
            .await
            .unwrap();
        assert!(r.headers().contains_key("x-request-id"), "{path}");
    }

    // The access log has one line per row, with the same ids.
    let log = gw.data.0.join("logs").join("access.log");
    let lines = eventually(10, || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (lines.len() == 4).then_some(lines)
    })
    .await;
    assert_eq!(lines[0]["request_id"], own.as_str());
    assert_eq!(lines[0]["upstream_request_id"], upstream_id.as_str());
    assert_eq!(lines[0]["tenant_id"], "t1");
    assert_eq!(lines[0]["upstream"], "up1");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["input_tokens"], 25);
    assert_eq!(lines[0]["output_tokens"], 12);
    assert_eq!(lines[0]["cost_nanousd"], rows[0].5);
    assert_eq!(lines[1]["client_request_id"], "client-trace-42");
    assert_eq!(lines[1]["request_id"], with_id[0].as_str());
    assert!(lines[1]["ttft_ms"].is_number());
    assert_eq!(lines[3]["protocol"], "openai");
}

/// Reads every file in `dir`, sorted by name: `(name, text)`.
fn read_logs(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

/// No key, password, token, prompt or answer appears in any log file (at `debug`, every crate's events
/// included) or on the console, after an upstream error carrying our key, failed logins, and keys in a query
/// string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_prompt_or_answer_reaches_the_logs() {
    let prompt_marker = "PROMPT-MARKER-6b1f";
    let answer_marker = "ANSWER-MARKER-93c2";
    let m = mock_with(MockConfig {
        text: format!("{answer_marker} says hello"),
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[m.url()]);
    files.server["logging"] = json!({"level": "debug"});
    files.server["server"]["metricsToken"] = json!(METRICS_TOKEN);
    let mut gw = Gateway::start(&files).await;
    let body = |stream: bool| {
        json!({"model": "claude-sonnet-4-6", "max_tokens": 64, "stream": stream,
               "messages": [{"role": "user", "content": prompt_marker}]})
    };
    // Upstream errors whose bodies hold our upstream key (a mirror echoing it), passed through and failed over.
    for status in ["400", "500"] {
        let r = client()
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", TENANT_KEY)
            .header("x-mock-status", status)
            .header(
                "x-mock-error-message",
                format!("bad key {UPSTREAM_KEY} for {prompt_marker}"),
            )
            .json(&body(false))
            .send()
            .await
            .unwrap();
        assert_ne!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    // Failed logins: a wrong tenant key (both protocols), a wrong admin password, a wrong metrics token.
    let wrong_key = "sk-wrong-tenant-key-5d8e1a";
    assert_eq!(
        post_messages(&gw, wrong_key, &body(false)).await.status(),
        401
    );
    assert_eq!(
        post_chat(
            &gw,
            wrong_key,
            &json!({"model": "gpt-4o", "messages": []}),
            &[]
        )
        .await
        .status(),
        401
    );
    let wrong_password = "wrong-admin-password-77";
    let r = client()
        .post(format!("{}/usage", gw.url))
        .json(&json!({"type": "admin", "username": "admin", "password": wrong_password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        scrape(&gw.url, Some("wrong-metrics-token-000000"))
            .await
            .status(),
        401
    );
    // Keys in the query string (dropped before forwarding; never logged either).
    for stream in [false, true] {
        let r = client()
            .post(format!(
                "{}/anthropic/v1/messages?key={TENANT_KEY}&api_key={TENANT2_KEY}&beta=true",
                gw.url
            ))
            .header("x-api-key", TENANT_KEY)
            .json(&body(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains(answer_marker));
    }
    assert!(gw.terminate().await.success(), "{}", gw.logs());

    let logs = read_logs(&gw.data.0.join("logs"));
    let names: Vec<&str> = logs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["access.log", "combined.log", "error.log"]);
    let everything: String = logs.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(
        logs[0].1.lines().count(),
        4,
        "one access line per recorded request"
    );
    assert!(
        everything.contains("authentication failed"),
        "failed logins are logged"
    );
    assert!(
        everything.contains("\"name\":\"request\""),
        "events carry their request's span"
    );
    let console = gw.logs();
    for secret in [
        TENANT_KEY,
        TENANT2_KEY,
        UPSTREAM_KEY,
        ADMIN_PASSWORD,
        METRICS_TOKEN,
        wrong_key,
        wrong_password,
        prompt_marker,
        answer_marker,
    ] {
        assert!(
            !everything.contains(secret),
            "{secret} appears in the log files"
        );
        assert!(!console.contains(secret), "{secret} appears on the console");
    }
}

/// Each log is rotated once it passes `maxFileSize`, in whole lines, and at most `maxFiles` files are kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_rotate_at_the_size_limit_keeping_max_files() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    let logs = TempDir::new("logs");
    files.server["logging"] = json!({
        "level": "info", "maxFileSize": "2KB", "maxFiles": 3, "directory": logs.0, "enableConsole": false
    });
    let mut gw = Gateway::start(&files).await;
    // ~550 bytes an access line, 2,000 bytes a file: 30 requests rotate it several times over.
    for i in 0..30 {
        let r = post_messages(
            &gw,
            TENANT2_KEY,
            &messages_body("claude-sonnet-4-6", i % 2 == 0),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    assert!(gw.terminate().await.success());
    assert!(
        !gw.logs().contains("ledger opened"),
        "console off: {}",
        gw.logs()
    );

    let limit = 2000; // "2KB"
    let logs = read_logs(&logs.0);
    let names: Vec<&str> = logs.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.starts_with(&["access.log", "access.log.1", "access.log.2"]),
        "rotated, 3 files kept: {names:?}"
    );
    assert!(!names.contains(&"access.log.3"), "{names:?}");
    let mut lines = 0;
    for (name, text) in &logs {
        if !name.starts_with("access.log") {
            continue;
        }
        if name != "access.log" {
            // Rotated once past the limit: more than it, by less than one line.
            let longest = text.lines().map(str::len).max().unwrap_or(0) + 1;
            assert!(
                text.len() > limit,
                "{name} rotated before its limit: {} bytes",
                text.len()
            );
            assert!(
                text.len() <= limit + longest,
                "{name}: {} bytes",
                text.len()
            );
        }
        for l in text.lines() {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{name}: {e}: {l}"));
            assert!(v["request_id"].is_string());
            lines += 1;
        }
    }
    // The oldest lines went with the deleted files.
    assert!(lines < 30, "{lines}");
}
