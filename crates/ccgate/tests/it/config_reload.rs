//! Config errors, first start, hot reload.

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

fn ccgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn config_errors_name_file_and_path_and_exit_nonzero() {
    let dir = TempDir::new("bad");
    let mut files = Files::new(&["http://127.0.0.1:9".to_string()]);
    files.upstreams["upstreams"][0]["weight"] = json!("heavy");
    files.write(&dir.0);
    let out = ccgate(&[
        "config",
        "validate",
        "--config-dir",
        dir.0.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"upstreams.json: upstreams[0].weight: expected a number, got "heavy""#),
        "{err}"
    );

    // serve refuses to start on the same config.
    let data = TempDir::new("bad-data");
    let out = ccgate(&[
        "serve",
        "--config-dir",
        dir.0.to_str().unwrap(),
        "--data-dir",
        data.0.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("upstreams[0].weight"));

    let mut files = Files::new(&["http://127.0.0.1:9".to_string()]);
    files.tenants["tenants"][1]["key"] = json!(TENANT_KEY);
    files.write(&dir.0);
    let out = ccgate(&[
        "config",
        "validate",
        "--config-dir",
        dir.0.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("tenants.json: tenants[1].key: duplicate tenant key"),
        "{err}"
    );
    assert!(!err.contains(TENANT_KEY), "keys never appear in errors");

    // Unknown fields only warn.
    let mut files = Files::new(&["http://127.0.0.1:9".to_string()]);
    files.upstreams["upstreams"][0]["colour"] = json!("blue");
    files.write(&dir.0);
    let out = ccgate(&[
        "config",
        "validate",
        "--config-dir",
        dir.0.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("colour"));
}

#[test]
fn init_writes_examples_and_never_overwrites() {
    let dir = TempDir::new("init");
    let cfg = dir.0.join("config");
    let out = ccgate(&["init", "--config-dir", cfg.to_str().unwrap()]);
    assert!(out.status.success());
    for f in [
        "server.json.example",
        "upstreams.json.example",
        "tenants.json.example",
    ] {
        assert!(cfg.join(f).exists(), "{f}");
    }
    std::fs::write(cfg.join("server.json.example"), "mine").unwrap();
    let out = ccgate(&["init", "--config-dir", cfg.to_str().unwrap()]);
    assert!(out.status.success());
    assert_eq!(
        std::fs::read_to_string(cfg.join("server.json.example")).unwrap(),
        "mine"
    );
}

#[tokio::test]
async fn first_start_creates_config_and_prints_credentials_once() {
    let root = TempDir::new("first");
    let cfg = root.0.join("config");
    let data = root.0.join("data");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args([
            "serve",
            "--port",
            "0",
            "--host",
            "127.0.0.1",
            "--config-dir",
            cfg.to_str().unwrap(),
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env_remove("ANTHROPIC_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(l) = lines.next_line().await.unwrap() {
            printed.push_str(&l);
            printed.push('\n');
            if let Some(rest) = l.strip_prefix("CCGate listening on ") {
                return rest.split_whitespace().next().unwrap().to_string();
            }
        }
        panic!("no listening line");
    })
    .await
    .unwrap();
    let key = printed
        .lines()
        .find_map(|l| l.split("Demo tenant key:").nth(1))
        .unwrap()
        .trim()
        .to_string();
    assert!(printed.contains("Admin login"), "{printed}");
    assert!(
        cfg.join("tenants.json").exists()
            && cfg.join("server.json").exists()
            && cfg.join("upstreams.json").exists()
    );
    // The demo key works (no upstream key: the request is refused upstream or fails to connect, but auth passes).
    let r = client()
        .get(format!("{url}/anthropic/v1/models"))
        .header("x-api-key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();
}

#[tokio::test]
async fn hot_reload_applies_valid_edits_and_keeps_last_good_config() {
    let m = mock().await;
    let files = Files::new(&[m.url()]);
    let gw = Gateway::start(&files).await;
    let new_key = "fresh-tenant-key-0000000000";
    assert_eq!(
        post_messages(&gw, new_key, &messages_body("claude-sonnet-4-6", false))
            .await
            .status(),
        401
    );

    // A slow stream in flight must survive the reload.
    let slow = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-mock-event-delay-ms", "150")
        .header("x-mock-chunks", "10")
        .json(&messages_body("claude-sonnet-4-6", true))
        .send()
        .await
        .unwrap();

    let mut tenants = files.tenants.clone();
    tenants["tenants"]
        .as_array_mut()
        .unwrap()
        .push(tenant("t3", new_key, &["*"]));
    let edited = Instant::now();
    gw.write_config("tenants.json", &tenants);
    // Until the reload, the new key is an unknown key: a failed login.
    eventually_every(2, Duration::from_millis(250), || async {
        (post_messages(&gw, new_key, &messages_body("claude-sonnet-4-6", false))
            .await
            .status()
            == 200)
            .then_some(())
    })
    .await;
    assert!(edited.elapsed() < Duration::from_secs(2));

    // An invalid edit is refused and logged; the last good config stays in force.
    let mut bad = tenants.clone();
    bad["tenants"][0]["allowedModels"] = json!("not-a-list");
    gw.write_config("tenants.json", &bad);
    eventually(3, || async {
        gw.logs()
            .contains("tenants.json: tenants[0].allowedModels")
            .then_some(())
    })
    .await;
    // /health says the running config is not what the files say: with the error and since when for the admin,
    // only the fact for anyone else.
    let h = health(&gw).await;
    assert_eq!(h["config"]["status"], "rejected", "{h}");
    assert!(
        h["config"]["error"]
            .as_str()
            .unwrap()
            .contains("tenants.json: tenants[0].allowedModels"),
        "{h}"
    );
    assert!(h["config"]["since"].is_string(), "{h}");
    let public: Value = client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(public["config"], json!({"status": "rejected"}));
    assert_eq!(
        post_messages(&gw, new_key, &messages_body("claude-sonnet-4-6", false))
            .await
            .status(),
        200
    );
    assert_eq!(
        post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false))
            .await
            .status(),
        200
    );

    let mut body = Vec::new();
    let mut s = slow.bytes_stream();
    while let Some(c) = s.next().await {
        body.extend_from_slice(&c.unwrap());
    }
    assert!(
        String::from_utf8_lossy(&body).contains("message_stop"),
        "in-flight stream completed across reloads"
    );

    // Removing a tenant takes effect too, and the files match the running config again.
    gw.write_config("tenants.json", &files.tenants);
    eventually(2, || async {
        (post_messages(&gw, new_key, &messages_body("claude-sonnet-4-6", false))
            .await
            .status()
            == 401)
            .then_some(())
    })
    .await;
    assert_eq!(health(&gw).await["config"]["status"], "ok");
}
