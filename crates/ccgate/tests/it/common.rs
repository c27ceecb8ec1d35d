//! Test harness: temp config/data folders, the real binary on a free port, the mock upstream in-process.

#![allow(dead_code)]

use ccgate_mock::{MockConfig, MockHandle};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const TENANT_KEY: &str = "tenant-key-aaaaaaaaaaaaaaaa";
pub const TENANT2_KEY: &str = "tenant-key-bbbbbbbbbbbbbbbb";
pub const UPSTREAM_KEY: &str = "upstream-secret-key-zzzz";
pub const ADMIN_PASSWORD: &str = "admin-password-123";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("ccgate-it-{tag}-{}", uuid_like()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{}-{}-{}",
        std::process::id(),
        t,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn upstream(id: &str, url: &str) -> Value {
    json!({"id": id, "name": id, "url": url, "key": UPSTREAM_KEY, "weight": 1, "enabled": true})
}

pub fn tenant(id: &str, key: &str, allowed: &[&str]) -> Value {
    json!({"id": id, "name": id, "key": key, "enabled": true, "allowedModels": allowed})
}

/// A config folder's three files.
pub struct Files {
    pub server: Value,
    pub upstreams: Value,
    pub tenants: Value,
}

impl Files {
    /// One upstream per mock URL, two tenants (`t1` may use sonnet and haiku, `t2` everything).
    pub fn new(mock_urls: &[String]) -> Files {
        let ups: Vec<Value> = mock_urls
            .iter()
            .enumerate()
            .map(|(i, u)| upstream(&format!("up{}", i + 1), u))
            .collect();
        Files {
            server: json!({"server": {"port": 0, "host": "127.0.0.1"}, "admin": {"username": "admin", "password": ADMIN_PASSWORD},
                           "openai": {"enabled": true, "models": {"gpt-4o": "claude-sonnet-4-6"}, "defaultModel": "claude-sonnet-4-6"}}),
            upstreams: json!({"upstreams": ups, "loadBalancer": {"strategy": "weighted_round_robin", "healthCheckEnabled": false, "failoverEnabled": true}}),
            tenants: json!({"tenants": [tenant("t1", TENANT_KEY, &["*sonnet*", "*haiku*"]), tenant("t2", TENANT2_KEY, &["*"])]}),
        }
    }

    pub fn write(&self, dir: &Path) {
        write_json(dir, "server.json", &self.server);
        write_json(dir, "upstreams.json", &self.upstreams);
        write_json(dir, "tenants.json", &self.tenants);
    }
}

pub fn write_json(dir: &Path, name: &str, v: &Value) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

pub struct Gateway {
    pub child: Child,
    pub url: String,
    pub config: TempDir,
    pub data: TempDir,
    pub stderr: std::sync::Arc<parking_lot::Mutex<String>>,
    /// What the gateway printed to stdout after its "listening" line.
    pub stdout: std::sync::Arc<parking_lot::Mutex<String>>,
}

impl Gateway {
    pub async fn start(files: &Files) -> Gateway {
        let config = TempDir::new("cfg");
        let data = TempDir::new("data");
        files.write(&config.0);
        Self::start_in(config, data).await
    }

    pub async fn start_in(config: TempDir, data: TempDir) -> Gateway {
        Self::start_with_args(config, data, &[]).await
    }

    /// [`Gateway::start_in`] with extra arguments to `ccgate serve` (e.g. `--workers 1`).
    pub async fn start_with_args(config: TempDir, data: TempDir, args: &[&str]) -> Gateway {
        Self::start_with_env(config, data, args, &[]).await
    }

    /// [`Gateway::start_with_args`] with extra environment variables (e.g. `CCGATE_DATABASE_URL`). A
    /// `CCGATE_DATABASE_URL` in the test's own environment is never passed on: the other tests read the SQLite
    /// file in the data folder.
    pub async fn start_with_env(
        config: TempDir,
        data: TempDir,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Gateway {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ccgate"))
            // In its data folder: a relative path in a config (the original's `logging.directory`
            // "./data/logs") stays inside the test's folders.
            .current_dir(&data.0)
            .arg("serve")
            .args(args)
            .arg("--config-dir")
            .arg(&config.0)
            .arg("--data-dir")
            .arg(&data.0)
            .env("CCGATE_LOG", "info,ccgate=debug")
            .env_remove("CCGATE_DATABASE_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn ccgate");
        let stderr = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let err_pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(err_pipe).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                let mut s = sink.lock();
                s.push_str(&l);
                s.push('\n');
            }
        });
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let url = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = out.next_line().await {
                if let Some(rest) = line.strip_prefix("CCGate listening on ") {
                    return rest.split_whitespace().next().unwrap().to_string();
                }
            }
            panic!("ccgate exited before listening");
        })
        .await
        .unwrap_or_else(|_| panic!("ccgate did not start; stderr:\n{}", stderr.lock()));
        let stdout = std::sync::Arc::new(parking_lot::Mutex::new(String::new()));
        let stdout_sink = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let mut s = stdout_sink.lock();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Gateway {
            child,
            url,
            config,
            data,
            stderr,
            stdout,
        }
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().clone()
    }

    pub fn write_config(&self, name: &str, v: &Value) {
        write_json(&self.config.0, name, v);
    }

    /// SIGTERM, then wait for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running") as i32;
        unsafe_kill(pid);
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("exit in time")
            .unwrap()
    }

    pub fn db_path(&self) -> PathBuf {
        self.data.0.join("ccgate.db")
    }
}

fn unsafe_kill(pid: i32) {
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

pub async fn mock() -> MockHandle {
    ccgate_mock::start(MockConfig::default()).await.unwrap()
}

pub async fn mock_with(cfg: MockConfig) -> MockHandle {
    ccgate_mock::start(cfg).await.unwrap()
}

pub fn messages_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

pub async fn post_messages(gw: &Gateway, key: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/anthropic/v1/messages?beta=true", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Polls `f` until it returns Some, or panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_every(secs, Duration::from_millis(50), f).await
}

/// [`eventually`], polling every `interval`: for conditions whose polls are failed logins until they hold (10 of
/// them in a minute lock the loopback address out).
pub async fn eventually_every<T, F, Fut>(secs: u64, interval: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {secs} s");
        }
        tokio::time::sleep(interval).await;
    }
}

/// Admin view of `/usage`.
pub async fn admin_usage(gw: &Gateway) -> Value {
    client()
        .post(format!("{}/usage", gw.url))
        .json(&json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the ledger has `n` requests in total (admin `/usage` totals).
pub async fn wait_requests(gw: &Gateway, n: i64) -> Value {
    eventually(10, || async {
        let u = admin_usage(gw).await;
        (u["totals"]["requests"].as_i64() == Some(n)).then_some(u)
    })
    .await
}

/// `POST /openai/v1/chat/completions` with `Authorization: Bearer key` and extra headers (e.g. `x-mock-*`).
pub async fn post_chat(
    gw: &Gateway,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {key}"))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The payloads of the `data:` lines of an SSE body, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
        .map(str::to_owned)
        .collect()
}

/// Rows of the ledger's `requests` table (selected columns, oldest first) as JSON objects.
pub async fn ledger_rows(gw: &Gateway) -> Vec<Value> {
    use sqlx::Row;
    let url = format!("sqlite://{}", gw.db_path().display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("open ledger");
    let rows = sqlx::query(
        "SELECT tenant_id, protocol, endpoint, model, upstream_model, stream, status, outcome, error_class,
                input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens,
                cost_nanousd FROM requests ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .expect("query ledger");
    pool.close().await;
    rows.iter()
        .map(|r| {
            json!({
                "tenant_id": r.get::<String, _>("tenant_id"),
                "protocol": r.get::<String, _>("protocol"),
                "endpoint": r.get::<String, _>("endpoint"),
                "model": r.get::<String, _>("model"),
                "upstream_model": r.get::<Option<String>, _>("upstream_model"),
                "stream": r.get::<i64, _>("stream"),
                "status": r.get::<i64, _>("status"),
                "outcome": r.get::<String, _>("outcome"),
                "error_class": r.get::<Option<String>, _>("error_class"),
                "input_tokens": r.get::<i64, _>("input_tokens"),
                "cache_write_5m_tokens": r.get::<i64, _>("cache_write_5m_tokens"),
                "cache_write_1h_tokens": r.get::<i64, _>("cache_write_1h_tokens"),
                "cache_read_tokens": r.get::<i64, _>("cache_read_tokens"),
                "output_tokens": r.get::<i64, _>("output_tokens"),
                "cost_nanousd": r.get::<i64, _>("cost_nanousd"),
            })
        })
        .collect()
}

/// SIGTERMs `gw`, waits for it to exit, then starts a new gateway on the same config and data folders.
/// Returns the old process's exit status and the new gateway.
pub async fn restart_same_dirs(mut gw: Gateway) -> (std::process::ExitStatus, Gateway) {
    let status = gw.terminate().await;
    let Gateway { config, data, .. } = gw;
    (status, Gateway::start_in(config, data).await)
}

/// `GET /health` as JSON, with the admin's credentials (the per-upstream details are the admin's).
pub async fn health(gw: &Gateway) -> Value {
    client()
        .get(format!("{}/health", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /health` as JSON without credentials: what a load balancer sees.
pub async fn health_public(gw: &Gateway) -> Value {
    client()
        .get(format!("{}/health", gw.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `GET /health` as raw text, as the admin (to look for leaked secrets).
pub async fn health_text(gw: &Gateway) -> String {
    client()
        .get(format!("{}/health", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `POST /openai/v1/chat/completions` with the first tenant's key.
pub async fn post_openai(gw: &Gateway, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// `POST /anthropic/v1/messages` with `key` and extra headers (e.g. `x-mock-*`).
pub async fn post_anthropic_h(
    gw: &Gateway,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// The ledger's rows once there are at least `n`.
pub async fn ledger_rows_at_least(gw: &Gateway, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if gw.db_path().exists() {
            let rows = ledger_rows(gw).await;
            if rows.len() >= n {
                return rows;
            }
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "fewer than {n} ledger rows after 20 s; logs:\n{}",
                gw.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A field of `/proc/<pid>/status` in kB (e.g. `VmHWM`, the peak resident set).
pub fn proc_status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// Runs a `ccgate` command against this gateway's config and data folders; waits for it to end.
pub async fn cli(gw: &Gateway, args: &[&str]) -> std::process::Output {
    cli_with_env(gw, args, &[]).await
}

/// [`cli`] with extra environment variables (e.g. `COLUMNS`).
pub async fn cli_with_env(
    gw: &Gateway,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(args)
        .envs(env.iter().copied())
        .arg("--config-dir")
        .arg(&gw.config.0)
        .arg("--data-dir")
        .arg(&gw.data.0)
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run ccgate")
}

/// Stdout and stderr of a finished command, as text.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Requests in a ledger file opened on its own (no `-wal` beside it is read unless it exists).
pub async fn count_requests_in(path: &Path) -> i64 {
    let url = format!("sqlite://{}", path.display());
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .expect("open ledger copy");
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM requests")
        .fetch_one(&pool)
        .await
        .expect("the copy holds the requests table");
    pool.close().await;
    n
}
