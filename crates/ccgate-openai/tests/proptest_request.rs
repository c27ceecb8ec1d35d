//! Property tests for request translation (docs/protocols.md §2.9, §4.2):
//! * random valid OpenAI conversations always translate into an Anthropic request that a strict
//!   validator accepts (the one allowed refusal: a prefill on a model without prefill support);
//! * arbitrary bytes and arbitrary JSON never panic.

use ccgate_meter::ModelCaps;
use ccgate_openai::{translate_request, TranslateOptions};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn block_type(b: &Value) -> &str {
    b["type"].as_str().unwrap_or("")
}

/// Blocks of a message, with a string content seen as one text block.
fn blocks(m: &Value) -> Result<Vec<Value>, String> {
    match &m["content"] {
        Value::String(s) => Ok(vec![json!({"type":"text","text":s})]),
        Value::Array(a) if !a.is_empty() => Ok(a.clone()),
        other => Err(format!("bad content {other}")),
    }
}

/// A strict validator of the Anthropic rules the translator must pre-empt (§2.9).
fn validate(body: &Value, caps: &ModelCaps) -> Result<(), String> {
    let obj = body.as_object().ok_or("body not an object")?;
    if !obj["model"].is_string() {
        return Err("model".into());
    }
    let max_tokens = obj
        .get("max_tokens")
        .and_then(Value::as_u64)
        .ok_or("max_tokens missing")?;
    if max_tokens < 1 || max_tokens > u64::from(caps.max_output_tokens) {
        return Err(format!("max_tokens {max_tokens} out of range"));
    }
    // system: top level only, text blocks, never blank.
    if let Some(sys) = obj.get("system") {
        for b in sys.as_array().ok_or("system not an array")? {
            if block_type(b) != "text" || b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                return Err(format!("bad system block {b}"));
            }
        }
    }
    // tools
    let mut tool_names = HashSet::new();
    if let Some(tools) = obj.get("tools") {
        let tools = tools.as_array().ok_or("tools not an array")?;
        if tools.is_empty() {
            return Err("empty tools".into());
        }
        for t in tools {
            let n = t["name"].as_str().ok_or("tool without name")?;
            if !valid_name(n, 128) || !tool_names.insert(n.to_owned()) {
                return Err(format!("bad or duplicate tool name {n:?}"));
            }
            if t["input_schema"]["type"] != "object" {
                return Err("input_schema.type must be object".into());
            }
        }
    }
    let thinking_on = obj.get("thinking").is_some();
    if let Some(tc) = obj.get("tool_choice") {
        if tool_names.is_empty() {
            return Err("tool_choice without tools".into());
        }
        let kind = tc["type"].as_str().ok_or("tool_choice.type")?;
        match kind {
            "auto" | "any" => {}
            "none" if tc.get("disable_parallel_tool_use").is_some() => {
                return Err("disable_parallel on none".into())
            }
            "none" => {}
            "tool" if tool_names.contains(tc["name"].as_str().unwrap_or("")) => {}
            _ => return Err(format!("bad tool_choice {tc}")),
        }
        if thinking_on && matches!(kind, "any" | "tool") {
            return Err("forced tool_choice with thinking".into());
        }
    }
    if let Some(th) = obj.get("thinking") {
        match th["type"].as_str() {
            Some("adaptive") if caps.adaptive_thinking => {}
            Some("enabled") if !caps.adaptive_thinking => {
                let b = th["budget_tokens"].as_u64().ok_or("budget")?;
                if b < 1024 || b >= max_tokens {
                    return Err(format!("budget {b} vs max_tokens {max_tokens}"));
                }
            }
            _ => return Err(format!("bad thinking {th}")),
        }
        for k in ["temperature", "top_p", "top_k"] {
            if obj.contains_key(k) {
                return Err(format!("{k} with thinking"));
            }
        }
    }
    if caps.exclusive_temperature_top_p
        && obj.contains_key("temperature")
        && obj.contains_key("top_p")
    {
        return Err("temperature and top_p together".into());
    }
    if let Some(t) = obj.get("temperature").and_then(Value::as_f64) {
        if !(0.0..=1.0).contains(&t) {
            return Err("temperature out of range".into());
        }
    }
    if let Some(stops) = obj.get("stop_sequences") {
        for s in stops.as_array().ok_or("stop_sequences")? {
            if s.as_str().is_none_or(|s| s.trim().is_empty()) {
                return Err("blank stop sequence".into());
            }
        }
    }
    // messages
    let msgs = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("messages")?;
    if msgs.is_empty() {
        return Err("no messages".into());
    }
    let mut all_ids = HashSet::new();
    let mut any_tool_blocks = false;
    let mut prev_uses: Vec<String> = Vec::new();
    for (k, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().ok_or("role")?;
        let expected = if k % 2 == 0 { "user" } else { "assistant" };
        if role != expected {
            return Err(format!("message {k} has role {role}, expected {expected}"));
        }
        let bl = blocks(m)?;
        let mut uses = Vec::new();
        let mut results = Vec::new();
        let mut seen_other = false;
        for (j, b) in bl.iter().enumerate() {
            match block_type(b) {
                "text" => {
                    if b["text"].as_str().is_none_or(|t| t.trim().is_empty()) {
                        return Err(format!("blank text block in message {k}"));
                    }
                    seen_other = true;
                }
                "tool_use" if role == "assistant" => {
                    any_tool_blocks = true;
                    let id = b["id"].as_str().ok_or("tool_use id")?;
                    let name = b["name"].as_str().ok_or("tool_use name")?;
                    if !valid_name(id, usize::MAX)
                        || !valid_name(name, 128)
                        || !b["input"].is_object()
                    {
                        return Err(format!("bad tool_use {b}"));
                    }
                    if !all_ids.insert(id.to_owned()) {
                        return Err(format!("duplicate tool_use id {id}"));
                    }
                    uses.push(id.to_owned());
                }
                "tool_result" if role == "user" => {
                    any_tool_blocks = true;
                    if seen_other {
                        return Err(format!("tool_result after other blocks in message {k}"));
                    }
                    results.push(b["tool_use_id"].as_str().ok_or("tool_use_id")?.to_owned());
                    if let Some(c) = b.get("content") {
                        match c {
                            Value::String(s) if !s.trim().is_empty() => {}
                            Value::Array(a) if !a.is_empty() => {}
                            _ => return Err(format!("bad tool_result content {c}")),
                        }
                    }
                }
                "thinking" | "redacted_thinking" if role == "assistant" && j == 0 => {}
                "image" | "document" if role == "user" => seen_other = true,
                other => return Err(format!("block {other} not allowed in {role} message {k}")),
            }
        }
        if role == "user" {
            let res: HashSet<&String> = results.iter().collect();
            if res.len() != results.len() {
                return Err("duplicate tool_result".into());
            }
            let exp: HashSet<&String> = prev_uses.iter().collect();
            if res != exp {
                return Err(format!(
                    "message {k}: tool_results {res:?} do not match previous tool_uses {exp:?}"
                ));
            }
        } else if !results.is_empty() {
            return Err("tool_result in assistant message".into());
        }
        prev_uses = if role == "assistant" {
            uses
        } else {
            Vec::new()
        };
    }
    if !prev_uses.is_empty() {
        return Err("trailing tool_use without result".into());
    }
    if any_tool_blocks && tool_names.is_empty() {
        return Err("tool blocks without tools".into());
    }
    if let Some(last) = msgs.last().filter(|m| m["role"] == "assistant") {
        if !caps.prefill {
            return Err("prefill on a model without prefill".into());
        }
        if thinking_on {
            return Err("prefill with thinking".into());
        }
        let bl = blocks(last)?;
        if let Some(t) = bl.last().and_then(|b| b["text"].as_str()) {
            if t != t.trim_end() {
                return Err("prefill with trailing whitespace".into());
            }
        }
    }
    // Thinking on in a tool loop needs a leading thinking block; the generator never supplies
    // one, so thinking must be off whenever the last assistant turn called tools.
    if thinking_on {
        let last_user = msgs.iter().rposition(|m| {
            m["role"] == "user"
                && !blocks(m)
                    .unwrap_or_default()
                    .iter()
                    .any(|b| block_type(b) == "tool_result")
        });
        let current = &msgs[last_user.map_or(0, |i| i + 1)..];
        if current.iter().any(|m| {
            blocks(m)
                .unwrap_or_default()
                .iter()
                .any(|b| block_type(b) == "tool_use")
        }) {
            return Err("thinking on in a tool loop without thinking block".into());
        }
    }
    Ok(())
}

// ---- generators ---------------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("   ".to_owned()),
        Just("\n".to_owned()),
        "[a-zA-Z ]{1,12}",
        "[a-z]{1,6}[ \n]{1,3}",
        "[ -~\\u{e9}\\u{4e2d}]{0,10}",
    ]
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(Value::String),
        prop::collection::vec(text(), 0..3).prop_map(|ts| Value::Array(
            ts.into_iter()
                .map(|t| json!({"type":"text","text":t}))
                .collect()
        )),
    ]
}

const NAMES: &[&str] = &[
    "get_weather",
    "fs/read",
    "fs_read",
    "mcp.server.tool",
    "日本",
    "a b",
    "x",
    "json_response",
];

fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(NAMES).prop_map(str::to_owned),
        "[a-zA-Z0-9_./: -]{1,20}",
        Just("n".repeat(130)),
    ]
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("{\"city\":\"Paris\"}")),
        Just(json!("")),
        Just(json!("{\"trunc")),
        Just(json!("[1,2]")),
        Just(Value::Null),
        Just(json!("{}")),
    ]
}

#[derive(Debug, Clone)]
enum Seg {
    System(Value),
    User(Value),
    /// Assistant text, tool calls (name, args), result contents, an interleaved user message.
    Assistant(Value, Vec<(String, Value)>, Vec<Value>, Option<Value>),
}

fn seg() -> impl Strategy<Value = Seg> {
    prop_oneof![
        1 => content().prop_map(Seg::System),
        3 => content().prop_map(Seg::User),
        4 => (
            prop_oneof![content(), Just(Value::Null)],
            prop::collection::vec((tool_name(), arguments()), 0..4),
            prop::collection::vec(prop_oneof![content(), Just(Value::Null)], 4),
            prop::option::weighted(0.2, content()),
        )
            .prop_map(|(c, calls, results, inter)| Seg::Assistant(c, calls, results, inter)),
    ]
}

const ID_PREFIXES: &[&str] = &["call_", "call:", "toolu_", "id with space ", "call_0"];

fn build(segs: &[Seg], id_prefix: usize, shuffle: bool) -> (Vec<Value>, Vec<String>) {
    let mut msgs = Vec::new();
    let mut names = Vec::new();
    for (k, s) in segs.iter().enumerate() {
        match s {
            Seg::System(c) => msgs.push(json!({"role":"system","content":c})),
            Seg::User(c) => msgs.push(json!({"role":"user","content":c})),
            Seg::Assistant(c, calls, results, inter) => {
                let prefix = ID_PREFIXES[(id_prefix + k) % ID_PREFIXES.len()];
                let ids: Vec<String> = (0..calls.len()).map(|i| format!("{prefix}{i}")).collect();
                let mut m = json!({"role":"assistant","content":c});
                if !calls.is_empty() {
                    m["tool_calls"] = Value::Array(
                        calls
                            .iter()
                            .zip(&ids)
                            .map(|((n, a), id)| {
                                names.push(n.clone());
                                json!({"id":id,"type":"function","function":{"name":n,"arguments":a}})
                            })
                            .collect(),
                    );
                }
                msgs.push(m);
                if let Some(u) = inter {
                    if !calls.is_empty() {
                        msgs.push(json!({"role":"user","content":u}));
                    }
                }
                let mut order: Vec<usize> = (0..calls.len()).collect();
                if shuffle {
                    order.reverse();
                }
                for i in order {
                    msgs.push(json!({"role":"tool","tool_call_id":ids[i],"content":results[i % results.len()]}));
                }
            }
        }
    }
    (msgs, names)
}

fn caps() -> impl Strategy<Value = ModelCaps> {
    (
        any::<[bool; 6]>(),
        prop::sample::select(vec!["high", "xhigh", "max"]),
        1024u32..70000,
    )
        .prop_map(|(f, max_effort, max_out)| ModelCaps {
            max_output_tokens: max_out,
            default_max_tokens: 8192,
            adaptive_thinking: f[0],
            thinking: f[1],
            exclusive_temperature_top_p: f[2],
            fixed_sampling: f[3],
            prefill: f[4],
            structured_outputs: f[5],
            max_effort,
        })
}

#[derive(Debug, Clone)]
struct Extras {
    tools: Option<Vec<String>>,
    tool_choice: Option<Value>,
    parallel: Option<bool>,
    effort: Option<&'static str>,
    max_tokens: Option<Value>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<Value>,
    json_schema: bool,
}

fn extras() -> impl Strategy<Value = Extras> {
    (
        prop::option::of(
            prop::collection::btree_set(tool_name(), 0..4).prop_map(|s| s.into_iter().collect()),
        ),
        prop::option::of(prop::sample::select(vec![
            json!("auto"),
            json!("none"),
            json!("required"),
        ])),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            "none", "minimal", "low", "medium", "high", "xhigh", "max",
        ])),
        prop::option::of(prop_oneof![
            (1u64..200_000).prop_map(Value::from),
            (0.6f64..5000.0).prop_map(Value::from)
        ]),
        prop::option::of(0.0f64..2.0),
        prop::option::of(0.0f64..1.0),
        prop::option::of(prop_oneof![
            Just(json!("END")),
            Just(json!([" ", "x", "\n"]))
        ]),
        any::<bool>(),
    )
        .prop_map(
            |(
                tools,
                tool_choice,
                parallel,
                effort,
                max_tokens,
                temperature,
                top_p,
                stop,
                json_schema,
            )| Extras {
                tools,
                tool_choice,
                parallel,
                effort,
                max_tokens,
                temperature,
                top_p,
                stop,
                json_schema,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn valid_openai_requests_translate_to_valid_anthropic_requests(
        segs in prop::collection::vec(seg(), 1..9),
        id_prefix in 0usize..5,
        shuffle in any::<bool>(),
        caps in caps(),
        ex in extras(),
    ) {
        let (msgs, history_names) = build(&segs, id_prefix, shuffle);
        let mut body = Map::new();
        body.insert("model".into(), json!("gpt-4o"));
        body.insert("messages".into(), Value::Array(msgs.clone()));
        let mut declared: Vec<String> = Vec::new();
        if let Some(tools) = &ex.tools {
            declared = tools.clone();
            body.insert("tools".into(), Value::Array(tools.iter().map(|n| json!({"type":"function","function":{"name":n}})).collect()));
            if !tools.is_empty() {
                if let Some(tc) = &ex.tool_choice { body.insert("tool_choice".into(), tc.clone()); }
            }
        }
        if let Some(p) = ex.parallel { body.insert("parallel_tool_calls".into(), json!(p)); }
        if let Some(e) = ex.effort { body.insert("reasoning_effort".into(), json!(e)); }
        if let Some(m) = &ex.max_tokens { body.insert("max_completion_tokens".into(), m.clone()); }
        if let Some(t) = ex.temperature { body.insert("temperature".into(), json!(t)); }
        if let Some(t) = ex.top_p { body.insert("top_p".into(), json!(t)); }
        if let Some(s) = &ex.stop { body.insert("stop".into(), s.clone()); }
        if ex.json_schema {
            body.insert("response_format".into(), json!({"type":"json_schema","json_schema":{"name":"o","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}));
        }
        let bytes = serde_json::to_vec(&Value::Object(body)).unwrap();
        let opts = TranslateOptions::new("claude-x", "gpt-4o", caps, "tenant");
        match translate_request(&bytes, &opts) {
            Ok(t) => {
                let out: Value = serde_json::from_slice(&t.body).unwrap();
                if let Err(e) = validate(&out, &caps) {
                    prop_assert!(false, "{}\nrequest: {}\nresult: {}", e, String::from_utf8_lossy(&bytes), out);
                }
                // Every upstream tool name maps back to a name the client used.
                let client_names: HashSet<&String> = history_names.iter().chain(&declared).collect();
                let mut seen: HashMap<String, String> = HashMap::new();
                for m in out["messages"].as_array().unwrap() {
                    for b in blocks(m).unwrap() {
                        if block_type(&b) == "tool_use" {
                            let up = b["name"].as_str().unwrap().to_owned();
                            let back = t.response_ctx.client_tool_name(&up).to_owned();
                            prop_assert!(client_names.contains(&back), "{} -> {}", up, back);
                            if let Some(prev) = seen.insert(up.clone(), back.clone()) {
                                prop_assert_eq!(prev, back);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                // The only refusal allowed for a valid conversation: prefill on a model without it.
                let last_is_assistant = msgs
                    .iter()
                    .rfind(|m| m["role"] != "system")
                    .is_some_and(|m| m["role"] == "assistant" && m.get("tool_calls").is_none());
                prop_assert!(
                    !caps.prefill && last_is_assistant && e.message.contains("prefill"),
                    "unexpected 400: {}\nrequest: {}", e, String::from_utf8_lossy(&bytes)
                );
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256), caps in caps()) {
        let opts = TranslateOptions::new("c", "c", caps, "t");
        let _ = translate_request(&bytes, &opts);
    }

    #[test]
    fn arbitrary_json_never_panics(v in any_json(), caps in caps()) {
        let opts = TranslateOptions::new("c", "c", caps, "t");
        let _ = translate_request(v.to_string().as_bytes(), &opts);
    }

    #[test]
    fn near_valid_requests_never_panic(v in near_valid_request(), caps in caps()) {
        let opts = TranslateOptions::new("c", "c", caps, "t");
        let _ = translate_request(v.to_string().as_bytes(), &opts);
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 40, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Objects shaped like requests, with known keys holding values of random types.
fn near_valid_request() -> impl Strategy<Value = Value> {
    const TOP: &[&str] = &[
        "model",
        "messages",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "n",
        "stream",
        "stream_options",
        "response_format",
        "reasoning_effort",
        "user",
        "safety_identifier",
        "functions",
    ];
    const MSG: &[&str] = &[
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "thinking_blocks",
        "cache_control",
        "name",
    ];
    const ROLES: &[&str] = &[
        "system",
        "developer",
        "user",
        "assistant",
        "tool",
        "function",
        "bogus",
    ];
    let msg = (
        prop::sample::select(ROLES),
        prop::collection::btree_map(prop::sample::select(MSG), any_json(), 0..4),
        prop::option::of(content()),
    )
        .prop_map(|(role, fields, c)| {
            let mut m: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            m.insert("role".into(), json!(role));
            if let Some(c) = c {
                m.insert("content".into(), c);
            }
            Value::Object(m)
        });
    (
        prop::collection::btree_map(prop::sample::select(TOP), any_json(), 0..6),
        prop::collection::vec(msg, 0..6),
    )
        .prop_map(|(fields, msgs)| {
            let mut o: Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            o.insert("model".into(), json!("m"));
            o.entry("messages").or_insert(Value::Array(msgs));
            Value::Object(o)
        })
}
