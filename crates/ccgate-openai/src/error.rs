//! Errors in the OpenAI shape: request validation failures of this crate, and the translation of
//! Anthropic error responses (docs/protocols.md §2.7, §3.4, §5.5).

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// A request the translator refuses. Always answered as HTTP 400 `invalid_request_error` on the
/// OpenAI side (docs/protocols.md §3.4): the tenant sent something Anthropic cannot represent or would
/// reject, and saying so precisely beats a vaguer upstream 400 later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslateError {
    /// Human-readable, names the offending field.
    pub message: String,
    /// The OpenAI `param` (e.g. `messages[3].content`), when one field is to blame.
    pub param: Option<String>,
    /// An OpenAI `code`, when a well-known one applies.
    pub code: Option<String>,
}

impl TranslateError {
    /// HTTP status the gateway must answer with.
    pub const STATUS: u16 = 400;

    /// An error blaming `param`.
    pub fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: None,
        }
    }

    /// An error not attached to a single field.
    pub fn general(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: None,
            code: None,
        }
    }

    /// Adds an OpenAI `code`.
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// The OpenAI error body (`{"error":{…}}`) for this error, to send with [`Self::STATUS`].
    pub fn to_body(&self) -> Vec<u8> {
        error_body(
            &self.message,
            "invalid_request_error",
            self.code.as_deref(),
            self.param.as_deref(),
        )
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.param {
            Some(p) => write!(f, "{} (param: {p})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for TranslateError {}

/// An upstream success body this crate cannot read (not JSON, no `content` array…). The gateway
/// should answer 502: the fault is upstream, not the tenant's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFormatError(pub String);

impl fmt::Display for UpstreamFormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable upstream response: {}", self.0)
    }
}

impl std::error::Error for UpstreamFormatError {}

#[derive(Serialize)]
struct ErrorEnvelope<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

/// The OpenAI error body `{"error":{"message","type","param","code"}}` (docs/protocols.md §3.4), for the
/// gateway's own errors as well as translated ones. `param`/`code` serialise as `null` when absent,
/// as OpenAI does.
pub fn error_body(message: &str, kind: &str, code: Option<&str>, param: Option<&str>) -> Vec<u8> {
    let env = ErrorEnvelope {
        error: ErrorObject {
            message,
            kind,
            param,
            code,
        },
    };
    serde_json::to_vec(&env).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
}

/// The `data: {"error":…}\n\n` SSE line used mid-stream (docs/protocols.md §3.3, §5.3).
pub(crate) fn error_chunk(message: &str, kind: &str, code: Option<&str>) -> Vec<u8> {
    let mut out = b"data: ".to_vec();
    out.extend_from_slice(&error_body(message, kind, code, None));
    out.extend_from_slice(b"\n\n");
    out
}

/// Longest upstream message copied into a translated error, so a huge HTML error page from a CDN
/// does not end up verbatim in a JSON error.
const MAX_MESSAGE_CHARS: usize = 2000;

/// What an Anthropic error body says, as far as it can be read.
struct UpstreamError {
    kind: Option<String>,
    message: Option<String>,
    details_code: Option<String>,
}

fn read_upstream_error(body: &[u8]) -> UpstreamError {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let err = parsed.as_ref().and_then(|v| v.get("error"));
    let str_at = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    match err {
        Some(e) if e.is_object() => UpstreamError {
            kind: str_at(e.get("type")),
            message: str_at(e.get("message")),
            details_code: str_at(e.get("details").and_then(|d| d.get("error_code"))),
        },
        Some(Value::String(s)) => UpstreamError {
            kind: None,
            message: Some(s.clone()),
            details_code: None,
        },
        _ => {
            // 413 and CDN errors may not be JSON at all (§2.7): keep a readable excerpt.
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            UpstreamError {
                kind: None,
                message: (!text.is_empty() && parsed.is_none()).then(|| text.to_owned()),
                details_code: None,
            }
        }
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// True for the 429 body that is really a long-context billing refusal, not a rate limit (§2.7).
fn is_long_context_extra_usage(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("extra usage") && (m.contains("long context") || m.contains("long-context"))
}

/// Maps an Anthropic error `type` (as seen in a mid-stream `error` event) to the OpenAI
/// `(type, code)` pair, following the status mapping of docs/protocols.md §5.5.
pub(crate) fn openai_kind_for(
    anthropic_type: &str,
    message: &str,
) -> (&'static str, Option<&'static str>) {
    match anthropic_type {
        "overloaded_error" => ("server_error", Some("overloaded")),
        "api_error" => ("server_error", None),
        "timeout_error" => ("server_error", Some("timeout")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "billing_error" => ("insufficient_quota", Some("insufficient_quota")),
        "permission_error" => ("permission_error", None),
        "not_found_error" => ("invalid_request_error", Some("model_not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "invalid_request_error" if message.to_ascii_lowercase().contains("prompt is too long") => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        "invalid_request_error" => ("invalid_request_error", None),
        "authentication_error" => ("upstream_error", None),
        _ => ("server_error", None),
    }
}

/// Translates an Anthropic error response into the OpenAI status and body (docs/protocols.md §5.5).
///
/// * 400 "prompt is too long" → 400 `context_length_exceeded` (clients compact on it); other 400s
///   keep their message.
/// * 401 → 502 `upstream_error` with a generic message: an upstream authentication failure concerns
///   CCGate's key, never the tenant's, and its details must not leak. The gateway normally handles
///   401/403 itself (failover) before calling this.
/// * 403 → 403 `permission_error` (a policy refusal; key-caused 403s are the gateway's job).
/// * 402, and 429 with `enforced_spend_limit_reached` → 429 `insufficient_quota`.
/// * 429 "extra usage required for long context" → 400 `context_length_exceeded`: it is not a rate
///   limit (§2.7), retrying cannot help, and shrinking the prompt does.
/// * 404 → `model_not_found`; 413 → 413; 429 → `rate_limit_exceeded`; 529 → 503 `overloaded`
///   (OpenAI SDKs retry any ≥ 500); other 5xx keep their status as `server_error`.
/// * Anything that is not an error status → 502 `upstream_error`.
///
/// The `retry-after` header is the gateway's to copy.
pub fn translate_error(status: u16, anthropic_body: &[u8]) -> (u16, Vec<u8>) {
    let up = read_upstream_error(anthropic_body);
    let message = up
        .message
        .as_deref()
        .map(|m| truncate_chars(m, MAX_MESSAGE_CHARS))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("Upstream returned HTTP {status}"));
    let lower = message.to_ascii_lowercase();
    let (out_status, kind, code, param): (u16, &str, Option<&str>, Option<&str>) = match status {
        400 if lower.contains("prompt is too long") => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
            Some("messages"),
        ),
        400 => (400, "invalid_request_error", None, None),
        401 => {
            let msg = "The upstream provider rejected CCGate's credentials";
            return (502, error_body(msg, "upstream_error", None, None));
        }
        402 => (429, "insufficient_quota", Some("insufficient_quota"), None),
        403 => (403, "permission_error", None, None),
        404 => (
            404,
            "invalid_request_error",
            Some("model_not_found"),
            Some("model"),
        ),
        408 => (408, "server_error", Some("timeout"), None),
        409 => (409, "server_error", None, None),
        413 => (
            413,
            "invalid_request_error",
            Some("request_too_large"),
            None,
        ),
        429 if up.details_code.as_deref() == Some("enforced_spend_limit_reached") => {
            (429, "insufficient_quota", Some("insufficient_quota"), None)
        }
        429 if is_long_context_extra_usage(&message) => (
            400,
            "invalid_request_error",
            Some("context_length_exceeded"),
            Some("messages"),
        ),
        429 => (429, "rate_limit_error", Some("rate_limit_exceeded"), None),
        529 => (503, "server_error", Some("overloaded"), None),
        504 => (504, "server_error", Some("timeout"), None),
        s @ 500..=599 => (s, "server_error", None, None),
        s @ 400..=499 => {
            let (kind, code) = up
                .kind
                .as_deref()
                .map(|k| openai_kind_for(k, &message))
                .unwrap_or(("invalid_request_error", None));
            (s, kind, code, None)
        }
        _ => (502, "upstream_error", None, None),
    };
    (out_status, error_body(&message, kind, code, param))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: u16, body: &str) -> (u16, Value) {
        let (s, b) = translate_error(status, body.as_bytes());
        (s, serde_json::from_slice(&b).unwrap())
    }

    fn anth(kind: &str, msg: &str) -> String {
        json!({"type":"error","error":{"type":kind,"message":msg},"request_id":"req_1"}).to_string()
    }

    #[test]
    fn prompt_too_long_is_context_length_exceeded() {
        let (s, v) = run(
            400,
            &anth(
                "invalid_request_error",
                "prompt is too long: 250000 tokens > 200000 maximum",
            ),
        );
        assert_eq!(s, 400);
        assert_eq!(v["error"]["code"], "context_length_exceeded");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"].as_str().unwrap().contains("250000"));
    }

    #[test]
    fn other_400_keeps_message() {
        let (s, v) = run(
            400,
            &anth("invalid_request_error", "max_tokens: Field required"),
        );
        assert_eq!(s, 400);
        assert_eq!(v["error"]["message"], "max_tokens: Field required");
        assert_eq!(v["error"]["code"], Value::Null);
        assert_eq!(v["error"]["param"], Value::Null);
    }

    #[test]
    fn status_table() {
        assert_eq!(
            run(404, &anth("not_found_error", "model: x")).1["error"]["code"],
            "model_not_found"
        );
        let (s, v) = run(429, &anth("rate_limit_error", "slow down"));
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (429, json!("rate_limit_exceeded"))
        );
        let (s, v) = run(402, &anth("billing_error", "pay"));
        assert_eq!(
            (s, v["error"]["code"].clone()),
            (429, json!("insufficient_quota"))
        );
        let (s, v) = run(529, &anth("overloaded_error", "Overloaded"));
        assert_eq!(s, 503);
        assert_eq!(v["error"]["type"], "server_error");
        assert_eq!(v["error"]["code"], "overloaded");
        assert_eq!(run(500, &anth("api_error", "boom")).0, 500);
        assert_eq!(run(504, &anth("timeout_error", "slow")).0, 504);
        assert_eq!(
            run(403, &anth("permission_error", "no")).1["error"]["type"],
            "permission_error"
        );
    }

    #[test]
    fn spend_cap_429_is_insufficient_quota() {
        let body = json!({"type":"error","error":{"type":"rate_limit_error","message":"cap",
            "details":{"error_code":"enforced_spend_limit_reached"}}})
        .to_string();
        let (s, v) = run(429, &body);
        assert_eq!(s, 429);
        assert_eq!(v["error"]["code"], "insufficient_quota");
    }

    #[test]
    fn long_context_429_is_not_a_rate_limit() {
        let (s, v) = run(
            429,
            &anth(
                "rate_limit_error",
                "Extra usage is required for long context requests.",
            ),
        );
        assert_eq!(s, 400);
        assert_eq!(v["error"]["code"], "context_length_exceeded");
    }

    #[test]
    fn upstream_401_is_hidden_behind_502() {
        let (s, v) = run(
            401,
            &anth("authentication_error", "invalid x-api-key sk-ant-123"),
        );
        assert_eq!(s, 502);
        assert!(!v["error"]["message"].as_str().unwrap().contains("sk-ant"));
    }

    #[test]
    fn non_json_413() {
        let (s, v) = run(413, "<html>Request Entity Too Large</html>");
        assert_eq!(s, 413);
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Too Large"));
        let (_, v) = run(413, "");
        assert_eq!(v["error"]["message"], "Upstream returned HTTP 413");
    }

    #[test]
    fn error_body_shape() {
        let v: Value = serde_json::from_slice(&error_body("m", "t", Some("c"), Some("p"))).unwrap();
        assert_eq!(
            v,
            json!({"error":{"message":"m","type":"t","param":"p","code":"c"}})
        );
    }
}
