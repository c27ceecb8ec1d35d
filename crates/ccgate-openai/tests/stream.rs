//! Golden tests for the streaming state machine (docs/protocols.md §5.3, §3.3, §6).

mod common;

use ccgate_meter::Usage;
use ccgate_openai::{ResponseContext, StreamTranslator};
use common::*;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

fn ctx(include_usage: bool) -> ResponseContext {
    ResponseContext {
        client_model: "m".into(),
        expose_reasoning: true,
        include_usage,
        ..ResponseContext::default()
    }
}

/// Feeds `(event, data)` pairs; returns the raw output.
fn feed(st: &mut StreamTranslator, events: &[(&str, Value)], u: &Usage) -> String {
    let mut out = Vec::new();
    for (name, data) in events {
        st.on_event(name, data.to_string().as_bytes(), u, &mut out);
    }
    String::from_utf8(out).unwrap()
}

/// Splits output into SSE items: JSON chunks, "[DONE]" and comments.
fn items(raw: &str) -> Vec<Value> {
    assert!(
        raw.is_empty() || raw.ends_with("\n\n"),
        "incomplete output: {raw:?}"
    );
    raw.split("\n\n")
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(c) = s.strip_prefix(':') {
                json!({"comment": c.trim()})
            } else {
                let d = s.strip_prefix("data: ").expect("data line");
                if d == "[DONE]" {
                    json!("[DONE]")
                } else {
                    serde_json::from_str(d).unwrap()
                }
            }
        })
        .collect()
}

fn deltas(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .filter_map(|i| i.get("choices")?.get(0)?.get("delta").cloned())
        .collect()
}

fn msg_start() -> (&'static str, Value) {
    (
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"usage":{"input_tokens":472,"cache_read_input_tokens":9000,"output_tokens":2}}}),
    )
}
fn start(i: u64, block: Value) -> (&'static str, Value) {
    (
        "content_block_start",
        json!({"type":"content_block_start","index":i,"content_block":block}),
    )
}
fn delta(i: u64, d: Value) -> (&'static str, Value) {
    (
        "content_block_delta",
        json!({"type":"content_block_delta","index":i,"delta":d}),
    )
}
fn stop(i: u64) -> (&'static str, Value) {
    (
        "content_block_stop",
        json!({"type":"content_block_stop","index":i}),
    )
}
fn text(t: &str) -> Value {
    json!({"type":"text_delta","text":t})
}
fn args(p: &str) -> Value {
    json!({"type":"input_json_delta","partial_json":p})
}
fn msg_delta(reason: &str) -> (&'static str, Value) {
    (
        "message_delta",
        json!({"type":"message_delta","delta":{"stop_reason":reason,"stop_sequence":null},"usage":{"output_tokens":89}}),
    )
}
fn msg_stop() -> (&'static str, Value) {
    ("message_stop", json!({"type":"message_stop"}))
}

#[test]
fn spec_stream_text_then_tool_with_usage() {
    let mut st = StreamTranslator::new(ctx(true), "req_1", 1764223000);
    let u = usage(472, 0, 9000, 89);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(0, json!({"type":"text","text":""})),
            ("ping", json!({"type":"ping"})),
            delta(0, text("Checking.")),
            stop(0),
            start(
                1,
                json!({"type":"tool_use","id":"toolu_01T1","name":"get_weather","input":{}}),
            ),
            delta(1, args("{\"city\": \"Par")),
            delta(1, args("is\"}")),
            stop(1),
            msg_delta("tool_use"),
            msg_stop(),
        ],
        &u,
    );
    let its = items(&raw);
    let head = json!({"id":"chatcmpl-msg_01","object":"chat.completion.chunk","created":1764223000,"model":"m"});
    let chunk = |delta: Value, finish: Value| {
        let mut c = head.clone();
        c["choices"] = json!([{"index":0,"delta":delta,"finish_reason":finish}]);
        c["usage"] = Value::Null;
        c
    };
    let mut usage_chunk = head.clone();
    usage_chunk["choices"] = json!([]);
    usage_chunk["usage"] = json!({"prompt_tokens":9472,"completion_tokens":89,"total_tokens":9561,
        "prompt_tokens_details":{"cached_tokens":9000,"cache_write_tokens":0}});
    assert_eq!(
        its,
        vec![
            chunk(json!({"role":"assistant","content":""}), Value::Null),
            json!({"comment":"keep-alive"}),
            chunk(json!({"content":"Checking."}), Value::Null),
            chunk(
                json!({"tool_calls":[{"index":0,"id":"toolu_01T1","type":"function","function":{"name":"get_weather","arguments":""}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]}),
                Value::Null
            ),
            chunk(
                json!({"tool_calls":[{"index":0,"function":{"arguments":"is\"}"}}]}),
                Value::Null
            ),
            chunk(json!({}), json!("tool_calls")),
            usage_chunk,
            json!("[DONE]"),
        ]
    );
    assert!(st.is_finished());
    // Nothing after the end.
    assert_eq!(feed(&mut st, &[msg_stop()], &u), "");
}

#[test]
fn no_usage_key_without_include_usage() {
    let mut st = StreamTranslator::new(ctx(false), "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(0, json!({"type":"text","text":"Hi"})),
            stop(0),
            msg_delta("end_turn"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let its = items(&raw);
    assert_eq!(its.len(), 4);
    for i in &its[..3] {
        assert!(i.get("usage").is_none(), "{i}");
    }
    assert_eq!(its[1]["choices"][0]["delta"], json!({"content":"Hi"}));
    assert_eq!(its[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(its[3], json!("[DONE]"));
}

#[test]
fn tool_first_then_text_and_second_tool() {
    let mut st = StreamTranslator::new(ctx(false), "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(0, json!({"type":"thinking","thinking":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"hmm"})),
            delta(0, json!({"type":"signature_delta","signature":"sig"})),
            stop(0),
            start(
                1,
                json!({"type":"tool_use","id":"t_a","name":"a","input":{}}),
            ),
            delta(1, args("{\"x\":1}")),
            stop(1),
            start(2, json!({"type":"text","text":""})),
            delta(2, text("between")),
            stop(2),
            start(
                3,
                json!({"type":"tool_use","id":"t_b","name":"b","input":{}}),
            ),
            stop(3),
            msg_delta("tool_use"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let d = deltas(&items(&raw));
    assert_eq!(d[1], json!({"reasoning_content":"hmm"}));
    assert_eq!(
        d[2],
        json!({"thinking_blocks":[{"type":"thinking","thinking":"hmm","signature":"sig"}]})
    );
    assert_eq!(d[3]["tool_calls"][0]["index"], 0);
    assert_eq!(d[3]["tool_calls"][0]["id"], "t_a");
    assert_eq!(
        d[4],
        json!({"tool_calls":[{"index":0,"function":{"arguments":"{\"x\":1}"}}]})
    );
    assert_eq!(d[5], json!({"content":"between"}));
    assert_eq!(d[6]["tool_calls"][0]["index"], 1);
    assert_eq!(d[6]["tool_calls"][0]["function"]["name"], "b");
    // No argument fragment: "{}" at the block stop.
    assert_eq!(
        d[7],
        json!({"tool_calls":[{"index":1,"function":{"arguments":"{}"}}]})
    );
    assert_eq!(st.tool_calls_emitted(), 2);
    assert_eq!(st.stop_reason(), Some("tool_use"));
}

#[test]
fn tool_without_arguments_gets_empty_object() {
    for fragments in [vec![], vec![args("")]] {
        let mut st = StreamTranslator::new(ctx(false), "x", 1);
        let mut ev = vec![
            msg_start(),
            start(
                0,
                json!({"type":"tool_use","id":"t","name":"now","input":{}}),
            ),
        ];
        for f in &fragments {
            ev.push(delta(0, f.clone()));
        }
        ev.extend([stop(0), msg_delta("tool_use"), msg_stop()]);
        let its = items(&feed(&mut st, &ev, &Usage::default()));
        let d = deltas(&its);
        assert_eq!(d[1]["tool_calls"][0]["function"]["arguments"], "");
        assert_eq!(
            d[2],
            json!({"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]})
        );
        assert_eq!(its[3]["choices"][0]["finish_reason"], "tool_calls");
    }
}

#[test]
fn reasoning_hidden_when_not_exposed() {
    let mut c = ctx(false);
    c.expose_reasoning = false;
    let mut st = StreamTranslator::new(c, "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(0, json!({"type":"thinking","thinking":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"secret"})),
            delta(0, json!({"type":"signature_delta","signature":"sig"})),
            stop(0),
            start(1, json!({"type":"redacted_thinking","data":"zzz"})),
            stop(1),
            start(2, json!({"type":"text","text":""})),
            delta(2, text("answer")),
            stop(2),
            msg_delta("end_turn"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    assert!(!raw.contains("secret") && !raw.contains("zzz"));
    let d = deltas(&items(&raw));
    assert_eq!(
        d,
        vec![
            json!({"role":"assistant","content":""}),
            json!({"content":"answer"}),
            json!({})
        ]
    );
}

#[test]
fn tool_use_stop_without_tool_calls_is_stop() {
    // Only a server tool streamed: its fragments are not client tool calls.
    let mut st = StreamTranslator::new(ctx(false), "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(
                0,
                json!({"type":"server_tool_use","id":"srv","name":"web_search","input":{}}),
            ),
            delta(0, args("{\"query\":\"x\"}")),
            stop(0),
            msg_delta("tool_use"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let its = items(&raw);
    assert!(!raw.contains("tool_calls"));
    assert_eq!(its[1]["choices"][0]["finish_reason"], "stop");
}

#[test]
fn error_event_mid_stream() {
    let mut st = StreamTranslator::new(ctx(true), "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(0, json!({"type":"text","text":""})),
            delta(0, text("partial")),
            (
                "error",
                json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
            ),
            delta(0, text("ignored")),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let its = items(&raw);
    assert_eq!(its.len(), 3);
    assert_eq!(
        its[2],
        json!({"error":{"message":"Overloaded","type":"server_error","param":null,"code":"overloaded"}})
    );
    assert!(!raw.contains("[DONE]"));
    assert!(!raw.contains("ignored"));
    assert!(st.is_finished());
}

#[test]
fn eof_before_message_stop() {
    let mut st = StreamTranslator::new(ctx(false), "x", 1);
    let mut out = feed(
        &mut st,
        &[msg_start(), start(0, json!({"type":"text","text":"Hel"}))],
        &Usage::default(),
    )
    .into_bytes();
    assert!(!st.is_finished());
    st.on_upstream_error(
        "upstream closed the stream before message_stop",
        "server_error",
        &mut out,
    );
    st.on_upstream_error("twice", "server_error", &mut out);
    let raw = String::from_utf8(out).unwrap();
    let its = items(&raw);
    assert_eq!(its.len(), 3);
    assert_eq!(its[2]["error"]["type"], "server_error");
    assert_eq!(
        its[2]["error"]["message"],
        "upstream closed the stream before message_stop"
    );
    assert!(!raw.contains("[DONE]"));
    assert!(st.is_finished());
}

#[test]
fn error_before_message_start_uses_id_hint_free_error() {
    let mut st = StreamTranslator::new(ctx(false), "req_9", 1);
    let mut out = Vec::new();
    st.on_upstream_error("connect failed", "server_error", &mut out);
    assert_eq!(
        items(std::str::from_utf8(&out).unwrap())[0]["error"]["message"],
        "connect failed"
    );
}

#[test]
fn unknown_events_and_garbage_are_ignored() {
    let mut st = StreamTranslator::new(ctx(false), "hint", 7);
    let mut out = Vec::new();
    st.on_event(
        "future_event",
        b"{\"type\":\"future_event\"}",
        &Usage::default(),
        &mut out,
    );
    st.on_event(
        "content_block_delta",
        b"not json",
        &Usage::default(),
        &mut out,
    );
    st.on_event("content_block_start", b"{}", &Usage::default(), &mut out);
    assert!(out.is_empty());
    // Event name missing: the JSON type is used. Without message_start the hint names the stream.
    st.on_event(
        "",
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}"#,
        &Usage::default(),
        &mut out,
    );
    let its = items(std::str::from_utf8(&out).unwrap());
    assert_eq!(its[0]["id"], "chatcmpl-hint");
    assert_eq!(its[1]["choices"][0]["delta"]["content"], "x");
}

#[test]
fn json_tool_fragments_become_content_and_names_restored() {
    let mut c = ctx(false);
    c.json_tool = Some("json_response".into());
    c.tool_names = BTreeMap::from([("fs_read".to_owned(), "fs/read".to_owned())]);
    let mut st = StreamTranslator::new(c, "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(
                0,
                json!({"type":"tool_use","id":"t","name":"json_response","input":{}}),
            ),
            delta(0, args("{\"a\":")),
            delta(0, args("1}")),
            stop(0),
            start(
                1,
                json!({"type":"tool_use","id":"t2","name":"fs_read","input":{}}),
            ),
            stop(1),
            msg_delta("tool_use"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let d = deltas(&items(&raw));
    assert_eq!(d[1], json!({"content":"{\"a\":"}));
    assert_eq!(d[2], json!({"content":"1}"}));
    assert_eq!(d[3]["tool_calls"][0]["index"], 0);
    assert_eq!(d[3]["tool_calls"][0]["function"]["name"], "fs/read");

    // Only the format tool: finish_reason stop.
    let mut c = ctx(false);
    c.json_tool = Some("json_response".into());
    let mut st = StreamTranslator::new(c, "x", 1);
    let raw = feed(
        &mut st,
        &[
            msg_start(),
            start(
                0,
                json!({"type":"tool_use","id":"t","name":"json_response","input":{}}),
            ),
            stop(0),
            msg_delta("tool_use"),
            msg_stop(),
        ],
        &Usage::default(),
    );
    let its = items(&raw);
    assert_eq!(its[1]["choices"][0]["delta"], json!({"content":"{}"}));
    assert_eq!(its[2]["choices"][0]["finish_reason"], "stop");
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        "[ -~\\u{e9}\\u{4e2d}\\u{1f600}\"\\\\\n]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z\"\\u{e9}]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Streamed fragments reassemble into valid JSON equal to the original input, whatever the
    /// split points (including inside multi-byte characters' neighbours and escapes).
    #[test]
    fn fragments_reassemble(input in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..5),
                            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
                            lead_text in any::<bool>()) {
        let input = Value::Object(input.into_iter().collect());
        let text_json = input.to_string();
        let chars: Vec<char> = text_json.chars().collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(chars.len() + 1)).collect();
        points.push(0);
        points.push(chars.len());
        points.sort_unstable();
        points.dedup();
        let fragments: Vec<String> = points.windows(2).map(|w| chars[w[0]..w[1]].iter().collect()).collect();

        let mut st = StreamTranslator::new(ctx(false), "x", 1);
        let mut ev = vec![msg_start()];
        let tool_index = if lead_text {
            ev.extend([start(0, json!({"type":"text","text":"pre"})), stop(0)]);
            1
        } else { 0 };
        ev.push(start(tool_index, json!({"type":"tool_use","id":"t","name":"f","input":{}})));
        for f in &fragments { ev.push(delta(tool_index, args(f))); }
        ev.extend([stop(tool_index), msg_delta("tool_use"), msg_stop()]);
        let its = items(&feed(&mut st, &ev, &Usage::default()));
        let mut assembled = String::new();
        let mut headers = 0;
        for d in deltas(&its) {
            if let Some(tc) = d.get("tool_calls") {
                prop_assert_eq!(&tc[0]["index"], &json!(0));
                if tc[0].get("id").is_some() { headers += 1; }
                assembled.push_str(tc[0]["function"]["arguments"].as_str().unwrap());
            }
        }
        prop_assert_eq!(headers, 1);
        let parsed: Value = serde_json::from_str(&assembled).unwrap();
        prop_assert_eq!(parsed, input);
    }
}

fn any_event() -> impl Strategy<Value = (String, Vec<u8>)> {
    let names = prop::sample::select(vec![
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
        "",
        "weird",
    ]);
    let block = prop::sample::select(vec![
        json!({"type":"text","text":"a"}),
        json!({"type":"thinking","thinking":""}),
        json!({"type":"tool_use","id":"t","name":"f","input":{}}),
        json!({"type":"redacted_thinking","data":"d"}),
        json!({"type":"server_tool_use","id":"s","name":"web_search","input":{}}),
        json!(null),
        json!(5),
    ]);
    let d = prop::sample::select(vec![
        text("x"),
        args("{\"a\""),
        args(""),
        json!({"type":"thinking_delta","thinking":"t"}),
        json!({"type":"signature_delta","signature":"s"}),
        json!({"type":"citations_delta"}),
        json!(null),
    ]);
    (
        names,
        0u64..4,
        block,
        d,
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..20),
    )
        .prop_map(|(name, i, b, d, garbage, bytes)| {
            let data = if garbage {
                bytes
            } else {
                json!({"type": name, "index": i, "content_block": b, "delta": d,
                       "message": {"id": "msg_x"}, "error": {"type": "api_error", "message": "e"}})
                .to_string()
                .into_bytes()
            };
            (name.to_owned(), data)
        })
}

proptest! {
    /// Any event sequence yields well-formed output: complete SSE items, valid JSON, tool indices
    /// dense from 0, `[DONE]` at most once and last, nothing after an error.
    #[test]
    fn arbitrary_event_sequences_are_well_formed(events in prop::collection::vec(any_event(), 0..40), eof in any::<bool>()) {
        let mut st = StreamTranslator::new(ctx(true), "h", 1);
        let mut out = Vec::new();
        for (name, data) in &events {
            st.on_event(name, data, &Usage::default(), &mut out);
        }
        if eof {
            st.on_upstream_error("eof", "server_error", &mut out);
            prop_assert!(st.is_finished());
        }
        let raw = String::from_utf8(out).unwrap();
        let its = items(&raw);
        let mut next_index = 0;
        for (k, it) in its.iter().enumerate() {
            if *it == json!("[DONE]") || it.get("error").is_some() {
                prop_assert_eq!(k, its.len() - 1, "terminal item not last");
            }
            if let Some(tc) = it.pointer("/choices/0/delta/tool_calls/0") {
                let idx = tc["index"].as_u64().unwrap();
                if tc.get("id").is_some() {
                    prop_assert_eq!(idx, next_index);
                    next_index += 1;
                } else {
                    prop_assert!(idx < next_index);
                }
            }
        }
    }
}

/// The `text_delta` fast path (taken when the SSE `event:` name is given) writes byte for byte what the general
/// path (taken when it is not) writes, whatever the text holds.
#[test]
fn text_delta_fast_path_matches_general_path() {
    let texts = [
        "plain",
        "quotes \" and \\ backslashes",
        "line\nbreak\ttab\r\u{1}\u{1f}",
        "unicode é 你好 🎉 \u{2028}",
        "",
        "</script>",
    ];
    for include_usage in [false, true] {
        for text in texts {
            let events = [
                (
                    "message_start",
                    json!({"type":"message_start","message":{"id":"msg_\"1","usage":{"input_tokens":3}}}),
                ),
                (
                    "content_block_start",
                    json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
                ),
                (
                    "content_block_delta",
                    json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
                ),
            ];
            let u = Usage::default();
            let mut fast = StreamTranslator::new(ctx(include_usage), "hint", 7);
            let mut general = StreamTranslator::new(ctx(include_usage), "hint", 7);
            let a = feed(&mut fast, &events, &u);
            let unnamed: Vec<(&str, Value)> = events.iter().map(|(_, v)| ("", v.clone())).collect();
            let b = feed(&mut general, &unnamed, &u);
            assert_eq!(a, b, "text {text:?}, include_usage {include_usage}");
        }
    }
}

/// Text deltas in the upstream's own bytes (not re-serialised by serde_json first): the copy-through path for
/// Anthropic's exact shape, and the parsing path for every variation of it, write what the general path writes.
#[test]
fn text_delta_raw_bytes_match_general_path() {
    let deltas: &[&str] = &[
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"plain"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a \"q\" \\ b\nc\td\r\b\f"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"caf\u00e9 \u001F \/ end"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"é 你好 🎉"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}"#,
        r#"{"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"unknown block"}}"#,
        r#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"leading zero"}}"#,
        r#"{"type":"content_block_delta","index":2,"delta":{"type":"text_delta","text":"thinking block"}}"#,
        r#"{"index":0,"type":"content_block_delta","delta":{"text":"other order","type":"text_delta"}}"#,
        r#"{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "spaced"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"extra","x":1}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"raw"ctl"}}"#,
        "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tab\tin\"}}",
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"trailing\\"}}"#,
        r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"dangling\"}}"#,
    ];
    let start: [(&str, &[u8]); 3] = [
        ("message_start", br#"{"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":3}}}"#),
        ("content_block_start", br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#),
        ("content_block_start", br#"{"type":"content_block_start","index":2,"content_block":{"type":"thinking","thinking":""}}"#),
    ];
    let mut invalid_utf8 =
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"#
            .to_vec();
    invalid_utf8.extend_from_slice(b"\xff\"}}");
    let mut all: Vec<Vec<u8>> = deltas.iter().map(|d| d.as_bytes().to_vec()).collect();
    all.push(invalid_utf8);
    let u = Usage::default();
    for include_usage in [false, true] {
        let mut fast = StreamTranslator::new(ctx(include_usage), "hint", 7);
        let mut general = StreamTranslator::new(ctx(include_usage), "hint", 7);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (name, data) in start {
            fast.on_event(name, data, &u, &mut a);
            general.on_event("", data, &u, &mut b);
        }
        for d in &all {
            fast.on_event("content_block_delta", d, &u, &mut a);
            general.on_event("", d, &u, &mut b);
            assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "after {:?}",
                String::from_utf8_lossy(d)
            );
        }
    }
}

/// Events read by name through typed views (`message_start`, `message_delta`, `message_stop`, `ping`) translate
/// exactly as the general path translates them (which reads the kind from the JSON `type` when no name is given),
/// including the odd shapes the typed views hand back to it.
#[test]
fn events_read_by_name_match_general_path() {
    let starts: &[&str] = &[
        r#"{"type":"message_start","message":{"id":"msg_\"x\u00e9","model":"m","usage":{"input_tokens":3}}}"#,
        r#"{"type":"message_start","message":{"id":7}}"#,
        r#"{"type":"message_start","message":null}"#,
        r#"{"type":"message_start","message":"text"}"#,
        r#"{"type":"message_start"}"#,
    ];
    let deltas: &[&str] = &[
        r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":null}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":"max_tokens"}}"#,
        r#"{"type":"message_delta","delta":{"stop_reason":3}}"#,
        r#"{"type":"message_delta","delta":[]}"#,
        r#"{"type":"message_delta"}"#,
    ];
    let text =
        br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
    let block =
        br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#;
    let u = Usage {
        input_tokens: 3,
        output_tokens: 5,
        ..Usage::default()
    };
    for include_usage in [false, true] {
        for start in starts {
            for delta in deltas {
                let events: [(&str, &[u8]); 7] = [
                    ("message_start", start.as_bytes()),
                    ("message_start", starts[0].as_bytes()),
                    ("content_block_start", block),
                    ("ping", br#"{"type":"ping"}"#),
                    ("content_block_delta", text),
                    ("message_delta", delta.as_bytes()),
                    ("message_stop", br#"{"type":"message_stop"}"#),
                ];
                let mut named = StreamTranslator::new(ctx(include_usage), "hint", 7);
                let mut general = StreamTranslator::new(ctx(include_usage), "hint", 7);
                let (mut a, mut b) = (Vec::new(), Vec::new());
                for (name, data) in events {
                    named.on_event(name, data, &u, &mut a);
                    general.on_event("", data, &u, &mut b);
                }
                assert_eq!(
                    String::from_utf8_lossy(&a),
                    String::from_utf8_lossy(&b),
                    "start {start}, delta {delta}"
                );
            }
        }
    }
}

/// Pieces of Anthropic events, to build hostile streams: valid events out of order, broken JSON, wrong types.
fn hostile_data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..64),
        Just(br#"{"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1}}}"#.to_vec()),
        Just(br#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#.to_vec()),
        Just(br#"{"type":"content_block_start","index":4294967296,"content_block":{"type":"tool_use","id":"t","name":"n","input":{}}}"#.to_vec()),
        Just(br#"{"type":"content_block_start","index":1,"content_block":{"type":"thinking","thinking":""}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi \ud800"}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"a\":"}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":9,"delta":{"type":"thinking_delta","thinking":"t"}}"#.to_vec()),
        Just(br#"{"type":"content_block_delta","index":0,"delta":null}"#.to_vec()),
        Just(br#"{"type":"content_block_stop","index":0}"#.to_vec()),
        Just(br#"{"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":-5}}"#.to_vec()),
        Just(br#"{"type":"message_stop"}"#.to_vec()),
        Just(br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#.to_vec()),
        Just(br#"{"type":"error","error":"not an object"}"#.to_vec()),
        Just(b"{}".to_vec()),
        Just(b"[]".to_vec()),
        Just(b"".to_vec()),
    ]
}

fn hostile_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("message_start".to_owned()),
        Just("content_block_start".to_owned()),
        Just("content_block_delta".to_owned()),
        Just("content_block_stop".to_owned()),
        Just("message_delta".to_owned()),
        Just("message_stop".to_owned()),
        Just("error".to_owned()),
        Just("ping".to_owned()),
        Just("message".to_owned()),
        Just("".to_owned()),
        "[a-z_]{1,12}".prop_map(|s| s),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    /// An untrusted upstream's stream, in any order and shape, never panics the translator, and whatever it emits
    /// is UTF-8 (the client gets text/event-stream).
    #[test]
    fn hostile_streams_never_panic(
        events in proptest::collection::vec((hostile_name(), hostile_data()), 0..40),
        include_usage in any::<bool>(),
        end_with_error in any::<bool>(),
    ) {
        let mut st = StreamTranslator::new(ctx(include_usage), "req", 0);
        let mut out = Vec::new();
        let u = Usage::default();
        for (name, data) in &events {
            st.on_event(name, data, &u, &mut out);
        }
        if end_with_error {
            st.on_upstream_error("broken", "server_error", &mut out);
        }
        prop_assert!(std::str::from_utf8(&out).is_ok());
    }
}
