//! Anthropic answer → Responses `response` object and output items (docs/responses.md §3).

use super::{usage_json, ResponsesContext, ToolKind, CUSTOM_INPUT_FIELD, REDACTED_PREFIX};
use crate::error::UpstreamFormatError;
use ccgate_meter::Usage;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// Ids of one response and its items: `resp_<id>`, and `<kind>_<id>_<n>` for items, distinct per item.
#[derive(Debug, Clone)]
pub(crate) struct Ids {
    base: String,
}

impl Ids {
    /// `hint` is the Anthropic message id (its `msg_` prefix dropped) or the gateway's request id.
    pub(crate) fn new(hint: &str) -> Self {
        let base: String = hint
            .strip_prefix("msg_")
            .unwrap_or(hint)
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        Self { base }
    }

    pub(crate) fn response(&self) -> String {
        format!("resp_{}", self.base)
    }

    pub(crate) fn item(&self, prefix: &str, n: usize) -> String {
        format!("{prefix}_{}_{n}", self.base)
    }
}

/// The `status` and `incomplete_details` of a finished answer, from Anthropic's `stop_reason`.
pub(crate) fn status_for(stop_reason: Option<&str>) -> (&'static str, Value) {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => {
            ("incomplete", json!({"reason": "max_output_tokens"}))
        }
        Some("refusal") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

/// `response.failed`'s `error.code` for an Anthropic error type, chosen for what Codex does with it
/// (docs/responses.md §4.3): overloaded and quota errors are fatal at once, rate limits wait, the rest retries.
pub fn failed_code(anthropic_type: &str, message: &str) -> &'static str {
    match anthropic_type {
        "overloaded_error" => "server_is_overloaded",
        "rate_limit_error" => "rate_limit_exceeded",
        "billing_error" => "insufficient_quota",
        "invalid_request_error" | "request_too_large"
            if message.to_ascii_lowercase().contains("prompt is too long") =>
        {
            "context_length_exceeded"
        }
        "invalid_request_error" | "request_too_large" | "not_found_error" | "permission_error" => {
            "invalid_prompt"
        }
        _ => "server_error",
    }
}

/// How a response stands: its `status`, `usage`, `incomplete_details` and `error`.
pub(crate) struct Standing<'a> {
    pub status: &'a str,
    pub usage: Option<&'a Usage>,
    pub incomplete: Value,
    pub error: Value,
}

/// The response object (docs/responses.md §3.1). What the client sent is echoed raw.
#[derive(Serialize)]
pub(crate) struct ResponseObject<'x> {
    id: &'x str,
    object: &'static str,
    created_at: i64,
    status: &'x str,
    error: Value,
    incomplete_details: Value,
    instructions: Option<&'x RawValue>,
    model: &'x str,
    output: Vec<Value>,
    parallel_tool_calls: bool,
    previous_response_id: Option<()>,
    store: bool,
    text: Value,
    tool_choice: RawOr<'x>,
    tools: RawOr<'x>,
    truncation: &'static str,
    metadata: RawOr<'x>,
    usage: Option<Value>,
}

/// A raw value the client sent, or CCGate's default (JSON text).
pub(crate) enum RawOr<'x> {
    Raw(&'x RawValue),
    Default(&'static str),
}

impl Serialize for RawOr<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            RawOr::Raw(r) => r.serialize(s),
            RawOr::Default(text) => match serde_json::from_str::<&RawValue>(text) {
                Ok(r) => r.serialize(s),
                Err(e) => Err(serde::ser::Error::custom(e)),
            },
        }
    }
}

fn raw_or<'x>(v: &'x Option<Box<RawValue>>, default: &'static str) -> RawOr<'x> {
    match v {
        Some(r) => RawOr::Raw(r),
        None => RawOr::Default(default),
    }
}

/// The response object around `output`.
pub(crate) fn response_object<'x>(
    ctx: &'x ResponsesContext,
    id: &'x str,
    created_at: i64,
    output: Vec<Value>,
    standing: Standing<'x>,
) -> ResponseObject<'x> {
    let Standing {
        status,
        usage,
        incomplete,
        error,
    } = standing;
    ResponseObject {
        id,
        object: "response",
        created_at,
        status,
        error,
        incomplete_details: incomplete,
        instructions: ctx.instructions.as_deref(),
        model: &ctx.client_model,
        output,
        parallel_tool_calls: ctx.parallel_tool_calls,
        previous_response_id: None,
        store: false,
        text: json!({"format": {"type": "text"}}),
        tool_choice: raw_or(&ctx.tool_choice, "\"auto\""),
        tools: raw_or(&ctx.tools, "[]"),
        truncation: "disabled",
        metadata: raw_or(&ctx.metadata, "{}"),
        usage: usage.map(usage_json),
    }
}

/// A finished `message` item with one `output_text` part.
pub(crate) fn message_item(id: &str, text: &str) -> Value {
    json!({"type": "message", "id": id, "status": "completed", "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// A finished `reasoning` item: the thinking text as its summary, the signature as `encrypted_content`
/// (docs/responses.md §3.3).
pub(crate) fn reasoning_item(id: &str, thinking: &str, encrypted: &str) -> Value {
    let summary = if thinking.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": thinking}])
    };
    json!({"type": "reasoning", "id": id, "summary": summary, "encrypted_content": encrypted})
}

pub(crate) fn redacted_item(id: &str, data: &str) -> Value {
    reasoning_item(id, "", &format!("{REDACTED_PREFIX}{data}"))
}

/// A finished tool call item: `function_call` (arguments as JSON text, `{}` when empty) or
/// `custom_tool_call` (the raw `input` unwrapped from Claude's `{"input": …}`).
pub(crate) fn call_item(
    kind: &ToolKind<'_>,
    id: &str,
    call_id: &str,
    arguments: &str,
    status: &str,
) -> Value {
    match kind {
        ToolKind::Custom { name, namespace } => {
            let mut v = json!({"type": "custom_tool_call", "id": id, "status": status,
                "call_id": call_id, "name": name, "input": custom_input(arguments)});
            if let Some(ns) = namespace {
                v["namespace"] = json!(ns);
            }
            v
        }
        ToolKind::Function { name, namespace } => {
            let args = if arguments.trim().is_empty() {
                "{}"
            } else {
                arguments
            };
            let mut v = json!({"type": "function_call", "id": id, "status": status,
                "call_id": call_id, "name": name, "arguments": args});
            if let Some(ns) = namespace {
                v["namespace"] = json!(ns);
            }
            v
        }
        ToolKind::JsonAnswer => message_item(id, arguments),
    }
}

/// The raw input of a custom tool from Claude's arguments `{"input": "…"}`; arguments of another shape are
/// passed as their JSON text (the tool then reports what it could not read).
pub(crate) fn custom_input(arguments: &str) -> String {
    match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(mut o)) => match o.remove(CUSTOM_INPUT_FIELD) {
            Some(Value::String(s)) if o.is_empty() => s,
            _ => arguments.to_owned(),
        },
        _ => arguments.to_owned(),
    }
}

/// Translates a non-streamed Anthropic answer into a Responses `response` object.
pub fn translate_responses_response(
    anthropic: &[u8],
    usage: &Usage,
    ctx: &ResponsesContext,
    id_hint: &str,
    now_unix: i64,
) -> Result<Vec<u8>, UpstreamFormatError> {
    let v: Value = serde_json::from_slice(anthropic)
        .map_err(|e| UpstreamFormatError(format!("the upstream answer is not JSON: {e}")))?;
    let Some(content) = v.get("content").and_then(Value::as_array) else {
        return Err(UpstreamFormatError(
            "the upstream answer has no content".into(),
        ));
    };
    let ids = Ids::new(v.get("id").and_then(Value::as_str).unwrap_or(id_hint));
    let mut output = Vec::with_capacity(content.len());
    let str_at = |b: &Value, k: &str| b.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    for block in content {
        let n = output.len();
        match block.get("type").and_then(Value::as_str).unwrap_or("") {
            "text" => {
                let text = str_at(block, "text");
                if !text.is_empty() {
                    output.push(message_item(&ids.item("msg", n), &text));
                }
            }
            "thinking" => output.push(reasoning_item(
                &ids.item("rs", n),
                &str_at(block, "thinking"),
                &str_at(block, "signature"),
            )),
            "redacted_thinking" => {
                output.push(redacted_item(&ids.item("rs", n), &str_at(block, "data")))
            }
            "tool_use" => {
                let name = str_at(block, "name");
                let kind = ctx.tool_kind(&name);
                let args = match block.get("input") {
                    Some(Value::Object(o)) if !o.is_empty() => {
                        serde_json::to_string(o).unwrap_or_else(|_| "{}".into())
                    }
                    _ => "{}".to_owned(),
                };
                let prefix = match kind {
                    ToolKind::Custom { .. } => "ctc",
                    ToolKind::Function { .. } => "fc",
                    ToolKind::JsonAnswer => "msg",
                };
                output.push(call_item(
                    &kind,
                    &ids.item(prefix, n),
                    &str_at(block, "id"),
                    &args,
                    "completed",
                ));
            }
            // Server tools and unknown blocks have no Responses item a client could act on.
            _ => {}
        }
    }
    let (status, incomplete) = status_for(v.get("stop_reason").and_then(Value::as_str));
    let id = ids.response();
    let resp = response_object(
        ctx,
        &id,
        now_unix,
        output,
        Standing {
            status,
            usage: Some(usage),
            incomplete,
            error: Value::Null,
        },
    );
    serde_json::to_vec(&resp).map_err(|e| UpstreamFormatError(e.to_string()))
}
