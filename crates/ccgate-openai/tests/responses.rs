//! The Responses API translation (docs/responses.md): golden requests and answers both ways, and the
//! streaming state machine under arbitrary chunking.

mod common;

use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::StreamMeter;
use ccgate_meter::Usage;
use ccgate_openai::responses::{
    parse_responses_request, translate_responses_response, ResponsesContext, ResponsesStream,
    TranslatedResponses,
};
use ccgate_openai::TranslateError;
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn translate(body: &Value) -> Result<TranslatedResponses, TranslateError> {
    parse_responses_request(body.to_string().as_bytes())?.translate(&opts(caps_adaptive()))
}

fn anth_of(body: &Value) -> (Value, ResponsesContext) {
    let t = translate(body).unwrap_or_else(|e| panic!("unexpected 400: {e}"));
    (serde_json::from_slice(&t.body).unwrap(), t.ctx)
}

fn refused(body: &Value) -> TranslateError {
    match translate(body) {
        Ok(t) => panic!("expected a 400, got {}", String::from_utf8_lossy(&t.body)),
        Err(e) => e,
    }
}

/// What Codex 0.171 sends on a second turn (docs/responses.md §4.1), shortened.
fn codex_body() -> Value {
    json!({
        "model": "claude-sonnet-4-6",
        "instructions": null,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "fix the file"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": "Let me look."}],
             "content": null, "encrypted_content": "sig-abc"},
            {"type": "function_call", "id": "fc_1", "call_id": "toolu_1", "name": "exec_command",
             "arguments": "{\"cmd\":\"cat f.txt\"}", "status": "completed"},
            {"type": "function_call", "id": "fc_2", "call_id": "toolu_2", "name": "spawn_agent",
             "namespace": "multi_agent_v1", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "toolu_1", "output": "old"},
            {"type": "function_call_output", "call_id": "toolu_2", "output": [{"type": "input_text", "text": "spawned"}]},
            {"type": "custom_tool_call", "id": "ctc_1", "call_id": "toolu_3", "name": "apply_patch",
             "input": "*** Begin Patch\n*** End Patch\n"},
            {"type": "custom_tool_call_output", "call_id": "toolu_3", "output": "Done!"}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Run a command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "agents", "tools": [
                {"type": "function", "name": "spawn_agent", "parameters": {"type": "object", "properties": {}}}
            ]},
            {"type": "custom", "name": "apply_patch", "description": "Edit files",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}},
            {"type": "web_search", "external_web_access": false},
            {"type": "tool_search", "execution": "client"}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": true,
        "reasoning": {"effort": "medium"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "session-1",
        "client_metadata": {"x": 1}
    })
}

#[test]
fn codex_request_translates_to_messages() {
    let (a, ctx) = anth_of(&codex_body());
    assert_eq!(a["model"], "claude-sonnet-4-6");
    assert_eq!(a["stream"], true);
    assert_eq!(a["system"][0]["text"], "You are Codex.");
    let names: Vec<&str> = a["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["exec_command", "multi_agent_v1__spawn_agent", "apply_patch"]
    );
    let patch = &a["tools"][2];
    assert_eq!(patch["input_schema"]["required"], json!(["input"]));
    assert!(patch["description"]
        .as_str()
        .unwrap()
        .contains("start: begin_patch"));
    let msgs = a["messages"].as_array().unwrap();
    // user, assistant (thinking + 2 calls), user (2 results), assistant (patch), user (result)
    assert_eq!(msgs.len(), 5, "{a:#}");
    let asst = msgs[1]["content"].as_array().unwrap();
    assert_eq!(
        asst[0],
        json!({"type": "thinking", "thinking": "Let me look.", "signature": "sig-abc"})
    );
    assert_eq!(asst[1]["type"], "tool_use");
    assert_eq!(asst[1]["input"], json!({"cmd": "cat f.txt"}));
    assert_eq!(asst[2]["name"], "multi_agent_v1__spawn_agent");
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results[0]["tool_use_id"], "toolu_1");
    assert_eq!(results[1]["tool_use_id"], "toolu_2");
    assert_eq!(
        msgs[3]["content"][0]["input"],
        json!({"input": "*** Begin Patch\n*** End Patch\n"})
    );
    assert_eq!(msgs[3]["content"][0]["name"], "apply_patch");
    // thinking stays on: the tool loop carries its signed block.
    assert!(a.get("thinking").is_some(), "{a:#}");
    assert!(ctx.custom_tools.contains("apply_patch"));
    assert_eq!(
        ctx.namespaced.get("multi_agent_v1__spawn_agent"),
        Some(&("multi_agent_v1".to_owned(), "spawn_agent".to_owned()))
    );
    assert!(ctx.stream && ctx.parallel_tool_calls);
}

#[test]
fn simple_inputs_and_output_controls() {
    let (a, _) = anth_of(&json!({
        "model": "m", "instructions": "Be brief.", "input": "hi",
        "max_output_tokens": 300, "temperature": 0.5, "user": "alice",
        "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"], "additionalProperties": false}}},
        "metadata": {"k": "v"}, "store": true
    }));
    assert_eq!(a["system"][0]["text"], "Be brief.");
    assert_eq!(a["messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(a["max_tokens"], 300);
    assert_eq!(a["temperature"], 0.5);
    assert!(a["metadata"]["user_id"].as_str().unwrap().len() >= 16);
    assert_ne!(a["metadata"]["user_id"], "alice");
    assert_eq!(a["output_config"]["format"]["type"], "json_schema");
    let (a, _) = anth_of(
        &json!({"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "see"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo=", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/a.png"},
        {"type": "input_file", "filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}
    ]}], "reasoning": {"summary": "auto"}, "tool_choice": {"type": "function", "name": "f"},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}], "parallel_tool_calls": false}),
    );
    let c = a["messages"][0]["content"].as_array().unwrap();
    assert_eq!(c[1]["source"]["type"], "base64");
    assert_eq!(
        c[2]["source"],
        json!({"type": "url", "url": "https://example.com/a.png"})
    );
    assert_eq!(c[3]["type"], "document");
    // A summary alone asks for thinking; a named tool cannot be forced with thinking on.
    assert!(a.get("thinking").is_some(), "{a:#}");
    assert_eq!(a["tool_choice"]["disable_parallel_tool_use"], true);
}

#[test]
fn refusals_name_the_responses_field() {
    let e = refused(&json!({"model": "m", "input": "x", "previous_response_id": "resp_1"}));
    assert_eq!(e.param.as_deref(), Some("previous_response_id"));
    assert!(e.message.contains("stateless"));
    let e = refused(
        &json!({"model": "m", "input": "x", "tools": [{"type": "file_search", "vector_store_ids": []}]}),
    );
    assert_eq!(e.param.as_deref(), Some("tools[0].type"));
    assert!(e.message.contains("file_search"));
    let e = refused(&json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
    assert!(e.message.contains("web_search"));
    // Codex (its client_metadata) sends a live web_search when it runs without a sandbox: dropped.
    let (a, ctx) = anth_of(
        &json!({"model": "m", "input": "x", "client_metadata": {"turn_id": "t"},
        "tools": [{"type": "web_search", "external_web_access": true, "search_content_types": ["text"]},
                  {"type": "function", "name": "f", "parameters": {"type": "object"}}]}),
    );
    assert!(ctx.from_codex);
    assert_eq!(a["tools"].as_array().unwrap().len(), 1);
    let e = refused(&json!({"model": "m", "input": [
        {"role": "user", "content": "a"},
        {"role": "user", "content": [{"type": "input_image", "image_url": "data:image/bmp;base64,AAAA"}]}
    ]}));
    assert_eq!(
        e.param.as_deref(),
        Some("input[1].content[0].image_url.url"),
        "{e}"
    );
    assert!(e.message.contains("input[1]"), "{e}");
    let e = refused(
        &json!({"model": "m", "input": [{"type": "function_call_output", "call_id": "nope", "output": "x"}]}),
    );
    assert!(
        e.param.as_deref().unwrap_or("").starts_with("input[0]"),
        "{e:?}"
    );
    let e = refused(&json!({"input": "x"}));
    assert_eq!(e.param.as_deref(), Some("model"));
    let e = refused(&json!({"model": "m", "input": "x", "reasoning": {"effort": "huge"}}));
    assert_eq!(e.param.as_deref(), Some("reasoning.effort"));
    let e = refused(&json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}));
    assert_eq!(e.param.as_deref(), Some("input[0].type"));
}

fn ctx_for(body: &Value) -> ResponsesContext {
    translate(body).unwrap().ctx
}

fn usage() -> Usage {
    Usage {
        input_tokens: 100,
        cache_read_input_tokens: 30,
        cache_creation_input_tokens: 20,
        output_tokens: 40,
        ..Usage::default()
    }
}

#[test]
fn non_streamed_answer_golden() {
    let ctx = ctx_for(&codex_body());
    let anthropic = json!({"id": "msg_01X", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig-1"},
            {"type": "text", "text": "Patching."},
            {"type": "tool_use", "id": "toolu_a", "name": "apply_patch", "input": {"input": "*** Begin Patch\n"}},
            {"type": "tool_use", "id": "toolu_b", "name": "multi_agent_v1__spawn_agent", "input": {}},
            {"type": "tool_use", "id": "toolu_c", "name": "exec_command", "input": {"cmd": "ls"}}
        ], "stop_reason": "tool_use", "usage": {}});
    let out =
        translate_responses_response(anthropic.to_string().as_bytes(), &usage(), &ctx, "req", 7)
            .unwrap();
    let r: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(r["id"], "resp_01X");
    assert_eq!(r["object"], "response");
    assert_eq!(r["status"], "completed");
    assert_eq!(r["created_at"], 7);
    assert_eq!(r["model"], "claude-sonnet-4-6");
    let o = r["output"].as_array().unwrap();
    assert_eq!(o[0]["type"], "reasoning");
    assert_eq!(
        o[0]["summary"],
        json!([{"type": "summary_text", "text": "hmm"}])
    );
    assert_eq!(o[0]["encrypted_content"], "sig-1");
    assert_eq!(o[1]["content"][0]["text"], "Patching.");
    assert_eq!(o[2]["type"], "custom_tool_call");
    assert_eq!(o[2]["input"], "*** Begin Patch\n");
    assert_eq!(o[2]["call_id"], "toolu_a");
    assert_eq!(
        o[3],
        json!({"type": "function_call", "id": o[3]["id"], "status": "completed", "call_id": "toolu_b",
        "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}"})
    );
    assert_eq!(o[4]["arguments"], "{\"cmd\":\"ls\"}");
    let ids: std::collections::BTreeSet<&str> =
        o.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), o.len(), "item ids are distinct");
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 150, "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 20},
        "output_tokens": 40, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 190})
    );
    assert_eq!(
        r["tools"].as_array().unwrap().len(),
        5,
        "tools are echoed as sent"
    );

    let cut = json!({"id": "msg_2", "content": [{"type": "text", "text": "par"}], "stop_reason": "max_tokens"});
    let r: Value = serde_json::from_slice(
        &translate_responses_response(cut.to_string().as_bytes(), &usage(), &ctx, "req", 7)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(r["status"], "incomplete");
    assert_eq!(r["incomplete_details"]["reason"], "max_output_tokens");
    assert!(translate_responses_response(b"<html>", &usage(), &ctx, "r", 0).is_err());
}

/// A streamed Anthropic answer: thinking, text, a function call without arguments, a custom tool call whose
/// input arrives in fragments.
fn anthropic_stream() -> String {
    let events = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_S1", "type": "message", "role": "assistant",
            "content": [], "model": "claude-sonnet-4-6", "usage": {"input_tokens": 100, "cache_read_input_tokens": 30, "output_tokens": 1}}}),
        ),
        ("ping", json!({"type": "ping"})),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Think é"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "SIG"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "Hel"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "lo\n\"x\""}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "multi_agent_v1__spawn_agent", "input": {}}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 2}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 3, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "apply_patch", "input": {}}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{\"input\": \"*** Beg"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "in Patch\\n\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 3}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 50}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    events
        .iter()
        .map(|(n, d)| format!("event: {n}\ndata: {d}\n\n"))
        .collect()
}

/// Runs SSE bytes, cut at `cuts`, through the framer, meter and translator, as the gateway's tee does.
fn run_stream(ctx: &ResponsesContext, bytes: &[u8], cuts: &[usize]) -> String {
    let mut framer = SseFramer::new();
    let mut meter = StreamMeter::new();
    let mut st = ResponsesStream::new(ctx.clone(), "req-1", 9);
    let mut out = Vec::new();
    let mut last = 0;
    let mut on = |ev: ccgate_meter::sse::SseEvent<'_>| {
        meter.on_event(ev.event, ev.data);
        st.on_event(ev.event, ev.data, meter.usage(), &mut out);
    };
    for &c in cuts.iter().chain(std::iter::once(&bytes.len())) {
        framer.push(&bytes[last..c], &mut on);
        last = c;
    }
    framer.finish(&mut on);
    String::from_utf8(out).unwrap()
}

/// `(event name, data)` of each event; checks the framing on the way.
fn events(raw: &str) -> Vec<(String, Value)> {
    raw.split("\n\n")
        .filter(|s| !s.is_empty() && !s.starts_with(':'))
        .map(|s| {
            let (head, data) = s.split_once('\n').unwrap();
            let name = head.strip_prefix("event: ").unwrap().to_owned();
            let v: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(v["type"], name.as_str());
            (name, v)
        })
        .collect()
}

#[test]
fn streamed_answer_event_sequence() {
    let ctx = ctx_for(&codex_body());
    let raw = run_stream(&ctx, anthropic_stream().as_bytes(), &[]);
    let ev = events(&raw);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, v)) in ev.iter().enumerate() {
        assert_eq!(v["sequence_number"], i as u64);
    }
    let done: Vec<&Value> = ev
        .iter()
        .filter(|(n, _)| n == "response.output_item.done")
        .map(|(_, v)| v)
        .collect();
    for (i, d) in done.iter().enumerate() {
        assert_eq!(d["output_index"], i as u64, "output indices are exact");
    }
    assert_eq!(done[0]["item"]["encrypted_content"], "SIG");
    assert_eq!(done[1]["item"]["content"][0]["text"], "Hello\n\"x\"");
    assert_eq!(done[2]["item"]["name"], "spawn_agent");
    assert_eq!(done[2]["item"]["namespace"], "multi_agent_v1");
    assert_eq!(done[2]["item"]["arguments"], "{}");
    assert_eq!(done[3]["item"]["type"], "custom_tool_call");
    assert_eq!(done[3]["item"]["input"], "*** Begin Patch\n");
    let created = &ev[0].1["response"];
    let completed = &ev.last().unwrap().1["response"];
    assert_eq!(created["id"], "resp_S1");
    assert_eq!(completed["id"], "resp_S1");
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"].as_array().unwrap().len(), 4);
    assert_eq!(completed["usage"]["input_tokens"], 130);
    assert_eq!(
        completed["usage"]["input_tokens_details"]["cached_tokens"],
        30
    );
    assert_eq!(completed["usage"]["output_tokens"], 50);
    assert_eq!(completed["usage"]["total_tokens"], 180);
}

#[test]
fn streamed_failures_end_with_response_failed() {
    let ctx = ctx_for(&json!({"model": "m", "input": "x"}));
    let s = anthropic_stream();
    let cut = &s[..s.find("event: content_block_stop").unwrap()];
    let mut raw = run_stream(&ctx, cut.as_bytes(), &[]);
    let mut st = ResponsesStream::new(ctx.clone(), "r", 0);
    let mut out = Vec::new();
    st.on_upstream_error("upstream closed", "server_error", &mut out);
    assert!(st.is_finished());
    let ev = events(&String::from_utf8(out).unwrap());
    assert_eq!(ev[0].0, "response.created");
    assert_eq!(
        ev.last().unwrap().1["response"]["error"]["code"],
        "server_error"
    );

    raw.push_str(&run_stream(
        &ctx,
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        &[],
    ));
    let ev = events(&run_stream(
        &ctx,
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        &[],
    ));
    let last = &ev.last().unwrap().1;
    assert_eq!(last["type"], "response.failed");
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(last["response"]["error"]["code"], "server_is_overloaded");
}

#[test]
fn max_tokens_is_incomplete() {
    let ctx = ctx_for(&json!({"model": "m", "input": "x"}));
    let s = anthropic_stream().replace(
        "\"stop_reason\":\"tool_use\"",
        "\"stop_reason\":\"max_tokens\"",
    );
    let ev = events(&run_stream(&ctx, s.as_bytes(), &[]));
    let last = &ev.last().unwrap().1;
    assert_eq!(last["type"], "response.incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    /// However the upstream bytes are chunked, the client gets the same events.
    #[test]
    fn chunking_does_not_change_the_events(cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..24)) {
        let ctx = ctx_for(&codex_body());
        let s = anthropic_stream();
        let whole = run_stream(&ctx, s.as_bytes(), &[]);
        let mut pos: Vec<usize> = cuts.iter().map(|i| i.index(s.len() + 1)).collect();
        pos.sort_unstable();
        prop_assert_eq!(run_stream(&ctx, s.as_bytes(), &pos), whole);
    }

    /// A stream cut anywhere, then failed, still starts with `response.created` and ends with exactly one
    /// final event, with consecutive sequence numbers.
    #[test]
    fn a_stream_cut_anywhere_ends_once(at in any::<proptest::sample::Index>()) {
        let ctx = ctx_for(&codex_body());
        let s = anthropic_stream();
        let cut = at.index(s.len() + 1);
        let mut framer = SseFramer::new();
        let mut meter = StreamMeter::new();
        let mut st = ResponsesStream::new(ctx, "r", 0);
        let mut out = Vec::new();
        let mut on = |ev: ccgate_meter::sse::SseEvent<'_>| {
            meter.on_event(ev.event, ev.data);
            st.on_event(ev.event, ev.data, meter.usage(), &mut out);
        };
        framer.push(&s.as_bytes()[..cut], &mut on);
        if !st.is_finished() {
            st.on_upstream_error("cut", "server_error", &mut out);
        }
        let ev = events(&String::from_utf8(out).unwrap());
        prop_assert_eq!(ev[0].0.as_str(), "response.created");
        let finals = ev.iter().filter(|(n, _)| matches!(n.as_str(), "response.completed" | "response.failed" | "response.incomplete")).count();
        prop_assert_eq!(finals, 1);
        prop_assert!(matches!(ev.last().unwrap().0.as_str(), "response.completed" | "response.failed"));
        for (i, (_, v)) in ev.iter().enumerate() {
            prop_assert_eq!(v["sequence_number"].as_u64(), Some(i as u64));
        }
    }
}
