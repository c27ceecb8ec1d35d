//! The limits of issue #23, black-box: rolling USD windows, per-model limits, tokens per minute, the output-token
//! cap and key expiry in tenants.json. Exact window arithmetic (reset times with a controlled clock) is unit-tested
//! in `policy/budget.rs` and `policy/rolling.rs`; here: bursts, interactions, restart, and two instances.

use crate::common::*;
use serde_json::{json, Value};
use std::sync::Arc;

const LIMITED_KEY: &str = "tenant-key-limits-eeeeeeeeeeeeee";
/// 100k input + 10k output tokens of Sonnet: $0.30 + $0.15.
const ONE_SONNET: i64 = 450_000_000;

fn sonnet_usage() -> Vec<(&'static str, String)> {
    vec![
        ("x-mock-input-tokens", "100000".to_string()),
        ("x-mock-output-tokens", "10000".to_string()),
    ]
}

/// A gateway whose tenant `t3` (key [`LIMITED_KEY`], every model allowed) has `limits`, plus extra tenant fields.
async fn gateway_with(mock_url: String, limits: Value, extra: Value) -> Gateway {
    let mut files = Files::new(&[mock_url]);
    let mut t = tenant("t3", LIMITED_KEY, &["*"]);
    t["limits"] = limits;
    if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        t.extend(extra.clone());
    }
    files.tenants["tenants"].as_array_mut().unwrap().push(t);
    Gateway::start(&files).await
}

async fn send(
    gw: &Gateway,
    model: &str,
    max_tokens: u64,
    headers: &[(&str, String)],
) -> (u16, Option<String>, Value) {
    let mut body = messages_body(model, false);
    body["max_tokens"] = json!(max_tokens);
    let mut rb = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", LIMITED_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(*k, v.as_str());
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

/// `t3`'s limit entries in the tenant's own `POST /usage`.
async fn t3_limits(gw: &Gateway) -> Vec<Value> {
    let v: Value = client()
        .post(format!("{}/usage", gw.url))
        .json(&json!({"type": "tenant", "apiKey": LIMITED_KEY}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["limits"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("{v}"))
}

fn entry<'a>(limits: &'a [Value], name: &str, scope: Option<&str>) -> &'a Value {
    limits
        .iter()
        .find(|l| l["name"] == name && l["scope"]["model"].as_str() == scope)
        .unwrap_or_else(|| panic!("no {name} {scope:?} in {limits:?}"))
}

async fn t3_spent(gw: &Gateway) -> i64 {
    let u = admin_usage(gw).await;
    u["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t3")
        .map_or(0, |t| t["totals"]["cost_nanousd"].as_i64().unwrap_or(0))
}

/// A concurrent burst against a rolling window stops at it with the same overshoot bound as a daily budget (one
/// request); refusals are 429 naming the window, with `retry-after` until the spend leaves it; `POST /usage`
/// shows the window; and the window still holds after a restart (loaded from the ledger).
#[tokio::test]
async fn a_rolling_window_stops_a_burst_and_holds_across_a_restart() {
    let m = mock().await;
    let budget = 3 * ONE_SONNET;
    let gw = Arc::new(
        gateway_with(
            m.url(),
            json!({"rolling": [{"hours": 5, "maxUSD": 1.35}]}),
            json!({}),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            send(&gw, "claude-sonnet-4-6", 256, &sonnet_usage()).await
        }));
    }
    let results: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.0 == 200).count() as i64;
    for (status, retry, v) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 429, "{v}");
        assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("rolling 5h limit $1.35 reached ($")
                && msg.contains("next request fits at"),
            "{msg}"
        );
        let wait: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!(
            wait > 4 * 3600 && wait <= 5 * 3600 + 60,
            "retry-after {wait}"
        );
    }
    assert!(ok >= 3, "three requests fit; {ok} succeeded");
    let spent = eventually(10, || async {
        let s = t3_spent(&gw).await;
        (s == ok * ONE_SONNET).then_some(s)
    })
    .await;
    assert!(
        spent <= budget + ONE_SONNET,
        "spent {spent} of {budget}: more than one request over"
    );
    assert_eq!(m.request_count() as i64, ok);
    let limits = t3_limits(&gw).await;
    let rolling = entry(&limits, "rolling 5h", None);
    assert_eq!(rolling["kind"], "usd");
    assert_eq!(rolling["max_usd"], 1.35);
    assert_eq!(
        (rolling["used_usd"].as_f64().unwrap() * 1e9).round() as i64,
        spent
    );
    assert_eq!(rolling["remaining_usd"], 0.0);
    let resets =
        chrono::DateTime::parse_from_rfc3339(rolling["resets_at"].as_str().unwrap()).unwrap();
    let ahead = resets.with_timezone(&chrono::Utc) - chrono::Utc::now();
    assert!(
        ahead > chrono::Duration::hours(4) && ahead <= chrono::Duration::minutes(301),
        "{rolling}"
    );

    let gw = Arc::into_inner(gw).unwrap();
    let (_, gw) = restart_same_dirs(gw).await;
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &sonnet_usage()).await;
    assert_eq!(
        status, 429,
        "the window is loaded from the ledger at start: {v}"
    );
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("rolling 5h limit $1.35 reached"));
    let limits = t3_limits(&gw).await;
    assert_eq!(
        (entry(&limits, "rolling 5h", None)["used_usd"]
            .as_f64()
            .unwrap()
            * 1e9)
            .round() as i64,
        spent
    );
}

/// A request is checked against its tenant's overall limits and every `models` pattern matching its model: a
/// per-model limit refuses only its models, naming the pattern, and does not use up the overall `rpm`; the overall
/// limit still counts every model.
#[tokio::test]
async fn per_model_limits_and_overall_limits_interact() {
    let m = mock().await;
    let gw = gateway_with(
        m.url(),
        json!({"rpm": 5, "models": {
            "*haiku*": {"rpm": 2},
            "*sonnet*": {"total": {"maxUSD": 0.45}},
        }}),
        json!({}),
    )
    .await;
    let usage = sonnet_usage();
    let haiku = "claude-haiku-4-5";
    assert_eq!(send(&gw, haiku, 256, &[]).await.0, 200);
    assert_eq!(send(&gw, haiku, 256, &[]).await.0, 200);
    let (status, retry, v) = send(&gw, haiku, 256, &[]).await;
    assert_eq!(status, 429, "{v}");
    assert!(retry.is_some());
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("models \"*haiku*\": rate limit of 2 requests per minute"),
        "{msg}"
    );
    // Sonnet's own total: the first request spends all of it, the next is refused by it (402, names it).
    assert_eq!(send(&gw, "claude-sonnet-4-6", 256, &usage).await.0, 200);
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &usage).await;
    assert_eq!(status, 402, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("total (models \"*sonnet*\")"), "{msg}");
    // Another model: only the overall rpm applies. Used so far: 2 haiku + 1 sonnet (refusals by a model's own
    // limits took nothing from it), so two more fit and the third is refused by the overall limit.
    let opus = "claude-opus-4-6";
    assert_eq!(send(&gw, opus, 256, &[]).await.0, 200);
    assert_eq!(send(&gw, opus, 256, &[]).await.0, 200);
    let (status, _, v) = send(&gw, opus, 256, &[]).await;
    assert_eq!(status, 429, "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("rate limit of 5 requests per minute"),
        "{msg}"
    );
    assert_eq!(m.request_count(), 5);

    let limits = t3_limits(&gw).await;
    assert_eq!(entry(&limits, "rpm", None)["used"], 5);
    let h = entry(&limits, "rpm", Some("*haiku*"));
    assert_eq!((h["max"].as_u64(), h["used"].as_u64()), (Some(2), Some(2)));
    let s = entry(&limits, "total", Some("*sonnet*"));
    assert_eq!(s["max_usd"], 0.45);
    assert_eq!(s["used_usd"], 0.45);
    assert_eq!(s["remaining_usd"], 0.0);
}

/// A burst against a per-model dollar limit stops at it like an overall budget: at most one request over.
#[tokio::test]
async fn a_burst_against_a_per_model_budget_overshoots_by_at_most_one_request() {
    let m = mock().await;
    let gw = Arc::new(
        gateway_with(
            m.url(),
            json!({"models": {"*sonnet*": {"daily": {"maxUSD": 1.35}}}}),
            json!({}),
        )
        .await,
    );
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            send(&gw, "claude-sonnet-4-6", 256, &sonnet_usage()).await.0
        }));
    }
    let statuses: Vec<u16> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 402)),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    assert!(ok >= 3, "{ok}");
    let spent = eventually(10, || async {
        let s = t3_spent(&gw).await;
        (s == ok * ONE_SONNET).then_some(s)
    })
    .await;
    assert!(spent <= 4 * ONE_SONNET, "{spent}");
    // Other models are not held by Sonnet's budget.
    assert_eq!(send(&gw, "claude-haiku-4-5", 256, &[]).await.0, 200);
}

/// `tpm`: input plus output tokens per rolling minute, from metered usage. A burst stops within one request of
/// the limit (each request reserves its worst case); then requests are refused with 429 until the tokens leave
/// the minute.
#[tokio::test]
async fn tokens_per_minute_stop_a_burst_and_refuse_until_the_minute_passes() {
    let m = mock().await;
    let gw = Arc::new(gateway_with(m.url(), json!({"tpm": 1000}), json!({})).await);
    // 50 in + 200 out = 250 tokens each, below each request's reservation (body bytes + max_tokens 256).
    let usage = vec![
        ("x-mock-input-tokens", "50".to_string()),
        ("x-mock-output-tokens", "200".to_string()),
    ];
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let gw = gw.clone();
        let usage = usage.clone();
        tasks.push(tokio::spawn(async move {
            send(&gw, "claude-sonnet-4-6", 256, &usage).await
        }));
    }
    let results: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    assert!(
        (4..=5).contains(&ok),
        "1000 tokens fit four, and one more may cross: {ok}"
    );
    for (status, retry, v) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 429, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(
            msg.starts_with("tokens per minute limit of 1000 reached")
                || msg.contains("reserved by requests in flight"),
            "{msg}"
        );
        let wait: u64 = retry.as_deref().unwrap().parse().unwrap();
        assert!((1..=61).contains(&wait), "{wait}");
    }
    let limits = t3_limits(&gw).await;
    let tpm = entry(&limits, "tpm", None);
    assert_eq!(tpm["used"].as_u64(), Some(250 * ok as u64), "{tpm}");
    assert_eq!(tpm["max"], 1000);
    assert!(tpm["resets_at"].is_string(), "{tpm}");
}

/// Per-model calendar windows and the last minute's tokens are loaded from the ledger at start: a restart forgets
/// neither.
#[tokio::test]
async fn per_model_budgets_and_tpm_hold_across_a_restart() {
    let m = mock().await;
    let gw = gateway_with(
        m.url(),
        json!({"tpm": 1000, "models": {"*sonnet*": {"daily": {"maxUSD": 0.45}}}}),
        json!({}),
    )
    .await;
    // 110,000 tokens and $0.45: the model's daily budget and the minute's tokens are both used up.
    assert_eq!(
        send(&gw, "claude-sonnet-4-6", 256, &sonnet_usage()).await.0,
        200
    );
    wait_requests(&gw, 1).await;
    let (_, gw) = restart_same_dirs(gw).await;
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &[]).await;
    assert_eq!(status, 402, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily (models \"*sonnet*\")"),
        "{v}"
    );
    let (status, retry, v) = send(&gw, "claude-haiku-4-5", 256, &[]).await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tokens per minute limit of 1000 reached (110000 used)"),
        "{v}"
    );
    assert!(retry.unwrap().parse::<u64>().unwrap() <= 61);
    let limits = t3_limits(&gw).await;
    assert_eq!(entry(&limits, "daily", Some("*sonnet*"))["used_usd"], 0.45);
    assert_eq!(entry(&limits, "tpm", None)["used"], 110000);
    assert_eq!(m.request_count(), 1);
}

/// `maxOutputTokens`: above the cap a request is refused with 400 in the endpoint's protocol, naming the cap; with
/// `clampOutputTokens` it is sent with the cap instead, only `max_tokens` changed.
#[tokio::test]
async fn max_output_tokens_refuses_or_clamps() {
    let m = mock().await;
    let gw = gateway_with(m.url(), json!({"maxOutputTokens": 100}), json!({})).await;
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &[]).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("at most 100 output tokens"),
        "{v}"
    );
    assert_eq!(send(&gw, "claude-sonnet-4-6", 100, &[]).await.0, 200);
    let r = post_chat(
        &gw,
        LIMITED_KEY,
        &json!({"model": "gpt-4o", "max_tokens": 500, "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("100"),
        "{v}"
    );
    assert!(v.get("type").is_none(), "OpenAI shape: {v}");
    assert_eq!(m.request_count(), 1);

    let m = mock().await;
    let gw = gateway_with(
        m.url(),
        json!({"maxOutputTokens": 100, "clampOutputTokens": true}),
        json!({}),
    )
    .await;
    let body = br#"{"max_tokens": 64000, "model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}]}"#;
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", LIMITED_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let sent = m.last_request().unwrap().body;
    assert_eq!(
        &sent[..],
        br#"{"max_tokens": 100, "model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hi"}]}"#,
        "only the value changed"
    );
    // Within the cap the body goes byte for byte.
    let body = br#"{"model":"claude-sonnet-4-6",  "max_tokens":99,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", LIMITED_KEY)
        .header("anthropic-version", "2023-06-01")
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(&m.last_request().unwrap().body[..], &body[..]);
}

/// `expiresAt` in tenants.json: after it, 401 `authentication_error` saying when; before it, served.
#[tokio::test]
async fn expires_at_in_tenants_json() {
    let m = mock().await;
    let gw = gateway_with(
        m.url(),
        json!({}),
        json!({"expiresAt": "2020-01-31T00:00:00Z"}),
    )
    .await;
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &[]).await;
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired at 2020-01-31T00:00:00"),
        "{v}"
    );
    let gw = gateway_with(
        m.url(),
        json!({}),
        json!({"expiresAt": "2999-01-01T00:00:00+08:00"}),
    )
    .await;
    assert_eq!(send(&gw, "claude-sonnet-4-6", 256, &[]).await.0, 200);
}

/// A burst of 60 Sonnet requests, 30 at a time, over two instances on one PostgreSQL store whose tenant `t3` has
/// `limits`, of which `fits` requests answered with the mock's `usage` headers (each then billed `unit` nano-USD)
/// use up the limit under test: the ledger holds what the clients were answered, at most one request per instance
/// goes over, and afterwards both instances refuse with `status` and a message that passes `names_the_limit`.
async fn burst_holds_across_two_instances(
    limits: Value,
    usage: &[(&'static str, String)],
    (unit, fits): (i64, i64),
    status: u16,
    names_the_limit: fn(&str) -> bool,
) {
    use crate::scale_out::{spread, t3_spend, two_instances};
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances(&schema, m.url(), limits).await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let statuses = spread([&a, &b], 60, 30, usage).await;
    assert!(
        statuses
            .iter()
            .all(|s| *s == 200 || *s == status || *s == 429),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count() as i64;
    let (rows, spent) = eventually(10, || async {
        let (rows, spent) = t3_spend(&schema).await;
        (rows == ok).then_some((rows, spent))
    })
    .await;
    assert_eq!(spent, rows * unit);
    assert!(ok >= fits, "{ok} of {fits}");
    assert!(
        ok <= fits + 2,
        "{ok} requests where {fits} fit: more than one request per instance over"
    );
    for gw in [&a, &b] {
        let r = post_messages(
            gw,
            crate::scale_out::LIMITED_KEY,
            &messages_body("claude-sonnet-4-6", false),
        )
        .await;
        assert_eq!(r.status(), status);
        let v: Value = r.json().await.unwrap();
        assert!(
            names_the_limit(v["error"]["message"].as_str().unwrap()),
            "{v}"
        );
    }
}

/// 50 input and 200 output tokens: 250 for `tpm`, below each request's reservation (body bytes + `max_tokens` 256);
/// billed 50 × 3,000 + 200 × 15,000 nano-USD at Sonnet's list price.
fn small_usage() -> (Vec<(&'static str, String)>, i64) {
    (
        vec![
            ("x-mock-input-tokens", "50".to_string()),
            ("x-mock-output-tokens", "200".to_string()),
        ],
        3_150_000,
    )
}

/// A rolling window holds across two instances (its spend is read in the lease claim's snapshot). Each request costs
/// less than its reservation, so the bound is one request per instance (docs/scale-out.md: `N × e` with `e` = 0); a
/// request billed far above its reservation, as on a cold start, may overshoot by more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_window_holds_across_two_instances() {
    let (usage, unit) = small_usage();
    burst_holds_across_two_instances(
        json!({"rolling": [{"hours": 5, "maxUSD": 0.00945}]}),
        &usage,
        (unit, 3),
        429,
        |m| m.starts_with("rolling 5h limit $0.01 reached"),
    )
    .await;
}

/// A per-model dollar limit holds across two instances (each request under it is checked against the model's
/// spend and every instance's holdings).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_model_budget_holds_across_two_instances() {
    let (usage, unit) = small_usage();
    burst_holds_across_two_instances(
        json!({"models": {"*SONNET*": {"daily": {"maxUSD": 0.00945}}}}),
        &usage,
        (unit, 3),
        402,
        |m| m.contains("daily (models \"*SONNET*\")"),
    )
    .await;
}

/// The tenant's `tpm` holds across two instances: a token lease carved from what the last minute's stored rows and
/// the other instances' leases leave; 1000 tokens fit four requests of 250.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_per_minute_hold_across_two_instances() {
    let (usage, unit) = small_usage();
    burst_holds_across_two_instances(json!({"tpm": 1000}), &usage, (unit, 4), 429, |m| {
        m.starts_with("tokens per minute limit of 1000 reached")
    })
    .await;
}

/// A `limits.models` entry's `rpm` holds across two instances: tickets drawn under the entry's pattern.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_model_rpm_holds_across_two_instances() {
    let (usage, unit) = small_usage();
    burst_holds_across_two_instances(
        json!({"models": {"*sonnet*": {"rpm": 5}}}),
        &usage,
        (unit, 5),
        429,
        |m| m.starts_with("models \"*sonnet*\": rate limit of 5 requests per minute"),
    )
    .await;
}

/// A `limits.models` entry's `maxConcurrent` holds across two instances: slots leased under the entry's pattern.
/// Eight slow requests at once over both instances: at most two run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_model_max_concurrent_holds_across_two_instances() {
    use crate::scale_out::{spread, two_instances};
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances(
        &schema,
        m.url(),
        json!({"models": {"*sonnet*": {"maxConcurrent": 2}}}),
    )
    .await;
    let (a, b) = (Arc::new(a), Arc::new(b));
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
}

/// A `limits.models` entry's `tpm` holds across two instances: token leases under the entry's pattern, carved from
/// what the stored rows of its models leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_model_tpm_holds_across_two_instances() {
    let (usage, unit) = small_usage();
    burst_holds_across_two_instances(
        json!({"models": {"*sonnet*": {"tpm": 1000}}}),
        &usage,
        (unit, 4),
        429,
        |m| m.starts_with("models \"*sonnet*\": tokens per minute limit of 1000 reached"),
    )
    .await;
}

/// The limits that the rollups do not show (rolling windows, `tpm`, `rpm`, and a `limits.models` entry's) count
/// every instance's use wherever they are shown: `POST /usage`, `GET /api/tenant/status` and the admin listing's
/// `limitStatus`, on either instance, after two requests on one and three on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_shows_what_all_instances_used() {
    use crate::scale_out::{t3_spend, two_instances, LIMITED_KEY};
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let m = mock().await;
    let (a, b) = two_instances(
        &schema,
        m.url(),
        json!({"rolling": [{"hours": 5, "maxUSD": 100}], "tpm": 100000, "rpm": 100,
               "models": {"*sonnet*": {"daily": {"maxUSD": 100}, "tpm": 100000, "rpm": 100}}}),
    )
    .await;
    let (usage, unit) = small_usage();
    for gw in [&a, &a, &b, &b, &b] {
        let mut rb = client()
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", LIMITED_KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&messages_body("claude-sonnet-4-6", false));
        for (k, v) in &usage {
            rb = rb.header(*k, v.as_str());
        }
        assert_eq!(rb.send().await.unwrap().status(), 200);
    }
    eventually(10, || async {
        (t3_spend(&schema).await.0 == 5).then_some(())
    })
    .await;
    // Five requests of 250 tokens, `unit` nano-USD each. rpm tickets drawn and not used go back within a second.
    let all_five = |limits: &[Value]| {
        let usd = |e: &Value| (e["used_usd"].as_f64().unwrap() * 1e9).round() as i64;
        usd(entry(limits, "rolling 5h", None)) == 5 * unit
            && usd(entry(limits, "daily", Some("*sonnet*"))) == 5 * unit
            && [None, Some("*sonnet*")].iter().all(|scope| {
                entry(limits, "tpm", *scope)["used"] == 1250
                    && entry(limits, "rpm", *scope)["used"] == 5
            })
    };
    for gw in [&a, &b] {
        eventually(10, || async {
            let v: Value = client()
                .post(format!("{}/usage", gw.url))
                .json(&json!({"type": "tenant", "apiKey": LIMITED_KEY}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            all_five(v["limits"].as_array().unwrap()).then_some(())
        })
        .await;
        let status: Value = client()
            .get(format!("{}/api/tenant/status", gw.url))
            .header("x-api-key", LIMITED_KEY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(all_five(status["limits"].as_array().unwrap()), "{status}");
        let listed: Value = client()
            .get(format!("{}/api/admin/tenants", gw.url))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let t3 = listed["tenants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == "t3")
            .unwrap();
        assert!(all_five(t3["limitStatus"].as_array().unwrap()), "{t3}");
    }
    // Stored spend and tokens left the leases (the tenant's and the entry's) in the batches that stored them, and
    // the unused rest goes back once idle: nothing stays held.
    eventually(10, || async {
        let mut conn = schema.connect().await;
        let held: (i64, i64) = sqlx::query_as(
            "SELECT COUNT(*) FILTER (WHERE scope = '*sonnet*' AND kind = 'tokens'),
                    COALESCE(SUM(amount), 0)::bigint
             FROM limit_leases WHERE tenant_id = 't3' AND kind IN ('usd', 'tokens')",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(held.0, 2, "each instance leased the entry's tokens");
        (held.1 == 0).then_some(())
    })
    .await;
}

/// Without the database an instance enforces the tenant's `tpm` and a `limits.models` entry's `rpm` on its own
/// count (local mode), as it does its budgets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_database_an_instance_enforces_tpm_and_model_limits_on_its_own() {
    use crate::scale_out::CuttableRelay;
    let Some(schema) = crate::postgres::Schema::create().await else {
        return;
    };
    let relay = CuttableRelay::start("127.0.0.1:5432").await;
    let url = relay.url_through(&schema.url);
    let m = mock().await;
    let config = TempDir::new("lim-cfg");
    let data = TempDir::new("lim-data");
    let mut files = Files::new(&[m.url()]);
    let mut t = tenant("t3", LIMITED_KEY, &["*"]);
    t["limits"] = json!({"tpm": 1000, "models": {"*sonnet*": {"rpm": 3}}});
    files.tenants["tenants"].as_array_mut().unwrap().push(t);
    files.write(&config.0);
    let gw =
        Gateway::start_with_env(config, data, &[], &[("CCGATE_DATABASE_URL", url.as_str())]).await;
    let (usage, _) = small_usage();
    // While the database is there: one Sonnet request, 250 tokens.
    assert_eq!(send(&gw, "claude-sonnet-4-6", 256, &usage).await.0, 200);
    relay.set_down(true);
    // Sonnet's rpm of 3: two more.
    let mut sonnet = Vec::new();
    for _ in 0..4 {
        sonnet.push(send(&gw, "claude-sonnet-4-6", 256, &usage).await);
    }
    assert_eq!(
        sonnet.iter().map(|r| r.0).collect::<Vec<_>>(),
        [200, 200, 429, 429]
    );
    assert!(
        sonnet[3].2["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("models \"*sonnet*\": rate limit of 3 requests per minute"),
        "{:?}",
        sonnet[3]
    );
    // 750 of the 1000 tokens used: one more Haiku request fits, the next is refused by tpm.
    assert_eq!(send(&gw, "claude-haiku-4-5", 256, &usage).await.0, 200);
    let (status, _, v) = send(&gw, "claude-haiku-4-5", 256, &usage).await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("tokens per minute limit of 1000 reached (1000 used)"),
        "{v}"
    );
    assert_eq!(health(&gw).await["sharedLimits"]["mode"], "local");
    relay.set_down(false);
}

/// A reload that adds a rolling window, or a `limits.models` entry with a daily budget, counts the spend the ledger
/// holds from before the reload (policy/history.rs), not only what comes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_added_by_a_reload_count_the_spend_before_it() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"]
        .as_array_mut()
        .unwrap()
        .push(tenant("t3", LIMITED_KEY, &["*"]));
    let gw = Gateway::start(&files).await;
    for _ in 0..2 {
        let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &sonnet_usage()).await;
        assert_eq!(status, 200, "{v}");
    }
    wait_requests(&gw, 2).await;
    let t3 = files.tenants["tenants"].as_array().unwrap().len() - 1;

    // $0.90 spent; a 5-hour window of $0.80 added by the file is full at once.
    files.tenants["tenants"][t3]["limits"] = json!({"rolling": [{"hours": 5, "maxUSD": 0.8}]});
    gw.write_config("tenants.json", &files.tenants);
    let used = eventually(15, || async {
        let limits = t3_limits(&gw).await;
        let l = limits
            .iter()
            .find(|l| l["name"] == "rolling 5h" && l["scope"]["model"].is_null())?;
        (l["used_usd"] == 0.9).then(|| l.clone())
    })
    .await;
    assert_eq!(used["remaining_usd"], 0.0, "{used}");
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &[]).await;
    assert_eq!(status, 429, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("rolling 5h limit $0.80 reached ($0.90 used)"),
        "{v}"
    );

    // A Sonnet entry with a daily budget added later counts today's Sonnet spend; Haiku is not under it.
    files.tenants["tenants"][t3]["limits"] =
        json!({"models": {"*sonnet*": {"daily": {"maxUSD": 0.5}}}});
    gw.write_config("tenants.json", &files.tenants);
    eventually(15, || async {
        let limits = t3_limits(&gw).await;
        let l = limits
            .iter()
            .find(|l| l["name"] == "daily" && l["scope"]["model"] == "*sonnet*")?;
        (l["used_usd"] == 0.9).then_some(())
    })
    .await;
    let (status, _, v) = send(&gw, "claude-sonnet-4-6", 256, &[]).await;
    assert_eq!(status, 402, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily (models \"*sonnet*\")"),
        "{v}"
    );
    let (status, _, v) = send(&gw, "claude-haiku-4-5", 256, &[]).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(m.request_count(), 3);
}
