//! `/anthropic`: transparent forwarding, auth, permissions, balancing, probes and bad input.

use crate::common::*;
use ccgate_mock::MockConfig;
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

#[tokio::test]
async fn json_and_stream_round_trip_with_keys_swapped() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    // Odd formatting, unknown fields and escapes: the bytes must arrive upstream untouched.
    let body = r#"{ "model":"claude-sonnet-4-6",  "max_tokens":64,"thinking":{"type":"adaptive"},"context_management":{"edits":[]},
        "output_config":{"effort":"low"},"messages":[{"role":"user","content":"h\u00e9llo \ud83d\ude00"},{"role":"system","content":"x"}],"zzz_unknown":[1,2.50,null]}"#;
    let r = client()
        .post(format!("{}/anthropic/v1/messages?beta=true", gw.url))
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "context-management-2025-06-27,interleaved-thinking-2025-05-14",
        )
        .header("x-stainless-lang", "js")
        .header("x-claude-code-session-id", "sess-1")
        .header("x-forwarded-for", "10.0.0.1")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("request-id").is_some(),
        "upstream request-id is kept"
    );
    assert!(
        r.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("anthropic-ratelimit-")),
        "our upstream key's rate limits must not reach the tenant: {:?}",
        r.headers()
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["content"][0]["text"], "Hello from the mock upstream.");

    let rec = m.last_request().unwrap();
    assert_eq!(
        &rec.body[..],
        body.as_bytes(),
        "body must be forwarded byte for byte"
    );
    assert_eq!(rec.path, "/v1/messages");
    assert_eq!(rec.query.as_deref(), Some("beta=true"));
    assert_eq!(rec.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(rec.header("authorization"), None);
    assert_eq!(
        rec.header("anthropic-beta"),
        Some("context-management-2025-06-27,interleaved-thinking-2025-05-14")
    );
    assert_eq!(rec.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(rec.header("x-stainless-lang"), Some("js"));
    assert_eq!(rec.header("accept-encoding"), Some("identity"));
    assert_eq!(rec.header("x-forwarded-for"), None);
    for (k, v) in &rec.headers {
        assert!(
            !v.contains(TENANT_KEY),
            "tenant key leaked upstream in header {k}"
        );
    }

    // Streaming: the exact event sequence arrives.
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", true)).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = r.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
}

#[tokio::test]
async fn first_event_arrives_before_upstream_finishes() {
    let m = mock_with(MockConfig {
        chunks: 6,
        event_delay_ms: 250,
        ..Default::default()
    })
    .await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let started = Instant::now();
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", true)).await;
    let mut stream = r.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    let mut rest = Vec::new();
    while let Some(c) = stream.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    let total = started.elapsed();
    assert!(String::from_utf8_lossy(&rest).contains("message_stop"));
    // ~10 events at 250 ms each: the whole stream takes > 2 s; the first event must not wait for it.
    assert!(total > Duration::from_secs(2), "{total:?}");
    assert!(
        first_at + Duration::from_millis(1500) < total,
        "first event at {first_at:?}, total {total:?}"
    );
}

#[tokio::test]
async fn unauthorized_and_forbidden_never_reach_upstream() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"].as_array_mut().unwrap().push(json!({"id": "off", "key": "disabled-key-xxxxxxxxxxxx", "enabled": false, "allowedModels": ["*"]}));
    let gw = Gateway::start(&files).await;
    for key in ["nope-not-a-key", "disabled-key-xxxxxxxxxxxx"] {
        let r = post_messages(&gw, key, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // t1 may use *sonnet* and *haiku* only (case-insensitive).
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-opus-4-6", false)).await;
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "permission_error");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("claude-opus-4-6"), "{message}");
    // It tells the tenant what it may use and how to choose in Claude Code.
    assert!(message.contains("*sonnet*, *haiku*"), "{message}");
    assert!(message.contains("ANTHROPIC_MODEL"), "{message}");
    assert_eq!(m.request_count(), 0);
    let r = post_messages(&gw, TENANT_KEY, &messages_body("Claude-HAIKU-4-5", false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(m.request_count(), 1);
}

#[tokio::test]
async fn weighted_round_robin_is_exact_and_interleaved() {
    let a = mock().await;
    let b = mock().await;
    let mut files = Files::new(&[a.url(), b.url()]);
    files.upstreams["upstreams"][0]["weight"] = json!(300);
    files.upstreams["upstreams"][1]["weight"] = json!(100);
    files.upstreams["loadBalancer"]["sessionAffinity"] = json!(false);
    let gw = Gateway::start(&files).await;
    let mut order = Vec::new();
    for _ in 0..40 {
        let before = a.request_count();
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
        order.push(if a.request_count() > before { 'a' } else { 'b' });
    }
    assert_eq!(a.request_count(), 30);
    assert_eq!(b.request_count(), 10);
    for window in order.chunks(4) {
        assert_eq!(window.iter().filter(|c| **c == 'b').count(), 1, "{order:?}");
    }
}

#[tokio::test]
async fn disabled_upstream_gets_nothing_and_path_prefix_is_kept() {
    let a = mock().await;
    let b = mock().await;
    let mut files = Files::new(&[format!("{}/api/", a.url()), b.url()]);
    files.upstreams["upstreams"][1]["enabled"] = json!(false);
    let gw = Gateway::start(&files).await;
    for _ in 0..5 {
        let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
        assert_eq!(r.status(), 200);
    }
    assert_eq!(b.request_count(), 0);
    assert_eq!(a.last_request().unwrap().path, "/api/v1/messages");
}

#[tokio::test]
async fn upstream_errors_pass_through_but_key_rejections_do_not() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-mock-status", "400")
        .header(
            "x-mock-error-message",
            "prompt is too long: 300000 tokens > 200000 maximum",
        )
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "prompt is too long: 300000 tokens > 200000 maximum"
    );
    assert_eq!(m.request_count(), 1, "a tenant-caused 400 is never retried");

    let r = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-mock-status", "401")
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        502,
        "a tenant must never be told their key is bad when ours is"
    );
    // Retrying cannot fix our key: the SDKs (and Claude Code) must not retry for minutes.
    assert_eq!(
        r.headers().get("x-should-retry").map(|v| v.as_bytes()),
        Some(&b"false"[..])
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("upstream credentials rejected"));
    assert!(!v.to_string().contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn bad_input_gets_clear_errors_in_the_right_shape() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["bodyLimitMB"] = json!(1);
    let gw = Gateway::start(&files).await;
    let c = client();
    let post = |path: &str, body: Vec<u8>| {
        c.post(format!("{}{path}", gw.url))
            .header("x-api-key", TENANT_KEY)
            .header("authorization", format!("Bearer {TENANT_KEY}"))
            .body(body)
            .send()
    };
    let r = post(
        "/anthropic/v1/messages",
        b"{\"model\": \"claude-sonnet-4-6\", ".to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let r = post(
        "/anthropic/v1/messages",
        br#"{"max_tokens":5,"messages":[]}"#.to_vec(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
    let big = format!(
        r#"{{"model":"claude-sonnet-4-6","pad":"{}"}}"#,
        "x".repeat(1_100_000)
    );
    let r = post("/anthropic/v1/messages", big.into_bytes())
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");
    let r = post("/anthropic/v1/nope", b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let r = post("/openai/v1/nope", b"{}".to_vec()).await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].is_string() && v.get("type").is_none(),
        "OpenAI shape: {v}"
    );
    let r = c
        .get(format!("{}/anthropic/v1/messages", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(m.request_count(), 0);
}

#[tokio::test]
async fn slow_client_is_timed_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["requestBodyTimeoutSeconds"] = json!(1);
    let gw = Gateway::start(&files).await;
    let addr = gw.url.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /anthropic/v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {TENANT_KEY}\r\ncontent-length: 1000\r\n\r\n{{\"model\""
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("gateway must time out a stalled body")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(m.request_count(), 0);
}

#[tokio::test]
async fn probes_health_models_and_count_tokens() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let c = client();
    for path in ["/", "/anthropic"] {
        assert_eq!(
            c.head(format!("{}{path}", gw.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        assert_eq!(
            c.get(format!("{}{path}", gw.url))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    let h = health(&gw).await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["upstreams"][0]["id"], "up1");
    assert_eq!(h["upstreams"][0]["in_flight"], 0);
    assert!(h["version"].is_string() && h["uptime_seconds"].is_number());
    assert!(!h.to_string().contains(UPSTREAM_KEY));

    let models: Value = c
        .get(format!("{}/anthropic/v1/models?limit=1000", gw.url))
        .header("x-api-key", TENANT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(!ids.is_empty());
    assert!(
        ids.iter()
            .all(|id| id.contains("sonnet") || id.contains("haiku")),
        "{ids:?}"
    );
    assert_eq!(m.request_count(), 0, "models are answered by CCGate");

    let r = c
        .post(format!("{}/anthropic/v1/messages/count_tokens", gw.url))
        .header("x-api-key", TENANT_KEY)
        .json(&json!({"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hello there"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["input_tokens"].as_u64().unwrap() >= 1);
    assert_eq!(m.last_request().unwrap().path, "/v1/messages/count_tokens");
}

#[tokio::test]
async fn compressed_upstream_answers_are_decoded_and_metered() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    // The client's own accept-encoding must not reach the upstream; an upstream that compresses anyway is decoded.
    let raw = reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap();
    for stream in [false, true] {
        let r = raw
            .post(format!("{}/anthropic/v1/messages", gw.url))
            .header("x-api-key", TENANT_KEY)
            .header("accept-encoding", "gzip, br")
            .header("x-mock-gzip", "true")
            .header("x-mock-output-tokens", "33")
            .json(&messages_body("claude-sonnet-4-6", stream))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers().get("content-encoding").is_none(),
            "{:?}",
            r.headers()
        );
        let text = r.text().await.unwrap();
        assert!(text.contains("Hello from the mock upstream."), "{text}");
        assert_eq!(
            m.last_request().unwrap().header("accept-encoding"),
            Some("identity")
        );
    }
    let u = wait_requests(&gw, 2).await;
    assert_eq!(
        u["totals"]["output_tokens"], 66,
        "usage read from the decoded bodies: {u}"
    );
}

/// A tenant key put in the URL is not forwarded to the third-party upstream; other parameters are.
#[tokio::test]
async fn credential_query_parameters_are_not_forwarded() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let r = client()
        .post(format!(
            "{}/anthropic/v1/messages?beta=true&key={TENANT_KEY}&api_key=x&Access_Token=y",
            gw.url
        ))
        .header("x-api-key", TENANT_KEY)
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let rec = m.last_request().unwrap();
    assert_eq!(rec.query.as_deref(), Some("beta=true"));
}

/// Model names are stored, logged and shown on pages: huge names and control characters are refused up front.
#[tokio::test]
async fn absurd_model_names_are_refused_with_400() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let long = format!("claude-sonnet-{}", "x".repeat(300));
    for model in [
        long.as_str(),
        "claude-sonnet-4-6\nINFO forged line",
        "claude\u{1b}[31m",
    ] {
        let r = post_messages(&gw, TENANT2_KEY, &messages_body(model, false)).await;
        assert_eq!(r.status(), 400, "{model:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
        let r = post_chat(
            &gw,
            TENANT2_KEY,
            &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            &[],
        )
        .await;
        assert_eq!(r.status(), 400, "{model:?}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    assert_eq!(m.request_count(), 0);
}

/// No enabled upstream serves the model: a clear error that retrying cannot fix, on both protocols; a model that
/// is only temporarily unavailable keeps the retryable 529.
#[tokio::test]
async fn a_model_no_upstream_serves_is_not_retried() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.upstreams["upstreams"][0]["models"] = json!(["*haiku*"]);
    let gw = Gateway::start(&files).await;
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-opus-4-6", false)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("x-should-retry").map(|v| v.as_bytes()),
        Some(&b"false"[..])
    );
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no enabled upstream is configured for model"),
        "{v}"
    );
    let r = post_chat(
        &gw,
        TENANT2_KEY,
        &json!({"model": "claude-opus-4-6", "messages": [{"role": "user", "content": "hi"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("x-should-retry").map(|v| v.as_bytes()),
        Some(&b"false"[..])
    );
    assert_eq!(m.request_count(), 0);
    // The model it serves still works.
    let r = post_messages(&gw, TENANT2_KEY, &messages_body("claude-haiku-4-5", false)).await;
    assert_eq!(r.status(), 200);
}
