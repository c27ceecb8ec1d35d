//! `/openai/v1/responses`: the OpenAI Responses API (Codex, the Agents SDK), translated to Anthropic Messages and
//! back by `ccgate_openai::responses` (docs/responses.md), on the shared request path with its own ledger label
//! (`protocol = responses`). Stateless: nothing is stored, `previous_response_id` is refused.

use super::proxy::{self, Adapter, Admitted, Endpoint, Exchange, Prepared};
use crate::error::{openai_error_body, ApiError, Protocol};
use crate::state::Gateway;
use crate::tee::settle::Settlement;
use crate::tee::SseTranslator;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_openai::responses::{ResponsesContext, ResponsesStream};
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

pub async fn responses(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if !gw.rt().config.openai.enabled {
        return ApiError::NotFound {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        }
        .into_response_for(Protocol::Responses);
    }
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::Responses,
        Box::pin(proxy::handle::<Responses>(g, Endpoint::Responses, req)),
    )
    .await
}

/// `GET` on the path: Codex tries a WebSocket upgrade there when a provider sets `supports_websockets = true`
/// (docs/responses.md §4.4). CCGate speaks Responses over HTTP only, so the upgrade is refused at once with a plain
/// HTTP answer (426, no `101`); Codex then uses HTTP. Any other `GET` gets the same answer: the route takes `POST`.
pub async fn websocket_refused(req: Request) -> Response {
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let (status, message) = if upgrade {
        (
            StatusCode::UPGRADE_REQUIRED,
            "WebSocket is not supported on this gateway; send POST /v1/responses over HTTP (in Codex, set supports_websockets = false)",
        )
    } else {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method GET is not allowed on this path; use POST",
        )
    };
    let body = openai_error_body(
        message,
        "invalid_request_error",
        Some("unsupported_transport"),
        None,
    );
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    // Close the connection: a client that asked to switch protocols must not reuse it for HTTP.
    resp.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    resp
}

pub struct Responses;

impl Adapter for Responses {
    type Context = ResponsesContext;
    const PROTOCOL: Protocol = Protocol::Responses;

    fn prepare(a: &Admitted, body: Bytes) -> Result<Prepared<ResponsesContext>, ApiError> {
        let parsed = ccgate_openai::responses::parse_responses_request(&body)
            .map_err(ApiError::Translate)?;
        let resolved = super::translated::resolve(a, parsed.model());
        let opts = super::translated::options(a, &resolved);
        let translated = parsed.translate(&opts).map_err(ApiError::Translate)?;
        for w in &translated.warnings {
            tracing::info!(tenant = %a.tenant.config.id, warning = %w, "responses translation");
        }
        Ok(super::translated::prepared(
            a,
            resolved,
            super::translated::Translation {
                body: translated.body,
                stream: translated.stream,
                max_tokens: translated.max_tokens,
                // Affinity: the hashed `user`, else the client's `prompt_cache_key` (Codex: its session id).
                user: translated
                    .user_id
                    .or_else(|| translated.session.map(|k| format!("prompt_cache_key:{k}"))),
                context: translated.ctx,
            },
        ))
    }

    /// Upstream errors in the Responses (= OpenAI) error shape with chat's status mapping; `retry-after` survives.
    /// One exception for streams: an overloaded upstream (529, after failover found no other) answers a
    /// `response.failed` with code `server_is_overloaded`, which Codex treats as final at once, instead of a 503
    /// it would retry 30 times over half a minute (docs/responses.md §4.3).
    fn upstream_error(
        context: &ResponsesContext,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        if context.stream && status.as_u16() == 529 {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "The upstream is overloaded".to_owned());
            let mut st = ResponsesStream::new(
                context.clone(),
                &uuid::Uuid::now_v7().to_string(),
                chrono::Utc::now().timestamp(),
            );
            let mut out = Vec::new();
            st.on_event(
                "error",
                serde_json::json!({"type": "error", "error": {"type": "overloaded_error", "message": message}})
                    .to_string()
                    .as_bytes(),
                &Default::default(),
                &mut out,
            );
            let builder = Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
                .header(header::CACHE_CONTROL, "no-cache");
            return proxy::body_response(builder, Body::from(out));
        }
        super::translated::upstream_error(status, headers, &body)
    }

    async fn respond(
        a: Admitted,
        context: ResponsesContext,
        exchange: Exchange,
        settlement: Settlement,
    ) -> Response {
        super::translated::respond(
            &a,
            exchange,
            settlement,
            Protocol::Responses,
            context.stream,
            context,
            |ctx, request_id, now| {
                SseTranslator::Responses(ResponsesStream::new(ctx, request_id, now))
            },
            |full, usage, ctx, request_id, now| {
                ccgate_openai::responses::translate_responses_response(
                    full, usage, ctx, request_id, now,
                )
            },
        )
        .await
    }
}
