//! Anthropic usage, as reported by the upstream (docs/protocols.md §2.5), and the stream meter (§2.6).
//!
//! One parser, [`Usage::apply_override`], serves both the streaming and the non-streaming path, so caching is
//! priced identically on both (the litellm bug of §6 priced cache reads as input only when streaming).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

use crate::sse::SseFramer;
use crate::wire::{Count, EventWire, MessageWire, UsageWire};

/// Raw Anthropic usage of one request. `input_tokens` is the *uncached remainder* only.
///
/// Invariant maintained by [`Usage::apply_override`]:
/// `cache_write_5m_tokens + cache_write_1h_tokens == cache_creation_input_tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    pub input_tokens: u64,
    /// All cache writes, every TTL.
    pub cache_creation_input_tokens: u64,
    /// Cache writes with the 5-minute TTL (includes any unattributed remainder of the total).
    pub cache_write_5m_tokens: u64,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Billed output, thinking included.
    pub output_tokens: u64,
    /// `output_tokens_details.thinking_tokens` when the upstream reports it.
    pub thinking_tokens: Option<u64>,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
    pub service_tier: Option<String>,
    pub inference_geo: Option<String>,
    pub speed: Option<String>,
    /// Last reported `cache_creation.ephemeral_5m_input_tokens`, verbatim (`None` = never reported).
    ///
    /// Kept apart from the derived [`Usage::cache_write_5m_tokens`] so that a later override of the total can
    /// recompute the split from what the upstream actually said rather than from an earlier derivation.
    pub cache_creation_5m_reported: Option<u64>,
    /// Last reported `cache_creation.ephemeral_1h_input_tokens`, verbatim (`None` = never reported).
    pub cache_creation_1h_reported: Option<u64>,
    /// The upstream reported a count that is not a count (negative, fractional, a string) or one past
    /// [`crate::wire::MAX_TOKENS`] (clamped to it). The row is flagged `usage_out_of_range`: the numbers are the
    /// upstream's word, and this one is not believable.
    pub out_of_range: bool,
}

impl Usage {
    /// Usage from an Anthropic `usage` object (response body or `message_start.message.usage`).
    pub fn from_anthropic_usage(v: &Value) -> Usage {
        let mut u = Usage::default();
        u.apply_override(v);
        u
    }

    /// Applies a (possibly partial) `usage` object with the field-wise OVERRIDE rule of docs/protocols.md §2.6: every field
    /// present and non-null replaces the current value, absent/null fields keep theirs, nothing is ever added.
    ///
    /// This is what makes `message_start` + `message_delta` come out right: the delta's cumulative `output_tokens`
    /// replaces the start's small placeholder (89, never 2 + 89), and a delta that omits input/cache fields keeps
    /// the start's values instead of zeroing them. Nested objects (`cache_creation`, `server_tool_use`,
    /// `output_tokens_details`) are merged field by field too. A non-object `v` is ignored.
    ///
    /// Afterwards the 5m/1h split is recomputed (docs/protocols.md §2.5, §9.2):
    /// * `w1h = ephemeral_1h ?? 0`;
    /// * `w5m = ephemeral_5m ?? (total − w1h)`, plus any unattributed remainder `total − w5m − w1h` (so a missing
    ///   `cache_creation` object means "all writes are 5m", and a short split never drops writes);
    /// * if the reported split sums to *more* than `cache_creation_input_tokens` (a stale or missing total), the
    ///   total is raised to the split's sum: billing never goes below what the upstream itemised.
    pub fn apply_override(&mut self, v: &Value) {
        // The typed path is the one parser; a `Value` is routed through it so both entry points agree exactly.
        if v.is_object() {
            if let Ok(w) = serde_json::from_value::<UsageWire>(v.clone()) {
                self.apply_wire(&w);
            }
        }
    }

    /// [`Usage::apply_override`] for an already-parsed [`UsageWire`] (the allocation-free path used by the meter).
    pub fn apply_wire(&mut self, w: &UsageWire) {
        let mut flag = false;
        let mut set = |dst: &mut u64, c: Count| {
            if let Some(n) = c.checked(&mut flag) {
                *dst = n;
            }
        };
        set(&mut self.input_tokens, w.input_tokens);
        set(
            &mut self.cache_creation_input_tokens,
            w.cache_creation_input_tokens,
        );
        set(&mut self.cache_read_input_tokens, w.cache_read_input_tokens);
        set(&mut self.output_tokens, w.output_tokens);
        if let Some(s) = &w.server_tool_use.0 {
            set(&mut self.web_search_requests, s.web_search_requests);
            set(&mut self.web_fetch_requests, s.web_fetch_requests);
        }
        if let Some(cc) = &w.cache_creation.0 {
            if let Some(n) = cc.ephemeral_5m_input_tokens.checked(&mut flag) {
                self.cache_creation_5m_reported = Some(n);
            }
            if let Some(n) = cc.ephemeral_1h_input_tokens.checked(&mut flag) {
                self.cache_creation_1h_reported = Some(n);
            }
        }
        if let Some(n) = w
            .output_tokens_details
            .0
            .as_ref()
            .and_then(|d| d.thinking_tokens.checked(&mut flag))
        {
            self.thinking_tokens = Some(n);
        }
        self.out_of_range |= flag;
        for (dst, src) in [
            (&mut self.service_tier, &w.service_tier),
            (&mut self.inference_geo, &w.inference_geo),
            (&mut self.speed, &w.speed),
        ] {
            if let Some(s) = &src.0 {
                *dst = Some(s.clone());
            }
        }
        self.recompute_cache_split();
    }

    /// Re-derives `cache_write_5m_tokens` / `cache_write_1h_tokens` from the total and the reported split.
    pub fn recompute_cache_split(&mut self) {
        let r5 = self.cache_creation_5m_reported.unwrap_or(0);
        let r1 = self.cache_creation_1h_reported.unwrap_or(0);
        let itemised = r5.saturating_add(r1);
        if itemised > self.cache_creation_input_tokens {
            self.cache_creation_input_tokens = itemised;
        }
        self.cache_write_1h_tokens = r1;
        // = max(r5, total − r1): the explicit 5m count plus the unattributed remainder.
        self.cache_write_5m_tokens = self.cache_creation_input_tokens - r1;
    }

    /// Whole prompt: uncached input + cache writes + cache reads (the long-context threshold compares this).
    pub fn total_input_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_creation_input_tokens)
            .saturating_add(self.cache_read_input_tokens)
    }

    /// `true` when no token of any class was counted: a "successful" row like this deserves an alert (§6, gzip bug).
    pub fn is_zero(&self) -> bool {
        self.total_input_tokens() == 0 && self.output_tokens == 0
    }
}

/// Identification fields of a non-streaming answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseMeta {
    pub id: Option<String>,
    pub model: Option<String>,
    pub stop_reason: Option<String>,
}

/// Usage and identification of a non-streaming `/v1/messages` answer. `None` if the body is not JSON or carries no
/// `usage` object (e.g. an error body). Uses the same [`Usage::apply_wire`] as the stream path; `content` and every
/// other field is skipped by the parser without being materialised.
pub fn usage_from_json_response(body: &[u8]) -> Option<(Usage, ResponseMeta)> {
    let shape: MessageWire = serde_json::from_slice(body).ok()?;
    let usage_w = shape.usage.0?;
    let mut usage = Usage::default();
    usage.apply_wire(&usage_w);
    let meta = ResponseMeta {
        id: shape.id.0,
        model: shape.model.0,
        stop_reason: shape.stop_reason.0,
    };
    Some((usage, meta))
}

/// How a stream ended, from the meter's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamStatus {
    /// `message_delta` and `message_stop` were both seen: usage is final.
    Complete,
    /// The stream ended early (no `message_stop`, or no `message_delta`). If no `message_delta` was seen the output
    /// count is estimated ([`StreamOutcome::output_estimated`]).
    Partial,
    /// An in-stream `error` event arrived (possibly after HTTP 200).
    Error,
}

/// An in-stream `error` event: `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub error_type: String,
    pub message: String,
}

/// Final result of metering one stream; see [`StreamMeter::outcome`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOutcome {
    pub status: StreamStatus,
    /// Usage to record. When `output_estimated`, `output_tokens` is
    /// `max(message_start.output_tokens, ceil(output_chars / 4))`.
    pub usage: Usage,
    pub output_estimated: bool,
    pub saw_message_start: bool,
    pub saw_message_delta: bool,
    pub saw_message_stop: bool,
    pub stop_reason: Option<String>,
    pub message_id: Option<String>,
    pub model: Option<String>,
    pub error: Option<StreamError>,
    /// Bytes of `text_delta` / `thinking_delta` / `input_json_delta` payload seen (JSON-escaped form).
    pub output_chars: u64,
    /// Metered events (`message_*`, `error`) whose JSON could not be parsed.
    pub parse_errors: u32,
}

impl StreamOutcome {
    /// `false` when neither `message_start` nor `message_delta` was seen: there is nothing to bill from the stream.
    pub fn has_usage(&self) -> bool {
        self.saw_message_start || self.saw_message_delta
    }
}

/// Incremental meter for one Anthropic SSE stream.
///
/// Feed it framed events with [`StreamMeter::on_event`] (when the caller runs its own [`SseFramer`], e.g. to
/// translate the stream too) or raw bytes with [`StreamMeter::push_bytes`] + [`StreamMeter::finish_bytes`].
///
/// Cost per event: JSON is parsed only for `message_start`, `message_delta` and `error` (a handful per stream);
/// `message_stop` needs no parse; `content_block_delta` is parsed for its payload string only, to count bytes for the
/// output estimate; every other event is skipped by name.
#[derive(Debug, Clone, Default)]
pub struct StreamMeter {
    framer: SseFramer,
    state: MeterState,
}

#[derive(Debug, Clone, Default)]
struct MeterState {
    usage: Usage,
    start_output_tokens: u64,
    saw_start: bool,
    saw_delta: bool,
    saw_stop: bool,
    stop_reason: Option<String>,
    message_id: Option<String>,
    model: Option<String>,
    error: Option<StreamError>,
    output_chars: u64,
    parse_errors: u32,
    thinking_blocks: u32,
    signature_deltas: u32,
}

impl StreamMeter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames `chunk` with the meter's own [`SseFramer`] and meters every completed event.
    pub fn push_bytes(&mut self, chunk: &[u8]) {
        let StreamMeter { framer, state } = self;
        framer.push(chunk, &mut |ev| state.on_event(ev.event, ev.data));
    }

    /// `true` once the meter's own framer ([`StreamMeter::push_bytes`]) met a line or event past its cap: the
    /// stream was not metered completely, and the caller should end it.
    pub fn framing_overflowed(&self) -> bool {
        self.framer.overflowed()
    }

    /// End of the byte stream: flushes a trailing event that lacks its blank line.
    pub fn finish_bytes(&mut self) {
        let StreamMeter { framer, state } = self;
        framer.finish(&mut |ev| state.on_event(ev.event, ev.data));
    }

    /// Meters one framed event (`name` = SSE `event:` field, `data` = joined `data:` lines).
    ///
    /// Events without an `event:` line (name `"message"`, sent by some third-party upstreams) are classified by
    /// their JSON `type` when they look like a metered event.
    pub fn on_event(&mut self, name: &str, data: &[u8]) {
        self.state.on_event(name, data);
    }

    /// Usage as reported so far (no output estimate applied; see [`StreamMeter::outcome`]).
    pub fn usage(&self) -> &Usage {
        &self.state.usage
    }

    pub fn saw_message_start(&self) -> bool {
        self.state.saw_start
    }

    pub fn saw_message_stop(&self) -> bool {
        self.state.saw_stop
    }

    pub fn error(&self) -> Option<&StreamError> {
        self.state.error.as_ref()
    }

    /// Payload bytes of the content deltas so far (see [`StreamOutcome::output_chars`]).
    pub fn output_chars(&self) -> u64 {
        self.state.output_chars
    }

    /// Thinking blocks started so far, and how many came without a `signature_delta` (CCGate's upstream trust
    /// check: a real thinking block is signed).
    pub fn thinking_blocks(&self) -> (u32, u32) {
        let s = &self.state;
        (
            s.thinking_blocks,
            s.thinking_blocks.saturating_sub(s.signature_deltas),
        )
    }

    /// Output tokens estimated from payload bytes: `ceil(output_chars / 4)`.
    pub fn estimated_output_tokens(&self) -> u64 {
        self.state.output_chars.div_ceil(4)
    }

    /// The result to record. Status: `Error` if an `error` event was seen, else `Complete` if both `message_delta`
    /// and `message_stop` were seen, else `Partial`. Whenever no `message_delta` arrived, `output_tokens` is
    /// estimated (never 0 when any output was streamed) and `output_estimated` is set.
    pub fn outcome(&self) -> StreamOutcome {
        let s = &self.state;
        let mut usage = s.usage.clone();
        let output_estimated = !s.saw_delta;
        if output_estimated {
            usage.output_tokens = s.start_output_tokens.max(self.estimated_output_tokens());
        }
        let status = if s.error.is_some() {
            StreamStatus::Error
        } else if s.saw_delta && s.saw_stop {
            StreamStatus::Complete
        } else {
            StreamStatus::Partial
        };
        StreamOutcome {
            status,
            usage,
            output_estimated,
            saw_message_start: s.saw_start,
            saw_message_delta: s.saw_delta,
            saw_message_stop: s.saw_stop,
            stop_reason: s.stop_reason.clone(),
            message_id: s.message_id.clone(),
            model: s.model.clone(),
            error: s.error.clone(),
            output_chars: s.output_chars,
            parse_errors: s.parse_errors,
        }
    }
}

impl MeterState {
    fn on_event(&mut self, name: &str, data: &[u8]) {
        match name {
            "content_block_delta" => self.on_delta(data),
            "content_block_start" => self.on_block_start(data),
            "message_stop" => self.saw_stop = true,
            "message_start" | "message_delta" => match serde_json::from_slice::<EventWire>(data) {
                Ok(ev) => self.on_event_wire(name, ev),
                Err(_) => self.parse_errors = self.parse_errors.saturating_add(1),
            },
            "error" => match serde_json::from_slice::<Value>(data) {
                Ok(v) => self.on_error(&v),
                Err(_) => {
                    self.parse_errors = self.parse_errors.saturating_add(1);
                    if name == "error" {
                        self.error = Some(StreamError {
                            error_type: "unparseable_error_event".to_owned(),
                            message: String::from_utf8_lossy(&data[..data.len().min(512)])
                                .into_owned(),
                        });
                    }
                }
            },
            "message" => self.on_unnamed(data),
            _ => {}
        }
    }

    fn on_delta(&mut self, data: &[u8]) {
        let (len, signature) = delta_payload(data);
        self.output_chars += len as u64;
        if signature {
            self.signature_deltas = self.signature_deltas.saturating_add(1);
        }
    }

    /// A block start is parsed only for its type (a few per stream).
    fn on_block_start(&mut self, data: &[u8]) {
        #[derive(Deserialize)]
        struct Start<'a> {
            #[serde(borrow)]
            content_block: Option<Block<'a>>,
        }
        #[derive(Deserialize)]
        struct Block<'a> {
            #[serde(borrow, rename = "type")]
            kind: Option<std::borrow::Cow<'a, str>>,
        }
        if let Ok(Start {
            content_block: Some(b),
        }) = serde_json::from_slice::<Start<'_>>(data)
        {
            if b.kind.as_deref() == Some("thinking") {
                self.thinking_blocks = self.thinking_blocks.saturating_add(1);
            }
        }
    }

    /// Unnamed event: classify by its JSON `type`. Rare (some third-party upstreams), so one extra parse of a
    /// `content_block_delta` is fine here.
    fn on_unnamed(&mut self, data: &[u8]) {
        let Ok(ev) = serde_json::from_slice::<EventWire>(data) else {
            return;
        };
        match ev.kind.0.as_deref().unwrap_or("") {
            "message_start" => self.on_event_wire("message_start", ev),
            "message_delta" => self.on_event_wire("message_delta", ev),
            "error" => self.on_event("error", data),
            "message_stop" => self.saw_stop = true,
            "content_block_delta" => self.on_delta(data),
            "content_block_start" => self.on_block_start(data),
            _ => {}
        }
    }

    fn on_event_wire(&mut self, name: &str, ev: EventWire) {
        match name {
            "message_start" => {
                let Some(msg) = ev.message.0 else { return };
                self.saw_start = true;
                if let Some(s) = msg.id.0 {
                    self.message_id = Some(s);
                }
                if let Some(s) = msg.model.0 {
                    self.model = Some(s);
                }
                if let Some(u) = msg.usage.0 {
                    // `usage = message_start.message.usage`; a repeated message_start (never seen from
                    // Anthropic) is merged with the same override rule rather than trusted to be complete.
                    self.usage.apply_wire(&u);
                    if let Some(n) = u.output_tokens.checked(&mut self.usage.out_of_range) {
                        self.start_output_tokens = n;
                    }
                }
            }
            "message_delta" => {
                self.saw_delta = true;
                if let Some(u) = ev.usage.0 {
                    self.usage.apply_wire(&u);
                }
                if let Some(s) = ev.delta.0.and_then(|d| d.stop_reason.0) {
                    self.stop_reason = Some(s);
                }
            }
            _ => {}
        }
    }

    /// An in-stream `error` event (rare, so a `Value` parse is fine here).
    fn on_error(&mut self, v: &Value) {
        let e = v.get("error");
        let field = |k: &str| {
            e.and_then(|e| e.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        self.error = Some(StreamError {
            error_type: match field("type") {
                "" => "unknown_error".to_owned(),
                t => t.to_owned(),
            },
            message: field("message").to_owned(),
        });
    }
}

/// The part of a `content_block_delta` the output estimate reads: the payload string as raw JSON text.
#[derive(Deserialize)]
struct DeltaEvent<'a> {
    #[serde(borrow)]
    delta: Option<DeltaPayload<'a>>,
}

#[derive(Deserialize)]
struct DeltaPayload<'a> {
    #[serde(borrow)]
    text: Option<&'a RawValue>,
    #[serde(borrow)]
    thinking: Option<&'a RawValue>,
    #[serde(borrow)]
    partial_json: Option<&'a RawValue>,
    #[serde(borrow)]
    signature: Option<&'a RawValue>,
}

/// Byte length of the `text` / `thinking` / `partial_json` string of a `content_block_delta`, in its escaped form
/// (an escaped quote counts 2): raw text keeps the parse from unescaping every token, and the count is only a
/// chars/4 estimate. Other delta types (`signature_delta`, `citations_delta`), a non-string payload and an event
/// that is not valid JSON count 0.
/// Also says whether the delta carried a non-empty `signature` (a `signature_delta`).
fn delta_payload(data: &[u8]) -> (usize, bool) {
    let Ok(DeltaEvent { delta: Some(d) }) = serde_json::from_slice::<DeltaEvent<'_>>(data) else {
        return (0, false);
    };
    let signed = d
        .signature
        .is_some_and(|raw| raw.get().starts_with('"') && raw.get().len() > 2);
    let len = [d.text, d.thinking, d.partial_json]
        .into_iter()
        .flatten()
        .map(RawValue::get)
        .find(|raw| raw.starts_with('"'))
        .map_or(0, |raw| raw.len().saturating_sub(2));
    (len, signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const WORKED_EXAMPLE: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-6\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":9000,\"output_tokens\":2}}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking.\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":9000,\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    fn meter(text: &str) -> StreamOutcome {
        let mut m = StreamMeter::new();
        m.push_bytes(text.as_bytes());
        m.finish_bytes();
        m.outcome()
    }

    #[test]
    fn worked_example_section_2_6() {
        let o = meter(WORKED_EXAMPLE);
        assert_eq!(o.status, StreamStatus::Complete);
        assert_eq!(o.usage.input_tokens, 472); // never doubled
        assert_eq!(o.usage.cache_read_input_tokens, 9000);
        assert_eq!(o.usage.cache_creation_input_tokens, 0);
        assert_eq!(o.usage.output_tokens, 89); // never 91
        assert!(!o.output_estimated);
        assert_eq!(o.stop_reason.as_deref(), Some("tool_use"));
        assert_eq!(o.message_id.as_deref(), Some("msg_01"));
        assert_eq!(o.model.as_deref(), Some("claude-sonnet-4-6"));
        assert_eq!(o.parse_errors, 0);
        // "Checking." (9) + `{\"city\": \"Par` (16, escaped form) + `is\"}` (5)
        assert_eq!(o.output_chars, 9 + 16 + 5);
    }

    #[test]
    fn worked_example_any_chunking() {
        let whole = meter(WORKED_EXAMPLE);
        for step in [1, 2, 3, 7, 64] {
            let mut m = StreamMeter::new();
            for c in WORKED_EXAMPLE.as_bytes().chunks(step) {
                m.push_bytes(c);
            }
            m.finish_bytes();
            assert_eq!(m.outcome(), whole, "chunk size {step}");
        }
    }

    #[test]
    fn delta_with_only_output_keeps_input_and_cache() {
        let mut u = Usage::from_anthropic_usage(&json!({
            "input_tokens": 21, "cache_creation_input_tokens": 1890, "cache_read_input_tokens": 10240,
            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 1890},
            "output_tokens": 1, "service_tier": "standard"
        }));
        u.apply_override(&json!({"output_tokens": 412}));
        assert_eq!(u.input_tokens, 21);
        assert_eq!(u.cache_creation_input_tokens, 1890);
        assert_eq!(u.cache_write_1h_tokens, 1890);
        assert_eq!(u.cache_write_5m_tokens, 0);
        assert_eq!(u.cache_read_input_tokens, 10240);
        assert_eq!(u.output_tokens, 412);
        assert_eq!(u.service_tier.as_deref(), Some("standard"));
    }

    #[test]
    fn null_fields_keep_values() {
        let mut u = Usage::from_anthropic_usage(&json!({"input_tokens": 5, "output_tokens": 1}));
        u.apply_override(
            &json!({"input_tokens": null, "output_tokens": 7, "cache_creation": null}),
        );
        assert_eq!((u.input_tokens, u.output_tokens), (5, 7));
    }

    #[test]
    fn multiple_message_deltas_last_wins() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"pause_turn\"},\"usage\":{\"output_tokens\":50,\"server_tool_use\":{\"web_search_requests\":1}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":120,\"server_tool_use\":{\"web_search_requests\":3}}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let o = meter(s);
        assert_eq!(o.status, StreamStatus::Complete);
        assert_eq!(o.usage.input_tokens, 10);
        assert_eq!(o.usage.output_tokens, 120);
        assert_eq!(o.usage.web_search_requests, 3);
        assert_eq!(o.stop_reason.as_deref(), Some("end_turn"));
    }

    #[test]
    fn missing_cache_creation_means_all_5m() {
        let u = Usage::from_anthropic_usage(
            &json!({"input_tokens": 1, "cache_creation_input_tokens": 700}),
        );
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (700, 0));
        assert_eq!(u.cache_creation_input_tokens, 700);
    }

    #[test]
    fn unattributed_remainder_is_5m() {
        let u = Usage::from_anthropic_usage(&json!({
            "cache_creation_input_tokens": 1000,
            "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 600}
        }));
        assert_eq!(
            (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
            (400, 600)
        );
        assert_eq!(u.cache_creation_input_tokens, 1000);
        // Only the 1h field given: the rest is 5m.
        let u = Usage::from_anthropic_usage(&json!({
            "cache_creation_input_tokens": 1000, "cache_creation": {"ephemeral_1h_input_tokens": 250}
        }));
        assert_eq!(
            (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
            (750, 250)
        );
    }

    #[test]
    fn one_hour_split() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6",
            "content":[{"type":"text","text":"hi"}],"stop_reason":"tool_use","stop_sequence":null,
            "usage":{"input_tokens":21,"cache_creation_input_tokens":1890,"cache_read_input_tokens":10240,
            "cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1890},
            "output_tokens":412,"output_tokens_details":{"thinking_tokens":100},
            "server_tool_use":{"web_search_requests":2,"web_fetch_requests":1},
            "service_tier":"standard","inference_geo":"us","speed":"fast"}}"#;
        let (u, meta) = usage_from_json_response(body).unwrap();
        assert_eq!(
            (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
            (0, 1890)
        );
        assert_eq!(u.cache_creation_input_tokens, 1890);
        assert_eq!(u.thinking_tokens, Some(100));
        assert_eq!((u.web_search_requests, u.web_fetch_requests), (2, 1));
        assert_eq!(u.inference_geo.as_deref(), Some("us"));
        assert_eq!(u.speed.as_deref(), Some("fast"));
        assert_eq!(u.total_input_tokens(), 21 + 1890 + 10240);
        assert_eq!(meta.id.as_deref(), Some("msg_1"));
        assert_eq!(meta.model.as_deref(), Some("claude-sonnet-4-6"));
        assert_eq!(meta.stop_reason.as_deref(), Some("tool_use"));
    }

    #[test]
    fn split_larger_than_total_raises_total() {
        let u = Usage::from_anthropic_usage(&json!({
            "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}
        }));
        assert_eq!(u.cache_creation_input_tokens, 30);
        assert_eq!((u.cache_write_5m_tokens, u.cache_write_1h_tokens), (10, 20));
    }

    #[test]
    fn response_without_usage_or_not_json() {
        assert!(
            usage_from_json_response(b"{\"type\":\"error\",\"error\":{\"type\":\"x\"}}").is_none()
        );
        assert!(usage_from_json_response(b"\x1f\x8b\x08garbage").is_none());
        assert!(usage_from_json_response(b"[1,2]").is_none());
        assert!(usage_from_json_response(b"{\"usage\":5}").is_none());
        let dup = br#"{"id":"a","id":"b","usage":{"input_tokens":3,"output_tokens":4}}"#;
        let (u, meta) = usage_from_json_response(dup).unwrap();
        assert_eq!(
            (u.input_tokens, u.output_tokens, meta.id.as_deref()),
            (3, 4, Some("b"))
        );
    }

    #[test]
    fn error_event() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        );
        let o = meter(s);
        assert_eq!(o.status, StreamStatus::Error);
        let e = o.error.unwrap();
        assert_eq!(
            (e.error_type.as_str(), e.message.as_str()),
            ("overloaded_error", "Overloaded")
        );
        assert_eq!(o.usage.input_tokens, 10);
        assert!(o.output_estimated);
    }

    #[test]
    fn stream_without_message_delta_is_partial_with_estimate() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":472,\"cache_read_input_tokens\":9000,\"output_tokens\":2}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"0123456789012345678901234567890123456789\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"abc\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"zzzzzzzzzzzzzzzz\"}}\n\n",
        );
        let o = meter(s);
        assert_eq!(o.status, StreamStatus::Partial);
        assert!(o.output_estimated);
        assert_eq!(o.output_chars, 43);
        assert_eq!(o.usage.output_tokens, 11); // ceil(43 / 4) > 2
        assert_eq!(o.usage.input_tokens, 472);
        assert_eq!(o.usage.cache_read_input_tokens, 9000);
        // Nothing streamed after message_start: keep the start's own output count, never 0.
        let o = meter(&s[..s.find("event: content_block_delta").unwrap()]);
        assert_eq!(o.usage.output_tokens, 2);
        assert!(o.has_usage());
    }

    #[test]
    fn delta_without_stop_is_partial_but_not_estimated() {
        let s = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":30}}\n\n",
        );
        let o = meter(s);
        assert_eq!(o.status, StreamStatus::Partial);
        assert!(!o.output_estimated);
        assert_eq!(o.usage.output_tokens, 30);
    }

    #[test]
    fn unnamed_events_are_classified_by_type() {
        let s = concat!(
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"abcd\"}}\n\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let o = meter(s);
        assert_eq!(o.status, StreamStatus::Complete);
        assert_eq!(
            (o.usage.input_tokens, o.usage.output_tokens, o.output_chars),
            (3, 9, 4)
        );
    }

    /// Absurd counts from a hostile upstream: past the cap they are clamped, non-counts are ignored, and both
    /// flag the usage instead of passing as a clean 0.
    #[test]
    fn absurd_counts_are_clamped_and_flagged() {
        let (u, _) = usage_from_json_response(
            br#"{"usage":{"input_tokens":18446744073709551615,"output_tokens":1e30,"cache_read_input_tokens":3}}"#,
        )
        .unwrap();
        assert_eq!(u.input_tokens, crate::wire::MAX_TOKENS);
        assert_eq!(u.output_tokens, crate::wire::MAX_TOKENS);
        assert_eq!(u.cache_read_input_tokens, 3);
        assert!(u.out_of_range);
        for bad in [r#"-5"#, r#"2.5"#, r#""12""#, r#"true"#, r#"[1]"#] {
            let body = format!(r#"{{"usage":{{"input_tokens":{bad},"output_tokens":4}}}}"#);
            let (u, _) = usage_from_json_response(body.as_bytes()).unwrap();
            assert_eq!((u.input_tokens, u.output_tokens), (0, 4), "{bad}");
            assert!(u.out_of_range, "{bad} must flag the usage");
        }
        let (u, _) = usage_from_json_response(
            br#"{"usage":{"input_tokens":12.0,"output_tokens":null,"cache_creation":{"ephemeral_1h_input_tokens":7}}}"#,
        )
        .unwrap();
        assert!(!u.out_of_range, "integral floats and null are fine");
        assert_eq!((u.input_tokens, u.cache_write_1h_tokens), (12, 7));
        let mut m = StreamMeter::new();
        m.push_bytes(b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":-1,\"output_tokens\":1}}}\n\n");
        m.finish_bytes();
        assert!(m.usage().out_of_range);
    }

    #[test]
    fn garbage_never_panics() {
        let mut m = StreamMeter::new();
        m.on_event("message_start", b"{not json");
        m.on_event("message_delta", b"[]");
        m.on_event("error", b"\xff\xfe");
        m.on_event("content_block_delta", b"{\"text\": \"unterminated \\");
        m.on_event("content_block_delta", b"{\"text\"");
        let o = m.outcome();
        assert_eq!(o.status, StreamStatus::Error);
        // `{not json`, and `[]` where a message_delta object belongs; the error event is counted as an error.
        assert_eq!(o.parse_errors, 3);
        assert!(!o.has_usage() || o.saw_message_delta);
    }

    fn delta_payload_len(data: &[u8]) -> usize {
        delta_payload(data).0
    }

    #[test]
    fn thinking_blocks_without_a_signature_are_counted() {
        let mut m = StreamMeter::new();
        let start = br#"{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}"#;
        m.on_event("content_block_start", start);
        m.on_event(
            "content_block_delta",
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQ"}}"#,
        );
        m.on_event("content_block_start", start);
        m.on_event(
            "content_block_start",
            br#"{"type":"content_block_start","index":2,"content_block":{"type":"text","text":""}}"#,
        );
        assert_eq!(m.thinking_blocks(), (2, 1));
    }

    #[test]
    fn payload_len_handles_escapes_and_key_order() {
        assert_eq!(
            delta_payload_len(br#"{"delta":{"text":"a\"b","type":"text_delta"}}"#),
            4
        );
        assert_eq!(
            delta_payload_len(br#"{"delta":{"type":"text_delta","text" : "xy"}}"#),
            2
        );
        assert_eq!(
            delta_payload_len(
                br#"{"delta":{"type":"citations_delta","citation":{"cited_text":"q"}}}"#
            ),
            0
        );
        let signature = br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQ"}}"#;
        assert_eq!(delta_payload(signature), (0, true));
        assert_eq!(
            delta_payload_len(br#"{"delta":{"type":"text_delta","text":"\u00e9\\"}}"#),
            8
        );
        // Not JSON (cut inside the payload), or a payload that is not a string: nothing to count.
        assert_eq!(
            delta_payload_len(br#"{"delta":{"type":"text_delta","text":"ab\"}}"#),
            0
        );
        assert_eq!(delta_payload_len(br#"{"delta":{"text":12}}"#), 0);
    }

    // ---- property: random sequences of partial usage objects; final equals last-seen per field ----

    #[derive(Debug, Clone)]
    struct Delta {
        input: Option<Option<u64>>, // None = absent, Some(None) = null
        cache_total: Option<Option<u64>>,
        read: Option<Option<u64>>,
        output: Option<Option<u64>>,
        c5: Option<u64>,
        c1: Option<u64>,
        web: Option<u64>,
        geo: Option<&'static str>,
    }

    fn field() -> impl Strategy<Value = Option<Option<u64>>> {
        prop_oneof![
            Just(None),
            Just(Some(None)),
            (0u64..100_000).prop_map(|n| Some(Some(n)))
        ]
    }

    fn delta() -> impl Strategy<Value = Delta> {
        (
            field(),
            field(),
            field(),
            field(),
            proptest::option::of(0u64..5000),
            proptest::option::of(0u64..5000),
            proptest::option::of(0u64..10),
            proptest::option::of(prop_oneof![Just("us"), Just("global")]),
        )
            .prop_map(
                |(input, cache_total, read, output, c5, c1, web, geo)| Delta {
                    input,
                    cache_total,
                    read,
                    output,
                    c5,
                    c1,
                    web,
                    geo,
                },
            )
    }

    fn to_json(d: &Delta) -> Value {
        let mut m = serde_json::Map::new();
        for (k, f) in [
            ("input_tokens", d.input),
            ("cache_creation_input_tokens", d.cache_total),
            ("cache_read_input_tokens", d.read),
            ("output_tokens", d.output),
        ] {
            if let Some(v) = f {
                m.insert(k.into(), v.map_or(Value::Null, Value::from));
            }
        }
        if d.c5.is_some() || d.c1.is_some() {
            let mut cc = serde_json::Map::new();
            if let Some(n) = d.c5 {
                cc.insert("ephemeral_5m_input_tokens".into(), n.into());
            }
            if let Some(n) = d.c1 {
                cc.insert("ephemeral_1h_input_tokens".into(), n.into());
            }
            m.insert("cache_creation".into(), Value::Object(cc));
        }
        if let Some(n) = d.web {
            m.insert("server_tool_use".into(), json!({"web_search_requests": n}));
        }
        if let Some(g) = d.geo {
            m.insert("inference_geo".into(), g.into());
        }
        Value::Object(m)
    }

    proptest! {
        #[test]
        fn override_is_last_seen_per_field(deltas in proptest::collection::vec(delta(), 1..8)) {
            let mut u = Usage::default();
            for d in &deltas {
                u.apply_override(&to_json(d));
            }
            let last = |f: fn(&Delta) -> Option<Option<u64>>| {
                deltas.iter().rev().find_map(|d| f(d).flatten()).unwrap_or(0)
            };
            prop_assert_eq!(u.input_tokens, last(|d| d.input));
            prop_assert_eq!(u.cache_read_input_tokens, last(|d| d.read));
            prop_assert_eq!(u.output_tokens, last(|d| d.output));
            let c5 = deltas.iter().rev().find_map(|d| d.c5);
            let c1 = deltas.iter().rev().find_map(|d| d.c1);
            prop_assert_eq!(u.cache_creation_5m_reported, c5);
            prop_assert_eq!(u.cache_creation_1h_reported, c1);
            prop_assert_eq!(u.web_search_requests, deltas.iter().rev().find_map(|d| d.web).unwrap_or(0));
            prop_assert_eq!(u.inference_geo.as_deref(), deltas.iter().rev().find_map(|d| d.geo));
            // Cache total: last seen, but after each step raised to the itemised split when that is larger
            // (only reachable with inconsistent upstream data; genuine Anthropic usage has split <= total).
            let (mut total, mut r5, mut r1) = (0u64, 0u64, 0u64);
            for d in &deltas {
                if let Some(Some(n)) = d.cache_total {
                    total = n;
                }
                r5 = d.c5.unwrap_or(r5);
                r1 = d.c1.unwrap_or(r1);
                total = total.max(r5 + r1);
            }
            prop_assert_eq!(u.cache_creation_input_tokens, total);
            if deltas.iter().all(|d| d.c5.is_none() && d.c1.is_none()) {
                prop_assert_eq!(u.cache_creation_input_tokens, last(|d| d.cache_total));
                prop_assert_eq!(u.cache_write_5m_tokens, u.cache_creation_input_tokens);
            }
            prop_assert_eq!(u.cache_write_5m_tokens + u.cache_write_1h_tokens, u.cache_creation_input_tokens);
            prop_assert_eq!(u.cache_write_1h_tokens, c1.unwrap_or(0));
            prop_assert!(u.cache_write_5m_tokens >= c5.unwrap_or(0));
        }
    }

    /// Fragments of Messages answers, to build hostile near-JSON.
    fn json_fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("{".to_owned()),
            Just("}".to_owned()),
            Just("[".to_owned()),
            Just("]".to_owned()),
            Just(",".to_owned()),
            Just(":".to_owned()),
            Just("\"usage\"".to_owned()),
            Just("\"input_tokens\"".to_owned()),
            Just("\"output_tokens\"".to_owned()),
            Just("\"cache_creation\"".to_owned()),
            Just("\"ephemeral_5m_input_tokens\"".to_owned()),
            Just("\"server_tool_use\"".to_owned()),
            Just("\"id\"".to_owned()),
            Just("\"model\"".to_owned()),
            Just("null".to_owned()),
            Just("-1".to_owned()),
            Just("1e400".to_owned()),
            Just("18446744073709551616".to_owned()),
            "[0-9]{1,20}".prop_map(|s| s),
            "\"[ -~]{0,8}\"".prop_map(|s| s),
            Just("\"\\ud800\"".to_owned()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// The usage reader sees hostile bodies: it answers `None` or a usage, never panics.
        #[test]
        fn usage_reader_never_panics(
            bytes in proptest::collection::vec(any::<u8>(), 0..512),
            frags in proptest::collection::vec(json_fragment(), 0..40),
        ) {
            let _ = usage_from_json_response(&bytes);
            let text = frags.concat();
            let _ = usage_from_json_response(text.as_bytes());
            let wrapped = format!("{{\"usage\":{text}}}");
            let _ = usage_from_json_response(wrapped.as_bytes());
            // The stream meter too, on the same material as event data.
            let mut m = StreamMeter::new();
            for name in ["message_start", "message_delta", "content_block_delta", "error", "message"] {
                m.on_event(name, &bytes);
                m.on_event(name, text.as_bytes());
                m.on_event(name, wrapped.as_bytes());
            }
            m.push_bytes(&bytes);
            m.finish_bytes();
            let _ = m.outcome();
        }
    }
}
