//! Response rendering: Anthropic JSON messages, SSE events, errors, models list.
//!
//! Everything that does not depend on the request (content blocks, usage, all SSE events
//! after `message_start`) is rendered once into [`Prepared`]; per request only the message
//! id and the echoed model are spliced in.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::Value;

use crate::config::{MockConfig, ToolMode};

pub const DEFAULT_THINKING: &str = "Let me think about this request.";
pub const THINKING_SIGNATURE: &str = "sig_mock";
/// Model echoed when the request has none.
pub const DEFAULT_MODEL_JSON: &[u8] = b"\"claude-mock\"";

/// One content block of the answer.
#[derive(Clone, Debug, PartialEq)]
pub enum Block {
    Thinking(String),
    Text(String),
    ToolUse {
        id: String,
        name: String,
        /// Serialized input JSON.
        input: String,
    },
}

/// What to answer: the content blocks and the stop reason.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub blocks: Vec<Block>,
    pub stop_reason: String,
}

fn stop_reason(cfg: &MockConfig, default: &str) -> String {
    cfg.stop_reason.clone().unwrap_or_else(|| default.into())
}

fn thinking_block(cfg: &MockConfig) -> Option<Block> {
    cfg.thinking.then(|| {
        Block::Thinking(
            cfg.thinking_text
                .clone()
                .unwrap_or_else(|| DEFAULT_THINKING.into()),
        )
    })
}

/// A plain text answer (`text` may differ from `cfg.text` in tool auto mode).
pub fn text_plan(cfg: &MockConfig, text: &str) -> Plan {
    let mut blocks: Vec<Block> = thinking_block(cfg).into_iter().collect();
    blocks.push(Block::Text(text.to_string()));
    Plan {
        blocks,
        stop_reason: stop_reason(cfg, "end_turn"),
    }
}

fn tool_plan(cfg: &MockConfig, tool_id: String, name: String, input: String) -> Plan {
    let mut blocks: Vec<Block> = thinking_block(cfg).into_iter().collect();
    let text = cfg.tool_text.as_deref().unwrap_or(&cfg.text);
    if !text.is_empty() {
        blocks.push(Block::Text(text.to_string()));
    }
    for k in 1..cfg.tool_calls.max(1) {
        blocks.push(Block::ToolUse {
            id: format!("{tool_id}_{k}"),
            name: name.clone(),
            input: input.clone(),
        });
    }
    blocks.insert(
        blocks.len() + 1 - cfg.tool_calls.max(1) as usize,
        Block::ToolUse {
            id: tool_id,
            name,
            input,
        },
    );
    Plan {
        blocks,
        stop_reason: stop_reason(cfg, "tool_use"),
    }
}

#[derive(Deserialize)]
struct ToolDef {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    role: String,
    #[serde(default)]
    content: Value,
}

/// Decide the answer in tool mode. `next_tool_id` is called only if a tool_use is produced.
pub fn tool_mode_plan(
    cfg: &MockConfig,
    tools: Option<&serde_json::value::RawValue>,
    messages: Option<&serde_json::value::RawValue>,
    next_tool_id: impl FnOnce() -> String,
) -> Plan {
    let tools: Vec<ToolDef> = tools
        .and_then(|t| serde_json::from_str(t.get()).ok())
        .unwrap_or_default();
    let names: Vec<String> = tools.into_iter().filter_map(|t| t.name).collect();

    let chosen = || -> Option<(String, String)> {
        let name = match &cfg.tool_name {
            Some(n) => n.clone(),
            None if names.iter().any(|n| n == "Bash") => "Bash".to_string(),
            None => names.first()?.clone(),
        };
        let input = match &cfg.tool_input {
            Some(v) => v.to_string(),
            None if name == "Bash" => {
                r#"{"command":"echo mock-tool-ok","description":"Print a marker"}"#.to_string()
            }
            None => "{}".to_string(),
        };
        Some((name, input))
    };

    match cfg.tool_mode {
        ToolMode::Off => text_plan(cfg, &cfg.text),
        ToolMode::Always => match chosen() {
            Some((name, input)) => tool_plan(cfg, next_tool_id(), name, input),
            None => text_plan(cfg, &cfg.text),
        },
        ToolMode::Auto => {
            let messages: Vec<Message> = messages
                .and_then(|m| serde_json::from_str(m.get()).ok())
                .unwrap_or_default();
            // Newer Claude Code sends mid-conversation `system` messages (under a beta); the turn that matters is
            // the last user/assistant one.
            let last_user = messages
                .iter()
                .rev()
                .find(|m| m.role != "system")
                .filter(|m| m.role == "user");
            if let Some(result) = last_user.and_then(|m| first_tool_result(&m.content)) {
                let snippet: String = result.chars().take(200).collect();
                return text_plan(cfg, &format!("Tool result received: {snippet}"));
            }
            if last_user.is_some() && (!names.is_empty() || cfg.tool_name.is_some()) {
                if let Some((name, input)) = chosen() {
                    return tool_plan(cfg, next_tool_id(), name, input);
                }
            }
            text_plan(cfg, &cfg.text)
        }
    }
}

/// Text of the first `tool_result` block of a message content, if any.
fn first_tool_result(content: &Value) -> Option<String> {
    let blocks = content.as_array()?;
    let block = blocks
        .iter()
        .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))?;
    Some(match block.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    })
}

/// JSON string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

/// Split `text` into at most `n` non-empty pieces on char boundaries (sizes differ by ≤ 1 char).
pub fn split_chunks(text: &str, n: usize) -> Vec<&str> {
    let count = text.chars().count();
    if count == 0 {
        return Vec::new();
    }
    let n = n.clamp(1, count);
    let (base, rem) = (count / n, count % n);
    let mut out = Vec::with_capacity(n);
    let mut iter = text.char_indices().map(|(i, _)| i).chain([text.len()]);
    let mut start = iter.next().unwrap_or(0);
    for piece in 0..n {
        let len = base + usize::from(piece < rem);
        let end = iter.nth(len - 1).unwrap_or(text.len());
        out.push(&text[start..end]);
        start = end;
    }
    out
}

/// Split a tool input JSON into fragments that cut strings in the middle (2+ if long enough).
fn split_json_fragments(input: &str) -> Vec<&str> {
    let n = if input.chars().count() >= 3 { 3 } else { 1 };
    split_chunks(input, n)
}

/// Usage object. `output` is the output_tokens value; `with_input` adds input and cache fields.
pub fn usage_json(cfg: &MockConfig, output: u64, with_input: bool) -> String {
    let mut s = String::with_capacity(192);
    s.push('{');
    if with_input {
        s.push_str(&format!(
            "\"input_tokens\":{},\"cache_creation_input_tokens\":{},\"cache_read_input_tokens\":{},",
            cfg.input_tokens, cfg.cache_creation_input_tokens, cfg.cache_read_input_tokens
        ));
        if cfg.cache_5m.is_some() || cfg.cache_1h.is_some() {
            s.push_str(&format!(
                "\"cache_creation\":{{\"ephemeral_5m_input_tokens\":{},\"ephemeral_1h_input_tokens\":{}}},",
                cfg.cache_5m.unwrap_or(0),
                cfg.cache_1h.unwrap_or(0)
            ));
        }
    }
    s.push_str(&format!("\"output_tokens\":{output}}}"));
    s
}

/// SSE event framing.
pub fn sse_event(name: &str, data: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(name.len() + data.len() + 16);
    b.put_slice(b"event: ");
    b.put_slice(name.as_bytes());
    b.put_slice(b"\ndata: ");
    b.put_slice(data.as_bytes());
    b.put_slice(b"\n\n");
    b.freeze()
}

pub fn ping_event() -> Bytes {
    Bytes::from_static(b"event: ping\ndata: {\"type\": \"ping\"}\n\n")
}

pub fn overloaded_event() -> Bytes {
    Bytes::from_static(
        b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
    )
}

/// Request-independent parts of a messages answer.
#[derive(Debug)]
pub struct Prepared {
    /// JSON answer after `"model":<model>`.
    pub json_tail: Bytes,
    /// `message_start` event after `"model":<model>`.
    pub sse_start_tail: Bytes,
    /// All SSE events after `message_start`, one per element.
    pub sse_events: Arc<[Bytes]>,
    /// The same events concatenated into one buffer (fast path without pacing).
    pub sse_burst: Arc<[Bytes]>,
}

const JSON_HEAD: &[u8] = b"{\"id\":\"msg_mock_";
const JSON_MID: &[u8] = b"\",\"type\":\"message\",\"role\":\"assistant\",\"model\":";
const SSE_HEAD: &[u8] =
    b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock_";
const SSE_MID: &[u8] = b"\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":";

impl Prepared {
    pub fn build(cfg: &MockConfig, plan: &Plan) -> Prepared {
        // Non-streaming body tail.
        let content: Vec<String> = plan
            .blocks
            .iter()
            .map(|b| match b {
                Block::Thinking(t) if cfg.strip_signatures => {
                    format!("{{\"type\":\"thinking\",\"thinking\":{}}}", js(t))
                }
                Block::Thinking(t) => format!(
                    "{{\"type\":\"thinking\",\"thinking\":{},\"signature\":{}}}",
                    js(t),
                    js(THINKING_SIGNATURE)
                ),
                Block::Text(t) => format!("{{\"type\":\"text\",\"text\":{}}}", js(t)),
                Block::ToolUse { id, name, input } => format!(
                    "{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{}}}",
                    js(id),
                    js(name),
                    input
                ),
            })
            .collect();
        let json_tail = format!(
            ",\"content\":[{}],\"stop_reason\":{},\"stop_sequence\":null,\"usage\":{}}}",
            content.join(","),
            js(&plan.stop_reason),
            usage_json(cfg, cfg.output_tokens, true)
        );

        let sse_start_tail = format!(
            ",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{}}}}}\n\n",
            usage_json(cfg, 1, true)
        );

        // SSE events after message_start.
        let mut ev: Vec<Bytes> = Vec::new();
        let delta = |i: usize, d: String| {
            sse_event(
                "content_block_delta",
                &format!("{{\"type\":\"content_block_delta\",\"index\":{i},\"delta\":{d}}}"),
            )
        };
        for (i, block) in plan.blocks.iter().enumerate() {
            let start_block = match block {
                Block::Thinking(_) => "{\"type\":\"thinking\",\"thinking\":\"\"}".to_string(),
                Block::Text(_) => "{\"type\":\"text\",\"text\":\"\"}".to_string(),
                Block::ToolUse { id, name, .. } => format!(
                    "{{\"type\":\"tool_use\",\"id\":{},\"name\":{},\"input\":{{}}}}",
                    js(id),
                    js(name)
                ),
            };
            ev.push(sse_event(
                "content_block_start",
                &format!(
                    "{{\"type\":\"content_block_start\",\"index\":{i},\"content_block\":{start_block}}}"
                ),
            ));
            match block {
                Block::Thinking(t) => {
                    for piece in split_chunks(t, 2) {
                        ev.push(delta(
                            i,
                            format!("{{\"type\":\"thinking_delta\",\"thinking\":{}}}", js(piece)),
                        ));
                    }
                    if !cfg.strip_signatures {
                        ev.push(delta(
                            i,
                            format!(
                                "{{\"type\":\"signature_delta\",\"signature\":{}}}",
                                js(THINKING_SIGNATURE)
                            ),
                        ));
                    }
                }
                Block::Text(t) => {
                    for piece in split_chunks(t, cfg.chunks.max(1) as usize) {
                        ev.push(delta(
                            i,
                            format!("{{\"type\":\"text_delta\",\"text\":{}}}", js(piece)),
                        ));
                    }
                }
                Block::ToolUse { input, .. } => {
                    let empty = serde_json::from_str::<Value>(input)
                        .map(|v| v.as_object().is_some_and(|o| o.is_empty()))
                        .unwrap_or(false);
                    if !empty {
                        for piece in split_json_fragments(input) {
                            ev.push(delta(
                                i,
                                format!(
                                    "{{\"type\":\"input_json_delta\",\"partial_json\":{}}}",
                                    js(piece)
                                ),
                            ));
                        }
                    }
                }
            }
            ev.push(sse_event(
                "content_block_stop",
                &format!("{{\"type\":\"content_block_stop\",\"index\":{i}}}"),
            ));
        }
        if !cfg.omit_message_delta {
            ev.push(sse_event(
                "message_delta",
                &format!(
                    "{{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":{},\"stop_sequence\":null}},\"usage\":{}}}",
                    js(&plan.stop_reason),
                    usage_json(cfg, cfg.output_tokens, !cfg.delta_output_only)
                ),
            ));
        }
        ev.push(sse_event("message_stop", "{\"type\":\"message_stop\"}"));

        let burst: Vec<u8> = ev.iter().flat_map(|b| b.iter().copied()).collect();
        Prepared {
            json_tail: Bytes::from(json_tail),
            sse_start_tail: Bytes::from(sse_start_tail),
            sse_events: ev.into(),
            sse_burst: vec![Bytes::from(burst)].into(),
        }
    }

    /// Full JSON answer for one request.
    pub fn json_body(&self, id: u64, model: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(
            JSON_HEAD.len() + JSON_MID.len() + 20 + model.len() + self.json_tail.len(),
        );
        b.put_slice(JSON_HEAD);
        b.put_slice(itoa(id).as_bytes());
        b.put_slice(JSON_MID);
        b.put_slice(model);
        b.put_slice(&self.json_tail);
        b.freeze()
    }

    /// `message_start` event for one request.
    pub fn message_start(&self, id: u64, model: &[u8]) -> Bytes {
        let mut b = BytesMut::with_capacity(
            SSE_HEAD.len() + SSE_MID.len() + 20 + model.len() + self.sse_start_tail.len(),
        );
        b.put_slice(SSE_HEAD);
        b.put_slice(itoa(id).as_bytes());
        b.put_slice(SSE_MID);
        b.put_slice(model);
        b.put_slice(&self.sse_start_tail);
        b.freeze()
    }
}

fn itoa(n: u64) -> String {
    n.to_string()
}

/// Default `error.type` for a status.
pub fn error_type_for(status: u16) -> &'static str {
    match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        _ => "api_error",
    }
}

fn default_error_message(status: u16) -> &'static str {
    match status {
        400 => "Invalid request (mock)",
        401 => "invalid x-api-key",
        402 => "Billing problem (mock)",
        403 => "Permission denied (mock)",
        404 => "Not found (mock)",
        413 => "Request exceeds the maximum allowed number of bytes.",
        429 => "Number of request tokens has exceeded your per-minute rate limit (mock)",
        529 => "Overloaded",
        _ => "Internal server error (mock)",
    }
}

/// Anthropic error body.
pub fn error_json(
    status: u16,
    etype: Option<&str>,
    message: Option<&str>,
    request_id: u64,
) -> Bytes {
    let etype = etype.unwrap_or_else(|| error_type_for(status));
    let message = message.unwrap_or_else(|| default_error_message(status));
    Bytes::from(format!(
        "{{\"type\":\"error\",\"error\":{{\"type\":{},\"message\":{}}},\"request_id\":\"req_mock_{request_id}\"}}",
        js(etype),
        js(message)
    ))
}

/// Models served by `GET …/v1/models`: (id, display name, created_at).
pub const MODELS: &[(&str, &str, &str)] = &[
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    (
        "claude-sonnet-4-6",
        "Claude Sonnet 4.6",
        "2026-02-17T00:00:00Z",
    ),
    (
        "claude-haiku-4-5-20251001",
        "Claude Haiku 4.5",
        "2025-10-01T00:00:00Z",
    ),
];

fn model_json((id, name, created): (&str, &str, &str)) -> String {
    format!(
        "{{\"type\":\"model\",\"id\":{},\"display_name\":{},\"created_at\":{},\"max_input_tokens\":200000,\"max_tokens\":64000}}",
        js(id),
        js(name),
        js(created)
    )
}

pub fn models_list_json() -> Bytes {
    let data: Vec<String> = MODELS.iter().map(|m| model_json(*m)).collect();
    Bytes::from(format!(
        "{{\"data\":[{}],\"has_more\":false,\"first_id\":{},\"last_id\":{}}}",
        data.join(","),
        js(MODELS[0].0),
        js(MODELS[MODELS.len() - 1].0)
    ))
}

pub fn model_json_by_id(id: &str) -> Option<Bytes> {
    MODELS
        .iter()
        .find(|m| m.0 == id)
        .map(|m| Bytes::from(model_json(*m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate() {
        for text in [
            "Hello from the mock upstream.",
            "你好，世界！这是一个测试。",
            "a",
            "",
            "é🎉x",
        ] {
            for n in [1, 2, 3, 7, 20, 100] {
                let parts = split_chunks(text, n);
                assert_eq!(parts.concat(), text);
                assert!(parts.iter().all(|p| !p.is_empty()));
                if !text.is_empty() {
                    assert_eq!(parts.len(), n.min(text.chars().count()));
                }
            }
        }
    }

    #[test]
    fn json_answer_is_valid() {
        let cfg = MockConfig {
            thinking: true,
            cache_1h: Some(10),
            ..MockConfig::default()
        };
        let p = Prepared::build(&cfg, &text_plan(&cfg, "hi \"there\""));
        let v: Value = serde_json::from_slice(&p.json_body(7, b"\"m\"")).unwrap();
        assert_eq!(v["id"], "msg_mock_7");
        assert_eq!(v["model"], "m");
        assert_eq!(v["content"][1]["text"], "hi \"there\"");
        assert_eq!(
            v["usage"]["cache_creation"]["ephemeral_1h_input_tokens"],
            10
        );
        assert_eq!(v["usage"]["cache_creation"]["ephemeral_5m_input_tokens"], 0);
        let start = p.message_start(7, b"\"m\"");
        let s = std::str::from_utf8(&start).unwrap();
        let data = s.strip_prefix("event: message_start\ndata: ").unwrap();
        let v: Value = serde_json::from_str(data.trim_end()).unwrap();
        assert_eq!(v["message"]["usage"]["output_tokens"], 1);
        for e in p.sse_events.iter() {
            let s = std::str::from_utf8(e).unwrap();
            let (name, data) = s.split_once("\ndata: ").unwrap();
            let v: Value = serde_json::from_str(data.trim_end()).unwrap();
            assert_eq!(
                Some(v["type"].as_str().unwrap()),
                name.strip_prefix("event: ")
            );
        }
    }

    #[test]
    fn error_types() {
        let v: Value = serde_json::from_slice(&error_json(529, None, None, 1)).unwrap();
        assert_eq!(v["error"]["type"], "overloaded_error");
        let v: Value = serde_json::from_slice(&error_json(418, None, Some("x"), 1)).unwrap();
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(v["error"]["message"], "x");
        let v: Value = serde_json::from_slice(&models_list_json()).unwrap();
        assert_eq!(v["data"].as_array().unwrap().len(), MODELS.len());
    }
}
