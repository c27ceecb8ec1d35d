//! Anthropic SSE events → the Responses event sequence (docs/responses.md §3.2).

use super::output::{
    call_item, custom_input, failed_code, message_item, reasoning_item, redacted_item,
    response_object, status_for, Ids, ResponseObject, Standing,
};
use super::{ResponsesContext, ToolKind};
use ccgate_meter::Usage;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// An open Anthropic content block and the output item it feeds.
#[derive(Debug)]
enum Open {
    /// A `message` item (a text block, or the `json_schema` tool's input as text).
    Text {
        out: usize,
        id: String,
        text: String,
    },
    Reasoning {
        out: usize,
        id: String,
        text: String,
        signature: String,
        part_open: bool,
    },
    Call {
        out: usize,
        id: String,
        call_id: String,
        upstream_name: String,
        args: String,
        custom: bool,
    },
    /// Server tools and unknown blocks: not shown.
    Other,
}

/// Translates one Anthropic stream into Responses events.
///
/// The caller frames SSE events (ccgate-meter), meters each, then hands it here with the usage so far. Output is
/// complete `event: …\ndata: …\n\n` events. Rules (docs/responses.md §3.2, §4.2):
/// * `response.created` then `response.in_progress` first; `sequence_number` counts every event from 0;
/// * each Anthropic content block is one output item, `output_index` in the order items were added, and
///   every item added is closed with `response.output_item.done` (Codex ignores items without it);
/// * a call without argument fragments gets `{}`; a custom tool's input is unwrapped at its end;
/// * the last event is `response.completed` (or `response.incomplete` for `max_tokens`) with the full output
///   and usage, or `response.failed` with an error code Codex acts on correctly.
#[derive(Debug)]
pub struct ResponsesStream {
    ctx: ResponsesContext,
    ids: Ids,
    created_at: i64,
    seq: u64,
    started: bool,
    finished: bool,
    /// Finished items by output index (`Null` while open).
    items: Vec<Value>,
    open: HashMap<u64, Open>,
    stop_reason: Option<String>,
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

impl ResponsesStream {
    /// `id_hint` names the response until `message_start` supplies the Anthropic message id.
    pub fn new(ctx: ResponsesContext, id_hint: &str, now_unix: i64) -> Self {
        Self {
            ctx,
            ids: Ids::new(id_hint),
            created_at: now_unix,
            seq: 0,
            started: false,
            finished: false,
            items: Vec::new(),
            open: HashMap::new(),
            stop_reason: None,
        }
    }

    /// True once the final event was written; later input is ignored.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    fn emit(&mut self, kind: &str, fields: Value, out: &mut Vec<u8>) {
        let mut m = match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        m.insert("type".into(), json!(kind));
        m.insert("sequence_number".into(), json!(self.seq));
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Writing a Value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &Value::Object(m));
        out.extend_from_slice(b"\n\n");
    }

    /// Writes a lifecycle event (`response.created`, …, `response.completed`) carrying the response object.
    fn emit_response(&mut self, kind: &str, standing: Standing<'_>, out: &mut Vec<u8>) {
        #[derive(serde::Serialize)]
        struct Lifecycle<'x> {
            #[serde(rename = "type")]
            kind: &'x str,
            sequence_number: u64,
            response: ResponseObject<'x>,
        }
        let output = self
            .items
            .iter()
            .filter(|v| !v.is_null())
            .cloned()
            .collect();
        let id = self.ids.response();
        let event = Lifecycle {
            kind,
            sequence_number: self.seq,
            response: response_object(&self.ctx, &id, self.created_at, output, standing),
        };
        self.seq += 1;
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, &event);
        out.extend_from_slice(b"\n\n");
    }

    fn ensure_started(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        for kind in ["response.created", "response.in_progress"] {
            let standing = Standing {
                status: "in_progress",
                usage: None,
                incomplete: Value::Null,
                error: Value::Null,
            };
            self.emit_response(kind, standing, out);
        }
    }

    /// Feeds one SSE event (`name` may be empty: the JSON `type` is used then).
    pub fn on_event(&mut self, name: &str, data: &[u8], usage: &Usage, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        let ev: Value = serde_json::from_slice(data).unwrap_or(Value::Null);
        // The framer names an unnamed event "message": the JSON `type` says what it is.
        let kind = if name.is_empty() || name == "message" {
            str_at(&ev, "type")
        } else {
            name
        };
        match kind {
            "message_start" => {
                if !self.started {
                    if let Some(id) = ev
                        .get("message")
                        .and_then(|m| m.get("id"))
                        .and_then(Value::as_str)
                    {
                        self.ids = Ids::new(id);
                    }
                }
                self.ensure_started(out);
            }
            // Keeps idle proxies from cutting a long thinking pause; both clients skip comments.
            "ping" => out.extend_from_slice(b": keep-alive\n\n"),
            "content_block_start" => {
                self.ensure_started(out);
                self.block_start(&ev, out);
            }
            "content_block_delta" => {
                self.ensure_started(out);
                self.block_delta(&ev, out);
            }
            "content_block_stop" => {
                if let Some(i) = ev.get("index").and_then(Value::as_u64) {
                    self.block_stop(i, out);
                }
            }
            "message_delta" => {
                if let Some(r) = ev
                    .get("delta")
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(r.to_owned());
                }
            }
            "message_stop" => self.finish(usage, out),
            "error" => {
                let err = ev.get("error").cloned().unwrap_or(Value::Null);
                let message = match str_at(&err, "message") {
                    "" => "Upstream error",
                    m => m,
                };
                let code = failed_code(str_at(&err, "type"), message);
                self.fail(code, message, usage, out);
            }
            _ => {}
        }
    }

    /// The upstream broke (connection error, deadline, EOF before `message_stop`, shutdown): ends the stream
    /// with `response.failed`, code `server_error` (Codex retries it). `kind` is the OpenAI error type.
    pub fn on_upstream_error(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        let code = if kind == "server_error" {
            "server_error"
        } else {
            kind
        };
        self.fail(code, message, &Usage::default(), out);
    }

    fn fail(&mut self, code: &str, message: &str, usage: &Usage, out: &mut Vec<u8>) {
        self.ensure_started(out);
        let metered = (usage.input_tokens > 0 || usage.output_tokens > 0).then_some(usage);
        let standing = Standing {
            status: "failed",
            usage: metered,
            incomplete: Value::Null,
            error: json!({"code": code, "message": message}),
        };
        self.emit_response("response.failed", standing, out);
        self.finished = true;
    }

    fn new_item(&mut self) -> usize {
        self.items.push(Value::Null);
        self.items.len() - 1
    }

    fn block_start(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let Some(index) = ev.get("index").and_then(Value::as_u64) else {
            return;
        };
        let b = ev.get("content_block").cloned().unwrap_or(Value::Null);
        let open = match str_at(&b, "type") {
            "text" => {
                let o = self.open_text(out);
                self.open.insert(index, o);
                let t = str_at(&b, "text");
                if !t.is_empty() {
                    self.text_delta(index, t, out);
                }
                return;
            }
            "thinking" => {
                let out_i = self.new_item();
                let id = self.ids.item("rs", out_i);
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": out_i, "item": {"type": "reasoning", "id": id, "summary": []}}),
                    out,
                );
                let o = Open::Reasoning {
                    out: out_i,
                    id,
                    text: String::new(),
                    signature: str_at(&b, "signature").to_owned(),
                    part_open: false,
                };
                self.open.insert(index, o);
                let t = str_at(&b, "thinking");
                if !t.is_empty() {
                    self.thinking_delta(index, t, out);
                }
                return;
            }
            "redacted_thinking" => {
                let out_i = self.new_item();
                let item = redacted_item(&self.ids.item("rs", out_i), str_at(&b, "data"));
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": out_i, "item": item.clone()}),
                    out,
                );
                self.emit(
                    "response.output_item.done",
                    json!({"output_index": out_i, "item": item.clone()}),
                    out,
                );
                self.items[out_i] = item;
                Open::Other
            }
            "tool_use" => {
                let upstream_name = str_at(&b, "name").to_owned();
                let call_id = str_at(&b, "id").to_owned();
                let custom = match self.ctx.tool_kind(&upstream_name) {
                    ToolKind::JsonAnswer => {
                        let o = self.open_text(out);
                        self.open.insert(index, o);
                        return;
                    }
                    ToolKind::Custom { .. } => true,
                    ToolKind::Function { .. } => false,
                };
                let out_i = self.new_item();
                let id = self.ids.item(if custom { "ctc" } else { "fc" }, out_i);
                let mut item = call_item(
                    &self.ctx.tool_kind(&upstream_name),
                    &id,
                    &call_id,
                    "",
                    "in_progress",
                );
                // Arguments fill in as they stream.
                if custom {
                    item["input"] = json!("");
                } else {
                    item["arguments"] = json!("");
                }
                self.emit(
                    "response.output_item.added",
                    json!({"output_index": out_i, "item": item}),
                    out,
                );
                Open::Call {
                    out: out_i,
                    id,
                    call_id,
                    upstream_name,
                    args: String::new(),
                    custom,
                }
            }
            _ => Open::Other,
        };
        self.open.insert(index, open);
    }

    fn open_text(&mut self, out: &mut Vec<u8>) -> Open {
        let out_i = self.new_item();
        let id = self.ids.item("msg", out_i);
        self.emit(
            "response.output_item.added",
            json!({"output_index": out_i, "item": {"type": "message", "id": id,
                "status": "in_progress", "role": "assistant", "content": []}}),
            out,
        );
        self.emit(
            "response.content_part.added",
            json!({"item_id": id, "output_index": out_i, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            out,
        );
        Open::Text {
            out: out_i,
            id,
            text: String::new(),
        }
    }

    fn text_delta(&mut self, index: u64, delta: &str, out: &mut Vec<u8>) {
        let Some(Open::Text { out: o, id, text }) = self.open.get_mut(&index) else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        text.push_str(delta);
        let fields = json!({"item_id": id, "output_index": o, "content_index": 0,
            "delta": delta, "logprobs": []});
        self.emit("response.output_text.delta", fields, out);
    }

    fn thinking_delta(&mut self, index: u64, delta: &str, out: &mut Vec<u8>) {
        let Some(Open::Reasoning {
            out: o,
            id,
            text,
            part_open,
            ..
        }) = self.open.get_mut(&index)
        else {
            return;
        };
        if delta.is_empty() {
            return;
        }
        text.push_str(delta);
        let (o, id, first) = (*o, id.clone(), !*part_open);
        *part_open = true;
        if first {
            self.emit(
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": o, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
                out,
            );
        }
        self.emit(
            "response.reasoning_summary_text.delta",
            json!({"item_id": id, "output_index": o, "summary_index": 0, "delta": delta}),
            out,
        );
    }

    fn block_delta(&mut self, ev: &Value, out: &mut Vec<u8>) {
        let Some(index) = ev.get("index").and_then(Value::as_u64) else {
            return;
        };
        let d = ev.get("delta").cloned().unwrap_or(Value::Null);
        match str_at(&d, "type") {
            "text_delta" => self.text_delta(index, str_at(&d, "text"), out),
            "thinking_delta" => self.thinking_delta(index, str_at(&d, "thinking"), out),
            "signature_delta" => {
                if let Some(Open::Reasoning { signature, .. }) = self.open.get_mut(&index) {
                    signature.push_str(str_at(&d, "signature"));
                }
            }
            "input_json_delta" => {
                let part = str_at(&d, "partial_json");
                match self.open.get_mut(&index) {
                    Some(Open::Text { .. }) => self.text_delta(index, part, out),
                    Some(Open::Call {
                        out: o,
                        id,
                        args,
                        custom,
                        ..
                    }) => {
                        if part.is_empty() {
                            return;
                        }
                        args.push_str(part);
                        // A custom tool's input is unwrapped from `{"input": …}` at its end.
                        if !*custom {
                            let fields = json!({"item_id": id, "output_index": o, "delta": part});
                            self.emit("response.function_call_arguments.delta", fields, out);
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn block_stop(&mut self, index: u64, out: &mut Vec<u8>) {
        let Some(open) = self.open.remove(&index) else {
            return;
        };
        match open {
            Open::Text { out: o, id, text } => {
                self.emit(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": o, "content_index": 0,
                        "text": text, "logprobs": []}),
                    out,
                );
                self.emit(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": o, "content_index": 0,
                        "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
                    out,
                );
                let item = message_item(&id, &text);
                self.done(o, item, out);
            }
            Open::Reasoning {
                out: o,
                id,
                text,
                signature,
                part_open,
            } => {
                if part_open {
                    self.emit(
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": o, "summary_index": 0, "text": text}),
                        out,
                    );
                    self.emit(
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": o, "summary_index": 0,
                            "part": {"type": "summary_text", "text": text}}),
                        out,
                    );
                }
                let item = reasoning_item(&id, &text, &signature);
                self.done(o, item, out);
            }
            Open::Call {
                out: o,
                id,
                call_id,
                upstream_name,
                args,
                custom,
            } => {
                let kind = self.ctx.tool_kind(&upstream_name);
                let item = call_item(&kind, &id, &call_id, &args, "completed");
                let (name, _) = match &kind {
                    ToolKind::Function { name, namespace }
                    | ToolKind::Custom { name, namespace } => (name.to_string(), namespace),
                    ToolKind::JsonAnswer => (String::new(), &None),
                };
                if custom {
                    let input = custom_input(&args);
                    self.emit(
                        "response.custom_tool_call_input.delta",
                        json!({"item_id": id, "output_index": o, "delta": input}),
                        out,
                    );
                    self.emit(
                        "response.custom_tool_call_input.done",
                        json!({"item_id": id, "output_index": o, "input": input}),
                        out,
                    );
                } else {
                    let arguments = item["arguments"].clone();
                    if args.is_empty() {
                        self.emit(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": o, "delta": "{}"}),
                            out,
                        );
                    }
                    self.emit(
                        "response.function_call_arguments.done",
                        json!({"item_id": id, "output_index": o, "name": name, "arguments": arguments}),
                        out,
                    );
                }
                self.done(o, item, out);
            }
            Open::Other => {}
        }
    }

    fn done(&mut self, o: usize, item: Value, out: &mut Vec<u8>) {
        self.emit(
            "response.output_item.done",
            json!({"output_index": o, "item": item.clone()}),
            out,
        );
        self.items[o] = item;
    }

    fn finish(&mut self, usage: &Usage, out: &mut Vec<u8>) {
        self.ensure_started(out);
        // Every item added is closed, even when the upstream skipped a content_block_stop.
        let mut left: Vec<u64> = self.open.keys().copied().collect();
        left.sort_unstable();
        for i in left {
            self.block_stop(i, out);
        }
        let (status, incomplete) = status_for(self.stop_reason.as_deref());
        let event = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let standing = Standing {
            status,
            usage: Some(usage),
            incomplete,
            error: Value::Null,
        };
        self.emit_response(event, standing, out);
        self.finished = true;
    }
}
