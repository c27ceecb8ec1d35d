//! Metering, budgets and the usage API, black-box: the real `ccgate` binary against the mock upstream, checked
//! through `/usage` and the ledger (`data/ccgate.db`). Expected costs are computed here from the published prices
//! (docs/protocols.md §9.2–§9.4), never copied from the gateway's output.

use crate::common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

// ---------------------------------------------------------------------------------------------------------------
// Published prices (USD per MTok), written as micro-USD per MTok (= pico-USD per token): $3 → 3_000_000.

#[derive(Clone, Copy)]
struct Rates {
    input: u64,
    w5m: u64,
    w1h: u64,
    read: u64,
    output: u64,
}

/// Sonnet 4 / 4.5 / 4.6: $3 in, $3.75 write 5m, $6 write 1h, $0.30 read, $15 out.
const SONNET: Rates = Rates {
    input: 3_000_000,
    w5m: 3_750_000,
    w1h: 6_000_000,
    read: 300_000,
    output: 15_000_000,
};
/// Sonnet 4.5 above 200K total input, for the whole request: $6 / $7.50 / $12 / $0.60 / $22.50.
const SONNET_LONG: Rates = Rates {
    input: 6_000_000,
    w5m: 7_500_000,
    w1h: 12_000_000,
    read: 600_000,
    output: 22_500_000,
};
/// Haiku 4.5: $1 / $1.25 / $2 / $0.10 / $5.
const HAIKU_45: Rates = Rates {
    input: 1_000_000,
    w5m: 1_250_000,
    w1h: 2_000_000,
    read: 100_000,
    output: 5_000_000,
};

/// Token counts of one request as they must be recorded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Tok {
    input: i64,
    w5m: i64,
    w1h: i64,
    read: i64,
    output: i64,
}

/// Cost in nano-USD: Σ tokens × pico-USD/token, rounded once, half up, to nano-USD.
fn cost(r: Rates, t: Tok) -> i64 {
    let pico = t.input as u128 * r.input as u128
        + t.w5m as u128 * r.w5m as u128
        + t.w1h as u128 * r.w1h as u128
        + t.read as u128 * r.read as u128
        + t.output as u128 * r.output as u128;
    ((pico + 500) / 1000) as i64
}

fn usd(nano: i64) -> f64 {
    nano as f64 / 1e9
}

// ---------------------------------------------------------------------------------------------------------------
// Requests.

fn mock_headers(t: Tok) -> Vec<(&'static str, String)> {
    vec![
        ("x-mock-input-tokens", t.input.to_string()),
        ("x-mock-output-tokens", t.output.to_string()),
        ("x-mock-cache-read-input-tokens", t.read.to_string()),
        (
            "x-mock-cache-creation-input-tokens",
            (t.w5m + t.w1h).to_string(),
        ),
        ("x-mock-cache-5m", t.w5m.to_string()),
        ("x-mock-cache-1h", t.w1h.to_string()),
    ]
}

async fn post_h(
    gw: &Gateway,
    key: &str,
    body: &Value,
    headers: &[(&str, String)],
) -> reqwest::Response {
    let mut rb = client()
        .post(format!("{}/anthropic/v1/messages?beta=true", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body);
    for (k, v) in headers {
        rb = rb.header(*k, v.as_str());
    }
    rb.send().await.unwrap()
}

fn request_id(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-ccgate-request-id")
        .expect("x-ccgate-request-id")
        .to_str()
        .unwrap()
        .to_string()
}

fn event_names(sse: &str) -> Vec<String> {
    sse.lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .map(str::to_owned)
        .collect()
}

async fn count_tokens(gw: &Gateway, key: &str) -> reqwest::Response {
    client()
        .post(format!("{}/anthropic/v1/messages/count_tokens", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap()
}

async fn usage_with(
    gw: &Gateway,
    f: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> (u16, Value) {
    let r = f(client().post(format!("{}/usage", gw.url)))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn admin_usage_range(gw: &Gateway, from: &str, to: &str) -> (u16, Value) {
    usage_with(gw, |b| {
        b.json(&json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD, "from": from, "to": to}))
    })
    .await
}

fn tenant_with_limits(id: &str, key: &str, allowed: &[&str], limits: Value) -> Value {
    let mut t = tenant(id, key, allowed);
    t["limits"] = limits;
    t
}

fn today() -> chrono::NaiveDate {
    chrono::Utc::now().date_naive()
}

// ---------------------------------------------------------------------------------------------------------------
// The ledger.

#[derive(Debug, Clone)]
struct DbRow {
    request_id: String,
    tenant_id: String,
    upstream_id: Option<String>,
    upstream_request_id: Option<String>,
    protocol: String,
    endpoint: String,
    model: String,
    stream: bool,
    status: i64,
    outcome: String,
    error_class: Option<String>,
    tok: Tok,
    cost: i64,
    priced: bool,
    price_version: String,
    ttft_ms: Option<i64>,
    billable: bool,
}

async fn db_rows(gw: &Gateway) -> Vec<DbRow> {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", gw.db_path().display()))
        .await
        .unwrap();
    let rows = sqlx::query(
        "SELECT request_id, tenant_id, upstream_id, upstream_request_id, protocol, endpoint, model, stream, status,
                outcome, error_class, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
                output_tokens, cost_nanousd, priced, price_version, ttft_ms, billable
         FROM requests ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    rows.into_iter()
        .map(|r| DbRow {
            request_id: r.get("request_id"),
            tenant_id: r.get("tenant_id"),
            upstream_id: r.get("upstream_id"),
            upstream_request_id: r.get("upstream_request_id"),
            protocol: r.get("protocol"),
            endpoint: r.get("endpoint"),
            model: r.get("model"),
            stream: r.get::<i64, _>("stream") != 0,
            status: r.get("status"),
            outcome: r.get("outcome"),
            error_class: r.get("error_class"),
            tok: Tok {
                input: r.get("input_tokens"),
                w5m: r.get("cache_write_5m_tokens"),
                w1h: r.get("cache_write_1h_tokens"),
                read: r.get("cache_read_tokens"),
                output: r.get("output_tokens"),
            },
            cost: r.get("cost_nanousd"),
            priced: r.get::<i64, _>("priced") != 0,
            price_version: r.get("price_version"),
            ttft_ms: r.get("ttft_ms"),
            billable: r.get::<i64, _>("billable") != 0,
        })
        .collect()
}

/// Waits until the ledger holds exactly `n` rows.
async fn wait_rows(gw: &Gateway, n: usize) -> Vec<DbRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = db_rows(gw).await;
        if rows.len() == n {
            return rows;
        }
        assert!(
            rows.len() <= n,
            "expected {n} ledger rows, found {}: {rows:#?}",
            rows.len()
        );
        if tokio::time::Instant::now() > deadline {
            panic!("ledger has {} rows, expected {n}", rows.len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for the row of one request.
async fn wait_row(gw: &Gateway, request_id: &str) -> DbRow {
    eventually(10, || async {
        db_rows(gw)
            .await
            .into_iter()
            .find(|r| r.request_id == request_id)
    })
    .await
}

fn row<'a>(rows: &'a [DbRow], request_id: &str) -> &'a DbRow {
    rows.iter()
        .find(|r| r.request_id == request_id)
        .unwrap_or_else(|| panic!("no row for {request_id}: {rows:#?}"))
}

fn assert_totals(t: &Value, requests: i64, tok: Tok, cost_nano: i64, what: &str) {
    assert_eq!(t["requests"], requests, "{what}: requests in {t}");
    assert_eq!(t["input_tokens"], tok.input, "{what}: input in {t}");
    assert_eq!(
        t["cache_write_5m_tokens"], tok.w5m,
        "{what}: 5m writes in {t}"
    );
    assert_eq!(
        t["cache_write_1h_tokens"], tok.w1h,
        "{what}: 1h writes in {t}"
    );
    assert_eq!(
        t["cache_creation_input_tokens"],
        tok.w5m + tok.w1h,
        "{what}: cache writes in {t}"
    );
    assert_eq!(
        t["cache_read_input_tokens"], tok.read,
        "{what}: cache reads in {t}"
    );
    assert_eq!(t["output_tokens"], tok.output, "{what}: output in {t}");
    assert_eq!(t["cost_nanousd"], cost_nano, "{what}: cost in {t}");
    assert!(
        (t["cost_usd"].as_f64().unwrap() - usd(cost_nano)).abs() < 1e-12,
        "{what}: cost_usd in {t}"
    );
}

fn sum(toks: &[Tok]) -> Tok {
    toks.iter().fold(Tok::default(), |a, t| Tok {
        input: a.input + t.input,
        w5m: a.w5m + t.w5m,
        w1h: a.w1h + t.w1h,
        read: a.read + t.read,
        output: a.output + t.output,
    })
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Exact tokens and costs.

#[tokio::test]
async fn json_stream_and_cache_usage_are_priced_exactly() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let plain = Tok {
        input: 1234,
        output: 567,
        ..Default::default()
    };
    let cached = Tok {
        input: 100,
        w5m: 1000,
        w1h: 2000,
        read: 5000,
        output: 200,
    };
    // (name, stream, headers, expected tokens)
    type Case<'a> = (&'a str, bool, Vec<(&'a str, String)>, Tok);
    let mut cases: Vec<Case> = vec![
        ("json", false, mock_headers(plain), plain),
        ("stream, same usage", true, mock_headers(plain), plain),
        (
            "json, 5m+1h writes and reads",
            false,
            mock_headers(cached),
            cached,
        ),
        (
            "stream, 5m+1h writes and reads",
            true,
            mock_headers(cached),
            cached,
        ),
    ];
    // §2.6 worked example: streamed cache reads are priced at the read rate, never as input.
    let reads = Tok {
        input: 472,
        read: 9000,
        output: 89,
        ..Default::default()
    };
    cases.push(("stream, cache reads", true, mock_headers(reads), reads));
    // message_delta carrying only output_tokens keeps input and cache fields of message_start.
    let mut h = mock_headers(cached);
    h.push(("x-mock-delta-output-only", "true".into()));
    cases.push(("stream, delta with output only", true, h, cached));
    // A cache_creation total without the TTL split counts as 5m writes (JSON and stream).
    let no_split = vec![
        ("x-mock-input-tokens", "300".to_string()),
        ("x-mock-cache-creation-input-tokens", "4000".to_string()),
        ("x-mock-output-tokens", "50".to_string()),
    ];
    let no_split_tok = Tok {
        input: 300,
        w5m: 4000,
        output: 50,
        ..Default::default()
    };
    cases.push((
        "json, writes without split",
        false,
        no_split.clone(),
        no_split_tok,
    ));
    cases.push(("stream, writes without split", true, no_split, no_split_tok));
    // A split that sums to less than the total: the unattributed remainder is 5m.
    let short_split = vec![
        ("x-mock-input-tokens", "10".to_string()),
        ("x-mock-cache-creation-input-tokens", "5000".to_string()),
        ("x-mock-cache-5m", "1000".to_string()),
        ("x-mock-cache-1h", "2000".to_string()),
        ("x-mock-output-tokens", "20".to_string()),
    ];
    let short_tok = Tok {
        input: 10,
        w5m: 3000,
        w1h: 2000,
        output: 20,
        ..Default::default()
    };
    cases.push((
        "stream, split short of the total",
        true,
        short_split,
        short_tok,
    ));

    let mut ids = Vec::new();
    for (name, stream, headers, _) in &cases {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", *stream),
            headers,
        )
        .await;
        assert_eq!(r.status(), 200, "{name}");
        let id = request_id(&r);
        let text = r.text().await.unwrap();
        if *stream {
            assert_eq!(
                event_names(&text).last().map(String::as_str),
                Some("message_stop"),
                "{name}: {text}"
            );
        } else {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["type"], "message", "{name}");
        }
        ids.push(id);
    }
    let rows = wait_rows(&gw, cases.len()).await;
    let mut total_cost = 0;
    for ((name, stream, _, tok), id) in cases.iter().zip(&ids) {
        let r = row(&rows, id);
        assert_eq!(r.tok, *tok, "{name}: tokens");
        assert_eq!(r.cost, cost(SONNET, *tok), "{name}: cost");
        assert!(r.priced, "{name}");
        assert_eq!(
            r.price_version,
            ccgate_meter::pricing::BUILTIN_VERSION,
            "{name}"
        );
        assert_eq!(r.outcome, "ok", "{name}");
        assert_eq!(r.error_class, None, "{name}");
        assert_eq!(r.status, 200, "{name}");
        assert_eq!(r.stream, *stream, "{name}");
        assert_eq!(
            (r.protocol.as_str(), r.endpoint.as_str()),
            ("anthropic", "messages"),
            "{name}"
        );
        assert_eq!(
            (r.tenant_id.as_str(), r.model.as_str()),
            ("t1", "claude-sonnet-4-6"),
            "{name}"
        );
        assert_eq!(r.upstream_id.as_deref(), Some("up1"), "{name}");
        assert!(
            r.upstream_request_id
                .as_deref()
                .is_some_and(|s| s.starts_with("req_mock_")),
            "{name}: {r:?}"
        );
        assert!(r.ttft_ms.is_some_and(|t| t >= 0), "{name}: {r:?}");
        assert!(r.billable, "{name}");
        total_cost += cost(SONNET, *tok);
    }
    // The same usage costs the same streamed or not.
    assert_eq!(row(&rows, &ids[0]).cost, row(&rows, &ids[1]).cost);
    assert_eq!(row(&rows, &ids[2]).cost, row(&rows, &ids[3]).cost);
    // Spot checks against hand arithmetic ($ per MTok): 1234×3 + 567×15 = 12,207 µ$ → 12,207,000 n$.
    assert_eq!(cost(SONNET, plain), 12_207_000);
    // 100×3 + 1000×3.75 + 2000×6 + 5000×0.30 + 200×15 = 300 + 3750 + 12000 + 1500 + 3000 µ$.
    assert_eq!(cost(SONNET, cached), 20_550_000);

    let toks: Vec<Tok> = cases.iter().map(|c| c.3).collect();
    let u = admin_usage(&gw).await;
    assert_totals(
        &u["totals"],
        cases.len() as i64,
        sum(&toks),
        total_cost,
        "admin totals",
    );
    assert_eq!(u["totals"]["unpriced_requests"], 0);
    assert_eq!(u["totals"]["errors"], 0);
    let by_model = u["by_model"].as_array().unwrap();
    assert_eq!(by_model.len(), 1, "{u}");
    assert_eq!(by_model[0]["model"], "claude-sonnet-4-6");
    assert_totals(
        &by_model[0],
        cases.len() as i64,
        sum(&toks),
        total_cost,
        "by_model",
    );
    let by_day = u["by_day"].as_array().unwrap();
    assert_eq!(by_day.len(), 1, "{u}");
    assert_eq!(by_day[0]["day"], today().to_string());
}

#[tokio::test]
async fn long_context_prices_the_whole_request_at_the_premium_tier() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let model = "claude-sonnet-4-5-20250929";
    // 150,000 + 10,000 + 20,000 + 25,000 = 205,000 > 200,000: every class at the long-context rate.
    let over = Tok {
        input: 150_000,
        w5m: 10_000,
        w1h: 20_000,
        read: 25_000,
        output: 1_000,
    };
    // Exactly 200,000: not above the threshold, standard rates.
    let at = Tok {
        input: 145_000,
        w5m: 10_000,
        w1h: 20_000,
        read: 25_000,
        output: 1_000,
    };
    // Over the threshold through cache reads alone, streamed.
    let via_reads = Tok {
        input: 1,
        read: 200_000,
        output: 10,
        ..Default::default()
    };
    let mut ids = Vec::new();
    for (tok, stream) in [(over, false), (at, false), (via_reads, true)] {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body(model, stream),
            &mock_headers(tok),
        )
        .await;
        assert_eq!(r.status(), 200);
        ids.push(request_id(&r));
        r.bytes().await.unwrap();
    }
    let rows = wait_rows(&gw, 3).await;
    let expect = [
        cost(SONNET_LONG, over),
        cost(SONNET, at),
        cost(SONNET_LONG, via_reads),
    ];
    // Hand check: 150k×6 + 10k×7.5 + 20k×12 + 25k×0.6 + 1k×22.5 = 900,000 + 75,000 + 240,000 + 15,000 + 22,500 µ$.
    assert_eq!(expect[0], 1_252_500_000);
    assert_eq!(
        expect[1], 615_000_000,
        "145k×3 + 10k×3.75 + 20k×6 + 25k×0.3 + 1k×15"
    );
    for (i, id) in ids.iter().enumerate() {
        let r = row(&rows, id);
        assert_eq!(r.cost, expect[i], "request {i}: {r:?}");
        assert_eq!(r.tok, [over, at, via_reads][i]);
        assert_eq!(r.model, model);
    }
    let u = admin_usage(&gw).await;
    assert_totals(
        &u["totals"],
        3,
        sum(&[over, at, via_reads]),
        expect.iter().sum(),
        "totals",
    );
}

#[tokio::test]
async fn unknown_model_is_recorded_but_unpriced() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 777,
        w5m: 0,
        w1h: 100,
        read: 50,
        output: 33,
    };
    let r = post_h(
        &gw,
        TENANT2_KEY,
        &messages_body("mystery-model-9", false),
        &mock_headers(tok),
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    r.bytes().await.unwrap();
    let r = wait_row(&gw, &id).await;
    assert_eq!(r.tok, tok);
    assert!(!r.priced, "{r:?}");
    assert_eq!(r.cost, 0);
    assert_eq!(r.outcome, "ok");
    assert_eq!(r.tenant_id, "t2");
    assert_eq!(r.model, "mystery-model-9");
    let u = wait_requests(&gw, 1).await;
    assert_totals(&u["totals"], 1, tok, 0, "totals");
    assert_eq!(u["totals"]["unpriced_requests"], 1);
    let t2 = u["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t2")
        .unwrap()
        .clone();
    assert_eq!(t2["totals"]["unpriced_requests"], 1);
}

/// A model CCGate cannot price would spend nothing against a dollar budget: such a tenant is refused, in each
/// protocol's shape, and the refusal is recorded; a tenant without a dollar limit is still served (above).
#[tokio::test]
async fn unpriced_model_is_refused_for_a_tenant_with_a_usd_budget() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"][1] =
        tenant_with_limits("t2", TENANT2_KEY, &["*"], json!({"daily": {"maxUSD": 5}}));
    let gw = Gateway::start(&files).await;
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-sonnet-4-7", false)).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no price"),
        "{body}"
    );
    let chat =
        json!({"model": "claude-sonnet-4-7", "messages": [{"role": "user", "content": "hi"}]});
    let r = post_chat(&gw, TENANT2_KEY, &chat, &[]).await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(m.request_count(), 0, "nothing reached the upstream");
    let rows = wait_rows(&gw, 2).await;
    for r in &rows {
        assert_eq!(r.outcome, "rejected");
        assert_eq!(r.status, 400);
        assert_eq!(r.error_class.as_deref(), Some("model_unpriced"), "{r:?}");
    }
    // A priced model is still served to the same tenant.
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
}

// ---------------------------------------------------------------------------------------------------------------
// 2–3. Streams that do not end normally are still metered.

#[tokio::test]
async fn client_disconnect_mid_stream_is_metered_in_full() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 1234,
        read: 100,
        output: 777,
        ..Default::default()
    };
    let mut h = mock_headers(tok);
    h.push(("x-mock-chunks", "10".into()));
    h.push(("x-mock-event-delay-ms", "100".into()));
    let started = std::time::Instant::now();
    let r = post_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    assert_eq!(r.status(), 200);
    let id = request_id(&r);
    let mut body = r.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    drop(body);
    let hung_up_at = started.elapsed();
    let r = wait_row(&gw, &id).await;
    assert_eq!(r.outcome, "client_aborted", "{r:?}");
    assert_eq!(
        r.tok, tok,
        "the gateway reads the upstream to its end: full output"
    );
    assert_eq!(r.cost, cost(SONNET, tok));
    assert!(r.priced);
    // The upstream needed ~14 events × 100 ms; the row can only be complete after that.
    assert!(
        started.elapsed() > hung_up_at + Duration::from_millis(500),
        "{hung_up_at:?} {:?}",
        started.elapsed()
    );
    assert_eq!(m.request_count(), 1);
    let u = admin_usage(&gw).await;
    assert_totals(&u["totals"], 1, tok, cost(SONNET, tok), "totals");
}

/// The client gives up before the upstream has even answered: the request is finished in the background (the
/// upstream is not asked twice) and metered in full, as a client abort.
#[tokio::test]
async fn client_leaving_before_the_answer_starts_is_metered_in_full() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 2222,
        output: 333,
        ..Default::default()
    };
    for (i, stream) in [false, true].into_iter().enumerate() {
        let mut h = mock_headers(tok);
        h.push(("x-mock-first-byte-delay-ms", "700".into()));
        let body = messages_body("claude-sonnet-4-6", stream);
        let send = post_h(&gw, TENANT_KEY, &body, &h);
        // Give up once the upstream has the request (a fixed delay could give up before the request was even
        // sent, on a loaded machine, and then there is nothing to meter).
        let upstream_asked = eventually(10, || async {
            (m.request_count() > i as u64).then_some(())
        });
        tokio::select! {
            _ = send => panic!("the answer should not have started yet"),
            _ = upstream_asked => {}
        }
    }
    let rows = wait_rows(&gw, 2).await;
    for r in &rows {
        assert_eq!(r.outcome, "client_aborted", "{r:?}");
        assert_eq!(r.tok, tok, "{r:?}");
        assert_eq!(r.cost, cost(SONNET, tok));
    }
    assert_eq!(m.request_count(), 2);
    let u = admin_usage(&gw).await;
    assert_totals(
        &u["totals"],
        2,
        Tok {
            input: 4444,
            output: 666,
            ..Default::default()
        },
        2 * cost(SONNET, tok),
        "totals",
    );
}

#[tokio::test]
async fn upstream_break_mid_stream_is_metered() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 4321,
        read: 1000,
        output: 999,
        ..Default::default()
    };
    let body = messages_body("claude-sonnet-4-6", true);

    // The upstream connection dies after 3 events.
    let mut h = mock_headers(tok);
    h.push(("x-mock-chunks", "5".into()));
    h.push(("x-mock-fail-after-events", "3".into()));
    let r = post_h(&gw, TENANT_KEY, &body, &h).await;
    assert_eq!(r.status(), 200);
    let id_broken = request_id(&r);
    let text = tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .expect("stream must close")
        .expect("clean close");
    let names = event_names(&text);
    assert_eq!(
        names.first().map(String::as_str),
        Some("message_start"),
        "{text}"
    );
    assert_eq!(names.last().map(String::as_str), Some("error"), "{text}");
    assert!(!names.iter().any(|n| n == "message_stop"), "{text}");
    let last_data = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .next_back()
        .unwrap();
    let v: Value = serde_json::from_str(last_data).unwrap();
    assert_eq!(v["type"], "error");
    assert!(
        v["error"]["type"].is_string() && v["error"]["message"].is_string(),
        "{v}"
    );

    // The upstream sends an in-stream error event and ends.
    let mut h = mock_headers(tok);
    h.push(("x-mock-chunks", "5".into()));
    h.push(("x-mock-fail-after-events", "3".into()));
    h.push(("x-mock-break-mode", "error_event".into()));
    let r = post_h(&gw, TENANT_KEY, &body, &h).await;
    assert_eq!(r.status(), 200);
    let id_event = request_id(&r);
    let text = tokio::time::timeout(Duration::from_secs(5), r.text())
        .await
        .unwrap()
        .unwrap();
    let names = event_names(&text);
    assert_eq!(names.last().map(String::as_str), Some("error"), "{text}");
    assert_eq!(
        names.iter().filter(|n| *n == "error").count(),
        1,
        "one error event, not two: {text}"
    );
    assert!(text.contains("overloaded_error"), "{text}");

    // No message_delta at all: message_start usage plus an estimated output, flagged partial.
    let mut h = mock_headers(tok);
    h.push(("x-mock-omit-message-delta", "true".into()));
    let r = post_h(&gw, TENANT_KEY, &body, &h).await;
    let id_partial = request_id(&r);
    let text = r.text().await.unwrap();
    assert_eq!(
        event_names(&text).last().map(String::as_str),
        Some("message_stop")
    );

    let rows = wait_rows(&gw, 3).await;
    for (id, what) in [
        (&id_broken, "disconnect"),
        (&id_event, "error event"),
        (&id_partial, "no message_delta"),
    ] {
        let r = row(&rows, id);
        assert_eq!(
            r.tok.input, tok.input,
            "{what}: input from message_start: {r:?}"
        );
        assert_eq!(
            r.tok.read, tok.read,
            "{what}: cache reads from message_start"
        );
        assert!(
            r.tok.output >= 1 && r.tok.output < tok.output,
            "{what}: output estimated, never 0: {r:?}"
        );
        assert_eq!(
            r.cost,
            cost(SONNET, r.tok),
            "{what}: priced like any other usage"
        );
        assert!(r.priced);
        if what == "no message_delta" {
            assert_eq!(r.outcome, "partial", "{r:?}");
        } else {
            assert_eq!(r.outcome, "upstream_error", "{what}: {r:?}");
            assert!(r.error_class.is_some(), "{what}: {r:?}");
        }
    }
    let u = admin_usage(&gw).await;
    let toks: Vec<Tok> = rows.iter().map(|r| r.tok).collect();
    let spent: i64 = toks.iter().map(|t| cost(SONNET, *t)).sum();
    assert_totals(
        &u["totals"],
        3,
        sum(&toks),
        spent,
        "broken streams are billed",
    );
    assert_eq!(
        u["totals"]["errors"], 2,
        "the two upstream errors count as errors: {u}"
    );
}

#[tokio::test]
async fn client_gone_before_the_first_byte_is_still_metered() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 3000,
        w5m: 1000,
        output: 400,
        ..Default::default()
    };
    let mut h = mock_headers(tok);
    h.push(("x-mock-first-byte-delay-ms", "600".into()));
    let impatient = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(150))
        .build()
        .unwrap();
    for stream in [false, true] {
        let mut rb = impatient
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", TENANT_KEY)
            .json(&messages_body("claude-sonnet-4-6", stream));
        for (k, v) in &h {
            rb = rb.header(*k, v.as_str());
        }
        assert!(rb.send().await.is_err(), "the client gives up first");
    }
    // The upstream bills these requests: the gateway must record them all the same.
    let rows = wait_rows(&gw, 2).await;
    for r in &rows {
        assert_eq!(r.tok, tok, "{r:?}");
        assert_eq!(r.cost, cost(SONNET, tok), "{r:?}");
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.outcome, "client_aborted", "{r:?}");
    }
    assert_eq!(m.request_count(), 2);
}

// ---------------------------------------------------------------------------------------------------------------
// 4–5. Budgets and limits.

const BUDGET_KEY: &str = "tenant-key-budget-cccccccccccc";

#[tokio::test]
async fn budget_race_overshoots_by_at_most_one_request() {
    let m = mock().await;
    let per_request = Tok {
        input: 100_000,
        output: 10_000,
        ..Default::default()
    };
    let one = cost(SONNET, per_request); // $0.30 + $0.15
    assert_eq!(one, 450_000_000);
    let budget = 3 * one; // $1.35: exactly three requests fit
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"]
        .as_array_mut()
        .unwrap()
        .push(tenant_with_limits(
            "t3",
            BUDGET_KEY,
            &["*sonnet*"],
            json!({"daily": {"maxUSD": usd(budget)}}),
        ));
    let gw = Arc::new(Gateway::start(&files).await);
    let sem = Arc::new(tokio::sync::Semaphore::new(40));
    let mut tasks = Vec::new();
    for _ in 0..80 {
        let gw = gw.clone();
        let sem = sem.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let r = post_h(
                &gw,
                BUDGET_KEY,
                &messages_body("claude-sonnet-4-6", false),
                &mock_headers(per_request),
            )
            .await;
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("x-should-retry")
                .map(|v| v.to_str().unwrap().to_string());
            let v: Value = r.json().await.unwrap();
            (status, retry, v)
        }));
    }
    let results: Vec<_> = futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let tomorrow = (today() + chrono::Duration::days(1)).to_string();
    for (status, retry, v) in results.iter().filter(|r| r.0 != 200) {
        assert_eq!(*status, 402, "{v}");
        assert_eq!(retry.as_deref(), Some("false"));
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["error"]["type"], "billing_error", "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains("daily"), "names the limit: {msg}");
        assert!(msg.contains("1.35"), "names the amount: {msg}");
        assert!(msg.contains(&tomorrow), "names the reset time: {msg}");
    }
    assert!(ok >= 3, "three requests fit the budget, {ok} succeeded");
    assert_eq!(
        m.request_count() as usize,
        ok,
        "refused requests never reach the upstream"
    );

    wait_rows(&gw, 80).await;
    let all = admin_usage(&gw).await;
    let u = all["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t3")
        .unwrap()
        .clone();
    let spent = u["totals"]["cost_nanousd"].as_i64().unwrap();
    assert_eq!(
        spent,
        ok as i64 * one,
        "recorded spend is the sum of the successful requests"
    );
    assert!(
        spent <= budget + one,
        "spent {spent} n$ on a budget of {budget} n$ (+ one request {one})"
    );
    let daily = u["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "daily")
        .unwrap()
        .clone();
    assert!(
        (daily["used_usd"].as_f64().unwrap() - usd(spent)).abs() < 1e-9,
        "{daily}"
    );
    assert_eq!(daily["remaining_usd"].as_f64().unwrap(), 0.0, "{daily}");

    let rows = db_rows(&gw).await;
    assert_eq!(rows.iter().filter(|r| r.outcome == "ok").count(), ok);
    let rejected: Vec<_> = rows.iter().filter(|r| r.outcome == "rejected").collect();
    assert_eq!(rejected.len(), 80 - ok);
    assert!(rejected.iter().all(|r| r.status == 402
        && r.error_class.as_deref() == Some("budget_exceeded")
        && r.cost == 0));

    // A later request is still refused; on /openai the same budget is 429 insufficient_quota.
    let r = post_h(
        &gw,
        BUDGET_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &[],
    )
    .await;
    assert_eq!(r.status(), 402);
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(BUDGET_KEY)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "insufficient_quota", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("daily"),
        "{v}"
    );
    assert_eq!(m.request_count() as usize, ok);
    // Refusals never reached an upstream: they are audit rows, not usage.
    wait_requests(&gw, ok as i64).await;
}

#[tokio::test]
async fn rpm_limit_is_429_and_count_tokens_is_exempt() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"] = json!([tenant_with_limits(
        "t1",
        TENANT_KEY,
        &["*"],
        json!({"rpm": 2})
    )]);
    let gw = Gateway::start(&files).await;
    // count_tokens first: it must not use up the two requests of this minute.
    for _ in 0..3 {
        assert_eq!(count_tokens(&gw, TENANT_KEY).await.status(), 200);
    }
    for _ in 0..2 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "retry-after {retry}");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    // count_tokens is still allowed while the limit is reached.
    for _ in 0..3 {
        assert_eq!(count_tokens(&gw, TENANT_KEY).await.status(), 200);
    }
    assert_eq!(
        m.request_count(),
        8,
        "6 count_tokens + 2 messages reached the upstream"
    );
}

#[tokio::test]
async fn max_concurrent_holds_the_slot_until_the_stream_ends() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"] = json!([tenant_with_limits(
        "t1",
        TENANT_KEY,
        &["*"],
        json!({"maxConcurrent": 1})
    )]);
    let gw = Gateway::start(&files).await;
    let slow = vec![
        ("x-mock-chunks", "10".to_string()),
        ("x-mock-event-delay-ms", "100".to_string()),
    ];
    let quick = messages_body("claude-sonnet-4-6", false);

    // A slow stream holds the only slot.
    let r = post_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &slow,
    )
    .await;
    assert_eq!(r.status(), 200);
    let mut a = r.bytes_stream();
    a.next().await.unwrap().unwrap();
    let r = post_messages(&gw, TENANT_KEY, &quick).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "rate_limit_error", "{v}");
    // count_tokens is exempt from the concurrency limit.
    assert_eq!(count_tokens(&gw, TENANT_KEY).await.status(), 200);
    let mut rest = Vec::new();
    while let Some(c) = a.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
    // The stream ended: the slot is free again at once.
    let r = post_messages(&gw, TENANT_KEY, &quick).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    // A client that hangs up mid-stream: the slot comes back once the gateway has drained the upstream.
    let r = post_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &slow,
    )
    .await;
    assert_eq!(r.status(), 200);
    let aborted_id = request_id(&r);
    let mut b = r.bytes_stream();
    b.next().await.unwrap().unwrap();
    drop(b);
    let aborted = wait_row(&gw, &aborted_id).await;
    assert_eq!(aborted.outcome, "client_aborted");
    let r = post_messages(&gw, TENANT_KEY, &quick).await;
    assert_eq!(
        r.status(),
        200,
        "slot must be released after a client disconnect"
    );
    r.bytes().await.unwrap();
    let (_, u) = usage_with(&gw, |b| b.header("x-api-key", TENANT_KEY)).await;
    let mc = u["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "maxConcurrent")
        .unwrap()
        .clone();
    assert_eq!(
        (
            mc["max"].as_i64(),
            mc["used"].as_i64(),
            mc["remaining"].as_i64()
        ),
        (Some(1), Some(0), Some(1)),
        "{mc}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 6–7. Restart and shutdown.

#[tokio::test]
async fn restart_keeps_totals_and_spent_budget() {
    let m = mock().await;
    let per_request = Tok {
        input: 100_000,
        output: 10_000,
        ..Default::default()
    };
    let one = cost(SONNET, per_request);
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"]
        .as_array_mut()
        .unwrap()
        .push(tenant_with_limits(
            "t3",
            BUDGET_KEY,
            &["*sonnet*"],
            json!({"daily": {"maxUSD": usd(2 * one)}, "total": {"maxUSD": 100}}),
        ));
    let gw = Gateway::start(&files).await;
    let plain = Tok {
        input: 1000,
        read: 2000,
        output: 300,
        ..Default::default()
    };
    for stream in [false, true] {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", stream),
            &mock_headers(plain),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    for _ in 0..2 {
        let r = post_h(
            &gw,
            BUDGET_KEY,
            &messages_body("claude-sonnet-4-6", false),
            &mock_headers(per_request),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = post_h(
        &gw,
        BUDGET_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &mock_headers(per_request),
    )
    .await;
    assert_eq!(
        r.status(),
        402,
        "the daily budget of two requests is used up"
    );
    // Four served requests; the refused one is kept in `requests` for audit but is not usage (it shows among the
    // refusals, which may be written in a later batch than the four).
    wait_requests(&gw, 4).await;
    let before = eventually(10, || async {
        let u = admin_usage(&gw).await;
        (u["refusals"]["requests"] == 1).then_some(u)
    })
    .await;
    assert_eq!(before["totals"]["requests"], 4);
    assert_eq!(
        before["totals"]["cost_nanousd"],
        2 * cost(SONNET, plain) + 2 * one
    );

    let (status, gw) = restart_same_dirs(gw).await;
    assert!(status.success(), "{status:?}");
    let after = admin_usage(&gw).await;
    assert_eq!(after["totals"], before["totals"]);
    assert_eq!(
        after["tenants"], before["tenants"],
        "per-tenant totals and budget usage survive a restart"
    );
    let t1 = after["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "t1")
        .unwrap()
        .clone();
    assert_totals(
        &t1["totals"],
        2,
        sum(&[plain, plain]),
        2 * cost(SONNET, plain),
        "t1 after restart",
    );

    // The budget spent before the restart still counts.
    let r = post_h(
        &gw,
        BUDGET_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &mock_headers(per_request),
    )
    .await;
    assert_eq!(
        r.status(),
        402,
        "a used-up daily budget stays used up after a restart"
    );
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("daily"),
        "{v}"
    );
    let (_, u) = usage_with(&gw, |b| {
        b.json(&json!({"type": "tenant", "apiKey": BUDGET_KEY}))
    })
    .await;
    let limits = u["limits"].as_array().unwrap();
    for name in ["daily", "total"] {
        let l = limits.iter().find(|l| l["name"] == name).unwrap();
        assert!(
            (l["used_usd"].as_f64().unwrap() - usd(2 * one)).abs() < 1e-9,
            "{l}"
        );
    }
    // Other tenants carry on, and the totals keep growing from where they were.
    let r = post_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &mock_headers(plain),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let u = wait_requests(&gw, 5).await;
    assert_eq!(
        u["totals"]["cost_nanousd"],
        3 * cost(SONNET, plain) + 2 * one
    );
}

#[tokio::test]
async fn sigterm_drains_open_streams_and_loses_no_row() {
    const N: usize = 10;
    let m = mock().await;
    let mut gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 2000,
        w1h: 500,
        output: 321,
        ..Default::default()
    };
    let mut h = mock_headers(tok);
    h.push(("x-mock-chunks", "10".into()));
    h.push(("x-mock-event-delay-ms", "100".into()));
    let (started_tx, mut started_rx) = tokio::sync::mpsc::channel::<()>(N);
    let mut tasks = Vec::new();
    for _ in 0..N {
        let url = gw.url.clone();
        let h = h.clone();
        let started = started_tx.clone();
        tasks.push(tokio::spawn(async move {
            let mut rb = client()
                .post(format!("{url}/anthropic/v1/messages"))
                .header("x-api-key", TENANT_KEY)
                .json(&messages_body("claude-sonnet-4-6", true));
            for (k, v) in &h {
                rb = rb.header(*k, v.as_str());
            }
            let r = rb.send().await.unwrap();
            assert_eq!(r.status(), 200);
            let mut s = r.bytes_stream();
            let mut text = Vec::new();
            text.extend_from_slice(&s.next().await.unwrap().unwrap());
            started.send(()).await.unwrap();
            while let Some(c) = s.next().await {
                text.extend_from_slice(
                    &c.expect("stream must not break during a graceful shutdown"),
                );
            }
            String::from_utf8(text).unwrap()
        }));
    }
    for _ in 0..N {
        tokio::time::timeout(Duration::from_secs(5), started_rx.recv())
            .await
            .expect("streams started")
            .unwrap();
    }
    // One more client hangs up mid-stream just before the signal: its drain must finish before the exit too.
    let r = post_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    let aborted_id = request_id(&r);
    let mut s = r.bytes_stream();
    s.next().await.unwrap().unwrap();
    drop(s);
    let status = gw.terminate().await;
    for t in tasks {
        let text = t.await.unwrap();
        let names = event_names(&text);
        assert_eq!(
            names.last().map(String::as_str),
            Some("message_stop"),
            "{text}"
        );
        assert!(!names.iter().any(|n| n == "error"), "{text}");
    }
    assert!(
        status.success(),
        "exit status {status:?}; logs:\n{}",
        gw.logs()
    );
    let rows = db_rows(&gw).await;
    assert_eq!(rows.len(), N + 1, "{rows:#?}");
    let (aborted, rest): (Vec<_>, Vec<_>) = rows.iter().partition(|r| r.request_id == aborted_id);
    assert_eq!(rest.len(), N);
    for r in rest {
        assert_eq!(r.outcome, "ok", "{r:?}");
        assert_eq!(r.tok, tok);
        assert_eq!(r.cost, cost(SONNET, tok));
    }
    assert_eq!(aborted[0].outcome, "client_aborted", "{:?}", aborted[0]);
    assert_eq!(aborted[0].tok, tok, "drained to the end before exiting");
}

// ---------------------------------------------------------------------------------------------------------------
// 8–9. The usage API.

#[tokio::test]
async fn usage_api_isolates_tenants_and_accepts_both_credential_styles() {
    use base64::Engine;
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let t1_tok = Tok {
        input: 100,
        read: 40,
        output: 10,
        ..Default::default()
    };
    let t2_tok = Tok {
        input: 1000,
        w5m: 200,
        output: 100,
        ..Default::default()
    };
    for _ in 0..2 {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", false),
            &mock_headers(t1_tok),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let r = post_h(
        &gw,
        TENANT2_KEY,
        &messages_body("claude-haiku-4-5-20251001", true),
        &mock_headers(t2_tok),
    )
    .await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let all = wait_requests(&gw, 3).await;
    let t1_cost = 2 * cost(SONNET, t1_tok);
    let t2_cost = cost(HAIKU_45, t2_tok);

    // Tenant views: four ways to present t1's key, each sees t1 only.
    let basic = |u: &str, p: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    };
    let tenant_views = [
        usage_with(&gw, |b| b.header("x-api-key", TENANT_KEY)).await,
        usage_with(&gw, |b| b.bearer_auth(TENANT_KEY)).await,
        usage_with(&gw, |b| {
            b.json(&json!({"type": "tenant", "apiKey": TENANT_KEY}))
        })
        .await,
        usage_with(&gw, |b| b.header("x-api-key", TENANT_KEY).json(&json!({}))).await,
    ];
    for (i, (status, v)) in tenant_views.iter().enumerate() {
        assert_eq!(*status, 200, "style {i}: {v}");
        assert!(
            v.get("tenants").is_none(),
            "style {i}: a tenant must not see the tenant list: {v}"
        );
        assert_eq!(v["tenant"]["id"], "t1", "style {i}");
        assert_totals(
            &v["totals"],
            2,
            sum(&[t1_tok, t1_tok]),
            t1_cost,
            &format!("tenant style {i}"),
        );
        let models: Vec<&str> = v["by_model"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["model"].as_str().unwrap())
            .collect();
        assert_eq!(models, ["claude-sonnet-4-6"], "style {i}");
        assert!(
            !v.to_string().contains("t2") && !v.to_string().contains("haiku"),
            "style {i}: {v}"
        );
    }
    let (s, v) = usage_with(&gw, |b| {
        b.json(&json!({"type": "tenant", "apiKey": TENANT2_KEY}))
    })
    .await;
    assert_eq!(s, 200);
    assert_eq!(v["tenant"]["id"], "t2");
    assert_totals(&v["totals"], 1, t2_tok, t2_cost, "t2 view");

    // Admin views: JSON body and HTTP Basic.
    let admin_views = [
        usage_with(&gw, |b| {
            b.json(&json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD}))
        })
        .await,
        usage_with(&gw, |b| {
            b.header("authorization", basic("admin", ADMIN_PASSWORD))
        })
        .await,
    ];
    for (i, (status, v)) in admin_views.iter().enumerate() {
        assert_eq!(*status, 200, "admin style {i}: {v}");
        assert_totals(
            &v["totals"],
            3,
            sum(&[t1_tok, t1_tok, t2_tok]),
            t1_cost + t2_cost,
            "admin totals",
        );
        let tenants = v["tenants"].as_array().unwrap();
        let ids: Vec<&str> = tenants.iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["t1", "t2"], "admin style {i}");
        assert_totals(
            &tenants[0]["totals"],
            2,
            sum(&[t1_tok, t1_tok]),
            t1_cost,
            "admin t1",
        );
        assert_totals(&tenants[1]["totals"], 1, t2_tok, t2_cost, "admin t2");
    }
    assert_eq!(admin_views[0].1["totals"], all["totals"]);

    // Wrong credentials: 401, in the Anthropic error shape.
    let wrong = [
        usage_with(&gw, |b| b).await,
        usage_with(&gw, |b| b.header("x-api-key", "tenant-key-nope-nope-nope")).await,
        usage_with(&gw, |b| b.bearer_auth("tenant-key-nope-nope-nope")).await,
        usage_with(&gw, |b| {
            b.json(&json!({"type": "tenant", "apiKey": "tenant-key-nope-nope-nope"}))
        })
        .await,
        usage_with(&gw, |b| {
            b.json(&json!({"type": "admin", "username": "admin", "password": "wrong-password-1"}))
        })
        .await,
        usage_with(&gw, |b| {
            b.json(&json!({"type": "admin", "username": "root", "password": ADMIN_PASSWORD}))
        })
        .await,
        usage_with(&gw, |b| {
            b.json(&json!({"type": "admin", "username": "admin", "password": TENANT_KEY}))
        })
        .await,
        usage_with(&gw, |b| {
            b.header("authorization", basic("admin", "wrong-password-1"))
        })
        .await,
        // A tenant key is not an admin credential, in any style.
        usage_with(&gw, |b| {
            b.header("authorization", basic("admin", TENANT_KEY))
        })
        .await,
    ];
    for (i, (status, v)) in wrong.iter().enumerate() {
        assert_eq!(*status, 401, "wrong credentials {i}: {v}");
        assert_eq!(
            v["error"]["type"], "authentication_error",
            "wrong credentials {i}: {v}"
        );
        assert!(v.get("totals").is_none());
    }
}

#[tokio::test]
async fn usage_api_date_filters_and_limits() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": 10}, "monthly": {"maxUSD": 250.5}, "rpm": 50, "maxConcurrent": 4});
    let gw = Gateway::start(&files).await;
    let tok = Tok {
        input: 5000,
        w1h: 1000,
        read: 3000,
        output: 700,
        ..Default::default()
    };
    for stream in [false, true] {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", stream),
            &mock_headers(tok),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    wait_requests(&gw, 2).await;
    let spent = 2 * cost(SONNET, tok);
    let d = today();
    let (yesterday, tomorrow) = (d - chrono::Duration::days(1), d + chrono::Duration::days(1));

    let (s, v) = admin_usage_range(&gw, &d.to_string(), &d.to_string()).await;
    assert_eq!(s, 200, "{v}");
    assert_totals(&v["totals"], 2, sum(&[tok, tok]), spent, "today");
    assert_eq!(v["from"], d.to_string());
    let (s, v) = admin_usage_range(&gw, &tomorrow.to_string(), "").await;
    assert_eq!(s, 200, "{v}");
    assert_totals(&v["totals"], 0, Tok::default(), 0, "future from");
    let (s, v) = usage_with(&gw, |b| {
        b.header("x-api-key", TENANT_KEY)
            .json(&json!({"to": yesterday.to_string()}))
    })
    .await;
    assert_eq!(s, 200, "{v}");
    assert_totals(&v["totals"], 0, Tok::default(), 0, "to yesterday (tenant)");
    let (s, v) = usage_with(&gw, |b| {
        b.header("x-api-key", TENANT_KEY)
            .json(&json!({"from": yesterday.to_string()}))
    })
    .await;
    assert_eq!(s, 200, "{v}");
    assert_totals(
        &v["totals"],
        2,
        sum(&[tok, tok]),
        spent,
        "from yesterday (tenant)",
    );
    for (from, to) in [
        ("2026-13-01", ""),
        ("yesterday", ""),
        ("", "2026/01/01"),
        (&tomorrow.to_string()[..], &d.to_string()[..]),
    ] {
        let (s, v) = admin_usage_range(&gw, from, to).await;
        assert_eq!(s, 400, "from {from:?} to {to:?}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    }

    // Limits: max, used, remaining and reset time of each configured limit.
    let (_, v) = usage_with(&gw, |b| b.bearer_auth(TENANT_KEY)).await;
    let limits = v["limits"].as_array().unwrap();
    let find = |name: &str| {
        limits
            .iter()
            .find(|l| l["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v}"))
            .clone()
    };
    let daily = find("daily");
    assert_eq!(daily["max_usd"].as_f64(), Some(10.0));
    assert!(
        (daily["used_usd"].as_f64().unwrap() - usd(spent)).abs() < 1e-9,
        "{daily}"
    );
    assert!(
        (daily["remaining_usd"].as_f64().unwrap() - usd(10_000_000_000 - spent)).abs() < 1e-9,
        "{daily}"
    );
    assert_eq!(daily["resets_at"], format!("{tomorrow}T00:00:00+00:00"));
    let monthly = find("monthly");
    assert_eq!(monthly["max_usd"].as_f64(), Some(250.5));
    assert!(
        (monthly["used_usd"].as_f64().unwrap() - usd(spent)).abs() < 1e-9,
        "{monthly}"
    );
    assert!(
        (monthly["remaining_usd"].as_f64().unwrap() - usd(250_500_000_000 - spent)).abs() < 1e-9,
        "{monthly}"
    );
    use chrono::Datelike;
    let next_month = if d.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(d.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1)
    };
    assert_eq!(
        monthly["resets_at"],
        format!("{}T00:00:00+00:00", next_month.unwrap())
    );
    assert!(
        limits
            .iter()
            .all(|l| l["name"] != "weekly" && l["name"] != "total"),
        "only configured limits: {v}"
    );
    assert_eq!(find("rpm")["max"], 50);
    let mc = find("maxConcurrent");
    assert_eq!(
        (
            mc["max"].as_i64(),
            mc["used"].as_i64(),
            mc["remaining"].as_i64()
        ),
        (Some(4), Some(0), Some(4)),
        "{mc}"
    );
    // The admin sees the same limits under the tenant.
    let u = admin_usage(&gw).await;
    assert_eq!(u["tenants"][0]["limits"][0], daily);
}

#[tokio::test]
async fn days_and_resets_follow_the_server_timezone() {
    // UTC+14 all year: the local day differs from the UTC day for ten hours of every UTC day.
    let tz: chrono_tz::Tz = "Pacific/Kiritimati".parse().unwrap();
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["timezone"] = json!("Pacific/Kiritimati");
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": 5}});
    let gw = Gateway::start(&files).await;
    let local_today = chrono::Utc::now().with_timezone(&tz).date_naive();
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let u = wait_requests(&gw, 1).await;
    assert_eq!(u["timezone"], "Pacific/Kiritimati");
    assert_eq!(u["by_day"][0]["day"], local_today.to_string(), "{u}");
    let (s, v) = admin_usage_range(&gw, &local_today.to_string(), &local_today.to_string()).await;
    assert_eq!(s, 200);
    assert_eq!(v["totals"]["requests"], 1, "{v}");
    let daily = u["tenants"][0]["limits"][0].clone();
    assert_eq!(daily["name"], "daily");
    let next = local_today + chrono::Duration::days(1);
    assert_eq!(
        daily["resets_at"],
        format!("{next}T00:00:00+14:00"),
        "{daily}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 10. count_tokens.

#[tokio::test]
async fn count_tokens_is_recorded_as_non_billable() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let tok = Tok {
        input: 400,
        output: 40,
        ..Default::default()
    };
    for _ in 0..2 {
        let r = post_h(
            &gw,
            TENANT_KEY,
            &messages_body("claude-sonnet-4-6", false),
            &mock_headers(tok),
        )
        .await;
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    for _ in 0..3 {
        let r = count_tokens(&gw, TENANT_KEY).await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(v["input_tokens"].as_u64().unwrap() >= 1);
    }
    let rows = wait_rows(&gw, 5).await;
    let ct: Vec<_> = rows
        .iter()
        .filter(|r| r.endpoint == "count_tokens")
        .collect();
    assert_eq!(ct.len(), 3, "{rows:#?}");
    for r in &ct {
        assert!(!r.billable, "{r:?}");
        assert_eq!(r.cost, 0);
        assert_eq!(r.status, 200);
        assert_eq!(r.outcome, "ok", "{r:?}");
    }
    assert!(rows
        .iter()
        .filter(|r| r.endpoint == "messages")
        .all(|r| r.billable));
    let u = admin_usage(&gw).await;
    assert_totals(
        &u["totals"],
        2,
        sum(&[tok, tok]),
        2 * cost(SONNET, tok),
        "count_tokens not in totals",
    );
    assert_eq!(u["totals"]["errors"], 0);
}
