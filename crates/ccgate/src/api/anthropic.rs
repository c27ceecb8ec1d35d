//! `/anthropic`: the Anthropic Messages API, passed through. The body goes upstream byte for byte (only `model`
//! is patched, surgically, when an upstream's `modelMap` renames it) and the answer comes back byte for byte.

use super::proxy::{self, Adapter, Admitted, Endpoint, Exchange, Prepared};
use crate::error::{ApiError, Protocol};
use crate::state::Gateway;
use crate::tee::settle::Settlement;
use crate::tee::{Mode, Tee};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::usage::StreamMeter;
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

pub async fn messages(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::Anthropic,
        Box::pin(proxy::handle::<Anthropic>(g, Endpoint::Messages, req)),
    )
    .await
}

pub async fn count_tokens(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::Anthropic,
        Box::pin(proxy::handle::<Anthropic>(g, Endpoint::CountTokens, req)),
    )
    .await
}

pub struct Anthropic;

impl Adapter for Anthropic {
    type Context = ();
    const PROTOCOL: Protocol = Protocol::Anthropic;

    fn prepare(a: &Admitted, body: Bytes) -> Result<Prepared<()>, ApiError> {
        let scanned = super::scan::scan(&body).map_err(|e| ApiError::BadRequest(e.0))?;
        let request_traits = crate::trust::observe::RequestTraits::of_scanned(&body, &scanned);
        let model = scanned
            .model
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| ApiError::BadRequest("model: field required".into()))?;
        Ok(Prepared {
            request_traits,
            upstream_body: body,
            client_model: model.clone(),
            claude_model: model,
            model_span: scanned.model_span,
            stream: scanned.stream && a.endpoint == Endpoint::Messages,
            max_tokens: scanned.max_tokens.unwrap_or(0),
            user_id: scanned.user_id,
            user: scanned.user,
            context: (),
        })
    }

    /// Upstream errors go to the tenant verbatim (Claude Code reads their wording to recover; our key was cut out
    /// in `forward`), with only the allow-listed headers and a JSON content type.
    fn upstream_error(_: &(), status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
        let mut builder = Response::builder().status(status);
        if let Some(h) = builder.headers_mut() {
            crate::forward::headers::copy_response_headers(headers, h, false);
        }
        proxy::body_response(builder, Body::from(body))
    }

    async fn respond(a: Admitted, _: (), exchange: Exchange, settlement: Settlement) -> Response {
        let is_sse = exchange
            .response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("text/event-stream"));
        let head = proxy::response_head(
            exchange.response.status(),
            exchange.response.headers(),
            &settlement.record.request_id,
            is_sse,
        );
        let model_rewrite = (exchange.upstream_model != settlement.record.model).then(|| {
            (
                exchange.upstream_model.clone(),
                settlement.record.model.clone(),
            )
        });
        // No `content-length`: a JSON answer is held to its end and may change (key redaction, model rename).
        let mode = if is_sse {
            Mode::AnthropicSse {
                meter: StreamMeter::new(),
            }
        } else {
            Mode::AnthropicJson { copy: Vec::new() }
        };
        let cfg = exchange.tee_config(&a, model_rewrite);
        let tee = Tee::new(exchange.response, mode, settlement, cfg);
        proxy::body_response(head, Body::new(tee))
    }
}
