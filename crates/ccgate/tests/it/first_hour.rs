//! Issue 18, "a user's first hour": refusals in the reports, fresh upstream errors, default credentials, backups
//! and readable tables.

use crate::common::*;
use serde_json::json;

/// A clean shutdown leaves every row in `ccgate.db` itself (the WAL checkpointed), and `ccgate backup` copies a
/// running gateway's ledger, refusing to overwrite unless told to.
#[tokio::test]
async fn backups_are_complete_online_and_after_shutdown() {
    let m = mock().await;
    let mut gw = Gateway::start(&Files::new(&[m.url()])).await;
    for _ in 0..3 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    wait_requests(&gw, 3).await;

    let out_dir = TempDir::new("backup");
    let dest = out_dir.0.join("ccgate-backup.db");
    let dest_arg = dest.to_str().unwrap();
    let out = cli(&gw, &["backup", dest_arg]).await;
    assert!(out.status.success(), "{}", output_text(&out));
    assert_eq!(count_requests_in(&dest).await, 3);

    let nowhere = out_dir.0.join("missing-folder").join("b.db");
    let out = cli(&gw, &["backup", nowhere.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        output_text(&out).contains("no folder"),
        "{}",
        output_text(&out)
    );
    let again = cli(&gw, &["backup", dest_arg]).await;
    assert!(!again.status.success());
    assert!(
        output_text(&again).contains("--force"),
        "{}",
        output_text(&again)
    );
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    wait_requests(&gw, 4).await;
    let forced = cli(&gw, &["backup", dest_arg, "--force"]).await;
    assert!(forced.status.success(), "{}", output_text(&forced));
    assert_eq!(count_requests_in(&dest).await, 4);

    assert!(gw.terminate().await.success());
    let wal = gw.data.0.join("ccgate.db-wal");
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        wal_len, 0,
        "the WAL still holds data after a clean shutdown"
    );
    // The database file alone, as someone copying it would take it.
    let copy = out_dir.0.join("copied.db");
    std::fs::copy(gw.db_path(), &copy).unwrap();
    assert_eq!(count_requests_in(&copy).await, 4);
}

/// The original's default admin password is refused like the examples, and the admin is told why (on the login
/// page's answer, at start-up); example tenant keys are warned about.
#[tokio::test]
async fn default_credentials_are_refused_and_explained() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["admin"]["password"] = json!("changeme");
    files.tenants["tenants"][1]["key"] = json!("your-unique-api-key");
    let gw = Gateway::start(&files).await;

    let login = |password: &'static str| {
        let url = format!("{}/usage", gw.url);
        async move {
            client()
                .post(url)
                .json(&json!({"type": "admin", "username": "admin", "password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    let r = login("changeme").await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "admin_password_refused", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("known default") && msg.contains("config/server.json"),
        "{msg}"
    );
    // Wrong credentials stay "wrong credentials": nothing is said about the configured password.
    assert_eq!(login("not-the-password").await.status(), 401);
    // /health with the refused credentials: the public part only.
    let h: serde_json::Value = client()
        .get(format!("{}/health", gw.url))
        .basic_auth("admin", Some("changeme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(h.get("upstreams").is_none(), "{h}");

    let banner = eventually(5, || async {
        let out = gw.stdout.lock().clone();
        out.contains("Admin login:").then_some(out)
    })
    .await;
    assert!(
        banner.contains("REFUSED") && banner.contains("server.json"),
        "{banner}"
    );
    let logs = gw.logs();
    assert!(logs.contains("admin.password is a known default"), "{logs}");
    assert!(logs.contains("tenants[1].key: an example value"), "{logs}");
    assert!(!logs.contains("your-unique-api-key"), "a key was logged");
}

fn up1(h: &serde_json::Value) -> serde_json::Value {
    h["upstreams"][0].clone()
}

/// `/health` says what is true now: an upstream's error is gone once it succeeds again, and a new URL does not
/// inherit the errors of the old one.
#[tokio::test]
async fn upstream_errors_clear_on_recovery_and_on_a_new_url() {
    let m = mock().await;
    // Nothing listens on port 1: every attempt is a connection error.
    let mut files = Files::new(&["http://127.0.0.1:1".to_string()]);
    files.upstreams["loadBalancer"]["failoverEnabled"] = json!(false);
    let gw = Gateway::start(&files).await;
    let body = messages_body("claude-sonnet-4-6", false);
    let r = post_messages(&gw, TENANT_KEY, &body).await;
    assert!(r.status().is_server_error(), "{}", r.status());
    let h = up1(&health(&gw).await);
    assert!(h["last_error"].is_string(), "{h}");
    assert!(h["last_error_at"].is_string(), "{h}");

    // The URL is fixed: the old URL's error, failures and cooldown are not the new one's.
    files.upstreams["upstreams"][0]["url"] = json!(m.url());
    gw.write_config("upstreams.json", &files.upstreams);
    let h = eventually(5, || async {
        let h = up1(&health(&gw).await);
        h["last_error"].is_null().then_some(h)
    })
    .await;
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["consecutive_failures"], 0, "{h}");
    assert_eq!(post_messages(&gw, TENANT_KEY, &body).await.status(), 200);

    // A failure shows; the next success clears it within moments.
    let r = post_anthropic_h(&gw, TENANT_KEY, &body, &[("x-mock-status", "500")]).await;
    assert_eq!(r.status(), 500);
    let h = up1(&health(&gw).await);
    assert!(h["last_error"].is_string(), "{h}");
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(post_messages(&gw, TENANT_KEY, &body).await.status(), 200);
    let h = eventually(3, || async {
        let h = up1(&health(&gw).await);
        h["last_error"].is_null().then_some(h)
    })
    .await;
    assert!(h["last_success_at"].is_string(), "{h}");
}

async fn tenant_usage(gw: &Gateway, key: &str) -> serde_json::Value {
    client()
        .post(format!("{}/usage", gw.url))
        .json(&json!({"type": "tenant", "apiKey": key}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Refusals (403 here) show per tenant and reason to the admin (`/usage`, so the dashboard, and `ccgate usage`),
/// each tenant sees only its own, and wrong keys, which have no tenant, are counted since start. The table fits
/// 80 columns with a model name longer than any column.
#[tokio::test]
async fn refusals_show_per_tenant_and_reason_and_tables_fit() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    for _ in 0..2 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-opus-4-1", false)).await;
        assert_eq!(r.status(), 403);
    }
    let ok = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(ok.status(), 200);
    let long_model = format!("claude-sonnet-4-6-{}", "x".repeat(60));
    let ok = post_messages(&gw, TENANT2_KEY, &messages_body(&long_model, false)).await;
    assert_eq!(ok.status(), 200);
    let wrong = post_messages(
        &gw,
        "not-a-key-of-anyone-here",
        &messages_body("claude-sonnet-4-6", false),
    )
    .await;
    assert_eq!(wrong.status(), 401);

    let u = eventually(10, || async {
        let u = admin_usage(&gw).await;
        (u["refusals"]["requests"] == 2 && u["totals"]["requests"] == 2).then_some(u)
    })
    .await;
    let tenant = |id: &str| {
        u["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        tenant("t1")["refusals"]["by_reason"],
        json!([{"reason": "model_not_allowed", "status": 403, "requests": 2}])
    );
    assert_eq!(tenant("t2")["refusals"]["requests"], 0);
    assert!(
        u["unauthenticated"]["failed_logins"].as_i64().unwrap() >= 1,
        "{u}"
    );

    // A tenant sees its own refusals, never another's, and not the gateway-wide login failures.
    let t2 = tenant_usage(&gw, TENANT2_KEY).await;
    assert_eq!(t2["refusals"]["requests"], 0, "{t2}");
    assert!(t2.get("unauthenticated").is_none(), "{t2}");
    assert!(t2.get("tenants").is_none(), "{t2}");
    let t1 = tenant_usage(&gw, TENANT_KEY).await;
    assert_eq!(t1["refusals"]["requests"], 2, "{t1}");

    let out = cli_with_env(&gw, &["usage"], &[("COLUMNS", "80")]).await;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", output_text(&out));
    for line in text.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line:?}\n{text}");
    }
    assert!(!text.contains('\x1b'), "colour in a pipe:\n{text}");
    let header = text.lines().find(|l| l.starts_with("TENANT")).unwrap();
    assert!(
        header.contains("ERRORS") && header.contains("REFUSED"),
        "{header}"
    );
    let t1_row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("t1 "))
        .unwrap()
        .split_whitespace()
        .collect();
    // TENANT REQUESTS ERRORS REFUSED …
    assert_eq!(&t1_row[..4], ["t1", "1", "0", "2"], "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("t1 ") && l.contains("model_not_allowed") && l.contains("403")),
        "{text}"
    );
    let model_header = text.lines().find(|l| l.starts_with("MODEL")).unwrap();
    // Cut in the middle: both ends of a model name tell models apart.
    let long_row = text
        .lines()
        .find(|l| l.starts_with("claude-") && l.contains("…xxx"))
        .unwrap_or_else(|| panic!("no cut model row:\n{text}"));
    assert_eq!(
        long_row.chars().count(),
        model_header.chars().count(),
        "columns out of line:\n{text}"
    );

    let health = cli_with_env(&gw, &["health", "--url", &gw.url], &[("COLUMNS", "80")]).await;
    let htext = String::from_utf8_lossy(&health.stdout).to_string();
    assert!(health.status.success(), "{}", output_text(&health));
    for line in htext.lines() {
        assert!(line.chars().count() <= 80, "too wide: {line:?}\n{htext}");
    }
    assert!(htext.lines().any(|l| l.starts_with("up1 ")), "{htext}");
}

/// A reload that changes an upstream's URL has the new URL probed at once, not an interval later: `/health`
/// soon says whether the new endpoint works.
#[tokio::test]
async fn a_new_upstream_url_is_probed_at_once() {
    let mut files = Files::new(&["http://127.0.0.1:1".to_string()]);
    files.upstreams["loadBalancer"]["healthCheckEnabled"] = json!(true);
    files.upstreams["upstreams"][0]["healthCheck"] = json!({"interval": 600_000, "timeout": 500});
    let gw = Gateway::start(&files).await;
    eventually(5, || async {
        (up1(&health(&gw).await)["status"] == "unhealthy").then_some(())
    })
    .await;
    // Another address where nothing listens: the old URL's failed probe says nothing about it, the new probe does.
    let reloaded_at = chrono::Utc::now();
    files.upstreams["upstreams"][0]["url"] = json!("http://127.0.0.1:2");
    gw.write_config("upstreams.json", &files.upstreams);
    eventually(5, || async {
        gw.logs().contains("its health starts afresh").then_some(())
    })
    .await;
    eventually(5, || async {
        let h = up1(&health(&gw).await);
        let probed_after_reload = h["last_error_at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| t >= reloaded_at);
        (h["status"] == "unhealthy" && probed_after_reload).then_some(())
    })
    .await;
}
