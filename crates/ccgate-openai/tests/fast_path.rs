//! The request fast path (`translate_request_fast`, which copies strings and schemas as JSON text)
//! against the reference path (`translate_request_reference`, a `serde_json::Value` tree):
//! * whenever the fast path answers, the reference path accepts the request and produces the same
//!   JSON value, context and warnings;
//! * the fast path does answer for ordinary requests, whatever their JSON spelling (escapes,
//!   `\uXXXX`, whitespace), so it cannot silently stop being used;
//! * damaged requests never make the two paths disagree.

mod common;

use ccgate_meter::ModelCaps;
use ccgate_openai::{
    parse_request, requested_model, translate_request, translate_request_fast,
    translate_request_reference,
};
use common::{caps_adaptive, caps_budget, opts};
use proptest::prelude::*;
use serde_json::{json, Value};

/// `requested_model` gives the model a `Value` tree holds, and refuses what that refuses;
/// `parse_request` finds the same model, or the same error.
fn check_requested_model(body: &[u8]) {
    let expected = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("model").and_then(Value::as_str).map(str::to_owned))
        .filter(|m| !m.is_empty());
    assert_eq!(requested_model(body).ok(), expected);
    match (parse_request(body), requested_model(body)) {
        (Ok(p), Ok(m)) => assert_eq!(p.model(), m),
        (Err(a), Err(b)) => assert_eq!(a.to_body(), b.to_body()),
        (a, b) => panic!(
            "parse_request {:?} vs requested_model {:?}",
            a.is_ok(),
            b.is_ok()
        ),
    }
}

/// Compares both paths on `body`; returns whether the fast path answered.
fn compare(body: &[u8], caps: ModelCaps) -> bool {
    check_requested_model(body);
    let o = opts(caps);
    let fast = translate_request_fast(body, &o);
    let reference = translate_request_reference(body, &o);
    // Read once, then translated: the same answer as `translate_request`.
    if let Ok(parsed) = parse_request(body) {
        let once = parsed
            .translate(&o)
            .map(|t| t.body)
            .map_err(|e| e.to_body());
        let twice = translate_request(body, &o)
            .map(|t| t.body)
            .map_err(|e| e.to_body());
        assert_eq!(once, twice, "{}", String::from_utf8_lossy(body));
    }
    let Some(fast) = fast else {
        return false;
    };
    let reference = match reference {
        Ok(r) => r,
        Err(e) => panic!(
            "fast path accepted what the reference refuses ({e}): {}",
            String::from_utf8_lossy(body)
        ),
    };
    let json = |b: &[u8]| serde_json::from_slice::<Value>(b).expect("body is JSON");
    assert_eq!(
        json(&fast.body),
        json(&reference.body),
        "{}",
        String::from_utf8_lossy(body)
    );
    assert_eq!(fast.warnings, reference.warnings);
    assert_eq!(
        (fast.stream, fast.include_usage),
        (reference.stream, reference.include_usage)
    );
    assert_eq!(
        format!("{:?}", fast.response_ctx),
        format!("{:?}", reference.response_ctx)
    );
    true
}

/// The same JSON value spelled differently: `\uXXXX` for non-ASCII characters (as Python's
/// `json.dumps` does), for `mask`-selected ASCII letters and for `/` (`\/`), inside strings and
/// keys.
fn respell(text: &str, mask: u8) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut in_string = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if !in_string {
            in_string = c == '"';
            out.push(c);
            continue;
        }
        match c {
            '\\' => {
                out.push(c);
                out.extend(chars.next());
            }
            '"' => {
                in_string = false;
                out.push(c);
            }
            '/' => out.push_str("\\/"),
            c if !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c if c.is_ascii_alphabetic() && (c as u8) % 8 == mask % 8 => {
                out.push_str(&format!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

fn golden(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/golden/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

#[test]
fn golden_requests_take_the_fast_path() {
    for name in ["openai_large.json", "worked_example.openai.json"] {
        let body = golden(name);
        for caps in [caps_adaptive(), caps_budget()] {
            assert!(compare(&body, caps), "{name}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            let pretty = serde_json::to_string_pretty(&v).unwrap();
            for mask in 0..8 {
                assert!(compare(respell(&pretty, mask).as_bytes(), caps), "{name}");
            }
        }
    }
}

#[test]
fn long_texts_are_copied_verbatim() {
    let text = "line \"one\"\nline\ttwo \\ \u{e9}\u{1F600}";
    let token = serde_json::to_string(text).unwrap();
    let schema = r#"{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"number","minimum":0.5}}}"#;
    let body = format!(
        r#"{{"model":"m","messages":[{{"role":"system","content":{token}}},{{"role":"user","content":{token}}}],
        "tools":[{{"type":"function","function":{{"name":"f","description":{token},"parameters":{schema}}}}}]}}"#
    );
    let raw = respell(&body, 3);
    let t = translate_request_fast(raw.as_bytes(), &opts(caps_adaptive())).unwrap();
    let out = String::from_utf8(t.body).unwrap();
    // The escaped spelling of the request appears unchanged in the output, and the schema keeps
    // the client's key order.
    assert_eq!(out.matches(&respell(&token, 3)).count(), 3, "{out}");
    assert!(out.contains(&respell(schema, 3)), "{out}");
    assert!(compare(raw.as_bytes(), caps_adaptive()));
}

#[test]
fn unusual_requests_fall_back_to_the_reference_path() {
    let c = caps_adaptive();
    let o = opts(c);
    let cases = [
        // Duplicate keys: Value keeps the last one.
        r#"{"model":"m","messages":[{"role":"user","content":"a","content":"b"}]}"#,
        // A number serde_json might round differently when re-serialised.
        r#"{"model":"m","temperature":0.30000000000000004,"messages":[{"role":"user","content":"a"}]}"#,
        // Lone surrogate: a 400 on the reference path.
        r#"{"model":"m","messages":[{"role":"user","content":"\ud800"}]}"#,
        // Errors are always decided by the reference path.
        r#"{"model":"m","messages":[]}"#,
        r#"{"model":"","messages":[{"role":"user","content":"a"}]}"#,
        r#"{"model":"m","messages":[{"role":"user","content":"a"}],"n":2}"#,
        "[1]",
        "{",
    ];
    for body in cases {
        assert!(
            translate_request_fast(body.as_bytes(), &o).is_none(),
            "{body}"
        );
        let reference = translate_request_reference(body.as_bytes(), &o);
        let full = translate_request(body.as_bytes(), &o);
        match (reference, full) {
            (Ok(a), Ok(b)) => assert_eq!(a.body, b.body),
            (Err(a), Err(b)) => assert_eq!(a.to_body(), b.to_body()),
            (a, b) => panic!("{body}: {a:?} vs {b:?}"),
        }
    }
}

// ---- generated requests ----------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(" \n\t".to_owned()),
        Just("\u{a0}\u{3000}".to_owned()),
        "[a-zA-Z \"\\\\/\n\t]{1,40}",
        "[ -~\\u{e9}\\u{4e2d}\\u{1F600}\\u{1}\\u{7f}]{0,30}",
        "[a-z]{1,8}[ \n]{1,3}",
    ]
}

fn cache_control() -> impl Strategy<Value = Option<Value>> {
    prop::option::weighted(0.2, Just(json!({"type":"ephemeral"})))
}

fn part(policy: &'static str) -> impl Strategy<Value = Value> {
    let image = prop_oneof![
        Just(json!({"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}})),
        Just(json!({"type":"image_url","image_url":"https://example.com/a.png"})),
        Just(json!({"type":"image_url","image_url":{"url":"ftp://nope"}})),
    ];
    let text_part = (text(), cache_control(), any::<bool>()).prop_map(move |(t, cc, refusal)| {
        let mut p = if refusal && policy == "assistant" {
            json!({"type":"refusal","refusal":t})
        } else {
            json!({"type":"text","text":t})
        };
        if let Some(cc) = cc {
            p["cache_control"] = cc;
        }
        p
    });
    prop_oneof![6 => text_part, 1 => image]
}

fn content(policy: &'static str) -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => text().prop_map(Value::String),
        2 => prop::collection::vec(part(policy), 0..3).prop_map(Value::Array),
        1 => Just(Value::Null),
    ]
}

fn schema() -> impl Strategy<Value = Option<Value>> {
    prop_oneof![
        4 => Just(Some(json!({"type":"object","properties":{"path":{"type":"string","description":"A path / file"},
            "limit":{"type":"integer","minimum":1,"maximum":2000,"default":0.5},"flags":{"type":"array","items":{"enum":["a","b"]}}},
            "required":["path"],"additionalProperties":false}))),
        1 => Just(None),
        1 => Just(Some(json!({"properties":{"x":{"type":"string"}}}))),
        1 => Just(Some(json!({"type":"array","items":{}}))),
        1 => Just(Some(json!({"type":"object","$defs":{"A":{"type":"string"}},"properties":{"a":{"$ref":"#/$defs/A"}}}))),
    ]
}

fn tool() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["read", "write", "mcp.fs/read", "grep", "bash"]),
        prop::option::of(text()),
        schema(),
        prop::option::weighted(0.2, any::<bool>()),
        cache_control(),
        any::<bool>(),
    )
        .prop_map(|(name, description, schema, strict, cc, cc_on_function)| {
            let mut f = json!({"name":name});
            if let Some(d) = description {
                f["description"] = json!(d);
            }
            if let Some(s) = schema {
                f["parameters"] = s;
            }
            if let Some(s) = strict {
                f["strict"] = json!(s);
            }
            let mut t = json!({"type":"function"});
            if let Some(cc) = cc {
                if cc_on_function {
                    f["cache_control"] = cc;
                } else {
                    t["cache_control"] = cc;
                }
            }
            t["function"] = f;
            t
        })
}

fn arguments() -> impl Strategy<Value = Value> {
    prop_oneof![
        text().prop_map(|t| json!(json!({"text":t,"n":3,"nested":{"ok":true}}).to_string())),
        Just(json!("")),
        Just(json!("  ")),
        Just(json!("{\"trunc")),
        Just(json!("[1,2]")),
        Just(json!("{\"a\":1,\"a\":2}")),
        Just(json!("{\"big\":1e400}")),
        Just(json!({"as":"object"})),
        Just(Value::Null),
    ]
}

#[derive(Debug, Clone)]
enum Msg {
    System(&'static str, Value, Option<Value>),
    User(Value, Option<Value>),
    /// content, tool calls (name, arguments), tool result contents, thinking blocks, cache_control
    Assistant(
        Value,
        Vec<(&'static str, Value)>,
        Vec<Value>,
        bool,
        Option<Value>,
    ),
}

fn msg() -> impl Strategy<Value = Msg> {
    prop_oneof![
        1 => (prop::sample::select(vec!["system", "developer"]), content("system"), cache_control())
            .prop_map(|(r, c, cc)| Msg::System(r, c, cc)),
        3 => (content("user"), cache_control()).prop_map(|(c, cc)| Msg::User(c, cc)),
        4 => (
            content("assistant"),
            prop::collection::vec((prop::sample::select(vec!["read", "write", "mcp.fs/read", "gone"]), arguments()), 0..3),
            prop::collection::vec(prop_oneof![text().prop_map(Value::String), content("tool")], 3),
            prop::bool::weighted(0.1),
            cache_control(),
        )
            .prop_map(|(c, calls, results, thinking, cc)| Msg::Assistant(c, calls, results, thinking, cc)),
    ]
}

fn build(msgs: &[Msg]) -> Vec<Value> {
    let with_cc = |mut m: Value, cc: &Option<Value>| {
        if let Some(cc) = cc {
            m["cache_control"] = cc.clone();
        }
        m
    };
    let mut out = Vec::new();
    for (k, m) in msgs.iter().enumerate() {
        match m {
            Msg::System(role, c, cc) => out.push(with_cc(json!({"role":role,"content":c}), cc)),
            Msg::User(c, cc) => out.push(with_cc(json!({"role":"user","content":c}), cc)),
            Msg::Assistant(c, calls, results, thinking, cc) => {
                let mut a = json!({"role":"assistant","content":c});
                let ids: Vec<String> = (0..calls.len()).map(|i| format!("call:{k}/{i}")).collect();
                if !calls.is_empty() {
                    a["tool_calls"] = calls
                        .iter()
                        .zip(&ids)
                        .map(|((n, args), id)| json!({"id":id,"type":"function","function":{"name":n,"arguments":args}}))
                        .collect();
                }
                if *thinking {
                    a["thinking_blocks"] =
                        json!([{"type":"thinking","thinking":"hm","signature":"sig"}]);
                }
                out.push(with_cc(a, cc));
                for (i, id) in ids.iter().enumerate() {
                    out.push(with_cc(
                        json!({"role":"tool","tool_call_id":id,"content":results[i]}),
                        cc,
                    ));
                }
            }
        }
    }
    out
}

fn request() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(msg(), 1..7),
        prop::option::of(prop::collection::vec(tool(), 0..4)),
        prop::option::of(prop::sample::select(vec![
            json!("auto"),
            json!("required"),
            json!({"type":"function","function":{"name":"read"}}),
        ])),
        prop::option::of(prop::sample::select(vec!["low", "high", "none"])),
        prop::option::of(prop::sample::select(vec![
            json!({"type":"json_object"}),
            json!({"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"a":{"type":"string"}}}}}),
        ])),
        prop::option::of(prop::sample::select(vec![json!(0.7), json!(1.5), json!(0), json!(2e-1)])),
        any::<bool>(),
    )
        .prop_map(|(msgs, tools, choice, effort, format, temperature, stream)| {
            let mut r = json!({"model":"gpt-4o","messages":build(&msgs),"stream":stream,
                "stream_options":{"include_usage":true},"user":"bob@example.com","max_tokens":1000});
            if let Some(t) = tools {
                r["tools"] = Value::Array(t);
            }
            if let Some(c) = choice {
                r["tool_choice"] = c;
            }
            if let Some(e) = effort {
                r["reasoning_effort"] = json!(e);
            }
            if let Some(f) = format {
                r["response_format"] = f;
            }
            if let Some(t) = temperature {
                r["temperature"] = t;
            }
            r
        })
}

/// Replaces the node at a pseudo-random position (`pick`) with `with`.
fn damage(v: &mut Value, pick: &mut usize, with: &Value) -> bool {
    if *pick == 0 {
        *v = with.clone();
        return true;
    }
    *pick -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| damage(x, pick, with)),
        Value::Object(o) => o.values_mut().any(|x| damage(x, pick, with)),
        _ => false,
    }
}

fn any_caps() -> impl Strategy<Value = ModelCaps> {
    (any::<[bool; 4]>(), 1024u32..70000).prop_map(|(f, max)| {
        let mut c = if f[0] { caps_adaptive() } else { caps_budget() };
        c.prefill = f[1];
        c.structured_outputs = f[2];
        c.thinking = f[3];
        c.max_output_tokens = max;
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn fast_path_matches_reference(req in request(), caps in any_caps(), mask in 0u8..9, pretty in any::<bool>()) {
        let text = if pretty { serde_json::to_string_pretty(&req).unwrap() } else { req.to_string() };
        let text = if mask == 8 { text } else { respell(&text, mask) };
        let fast = compare(text.as_bytes(), caps);
        // Outside the fast path only: refused requests, and the one duplicate-key argument string
        // (decoded and parsed on the reference path; fine) — so a valid request must be fast.
        let reference_ok = translate_request_reference(text.as_bytes(), &opts(caps)).is_ok();
        prop_assert_eq!(fast, reference_ok, "{}", text);
    }

    #[test]
    fn damaged_requests_agree(req in request(), caps in any_caps(), pick in 0usize..200,
        with in prop::sample::select(vec![Value::Null, json!(1), json!("x"), json!([]), json!({}), json!(" "), json!([{"type":"text"}])])) {
        let mut req = req;
        let mut p = pick;
        damage(&mut req, &mut p, &with);
        compare(req.to_string().as_bytes(), caps);
    }
}
