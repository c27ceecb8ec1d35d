//! Several instances on one PostgreSQL store act as one gateway: a tenant's budget, `maxConcurrent` and `rpm`
//! hold across all of them (crates/ccgate/src/policy/lease.rs). Each test runs two real instances against its own
//! schema of the test database and skips, saying why, without a server (see `postgres.rs`).

use crate::common::*;
use crate::postgres::Schema;
use serde_json::{json, Value};
use std::sync::Arc;

const LIMITED_KEY: &str = "tenant-key-limited-dddddddddddd";

/// Two instances on `schema` whose tenant `t3` (key [`LIMITED_KEY`]) has `limits`.
async fn two_instances(schema: &Schema, mock_url: String, limits: Value) -> (Gateway, Gateway) {
    let start = || async {
        let config = TempDir::new("so-cfg");
        let data = TempDir::new("so-data");
        let mut files = Files::new(&[mock_url.clone()]);
        let mut t = tenant("t3", LIMITED_KEY, &["*sonnet*"]);
        t["limits"] = limits.clone();
        files.tenants["tenants"].as_array_mut().unwrap().push(t);
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

/// `n` requests of `t3` spread over both instances, at most `parallel` at a time; their statuses.
async fn spread(
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
async fn t3_spend(schema: &Schema) -> (i64, i64) {
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
