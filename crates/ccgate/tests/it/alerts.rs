//! Alerts (`server.json` `alerts`) delivered to a local webhook receiver: one message per crossing, each service's
//! format, retries when the receiver fails, `GET /api/admin/alerts`, and `ccgate alerts test`.

use crate::common::*;
use ccgate_mock::MockConfig;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// What the receiver got: (path, JSON body), in order.
type Got = Arc<parking_lot::Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on 127.0.0.1. Paths under `/flaky/` answer 500 to their first two requests.
struct Receiver {
    url: String,
    got: Got,
}

impl Receiver {
    async fn start() -> Receiver {
        use axum::extract::{Path, State};
        use axum::routing::post;
        let got: Got = Arc::default();
        let app =
            axum::Router::new()
                .route(
                    "/{*path}",
                    post(
                        |State(got): State<Got>,
                         Path(path): Path<String>,
                         body: axum::body::Bytes| async move {
                            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                            let mut g = got.lock();
                            g.push((path.clone(), v));
                            let seen = g.iter().filter(|(p, _)| *p == path).count();
                            if path.starts_with("flaky/") && seen <= 2 {
                                return (
                                    http::StatusCode::INTERNAL_SERVER_ERROR,
                                    "down for a moment",
                                );
                            }
                            (http::StatusCode::OK, "ok")
                        },
                    ),
                )
                .with_state(got.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, got }
    }

    fn at(&self, path: &str) -> Vec<Value> {
        self.got
            .lock()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// The generic hook's messages of one event.
    fn events(&self, path: &str, event: &str) -> Vec<Value> {
        self.at(path)
            .into_iter()
            .filter(|v| v["event"] == event)
            .collect()
    }
}

fn hook(url: String, format: &str, events: Option<&[&str]>) -> Value {
    let mut h = json!({"url": url, "format": format});
    if let Some(e) = events {
        h["events"] = json!(e);
    }
    h
}

async fn admin_alerts(gw: &Gateway) -> Value {
    client()
        .get(format!("{}/api/admin/alerts", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A daily limit of $1 and requests of about $0.30 each: the third crosses 80 %, the fourth 100 %, the fifth is
/// refused. Each crossing is one message on each hook that wants it, in that hook's format; a receiver that fails
/// twice gets its message on the third try.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_budget_crossing_is_one_message_in_each_format_and_failed_sends_are_retried() {
    let rx = Receiver::start().await;
    // Sonnet: $3 per million input tokens → 100,000 tokens = $0.30 (+ 10 output tokens).
    let mock = mock_with(MockConfig {
        input_tokens: 100_000,
        output_tokens: 10,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": 1.0}});
    let exceeded: &[&str] = &["budget_exceeded"];
    let mut telegram = hook(
        format!("{}/bot123:SECRET/sendMessage", rx.url),
        "telegram",
        Some(exceeded),
    );
    telegram["chatId"] = json!(-100123);
    files.server["alerts"] = json!([
        hook(format!("{}/generic", rx.url), "generic", None),
        hook(format!("{}/slack", rx.url), "slack", Some(exceeded)),
        hook(
            format!("{}/flaky/discord", rx.url),
            "discord",
            Some(&["budget_warning"])
        ),
        telegram,
        hook(format!("{}/feishu", rx.url), "feishu", Some(exceeded)),
        hook(format!("{}/dingtalk", rx.url), "dingtalk", Some(exceeded)),
        hook(format!("{}/wecom", rx.url), "wecom", Some(exceeded)),
    ]);
    let gw = Gateway::start(&files).await;
    for i in 1..=4 {
        let r = post_messages(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", i % 2 == 0),
        )
        .await;
        assert_eq!(r.status(), 200, "request {i}");
        let _ = r.text().await;
    }
    let refused = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(refused.status(), 402);

    // The flaky hook: two failures, then delivered (back-off 1 s + 2 s).
    eventually(20, || async {
        (rx.at("flaky/discord").len() == 3).then_some(())
    })
    .await;
    eventually(10, || async {
        (rx.events("generic", "budget_exceeded").len() == 1 && rx.at("wecom").len() == 1)
            .then_some(())
    })
    .await;
    // Nothing more arrives: once per crossing, not once per request.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let warning = rx.events("generic", "budget_warning");
    let over = rx.events("generic", "budget_exceeded");
    assert_eq!(warning.len(), 1, "{:?}", rx.at("generic"));
    assert_eq!(over.len(), 1, "{:?}", rx.at("generic"));
    assert_eq!(
        rx.at("generic").len(),
        2,
        "no other event: {:?}",
        rx.at("generic")
    );
    assert_eq!(warning[0]["details"]["tenant"], "t1");
    assert_eq!(warning[0]["details"]["percent"], 80);
    assert_eq!(warning[0]["details"]["window"], "daily");
    assert_eq!(over[0]["details"]["percent"], 100);
    assert_eq!(over[0]["severity"], "critical");
    assert_eq!(over[0]["source"], "ccgate");

    let discord = rx.at("flaky/discord");
    assert!(
        discord.iter().all(|m| m == &discord[0]),
        "the same message each try"
    );
    assert!(
        discord[0]["content"].as_str().unwrap().contains("80%"),
        "{}",
        discord[0]
    );
    let slack = rx.at("slack");
    assert_eq!(slack.len(), 1);
    assert!(
        slack[0]["text"]
            .as_str()
            .unwrap()
            .contains("used up its daily budget"),
        "{}",
        slack[0]
    );
    let telegram = rx.at("bot123:SECRET/sendMessage");
    assert_eq!(telegram.len(), 1);
    assert_eq!(telegram[0]["chat_id"], "-100123");
    assert!(telegram[0]["text"].is_string());
    let feishu = rx.at("feishu");
    assert_eq!((feishu.len(), &feishu[0]["msg_type"]), (1, &json!("text")));
    assert!(feishu[0]["content"]["text"]
        .as_str()
        .unwrap()
        .starts_with("[CCGate]"));
    for path in ["dingtalk", "wecom"] {
        let m = rx.at(path);
        assert_eq!(m.len(), 1, "{path}");
        assert_eq!(m[0]["msgtype"], "text");
        assert!(
            m[0]["text"]["content"].as_str().unwrap().contains("t1"),
            "{path}: {}",
            m[0]
        );
    }

    // The admin sees every alert and every delivery; the hooks' tokens never.
    let listed = admin_alerts(&gw).await;
    assert_eq!(listed["alerts"].as_array().unwrap().len(), 2, "{listed}");
    let flaky = listed["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["format"] == "discord")
        .cloned()
        .unwrap();
    assert_eq!(
        (flaky["attempts"].as_i64(), flaky["status"].as_str()),
        (Some(3), Some("delivered")),
        "{flaky}"
    );
    assert!(!listed.to_string().contains("SECRET"), "{listed}");
    assert!(!gw.logs().contains("SECRET"), "a hook's token in the log");
    let anonymous = client()
        .get(format!("{}/api/admin/alerts", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// An upstream that fails its health checks is reported once, however many probes fail, and its recovery once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_upstream_is_reported_once_and_so_is_its_recovery() {
    let rx = Receiver::start().await;
    let mock = mock_with(MockConfig {
        status: 503,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[mock.url()]);
    files.upstreams["loadBalancer"]["healthCheckEnabled"] = json!(true);
    files.upstreams["upstreams"][0]["healthCheck"] = json!({"interval": 250, "timeout": 1000});
    files.server["alerts"] = json!([hook(format!("{}/generic", rx.url), "generic", None)]);
    let gw = Gateway::start(&files).await;
    eventually(10, || async {
        (!rx.events("generic", "upstream_unhealthy").is_empty()).then_some(())
    })
    .await;
    // Several more failing probes.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        rx.events("generic", "upstream_unhealthy").len(),
        1,
        "{:?}",
        rx.at("generic")
    );
    mock.set_config(MockConfig::default());
    eventually(10, || async {
        (!rx.events("generic", "upstream_recovered").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = rx.at("generic");
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["details"]["upstream"], "up1");
    assert_eq!(got[1]["event"], "upstream_recovered");
    drop(gw);
}

/// 401 from the upstream (our key): one `upstream_key_rejected` for many such answers, never the key itself, and a
/// recovery when it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_upstream_key_is_reported_once_without_the_key() {
    let rx = Receiver::start().await;
    let mock = mock_with(MockConfig {
        status: 401,
        error_message: Some(format!("invalid x-api-key: {UPSTREAM_KEY}")),
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[mock.url()]);
    files.server["alerts"] = json!([hook(
        format!("{}/generic", rx.url),
        "generic",
        Some(&["upstream_key_rejected", "upstream_recovered"])
    )]);
    let gw = Gateway::start(&files).await;
    for _ in 0..3 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert!(r.status().is_server_error() || r.status().is_client_error());
        let _ = r.text().await;
    }
    eventually(10, || async {
        (!rx.events("generic", "upstream_key_rejected").is_empty()).then_some(())
    })
    .await;
    mock.set_config(MockConfig::default());
    // The key cooldown (60 s) keeps the upstream out of rotation, but it is the only one: it still serves.
    eventually(20, || async {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        (r.status() == 200).then_some(())
    })
    .await;
    eventually(10, || async {
        (!rx.events("generic", "upstream_recovered").is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.at("generic");
    assert_eq!(
        rx.events("generic", "upstream_key_rejected").len(),
        1,
        "{got:?}"
    );
    assert_eq!(got.len(), 2, "{got:?}");
    let text = serde_json::to_string(&got).unwrap();
    assert!(
        !text.contains(UPSTREAM_KEY),
        "the upstream key in an alert: {text}"
    );
    assert!(text.contains("[redacted]"), "{text}");
}

/// A ledger whose writes fail (a trigger refuses inserts) is one `ledger_write_failed`; writes succeeding again
/// are one `ledger_recovered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_write_failures_and_the_recovery_are_reported_once_each() {
    use sqlx::Connection;
    let rx = Receiver::start().await;
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["alerts"] = json!([hook(format!("{}/generic", rx.url), "generic", None)]);
    let gw = Gateway::start(&files).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    let _ = r.text().await;
    ledger_rows_at_least(&gw, 1).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", gw.db_path().display()))
        .await
        .unwrap();
    sqlx::query("CREATE TRIGGER refuse BEFORE INSERT ON requests BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        .execute(&mut conn)
        .await
        .unwrap();
    for _ in 0..3 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
        let _ = r.text().await;
    }
    eventually(15, || async {
        (!rx.events("generic", "ledger_write_failed").is_empty()).then_some(())
    })
    .await;
    // Retries go on (back-off up to 5 s): still one message.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sqlx::query("DROP TRIGGER refuse")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    eventually(15, || async {
        (!rx.events("generic", "ledger_recovered").is_empty()).then_some(())
    })
    .await;
    ledger_rows_at_least(&gw, 4).await;
    let got = rx.at("generic");
    assert_eq!(
        rx.events("generic", "ledger_write_failed").len(),
        1,
        "{got:?}"
    );
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0]["text"]
            .as_str()
            .unwrap()
            .contains("refused by the test"),
        "{}",
        got[0]
    );
}

/// `ccgate alerts test` posts one test message to every hook and fails, naming the hook, when one refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_test_sends_to_every_hook_and_reports_failures() {
    let rx = Receiver::start().await;
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["alerts"] = json!([
        hook(
            format!("{}/generic", rx.url),
            "generic",
            Some(&["store_outage"])
        ),
        hook(format!("{}/dingtalk", rx.url), "dingtalk", None),
    ]);
    let gw = Gateway::start(&files).await;
    let out = cli(&gw, &["alerts", "test"]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(rx.at("generic").len(), 1);
    assert_eq!(rx.at("generic")[0]["event"], "test");
    assert!(rx.at("dingtalk")[0]["text"]["content"]
        .as_str()
        .unwrap()
        .contains("Test message"));

    // A hook that fails: the command says which and exits non-zero.
    let mut server = files.server.clone();
    server["alerts"] = json!([hook(format!("{}/flaky/x", rx.url), "slack", None)]);
    gw.write_config("server.json", &server);
    let out = cli(&gw, &["alerts", "test"]).await;
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("alerts[0]") && text.contains("HTTP 500"),
        "{text}"
    );
}

/// A hook's config mistakes are reported with their field path, without repeating the URL (it holds a token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_alert_config_is_reported_by_field() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["alerts"] = json!([
        {"url": "https://api.telegram.org/botSECRET/sendMessage", "format": "telegram"},
    ]);
    let dir = TempDir::new("alerts-cfg");
    files.write(&dir.0);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["config", "validate", "--config-dir"])
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("server.json: alerts[0].chatId: required for format telegram"),
        "{text}"
    );
    files.server["alerts"] = json!([{"url": "https://hooks.example/x", "format": "pager", "events": ["budget_warning"]}]);
    files.write(&dir.0);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["config", "validate", "--config-dir"])
        .arg(&dir.0)
        .output()
        .await
        .unwrap();
    let text = output_text(&out);
    assert!(
        text.contains("alerts[0].format: unknown format \"pager\""),
        "{text}"
    );
    assert!(!text.contains("SECRET"));
}

/// Rolling windows and per-model limits cross 80 % and 100 % like calendar budgets: one message per crossing,
/// naming the window (and the models it is about).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_and_per_model_limits_alert_at_80_and_100_percent() {
    let rx = Receiver::start().await;
    // $0.30 per request, as above.
    let mock = mock_with(MockConfig {
        input_tokens: 100_000,
        output_tokens: 10,
        ..MockConfig::default()
    })
    .await;
    let mut files = Files::new(&[mock.url()]);
    files.tenants["tenants"][0]["limits"] = json!({
        "rolling": [{"hours": 5, "maxUSD": 1.0}],
        "models": {"*sonnet*": {"daily": {"maxUSD": 1.0}}},
    });
    files.server["alerts"] = json!([hook(format!("{}/generic", rx.url), "generic", None)]);
    let gw = Gateway::start(&files).await;
    for i in 1..=4 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200, "request {i}");
        let _ = r.text().await;
    }
    let refused = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(
        refused.status(),
        402,
        "the model's daily budget refuses first"
    );
    eventually(10, || async { (rx.at("generic").len() == 4).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let got = rx.at("generic");
    assert_eq!(got.len(), 4, "{got:?}");
    let mut seen: Vec<(String, String, i64)> = got
        .iter()
        .map(|m| {
            (
                m["event"].as_str().unwrap().to_string(),
                m["details"]["window"].as_str().unwrap().to_string(),
                m["details"]["percent"].as_i64().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                "budget_exceeded".into(),
                "daily (models *sonnet*)".into(),
                100
            ),
            ("budget_exceeded".into(), "rolling 5h".into(), 100),
            (
                "budget_warning".into(),
                "daily (models *sonnet*)".into(),
                80
            ),
            ("budget_warning".into(), "rolling 5h".into(), 80),
        ]
    );
}
