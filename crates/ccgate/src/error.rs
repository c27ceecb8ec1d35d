//! The tenant-facing error boundary: one enum for everything CCGate itself answers with, and one exhaustive
//! mapping to an HTTP status and to the error shape of the protocol that was called (docs/protocols.md §2.8, §3.4).
//!
//! Upstream errors that are passed through verbatim never become an `ApiError`; only the cases where CCGate
//! must speak for itself do.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

/// Which API the tenant called: decides the error shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Anthropic,
    OpenAi,
    /// The OpenAI Responses API (`/openai/v1/responses`): OpenAI's error shape, its own ledger label.
    Responses,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Anthropic => "anthropic",
            Protocol::OpenAi => "openai",
            Protocol::Responses => "responses",
        }
    }

    /// The protocol of a path, for errors raised before a handler runs (404, 405, 413).
    pub fn of_path(path: &str) -> Protocol {
        if path.starts_with("/openai/v1/responses") || path.starts_with("/openai/responses") {
            Protocol::Responses
        } else if path.starts_with("/openai") {
            Protocol::OpenAi
        } else {
            Protocol::Anthropic
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("invalid API key: provide your CCGate tenant key in the x-api-key header or as Authorization: Bearer")]
    Unauthorized,
    #[error("this key expired at {0}; ask the gateway's admin for a new one or a later expiry")]
    KeyExpired(String),
    #[error("model {model:?} is not allowed for this key; this key may use: {allowed}. In Claude Code, pick one with /model or ANTHROPIC_MODEL (and ANTHROPIC_SMALL_FAST_MODEL for background tasks)")]
    ModelNotAllowed { model: String, allowed: String },
    #[error("{0}")]
    BadRequest(String),
    /// A request the `/openai` translator refuses; it names the offending `param`.
    #[error("{}", .0.message)]
    Translate(ccgate_openai::TranslateError),
    #[error("model {0:?} has no price in CCGate's price table, and this key has a USD budget, so it cannot be served; use a listed model (GET /v1/models) or ask the gateway operator to add a price in config/pricing.json")]
    ModelUnpriced(String),
    #[error("request body is larger than the limit of {limit_mb} MiB")]
    PayloadTooLarge { limit_mb: usize },
    #[error("the client sent the request body too slowly")]
    RequestTimeout,
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("method {method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// A budget is exhausted: 402 on `/anthropic` (SDKs do not retry it), 429 `insufficient_quota` on `/openai`.
    #[error("{limit} budget of ${max_usd} exhausted (used ${used_usd}); resets at {resets_at}")]
    BudgetExceeded {
        limit: String,
        max_usd: String,
        used_usd: String,
        resets_at: String,
    },
    #[error("{0}")]
    RateLimited(String, u64),
    #[error("no upstream is available for model {0:?} right now; try again shortly")]
    NoUpstream(String),
    /// No enabled upstream serves the model at all: retrying cannot help until the operator changes the config.
    #[error("no enabled upstream is configured for model {0:?}; use another model, or ask the gateway operator to add it to an upstream's `models`")]
    NoUpstreamConfigured(String),
    #[error("all upstreams are overloaded or failing; last error: {0}")]
    UpstreamsExhausted(String),
    #[error("could not reach the upstream: {0}")]
    UpstreamConnect(String),
    #[error("the upstream did not answer in time ({0})")]
    UpstreamTimeout(String),
    #[error("upstream credentials rejected; the gateway operator must check the upstream key")]
    UpstreamCredentials,
    /// A 2xx answer CCGate could not read or translate: the fault is upstream, not the tenant's.
    #[error("the upstream answer could not be translated: {0}")]
    UpstreamUnreadable(String),
    /// The upstream's answer decoded to more than CCGate buffers (a decompression bomb, or an endless line).
    #[error("the upstream's answer is larger than the gateway accepts ({0} MiB decoded)")]
    UpstreamBodyTooLarge(usize),
    #[error("the upstream answered with a redirect (HTTP {0}), which the gateway does not follow; the gateway operator must check the upstream URL")]
    UpstreamRedirect(u16),
    #[error("the gateway is shutting down; retry the request (another instance, or this one once restarted, will serve it)")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::KeyExpired(_) => StatusCode::UNAUTHORIZED,
            ApiError::ModelNotAllowed { .. } => StatusCode::FORBIDDEN,
            ApiError::BadRequest(_) | ApiError::Translate(_) | ApiError::ModelUnpriced(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            ApiError::RateLimited(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::NoUpstream(_) | ApiError::UpstreamsExhausted(_) => overloaded_status(),
            ApiError::NoUpstreamConfigured(_) | ApiError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::UpstreamConnect(_)
            | ApiError::UpstreamCredentials
            | ApiError::UpstreamUnreadable(_)
            | ApiError::UpstreamBodyTooLarge(_)
            | ApiError::UpstreamRedirect(_) => StatusCode::BAD_GATEWAY,
            ApiError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `error.type` in Anthropic's shape.
    pub fn anthropic_type(&self) -> &'static str {
        match self {
            ApiError::Unauthorized | ApiError::KeyExpired(_) => "authentication_error",
            ApiError::ModelNotAllowed { .. } => "permission_error",
            ApiError::BadRequest(_)
            | ApiError::Translate(_)
            | ApiError::ModelUnpriced(_)
            | ApiError::RequestTimeout
            | ApiError::MethodNotAllowed { .. } => "invalid_request_error",
            ApiError::PayloadTooLarge { .. } => "request_too_large",
            ApiError::NotFound { .. } => "not_found_error",
            ApiError::BudgetExceeded { .. } => "billing_error",
            ApiError::RateLimited(..) => "rate_limit_error",
            ApiError::NoUpstream(_) | ApiError::UpstreamsExhausted(_) | ApiError::ShuttingDown => {
                "overloaded_error"
            }
            ApiError::NoUpstreamConfigured(_) => "api_error",
            ApiError::UpstreamConnect(_)
            | ApiError::UpstreamCredentials
            | ApiError::UpstreamUnreadable(_)
            | ApiError::UpstreamBodyTooLarge(_)
            | ApiError::UpstreamRedirect(_)
            | ApiError::Internal(_) => "api_error",
            ApiError::UpstreamTimeout(_) => "timeout_error",
        }
    }

    /// `(status, error.type, error.code)` in OpenAI's shape.
    pub fn openai_parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            ApiError::Unauthorized | ApiError::KeyExpired(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            ApiError::ModelNotAllowed { .. } => (
                StatusCode::FORBIDDEN,
                "permission_error",
                Some("model_not_allowed"),
            ),
            ApiError::BadRequest(_) | ApiError::Translate(_) => {
                (StatusCode::BAD_REQUEST, "invalid_request_error", None)
            }
            ApiError::ModelUnpriced(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            ApiError::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                Some("request_too_large"),
            ),
            ApiError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request_error",
                Some("timeout"),
            ),
            ApiError::NotFound { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("unknown_url"),
            ),
            ApiError::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                Some("method_not_allowed"),
            ),
            ApiError::BudgetExceeded { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("insufficient_quota"),
            ),
            ApiError::RateLimited(..) => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some("rate_limit_exceeded"),
            ),
            ApiError::NoUpstreamConfigured(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("model_not_available"),
            ),
            ApiError::NoUpstream(_) | ApiError::UpstreamsExhausted(_) | ApiError::ShuttingDown => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("overloaded"),
            ),
            ApiError::UpstreamConnect(_)
            | ApiError::UpstreamCredentials
            | ApiError::UpstreamUnreadable(_)
            | ApiError::UpstreamBodyTooLarge(_)
            | ApiError::UpstreamRedirect(_) => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_error"),
            ),
            ApiError::UpstreamTimeout(_) => {
                (StatusCode::GATEWAY_TIMEOUT, "server_error", Some("timeout"))
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
        }
    }

    /// Low-cardinality class for the ledger's `error_class` column and for logs.
    pub fn class(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::KeyExpired(_) => "key_expired",
            ApiError::ModelNotAllowed { .. } => "model_not_allowed",
            ApiError::BadRequest(_) | ApiError::Translate(_) => "bad_request",
            ApiError::ModelUnpriced(_) => "model_unpriced",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::RequestTimeout => "client_timeout",
            ApiError::NotFound { .. } => "not_found",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::BudgetExceeded { .. } => "budget_exceeded",
            ApiError::RateLimited(..) => "rate_limited",
            ApiError::NoUpstream(_) => "no_upstream",
            ApiError::ShuttingDown => "gateway_shutdown",
            ApiError::NoUpstreamConfigured(_) => "no_upstream_configured",
            ApiError::UpstreamsExhausted(_) => "upstreams_exhausted",
            ApiError::UpstreamConnect(_) => "upstream_connect",
            ApiError::UpstreamTimeout(_) => "upstream_timeout",
            ApiError::UpstreamCredentials => "upstream_credentials",
            ApiError::UpstreamUnreadable(_) => "upstream_unparseable",
            ApiError::UpstreamBodyTooLarge(_) => "upstream_body_too_large",
            ApiError::UpstreamRedirect(_) => "upstream_redirect",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The status the tenant sees on `protocol` (what the ledger records for a refusal).
    pub fn status_for(&self, protocol: Protocol) -> StatusCode {
        match protocol {
            Protocol::Anthropic => self.status(),
            Protocol::OpenAi | Protocol::Responses => self.openai_parts().0,
        }
    }

    pub fn into_response_for(self, protocol: Protocol) -> Response {
        let message = self.to_string();
        let (status, body) = match protocol {
            Protocol::Anthropic => (
                self.status(),
                anthropic_error_body(self.anthropic_type(), &message),
            ),
            Protocol::OpenAi | Protocol::Responses => {
                let (status, ty, code) = self.openai_parts();
                let body = match &self {
                    ApiError::Translate(t) => Bytes::from(t.to_body()),
                    _ => openai_error_body(&message, ty, code, None),
                };
                (status, body)
            }
        };
        let mut resp = (status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match &self {
            ApiError::RateLimited(_, secs) => {
                if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                    h.insert(header::RETRY_AFTER, v);
                }
            }
            // Retrying cannot fix these; the Anthropic and OpenAI SDKs (and so Claude Code) honour the header
            // instead of retrying a 5xx for minutes.
            ApiError::BudgetExceeded { .. }
            | ApiError::UpstreamCredentials
            | ApiError::UpstreamRedirect(_)
            | ApiError::NoUpstreamConfigured(_) => {
                h.insert("x-should-retry", HeaderValue::from_static("false"));
            }
            _ => {}
        }
        resp
    }
}

/// 529 is Anthropic's "overloaded"; Claude Code and the SDKs retry it with backoff.
fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

pub fn anthropic_error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"type": "error", "error": {"type": error_type, "message": message}})
            .to_string(),
    )
}

pub fn openai_error_body(
    message: &str,
    ty: &str,
    code: Option<&str>,
    param: Option<&str>,
) -> Bytes {
    Bytes::from(
        serde_json::json!({"error": {"message": message, "type": ty, "param": param, "code": code}}).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_and_statuses() {
        let r = ApiError::Unauthorized.into_response_for(Protocol::Anthropic);
        assert_eq!(r.status(), 401);
        let r = ApiError::BudgetExceeded {
            limit: "daily".into(),
            max_usd: "1.00".into(),
            used_usd: "1.00".into(),
            resets_at: "x".into(),
        };
        assert_eq!(
            r.clone().into_response_for(Protocol::Anthropic).status(),
            402
        );
        assert_eq!(r.into_response_for(Protocol::OpenAi).status(), 429);
        assert_eq!(
            ApiError::NoUpstream("m".into())
                .into_response_for(Protocol::Anthropic)
                .status(),
            529
        );
        assert_eq!(
            ApiError::NoUpstream("m".into())
                .into_response_for(Protocol::OpenAi)
                .status(),
            503
        );
    }
}
