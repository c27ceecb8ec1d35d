//! Anthropic response → OpenAI `chat.completion` (protocols.md §5.1, §5.2, §5.4).

use crate::error::UpstreamFormatError;
use crate::usage::{openai_usage, OpenAiUsage};
use ccgate_meter::Usage;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

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

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
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
    let mut text: Option<String> = None;
    let mut reasoning = String::new();
    let mut thinking_blocks = Vec::new();
    let mut tool_calls = Vec::new();
    for b in blocks {
        match str_field(b, "type").unwrap_or("") {
            "text" => text
                .get_or_insert_with(String::new)
                .push_str(str_field(b, "text").unwrap_or("")),
            "thinking" => {
                reasoning.push_str(str_field(b, "thinking").unwrap_or(""));
                thinking_blocks.push(b.clone());
            }
            "redacted_thinking" => thinking_blocks.push(b.clone()),
            "tool_use" => {
                let name = str_field(b, "name").unwrap_or("");
                let input = match b.get("input") {
                    Some(v) if !v.is_null() => v.to_string(),
                    _ => "{}".to_owned(),
                };
                if ctx.is_json_tool(name) {
                    text.get_or_insert_with(String::new).push_str(&input);
                } else {
                    tool_calls.push(ToolCall {
                        id: str_field(b, "id").unwrap_or("").to_owned(),
                        kind: "function",
                        function: FunctionCall {
                            name: ctx.client_tool_name(name).to_owned(),
                            arguments: input,
                        },
                    });
                }
            }
            _ => {}
        }
    }
    let finish = finish_reason(str_field(&msg, "stop_reason"), tool_calls.len());
    let expose = ctx.expose_reasoning;
    let completion = Completion {
        id: format!("chatcmpl-{}", str_field(&msg, "id").unwrap_or("unknown")),
        object: "chat.completion",
        created: now_unix,
        model: &ctx.client_model,
        choices: [Choice {
            index: 0,
            message: Message {
                role: "assistant",
                content: text,
                reasoning_content: (expose && !reasoning.is_empty()).then_some(reasoning),
                thinking_blocks: if expose { thinking_blocks } else { Vec::new() },
                tool_calls,
                refusal: None,
            },
            logprobs: None,
            finish_reason: finish,
        }],
        usage: openai_usage(usage),
    };
    serde_json::to_vec(&completion).map_err(|e| UpstreamFormatError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
