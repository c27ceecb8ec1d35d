//! `/anthropic`: the Anthropic Messages API, passed through. The body goes upstream byte for byte (only `model`
//! is patched, surgically, when an upstream's `modelMap` renames it) and the answer comes back byte for byte.

use super::proxy::{self, Admitted, Dispatched, Endpoint};
use crate::error::Protocol;
use crate::state::Gateway;
use crate::tee::{Mode, Tee, TeeConfig};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::usage::StreamMeter;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;

pub async fn messages(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::Anthropic,
        Box::pin(handle(g, Endpoint::Messages, req)),
    )
    .await
}

pub async fn count_tokens(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::Anthropic,
        Box::pin(handle(g, Endpoint::CountTokens, req)),
    )
    .await
}

async fn handle(gw: Arc<Gateway>, endpoint: Endpoint, req: Request) -> Response {
    let (a, body) = match proxy::authenticate_and_read(&gw, endpoint, req).await {
        Ok(x) => x,
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let (scanned, model) = match proxy::scan_body(&body) {
        Ok(x) => x,
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let stream = scanned.stream && endpoint == Endpoint::Messages;
    let max_tokens = scanned.max_tokens.unwrap_or(0);
    let settlement =
        match proxy::admit(&gw, &a, &model, &model, body.len(), max_tokens, stream).await {
            Ok(s) => s,
            Err((e, s)) => return proxy::reject(e, s, Protocol::Anthropic),
        };
    let session = proxy::session_for(&a, &scanned);
    let dispatched = proxy::dispatch(
        &a,
        body,
        &model,
        scanned.model_span.clone(),
        session.as_deref(),
        settlement,
        render_upstream_error,
    )
    .await;
    match dispatched {
        Dispatched::Done(resp) => resp,
        Dispatched::Streaming(s, settlement) => stream_back(&a, s, settlement),
    }
}

/// Upstream errors go to the tenant verbatim (Claude Code reads their wording to recover), minus our key's
/// rate-limit headers.
fn render_upstream_error(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let mut builder = Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        crate::forward::headers::copy_response_headers(headers, h);
        if !h.contains_key(header::CONTENT_TYPE) {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    proxy::body_response(builder, Body::from(body))
}

fn stream_back(
    a: &Admitted,
    s: crate::forward::Streaming,
    mut settlement: crate::tee::settle::Settlement,
) -> Response {
    let upstream = s.in_flight.upstream().clone();
    let is_sse = s
        .response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let mut head = proxy::response_head(
        s.response.status(),
        s.response.headers(),
        &settlement.record.request_id,
        is_sse,
    );
    let model_rewrite = (s.upstream_model != settlement.record.model)
        .then(|| (s.upstream_model.clone(), settlement.record.model.clone()));
    // A JSON body passes through unchanged, so the upstream's length is still true; clients like to have it.
    if let (false, None, Some(len), Some(h)) = (
        is_sse,
        &model_rewrite,
        s.response.headers().get(header::CONTENT_LENGTH),
        head.headers_mut(),
    ) {
        h.insert(header::CONTENT_LENGTH, len.clone());
    }
    settlement.set_upstream(
        Some(s.in_flight),
        &upstream.config.id,
        upstream.config.price_multiplier_milli,
        &s.upstream_model,
    );
    let mode = if is_sse {
        Mode::AnthropicSse {
            meter: StreamMeter::new(),
        }
    } else {
        Mode::AnthropicJson { copy: Vec::new() }
    };
    let timeouts = &upstream.config.timeouts;
    let cfg = TeeConfig {
        idle: timeouts.idle,
        total_remaining: timeouts.total.saturating_sub(a.started.elapsed()),
        drain_limit: a.rt.config.server.disconnect_drain,
        model_rewrite,
    };
    let tee = Tee::new(s.response, mode, settlement, cfg);
    proxy::body_response(head, Body::new(tee))
}
