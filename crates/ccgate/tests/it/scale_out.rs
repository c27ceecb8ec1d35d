//! Several instances on one PostgreSQL store act as one gateway: a tenant's budget, `maxConcurrent` and `rpm`
//! hold across all of them (crates/ccgate/src/policy/lease.rs). Each test runs two real instances against its own
//! schema of the test database and skips, saying why, without a server (see `postgres.rs`).

use crate::common::*;
use crate::postgres::Schema;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub(crate) const LIMITED_KEY: &str = "tenant-key-limited-dddddddddddd";

/// Two instances on `schema` whose tenant `t3` (key [`LIMITED_KEY`]) has `limits`.
pub(crate) async fn two_instances(
    schema: &Schema,
    mock_url: String,
    limits: Value,
) -> (Gateway, Gateway) {
    two_instances_with(schema, mock_url, limits, json!({})).await
}

/// [`two_instances`] with these fields added to `server` in server.json.
async fn two_instances_with(
    schema: &Schema,
    mock_url: String,
    limits: Value,
    server: Value,
) -> (Gateway, Gateway) {
    let start = || async {
        let config = TempDir::new("so-cfg");
        let data = TempDir::new("so-data");
        let mut files = Files::new(std::slice::from_ref(&mock_url));
        let mut t = tenant("t3", LIMITED_KEY, &["*sonnet*"]);
        t["limits"] = limits.clone();
        files.tenants["tenants"].as_array_mut().unwrap().push(t);
        for (k, v) in server.as_object().unwrap() {
            files.server["server"][k] = v.clone();
        }
        files.write(&config.0);
        Gateway::start_with_env(
            config,
            data,
            &[],
            &[("CCGATE_DATABASE_URL", schema.url.as_str())],
        )
        .await
    };
    let a = start().await;
    let b = start().await;
    (a, b)
}

/// The status of one `/anthropic` request with `key`, sent as if from an address of its own (through
/// `X-Forwarded-For`, which instances started with `trustProxyHeaders` believe): the refusals of a key that is
/// expected to stop are failed logins, and from one address they would soon lock the loopback address out.
async fn status_as_new_client(url: &str, key: &str, model: &str) -> u16 {
    static ADDRESSES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = ADDRESSES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let r = client()
        .post(format!("{url}/anthropic/v1/messages"))
        .header(
            "x-forwarded-for",
            format!("10.{}.{}.{}", n >> 16 & 255, n >> 8 & 255, n & 255),
        )
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body(model, false))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    r.bytes().await.unwrap();
    s
}

/// `n` requests of `t3` spread over both instances, at most `parallel` at a time; their statuses.
pub(crate) async fn spread(
    gws: [&Arc<Gateway>; 2],
    n: usize,
    parallel: usize,
    headers: &[(&'static str, String)],
) -> Vec<u16> {
    let sem = Arc::new(tokio::sync::Semaphore::new(parallel));
    let mut tasks = Vec::new();
    for i in 0..n {
        let gw = gws[i % 2].clone();
        let sem = sem.clone();
        let headers = headers.to_vec();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let mut req = client()
                .post(format!("{}/anthropic/v1/messages", gw.url))
                .header("x-api-key", LIMITED_KEY)
                .header("anthropic-version", "2023-06-01")
                .json(&messages_body("claude-sonnet-4-6", i % 2 == 0));
            for (k, v) in headers {
                req = req.header(k, v);
            }
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let body = r.bytes().await.unwrap();
            if status != 200 {
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["type"], "error", "{v}");
            }
            status
        }));
    }
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect()
}

/// Every request of `t3` in the shared ledger: (rows, billed nano-USD).
pub(crate) async fn t3_spend(schema: &Schema) -> (i64, i64) {
    let mut conn = schema.connect().await;
    let r: (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(cost_nanousd)::bigint FROM requests WHERE tenant_id = 't3' AND outcome = 'ok'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    (r.0, r.1.unwrap_or(0))
}

/// A concurrent burst against both instances stops at one global daily budget: the overshoot is at most one
/// request per instance (docs/scale-out.md), the ledger holds exactly what the clients were given, and both
/// instances' `/usage` show the same, shared spend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_on_two_instances_stops_at_one_global_budget() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let m = mock().await;
    // 100k input + 10k output tokens of Sonnet: $0.30 + $0.15 per request.
    let one: i64 = 450_000_000;
    let budget = 3 * one;
    let (a, b) = two_instances(&schema, m.url(), json!({"daily": {"maxUSD": 1.35}})).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let headers = [
        ("x-mock-input-tokens", "100000".to_string()),
        ("x-mock-output-tokens", "10000".to_string()),
    ];
    let statuses = spread([&a, &b], 60, 30, &headers).await;
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 402 | 429)),
        "{statuses:?}"
    );
    let (rows, spent) = eventually(10, || async {
        let (rows, spent) = t3_spend(&schema).await;
        (rows == ok).then_some((rows, spent))
    })
    .await;
    assert_eq!(spent, rows * one, "the ledger holds what the clients got");
    assert!(ok >= 3, "three requests fit the budget; {ok} succeeded");
    assert!(
        spent <= budget + 2 * one,
        "spent {spent} n$ of {budget} n$: more than one request per instance over ({ok} requests)"
    );
    assert_eq!(
        m.request_count() as i64,
        ok,
        "refused requests never reach the upstream"
    );
    // Once the budget is spent, either instance refuses at once with the shared figures.
    for gw in [&a, &b] {
        let r = post_messages(gw, LIMITED_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 402);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "billing_error", "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("1.35"),
            "{v}"
        );
    }
    for gw in [&a, &b] {
        let u = admin_usage(gw).await;
        let t3 = u["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "t3")
            .unwrap()
            .clone();
        assert_eq!(t3["totals"]["cost_nanousd"], spent, "{t3}");
        let daily = t3["limits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "daily")
            .unwrap()
            .clone();
        assert_eq!(
            (daily["used_usd"].as_f64().unwrap() * 1e9).round() as i64,
            spent,
            "each instance shows the spend of both: {daily}"
        );
    }
    let health = health(&a).await;
    assert_eq!(health["sharedLimits"]["mode"], "shared", "{health}");
}

/// `maxConcurrent` and `rpm` count the requests of every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_and_rate_limits_hold_across_instances() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances(&schema, m.url(), json!({"maxConcurrent": 2})).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    // Slow answers, 8 at once over both instances: only 2 may run at a time in all.
    let slow = [("x-mock-first-byte-delay-ms", "700".to_string())];
    let statuses = spread([&a, &b], 8, 8, &slow).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 429)),
        "{statuses:?}"
    );
    assert!(
        (1..=2).contains(&ok),
        "{ok} of 8 simultaneous requests ran with maxConcurrent 2 over two instances: {statuses:?}"
    );
    drop((a, b));

    let (a, b) = two_instances(&schema, m.url(), json!({"rpm": 5})).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let statuses = spread([&a, &b], 12, 4, &[]).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        ok, 5,
        "rpm 5 over two instances admits 5 requests in the minute: {statuses:?}"
    );
}

/// A failover on one instance moves a session on every instance: its next request lands on the same upstream
/// whichever instance serves it, although the other instance never saw the failure (routing/shared_pins.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_moved_by_a_failover_on_one_instance_moves_on_all() {
    use crate::resilience::{files_for, mocks, ok_cfg, send_session};
    let Some(schema) = Schema::create().await else {
        return;
    };
    let ms = mocks(3).await;
    let start = || async {
        let config = TempDir::new("so-cfg");
        let data = TempDir::new("so-data");
        files_for(&ms).write(&config.0);
        Gateway::start_with_env(
            config,
            data,
            &[],
            &[("CCGATE_DATABASE_URL", schema.url.as_str())],
        )
        .await
    };
    let (a, b) = (start().await, start().await);
    let session = "moved-session-1";
    let home = send_session(&a, session).await;
    assert_eq!(
        send_session(&b, session).await,
        home,
        "hashing alone agrees"
    );
    // The session's upstream fails once, on instance a only; a moves the session.
    ms[home].set_config(ccgate_mock::MockConfig {
        status: 529,
        ..ok_cfg(home)
    });
    let moved_to = send_session(&a, session).await;
    assert_ne!(moved_to, home);
    ms[home].set_config(ok_cfg(home));
    // b never saw home fail; within about a poll it follows a's pin.
    let on_b = eventually(5, || async {
        let now = send_session(&b, session).await;
        (now == moved_to).then_some(now)
    })
    .await;
    assert_eq!(on_b, moved_to);
    for gw in [&a, &b, &a, &b] {
        assert_eq!(
            send_session(gw, session).await,
            moved_to,
            "the session stays where it moved"
        );
    }
}

/// A TCP relay to PostgreSQL that the test can cut: while down it drops every open connection and refuses new
/// ones, as a database that went away does (the machine's server itself is shared and stays up).
pub(crate) struct CuttableRelay {
    addr: std::net::SocketAddr,
    down: Arc<std::sync::atomic::AtomicBool>,
    cut: Arc<tokio::sync::Notify>,
}

impl CuttableRelay {
    pub(crate) async fn start(target: &str) -> CuttableRelay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let cut = Arc::new(tokio::sync::Notify::new());
        let target = target.to_string();
        let (d, c) = (down.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let c = c.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = c.notified() => {}
                    }
                });
            }
        });
        CuttableRelay { addr, down, cut }
    }

    pub(crate) fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
        if down {
            self.cut.notify_waiters();
        }
    }

    /// `url` with its host and port replaced by this relay's.
    pub(crate) fn url_through(&self, url: &str) -> String {
        let at = url.find('@').map(|i| i + 1).unwrap_or("postgres://".len());
        let end = at + url[at..].find('/').unwrap();
        format!("{}{}{}", &url[..at], self.addr, &url[end..])
    }
}

/// Requests until `stop`, `parallel` at a time; how many were answered in full (status 200 and the whole body).
async fn load_until(
    gw: Arc<Gateway>,
    parallel: usize,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (usize, usize) {
    let mut tasks = Vec::new();
    for w in 0..parallel {
        let gw = gw.clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let r = client()
                    .post(format!("{}/anthropic/v1/messages", gw.url))
                    .header("x-api-key", TENANT_KEY)
                    .header("anthropic-version", "2023-06-01")
                    .json(&messages_body("claude-sonnet-4-6", (i + w) % 2 == 0))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 200 => match r.bytes().await {
                        Ok(_) => ok += 1,
                        Err(_) => failed += 1,
                    },
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    let mut total = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap();
        total.0 += o;
        total.1 += f;
    }
    total
}

/// The database goes away for 10 s under load: the gateway keeps answering, `/health` says the ledger is
/// degraded, and once the database is back every answered request is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_second_database_outage_under_load_loses_and_duplicates_nothing() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let relay = CuttableRelay::start("127.0.0.1:5432").await;
    let url = relay.url_through(&schema.url);
    let m = mock().await;
    let config = TempDir::new("so-cfg");
    let data = TempDir::new("so-data");
    Files::new(&[m.url()]).write(&config.0);
    let gw = Arc::new(
        Gateway::start_with_env(config, data, &[], &[("CCGATE_DATABASE_URL", url.as_str())]).await,
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(gw.clone(), 4, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    relay.set_down(true);
    let served_before_outage = m.request_count();
    let degraded = eventually(15, || async {
        let h = health(&gw).await;
        (h["ledger"]["status"] == "degraded").then_some(h)
    })
    .await;
    assert!(degraded["ledger"]["error"].is_string(), "{degraded}");
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(
        m.request_count() > served_before_outage + 10,
        "the gateway kept serving during the outage"
    );
    relay.set_down(false);
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    assert_eq!(failed, 0, "no request failed because the database was away");
    let mut conn = schema.connect().await;
    let url = schema.url.clone();
    let stored = eventually(30, || {
        let url = url.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .ok()?;
            let (rows, ids): (i64, i64) =
                sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests")
                    .fetch_one(&mut conn)
                    .await
                    .ok()?;
            (rows as usize >= ok).then_some((rows, ids))
        }
    })
    .await;
    // Settle: anything still queued lands, and nothing more appears.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (rows, ids): (i64, i64) =
        sqlx::query_as("SELECT COUNT(*), COUNT(DISTINCT request_id) FROM requests")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(rows, stored.0);
    assert_eq!(
        rows as usize, ok,
        "every answered request stored once ({ok} answered)"
    );
    assert_eq!(rows, ids, "no request stored twice");
    let (input,): (i64,) = sqlx::query_as("SELECT SUM(input_tokens)::bigint FROM daily_rollup")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        input as usize,
        ok * 25,
        "the rollups count each request once"
    );
    let h = health(&gw).await;
    assert_eq!(h["ledger"]["status"], "ok", "{h}");
}

/// One of two instances is killed with SIGKILL in the middle of load: the other keeps serving without a failure,
/// and after the killed one restarts (replaying its crash journal), every request a client got a full answer
/// for is in the shared ledger, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_mid_load_loses_no_answered_request() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let m = mock().await;
    let start = |config: TempDir, data: TempDir| {
        let url = schema.url.clone();
        async move {
            Gateway::start_with_env(config, data, &[], &[("CCGATE_DATABASE_URL", url.as_str())])
                .await
        }
    };
    let dirs = || {
        let config = TempDir::new("so-cfg");
        Files::new(&[m.url()]).write(&config.0);
        (config, TempDir::new("so-data"))
    };
    let (ca, da) = dirs();
    let (cb, db) = dirs();
    let a = Arc::new(start(ca, da).await);
    let b = Arc::new(start(cb, db).await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load_a = tokio::spawn(load_until(a.clone(), 4, stop.clone()));
    let load_b = tokio::spawn(load_until(b.clone(), 4, stop.clone()));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = a.child.id().expect("instance a runs");
    // SIGKILL: no shutdown, no flush; the crash journal is all that is left of its last moments.
    assert!(std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok_a, _failed_a) = load_a.await.unwrap();
    let (ok_b, failed_b) = load_b.await.unwrap();
    assert_eq!(failed_b, 0, "the surviving instance kept serving");
    // Restart a on its own folders: its journal is replayed into the shared ledger.
    let a = Arc::try_unwrap(a).ok().expect("no other handle to a");
    let Gateway { config, data, .. } = a;
    let a = start(config, data).await;
    let answered = ok_a + ok_b;
    let url = schema.url.clone();
    let reached_upstream = m.request_count() as i64;
    // Every request that reached the upstream gets a row (finished, or interrupted by the kill): wait for the last
    // batches of both instances to land.
    let (ok_rows, rows, ids) = eventually(20, || {
        let url = url.clone();
        async move {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url).await.ok()?;
            let r: (i64, i64, i64) = sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE outcome = 'ok'), COUNT(*), COUNT(DISTINCT request_id) FROM requests",
            )
            .fetch_one(&mut conn)
            .await
            .ok()?;
            (r.1 >= reached_upstream).then_some(r)
        }
    })
    .await;
    assert_eq!(rows, ids, "no request stored twice");
    // A request may have finished (and been journaled) in the instant before the kill without its client
    // getting the last bytes: at most one per connection in flight.
    assert!(
        (ok_rows as usize) <= answered + 4,
        "{ok_rows} ok rows for {answered} answered requests"
    );
    // Every request that reached the upstream has a row (finished, or interrupted by the kill); a request the kill
    // cut after it was journaled but before it reached the upstream is recorded as interrupted too: at most one
    // per connection in flight.
    assert!(
        rows >= reached_upstream && rows <= reached_upstream + 4,
        "{rows} rows for {reached_upstream} requests that reached the upstream"
    );
    assert!(
        ok_rows as usize >= answered,
        "{ok_rows} ok rows for {answered} answered requests: an answered request was lost"
    );
    drop(a);
}

/// Without the database an instance keeps serving within the last budgets it knew, and still stops at them
/// (docs/scale-out.md, "Losing the database"); `/health` says it enforces limits locally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_database_an_instance_enforces_the_last_known_budget() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let relay = CuttableRelay::start("127.0.0.1:5432").await;
    let url = relay.url_through(&schema.url);
    let m = mock().await;
    let config = TempDir::new("so-cfg");
    let data = TempDir::new("so-data");
    let mut files = Files::new(&[m.url()]);
    let mut t = tenant("t3", LIMITED_KEY, &["*sonnet*"]);
    t["limits"] = json!({"daily": {"maxUSD": 1.35}});
    files.tenants["tenants"].as_array_mut().unwrap().push(t);
    files.write(&config.0);
    let gw = Arc::new(
        Gateway::start_with_env(config, data, &[], &[("CCGATE_DATABASE_URL", url.as_str())]).await,
    );
    let headers = [
        ("x-mock-input-tokens", "100000".to_string()),
        ("x-mock-output-tokens", "10000".to_string()),
    ];
    // One $0.45 request while the database is there: the instance learns the spend.
    assert_eq!(spread([&gw, &gw], 1, 1, &headers).await, vec![200]);
    relay.set_down(true);
    let statuses = spread([&gw, &gw], 6, 1, &headers).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok, 2, "two more of the $1.35 fit: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 402)),
        "{statuses:?}"
    );
    let h = health(&gw).await;
    assert_eq!(h["sharedLimits"]["mode"], "local", "{h}");
    relay.set_down(false);
    let (rows, spent) = eventually(30, || async {
        let (rows, spent) = t3_spend(&schema).await;
        (rows == 3).then_some((rows, spent))
    })
    .await;
    assert_eq!((rows, spent), (3, 3 * 450_000_000));
    let h = eventually(10, || async {
        let h = health(&gw).await;
        (h["sharedLimits"]["mode"] == "shared").then_some(h)
    })
    .await;
    assert_eq!(h["ledger"]["status"], "ok", "{h}");
}

/// A tenant made through the admin API lives in the shared store: every instance serves it within about a second,
/// a rotated key stops working everywhere within 2 s while the new one works, and a removed tenant's key stops
/// while its usage rows stay. (The rows are written here as the admin API writes them: see src/tenants.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_tenants_in_the_store_are_served_by_every_instance() {
    use sha2::Digest;
    let Some(schema) = Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances_with(
        &schema,
        m.url(),
        json!({}),
        json!({"trustProxyHeaders": true}),
    )
    .await;
    let hash = |k: &str| hex::encode(sha2::Sha256::digest(k.as_bytes()));
    let old_key = "sk-console-aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let new_key = "sk-console-bbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let mut conn = schema.connect().await;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    sqlx::query(
        "INSERT INTO console_tenants (id, name, key_sha256, key_hint, enabled, allowed_models, limits, expires_at,
                                      created_ms, updated_ms)
         VALUES ('c1', 'Console one', $1, 'sk-…aaaa', true, '[\"*sonnet*\"]', '{\"daily\":{\"maxUSD\":5}}', NULL, $2, $2)",
    )
    .bind(hash(old_key))
    .bind(now_ms())
    .execute(&mut conn)
    .await
    .unwrap();
    let status = |gw: &Gateway, key: &str, model: &str| {
        let (url, key, model) = (gw.url.clone(), key.to_string(), model.to_string());
        async move { status_as_new_client(&url, &key, &model).await }
    };
    for gw in [&a, &b] {
        eventually(3, || async {
            (status(gw, old_key, "claude-sonnet-4-6").await == 200).then_some(())
        })
        .await;
        // Its allow-list holds.
        assert_eq!(status(gw, old_key, "claude-opus-4-6").await, 403);
    }
    // Rotation: the new key works and the old one stops, on both instances, within 2 s.
    sqlx::query("UPDATE console_tenants SET key_sha256 = $1, key_hint = 'sk-…bbbb', updated_ms = $2 WHERE id = 'c1'")
        .bind(hash(new_key))
        .bind(now_ms())
        .execute(&mut conn)
        .await
        .unwrap();
    let rotated = std::time::Instant::now();
    for gw in [&a, &b] {
        eventually(3, || async {
            (status(gw, old_key, "claude-sonnet-4-6").await == 401).then_some(())
        })
        .await;
        assert_eq!(status(gw, new_key, "claude-sonnet-4-6").await, 200);
    }
    assert!(
        rotated.elapsed() < Duration::from_millis(2500),
        "the old key stopped after {:?}",
        rotated.elapsed()
    );
    // Removal: the key stops; the usage rows stay.
    sqlx::query("DELETE FROM console_tenants WHERE id = 'c1'")
        .execute(&mut conn)
        .await
        .unwrap();
    for gw in [&a, &b] {
        eventually(3, || async {
            (status(gw, new_key, "claude-sonnet-4-6").await == 401).then_some(())
        })
        .await;
    }
    let (rows,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM requests WHERE tenant_id = 'c1' AND outcome = 'ok'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert!(rows >= 4, "{rows} usage rows of the removed tenant");
}

/// Rotation through the admin API while both instances serve the tenant without pause: from 2 s after the rotation
/// answered, no request with the old key succeeds and none with the new key fails, on either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotated_under_load_switches_on_every_instance_within_2_s() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances_with(
        &schema,
        m.url(),
        json!({}),
        json!({"trustProxyHeaders": true}),
    )
    .await;
    let (s, made) = {
        let r = client()
            .post(format!("{}/api/admin/tenants", a.url))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .json(&json!({"name": "Rotating", "id": "rot"}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, 201, "{made}");
    let old_key = made["key"].as_str().unwrap().to_string();
    let send = |url: String, key: String| async move {
        status_as_new_client(&url, &key, "claude-sonnet-4-6").await
    };
    for gw in [&a, &b] {
        let (url, key) = (gw.url.clone(), old_key.clone());
        eventually(3, || {
            let (url, key) = (url.clone(), key.clone());
            async move { (send(url, key).await == 200).then_some(()) }
        })
        .await;
    }
    // Load: on each instance a loop with the old key and one with the new key (once known), each result stamped
    // with when its request was sent.
    let new_key: Arc<parking_lot::Mutex<Option<String>>> = Default::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for url in [a.url.clone(), b.url.clone()] {
        for use_new in [false, true] {
            let (url, old_key, new_key, stop) =
                (url.clone(), old_key.clone(), new_key.clone(), stop.clone());
            loops.push(tokio::spawn(async move {
                let mut results = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let current = new_key.lock().clone();
                    let key = if use_new {
                        match current {
                            Some(k) => k,
                            None => {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                                continue;
                            }
                        }
                    } else {
                        old_key.clone()
                    };
                    let sent = std::time::Instant::now();
                    results.push((use_new, sent, send(url.clone(), key).await));
                }
                results
            }));
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = client()
        .post(format!("{}/api/admin/tenants/rot/rotate", b.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rotated: Value = r.json().await.unwrap();
    let rotated_at = std::time::Instant::now();
    *new_key.lock() = Some(rotated["key"].as_str().unwrap().to_string());
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut settled = (0, 0);
    for l in loops {
        for (use_new, sent, status) in l.await.unwrap() {
            if sent < rotated_at + Duration::from_secs(2) {
                continue;
            }
            if use_new {
                assert_eq!(status, 200, "a request with the new key failed after 2 s");
                settled.1 += 1;
            } else {
                assert_eq!(
                    status, 401,
                    "a request with the old key succeeded after 2 s"
                );
                settled.0 += 1;
            }
        }
    }
    assert!(
        settled.0 >= 10 && settled.1 >= 10,
        "too few requests after the switch: {settled:?}"
    );
}
