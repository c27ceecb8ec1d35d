//! Golden tests: Anthropic non-streaming response → OpenAI chat.completion (docs/protocols.md §5.1–5.4).

mod common;

use ccgate_meter::Usage;
use ccgate_openai::{translate_response, ResponseContext};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn ctx() -> ResponseContext {
    ResponseContext {
        client_model: "gpt-4o".into(),
        expose_reasoning: true,
        ..ResponseContext::default()
    }
}

fn run(body: Value, usage: &Usage, ctx: &ResponseContext) -> Value {
    let out = translate_response(body.to_string().as_bytes(), usage, ctx, 1764223000).unwrap();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn spec_example_thinking_text_tool() {
    let body = json!({"id":"msg_01XF","type":"message","role":"assistant","model":"claude-sonnet-4-6",
        "content":[{"type":"thinking","thinking":"Let me think.","signature":"sig"},
                   {"type":"text","text":"I'll look that up."},
                   {"type":"tool_use","id":"toolu_01A0","name":"get_weather","input":{"city":"Paris"}}],
        "stop_reason":"tool_use","stop_sequence":null,
        "usage":{"input_tokens":21,"cache_creation_input_tokens":1890,"cache_read_input_tokens":10240,"output_tokens":412}});
    let mut u = usage(21, 1890, 10240, 412);
    u.thinking_tokens = Some(300);
    let v = run(body, &u, &ctx());
    assert_eq!(
        v,
        json!({"id":"chatcmpl-msg_01XF","object":"chat.completion","created":1764223000,"model":"gpt-4o",
            "choices":[{"index":0,"message":{"role":"assistant","content":"I'll look that up.",
                "reasoning_content":"Let me think.",
                "thinking_blocks":[{"type":"thinking","thinking":"Let me think.","signature":"sig"}],
                "tool_calls":[{"id":"toolu_01A0","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}],
                "refusal":null},
              "logprobs":null,"finish_reason":"tool_calls"}],
            "usage":{"prompt_tokens":12151,"completion_tokens":412,"total_tokens":12563,
              "prompt_tokens_details":{"cached_tokens":10240,"cache_write_tokens":1890},
              "completion_tokens_details":{"reasoning_tokens":300}}})
    );
}

#[test]
fn reasoning_hidden_unless_opted_in() {
    let body = json!({"id":"m","content":[{"type":"thinking","thinking":"secret","signature":"s"},{"type":"text","text":"hi"}],"stop_reason":"end_turn"});
    let mut c = ctx();
    c.expose_reasoning = false;
    let v = run(body, &Usage::default(), &c);
    let msg = &v["choices"][0]["message"];
    assert!(msg.get("reasoning_content").is_none());
    assert!(msg.get("thinking_blocks").is_none());
    assert_eq!(msg["content"], "hi");
}

#[test]
fn all_text_blocks_concatenated_and_null_without_text() {
    let body = json!({"id":"m","content":[{"type":"text","text":"a"},
        {"type":"server_tool_use","id":"srvtoolu_1","name":"web_search","input":{"query":"x"}},
        {"type":"web_search_tool_result","tool_use_id":"srvtoolu_1","content":[]},
        {"type":"text","text":"b"}],"stop_reason":"end_turn"});
    let v = run(body, &Usage::default(), &ctx());
    assert_eq!(v["choices"][0]["message"]["content"], "ab");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"].get("completion_tokens_details").is_none());

    let body = json!({"id":"m","content":[{"type":"thinking","thinking":"…","signature":"s"}],"stop_reason":"max_tokens"});
    let v = run(body, &Usage::default(), &ctx());
    assert_eq!(v["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
}

#[test]
fn tool_use_stop_without_calls_is_stop() {
    let body = json!({"id":"m","content":[{"type":"text","text":"x"}],"stop_reason":"tool_use"});
    assert_eq!(
        run(body, &Usage::default(), &ctx())["choices"][0]["finish_reason"],
        "stop"
    );
    let body = json!({"id":"m","content":[{"type":"text","text":"no"}],"stop_reason":"refusal"});
    assert_eq!(
        run(body, &Usage::default(), &ctx())["choices"][0]["finish_reason"],
        "content_filter"
    );
}

#[test]
fn names_restored_and_json_tool_unwrapped() {
    let mut c = ctx();
    c.tool_names = BTreeMap::from([("fs_read_1234abcd".to_owned(), "fs/read".to_owned())]);
    c.json_tool = Some("json_response".into());
    let body = json!({"id":"m","content":[
        {"type":"tool_use","id":"t1","name":"fs_read_1234abcd","input":{}},
        {"type":"tool_use","id":"t2","name":"plain","input":null}],"stop_reason":"tool_use"});
    let v = run(body, &Usage::default(), &c);
    let calls = &v["choices"][0]["message"]["tool_calls"];
    assert_eq!(
        calls[0]["function"],
        json!({"name":"fs/read","arguments":"{}"})
    );
    assert_eq!(
        calls[1]["function"],
        json!({"name":"plain","arguments":"{}"})
    );

    let body = json!({"id":"m","content":[{"type":"tool_use","id":"t","name":"json_response","input":{"a":"b"}}],"stop_reason":"tool_use"});
    let v = run(body, &Usage::default(), &c);
    assert_eq!(v["choices"][0]["message"]["content"], "{\"a\":\"b\"}");
    assert!(v["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
}

#[test]
fn end_to_end_names_round_trip() {
    let t = tr(
        &json!({"model":"gpt-4o","messages":[{"role":"user","content":"x"}],
            "tools":[{"type":"function","function":{"name":"mcp.fs/read"}}]}),
        caps_adaptive(),
    )
    .unwrap();
    let sent: Value = serde_json::from_slice(&t.body).unwrap();
    let upstream = sent["tools"][0]["name"].as_str().unwrap().to_owned();
    let body = json!({"id":"m","content":[{"type":"tool_use","id":"t","name":upstream,"input":{"p":"/"}}],"stop_reason":"tool_use"});
    let v = run(body, &Usage::default(), &t.response_ctx);
    assert_eq!(
        v["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "mcp.fs/read"
    );
    assert_eq!(v["model"], "claude-sonnet-4-6");
}

#[test]
fn unreadable_bodies_are_errors() {
    let c = ctx();
    assert!(translate_response(b"nope", &Usage::default(), &c, 0).is_err());
    assert!(translate_response(b"{}", &Usage::default(), &c, 0).is_err());
    assert!(
        translate_response(br#"{"type":"error","error":{}}"#, &Usage::default(), &c, 0).is_err()
    );
}
