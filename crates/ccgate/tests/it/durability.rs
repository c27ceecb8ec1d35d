//! Faults around the ledger (issue #17, items 3 and 13–17): kill -9, a database that stops taking writes, a
//! read-only data folder, a deleted database file, shutdown with streams longer than the grace period, and
//! absurd usage numbers from an upstream.

use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A gateway in front of the mock, with one request stored in its ledger.
async fn gateway_with_one_row() -> (ccgate_mock::MockHandle, Gateway) {
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    wait_requests(&gw, 1).await;
    (mock, gw)
}

/// SIGKILL, then a new gateway on the same folders.
async fn kill9_and_restart(mut gw: Gateway) -> Gateway {
    gw.child.start_kill().expect("kill -9");
    let _ = gw.child.wait().await;
    let Gateway { config, data, .. } = gw;
    Gateway::start_in(config, data).await
}

/// A streamed request read up to and including the event named `until` (or to the end when `None`).
async fn stream_until(
    gw: &Gateway,
    cfg: Value,
    until: Option<&str>,
) -> (reqwest::Response, String) {
    let mut resp = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("x-mock-config", cfg.to_string())
        .json(&messages_body("claude-sonnet-4-6", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut text = String::new();
    while let Some(chunk) = resp.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&chunk));
        if until.is_some_and(|ev| text.contains(&format!("event: {ev}"))) {
            break;
        }
    }
    (resp, text)
}

/// The client has every byte of its answer (message_stop read, or the whole JSON body) and the gateway is
/// killed at once: after the restart every one of those requests is in the ledger, exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_the_clients_received_survive_kill_9() {
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let url = gw.url.clone();
        tasks.push(tokio::spawn(async move {
            let resp = client()
                .post(format!("{url}/anthropic/v1/messages"))
                .header("x-api-key", TENANT_KEY)
                .header("anthropic-version", "2023-06-01")
                .json(&messages_body("claude-sonnet-4-6", i % 3 != 0))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let body = resp.text().await.unwrap();
            assert!(
                body.contains("message_stop") || body.contains("\"usage\""),
                "{body}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The last answer is out; the 50 ms batch has most likely not been committed yet.
    let gw = kill9_and_restart(gw).await;
    let rows = ledger_rows(&gw).await;
    assert_eq!(rows.len(), 24, "{rows:#?}");
    assert!(rows
        .iter()
        .all(|r| r["outcome"] == "ok" && r["input_tokens"] == 25));
    assert!(
        gw.logs().contains("crash journal") || rows.len() == 24,
        "the replay says what it did"
    );
    // A second restart adds nothing: the replay is idempotent.
    let (_, gw) = restart_same_dirs(gw).await;
    assert_eq!(ledger_rows(&gw).await.len(), 24);
}

/// A request in flight at kill -9 is recorded at the restart as interrupted, with the input usage the upstream
/// had reported (its message_start), and it counts in the tenant's usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_at_kill_9_is_recorded_as_interrupted() {
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    let (_resp, text) = stream_until(
        &gw,
        json!({"event_delay_ms": 2000, "chunks": 10}),
        Some("message_start"),
    )
    .await;
    assert!(text.contains("message_start"));
    // The progress line is written as message_start passes through; give the kernel the write.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let gw = kill9_and_restart(gw).await;
    let rows = ledger_rows(&gw).await;
    assert_eq!(rows.len(), 1, "{rows:#?}");
    let r = &rows[0];
    assert_eq!(r["outcome"], "interrupted");
    assert_eq!(r["error_class"], "gateway_crashed");
    assert_eq!(r["input_tokens"], 25);
    assert!(r["cost_nanousd"].as_i64().unwrap() > 0, "{r}");
    let usage = admin_usage(&gw).await;
    assert_eq!(usage["totals"]["requests"], 1, "{usage}");
}

/// SIGTERM with streams that outlast `shutdownGraceSeconds`: at the end of the grace period every stream ends
/// with an `overloaded_error` event, every one is recorded with the usage seen, and the exit is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_long_streams_at_the_grace_period_and_records_them_all() {
    let mock = mock().await;
    let mut files = Files::new(&[mock.url()]);
    files.server["server"]["shutdownGraceSeconds"] = json!(2);
    let mut gw = Gateway::start(&files).await;
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(
            stream_until(
                &gw,
                json!({"event_delay_ms": 1000, "chunks": 15}),
                Some("message_start"),
            )
            .await
            .0,
        );
    }
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut resp| {
            tokio::spawn(async move {
                let mut text = String::new();
                while let Ok(Some(chunk)) = resp.chunk().await {
                    text.push_str(&String::from_utf8_lossy(&chunk));
                }
                text
            })
        })
        .collect();
    let started = std::time::Instant::now();
    let status = gw.terminate().await;
    assert!(status.success(), "exit {status:?}; logs:\n{}", gw.logs());
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "{:?}",
        started.elapsed()
    );
    for r in readers {
        let text = r.await.unwrap();
        assert!(
            text.contains("event: error") && text.contains("overloaded_error"),
            "each cut stream ends with an error event: {text}"
        );
        assert!(!text.contains("message_stop"));
    }
    let logs = gw.logs();
    assert!(!logs.contains("without settlement"), "{logs}");
    let Gateway { config, data, .. } = gw;
    let gw = Gateway::start_in(config, data).await;
    let rows = ledger_rows(&gw).await;
    assert_eq!(rows.len(), 10, "{rows:#?}");
    for r in &rows {
        assert_eq!(r["outcome"], "interrupted", "{r}");
        assert_eq!(r["error_class"], "gateway_shutdown");
        assert_eq!(r["input_tokens"], 25);
    }
}

/// A data folder the gateway cannot write is refused at start, with the cause named; nothing is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_that_cannot_be_written_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let config = TempDir::new("cfg");
    files.write(&config.0);
    let data = TempDir::new("data");
    std::fs::set_permissions(&data.0, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(&config.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Root ignores permissions: run the gateway as `nobody` then (CI runs as root).
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
        c.arg(env!("CARGO_BIN_EXE_ccgate"));
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
    };
    // The temp folders' parents must be traversable by `nobody`.
    for dir in [&config.0, &data.0] {
        let mut p = dir.parent();
        while let Some(d) = p {
            let _ = std::fs::metadata(d).map(|m| {
                let mode = m.permissions().mode();
                if mode & 0o001 == 0 {
                    let _ =
                        std::fs::set_permissions(d, std::fs::Permissions::from_mode(mode | 0o001));
                }
            });
            p = d.parent();
        }
    }
    let out = cmd
        .arg("serve")
        .arg("--config-dir")
        .arg(&config.0)
        .arg("--data-dir")
        .arg(&data.0)
        .arg("--port")
        .arg("0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "must refuse; stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(!stdout.contains("listening"), "{stdout}");
    assert!(
        stderr.contains("cannot write") && stderr.contains("permission denied"),
        "the error names the cause: {stderr}"
    );
    assert!(stderr.contains(&data.0.display().to_string()), "{stderr}");
    std::fs::set_permissions(&data.0, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// `rm data/ccgate.db*` under a running gateway: it notices, recreates the file from the copy it holds open,
/// says so in /health, and no row is lost, before or after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_database_is_recreated_and_shown_in_health() {
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    for _ in 0..5 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    wait_requests(&gw, 5).await;
    for ext in ["db", "db-wal", "db-shm"] {
        let _ = std::fs::remove_file(gw.db_path().with_extension(ext));
    }
    for _ in 0..5 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    let h = eventually(10, || async {
        let h = health(&gw).await;
        (h["ledger"]["status"] == "degraded").then_some(h)
    })
    .await;
    assert!(
        h["ledger"]["error"].as_str().unwrap().contains("deleted"),
        "{h}"
    );
    assert_eq!(h["status"], "degraded");
    wait_requests(&gw, 10).await;
    assert!(gw.db_path().exists());
    assert_eq!(ledger_rows(&gw).await.len(), 10);
    assert!(gw.logs().contains("was deleted"), "{}", gw.logs());
}

/// A database that stops taking writes (held by another process's exclusive lock, as a full disk would refuse
/// them): clients are still served, /health shows the ledger degraded with its last good write, and every row
/// lands once the database takes writes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_writes_delays_rows_and_loses_none() {
    use sqlx::Connection;
    let (_mock, gw) = gateway_with_one_row().await;
    let mut lock = sqlx::SqliteConnection::connect(&format!("sqlite://{}", gw.db_path().display()))
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut lock)
        .await
        .unwrap();
    for _ in 0..6 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", true)).await;
        assert_eq!(r.status(), 200);
        assert!(r.text().await.unwrap().contains("message_stop"));
    }
    // SQLite's busy timeout (10 s) passes before the first write counts as failed.
    let h = eventually(25, || async {
        let h = health(&gw).await;
        (h["ledger"]["status"] == "degraded").then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded", "{h}");
    assert!(h["ledger"]["last_write"].is_string(), "{h}");
    assert!(h["ledger"]["failing_since"].is_string(), "{h}");
    let public = health_public(&gw).await;
    assert_eq!(
        public["ledger"],
        json!({"status": "degraded"}),
        "no details without credentials"
    );
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    drop(lock);
    eventually(20, || async {
        (ledger_rows(&gw).await.len() == 7).then_some(())
    })
    .await;
    eventually(10, || async {
        (health(&gw).await["ledger"]["status"] == "ok").then_some(())
    })
    .await;
}

/// An upstream reporting absurd usage: counts are clamped and the rows flagged, two such rows for one tenant,
/// model and day still sum, `/usage` answers, and the gateway starts again on that data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absurd_usage_is_clamped_flagged_and_survives_a_restart() {
    let mock = mock().await;
    let files = Files::new(&[mock.url()]);
    let gw = Gateway::start(&files).await;
    for stream in [false, true, false] {
        let resp = client()
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", TENANT_KEY)
            .header("anthropic-version", "2023-06-01")
            .header(
                "x-mock-config",
                json!({"input_tokens": u64::MAX, "output_tokens": u64::MAX}).to_string(),
            )
            .json(&messages_body("claude-sonnet-4-6", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let _ = resp.text().await;
    }
    let usage = wait_requests(&gw, 3).await;
    let totals = &usage["totals"];
    assert_eq!(totals["input_tokens"], 3_000_000_000i64, "{usage}");
    assert!(totals["cost_nanousd"].as_i64().unwrap() > 0, "{usage}");
    let rows = ledger_rows(&gw).await;
    for r in &rows {
        assert_eq!(r["input_tokens"], 1_000_000_000i64);
        assert_eq!(r["error_class"], "usage_out_of_range", "{r}");
    }
    let (status, gw) = restart_same_dirs(gw).await;
    assert!(status.success());
    assert_eq!(admin_usage(&gw).await["totals"]["requests"], 3);
}

/// A ledger written by an older version with a rollup that overflowed into a REAL (and a negative count) still
/// starts, with a warning, and its usage still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_with_overflowed_rows_still_starts() {
    use sqlx::Connection;
    let (_mock, gw) = gateway_with_one_row().await;
    let mut gw = gw;
    assert!(gw.terminate().await.success());
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", gw.db_path().display()))
        .await
        .unwrap();
    sqlx::query("UPDATE daily_rollup SET cost_nanousd = 1.8e19, input_tokens = -1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let Gateway { config, data, .. } = gw;
    let gw = Gateway::start_in(config, data).await;
    let usage = admin_usage(&gw).await;
    assert_eq!(usage["totals"]["requests"], 1, "{usage}");
    assert!(gw.logs().contains("out-of-range"), "{}", gw.logs());
}
