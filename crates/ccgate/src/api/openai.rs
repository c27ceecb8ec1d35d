//! `/openai`: OpenAI Chat Completions, translated to Anthropic Messages and back (ccgate-openai does the
//! translation; this adapter plugs it into the shared request path, ledger and budgets).

use super::proxy::{self, Adapter, Admitted, Endpoint, Exchange, Prepared};
use super::scan;
use crate::error::{ApiError, Protocol};
use crate::state::Gateway;
use crate::tee::settle::{Ending, Settlement};
use crate::tee::{self, Mode, SseTranslator, Tee};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::StreamMeter;
use ccgate_openai::{ResponseContext, StreamTranslator, TranslateOptions};
use http::{header, HeaderMap, StatusCode};
use std::sync::Arc;

pub async fn chat_completions(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if !gw.rt().config.openai.enabled {
        return ApiError::NotFound {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
        }
        .into_response_for(Protocol::OpenAi);
    }
    let g = gw.clone();
    proxy::run_detached(
        &gw,
        Protocol::OpenAi,
        Box::pin(proxy::handle::<OpenAi>(g, Endpoint::ChatCompletions, req)),
    )
    .await
}

fn json_response(status: StatusCode, body: Bytes, request_id: Option<&str>) -> Response {
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(id) = request_id {
        builder = builder.header("x-request-id", id);
    }
    proxy::body_response(builder, Body::from(body))
}

pub struct OpenAi;

/// What the answer's translation needs from the request.
pub struct Context {
    response: ResponseContext,
    stream: bool,
}

impl Adapter for OpenAi {
    type Context = Context;
    const PROTOCOL: Protocol = Protocol::OpenAi;

    fn prepare(a: &Admitted, body: Bytes) -> Result<Prepared<Context>, ApiError> {
        // One strict read of the body: the model first (aliases resolve it into the options), then the translation.
        let parsed = ccgate_openai::parse_request(&body).map_err(ApiError::Translate)?;
        let oa = &a.rt.config.openai;
        let resolved = ccgate_openai::resolve_model(parsed.model(), &oa.models, &oa.default_model);
        let caps = ccgate_meter::catalog::caps_for(&resolved.claude_model);
        let mut opts = TranslateOptions::new(
            &resolved.claude_model,
            &resolved.client_model,
            caps,
            &a.tenant.config.id,
        );
        opts.expose_reasoning = oa.expose_reasoning;
        let translated = parsed.translate(&opts).map_err(ApiError::Translate)?;
        for w in &translated.warnings {
            tracing::info!(tenant = %a.tenant.config.id, warning = %w, "openai translation");
        }
        let upstream_body = Bytes::from(translated.body);
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
        Ok(Prepared {
            upstream_body,
            client_model: resolved.client_model,
            claude_model: resolved.claude_model,
            model_span,
            stream: translated.stream,
            max_tokens: translated.max_tokens,
            // The OpenAI `user` arrives upstream as `metadata.user_id` = a hash of tenant and user: the same
            // identity, so it keys affinity without another pass over a body.
            user_id: None,
            user: translated.user_id,
            context: Context {
                response: translated.response_ctx,
                stream: translated.stream,
            },
        })
    }

    /// Upstream errors in OpenAI's shape with their real status (docs/protocols.md); `retry-after` survives.
    fn upstream_error(
        _: &Context,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        let (code, out) = ccgate_openai::translate_error(status.as_u16(), &body);
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

    async fn respond(
        a: Admitted,
        context: Context,
        exchange: Exchange,
        settlement: Settlement,
    ) -> Response {
        let request_id = settlement.record.request_id.clone();
        let now_unix = chrono::Utc::now().timestamp();
        let cfg = exchange.tee_config(&a, None);
        if context.stream {
            let translator = StreamTranslator::new(context.response, &request_id, now_unix);
            let mode = Mode::OpenAiSse {
                framer: SseFramer::new(),
                meter: StreamMeter::new(),
                translator: Box::new(SseTranslator::Chat(translator)),
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
                    err.status_for(Protocol::OpenAi).as_u16(),
                    &Default::default(),
                    Ending::UpstreamError,
                    Some(class),
                );
                return err.into_response_for(Protocol::OpenAi);
            }
        };
        let (usage, ending, class) = match tee::json_usage(&full) {
            Some(u) => (u, Ending::Ok, None),
            None => (Default::default(), Ending::Partial, Some("usage_missing")),
        };
        match ccgate_openai::translate_response(&full, &usage, &context.response, now_unix) {
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
                    err.status_for(Protocol::OpenAi).as_u16(),
                    &usage,
                    Ending::UpstreamError,
                    Some(err.class()),
                );
                err.into_response_for(Protocol::OpenAi)
            }
        }
    }
}
