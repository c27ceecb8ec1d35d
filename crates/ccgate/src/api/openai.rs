//! `/openai`: OpenAI Chat Completions, translated to Anthropic Messages and back (ccgate-openai does the
//! translation; this module wires it into the same request path, ledger and budgets as `/anthropic`).

use super::proxy::{self, Dispatched, Endpoint};
use super::scan;
use crate::error::{ApiError, Protocol};
use crate::state::Gateway;
use crate::tee::settle::Ending;
use crate::tee::{self, Mode, Tee, TeeConfig};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::StreamMeter;
use ccgate_openai::{StreamTranslator, TranslateOptions};
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

pub async fn chat_completions(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let g = gw.clone();
    proxy::run_detached(&gw, Protocol::OpenAi, Box::pin(handle(g, req))).await
}

fn json_response(status: StatusCode, body: Vec<u8>, request_id: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(id) = request_id {
        builder = builder.header("x-request-id", id);
    }
    proxy::body_response(builder, Body::from(body))
}

async fn handle(gw: Arc<Gateway>, req: Request) -> Response {
    if !gw.rt().config.openai.enabled {
        let path = req.uri().path().to_string();
        return ApiError::NotFound {
            method: req.method().to_string(),
            path,
        }
        .into_response_for(Protocol::OpenAi);
    }
    let (a, body) = match proxy::authenticate_and_read(&gw, Endpoint::ChatCompletions, req).await {
        Ok(x) => x,
        Err(e) => return e.into_response_for(Protocol::OpenAi),
    };
    // One strict read of the body: the model first (aliases resolve it into the options), then the translation.
    let parsed = match ccgate_openai::parse_request(&body) {
        Ok(p) => p,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, e.to_body(), None),
    };
    let requested = parsed.model();
    let oa = &a.rt.config.openai;
    let resolved = ccgate_openai::resolve_model(requested, &oa.models, &oa.default_model);
    let caps = ccgate_meter::catalog::caps_for(&resolved.claude_model);
    let mut opts = TranslateOptions::new(
        &resolved.claude_model,
        &resolved.client_model,
        caps,
        &a.tenant.config.id,
    );
    opts.expose_reasoning = oa.expose_reasoning;
    let translated = match parsed.translate(&opts) {
        Ok(t) => t,
        Err(e) => return json_response(StatusCode::BAD_REQUEST, e.to_body(), None),
    };
    // Neither the parse tree nor the client's body is needed during the upstream exchange: freed now, their memory
    // is reused while still in cache (at 256 concurrent 75 KB requests that matters).
    drop(parsed);
    drop(body);
    for w in &translated.warnings {
        tracing::info!(tenant = %a.tenant.config.id, warning = %w, "openai translation");
    }
    let upstream_body = Bytes::from(translated.body);
    let max_tokens = translated.max_tokens;
    let settlement = match proxy::admit(
        &gw,
        &a,
        &resolved.client_model,
        &resolved.claude_model,
        upstream_body.len(),
        max_tokens,
        translated.stream,
    )
    .await
    {
        Ok(s) => s,
        Err((e, s)) => return proxy::reject(e, s, Protocol::OpenAi),
    };
    // The OpenAI `user` arrives upstream as `metadata.user_id` = a hash of tenant and user: the same identity,
    // so it keys affinity without another pass over a body.
    let for_session = scan::Scanned {
        user: translated.user_id.clone(),
        ..Default::default()
    };
    let session = proxy::session_for(&a, &for_session);
    // Where `model` sits in the translated body matters only to an upstream that renames it (`modelMap`).
    let renamed =
        a.rt.upstreams
            .iter()
            .any(|u| u.config.model_map.contains_key(&resolved.claude_model));
    let model_span = if renamed {
        scan::scan(&upstream_body).ok().and_then(|s| s.model_span)
    } else {
        None
    };
    let dispatched = proxy::dispatch(
        &a,
        upstream_body,
        &resolved.claude_model,
        model_span,
        session.as_deref(),
        settlement,
        render_upstream_error,
    )
    .await;
    let (s, mut settlement) = match dispatched {
        Dispatched::Done(resp) => return resp,
        Dispatched::Streaming(s, settlement) => (s, settlement),
    };
    let upstream = s.in_flight.upstream().clone();
    settlement.set_upstream(
        Some(s.in_flight),
        &upstream.config.id,
        upstream.config.price_multiplier_milli,
        &s.upstream_model,
    );
    let request_id = settlement.record.request_id.clone();
    let timeouts = &upstream.config.timeouts;
    let total_remaining = timeouts.total.saturating_sub(a.started.elapsed());
    let response_ctx = translated.response_ctx;
    let now_unix = chrono::Utc::now().timestamp();
    if translated.stream {
        let translator = StreamTranslator::new(response_ctx, &request_id, now_unix);
        let mode = Mode::OpenAiSse {
            framer: SseFramer::new(),
            meter: StreamMeter::new(),
            translator: Box::new(translator),
        };
        let cfg = TeeConfig {
            idle: timeouts.idle,
            total_remaining,
            drain_limit: a.rt.config.server.disconnect_drain,
            model_rewrite: None,
        };
        let tee = Tee::new(s.response, mode, settlement, cfg);
        let builder = Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "text/event-stream; charset=utf-8")
            .header(header::CACHE_CONTROL, "no-cache")
            .header("x-accel-buffering", "no")
            .header("x-request-id", request_id.as_str());
        return proxy::body_response(builder, Body::new(tee));
    }
    let status = s.response.status().as_u16();
    let full = match tee::read_full(s.response, timeouts.idle, total_remaining).await {
        Ok(b) => b,
        Err(reason) => {
            settlement.note_upstream_failure(&reason);
            settlement.finish(
                502,
                &Default::default(),
                Ending::UpstreamError,
                Some("upstream_body_broken"),
            );
            return ApiError::UpstreamConnect(reason).into_response_for(Protocol::OpenAi);
        }
    };
    let usage = tee::json_usage(&full);
    let (usage, ending, class) = match usage {
        Some(u) => (u, Ending::Ok, None),
        None => (Default::default(), Ending::Partial, Some("usage_missing")),
    };
    match ccgate_openai::translate_response(&full, &usage, &response_ctx, now_unix) {
        Ok(out) => {
            settlement.finish(status, &usage, ending, class);
            json_response(StatusCode::OK, out, Some(&request_id))
        }
        Err(e) => {
            settlement.finish(
                502,
                &usage,
                Ending::UpstreamError,
                Some("upstream_unparseable"),
            );
            ApiError::UpstreamConnect(format!("the upstream answer could not be translated: {e}"))
                .into_response_for(Protocol::OpenAi)
        }
    }
}

/// Upstream errors in OpenAI's shape with their real status (protocols.md §5.5); `retry-after` survives.
fn render_upstream_error(status: StatusCode, headers: &HeaderMap, body: Bytes) -> Response {
    let (code, out) = ccgate_openai::translate_error(status.as_u16(), &body);
    let mut resp = json_response(
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_GATEWAY),
        out,
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
