//! What the two adapters that translate Claude's answer share (`/openai` chat completions in `openai.rs`, the
//! Responses API in `responses.rs`): the streamed answer through an SSE translator, and the whole answer read, metered
//! and translated, with the same failures recorded the same way. Each adapter only says how it translates.

use super::proxy::{self, Admitted, Exchange};
use crate::error::{ApiError, Protocol};
use crate::tee::settle::{Ending, Settlement};
use crate::tee::{self, Mode, SseTranslator, Tee};
use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::{StreamMeter, Usage};
use ccgate_openai::{TranslateOptions, UpstreamFormatError};
use http::{header, StatusCode};

/// The model a translated request asks for, resolved through `openai.models` and `openai.defaultModel`.
pub fn resolve(a: &Admitted, requested: &str) -> ccgate_openai::Resolved {
    let oa = &a.rt.config.openai;
    ccgate_openai::resolve_model(requested, &oa.models, &oa.default_model)
}

/// The translation options for a request resolved to `resolved`.
pub fn options<'a>(a: &'a Admitted, resolved: &'a ccgate_openai::Resolved) -> TranslateOptions<'a> {
    let caps = ccgate_meter::catalog::caps_for(&resolved.claude_model);
    let mut opts = TranslateOptions::new(
        &resolved.claude_model,
        &resolved.client_model,
        caps,
        &a.tenant.config.id,
    );
    opts.expose_reasoning = a.rt.config.openai.expose_reasoning;
    opts
}

/// What an adapter's translation gives the request path.
pub struct Translation<C> {
    /// The Anthropic Messages body built from the tenant's.
    pub body: Vec<u8>,
    pub stream: bool,
    pub max_tokens: u64,
    /// The affinity key (the hashed OpenAI `user`, or another session hint).
    pub user: Option<String>,
    pub context: C,
}

/// The request as the request path carries it, from a translation resolved to `resolved`.
pub fn prepared<C>(
    a: &Admitted,
    resolved: ccgate_openai::Resolved,
    t: Translation<C>,
) -> proxy::Prepared<C> {
    let upstream_body = Bytes::from(t.body);
    let model_span = model_span(a, &resolved.claude_model, &upstream_body);
    // A body built here: read once more, as the upstream gets it.
    let request_traits = crate::trust::observe::RequestTraits::of(&upstream_body);
    proxy::Prepared {
        upstream_body,
        client_model: resolved.client_model,
        claude_model: resolved.claude_model,
        model_span,
        stream: t.stream,
        max_tokens: t.max_tokens,
        request_traits,
        // The OpenAI `user` arrives upstream as `metadata.user_id` = a hash of tenant and user: the same identity,
        // so it keys affinity without another pass over a body.
        user_id: None,
        user: t.user,
        context: t.context,
    }
}

/// Where `model` sits in the translated body: it matters only to an upstream that renames it (`modelMap`), so the
/// body is scanned only then.
pub fn model_span(
    a: &Admitted,
    claude_model: &str,
    body: &Bytes,
) -> Option<std::ops::Range<usize>> {
    let renamed =
        a.rt.upstreams
            .iter()
            .any(|u| u.config.model_map.contains_key(claude_model));
    if renamed {
        super::scan::scan(body).ok().and_then(|s| s.model_span)
    } else {
        None
    }
}

/// An upstream's error in OpenAI's shape, with its status mapped as for chat, and the upstream's `retry-after` and
/// `request-id` (as `x-upstream-request-id`) passed on.
pub fn upstream_error(status: StatusCode, headers: &http::HeaderMap, body: &[u8]) -> Response {
    let (code, out) = ccgate_openai::translate_error(status.as_u16(), body);
    let mut resp = json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
        Bytes::from(out),
        None,
    );
    for name in ["retry-after", "retry-after-ms"] {
        if let Some(v) = headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    if let Some(v) = headers.get("request-id").cloned() {
        resp.headers_mut()
            .insert(http::HeaderName::from_static("x-upstream-request-id"), v);
    }
    resp
}

/// A JSON answer with the gateway's request id.
pub fn json_response(status: StatusCode, body: Bytes, request_id: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(id) = request_id {
        builder = builder.header("x-request-id", id);
    }
    proxy::body_response(builder, Body::from(body))
}

/// The answer to a 2xx exchange. `stream`: Claude's SSE goes through the translator `streaming` builds (from the
/// adapter's context, the request id and the time); otherwise the whole answer is read, metered and passed to
/// `whole` (the answer, its usage, the context, the request id and the time).
#[allow(clippy::too_many_arguments)]
pub async fn respond<C>(
    a: &Admitted,
    exchange: Exchange,
    settlement: Settlement,
    protocol: Protocol,
    stream: bool,
    context: C,
    streaming: impl FnOnce(C, &str, i64) -> SseTranslator,
    whole: impl FnOnce(&[u8], &Usage, &C, &str, i64) -> Result<Vec<u8>, UpstreamFormatError>,
) -> Response {
    let request_id = settlement.record.request_id.clone();
    let now_unix = chrono::Utc::now().timestamp();
    let cfg = exchange.tee_config(a, None);
    if stream {
        let mode = Mode::OpenAiSse {
            framer: SseFramer::new(),
            meter: StreamMeter::new(),
            translator: Box::new(streaming(context, &request_id, now_unix)),
        };
        let tee = Tee::new(exchange.response, mode, settlement, cfg);
        let builder = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("x-accel-buffering", "no")
            .header("x-request-id", request_id.as_str());
        return proxy::body_response(builder, Body::new(tee));
    }
    let status = exchange.response.status().as_u16();
    let full = match tee::read_full(exchange.response, cfg.idle, cfg.total_remaining).await {
        Ok(b) => b,
        Err(e) => {
            let (err, class) = match e {
                tee::ReadError::TooLarge => (
                    ApiError::UpstreamBodyTooLarge(tee::MAX_BUFFERED_BODY >> 20),
                    tee::TOO_LARGE_CLASS,
                ),
                tee::ReadError::Failed(reason) => {
                    (ApiError::UpstreamConnect(reason), "upstream_body_broken")
                }
            };
            settlement.note_upstream_failure(&err.to_string());
            settlement.finish(
                err.status_for(protocol).as_u16(),
                &Default::default(),
                Ending::UpstreamError,
                Some(class),
            );
            return err.into_response_for(protocol);
        }
    };
    let (usage, ending, class) = match tee::json_usage(&full) {
        Some(u) => (u, Ending::Ok, None),
        None => (Default::default(), Ending::Partial, Some("usage_missing")),
    };
    match whole(&full, &usage, &context, &request_id, now_unix) {
        Ok(out) => {
            settlement.finish(status, &usage, ending, class);
            // The translation decoded every string of the answer: an escaped key is plain text by now.
            let out = Bytes::from(out);
            let out = match &cfg.redactor {
                Some(r) => r.redact_document(out),
                None => out,
            };
            json_response(StatusCode::OK, out, Some(&request_id))
        }
        Err(e) => {
            let err = ApiError::UpstreamUnreadable(e.to_string());
            settlement.finish(
                err.status_for(protocol).as_u16(),
                &usage,
                Ending::UpstreamError,
                Some(err.class()),
            );
            err.into_response_for(protocol)
        }
    }
}
