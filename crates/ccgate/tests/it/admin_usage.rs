//! `GET /api/admin/usage` and `GET /api/tenant/usage` (crates/ccgate/src/api/admin_usage.rs) through the real server:
//! series per tenant, model and upstream that add up to the ledger, the cache-hit ratio and the money caching saved,
//! and a tenant that sees only its own usage.

use crate::common::*;
use ccgate_mock::MockConfig;
use serde_json::{json, Value};

async fn get(rb: reqwest::RequestBuilder) -> (u16, Value) {
    let r = rb.send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

fn admin_get(gw: &Gateway, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{}{path}", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
}

fn tenant_get(gw: &Gateway, key: &str, path: &str) -> reqwest::RequestBuilder {
    client()
        .get(format!("{}{path}", gw.url))
        .header("x-api-key", key)
}

#[tokio::test]
async fn usage_series_add_up_to_the_ledger_and_tenants_see_only_their_own() {
    // One upstream reports cache reads, the other none.
    let cached = mock_with(MockConfig {
        input_tokens: 100,
        cache_read_input_tokens: 900,
        ..MockConfig::default()
    })
    .await;
    let plain = mock().await;
    let gw = Gateway::start(&Files::new(&[cached.url(), plain.url()])).await;
    for _ in 0..3 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
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
    let rows = ledger_rows_at_least(&gw, 5).await;
    let ledger_cost: i64 = rows
        .iter()
        .map(|r| r["cost_nanousd"].as_i64().unwrap())
        .sum();
    let ledger_cache_reads: i64 = rows
        .iter()
        .map(|r| r["cache_read_tokens"].as_i64().unwrap())
        .sum();
    assert!(ledger_cache_reads > 0);

    let (s, v) = get(admin_get(&gw, "/api/admin/usage?groupBy=tenant")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["interval"], "day");
    assert_eq!(v["totals"]["requests"], 5);
    let nano = |x: &Value| (x.as_f64().unwrap() * 1e9).round() as i64;
    assert_eq!(nano(&v["totals"]["costUSD"]), ledger_cost);
    assert_eq!(v["totals"]["cacheReadTokens"], ledger_cache_reads);
    let ratio = v["totals"]["cacheHitRatio"].as_f64().unwrap();
    assert!(ratio > 0.0 && ratio < 1.0, "{ratio}");
    assert!(v["totals"]["cacheSavedUSD"].as_f64().unwrap() > 0.0);
    let keys: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert!(keys.contains(&"t1") && keys.contains(&"t2"));
    for g in v["groups"].as_array().unwrap() {
        let series_requests: i64 = g["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["requests"].as_i64().unwrap())
            .sum();
        assert_eq!(series_requests, g["totals"]["requests"].as_i64().unwrap());
        assert_eq!(
            g["series"].as_array().unwrap().len(),
            v["buckets"].as_array().unwrap().len()
        );
    }

    // By upstream and hourly: both upstreams, and the last hour holds everything.
    let (s, v) = get(admin_get(
        &gw,
        "/api/admin/usage?groupBy=upstream&interval=hour&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
    ))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totals"]["requests"], 0, "nothing in 2000");
    let now = chrono::Utc::now();
    let from = (now - chrono::Duration::hours(3)).to_rfc3339();
    let to = (now + chrono::Duration::hours(1)).to_rfc3339();
    let (s, v) = get(admin_get(&gw, "/api/admin/usage").query(&[
        ("groupBy", "upstream"),
        ("interval", "hour"),
        ("from", from.as_str()),
        ("to", to.as_str()),
    ]))
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["totals"]["requests"], 5);
    let ups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert!(ups.iter().all(|u| *u == "up1" || *u == "up2"), "{ups:?}");

    // Filters narrow the totals.
    let (_, v) = get(admin_get(&gw, "/api/admin/usage?tenant=t2&groupBy=model")).await;
    assert_eq!(v["totals"]["requests"], 2);

    // A tenant: its own usage by model, nothing of the other tenant's.
    let (s, v) = get(tenant_get(&gw, TENANT_KEY, "/api/tenant/usage")).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["groupBy"], "model");
    assert_eq!(v["totals"]["requests"], 3);
    assert!(!v.to_string().contains("t2"));
    let (s, v) = get(tenant_get(&gw, TENANT_KEY, "/api/tenant/usage?tenant=t2")).await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = get(tenant_get(
        &gw,
        TENANT_KEY,
        "/api/tenant/usage?groupBy=upstream",
    ))
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["field"], "groupBy");
    let (s, _) = get(tenant_get(&gw, "wrong-key-wrong-key", "/api/tenant/usage")).await;
    assert_eq!(s, 401);
    // The admin endpoint does not take a tenant key.
    let (s, _) = get(tenant_get(&gw, TENANT_KEY, "/api/admin/usage")).await;
    assert_eq!(s, 401);
    // Bad parameters name the field.
    let (s, v) = get(admin_get(&gw, "/api/admin/usage?interval=minute")).await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["field"], "interval");
}
