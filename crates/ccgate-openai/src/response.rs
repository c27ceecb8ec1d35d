//! Anthropic response → OpenAI `chat.completion` (docs/protocols.md §5.1, §5.2, §5.4).

use crate::error::UpstreamFormatError;
use crate::usage::{openai_usage, OpenAiUsage};
use ccgate_meter::Usage;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Everything the response side needs from the request side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseContext {
    /// Echoed as `model` (§5.1).
    pub client_model: String,
    /// Upstream tool name → client name, for names rewritten on the way in (§4.2 step 6).
    pub tool_names: BTreeMap<String, String>,
    /// Upstream name of the forced `json_schema` tool, when that trick was used (§4.1): its input
    /// is the answer and becomes `content`, not a tool call.
    pub json_tool: Option<String>,
    /// Send thinking as `reasoning_content` (§4.3).
    pub expose_reasoning: bool,
    /// Streaming only: send the final usage chunk (§3.3).
    pub include_usage: bool,
}

impl ResponseContext {
    /// The client's name for an upstream tool name.
    pub fn client_tool_name<'a>(&'a self, upstream: &'a str) -> &'a str {
        self.tool_names
            .get(upstream)
            .map_or(upstream, String::as_str)
    }

    pub(crate) fn is_json_tool(&self, name: &str) -> bool {
        self.json_tool.as_deref() == Some(name)
    }
}

/// `stop_reason` → `finish_reason` (§5.2). `tool_calls` only when at least one tool call was
/// actually emitted (§6: never announce calls the client cannot find), otherwise `stop`. Unknown
/// values are `stop`.
pub fn finish_reason(stop_reason: Option<&str>, tool_calls_emitted: usize) -> &'static str {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => "length",
        Some("tool_use") if tool_calls_emitted > 0 => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

#[derive(Serialize)]
struct Completion<'a> {
    id: String,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice; 1],
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct Choice {
    index: u32,
    message: Message,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message {
    role: &'static str,
    content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<String>,
    /// Signed thinking blocks, so clients that echo them (`thinking_blocks` extension, §3.1) can
    /// replay thinking in a tool loop (§4.2 step 13).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thinking_blocks: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ToolCall>,
    refusal: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionCall,
}

#[derive(Serialize)]
pub(crate) struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

/// A view of a JSON object borrowed from the body: known keys fill their fields, unknown keys are skipped, and a
/// repeated key keeps its last value, as a `Value` parse would.
macro_rules! borrowed_view {
    ($(#[$doc:meta])* $name:ident<$lt:lifetime> { $($key:literal => $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Default)]
        struct $name<$lt> {
            $($field: $ty),*
        }

        impl<'de> Deserialize<'de> for $name<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<$name<'de>, A::Error> {
                        let mut out = $name::default();
                        while let Some(k) = m.next_key::<Str<'de>>()? {
                            match k.get().unwrap_or("") {
                                $($key => out.$field = m.next_value()?,)*
                                _ => {
                                    m.next_value::<IgnoredAny>()?;
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

borrowed_view!(
    /// The fields of an Anthropic message that the translation reads. A field of another type than expected
    /// reads as absent. Content blocks stay raw until their type is known, so only thinking blocks and tool
    /// inputs (whose JSON is passed on) are built as values.
    MessageView<'a> {
        "type" => kind: Str<'a>,
        "id" => id: Str<'a>,
        "stop_reason" => stop_reason: Str<'a>,
        "content" => content: RawList<'a>,
    }
);

borrowed_view!(BlockView<'a> {
    "type" => kind: Str<'a>,
    "text" => text: Str<'a>,
    "thinking" => thinking: Str<'a>,
    "name" => name: Str<'a>,
    "id" => id: Str<'a>,
    "input" => input: Option<&'a RawValue>,
});

/// A string field; any other JSON value reads as absent.
#[derive(Default)]
struct Str<'a>(Option<Cow<'a, str>>);

impl Str<'_> {
    fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Str<'de>, E> {
                Ok(Str(Some(Cow::Owned(v))))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_unit<E>(self) -> Result<Str<'de>, E> {
                Ok(Str(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Str<'de>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Str<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Str(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// `content`: the raw blocks of an array; any other JSON value reads as absent.
#[derive(Default)]
struct RawList<'a>(Option<Vec<&'a RawValue>>);

impl<'de> Deserialize<'de> for RawList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<RawList<'de>, A::Error> {
                let mut blocks = Vec::with_capacity(s.size_hint().unwrap_or(0).min(16));
                while let Some(b) = s.next_element::<&'de RawValue>()? {
                    blocks.push(b);
                }
                Ok(RawList(Some(blocks)))
            }
            fn visit_str<E>(self, _: &str) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_unit<E>(self) -> Result<RawList<'de>, E> {
                Ok(RawList(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<RawList<'de>, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(RawList(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Translates a non-streaming Anthropic message (§5.1). `usage` is the caller's metered parse of
/// the same body (one parser for both paths, §2.6); `now_unix` becomes `created`.
///
/// * all `text` blocks are concatenated (`null` if none): taking `content[0]` loses the answer
///   whenever thinking comes first;
/// * `tool_use` blocks become `tool_calls` in order, `arguments` = JSON of `input`, original names
///   restored; the `json_schema` tool's input becomes content instead;
/// * server-tool blocks are not tool calls (they already ran) and are skipped;
/// * thinking → `reasoning_content` (+ `thinking_blocks`) only when `expose_reasoning`.
pub fn translate_response(
    anthropic_body: &[u8],
    usage: &Usage,
    ctx: &ResponseContext,
    now_unix: i64,
) -> Result<Vec<u8>, UpstreamFormatError> {
    let not_json = |e: serde_json::Error| UpstreamFormatError(format!("not JSON: {e}"));
    // Any JSON that is not an object reads as an object without fields, as `Value::get` would see it.
    let msg = match serde_json::from_slice::<MessageView<'_>>(anthropic_body) {
        Ok(m) => m,
        Err(e) if e.is_data() => {
            serde_json::from_slice::<IgnoredAny>(anthropic_body).map_err(not_json)?;
            MessageView::default()
        }
        Err(e) => return Err(not_json(e)),
    };
    if msg.kind.get() == Some("error") {
        return Err(UpstreamFormatError(
            "an error object in a success response".into(),
        ));
    }
    let Some(blocks) = msg.content.0.as_deref() else {
        return Err(UpstreamFormatError("no content array".into()));
    };
    let mut answer = Answer::default();
    let as_value = |raw: &RawValue| serde_json::from_str::<Value>(raw.get()).map_err(not_json);
    for raw in blocks {
        // A block that is not an object has no type and is skipped.
        let Ok(b) = serde_json::from_str::<BlockView<'_>>(raw.get()) else {
            continue;
        };
        match b.kind.get().unwrap_or("") {
            "text" => answer.text(b.text.get().unwrap_or("")),
            "thinking" => answer.thinking(b.thinking.get().unwrap_or(""), as_value(raw)?),
            "redacted_thinking" => answer.redacted_thinking(as_value(raw)?),
            "tool_use" => {
                let input = match b.input {
                    Some(v) if v.get() != "null" => as_value(v)?.to_string(),
                    _ => "{}".to_owned(),
                };
                answer.tool_use(
                    b.id.get().unwrap_or(""),
                    b.name.get().unwrap_or(""),
                    input,
                    ctx,
                );
            }
            _ => {}
        }
    }
    answer.completion(msg.id.get(), msg.stop_reason.get(), usage, ctx, now_unix)
}

/// The parts of the answer gathered from the content blocks, in order, then written as a `chat.completion`.
#[derive(Default)]
struct Answer {
    text: Option<String>,
    reasoning: String,
    thinking_blocks: Vec<Value>,
    tool_calls: Vec<ToolCall>,
}

impl Answer {
    fn text(&mut self, t: &str) {
        self.text.get_or_insert_with(String::new).push_str(t);
    }

    fn thinking(&mut self, thinking: &str, block: Value) {
        self.reasoning.push_str(thinking);
        self.thinking_blocks.push(block);
    }

    fn redacted_thinking(&mut self, block: Value) {
        self.thinking_blocks.push(block);
    }

    /// A `tool_use` block; `input` is its JSON. The `json_schema` tool's input is the answer itself.
    fn tool_use(&mut self, id: &str, name: &str, input: String, ctx: &ResponseContext) {
        if ctx.is_json_tool(name) {
            self.text(&input);
        } else {
            self.tool_calls.push(ToolCall {
                id: id.to_owned(),
                kind: "function",
                function: FunctionCall {
                    name: ctx.client_tool_name(name).to_owned(),
                    arguments: input,
                },
            });
        }
    }

    fn completion(
        self,
        id: Option<&str>,
        stop_reason: Option<&str>,
        usage: &Usage,
        ctx: &ResponseContext,
        now_unix: i64,
    ) -> Result<Vec<u8>, UpstreamFormatError> {
        let finish = finish_reason(stop_reason, self.tool_calls.len());
        let expose = ctx.expose_reasoning;
        let completion = Completion {
            id: format!("chatcmpl-{}", id.unwrap_or("unknown")),
            object: "chat.completion",
            created: now_unix,
            model: &ctx.client_model,
            choices: [Choice {
                index: 0,
                message: Message {
                    role: "assistant",
                    content: self.text,
                    reasoning_content: (expose && !self.reasoning.is_empty())
                        .then_some(self.reasoning),
                    thinking_blocks: if expose {
                        self.thinking_blocks
                    } else {
                        Vec::new()
                    },
                    tool_calls: self.tool_calls,
                    refusal: None,
                },
                logprobs: None,
                finish_reason: finish,
            }],
            usage: openai_usage(usage),
        };
        serde_json::to_vec(&completion).map_err(|e| UpstreamFormatError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
        v.get(key).and_then(Value::as_str)
    }

    /// The reading as it was written over a `Value` tree, before the borrowed view: the reference the view must
    /// agree with. Both hand the blocks to the same [`Answer`].
    fn reference(
        anthropic_body: &[u8],
        usage: &Usage,
        ctx: &ResponseContext,
        now_unix: i64,
    ) -> Result<Vec<u8>, UpstreamFormatError> {
        let msg: Value = serde_json::from_slice(anthropic_body)
            .map_err(|e| UpstreamFormatError(format!("not JSON: {e}")))?;
        if str_field(&msg, "type") == Some("error") {
            return Err(UpstreamFormatError(
                "an error object in a success response".into(),
            ));
        }
        let Some(blocks) = msg.get("content").and_then(Value::as_array) else {
            return Err(UpstreamFormatError("no content array".into()));
        };
        let mut answer = Answer::default();
        for b in blocks {
            match str_field(b, "type").unwrap_or("") {
                "text" => answer.text(str_field(b, "text").unwrap_or("")),
                "thinking" => answer.thinking(str_field(b, "thinking").unwrap_or(""), b.clone()),
                "redacted_thinking" => answer.redacted_thinking(b.clone()),
                "tool_use" => {
                    let input = match b.get("input") {
                        Some(v) if !v.is_null() => v.to_string(),
                        _ => "{}".to_owned(),
                    };
                    let id = str_field(b, "id").unwrap_or("");
                    answer.tool_use(id, str_field(b, "name").unwrap_or(""), input, ctx);
                }
                _ => {}
            }
        }
        answer.completion(
            str_field(&msg, "id"),
            str_field(&msg, "stop_reason"),
            usage,
            ctx,
            now_unix,
        )
    }

    fn contexts() -> [ResponseContext; 2] {
        let mut tool_names = BTreeMap::new();
        tool_names.insert("search_web".to_owned(), "search.web".to_owned());
        [
            ResponseContext {
                client_model: "gpt-4o".into(),
                ..Default::default()
            },
            ResponseContext {
                client_model: "gpt-4o".into(),
                tool_names,
                json_tool: Some("json_response".into()),
                expose_reasoning: true,
                include_usage: false,
            },
        ]
    }

    fn agree(body: &[u8]) {
        let usage = Usage {
            input_tokens: 25,
            output_tokens: 12,
            ..Default::default()
        };
        for ctx in contexts() {
            let want = reference(body, &usage, &ctx, 7).map_err(|e| e.0);
            let got = translate_response(body, &usage, &ctx, 7).map_err(|e| e.0);
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(
                    String::from_utf8_lossy(w),
                    String::from_utf8_lossy(g),
                    "{}",
                    String::from_utf8_lossy(body)
                ),
                (Err(_), Err(_)) => {}
                _ => panic!("{want:?} vs {got:?} for {}", String::from_utf8_lossy(body)),
            }
        }
    }

    #[test]
    fn borrowed_view_agrees_with_the_value_tree() {
        let bodies = [
            json!({"id":"msg_1","type":"message","role":"assistant","model":"m","content":[{"type":"text","text":"Hello \"there\"\né"}],"stop_reason":"end_turn","usage":{"input_tokens":1}}).to_string(),
            json!({"id":"msg_2","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},{"type":"redacted_thinking","data":"xx"},{"type":"text","text":"a"},{"type":"text","text":"b"}]}).to_string(),
            json!({"id":"msg_3","content":[{"type":"tool_use","id":"toolu_1","name":"search_web","input":{"q":"rust","n":[1,2.5,{"z":null}]}},{"type":"tool_use","id":"toolu_2","name":"f","input":null},{"type":"tool_use","id":"toolu_3","name":"g"}],"stop_reason":"tool_use"}).to_string(),
            json!({"content":[{"type":"tool_use","name":"json_response","input":{"answer":42}}],"stop_reason":"tool_use"}).to_string(),
            json!({"id":7,"type":null,"content":[1,"x",null,[],{"type":3},{"type":"text","text":5},{"type":"server_tool_use","id":"s"}],"stop_reason":{"a":1}}).to_string(),
            json!({"type":"error","error":{"type":"overloaded_error"}}).to_string(),
            json!({"id":"m","content":"not an array"}).to_string(),
            json!({"id":"m"}).to_string(),
            r#"{"id":"a","id":"b","content":[{"type":"text","text":"x","text":"y"}],"content":[{"type":"text","text":"last"}]}"#.to_owned(),
            r#"{"content":[{"type":"tool_use","name":"f","input":{"b":1,"a":2,"b":3}}]}"#.to_owned(),
            r#"{"content":[{"type":"text","text":"x"}], "extra": [1, {"k": "v"}], "usage": {"output_tokens": 3}}"#.to_owned(),
            "[1,2]".to_owned(),
            "\"text\"".to_owned(),
            "null".to_owned(),
            "nope".to_owned(),
            r#"{"content":[{"type":"text","text":"unterminated}]}"#.to_owned(),
            r#"{"content":[{"type":"text","text":"x"}]} trailing"#.to_owned(),
        ];
        for b in &bodies {
            agree(b.as_bytes());
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i32>().prop_map(Value::from),
            "[a-z\"\\\n é]{0,8}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn arb_block() -> impl Strategy<Value = Value> {
        let kind = prop_oneof![
            Just(json!("text")),
            Just(json!("thinking")),
            Just(json!("redacted_thinking")),
            Just(json!("tool_use")),
            Just(json!("server_tool_use")),
            arb_json(),
        ];
        let name = prop_oneof![
            Just(json!("search_web")),
            Just(json!("json_response")),
            arb_json()
        ];
        (
            kind,
            arb_json(),
            name,
            arb_json(),
            prop::option::of(arb_json()),
            any::<bool>(),
        )
            .prop_map(|(kind, text, name, id, input, thinking)| {
                let mut b = serde_json::Map::new();
                b.insert("type".into(), kind);
                b.insert(if thinking { "thinking" } else { "text" }.into(), text);
                b.insert("name".into(), name);
                b.insert("id".into(), id);
                if let Some(i) = input {
                    b.insert("input".into(), i);
                }
                Value::Object(b)
            })
    }

    proptest! {
        #[test]
        fn borrowed_view_agrees_on_generated_messages(
            blocks in prop::collection::vec(prop_oneof![arb_block(), arb_json()], 0..5),
            id in arb_json(),
            stop in prop_oneof![Just(json!("tool_use")), Just(json!("end_turn")), arb_json()],
        ) {
            let body = json!({"id": id, "type": "message", "content": blocks, "stop_reason": stop});
            agree(body.to_string().as_bytes());
            agree(serde_json::to_string_pretty(&body).unwrap_or_default().as_bytes());
        }
    }

    #[test]
    fn finish_reasons() {
        assert_eq!(finish_reason(Some("end_turn"), 0), "stop");
        assert_eq!(finish_reason(Some("stop_sequence"), 0), "stop");
        assert_eq!(finish_reason(Some("max_tokens"), 1), "length");
        assert_eq!(finish_reason(Some("tool_use"), 1), "tool_calls");
        assert_eq!(finish_reason(Some("tool_use"), 0), "stop");
        assert_eq!(finish_reason(Some("refusal"), 0), "content_filter");
        assert_eq!(finish_reason(Some("pause_turn"), 0), "stop");
        assert_eq!(
            finish_reason(Some("model_context_window_exceeded"), 0),
            "length"
        );
        assert_eq!(finish_reason(Some("something_new"), 0), "stop");
        assert_eq!(finish_reason(None, 0), "stop");
    }
}
