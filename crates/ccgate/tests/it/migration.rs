//! A user of the original (Node) CCGate copies their `config/` folder over: the original's files, as its README
//! and tools write them, must start the gateway and behave as they did there.

use crate::common::*;
use futures_util::StreamExt;
use serde_json::json;
use std::time::{Duration, Instant};

/// The original's `server.json`: `timeout` was the upstream socket's idle timeout, plus fields it wrote itself.
const ORIGINAL_SERVER: &str = r#"{
  "server": {
    "port": 0,
    "host": "127.0.0.1",
    "timeout": 30000,              // the original's default
    "keepAlive": true
  },
  "admin": {
    "enabled": true,
    "path": "/admin",
    "username": "admin",
    "password": "admin-password-123"
  },
  "logging": { "level": "info", "maxFileSize": "100MB", "maxFiles": 5, "directory": "./data/logs", "enableConsole": true },
  "proxy": { "enabled": false, "host": "", "port": 0 },
}"#;

/// The original's `pricing.json`: a `metadata` block, and `*haiku*` at Claude 3 Haiku's rates.
const ORIGINAL_PRICING: &str = r#"{
  "metadata": { "version": "1.0.0", "lastUpdated": "2024-10-22", "currency": "USD", "unit": "per 1K tokens" },
  "modelPricing": {
    "*haiku*": { "input": 0.00025, "output": 0.00125, "cacheCreation": 0.0003, "cacheRead": 0.00003 }
  }
}"#;

fn original_upstreams(url: &str) -> String {
    format!(
        r#"{{
  "upstreams": [
    {{
      "id": "upstream-1",                        // Unique identifier for upstream server
      "name": "Claude API Server",
      "url": "{url}",
      "key": "{UPSTREAM_KEY}",
      "description": "Official Claude API",
      "weight": 100,
      "enabled": true
    }}
  ],
  "loadBalancer": {{
    "strategy": "weighted_round_robin",
    "healthCheckEnabled": true,
    "failoverEnabled": true
  }}
}}"#
    )
}

/// The README's tenant snippet, trailing comma included, with the timestamps the original's tools add.
fn original_tenants() -> String {
    format!(
        r#"{{
  "tenants": [
    {{
      "id": "tenant-1",
      "name": "fenger",
      "key": "{TENANT_KEY}",
      "enabled": true,
      "allowedModels": ["*sonnet*", "*haiku*"],
      "limits": {{
        "daily": {{
          "maxUSD": 100.0,      // Daily maximum cost (USD)
        }}
      }},
      "createdAt": "2025-01-01T00:00:00.000Z",
      "updatedAt": "2025-01-02T00:00:00.000Z"
    }}
  ]
}}"#
    )
}

fn write_original(dir: &std::path::Path, mock_url: &str) {
    std::fs::write(dir.join("server.json"), ORIGINAL_SERVER).unwrap();
    std::fs::write(dir.join("upstreams.json"), original_upstreams(mock_url)).unwrap();
    std::fs::write(dir.join("tenants.json"), original_tenants()).unwrap();
    std::fs::write(dir.join("pricing.json"), ORIGINAL_PRICING).unwrap();
}

#[tokio::test]
async fn the_original_config_folder_starts_and_a_45_second_stream_completes() {
    let m = mock().await;
    let config = TempDir::new("orig-cfg");
    write_original(&config.0, &m.url());
    let gw = Gateway::start_in(config, TempDir::new("orig-data")).await;

    let logs = gw.logs();
    // No warning for the fields the original writes itself; one for the unknown `metadata` block and one for the
    // cheap `*haiku*` price.
    assert!(
        logs.lines()
            .any(|l| l.contains("pricing.json: \"metadata\": unknown key, ignored")),
        "{logs}"
    );
    // The original's `logging` block is honoured: its files in "./data/logs", relative to the working directory.
    let combined = gw.data.0.join("data").join("logs").join("combined.log");
    assert!(combined.exists(), "{}", combined.display());
    for field in ["createdAt", "updatedAt", "keepAlive", "proxy", "logging"] {
        assert!(
            !logs
                .lines()
                .any(|l| l.contains(field) && l.contains("unknown")),
            "{field} warned about: {logs}"
        );
    }
    assert!(
        logs.lines().any(|l| l.contains("*haiku*")
            && l.contains("claude-haiku-4-5")
            && l.contains("the override wins")),
        "{logs}"
    );

    // Six events 9.5 s apart (47.5 s): longer than `server.timeout` in total, never silent that long.
    let started = Instant::now();
    // No total timeout on this client: the stream is meant to outlast the usual test client's.
    let long = reqwest::Client::builder()
        .no_proxy()
        .read_timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let r = long
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-mock-event-delay-ms", "9500")
        .json(&messages_body("claude-sonnet-4-6", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut body = String::new();
    let mut stream = r.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    let took = started.elapsed();
    assert!(took > Duration::from_secs(45), "the stream took {took:?}");
    assert!(body.contains("event: message_stop"), "{body}");
    assert!(!body.contains("event: error"), "{body}");
}

#[tokio::test]
async fn server_timeout_is_the_idle_timer_of_upstreams() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["timeout"] = json!(1500);
    let gw = Gateway::start(&files).await;
    // Silent for longer than server.timeout: the idle timer ends the stream with an error event.
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-mock-event-delay-ms", "3000")
        .json(&messages_body("claude-sonnet-4-6", true))
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("no data from upstream for 1.5 s"), "{text}");
}

async fn validate(dir: &std::path::Path) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["config", "validate", "--config-dir"])
        .arg(dir)
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn duplicate_keys_are_errors_naming_file_and_path() {
    let m = mock().await;
    let config = TempDir::new("dup-cfg");
    write_original(&config.0, &m.url());
    let tenants = original_tenants().replace(
        r#""enabled": true,"#,
        r#""enabled": false,
      "enabled": true,"#,
    );
    std::fs::write(config.0.join("tenants.json"), tenants).unwrap();
    let (ok, text) = validate(&config.0).await;
    assert!(!ok, "{text}");
    assert!(
        text.contains("tenants.json: tenants[0].enabled: given twice"),
        "{text}"
    );
}

#[tokio::test]
async fn trailing_commas_and_comments_are_accepted_everywhere() {
    let m = mock().await;
    let config = TempDir::new("comma-cfg");
    write_original(&config.0, &m.url());
    let (ok, text) = validate(&config.0).await;
    assert!(ok, "{text}");
    assert!(text.contains("OK: 1 upstream(s)"), "{text}");
    assert!(!text.contains("createdAt"), "{text}");
    // The error message names pricing.json once.
    std::fs::write(
        config.0.join("pricing.json"),
        r#"{"modelPricing": {"m": {"input": -1, "output": 1}}}"#,
    )
    .unwrap();
    let (ok, text) = validate(&config.0).await;
    assert!(!ok, "{text}");
    assert_eq!(text.matches("pricing.json").count(), 1, "{text}");
}
#[tokio::test]
async fn config_validate_reports_every_problem() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.upstreams["upstreams"][0]["weight"] = json!(-5);
    files.upstreams["loadBalancer"] = json!({"strategy": "fastest"});
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": -1}});
    files.tenants["tenants"][1]["id"] = json!("t1");
    files.server["server"]["timezone"] = json!("Mars/Olympus");
    let config = TempDir::new("many-cfg");
    files.write(&config.0);
    let (ok, text) = validate(&config.0).await;
    assert!(!ok, "{text}");
    for expected in [
        "server.json: server.timezone",
        "upstreams.json: loadBalancer.strategy",
        "upstreams.json: upstreams[0].weight",
        "tenants.json: tenants[0].limits.daily.maxUSD",
        "tenants.json: tenants[1].id",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

/// The start-up message tells a new user where everything is.
#[tokio::test]
async fn start_up_message_shows_the_urls_and_counts() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let out = eventually(5, || async {
        let s = gw.stdout.lock().clone();
        s.contains("OpenAI API").then_some(s)
    })
    .await;
    assert!(
        out.contains("1 upstream(s) (1 enabled), 2 tenant(s)"),
        "{out}"
    );
    assert!(out.contains(&format!("{}/dashboard", gw.url)), "{out}");
    assert!(out.contains(&format!("{}/anthropic", gw.url)), "{out}");
    assert!(out.contains(&format!("{}/openai/v1", gw.url)), "{out}");
}

/// `/` sends a browser to the dashboard (the original served it there) and keeps a plain 200 for probes.
#[tokio::test]
async fn root_redirects_browsers_and_answers_probes() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let no_redirects = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirects
        .get(format!("{}/", gw.url))
        .header("accept", "text/html,application/xhtml+xml,*/*;q=0.8")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_redirection(), "{}", r.status());
    assert_eq!(r.headers()["location"], "/dashboard");
    for req in [
        no_redirects.get(format!("{}/", gw.url)),
        no_redirects.head(format!("{}/", gw.url)),
        no_redirects
            .head(format!("{}/", gw.url))
            .header("accept", "text/html"),
    ] {
        assert_eq!(req.send().await.unwrap().status(), 200);
    }
}

/// `ccgate … | head` must not panic when the pipe closes.
#[tokio::test]
async fn report_commands_end_quietly_on_a_closed_pipe() {
    let m = mock().await;
    let config = TempDir::new("pipe-cfg");
    Files::new(&[m.url()]).write(&config.0);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["config", "validate", "--config-dir"])
        .arg(&config.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
