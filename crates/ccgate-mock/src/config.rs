//! Mock-wide behaviour ([`MockConfig`]) and per-request overrides from `x-mock-*` headers.

use std::collections::BTreeMap;

use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Header prefix for per-request overrides: `x-mock-<field>` (dashes or underscores).
pub const OVERRIDE_PREFIX: &str = "x-mock-";
/// Header carrying a partial `MockConfig` as JSON, applied before the single-field headers.
pub const OVERRIDE_CONFIG_HEADER: &str = "x-mock-config";

/// What the mock does after sending `fail_after_events` SSE events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakMode {
    /// Abruptly close the connection (the chunked body never terminates).
    #[default]
    Disconnect,
    /// Send an in-stream `event: error` (overloaded_error) and end the stream cleanly.
    ErrorEvent,
}

/// When the mock answers with a `tool_use` block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolMode {
    /// Never (plain text answers).
    #[default]
    Off,
    /// Whenever the request carries tools (or `tool_name` is set).
    Always,
    /// Agent-loop imitation: tool_use for a fresh user turn, a text answer after a tool_result.
    Auto,
}

/// Mock-wide behaviour. Every field can be overridden for one request with a header
/// `x-mock-<field>` (e.g. `x-mock-status: 429`, `x-mock-event-delay-ms: 50`), or several at
/// once with `x-mock-config: {json}`. Headers win over the config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MockConfig {
    /// Record requests (for `requests()` / `GET /_mock/requests`). Disable for benchmarks.
    pub record: bool,
    /// Assistant text.
    pub text: String,
    /// Number of `text_delta` events the text is split into (on char boundaries).
    pub chunks: u32,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    /// `cache_creation.ephemeral_5m_input_tokens`; the `cache_creation` object is omitted
    /// when both `cache_5m` and `cache_1h` are `None`.
    pub cache_5m: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`.
    pub cache_1h: Option<u64>,
    pub cache_read_input_tokens: u64,
    /// SSE: the final `message_delta.usage` carries only `output_tokens`.
    pub delta_output_only: bool,
    /// SSE: sleep between events.
    pub event_delay_ms: u64,
    /// Sleep before sending the response headers.
    pub first_byte_delay_ms: u64,
    /// Accept the request and never answer.
    pub hang: bool,
    /// HTTP status; anything but 200 answers an Anthropic error body.
    pub status: u16,
    /// Status for `GET …/v1/models` (the health probe); `None` = same as `status`.
    pub models_status: Option<u16>,
    /// Override of the error message text.
    pub error_message: Option<String>,
    /// Override of `error.type` (default derived from the status).
    pub error_type: Option<String>,
    /// Seconds for a `retry-after` header on error answers.
    pub retry_after: Option<u64>,
    /// Raw error body sent verbatim instead of the Anthropic-shaped one.
    pub error_body: Option<String>,
    /// SSE: break the stream after this many events (pings and message_start included).
    pub fail_after_events: Option<u32>,
    pub break_mode: BreakMode,
    /// SSE: send no `message_delta` at all.
    pub omit_message_delta: bool,
    pub tool_mode: ToolMode,
    /// Name of the tool to call (default: "Bash" if offered, else the first tool).
    pub tool_name: Option<String>,
    /// Input of the tool call (default: Bash → echo command, other tools → `{}`).
    pub tool_input: Option<Value>,
    /// Number of `tool_use` blocks in a tool answer (parallel calls of the same tool; ids `<id>`, `<id>_1`, …).
    pub tool_calls: u32,
    /// Text block before the tool_use block (default: `text`; empty = no text block).
    pub tool_text: Option<String>,
    /// Prepend a thinking block.
    pub thinking: bool,
    /// Text of the thinking block.
    pub thinking_text: Option<String>,
    /// Override of `stop_reason` (default end_turn, tool_use for tool answers).
    pub stop_reason: Option<String>,
    /// Extra response headers.
    pub extra_headers: BTreeMap<String, String>,
    /// Send a few `anthropic-ratelimit-*` headers (as the real API does).
    pub ratelimit_headers: bool,
    /// Gzip the response body (`content-encoding: gzip`) whatever the client asked for.
    pub gzip: bool,
    /// SSE: insert `event: ping` after every N events.
    pub ping_every_events: Option<u32>,
    /// If set, API routes require `x-api-key: KEY` or `authorization: Bearer KEY`.
    pub require_key: Option<String>,
    /// Hostile: the answer's text is this many bytes of `A`, generated lazily (a JSON answer, or one huge
    /// `text_delta` when the request streams). With `gzip` it is a decompression bomb (about 1000:1).
    pub bomb_bytes: Option<u64>,
    /// Hostile, SSE: after `message_start`, a `data:` line that never ends (with `gzip`, a body whose decoded
    /// bytes are always ready).
    pub endless_line: bool,
    /// Hostile, SSE: after `message_start`, `event: ping` for ever, as fast as the client reads (with `gzip`,
    /// a body whose decoded bytes are always ready): only a deadline can end it.
    pub endless_events: bool,
    /// Hostile: the key the request carried replaces placeholders in the body (`text`, `error_message`,
    /// `error_body`, `sse_error_message`) and in `extra_headers` values: `{{key}}` raw, `{{key_json}}` every
    /// character `\u`-escaped, `{{key_mixed}}` every other one, `{{key_b64_N}}` / `{{key_b64url_N}}` base64 of the
    /// key after N (0..=2) bytes of `x`.
    pub echo_key: bool,
    /// Hostile, SSE: after `message_start`, an `event: error` (`api_error`) with this message, then the end.
    pub sse_error_message: Option<String>,
    /// Hostile: `set-cookie`, `access-control-*`, `content-security-policy`, `refresh`,
    /// `strict-transport-security`, … and, on non-SSE answers, `content-type: text/html`.
    pub hostile_headers: bool,
    /// Realistic usage: `input_tokens` is counted from the request (a quarter of its bytes), and a follow-up
    /// turn (3+ messages) that marks `cache_control` reads 80 % of it from the cache, as a real prompt cache would.
    pub realistic_usage: bool,
    /// Cheat: report this many percent more input tokens than [`MockConfig::realistic_usage`] counts.
    pub inflate_input_percent: u32,
    /// Cheat: never read from the cache (every turn billed as fresh input) whatever `cache_control` says.
    pub ignore_cache_control: bool,
    /// Cheat: answer as this model whatever was asked for.
    pub substitute_model: Option<String>,
    /// Cheat: thinking blocks come without a signature.
    pub strip_signatures: bool,
    /// Cheat: buffer then burst. The whole answer is "generated" first (a wait of `event_delay_ms` per event),
    /// then sent at once.
    pub burst: bool,
    /// Billing endpoints (`GET …/v1/dashboard/billing/subscription` and `…/usage`, new-api style): the key's
    /// limit in USD; `None` answers 404 there.
    pub billing_limit_usd: Option<f64>,
    /// What the key used, in USD (reported as cents in `total_usage`).
    pub billing_used_usd: f64,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            record: true,
            text: "Hello from the mock upstream.".to_string(),
            chunks: 1,
            input_tokens: 25,
            output_tokens: 12,
            cache_creation_input_tokens: 0,
            cache_5m: None,
            cache_1h: None,
            cache_read_input_tokens: 0,
            delta_output_only: false,
            event_delay_ms: 0,
            first_byte_delay_ms: 0,
            hang: false,
            status: 200,
            models_status: None,
            error_message: None,
            error_type: None,
            retry_after: None,
            error_body: None,
            fail_after_events: None,
            break_mode: BreakMode::Disconnect,
            omit_message_delta: false,
            tool_mode: ToolMode::Off,
            tool_name: None,
            tool_input: None,
            tool_calls: 1,
            tool_text: None,
            thinking: false,
            thinking_text: None,
            stop_reason: None,
            extra_headers: BTreeMap::new(),
            ratelimit_headers: true,
            gzip: false,
            ping_every_events: None,
            require_key: None,
            bomb_bytes: None,
            endless_line: false,
            endless_events: false,
            echo_key: false,
            sse_error_message: None,
            hostile_headers: false,
            realistic_usage: false,
            inflate_input_percent: 0,
            ignore_cache_control: false,
            substitute_model: None,
            strip_signatures: false,
            burst: false,
            billing_limit_usd: None,
            billing_used_usd: 0.0,
        }
    }
}

/// Fields whose header value is taken as a plain string (unless it is a JSON string literal).
const STRING_FIELDS: &[&str] = &[
    "text",
    "error_message",
    "error_type",
    "error_body",
    "break_mode",
    "tool_mode",
    "tool_name",
    "tool_text",
    "thinking_text",
    "stop_reason",
    "require_key",
    "sse_error_message",
    "substitute_model",
];

/// True if the request carries any `x-mock-*` header (cheap check for the fast path).
pub fn has_overrides(headers: &HeaderMap) -> bool {
    headers
        .keys()
        .any(|k| k.as_str().starts_with(OVERRIDE_PREFIX))
}

/// Returns `base` with the request's `x-mock-*` headers applied.
pub fn apply_overrides(base: &MockConfig, headers: &HeaderMap) -> Result<MockConfig, String> {
    let mut value = serde_json::to_value(base).map_err(|e| e.to_string())?;
    let Value::Object(obj) = &mut value else {
        return Err("config is not an object".into());
    };
    // A whole (partial) config first, then single fields.
    if let Some(raw) = headers.get(OVERRIDE_CONFIG_HEADER) {
        let patch: Value = serde_json::from_slice(raw.as_bytes())
            .map_err(|e| format!("{OVERRIDE_CONFIG_HEADER}: invalid JSON: {e}"))?;
        let Value::Object(patch) = patch else {
            return Err(format!("{OVERRIDE_CONFIG_HEADER}: expected a JSON object"));
        };
        merge(obj, patch);
    }
    for (name, raw) in headers {
        let Some(field) = name.as_str().strip_prefix(OVERRIDE_PREFIX) else {
            continue;
        };
        if field == "config" {
            continue;
        }
        let field = field.replace('-', "_");
        let text = String::from_utf8_lossy(raw.as_bytes()).into_owned();
        let v = header_value_to_json(&field, &text);
        obj.insert(field, v);
    }
    serde_json::from_value(value).map_err(|e| format!("invalid x-mock-* override: {e}"))
}

fn merge(obj: &mut Map<String, Value>, patch: Map<String, Value>) {
    for (k, v) in patch {
        obj.insert(k, v);
    }
}

fn header_value_to_json(field: &str, text: &str) -> Value {
    let trimmed = text.trim();
    if STRING_FIELDS.contains(&field) {
        if trimmed.starts_with('"') {
            if let Ok(v @ Value::String(_)) = serde_json::from_str::<Value>(trimmed) {
                return v;
            }
        }
        if trimmed == "null" {
            return Value::Null;
        }
        return Value::String(text.to_string());
    }
    serde_json::from_str::<Value>(trimmed).unwrap_or_else(|_| Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn defaults_roundtrip_and_partial_json() {
        let c: MockConfig = serde_json::from_str(r#"{"chunks":20,"record":false}"#).unwrap();
        assert_eq!(c.chunks, 20);
        assert!(!c.record);
        assert_eq!(c.text, MockConfig::default().text);
        let back: MockConfig = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<MockConfig>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn header_overrides() {
        let mut h = HeaderMap::new();
        h.insert("x-mock-status", HeaderValue::from_static("429"));
        h.insert("x-mock-retry-after", HeaderValue::from_static("7"));
        h.insert("x-mock-text", HeaderValue::from_static("123"));
        h.insert("x-mock-tool_mode", HeaderValue::from_static("auto"));
        h.insert(
            "x-mock-config",
            HeaderValue::from_static(r#"{"chunks":3,"cache_5m":4}"#),
        );
        h.insert(
            "x-mock-error-message",
            HeaderValue::from_static(r#""quoted \u4f60""#),
        );
        let c = apply_overrides(&MockConfig::default(), &h).unwrap();
        assert_eq!(c.status, 429);
        assert_eq!(c.retry_after, Some(7));
        assert_eq!(c.text, "123");
        assert_eq!(c.tool_mode, ToolMode::Auto);
        assert_eq!(c.chunks, 3);
        assert_eq!(c.cache_5m, Some(4));
        assert_eq!(c.error_message.as_deref(), Some("quoted \u{4f60}"));

        let mut bad = HeaderMap::new();
        bad.insert("x-mock-bogus", HeaderValue::from_static("1"));
        assert!(apply_overrides(&MockConfig::default(), &bad).is_err());
    }
}
