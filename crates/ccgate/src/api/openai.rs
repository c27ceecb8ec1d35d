//! `/openai`: OpenAI Chat Completions, translated to Anthropic Messages and back (ccgate-openai does the
//! translation; this adapter plugs it into the shared request path, ledger and budgets).

use super::proxy::{self, Adapter, Admitted, Endpoint, Exchange, Prepared};
use crate::error::{ApiError, Protocol};
use crate::state::Gateway;
use crate::tee::settle::Settlement;
use crate::tee::SseTranslator;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use ccgate_openai::{ResponseContext, StreamTranslator};
use http::{HeaderMap, StatusCode};
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
        let resolved = super::translated::resolve(a, parsed.model());
        let opts = super::translated::options(a, &resolved);
        let translated = parsed.translate(&opts).map_err(ApiError::Translate)?;
        for w in &translated.warnings {
            tracing::info!(tenant = %a.tenant.config.id, warning = %w, "openai translation");
        }
        Ok(super::translated::prepared(
            a,
            resolved,
            super::translated::Translation {
                body: translated.body,
                stream: translated.stream,
                max_tokens: translated.max_tokens,
                user: translated.user_id,
                context: Context {
                    response: translated.response_ctx,
                    stream: translated.stream,
                },
            },
        ))
    }

    /// Upstream errors in OpenAI's shape with their real status (docs/protocols.md); `retry-after` survives.
    fn upstream_error(
        _: &Context,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response {
        super::translated::upstream_error(status, headers, &body)
    }

    async fn respond(
        a: Admitted,
        context: Context,
        exchange: Exchange,
        settlement: Settlement,
    ) -> Response {
        super::translated::respond(
            &a,
            exchange,
            settlement,
            Protocol::OpenAi,
            context.stream,
            context.response,
            |ctx, request_id, now| SseTranslator::Chat(StreamTranslator::new(ctx, request_id, now)),
            |full, usage, ctx, _, now| ccgate_openai::translate_response(full, usage, ctx, now),
        )
        .await
    }
}
