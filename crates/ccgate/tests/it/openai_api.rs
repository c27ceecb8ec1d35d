//! `/openai`: the OpenAI Chat Completions endpoint end to end, through the real `ccgate` binary and the mock
//! upstream (docs/protocols.md §3–§6): routes and models, model resolution and the allow-list, response shapes,
//! streaming (text, tools, usage, mid-stream failure), error translation, metering and CORS.

use crate::common::*;
use ccgate_mock::MockHandle;
use serde_json::{json, Value};
use std::time::Duration;

const MOCK_TEXT: &str = "Hello from the mock upstream.";

/// `Files::new` plus an alias to a model t1 may not use.
fn files_with_opus_alias(m: &MockHandle) -> Files {
    let mut f = Files::new(&[m.url()]);
    f.server["openai"]["models"]["gpt-big"] = json!("claude-opus-4-6");
    f
}

fn chat_body(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// Requests the mock received on its messages route.
fn upstream_messages(m: &MockHandle) -> Vec<ccgate_mock::RecordedRequest> {
    m.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/v1/messages"))
        .collect()
}

/// Asserts the OpenAI error shape `{"error":{"message","type","param","code"}}` and returns the error object.
fn assert_openai_error(v: &Value) -> &Value {
    let e = &v["error"];
    let obj = e
        .as_object()
        .unwrap_or_else(|| panic!("not an OpenAI error: {v}"));
    for k in ["message", "type", "param", "code"] {
        assert!(obj.contains_key(k), "error.{k} missing in {v}");
    }
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error.message: {v}"
    );
    assert!(e["type"].is_string(), "error.type: {v}");
    assert!(
        v.get("type").is_none(),
        "Anthropic-shaped error on /openai: {v}"
    );
    e
}

async fn json_of(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Reads a streamed response to the end within `secs` (a hanging stream fails the test).
async fn stream_text(r: reqwest::Response, secs: u64) -> String {
    tokio::time::timeout(Duration::from_secs(secs), r.text())
        .await
        .expect("stream did not end in time")
        .unwrap()
}

async fn get_models(gw: &Gateway, path: &str, key: &str) -> reqwest::Response {
    client()
        .get(format!("{}{path}", gw.url))
        .header("authorization", format!("Bearer {key}"))
        .send()
        .await
        .unwrap()
}

fn model_ids(v: &Value) -> Vec<String> {
    v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn routes_models_list_and_auth() {
    let m = mock().await;
    let gw = Gateway::start(&files_with_opus_alias(&m)).await;

    for path in ["/openai/v1/models", "/openai/models"] {
        let r = get_models(&gw, path, TENANT_KEY).await;
        assert_eq!(r.status(), 200, "{path}");
        let v = json_of(r).await;
        assert_eq!(v["object"], "list");
        for item in v["data"].as_array().unwrap() {
            assert_eq!(item["object"], "model", "{item}");
            assert!(item["created"].is_i64(), "{item}");
            assert!(item["owned_by"].is_string(), "{item}");
        }
        let ids = model_ids(&v);
        assert!(ids.contains(&"gpt-4o".to_string()), "alias listed: {ids:?}");
        assert!(ids.contains(&"claude-sonnet-4-6".to_string()), "{ids:?}");
        assert!(
            ids.contains(&"claude-haiku-4-5-20251001".to_string()),
            "{ids:?}"
        );
        assert!(
            !ids.iter().any(|i| i.contains("opus")),
            "t1 must not see opus: {ids:?}"
        );
        assert!(
            !ids.contains(&"gpt-big".to_string()),
            "alias to opus hidden from t1: {ids:?}"
        );
        let gpt = v["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == "gpt-4o")
            .unwrap();
        assert_eq!(gpt["owned_by"], "ccgate");
    }
    let v = json_of(get_models(&gw, "/openai/v1/models", TENANT2_KEY).await).await;
    let ids = model_ids(&v);
    assert!(
        ids.contains(&"claude-opus-4-6".to_string()) && ids.contains(&"gpt-big".to_string()),
        "t2 sees all: {ids:?}"
    );

    // Bad key: 401 invalid_api_key, OpenAI-shaped, on both models and chat.
    let r = get_models(&gw, "/openai/v1/models", "wrong-key").await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        assert_openai_error(&json_of(r).await)["code"],
        "invalid_api_key"
    );
    let r = client()
        .get(format!("{}/openai/v1/models", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no key at all");

    // Chat on both paths, Bearer key.
    for path in ["/openai/v1/chat/completions", "/openai/chat/completions"] {
        let r = client()
            .post(format!("{}{path}", gw.url))
            .header("authorization", format!("Bearer {TENANT_KEY}"))
            .json(&chat_body("gpt-4o", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v = json_of(r).await;
        assert_eq!(v["choices"][0]["message"]["content"], MOCK_TEXT, "{path}");
    }
    assert_eq!(upstream_messages(&m).len(), 2);
}

#[tokio::test]
async fn disabled_endpoint_answers_404_in_openai_shape() {
    let m = mock().await;
    let mut f = Files::new(&[m.url()]);
    f.server["openai"]["enabled"] = json!(false);
    let gw = Gateway::start(&f).await;
    for path in ["/openai/v1/models", "/openai/models"] {
        let r = get_models(&gw, path, TENANT_KEY).await;
        assert_eq!(r.status(), 404, "{path}");
        assert_openai_error(&json_of(r).await);
    }
    for path in ["/openai/v1/chat/completions", "/openai/chat/completions"] {
        let r = client()
            .post(format!("{}{path}", gw.url))
            .header("authorization", format!("Bearer {TENANT_KEY}"))
            .json(&chat_body("gpt-4o", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{path}");
        assert_openai_error(&json_of(r).await);
    }
    assert!(upstream_messages(&m).is_empty());
    // The Anthropic side keeps working.
    assert_eq!(
        post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn model_resolution_and_allow_list_on_the_resolved_model() {
    let m = mock().await;
    let gw = Gateway::start(&files_with_opus_alias(&m)).await;
    // (asked, expected upstream model)
    let cases = [
        ("gpt-4o", "claude-sonnet-4-6"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5-20251001"),
        ("gpt-3.5-turbo-unknown", "claude-sonnet-4-6"),
    ];
    for (asked, upstream_model) in cases {
        m.clear_requests();
        let r = post_chat(&gw, TENANT_KEY, &chat_body(asked, false), &[]).await;
        assert_eq!(r.status(), 200, "{asked}");
        let v = json_of(r).await;
        assert_eq!(v["model"], asked, "the client's name is echoed");
        let reqs = upstream_messages(&m);
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].json()["model"], upstream_model, "{asked}");
        assert_eq!(reqs[0].header("x-api-key"), Some(UPSTREAM_KEY));
        assert!(
            reqs[0].header("authorization").is_none(),
            "tenant Bearer key must not go upstream"
        );
    }

    // The allow-list applies to the resolved model: an alias of opus is refused for t1, before any upstream call.
    m.clear_requests();
    for asked in ["gpt-big", "claude-opus-4-6"] {
        let r = post_chat(&gw, TENANT_KEY, &chat_body(asked, false), &[]).await;
        assert_eq!(r.status(), 403, "{asked}");
        let v = json_of(r).await;
        let e = assert_openai_error(&v);
        assert_eq!(e["type"], "permission_error");
        assert!(
            e["message"].as_str().unwrap().contains("claude-opus-4-6"),
            "{v}"
        );
    }
    assert!(
        upstream_messages(&m).is_empty(),
        "refused requests must not reach the upstream"
    );
    // t2 may use it.
    let r = post_chat(&gw, TENANT2_KEY, &chat_body("gpt-big", false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream_messages(&m)[0].json()["model"], "claude-opus-4-6");
}

#[tokio::test]
async fn non_streaming_shape_usage_and_metering() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let before = chrono::Utc::now().timestamp();
    let usage_headers = [
        ("x-mock-input-tokens", "100"),
        ("x-mock-cache-creation-input-tokens", "20"),
        ("x-mock-cache-read-input-tokens", "300"),
        ("x-mock-output-tokens", "7"),
    ];
    let r = post_chat(&gw, TENANT_KEY, &chat_body("gpt-4o", false), &usage_headers).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(r.headers().get("x-request-id").is_some());
    let v = json_of(r).await;
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
    assert_eq!(v["object"], "chat.completion");
    let created = v["created"].as_i64().unwrap();
    assert!(
        created >= before - 1 && created <= chrono::Utc::now().timestamp() + 1,
        "created {created}"
    );
    assert_eq!(v["model"], "gpt-4o");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], MOCK_TEXT);
    assert!(choice["message"].get("tool_calls").is_none());
    assert_eq!(choice["finish_reason"], "stop");
    let u = &v["usage"];
    assert_eq!(
        u["prompt_tokens"], 420,
        "input + cache writes + cache reads: {u}"
    );
    assert_eq!(u["completion_tokens"], 7);
    assert_eq!(u["total_tokens"], 427);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 300);

    // The upstream got a proper Anthropic request.
    let up = upstream_messages(&m)[0].json();
    assert_eq!(
        up["messages"],
        json!([{"role": "user", "content": "hello"}])
    );
    assert!(
        up["max_tokens"].as_u64().unwrap() > 0,
        "max_tokens is required upstream: {up}"
    );

    // Tools, non-streaming: tool_calls with arguments as a JSON string, finish_reason tool_calls.
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "run it"}],
        "tools": [{"type": "function", "function": {"name": "Bash", "parameters": {"type": "object",
            "properties": {"command": {"type": "string"}}}}}]});
    let v = json_of(post_chat(&gw, TENANT_KEY, &body, &[("x-mock-tool-mode", "auto")]).await).await;
    let msg = &v["choices"][0]["message"];
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls", "{v}");
    assert_eq!(msg["tool_calls"][0]["type"], "function");
    assert_eq!(msg["tool_calls"][0]["function"]["name"], "Bash");
    assert!(msg["tool_calls"][0]["id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let args: Value = serde_json::from_str(
        msg["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(args["command"], "echo mock-tool-ok");

    // Metering: raw Anthropic fields in the ledger, protocol openai, a cost; /usage counts both.
    let usage = wait_requests(&gw, 2).await;
    let rows = ledger_rows(&gw).await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row["protocol"], "openai", "{row}");
    assert_eq!(row["endpoint"], "chat_completions");
    assert_eq!(row["tenant_id"], "t1");
    assert_eq!(row["model"], "gpt-4o");
    assert_eq!(row["upstream_model"], "claude-sonnet-4-6");
    assert_eq!(row["stream"], 0);
    assert_eq!(row["status"], 200);
    assert_eq!(row["outcome"], "ok");
    assert_eq!(row["input_tokens"], 100);
    assert_eq!(
        row["cache_write_5m_tokens"].as_i64().unwrap()
            + row["cache_write_1h_tokens"].as_i64().unwrap(),
        20
    );
    assert_eq!(row["cache_read_tokens"], 300);
    assert_eq!(row["output_tokens"], 7);
    assert!(row["cost_nanousd"].as_i64().unwrap() > 0, "{row}");
    assert_eq!(usage["totals"]["requests"], 2, "{usage}");
}

/// Parses the chunks of an OpenAI stream; asserts the `[DONE]` terminator and the per-chunk invariants.
fn parse_chunks(text: &str) -> Vec<Value> {
    let data = sse_data(text);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "stream must end with [DONE]:\n{text}"
    );
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], chunks[0]["id"], "id is fixed for the stream");
        assert_eq!(
            c["created"], chunks[0]["created"],
            "created is fixed for the stream"
        );
        assert!(c.get("error").is_none(), "{c}");
    }
    assert!(chunks[0]["id"].as_str().unwrap().starts_with("chatcmpl-"));
    chunks
}

#[tokio::test]
async fn streaming_text_with_include_usage() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let mut body = chat_body("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});
    let headers = [
        ("x-mock-chunks", "5"),
        ("x-mock-input-tokens", "40"),
        ("x-mock-cache-read-input-tokens", "60"),
        ("x-mock-output-tokens", "9"),
    ];
    let r = post_chat(&gw, TENANT_KEY, &body, &headers).await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let text = stream_text(r, 15).await;
    assert!(
        !text.lines().any(|l| l.starts_with("event:")),
        "no event: names in OpenAI SSE:\n{text}"
    );
    let chunks = parse_chunks(&text);
    for c in &chunks {
        assert_eq!(c["model"], "gpt-4o");
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"]["role"], "assistant",
        "first chunk carries the role"
    );
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(content, MOCK_TEXT);
    let n_content = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
        })
        .count();
    assert!(
        n_content >= 5,
        "5 upstream deltas → at least 5 content chunks, got {n_content}"
    );

    let (usage_chunk, rest) = chunks.split_last().unwrap();
    let finish = rest.last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    for c in rest {
        assert!(
            c.get("usage").is_some_and(Value::is_null),
            "earlier chunks carry usage: null: {c}"
        );
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    for c in &rest[..rest.len() - 1] {
        assert!(c["choices"][0]["finish_reason"].is_null(), "{c}");
    }
    assert_eq!(usage_chunk["choices"], json!([]), "{usage_chunk}");
    let u = &usage_chunk["usage"];
    assert_eq!(u["prompt_tokens"], 100, "{u}");
    assert_eq!(u["completion_tokens"], 9);
    assert_eq!(u["total_tokens"], 109);
    assert_eq!(u["prompt_tokens_details"]["cached_tokens"], 60);

    // Without include_usage: no usage chunk, no usage key.
    let r = post_chat(&gw, TENANT_KEY, &chat_body("gpt-4o", true), &[]).await;
    let chunks = parse_chunks(&stream_text(r, 15).await);
    assert!(chunks
        .iter()
        .all(|c| c.get("usage").is_none() && !c["choices"].as_array().unwrap().is_empty()));
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );

    // Metered as a stream, raw fields kept.
    wait_requests(&gw, 2).await;
    let rows = ledger_rows(&gw).await;
    assert_eq!(rows[0]["stream"], 1);
    assert_eq!(rows[0]["protocol"], "openai");
    assert_eq!(rows[0]["input_tokens"], 40);
    assert_eq!(rows[0]["cache_read_tokens"], 60);
    assert_eq!(rows[0]["output_tokens"], 9);
    assert_eq!(rows[0]["outcome"], "ok");
    assert_eq!(rows[1]["outcome"], "ok");
    assert!(rows[0]["cost_nanousd"].as_i64().unwrap() > 0);
}

fn tools_body() -> Value {
    json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "list the files"}],
        "tools": [
            {"type": "function", "function": {"name": "Bash", "description": "Run a command",
                "parameters": {"type": "object", "properties": {"command": {"type": "string"},
                    "description": {"type": "string"}}, "required": ["command"]}}},
            {"type": "function", "function": {"name": "get_time", "description": "Current time"}}]})
}

/// The `tool_calls` delta entries of a stream, in order.
fn tool_call_deltas(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flat_map(|a| a.iter().cloned())
        .collect()
}

#[tokio::test]
async fn streaming_tool_calls() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;

    // The mock answers with a text block, then a Bash tool_use whose input arrives in 3 fragments.
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &tools_body(),
        &[("x-mock-tool-mode", "auto")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let chunks = parse_chunks(&stream_text(r, 15).await);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(content, MOCK_TEXT, "text before the tool call is kept");
    let deltas = tool_call_deltas(&chunks);
    assert!(
        deltas.len() >= 2,
        "first fragment + argument fragments: {deltas:?}"
    );
    assert!(
        deltas.iter().all(|d| d["index"] == 0),
        "one call → index 0 even after a text block: {deltas:?}"
    );
    let first = &deltas[0];
    assert!(
        first["id"].as_str().is_some_and(|s| !s.is_empty()),
        "{first}"
    );
    assert_eq!(first["type"], "function");
    assert_eq!(first["function"]["name"], "Bash");
    for d in &deltas[1..] {
        assert!(
            d.get("id").is_none() && d.get("type").is_none(),
            "id/type only on the first fragment: {d}"
        );
        assert!(
            d["function"].get("name").is_none(),
            "name only on the first fragment: {d}"
        );
    }
    let args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect::<Vec<_>>()
        .concat();
    let parsed: Value =
        serde_json::from_str(&args).unwrap_or_else(|e| panic!("arguments {args:?}: {e}"));
    assert_eq!(
        parsed,
        json!({"command": "echo mock-tool-ok", "description": "Print a marker"})
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(chunks.last().unwrap()["choices"], json!([]));

    // The upstream saw the tools in Anthropic form; the no-parameter tool got an object schema.
    let up = upstream_messages(&m)[0].json();
    assert_eq!(up["tools"][0]["name"], "Bash");
    assert_eq!(
        up["tools"][0]["input_schema"]["required"],
        json!(["command"])
    );
    assert_eq!(up["tools"][1]["input_schema"]["type"], "object");

    // A tool without arguments streams no fragment upstream: the client still gets "{}".
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &tools_body(),
        &[
            ("x-mock-tool-mode", "auto"),
            ("x-mock-tool-name", "get_time"),
            ("x-mock-tool-text", ""),
        ],
    )
    .await;
    let chunks = parse_chunks(&stream_text(r, 15).await);
    let deltas = tool_call_deltas(&chunks);
    assert_eq!(deltas[0]["index"], 0);
    assert_eq!(deltas[0]["function"]["name"], "get_time");
    let args: String = deltas
        .iter()
        .filter_map(|d| d["function"]["arguments"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(args, "{}");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls"
    );

    // The round trip: the tool result goes back as a tool message; the mock acknowledges it.
    let call_id = deltas[0]["id"].as_str().unwrap().to_string();
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [
        {"role": "user", "content": "what time is it"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": call_id, "type": "function",
            "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "12:00"}],
        "tools": tools_body()["tools"].clone()});
    let r = post_chat(&gw, TENANT_KEY, &body, &[("x-mock-tool-mode", "auto")]).await;
    assert_eq!(r.status(), 200);
    let chunks = parse_chunks(&stream_text(r, 15).await);
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect::<Vec<_>>()
        .concat();
    assert_eq!(content, "Tool result received: 12:00");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    let up = upstream_messages(&m).last().unwrap().json();
    let last = &up["messages"][2];
    assert_eq!(last["role"], "user");
    assert_eq!(last["content"][0]["type"], "tool_result");
    assert_eq!(last["content"][0]["tool_use_id"], call_id.as_str());
}

/// The last `data:` payload of an interrupted stream must be an OpenAI error object.
fn assert_error_ending(text: &str) -> Value {
    let data = sse_data(text);
    assert!(
        !data.iter().any(|d| d == "[DONE]"),
        "no [DONE] after a failure:\n{text}"
    );
    let last: Value = serde_json::from_str(data.last().expect("some data")).unwrap();
    assert_openai_error(&last);
    last
}

#[tokio::test]
async fn upstream_failure_mid_stream() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let mut body = chat_body("gpt-4o", true);
    body["stream_options"] = json!({"include_usage": true});

    // Connection dropped after 3 events (message_start, content_block_start, one delta).
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &body,
        &[("x-mock-fail-after-events", "3"), ("x-mock-chunks", "5")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let text = stream_text(r, 20).await;
    let data = sse_data(&text);
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    assert_eq!(first["choices"][0]["delta"]["role"], "assistant");
    assert!(
        text.contains("\"content\""),
        "the delta before the break was delivered:\n{text}"
    );
    let err = assert_error_ending(&text);
    assert_eq!(err["error"]["type"], "server_error");

    // An in-stream Anthropic `error` event.
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &body,
        &[
            ("x-mock-fail-after-events", "3"),
            ("x-mock-chunks", "5"),
            ("x-mock-break-mode", "error_event"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let err = assert_error_ending(&stream_text(r, 20).await);
    assert_eq!(err["error"]["message"], "Overloaded");

    // Both are metered as upstream errors, and the gateway still serves.
    wait_requests(&gw, 2).await;
    let rows = ledger_rows(&gw).await;
    for row in &rows {
        assert_eq!(row["protocol"], "openai");
        assert_eq!(row["outcome"], "upstream_error", "{row}");
        assert_eq!(row["input_tokens"], 25, "what was seen is metered: {row}");
    }
    let r = post_chat(&gw, TENANT_KEY, &chat_body("gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn bad_requests_are_400_and_never_reach_the_upstream() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let big_image = format!("data:image/png;base64,{}", "A".repeat(7_400_000));
    let cases: Vec<(&str, String)> = vec![
        ("malformed JSON", r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}"#.into()),
        ("not an object", "[1,2]".into()),
        ("messages not an array", json!({"model": "gpt-4o", "messages": "hello"}).to_string()),
        ("model not a string", json!({"model": 4, "messages": [{"role": "user", "content": "hi"}]}).to_string()),
        (
            "max_tokens not a number",
            json!({"model": "gpt-4o", "max_tokens": "many", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ),
        ("empty messages", json!({"model": "gpt-4o", "messages": []}).to_string()),
        (
            "tool message with unknown tool_call_id",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_nope", "content": "x"}]})
            .to_string(),
        ),
        (
            "unsupported content part",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]})
            .to_string(),
        ),
        (
            "oversized image data URL",
            json!({"model": "gpt-4o", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": big_image}}]}]})
            .to_string(),
        ),
        ("n > 1", json!({"model": "gpt-4o", "n": 2, "messages": [{"role": "user", "content": "hi"}]}).to_string()),
    ];
    // The `param` each error blames (the rule that fired), for the cases with one.
    let params: [(&str, Option<&str>); 10] = [
        ("malformed JSON", None),
        ("not an object", None),
        ("messages not an array", Some("messages")),
        ("model not a string", Some("model")),
        ("max_tokens not a number", Some("max_tokens")),
        ("empty messages", Some("messages")),
        (
            "tool message with unknown tool_call_id",
            Some("messages[1].tool_call_id"),
        ),
        (
            "unsupported content part",
            Some("messages[0].content[0].type"),
        ),
        (
            "oversized image data URL",
            Some("messages[0].content[1].image_url.url"),
        ),
        ("n > 1", Some("n")),
    ];
    for (name, body) in cases {
        let r = client()
            .post(format!("{}/openai/v1/chat/completions", gw.url))
            .header("authorization", format!("Bearer {TENANT_KEY}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
        let v = json_of(r).await;
        let e = assert_openai_error(&v);
        assert_eq!(e["type"], "invalid_request_error", "{name}: {v}");
        let want = params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .unwrap();
        assert_eq!(
            e["param"],
            want.map_or(Value::Null, Value::from),
            "{name}: {v}"
        );
    }
    assert_eq!(
        m.requests().len(),
        0,
        "no bad request may reach the upstream: {:?}",
        m.requests()
    );
    // A bad key is refused before the body is even looked at.
    let r = post_chat(&gw, "nope", &chat_body("gpt-4o", false), &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        assert_openai_error(&json_of(r).await)["code"],
        "invalid_api_key"
    );
    assert_eq!(m.requests().len(), 0);
}

#[tokio::test]
async fn upstream_errors_are_translated() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;

    // 400: the upstream's message reaches the client.
    let msg = "messages.0.content: custom upstream complaint";
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &chat_body("gpt-4o", false),
        &[("x-mock-status", "400"), ("x-mock-error-message", msg)],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v = json_of(r).await;
    let e = assert_openai_error(&v);
    assert_eq!(e["type"], "invalid_request_error");
    assert_eq!(e["message"], msg);
    assert_eq!(
        upstream_messages(&m).len(),
        1,
        "a tenant-caused 400 is not retried"
    );

    // "prompt is too long" → context_length_exceeded.
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &chat_body("gpt-4o", false),
        &[
            ("x-mock-status", "400"),
            (
                "x-mock-error-message",
                "prompt is too long: 250000 tokens > 200000 maximum",
            ),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(json_of(r).await["error"]["code"], "context_length_exceeded");

    // 529 → 503 (failover ran out on the single upstream; its error is returned).
    m.clear_requests();
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &chat_body("gpt-4o", false),
        &[("x-mock-status", "529")],
    )
    .await;
    assert_eq!(r.status(), 503);
    let v = json_of(r).await;
    assert_eq!(assert_openai_error(&v)["type"], "server_error");
    assert_eq!(upstream_messages(&m).len(), 1);

    // 429 → 429 rate_limit_exceeded, retry-after kept.
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &chat_body("gpt-4o", false),
        &[("x-mock-status", "429"), ("x-mock-retry-after", "7")],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let v = json_of(r).await;
    assert_eq!(assert_openai_error(&v)["code"], "rate_limit_exceeded");

    // The same on a streaming request: the error comes before any byte, with the real status.
    let r = post_chat(
        &gw,
        TENANT_KEY,
        &chat_body("gpt-4o", true),
        &[("x-mock-status", "429")],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        assert_openai_error(&json_of(r).await)["code"],
        "rate_limit_exceeded"
    );

    // Errors are metered too.
    let usage = wait_requests(&gw, 5).await;
    assert_eq!(usage["totals"]["requests"], 5);
    let rows = ledger_rows(&gw).await;
    assert!(rows
        .iter()
        .all(|r| r["protocol"] == "openai" && r["endpoint"] == "chat_completions"));
}

async fn preflight(gw: &Gateway, path: &str, origin: &str) -> reqwest::Response {
    client()
        .request(reqwest::Method::OPTIONS, format!("{}{path}", gw.url))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap()
}

fn allow_origin(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_string())
}

fn has_cors(r: &reqwest::Response) -> bool {
    r.headers()
        .keys()
        .any(|k| k.as_str().starts_with("access-control-"))
}

#[tokio::test]
async fn cors_headers_on_tenant_routes_only() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let origin = "https://chat.example";

    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("origin", origin)
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .json(&chat_body("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r).as_deref(), Some("*"));
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("origin", origin)
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .json(&chat_body("gpt-4o", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r).as_deref(), Some("*"), "streams too");
    let r = client()
        .get(format!("{}/openai/v1/models", gw.url))
        .header("origin", origin)
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(allow_origin(&r).as_deref(), Some("*"));
    // Errors carry it too, or the browser hides them from the page.
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw.url))
        .header("origin", origin)
        .header("authorization", "Bearer wrong")
        .json(&chat_body("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(allow_origin(&r).as_deref(), Some("*"));

    // Never on /usage and /health, preflight or not.
    let r = client()
        .get(format!("{}/health", gw.url))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    assert!(!has_cors(&r), "{:?}", r.headers());
    let r = client()
        .post(format!("{}/usage", gw.url))
        .header("origin", origin)
        .json(&json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!has_cors(&r), "{:?}", r.headers());
    for path in ["/usage", "/health"] {
        let r = preflight(&gw, path, origin).await;
        assert!(!has_cors(&r), "{path}: {:?}", r.headers());
        assert_ne!(r.status(), 204, "{path}");
    }

    // Restricted to one origin: that origin gets its own name back, others get nothing.
    let mut f = Files::new(&[m.url()]);
    f.server["server"]["cors"] = json!({"origins": ["https://app.example"]});
    let gw2 = Gateway::start(&f).await;
    let r = preflight(&gw2, "/openai/v1/chat/completions", "https://evil.example").await;
    assert_ne!(r.status(), 204);
    assert_eq!(allow_origin(&r), None);
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw2.url))
        .header("origin", "https://evil.example")
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .json(&chat_body("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r), None);
    let r = client()
        .post(format!("{}/openai/v1/chat/completions", gw2.url))
        .header("origin", "https://app.example")
        .header("authorization", format!("Bearer {TENANT_KEY}"))
        .json(&chat_body("gpt-4o", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(allow_origin(&r).as_deref(), Some("https://app.example"));
}

/// Browsers send a preflight before every cross-origin POST with `authorization`: without a 204 here, NextChat's
/// web build cannot call `/openai` at all.
#[tokio::test]
async fn cors_preflight() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    for path in [
        "/openai/v1/chat/completions",
        "/openai/chat/completions",
        "/openai/v1/models",
        "/anthropic/v1/messages",
    ] {
        let r = preflight(&gw, path, "https://chat.example").await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(allow_origin(&r).as_deref(), Some("*"), "{path}");
        let methods = r.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let allowed = r.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{allowed}"
        );
    }
    assert!(
        upstream_messages(&m).is_empty(),
        "a preflight is answered by CCGate"
    );

    let mut f = Files::new(&[m.url()]);
    f.server["server"]["cors"] = json!({"origins": ["https://app.example"]});
    let gw2 = Gateway::start(&f).await;
    let r = preflight(&gw2, "/openai/v1/chat/completions", "https://app.example").await;
    assert_eq!(r.status(), 204);
    assert_eq!(allow_origin(&r).as_deref(), Some("https://app.example"));
    let r = preflight(&gw2, "/openai/v1/chat/completions", "https://evil.example").await;
    assert_ne!(r.status(), 204);
    assert_eq!(allow_origin(&r), None);
}
