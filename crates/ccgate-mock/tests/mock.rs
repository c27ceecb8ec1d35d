//! End-to-end tests: start the mock and talk to it over real HTTP.

use std::io::Read as _;
use std::time::{Duration, Instant};

use ccgate_mock::{start, BreakMode, MockConfig, ToolMode};
use futures_util::StreamExt;
use serde_json::{json, Value};

async fn json_of(resp: reqwest::Response) -> Value {
    resp.json().await.expect("JSON body")
}

/// Raw bytes as sent: no transparent decompression, so the gzip test sees what the mock put on the wire.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .no_gzip()
        .no_brotli()
        .no_deflate()
        .build()
        .unwrap()
}

fn body(stream: bool) -> Value {
    json!({"model":"claude-sonnet-4-6","max_tokens":64,"stream":stream,
           "messages":[{"role":"user","content":"hi"}]})
}

/// Parse an SSE text into (event name, data JSON) pairs, checking the framing.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    assert!(
        text.ends_with("\n\n") || text.is_empty(),
        "unterminated: {text:?}"
    );
    text.split_terminator("\n\n")
        .map(|ev| {
            let (name, data) = ev.split_once('\n').expect("two lines");
            let name = name
                .strip_prefix("event: ")
                .expect("event line")
                .to_string();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").expect("data line"))
                .expect("json data");
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

fn text_of(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "text_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap().to_string())
        .collect()
}

async fn post(url: &str, body: &Value) -> reqwest::Response {
    client().post(url).json(body).send().await.unwrap()
}

#[tokio::test]
async fn json_answer_shape_and_usage() {
    let mock = start(MockConfig::default()).await.unwrap();
    let resp = post(&format!("{}/v1/messages", mock.url()), &body(false)).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["request-id"], "req_mock_1");
    assert!(h.contains_key("anthropic-ratelimit-requests-remaining"));
    let v: Value = json_of(resp).await;
    assert_eq!(v["id"], "msg_mock_1");
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-6");
    assert_eq!(
        v["content"],
        json!([{"type":"text","text":"Hello from the mock upstream."}])
    );
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(
        v["usage"],
        json!({"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":12})
    );

    // With a cache split, `cache_creation` appears.
    mock.set_config(MockConfig {
        cache_creation_input_tokens: 30,
        cache_5m: Some(10),
        cache_1h: Some(20),
        cache_read_input_tokens: 7,
        ..MockConfig::default()
    });
    let v: Value = post(&format!("{}/v1/messages", mock.url()), &body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["cache_creation_input_tokens"], 30);
    assert_eq!(v["usage"]["cache_read_input_tokens"], 7);
    assert_eq!(
        v["usage"]["cache_creation"],
        json!({"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20})
    );
}

#[tokio::test]
async fn sse_order_usage_and_multibyte_chunks() {
    let text = "你好，世界！Streaming works — ünïcødé 🎉 fine.";
    let mock = start(MockConfig {
        text: text.into(),
        chunks: 20,
        cache_5m: Some(3),
        cache_creation_input_tokens: 3,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let resp = post(
        &format!("{}/v1/messages?beta=true", mock.url()),
        &body(true),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let raw = resp.text().await.unwrap();
    assert!(!raw.contains("[DONE]"));
    let ev = parse_sse(&raw);
    for (n, d) in &ev {
        assert_eq!(d["type"], n.as_str());
    }
    let mut expected = vec!["message_start", "content_block_start"];
    expected.extend(std::iter::repeat_n("content_block_delta", 20));
    expected.extend(["content_block_stop", "message_delta", "message_stop"]);
    assert_eq!(names(&ev), expected);
    assert_eq!(ev.len(), 25);
    assert_eq!(text_of(&ev), text);

    let start = &ev[0].1["message"];
    assert_eq!(start["model"], "claude-sonnet-4-6");
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(
        start["usage"],
        json!({"input_tokens":25,"cache_creation_input_tokens":3,"cache_read_input_tokens":0,
               "cache_creation":{"ephemeral_5m_input_tokens":3,"ephemeral_1h_input_tokens":0},
               "output_tokens":1})
    );
    let delta = &ev[23].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 12);
    assert_eq!(delta["usage"]["input_tokens"], 25);
    assert_eq!(
        delta["usage"]["cache_creation"]["ephemeral_5m_input_tokens"],
        3
    );

    // delta_output_only and omit_message_delta.
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-delta-output-only", "true")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let ev = parse_sse(&resp.text().await.unwrap());
    let md = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(md.1["usage"], json!({"output_tokens":12}));

    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-omit-message-delta", "true")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let ev = parse_sse(&resp.text().await.unwrap());
    assert!(!names(&ev).contains(&"message_delta"));
    assert_eq!(names(&ev).last(), Some(&"message_stop"));
}

#[tokio::test]
async fn header_overrides_win() {
    let mock = start(MockConfig::default()).await.unwrap();
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-text", "override text")
        .header("x-mock-output-tokens", "99")
        .header("x-mock-chunks", "4")
        .header("x-mock-extra-headers", r#"{"x-upstream-thing":"yes"}"#)
        .header("x-mock-ratelimit-headers", "false")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-upstream-thing"], "yes");
    assert!(!resp
        .headers()
        .contains_key("anthropic-ratelimit-requests-remaining"));
    let ev = parse_sse(&resp.text().await.unwrap());
    assert_eq!(text_of(&ev), "override text");
    assert_eq!(
        ev.iter()
            .filter(|(n, _)| n == "content_block_delta")
            .count(),
        4
    );
    let md = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(md.1["usage"]["output_tokens"], 99);

    // UTF-8 bytes in a header value, and a JSON string literal form.
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header(
            "x-mock-text",
            reqwest::header::HeaderValue::from_bytes("中文".as_bytes()).unwrap(),
        )
        .json(&body(false))
        .send()
        .await
        .unwrap();
    let v: Value = json_of(resp).await;
    assert_eq!(v["content"][0]["text"], "中文");

    // Unknown override → 400 from the mock.
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-nonsense", "1")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    // Config is untouched by overrides.
    let v: Value = post(&format!("{}/v1/messages", mock.url()), &body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "Hello from the mock upstream.");
}

#[tokio::test]
async fn error_injection() {
    let mock = start(MockConfig {
        status: 429,
        retry_after: Some(17),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let resp = post(&format!("{}/v1/messages", mock.url()), &body(true)).await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "17");
    assert!(resp.headers().contains_key("request-id"));
    let v: Value = json_of(resp).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    for (status, etype) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (500, "api_error"),
        (529, "overloaded_error"),
        (503, "api_error"),
    ] {
        let resp = client()
            .post(format!("{}/v1/messages", mock.url()))
            .header("x-mock-status", status.to_string())
            .header("x-mock-error-message", "custom msg")
            .json(&body(false))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = json_of(resp).await;
        assert_eq!(v["error"]["type"], etype, "status {status}");
        assert_eq!(v["error"]["message"], "custom msg");
    }

    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-status", "502")
        .header("x-mock-error-body", "<html>bad gateway</html>")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    assert_eq!(resp.text().await.unwrap(), "<html>bad gateway</html>");

    // status applies to the models probe too, unless models_status says otherwise.
    let resp = client()
        .get(format!("{}/v1/models", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    let resp = client()
        .get(format!("{}/v1/models", mock.url()))
        .header("x-mock-models-status", "200")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Reads a streaming body chunk by chunk; returns (bytes received, whether it ended in an error).
async fn drain(resp: reqwest::Response) -> (String, bool) {
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut failed = false;
    while let Some(item) = stream.next().await {
        match item {
            Ok(b) => buf.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    (String::from_utf8(buf).unwrap(), failed)
}

#[tokio::test]
async fn disconnect_and_error_event_mid_stream() {
    let mock = start(MockConfig {
        chunks: 5,
        fail_after_events: Some(3),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let resp = post(&format!("{}/v1/messages", mock.url()), &body(true)).await;
    assert_eq!(resp.status(), 200);
    let (text, failed) = drain(resp).await;
    assert!(failed, "body must end with an error");
    let ev = parse_sse(&text);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ]
    );

    // With pacing as well.
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-event-delay-ms", "5")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let (text, failed) = drain(resp).await;
    assert!(failed);
    assert_eq!(parse_sse(&text).len(), 3);

    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-break-mode", "error_event")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let (text, failed) = drain(resp).await;
    assert!(!failed);
    let ev = parse_sse(&text);
    assert_eq!(
        names(&ev),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "error"
        ]
    );
    assert_eq!(
        ev[3].1,
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}})
    );
    let _ = BreakMode::ErrorEvent;
}

#[tokio::test]
async fn prefix_paths_and_recording() {
    let mock = start(MockConfig::default()).await.unwrap();
    let url = format!("{}/api/anthropic/v1/messages?beta=true", mock.url());
    let resp = client()
        .post(&url)
        .header("X-Api-Key", "sk-test")
        .header("anthropic-beta", "a,b")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = client()
        .post(format!("{}/prefix/v1/messages/count_tokens", mock.url()))
        .body("{\"model\":\"x\",\"messages\":[]}")
        .send()
        .await
        .unwrap();
    let v: Value = json_of(resp).await;
    assert_eq!(v["input_tokens"], 6);

    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(mock.request_count(), 2);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/api/anthropic/v1/messages");
    assert_eq!(r.query.as_deref(), Some("beta=true"));
    assert_eq!(r.header("x-api-key"), Some("sk-test"));
    assert_eq!(r.header("Anthropic-Beta"), Some("a,b"));
    assert!(r.headers.iter().all(|(k, _)| k == &k.to_lowercase()));
    assert_eq!(r.json()["model"], "claude-sonnet-4-6");

    // Admin API.
    let list: Value = client()
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0]["path"], "/api/anthropic/v1/messages");
    assert_eq!(list[0]["body_base64"], false);
    let b: Value = serde_json::from_str(list[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!(b["max_tokens"], 64);

    // Non-UTF-8 body is base64'd (and the mock answers 400 for non-JSON).
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .body(vec![0xffu8, 0xfe, 0x00])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = json_of(resp).await;
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let list: Value = client()
        .get(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list[2]["body_base64"], true);
    assert_eq!(list[2]["body"], "//4A");

    let resp = client()
        .delete(format!("{}/_mock/requests", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(mock.requests().is_empty());
    assert_eq!(mock.request_count(), 0);

    // Recording off: counted, not stored.
    let resp = client()
        .post(format!("{}/_mock/config", mock.url()))
        .body(r#"{"record":false,"text":"via admin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = post(&format!("{}/v1/messages", mock.url()), &body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "via admin");
    assert!(mock.requests().is_empty());
    assert_eq!(mock.request_count(), 1);
    assert!(!mock.config().record);
    let cfg: Value = client()
        .get(format!("{}/_mock/config", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(cfg["text"], "via admin");
    let resp = client()
        .post(format!("{}/_mock/config", mock.url()))
        .body(r#"{"bogus":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn other_routes() {
    let mock = start(MockConfig::default()).await.unwrap();
    let c = client();
    let resp = c.head(format!("{}/", mock.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let resp = c.get(format!("{}/", mock.url())).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = c
        .get(format!("{}/x/v1/models", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["data"].as_array().unwrap().len() >= 2);
    assert_eq!(v["data"][0]["type"], "model");
    assert_eq!(v["has_more"], false);
    let v: Value = c
        .get(format!("{}/v1/models/claude-sonnet-4-6", mock.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["id"], "claude-sonnet-4-6");
    let resp = c
        .get(format!("{}/v1/nothing", mock.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let v: Value = json_of(resp).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "not_found_error");
    let resp = c
        .post(format!("{}/v1/messages", mock.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c
        .post(format!("{}/v1/messages", mock.url()))
        .body(r#"{"model":3}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = c
        .post(format!("{}/v1/messages/count_tokens", mock.url()))
        .body("[")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

fn tools_body(stream: bool, messages: Value) -> Value {
    json!({"model":"claude-sonnet-4-6","max_tokens":64,"stream":stream,
           "tools":[{"name":"Read","input_schema":{"type":"object"}},
                    {"name":"Bash","input_schema":{"type":"object"}}],
           "messages":messages})
}

#[tokio::test]
async fn tool_auto_mode_both_turns() {
    let mock = start(MockConfig {
        tool_mode: ToolMode::Auto,
        tool_text: Some("I'll run a command.".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/v1/messages", mock.url());
    let turn1 = json!([{"role":"user","content":"run something"}]);

    // Turn 1, JSON.
    let v: Value = post(&url, &tools_body(false, turn1.clone()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    assert_eq!(
        v["content"][0],
        json!({"type":"text","text":"I'll run a command."})
    );
    let tu = &v["content"][1];
    assert_eq!(tu["type"], "tool_use");
    assert_eq!(tu["name"], "Bash");
    assert!(tu["id"].as_str().unwrap().starts_with("toolu_mock_"));
    assert_eq!(
        tu["input"],
        json!({"command":"echo mock-tool-ok","description":"Print a marker"})
    );

    // Turn 1, SSE: the input arrives as 2+ fragments that cut the JSON.
    let ev = parse_sse(
        &post(&url, &tools_body(true, turn1.clone()))
            .await
            .text()
            .await
            .unwrap(),
    );
    let frags: Vec<String> = ev
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert!(frags.len() >= 2);
    assert!(frags
        .iter()
        .all(|f| serde_json::from_str::<Value>(f).is_err()));
    let input: Value = serde_json::from_str(&frags.concat()).unwrap();
    assert_eq!(input["command"], "echo mock-tool-ok");
    let starts: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "content_block_start")
        .map(|(_, d)| d)
        .collect();
    assert_eq!(starts[1]["index"], 1);
    assert_eq!(starts[1]["content_block"]["type"], "tool_use");
    assert_eq!(starts[1]["content_block"]["input"], json!({}));
    let md = ev.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(md.1["delta"]["stop_reason"], "tool_use");

    // Turn 2: the tool result comes back → text answer quoting it.
    let turn2 = json!([
        {"role":"user","content":"run something"},
        {"role":"assistant","content":[{"type":"tool_use","id":"toolu_mock_1","name":"Bash","input":{}}]},
        {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_mock_1","content":"mock-tool-ok\n"}]}
    ]);
    let v: Value = post(&url, &tools_body(false, turn2.clone()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(
        v["content"],
        json!([{"type":"text","text":"Tool result received: mock-tool-ok\n"}])
    );
    let ev = parse_sse(
        &post(&url, &tools_body(true, turn2))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(text_of(&ev), "Tool result received: mock-tool-ok\n");

    // Block-array tool_result content, long → first 200 chars.
    let long = "x".repeat(300);
    let turn2b = json!([{"role":"user","content":[{"type":"tool_result","tool_use_id":"t",
        "content":[{"type":"text","text":long}]}]}]);
    let v: Value = post(&url, &tools_body(false, turn2b))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["content"][0]["text"].as_str().unwrap(),
        format!("Tool result received: {}", "x".repeat(200))
    );

    // No Bash tool → first tool with `{}` input, and no input_json_delta in SSE.
    let b = json!({"model":"m","stream":true,"tools":[{"name":"get_time","input_schema":{"type":"object"}}],
                   "messages":[{"role":"user","content":"time?"}]});
    let ev = parse_sse(&post(&url, &b).await.text().await.unwrap());
    assert!(ev
        .iter()
        .all(|(_, d)| d["delta"]["type"] != "input_json_delta"));
    let tu = ev
        .iter()
        .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
        .unwrap();
    assert_eq!(tu.1["content_block"]["name"], "get_time");

    // No tools → plain text.
    let v: Value = post(&url, &body(false)).await.json().await.unwrap();
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["content"][0]["text"], "Hello from the mock upstream.");
}

#[tokio::test]
async fn thinking_ping_gzip_and_auth() {
    let mock = start(MockConfig {
        thinking: true,
        ping_every_events: Some(2),
        require_key: Some("sk-up".into()),
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let url = format!("{}/v1/messages", mock.url());
    let resp = post(&url, &body(false)).await;
    assert_eq!(resp.status(), 401);
    let v: Value = json_of(resp).await;
    assert_eq!(v["error"]["type"], "authentication_error");

    let resp = client()
        .post(&url)
        .bearer_auth("sk-up")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    let v: Value = json_of(resp).await;
    assert_eq!(v["content"][0]["type"], "thinking");
    assert_eq!(v["content"][0]["signature"], "sig_mock");
    assert_eq!(v["content"][1]["type"], "text");

    let resp = client()
        .post(&url)
        .header("x-api-key", "sk-up")
        .json(&body(true))
        .send()
        .await
        .unwrap();
    let ev = parse_sse(&resp.text().await.unwrap());
    assert!(names(&ev).contains(&"ping"));
    let non_ping: Vec<&str> = names(&ev).into_iter().filter(|n| *n != "ping").collect();
    assert_eq!(non_ping[0], "message_start");
    assert_eq!(ev[1].1["content_block"]["type"], "thinking");
    assert!(ev
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "signature_delta"));

    // gzip even though the client did not ask for it.
    for stream in [false, true] {
        let resp = client()
            .post(&url)
            .header("x-api-key", "sk-up")
            .header("x-mock-gzip", "true")
            .header("x-mock-ping-every-events", "null")
            .json(&body(stream))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        let raw = resp.bytes().await.unwrap();
        let mut out = String::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut out)
            .unwrap();
        if stream {
            assert_eq!(names(&parse_sse(&out)).last(), Some(&"message_stop"));
        } else {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v["type"], "message");
        }
    }
}

#[tokio::test]
async fn pacing_delays_and_hang() {
    let mock = start(MockConfig {
        chunks: 4,
        event_delay_ms: 100,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    let resp = post(&format!("{}/v1/messages", mock.url()), &body(true)).await;
    let mut stream = resp.bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let t_first = t0.elapsed();
    assert!(String::from_utf8_lossy(&first).starts_with("event: message_start"));
    let mut n = 0;
    while let Some(c) = stream.next().await {
        n += c.unwrap().len();
    }
    let total = t0.elapsed();
    assert!(n > 0);
    // 9 events → 8 gaps of 100 ms; the first event is not held back.
    assert!(total >= Duration::from_millis(780), "{total:?}");
    assert!(t_first < Duration::from_millis(500), "{t_first:?}");

    // first_byte_delay
    let t0 = Instant::now();
    let resp = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-first-byte-delay-ms", "150")
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);

    // hang
    let err = client()
        .post(format!("{}/v1/messages", mock.url()))
        .header("x-mock-hang", "true")
        .timeout(Duration::from_millis(300))
        .json(&body(false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
}

#[tokio::test]
async fn shutdown_refuses_connections() {
    let mock = start(MockConfig::default()).await.unwrap();
    let url = format!("{}/v1/messages", mock.url());
    let c = client();
    assert_eq!(
        c.post(&url)
            .json(&body(false))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    mock.shutdown();
    // A raw connect is refused right away.
    assert!(std::net::TcpStream::connect(mock.addr).is_err());
    let err = client()
        .post(&url)
        .json(&body(false))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    // The pooled keep-alive connection is gone too.
    assert!(c.post(&url).json(&body(false)).send().await.is_err());
    mock.shutdown(); // idempotent
}

#[test]
fn background_runtime_from_sync_code() {
    let mock = ccgate_mock::start_background(MockConfig::default()).unwrap();
    let addr = mock.addr;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let resp = post(&format!("{}/v1/messages", mock.url()), &body(false)).await;
        assert_eq!(resp.status(), 200);
    });
    drop(mock);
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests() {
    let mock = start(MockConfig {
        chunks: 20,
        record: false,
        ..MockConfig::default()
    })
    .await
    .unwrap();
    let c = client();
    let url = format!("{}/v1/messages", mock.url());
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (c, url) = (c.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let text = c
                .post(&url)
                .json(&body(i % 2 == 0))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            if i % 2 == 0 {
                assert_eq!(text_of(&parse_sse(&text)), "Hello from the mock upstream.");
            } else {
                assert!(text.contains("Hello from the mock upstream."));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(mock.request_count(), 50);
    assert!(mock.requests().is_empty());
}

#[test]
fn binary_prints_listening_line() {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ccgate-mock"))
        .args(["--port", "0", "--config-json", r#"{"text":"bin"}"#])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let url = line
        .trim_end()
        .strip_prefix("ccgate-mock listening on http://127.0.0.1:")
        .expect("listening line");
    assert!(url.parse::<u16>().unwrap() > 0);
}
