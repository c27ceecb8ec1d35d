//! `/openai/v1/responses`: the OpenAI Responses API end to end, through the real `ccgate` binary and the mock
//! upstream (docs/responses.md): routes, answers streamed and not, tool calls (custom and namespaced), errors in the
//! Responses shape, budgets, the WebSocket refusal, a mid-stream failure, and the ledger's `protocol=responses`.

use crate::common::*;
use ccgate_mock::MockHandle;
use serde_json::{json, Value};
use std::time::Duration;

const MOCK_TEXT: &str = "Hello from the mock upstream.";

async fn post_responses(
    gw: &Gateway,
    path: &str,
    key: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}{path}", gw.url))
        .header("authorization", format!("Bearer {key}"))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn post(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    post_responses(gw, "/openai/v1/responses", TENANT_KEY, body, headers).await
}

async fn json_of(r: reqwest::Response) -> Value {
    let text = r.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `(event name, data)` of a Responses stream, read to its end within 20 s; every event's `type` matches its name
/// and sequence numbers count from 0.
async fn events(r: reqwest::Response) -> Vec<(String, Value)> {
    let text = tokio::time::timeout(Duration::from_secs(20), r.text())
        .await
        .expect("stream did not end in time")
        .unwrap();
    let ev: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|s| !s.trim().is_empty() && !s.starts_with(':'))
        .map(|s| {
            let (head, data) = s
                .split_once('\n')
                .unwrap_or_else(|| panic!("bad event {s:?}"));
            let name = head.strip_prefix("event: ").unwrap().to_owned();
            let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(v["type"], name.as_str(), "{text}");
            (name, v)
        })
        .collect();
    for (i, (_, v)) in ev.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64, "{text}");
    }
    ev
}

/// The Responses error shape `{"error":{"type","code","message","param"}}`; returns the error object.
fn assert_error(v: &Value) -> &Value {
    let e = &v["error"];
    for k in ["message", "type", "param", "code"] {
        assert!(e.get(k).is_some(), "error.{k} missing in {v}");
    }
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    e
}

fn upstream_bodies(m: &MockHandle) -> Vec<Value> {
    m.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/v1/messages"))
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn text_answers_on_both_paths_metered_as_responses() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let body = json!({"model": "gpt-4o", "instructions": "Be brief.", "input": "hello", "store": true,
        "metadata": {"run": "1"}, "max_output_tokens": 100});
    let r = post(&gw, &body, &[]).await;
    assert_eq!(r.status(), 200);
    let v = json_of(r).await;
    assert_eq!(v["object"], "response");
    assert_eq!(v["status"], "completed");
    assert!(v["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(v["model"], "gpt-4o");
    assert_eq!(v["metadata"], json!({"run": "1"}));
    assert_eq!(v["output"][0]["type"], "message");
    assert_eq!(v["output"][0]["content"][0]["text"], MOCK_TEXT);
    assert_eq!(v["usage"]["input_tokens"], 25);
    assert_eq!(v["usage"]["output_tokens"], 12);
    assert_eq!(v["usage"]["total_tokens"], 37);
    let up = &upstream_bodies(&m)[0];
    assert_eq!(up["model"], "claude-sonnet-4-6");
    assert_eq!(up["system"][0]["text"], "Be brief.");
    assert_eq!(up["max_tokens"], 100);

    let r = post_responses(&gw, "/openai/responses", TENANT_KEY, &body, &[]).await;
    assert_eq!(r.status(), 200);

    let rows = ledger_rows_at_least(&gw, 2).await;
    for row in &rows {
        assert_eq!(row["protocol"], "responses", "{row}");
        assert_eq!(row["endpoint"], "responses", "{row}");
        assert_eq!(row["model"], "gpt-4o");
        assert_eq!(row["input_tokens"], 25);
        assert_eq!(row["output_tokens"], 12);
        assert_eq!(row["status"], 200);
    }
}

#[tokio::test]
async fn streamed_answer_is_the_responses_event_sequence() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let body = json!({"model": "gpt-4o", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        "stream": true, "reasoning": {"effort": "low", "summary": "auto"}});
    let r = post(
        &gw,
        &body,
        &[("x-mock-chunks", "4"), ("x-mock-thinking", "true")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let ev = events(r).await;
    assert_eq!(ev[0].0, "response.created");
    assert_eq!(ev[1].0, "response.in_progress");
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, v)| v["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, MOCK_TEXT);
    assert!(
        ev.iter()
            .any(|(n, _)| n == "response.reasoning_summary_text.delta"),
        "{ev:?}"
    );
    let added = ev
        .iter()
        .filter(|(n, _)| n == "response.output_item.added")
        .count();
    let done = ev
        .iter()
        .filter(|(n, _)| n == "response.output_item.done")
        .count();
    assert_eq!(added, 2);
    assert_eq!(done, 2, "every item is closed");
    let (last, v) = ev.last().unwrap();
    assert_eq!(last, "response.completed");
    assert_eq!(v["response"]["id"], ev[0].1["response"]["id"]);
    assert_eq!(v["response"]["usage"]["input_tokens"], 25);
    assert_eq!(v["response"]["usage"]["total_tokens"], 37);
    assert_eq!(v["response"]["output"][0]["type"], "reasoning");
    assert!(v["response"]["output"][0]["encrypted_content"].is_string());
    // reasoning asked for: thinking went upstream.
    assert!(upstream_bodies(&m)[0].get("thinking").is_some());
    let rows = ledger_rows_at_least(&gw, 1).await;
    assert_eq!(rows[0]["protocol"], "responses");
    assert_eq!(rows[0]["stream"], 1);
    assert_eq!(rows[0]["output_tokens"], 12);
}

fn codex_tools() -> Value {
    json!([
        {"type": "function", "name": "exec_command", "strict": false,
         "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
        {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [
            {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}]},
        {"type": "custom", "name": "apply_patch", "description": "Edit files",
         "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}},
        {"type": "web_search", "external_web_access": false}
    ])
}

#[tokio::test]
async fn tool_calls_come_back_as_codex_needs_them() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let patch = "*** Begin Patch\n*** Update File: a.txt\n@@\n-old\n+new\n*** End Patch\n";
    for stream in [false, true] {
        let body =
            json!({"model": "gpt-4o", "input": "edit", "tools": codex_tools(), "stream": stream});
        let cfg = json!({"tool_mode": "always", "tool_name": "apply_patch", "tool_input": {"input": patch}}).to_string();
        let r = post(&gw, &body, &[("x-mock-config", &cfg)]).await;
        assert_eq!(r.status(), 200);
        let output = if stream {
            let ev = events(r).await;
            assert!(ev
                .iter()
                .any(|(n, v)| n == "response.custom_tool_call_input.done" && v["input"] == patch));
            let items: Vec<Value> = ev
                .iter()
                .filter(|(n, _)| n == "response.output_item.done")
                .map(|(_, v)| v["item"].clone())
                .collect();
            assert_eq!(
                Value::Array(items.clone()),
                ev.last().unwrap().1["response"]["output"]
            );
            items
        } else {
            json_of(r).await["output"].as_array().unwrap().clone()
        };
        let call = output
            .iter()
            .find(|i| i["type"] == "custom_tool_call")
            .expect("custom_tool_call");
        assert_eq!(call["name"], "apply_patch");
        assert_eq!(call["input"], patch);
        assert!(call["call_id"].as_str().is_some_and(|c| !c.is_empty()));

        let cfg = json!({"tool_mode": "always", "tool_name": "multi_agent_v1__spawn_agent", "tool_text": ""}).to_string();
        let r = post(&gw, &body, &[("x-mock-config", &cfg)]).await;
        let output = if stream {
            let ev = events(r).await;
            assert!(ev.iter().any(
                |(n, v)| n == "response.function_call_arguments.done" && v["arguments"] == "{}"
            ));
            ev.last().unwrap().1["response"]["output"]
                .as_array()
                .unwrap()
                .clone()
        } else {
            json_of(r).await["output"].as_array().unwrap().clone()
        };
        assert_eq!(output.len(), 1, "{output:?}");
        assert_eq!(output[0]["type"], "function_call");
        assert_eq!(output[0]["name"], "spawn_agent");
        assert_eq!(output[0]["namespace"], "multi_agent_v1");
        assert_eq!(output[0]["arguments"], "{}");
    }
    // Upstream, the tools are flattened, the custom tool takes one string, web_search is dropped.
    let up = &upstream_bodies(&m)[0];
    let names: Vec<&str> = up["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["exec_command", "multi_agent_v1__spawn_agent", "apply_patch"]
    );
    assert_eq!(
        up["tools"][2]["input_schema"]["properties"]["input"]["type"],
        "string"
    );

    // The round trip: Codex sends the call and its output back; the mock answers the tool result with text.
    let body = json!({"model": "gpt-4o", "tools": codex_tools(), "input": [
        {"type": "message", "role": "user", "content": "edit"},
        {"type": "custom_tool_call", "call_id": "toolu_1", "name": "apply_patch", "input": patch},
        {"type": "function_call", "call_id": "toolu_2", "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"},
        {"type": "custom_tool_call_output", "call_id": "toolu_1", "output": "Done!"},
        {"type": "function_call_output", "call_id": "toolu_2", "output": "ok"}
    ]});
    m.clear_requests();
    let r = post(&gw, &body, &[("x-mock-tool-mode", "auto")]).await;
    assert_eq!(r.status(), 200);
    // The mock echoes the first tool result it finds.
    assert_eq!(
        json_of(r).await["output"][0]["content"][0]["text"],
        "Tool result received: Done!"
    );
    let up = &upstream_bodies(&m)[0];
    assert_eq!(
        up["messages"][1]["content"][0]["input"],
        json!({"input": patch})
    );
    assert_eq!(up["messages"][2]["content"][0]["tool_use_id"], "toolu_1");
}

#[tokio::test]
async fn errors_are_in_the_responses_shape() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let body = json!({"model": "gpt-4o", "input": "hi"});

    let r = post_responses(&gw, "/openai/v1/responses", "wrong-key", &body, &[]).await;
    assert_eq!(r.status(), 401);
    assert_eq!(assert_error(&json_of(r).await)["code"], "invalid_api_key");

    let r = post(
        &gw,
        &json!({"model": "claude-opus-4-6", "input": "hi"}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(assert_error(&json_of(r).await)["code"], "model_not_allowed");

    let r = post(
        &gw,
        &json!({"model": "gpt-4o", "input": "hi", "previous_response_id": "resp_x"}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v = json_of(r).await;
    assert_eq!(assert_error(&v)["param"], "previous_response_id");

    let r = post(
        &gw,
        &json!({"model": "gpt-4o", "input": "hi", "tools": [{"type": "file_search"}]}),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v = json_of(r).await;
    assert!(assert_error(&v)["message"]
        .as_str()
        .unwrap()
        .contains("file_search"));
    assert_eq!(v["error"]["param"], "tools[0].type");

    let r = post(
        &gw,
        &body,
        &[
            ("x-mock-status", "400"),
            ("x-mock-error-message", "bad thing"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    let v = json_of(r).await;
    assert_eq!(assert_error(&v)["message"], "bad thing");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let r = post(&gw, &body, &[("x-mock-status", "529")]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(assert_error(&json_of(r).await)["code"], "overloaded");

    // Streamed, an overloaded upstream is a response.failed that Codex does not retry.
    let r = post(
        &gw,
        &json!({"model": "gpt-4o", "input": "hi", "stream": true}),
        &[("x-mock-status", "529")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let ev = events(r).await;
    assert_eq!(ev[0].0, "response.created");
    let (last, v) = ev.last().unwrap();
    assert_eq!(last, "response.failed");
    assert_eq!(v["response"]["error"]["code"], "server_is_overloaded");

    // Unknown route under /openai/v1/responses: a Responses-shaped 404.
    let r = client()
        .post(format!("{}/openai/v1/responses/x", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_error(&json_of(r).await);

    let rows = ledger_rows_at_least(&gw, 4).await;
    assert!(
        rows.iter().all(|r| r["protocol"] == "responses"),
        "{rows:?}"
    );
}

#[tokio::test]
async fn an_exhausted_budget_is_insufficient_quota_without_retry_hint() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.tenants["tenants"][0]["limits"] = json!({"daily": {"maxUSD": 0.0001}});
    let gw = Gateway::start(&files).await;
    let body = json!({"model": "gpt-4o", "input": "hi", "stream": true});
    let mut refusal = None;
    for _ in 0..4 {
        let r = post(&gw, &body, &[]).await;
        if r.status() != 200 {
            refusal = Some(r);
            break;
        }
        events(r).await;
    }
    let r = refusal.expect("the budget ran out");
    assert_eq!(r.status(), 429);
    assert!(
        r.headers().get("retry-after").is_none(),
        "Codex retries a 429 with Retry-After"
    );
    assert_eq!(r.headers()["x-should-retry"], "false");
    let v = json_of(r).await;
    assert_eq!(assert_error(&v)["code"], "insufficient_quota");
}

#[tokio::test]
async fn websocket_upgrade_is_refused_at_once() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    for path in ["/openai/v1/responses", "/openai/responses"] {
        let r = client()
            .get(format!("{}{path}", gw.url))
            .header("authorization", format!("Bearer {TENANT_KEY}"))
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("openai-beta", "responses_websockets=2026-02-06")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 426);
        let v = json_of(r).await;
        assert!(assert_error(&v)["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket"));
    }
    assert!(upstream_bodies(&m).is_empty());
}

#[tokio::test]
async fn a_mid_stream_failure_ends_with_response_failed_and_is_metered() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let body = json!({"model": "gpt-4o", "input": "hi", "stream": true});
    let r = post(
        &gw,
        &body,
        &[("x-mock-fail-after-events", "3"), ("x-mock-chunks", "5")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let ev = events(r).await;
    assert!(
        ev.iter().any(|(n, _)| n == "response.output_text.delta"),
        "{ev:?}"
    );
    let (last, v) = ev.last().unwrap();
    assert_eq!(last, "response.failed");
    assert_eq!(v["response"]["status"], "failed");
    assert_eq!(v["response"]["error"]["code"], "server_error");
    assert!(!ev.iter().any(|(n, _)| n == "response.completed"));
    let rows = ledger_rows_at_least(&gw, 1).await;
    assert_eq!(rows[0]["protocol"], "responses");
    assert_eq!(rows[0]["input_tokens"], 25, "metered with what was seen");
    assert_ne!(rows[0]["outcome"], "ok");
}
