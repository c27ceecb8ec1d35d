//! Anthropic SSE events → OpenAI `chat.completion.chunk` stream: the state machine of
//! docs/protocols.md §5.3, with the fixes of §6.

use crate::error::{error_chunk, openai_kind_for};
use crate::response::{finish_reason, ResponseContext};
use crate::usage::openai_usage;
use ccgate_meter::Usage;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::borrow::Cow;
use std::collections::HashMap;

/// The one event most of a stream is made of, `content_block_delta` with a `text_delta`, read without a
/// `Value` tree. Anything else (or a shape this does not expect) takes the general path.
#[derive(Deserialize)]
struct TextDeltaEvent<'a> {
    index: u64,
    #[serde(borrow)]
    delta: TextDelta<'a>,
}

#[derive(Deserialize)]
struct TextDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
}

/// `message_start`, as far as the translation reads it (the id; usage is the meter's).
#[derive(Deserialize)]
struct MessageStartEvent<'a> {
    #[serde(borrow, default)]
    message: Option<MessageId<'a>>,
}

#[derive(Deserialize)]
struct MessageId<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// `message_delta`, as far as the translation reads it.
#[derive(Deserialize)]
struct MessageDeltaEvent<'a> {
    #[serde(borrow, default)]
    delta: Option<StopReason<'a>>,
}

#[derive(Deserialize)]
struct StopReason<'a> {
    #[serde(borrow, default)]
    stop_reason: Option<Cow<'a, str>>,
}

/// What an open Anthropic content block is, from the client's point of view.
#[derive(Debug)]
enum Block {
    Text,
    /// Accumulated so a signed block can be handed to the client at its stop.
    Thinking {
        text: String,
        signature: String,
    },
    RedactedThinking(Value),
    /// A client tool call with its OpenAI `index` (`slot`).
    Tool {
        slot: u32,
        args_sent: bool,
    },
    /// The `json_schema` forced tool: its arguments are the answer's content.
    JsonTool {
        args_sent: bool,
    },
    /// Server tools and unknown block types: not shown.
    Other,
}

/// Translates one Anthropic stream into OpenAI chunks.
///
/// The caller frames SSE events (ccgate-meter), applies each to its usage meter, then hands the
/// event here with the current usage. Output is appended as complete `data: …\n\n` lines, ready to
/// flush.
///
/// Rules (§5.3, §6):
/// * every chunk carries the same `id` (`chatcmpl-<message id>`), `created` and client `model`;
/// * tool-call `index` comes from a per-stream counter starting at 0 (never the Anthropic block
///   index, which is shifted by text and thinking blocks); `id`/`type`/`function.name` appear
///   only on a call's first fragment;
/// * a tool call that streamed no argument fragment gets `"{}"` at its `content_block_stop`;
/// * `finish_reason: "tool_calls"` only if at least one call was emitted, else `"stop"`;
/// * with `include_usage`, every chunk has `"usage": null` and a final `choices: []` chunk carries
///   the usage, as OpenAI does; without it no `usage` key appears;
/// * `ping` → `: keep-alive` comment; unknown events are ignored.
///
/// Errors (an `error` event, or [`StreamTranslator::on_upstream_error`] for a broken upstream or
/// EOF before `message_stop`) emit `data: {"error":{…}}` and finish the stream **without**
/// `data: [DONE]`: `[DONE]` means "completed" to many clients (they would keep a truncated answer
/// as if it were whole), while a missing `[DONE]` plus an error object is unmistakably a failure
/// (the OpenAI SDKs raise on the error object either way).
#[derive(Debug)]
pub struct StreamTranslator {
    ctx: ResponseContext,
    id: String,
    created: i64,
    started: bool,
    blocks: HashMap<u64, Block>,
    next_slot: u32,
    stop_reason: Option<String>,
    finished: bool,
    /// `data: {"id":…,"object":…,"created":…,"model":…,"choices":[{"index":0,"delta":{"content":` for text
    /// deltas, built once the id is final (the first chunk fixes it).
    content_head: Vec<u8>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Value>,
}

#[derive(Serialize)]
struct ChunkChoice {
    index: u32,
    delta: Value,
    finish_reason: Option<&'static str>,
}

/// `s` as a JSON string literal, escaped as serde_json escapes it.
fn push_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A text delta exactly as Anthropic writes it, `{"type":"content_block_delta","index":N,"delta":{"type":
/// "text_delta","text":"…"}}`, whose text serde_json would write back byte for byte: its index and the text's
/// escaped body, to be copied out without decoding and re-encoding it. Anything else (other key order, extra
/// fields, `\u` or `\/` escapes, which serde_json writes differently) returns `None` and takes the parsing path.
fn canonical_text_delta(data: &[u8]) -> Option<(u64, &[u8])> {
    const HEAD: &[u8] = br#"{"type":"content_block_delta","index":"#;
    const MID: &[u8] = br#","delta":{"type":"text_delta","text":""#;
    const TAIL: &[u8] = br#""}}"#;
    let rest = data.strip_prefix(HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // JSON has no leading zeros; nine digits cannot overflow.
    if digits == 0 || digits > 9 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index = rest[..digits]
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    let escaped = rest[digits..].strip_prefix(MID)?.strip_suffix(TAIL)?;
    let mut i = 0;
    while i < escaped.len() {
        match escaped[i] {
            // An unescaped quote means the string ended before the suffix: not this shape. A raw control
            // character is invalid JSON.
            b'"' | 0..=0x1f => return None,
            b'\\' => match escaped.get(i + 1) {
                // The escapes serde_json itself writes for these characters.
                Some(b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f') => i += 2,
                _ => return None,
            },
            _ => i += 1,
        }
    }
    std::str::from_utf8(escaped).ok()?;
    Some((index, escaped))
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

impl StreamTranslator {
    /// `id_hint` names the stream until `message_start` supplies the Anthropic message id (only
    /// used if an error arrives first): chunks are then `chatcmpl-<id_hint>`.
    pub fn new(ctx: ResponseContext, id_hint: &str, now_unix: i64) -> Self {
        Self {
            ctx,
            id: format!("chatcmpl-{id_hint}"),
            created: now_unix,
            started: false,
            blocks: HashMap::new(),
            content_head: Vec::new(),
            next_slot: 0,
            stop_reason: None,
            finished: false,
        }
    }

    /// True once `[DONE]` or an error has been written; later input is ignored.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Anthropic `stop_reason` seen so far (from `message_delta`), for logging.
    pub fn stop_reason(&self) -> Option<&str> {
        self.stop_reason.as_deref()
    }

    /// Number of tool calls emitted so far.
    pub fn tool_calls_emitted(&self) -> u32 {
        self.next_slot
    }

    /// Feeds one SSE event. `name` is the `event:` field (may be empty: the JSON `type` is used
    /// then); `data` its payload; `usage` the caller's meter after applying this event.
    pub fn on_event(&mut self, name: &str, data: &[u8], usage: &Usage, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        if self.by_name(name, data, usage, out) {
            return;
        }
        let ev: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        let kind = if name.is_empty() {
            str_at(&ev, "type").unwrap_or("")
        } else {
            name
        };
        match kind {
            "ping" => out.extend_from_slice(b": keep-alive\n\n"),
            // A repeated message_start changes nothing: the id is fixed once chunks went out.
            "message_start" if !self.started => {
                if let Some(id) = ev.get("message").and_then(|m| str_at(m, "id")) {
                    self.id = format!("chatcmpl-{id}");
                }
                self.ensure_started(out);
            }
            "content_block_start" => self.block_start(&ev, out),
            "content_block_delta" => self.block_delta(&ev, out),
            "content_block_stop" => self.block_stop(&ev, out),
            "message_delta" => {
                if let Some(r) = ev.get("delta").and_then(|d| str_at(d, "stop_reason")) {
                    self.stop_reason = Some(r.to_owned());
                }
            }
            "message_stop" => self.finish(usage, out),
            "error" => {
                let err = ev.get("error").unwrap_or(&Value::Null);
                let message = str_at(err, "message").unwrap_or("Upstream error");
                let (kind, code) = openai_kind_for(str_at(err, "type").unwrap_or(""), message);
                out.extend_from_slice(&error_chunk(message, kind, code));
                self.finished = true;
            }
            _ => {}
        }
    }

    /// The events whose `event:` name says what they are, handled without building a `serde_json::Value` tree:
    /// the frequent ones, read through typed views. Returns `false` to leave an event to the general path (no
    /// name, or data these views cannot read), which then behaves exactly as before.
    fn by_name(&mut self, name: &str, data: &[u8], usage: &Usage, out: &mut Vec<u8>) -> bool {
        match name {
            "content_block_delta" => self.text_delta(data, out),
            "ping" => {
                out.extend_from_slice(b": keep-alive\n\n");
                true
            }
            "message_stop" => {
                self.finish(usage, out);
                true
            }
            "message_start" => {
                let Ok(ev) = serde_json::from_slice::<MessageStartEvent<'_>>(data) else {
                    return false;
                };
                if !self.started {
                    if let Some(id) = ev.message.and_then(|m| m.id) {
                        self.id = format!("chatcmpl-{id}");
                    }
                    self.ensure_started(out);
                }
                true
            }
            "message_delta" => {
                let Ok(ev) = serde_json::from_slice::<MessageDeltaEvent<'_>>(data) else {
                    return false;
                };
                if let Some(r) = ev.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(r.into_owned());
                }
                true
            }
            _ => false,
        }
    }

    /// The upstream broke (connection error, idle timeout, EOF before `message_stop`). Emits
    /// `data: {"error":{"message":message,"type":kind}}` and finishes without `[DONE]` (see the
    /// type docs). `kind` is the OpenAI error `type`, e.g. `"server_error"`.
    pub fn on_upstream_error(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        out.extend_from_slice(&error_chunk(message, kind, None));
        self.finished = true;
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if !self.started {
            self.started = true;
            self.emit(json!({"role": "assistant", "content": ""}), None, out);
        }
    }

    fn emit(&self, delta: Value, finish: Option<&'static str>, out: &mut Vec<u8>) {
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.ctx.client_model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            usage: self.ctx.include_usage.then_some(Value::Null),
        };
        self.write(&chunk, out);
    }

    fn write(&self, chunk: &Chunk<'_>, out: &mut Vec<u8>) {
        if let Ok(bytes) = serde_json::to_vec(chunk) {
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(&bytes);
            out.extend_from_slice(b"\n\n");
        }
    }

    /// The fast path for a `text_delta`: the same chunk `content` writes, built without `Value`s. Returns
    /// false when the event is not a plain text delta (the general path then handles it).
    fn text_delta(&mut self, data: &[u8], out: &mut Vec<u8>) -> bool {
        if let Some((index, escaped)) = canonical_text_delta(data) {
            if self.shows_text(index) && !escaped.is_empty() {
                self.content_chunk(out, |out| {
                    out.push(b'"');
                    out.extend_from_slice(escaped);
                    out.push(b'"');
                });
            }
            return true;
        }
        let Ok(ev) = serde_json::from_slice::<TextDeltaEvent<'_>>(data) else {
            return false;
        };
        let (Some(text), "text_delta") = (&ev.delta.text, ev.delta.kind.as_ref()) else {
            return false;
        };
        if self.shows_text(ev.index) && !text.is_empty() {
            self.content_chunk(out, |out| push_json_str(out, text));
        }
        true
    }

    /// Whether text deltas of block `index` reach the client as `content`: a text block, or one whose start was
    /// never seen.
    fn shows_text(&self, index: u64) -> bool {
        matches!(self.blocks.get(&index), Some(Block::Text) | None)
    }

    /// Writes a `{"content": …}` chunk, field for field what `write(&Chunk { .. })` produces; `text` writes the
    /// JSON string literal.
    fn content_chunk(&mut self, out: &mut Vec<u8>, text: impl FnOnce(&mut Vec<u8>)) {
        self.ensure_started(out);
        if self.content_head.is_empty() {
            let head = &mut self.content_head;
            head.extend_from_slice(b"data: {\"id\":");
            push_json_str(head, &self.id);
            head.extend_from_slice(b",\"object\":\"chat.completion.chunk\",\"created\":");
            head.extend_from_slice(self.created.to_string().as_bytes());
            head.extend_from_slice(b",\"model\":");
            push_json_str(head, &self.ctx.client_model);
            head.extend_from_slice(b",\"choices\":[{\"index\":0,\"delta\":{\"content\":");
        }
        out.extend_from_slice(&self.content_head);
        text(out);
        out.extend_from_slice(b"},\"finish_reason\":null}]");
        if self.ctx.include_usage {
            out.extend_from_slice(b",\"usage\":null");
        }
        out.extend_from_slice(b"}\n\n");
    }

    fn content(&mut self, text: &str, out: &mut Vec<u8>) {
        if !text.is_empty() {
            self.ensure_started(out);
            self.emit(json!({ "content": text }), None, out);
        }
    }

    fn reasoning(&mut self, text: &str, out: &mut Vec<u8>) {
        if self.ctx.expose_reasoning && !text.is_empty() {
            self.ensure_started(out);
            self.emit(json!({ "reasoning_content": text }), None, out);
        }
    }

    fn tool_args(&mut self, slot: u32, args: &str, out: &mut Vec<u8>) {
        self.ensure_started(out);
        self.emit(
            json!({"tool_calls": [{"index": slot, "function": {"arguments": args}}]}),
            None,
            out,
        );
    }

    fn block_start(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let Some(index) = ev.get("index").and_then(Value::as_u64) else {
            return;
        };
        let b = ev.get("content_block").unwrap_or(&Value::Null);
        let block = match str_at(b, "type").unwrap_or("") {
            "text" => {
                self.content(str_at(b, "text").unwrap_or(""), out);
                Block::Text
            }
            "thinking" => {
                let text = str_at(b, "thinking").unwrap_or("");
                self.reasoning(text, out);
                Block::Thinking {
                    text: text.to_owned(),
                    signature: str_at(b, "signature").unwrap_or("").to_owned(),
                }
            }
            "redacted_thinking" => Block::RedactedThinking(b.clone()),
            "tool_use" => {
                let name = str_at(b, "name").unwrap_or("");
                if self.ctx.is_json_tool(name) {
                    Block::JsonTool { args_sent: false }
                } else {
                    let slot = self.next_slot;
                    self.next_slot += 1;
                    self.ensure_started(out);
                    let delta = json!({"tool_calls": [{
                        "index": slot,
                        "id": str_at(b, "id").unwrap_or(""),
                        "type": "function",
                        "function": {"name": self.ctx.client_tool_name(name), "arguments": ""},
                    }]});
                    self.emit(delta, None, out);
                    Block::Tool {
                        slot,
                        args_sent: false,
                    }
                }
            }
            _ => Block::Other,
        };
        self.blocks.insert(index, block);
    }

    fn block_delta(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let Some(index) = ev.get("index").and_then(Value::as_u64) else {
            return;
        };
        let d = ev.get("delta").unwrap_or(&Value::Null);
        match str_at(d, "type").unwrap_or("") {
            "text_delta" => {
                if matches!(self.blocks.get(&index), Some(Block::Text) | None) {
                    self.content(str_at(d, "text").unwrap_or(""), out);
                }
            }
            "thinking_delta" => {
                let piece = str_at(d, "thinking").unwrap_or("");
                if let Some(Block::Thinking { text, .. }) = self.blocks.get_mut(&index) {
                    text.push_str(piece);
                    self.reasoning(piece, out);
                }
            }
            "signature_delta" => {
                if let Some(Block::Thinking { signature, .. }) = self.blocks.get_mut(&index) {
                    signature.push_str(str_at(d, "signature").unwrap_or(""));
                }
            }
            "input_json_delta" => {
                let piece = str_at(d, "partial_json").unwrap_or("");
                if piece.is_empty() {
                    return;
                }
                match self.blocks.get_mut(&index) {
                    Some(Block::Tool { slot, args_sent }) => {
                        *args_sent = true;
                        let slot = *slot;
                        self.tool_args(slot, piece, out);
                    }
                    Some(Block::JsonTool { args_sent }) => {
                        *args_sent = true;
                        self.content(piece, out);
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn block_stop(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let Some(index) = ev.get("index").and_then(Value::as_u64) else {
            return;
        };
        match self.blocks.remove(&index) {
            Some(Block::Tool {
                slot,
                args_sent: false,
            }) => self.tool_args(slot, "{}", out),
            Some(Block::JsonTool { args_sent: false }) => self.content("{}", out),
            Some(Block::Thinking { text, signature })
                if self.ctx.expose_reasoning && !signature.is_empty() =>
            {
                let block = json!({"type": "thinking", "thinking": text, "signature": signature});
                self.ensure_started(out);
                self.emit(json!({ "thinking_blocks": [block] }), None, out);
            }
            Some(Block::RedactedThinking(block)) if self.ctx.expose_reasoning => {
                self.ensure_started(out);
                self.emit(json!({ "thinking_blocks": [block] }), None, out);
            }
            _ => {}
        }
    }

    fn finish(&mut self, usage: &Usage, out: &mut Vec<u8>) {
        self.ensure_started(out);
        let reason = finish_reason(self.stop_reason.as_deref(), self.next_slot as usize);
        self.emit(json!({}), Some(reason), out);
        if self.ctx.include_usage {
            let chunk = Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.ctx.client_model,
                choices: Vec::new(),
                usage: serde_json::to_value(openai_usage(usage)).ok(),
            };
            self.write(&chunk, out);
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        self.finished = true;
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_text_delta;

    fn delta(index: &str, text: &str) -> Vec<u8> {
        format!(r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"{text}"}}}}"#)
            .into_bytes()
    }

    #[test]
    fn canonical_text_deltas_are_copied_through() {
        assert_eq!(
            canonical_text_delta(&delta("0", "hi")),
            Some((0, &b"hi"[..]))
        );
        assert_eq!(
            canonical_text_delta(&delta("12", r#"a \"b\" \\ \n\r\t\b\f é"#)),
            Some((12, r#"a \"b\" \\ \n\r\t\b\f é"#.as_bytes()))
        );
        assert_eq!(canonical_text_delta(&delta("3", "")), Some((3, &b""[..])));
    }

    #[test]
    fn anything_serde_json_would_write_differently_is_parsed_instead() {
        for (index, text) in [
            ("0", r"caf\u00e9"),
            ("0", r"a\/b"),
            ("0", "raw\"quote"),
            ("0", "tab\tinside"),
            ("0", r"dangling\"),
            ("01", "x"),
            ("", "x"),
            ("1234567890", "x"),
        ] {
            assert_eq!(
                canonical_text_delta(&delta(index, text)),
                None,
                "{index} {text}"
            );
        }
        assert_eq!(canonical_text_delta(b"{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"\xff\"}}"), None);
        assert_eq!(
            canonical_text_delta(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","y":1}}"#),
            None
        );
    }
}
