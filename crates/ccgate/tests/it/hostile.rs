//! A hostile upstream (a mirror site is untrusted): decompression bombs, endless SSE lines and streams, our key
//! echoed back in every form a tenant could decode, headers that would act on a browser.

use crate::common::*;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ccgate_mock::MockConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

fn mock_cfg(v: Value) -> String {
    v.to_string()
}

/// Rows for the requests of one test, newest last.
async fn rows(gw: &Gateway, n: usize) -> Vec<Value> {
    ledger_rows_at_least(gw, n).await
}

/// `text` (a JSON body or an SSE stream) holds our key in no form a tenant could decode: raw, JSON-escaped (every
/// JSON document in it is decoded and searched), or base64 (every token that decodes is searched).
fn assert_no_key(what: &str, text: &str) {
    assert!(!text.contains(UPSTREAM_KEY), "{what}: raw key in {text}");
    let docs: Vec<String> = if text.trim_start().starts_with('{') {
        vec![text.to_string()]
    } else {
        sse_data(text)
    };
    for d in docs {
        if let Ok(v) = serde_json::from_str::<Value>(&d) {
            let decoded = json_strings(&v).join(" ");
            assert!(
                !decoded.contains(UPSTREAM_KEY),
                "{what}: key after JSON decoding in {d}"
            );
            assert_no_base64_key(what, &decoded);
        }
    }
    assert_no_base64_key(what, text);
}

fn json_strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(json_strings).collect(),
        Value::Object(o) => o
            .iter()
            .flat_map(|(k, v)| std::iter::once(k.clone()).chain(json_strings(v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn assert_no_base64_key(what: &str, text: &str) {
    for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/-_=".contains(c))) {
        if token.len() < 8 {
            continue;
        }
        for engine in [&STANDARD, &URL_SAFE, &STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            if let Ok(b) = engine.decode(token) {
                assert!(
                    !String::from_utf8_lossy(&b).contains(UPSTREAM_KEY),
                    "{what}: base64 key {token}"
                );
            }
        }
    }
}

/// Every placeholder form of the echoed key, for a message.
const ALL_FORMS: &str = "raw {{key}} json {{key_json}} mixed {{key_mixed}} b64 {{key_b64_0}} {{key_b64_1}} {{key_b64_2}} url {{key_b64url_0}} {{key_b64url_1}} {{key_b64url_2}}";

// ---- 1. decompression bombs ----

/// A 1 GiB gzip bomb (about 1 MiB on the wire) on every path that buffers or streams: each answer is cut at its cap
/// with the protocol's error, recorded as `upstream_body_too_large`, and the gateway's peak RSS stays bounded.
#[tokio::test]
async fn gzip_bombs_are_cut_at_the_cap_and_memory_stays_bounded() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let pid = gw.child.id().unwrap();
    let before = proc_status_kb(pid, "VmHWM");
    let bomb = mock_cfg(json!({"gzip": true, "bomb_bytes": 1u64 << 30}));
    let h = [("x-mock-config", bomb.as_str())];

    // /openai, not streamed: buffered by read_full, so a real 502.
    let r = post_chat(&gw, TENANT_KEY, &chat_body(false), &h).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "upstream_error", "{v}");

    // /anthropic, not streamed: the head (200) is out before the body is read; the body breaks.
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &h,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(
        r.bytes().await.is_err(),
        "the cut body must not end cleanly"
    );

    // Streamed: one huge text_delta, past the held-event cap; the stream ends with the protocol's error.
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("event: error"),
        "{}",
        &text[..text.len().min(2000)]
    );
    assert!(
        text.len() < 1 << 20,
        "the huge event is never passed on: {}",
        text.len()
    );
    let r = post_chat(&gw, TENANT_KEY, &chat_body(true), &h).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last = sse_data(&text);
    assert!(
        last.iter().any(|d| d.contains("\"error\"")),
        "an OpenAI error chunk: {text}"
    );

    let rows = rows(&gw, 4).await;
    for row in &rows {
        assert_eq!(row["error_class"], "upstream_body_too_large", "{row}");
        assert_eq!(row["outcome"], "upstream_error", "{row}");
    }
    assert_eq!(rows[0]["status"], 502, "{}", rows[0]);
    let after = proc_status_kb(pid, "VmHWM");
    assert!(
        after < 300 * 1024,
        "peak RSS {after} kB (before the bombs: {before} kB)"
    );
    assert_eq!(m.request_count(), 4);
}

/// An error body that decodes past its 1 MiB cap is a failed attempt, answered 502 in each protocol.
#[tokio::test]
async fn an_oversized_error_body_is_a_502() {
    let m = mock_with(MockConfig {
        status: 400,
        gzip: true,
        error_body: Some(format!("{{\"e\":\"{}\"}}", "x".repeat(2 << 20))),
        ..MockConfig::default()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error", "{v}");
    let r = post_chat(&gw, TENANT_KEY, &chat_body(false), &[]).await;
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "upstream_error", "{v}");
    for row in rows(&gw, 2).await {
        assert_eq!(row["error_class"], "upstream_body_too_large", "{row}");
        assert_eq!(row["status"], 502, "{row}");
    }
}

// ---- 2. endless lines and always-ready streams ----

/// Two endless SSE lines (gzipped: the decoder always has bytes ready) on a one-worker gateway: both end with an
/// error event at the held-event cap, and another tenant is served meanwhile.
#[tokio::test]
async fn endless_lines_end_with_an_error_and_do_not_starve_others() {
    let m = mock().await;
    let config = TempDir::new("cfg");
    Files::new(&[m.url()]).write(&config.0);
    let gw = Gateway::start_with_args(config, TempDir::new("data"), &["--workers", "1"]).await;
    let mut lines = Vec::new();
    for openai in [false, true] {
        let url = gw.url.clone();
        lines.push(tokio::spawn(async move {
            // The OpenAI path frames the stream with its own SseFramer; the Anthropic one holds the event.
            let req = if openai {
                client()
                    .post(format!("{url}/openai/v1/chat/completions"))
                    .header("authorization", format!("Bearer {TENANT_KEY}"))
                    .json(&chat_body(true))
            } else {
                client()
                    .post(format!("{url}/anthropic/v1/messages"))
                    .header("x-api-key", TENANT_KEY)
                    .json(&messages_body("claude-sonnet-4-6", true))
            };
            let r = req.header("x-mock-config", endless_header()).send().await;
            r.unwrap().text().await.unwrap()
        }));
    }
    eventually(10, || async { (m.request_count() >= 2).then_some(()) }).await;
    let started = Instant::now();
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    assert!(r.json::<Value>().await.unwrap()["usage"].is_object());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "another tenant waited {:?}",
        started.elapsed()
    );
    for (i, l) in lines.into_iter().enumerate() {
        let text = tokio::time::timeout(Duration::from_secs(60), l)
            .await
            .expect("the endless line must be ended")
            .unwrap();
        if i == 0 {
            assert!(
                text.contains("event: error"),
                "{}",
                &text[..text.len().min(500)]
            );
        } else {
            assert!(
                sse_data(&text).iter().any(|d| d.contains("\"error\"")),
                "{text}"
            );
        }
        assert!(text.len() < 1 << 20, "{}", text.len());
    }
    let rows = rows(&gw, 3).await;
    let cut = rows
        .iter()
        .filter(|r| r["error_class"] == "upstream_body_too_large")
        .count();
    assert_eq!(cut, 2, "{rows:?}");
}

fn endless_header() -> String {
    mock_cfg(json!({"gzip": true, "endless_line": true}))
}

/// A stream of complete events that is always ready (gzipped pings) never trips a cap and never lets a timer
/// fire: the total deadline is still enforced while the client reads, and the drain limit once it hung up; and
/// SIGTERM still stops the gateway.
#[tokio::test]
async fn always_ready_streams_still_meet_their_deadlines() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.upstreams["upstreams"][0]["timeouts"] = json!({"total": 2000});
    files.server["server"]["clientDisconnectDrainSeconds"] = json!(1);
    let config = TempDir::new("cfg");
    files.write(&config.0);
    let mut gw = Gateway::start_with_args(config, TempDir::new("data"), &["--workers", "1"]).await;
    let pings = mock_cfg(json!({"gzip": true, "endless_events": true}));
    let h = [("x-mock-config", pings.as_str())];

    // The client reads: the stream is ended at the 2 s total deadline with an error event.
    let started = Instant::now();
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    let mut body = r.bytes_stream();
    let mut tail = Vec::new();
    use futures_util::StreamExt;
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(c) = body.next().await {
            let c = c.unwrap();
            tail.extend_from_slice(&c);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 4096);
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the stream was not ended by the total deadline"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(
        String::from_utf8_lossy(&tail).contains("event: error"),
        "{}",
        String::from_utf8_lossy(&tail)
    );

    // The client hangs up at once: the drain task is bounded too (1 s), and the row is written.
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    drop(body);
    let rows = rows(&gw, 2).await;
    assert_eq!(rows[1]["outcome"], "client_aborted", "{}", rows[1]);
    // Another tenant is served, and SIGTERM ends the process in time.
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
    let status = gw.terminate().await;
    assert!(status.success(), "{status:?}");
}

// ---- 3. response headers ----

#[tokio::test]
async fn hostile_response_headers_never_reach_the_tenant() {
    let m = mock_with(MockConfig {
        hostile_headers: true,
        ..MockConfig::default()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let check = |what: &str, r: &reqwest::Response, ct: &str| {
        for name in [
            "set-cookie",
            "access-control-allow-origin",
            "access-control-allow-credentials",
            "content-security-policy",
            "refresh",
            "strict-transport-security",
            "x-frame-options",
            "anthropic-organization-id",
            "anthropic-ratelimit-requests-remaining",
        ] {
            assert!(
                r.headers().get(name).is_none(),
                "{what}: {name} passed: {:?}",
                r.headers()
            );
        }
        let got = r.headers()["content-type"].to_str().unwrap();
        assert!(got.starts_with(ct), "{what}: content-type {got}");
    };
    for stream in [false, true] {
        let ct = if stream {
            "text/event-stream"
        } else {
            "application/json"
        };
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", stream)).await;
        assert_eq!(r.status(), 200);
        check("anthropic", &r, ct);
        assert!(r.headers().get("request-id").is_some());
        let r = post_chat(&gw, TENANT_KEY, &chat_body(stream), &[]).await;
        assert_eq!(r.status(), 200);
        check("openai", &r, ct);
    }
    // An error answer: same allow-list, and retry-after survives.
    let h = [("x-mock-status", "429"), ("x-mock-retry-after", "7")];
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", false),
        &h,
    )
    .await;
    assert_eq!(r.status(), 429);
    check("anthropic error", &r, "application/json");
    assert_eq!(r.headers()["retry-after"], "7");
}

// ---- 4. key redaction ----

fn echo_mock() -> MockConfig {
    MockConfig {
        echo_key: true,
        ..MockConfig::default()
    }
}

#[tokio::test]
async fn the_upstream_key_is_redacted_from_error_bodies_in_every_form() {
    let m = mock_with(MockConfig {
        status: 400,
        error_message: Some(ALL_FORMS.into()),
        ..echo_mock()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert_no_key("anthropic error", &text);
    let r = post_chat(&gw, TENANT_KEY, &chat_body(false), &[]).await;
    assert_eq!(r.status(), 400);
    let text = r.text().await.unwrap();
    assert!(text.contains("[redacted]"), "{text}");
    assert_no_key("openai error", &text);
    assert_eq!(m.request_count(), 2);
    // The mock really sends the key, in every form: asked directly, its answer fails the same check.
    let direct = client()
        .post(format!("{}/v1/messages", m.url()))
        .header("x-api-key", UPSTREAM_KEY)
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(direct.contains(UPSTREAM_KEY), "{direct}");
    assert!(direct.contains("\\u0075\\u0070"), "{direct}");
    let caught = std::panic::catch_unwind(|| assert_no_key("direct", &direct));
    assert!(caught.is_err(), "the check must catch the raw answer");
}

#[tokio::test]
async fn the_upstream_key_is_redacted_from_answers_streams_and_headers() {
    let m = mock_with(MockConfig {
        text: ALL_FORMS.into(),
        extra_headers: [
            ("x-echo".to_string(), "Bearer {{key}}".to_string()),
            ("x-request-id".to_string(), "{{key_b64_1}}".to_string()),
            ("request-id".to_string(), "req_fine".to_string()),
        ]
        .into_iter()
        .collect(),
        ..echo_mock()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    for stream in [false, true] {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", stream)).await;
        assert_eq!(r.status(), 200);
        assert!(r.headers().get("x-echo").is_none());
        // The upstream's x-request-id (carrying the key here) is dropped; the gateway answers its own id.
        assert_eq!(
            r.headers().get("x-request-id"),
            r.headers().get("x-ccgate-request-id"),
            "{:?}",
            r.headers()
        );
        assert_eq!(r.headers()["request-id"], "req_fine");
        let text = r.text().await.unwrap();
        assert!(text.contains("[redacted]"), "{text}");
        assert_no_key(&format!("anthropic stream={stream}"), &text);
        let r = post_chat(&gw, TENANT_KEY, &chat_body(stream), &[]).await;
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        assert!(text.contains("[redacted]"), "{text}");
        assert_no_key(&format!("openai stream={stream}"), &text);
    }
    // SSE error events.
    let h = [("x-mock-sse-error-message", ALL_FORMS)];
    let r = post_anthropic_h(
        &gw,
        TENANT_KEY,
        &messages_body("claude-sonnet-4-6", true),
        &h,
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(text.contains("event: error"), "{text}");
    assert_no_key("anthropic sse error", &text);
    let r = post_chat(&gw, TENANT_KEY, &chat_body(true), &h).await;
    let text = r.text().await.unwrap();
    assert_no_key("openai sse error", &text);
    // Nothing was cut that was not the key: the rows are complete.
    let rows = rows(&gw, 6).await;
    for row in &rows[..4] {
        assert_eq!(row["outcome"], "ok", "{row}");
        assert!(row["output_tokens"].as_i64().unwrap() > 0, "{row}");
    }
}

// ---- 5. the recorded status ----

/// `/openai` turns an upstream 529 into 503: the row holds the 503 the tenant saw and the 529 in its class.
#[tokio::test]
async fn openai_rows_hold_the_status_the_tenant_saw() {
    let m = mock_with(MockConfig {
        status: 529,
        ..MockConfig::default()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = post_chat(&gw, TENANT_KEY, &chat_body(false), &[]).await;
    assert_eq!(r.status(), 503);
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 529);
    let rows = rows(&gw, 2).await;
    assert_eq!(rows[0]["protocol"], "openai");
    assert_eq!(rows[0]["status"], 503, "{}", rows[0]);
    assert_eq!(rows[0]["error_class"], "upstream_http_529", "{}", rows[0]);
    assert_eq!(rows[1]["status"], 529, "{}", rows[1]);
    assert_eq!(rows[1]["error_class"], "upstream_http_529", "{}", rows[1]);
}

// ---- 6. duplicate keys ----

/// A body naming two models (one through an escape) is refused on both endpoints, and nothing goes upstream.
#[tokio::test]
async fn duplicate_model_keys_are_refused_before_the_upstream() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let anthropic = r#"{"model":"claude-sonnet-4-6","\u006dodel":"claude-opus-4-6","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}"#;
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT2_KEY)
        .header("content-type", "application/json")
        .body(anthropic)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    let openai = r#"{"model":"gpt-4o","\u006dodel":"claude-opus-4-6","messages":[{"role":"user","content":"hi"}]}"#;
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("authorization", format!("Bearer {TENANT2_KEY}"))
        .header("content-type", "application/json")
        .body(openai)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(m.request_count(), 0);
}
