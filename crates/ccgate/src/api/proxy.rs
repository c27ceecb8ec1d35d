//! The request path, top to bottom, for every proxied call:
//!
//! 1. **auth**: the tenant from its key (`crate::auth`);
//! 2. **body**: read within the size and time limits; the few needed fields found by a lazy scan;
//! 3. **policy**: model allow-list, then rate/concurrency limits and the budget reservation
//!    (`crate::policy`);
//! 4. **routing**: session key, then balancer (`crate::routing`);
//! 5. **forward**: attempts with failover before the first byte (`crate::forward`);
//! 6. **tee**: bytes to the client, usage on the side (`crate::tee`);
//! 7. **ledger**: the settlement prices, settles and records (`crate::tee::settle`, `crate::ledger`).
//!
//! A request runs inline on its connection's task; if the client hangs up while CCGate waits for an upstream, it
//! moves to a tracked task ([`run_detached`]), so that cannot cancel the metering of a request the upstream may
//! already be billing.

use super::scan::{self, Scanned};
use crate::error::{ApiError, Protocol};
use crate::forward::{self, AttemptError, Forwarded, Plan};
use crate::ledger::Record;
use crate::policy::{budget, permissions};
use crate::routing::affinity;
use crate::state::{Gateway, Runtime, TenantRt};
use crate::tee::settle::{Ending, Settlement};
use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use ccgate_meter::Usage;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Messages,
    CountTokens,
    ChatCompletions,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::ChatCompletions => "chat_completions",
        }
    }

    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::CountTokens => "/v1/messages/count_tokens",
            Endpoint::Messages | Endpoint::ChatCompletions => "/v1/messages",
        }
    }

    /// count_tokens is free upstream: recorded, never billed, exempt from rate and concurrency limits.
    pub fn billable(self) -> bool {
        !matches!(self, Endpoint::CountTokens)
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Endpoint::ChatCompletions => Protocol::OpenAi,
            _ => Protocol::Anthropic,
        }
    }
}

/// Everything known about a request once it passed auth and body parsing.
pub struct Admitted {
    pub rt: Arc<Runtime>,
    pub tenant: Arc<TenantRt>,
    pub headers: HeaderMap,
    pub query: Option<String>,
    pub started: Instant,
    pub endpoint: Endpoint,
}

/// Runs the request future `f` so that the client hanging up does not cancel it, and a panic inside becomes a
/// 500 in the endpoint's protocol instead of a dropped connection.
///
/// `f` runs inline, on the connection's own task, as long as the client waits for it. If the client goes away
/// first, hyper drops this future, and [`DetachOnDrop`] hands the unfinished request to a tracked task that runs
/// it to the end (shutdown waits for those), so the upstream exchange is still metered. Spawning every request
/// onto its own task did the same, but cost a task, a join handle and two atomic operations on the shared
/// tracker per request, for a case that is rare.
///
/// The future arrives boxed: the request's state machine is large (it holds the upstream exchange), and a box can
/// move to another task after it has been polled.
pub async fn run_detached(gw: &Arc<Gateway>, protocol: Protocol, f: RequestFuture) -> Response {
    let mut request = DetachOnDrop {
        request: Some(f),
        tasks: &gw.tasks,
    };
    std::future::poll_fn(|cx| request.poll_inline(cx))
        .await
        .unwrap_or_else(|| {
            tracing::error!("request task failed: it panicked");
            ApiError::Internal("the gateway failed while handling this request".into())
                .into_response_for(protocol)
        })
}

type RequestFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send + 'static>>;

/// A request future that, if dropped before it finished, finishes on a tracked task instead.
struct DetachOnDrop<'a> {
    request: Option<RequestFuture>,
    tasks: &'a tokio_util::task::TaskTracker,
}

impl DetachOnDrop<'_> {
    /// Polls the request; `Ready(None)` if it panicked (the panic was already reported by the panic hook).
    fn poll_inline(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Response>> {
        let Some(request) = self.request.as_mut() else {
            return std::task::Poll::Ready(None);
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| request.as_mut().poll(cx))) {
            Ok(std::task::Poll::Pending) => std::task::Poll::Pending,
            Ok(std::task::Poll::Ready(response)) => {
                self.request = None;
                std::task::Poll::Ready(Some(response))
            }
            Err(_) => {
                self.request = None;
                std::task::Poll::Ready(None)
            }
        }
    }
}

impl Drop for DetachOnDrop<'_> {
    fn drop(&mut self) {
        let Some(request) = self.request.take() else {
            return;
        };
        // Outside a runtime (the process is ending) the request is dropped, and its settlement records it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(self.tasks.track_future(request));
        }
    }
}

/// Steps 1–2: authenticate and read the body.
pub async fn authenticate_and_read(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    req: Request,
) -> Result<(Admitted, Bytes), ApiError> {
    let started = Instant::now();
    let rt = gw.runtime.load_full();
    let (parts, body) = req.into_parts();
    let tenant = crate::auth::authenticate(&rt, &parts.headers).ok_or(ApiError::Unauthorized)?;
    let body = super::read_body(
        body,
        rt.config.server.body_limit_bytes,
        rt.config.server.body_read_timeout,
    )
    .await?;
    let query = parts.uri.query().map(str::to_owned);
    Ok((
        Admitted {
            rt,
            tenant,
            headers: parts.headers,
            query,
            started,
            endpoint,
        },
        body,
    ))
}

pub fn scan_body(body: &[u8]) -> Result<(Scanned, String), ApiError> {
    let scanned = scan::scan(body).map_err(|e| ApiError::BadRequest(e.0))?;
    let model = scanned
        .model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| ApiError::BadRequest("model: field required".into()))?;
    Ok((scanned, model))
}

/// Step 3: permission, limits and budget. Returns the settlement that will record the request.
pub async fn admit(
    gw: &Arc<Gateway>,
    a: &Admitted,
    client_model: &str,
    claude_model: &str,
    body_len: usize,
    max_tokens: u64,
    stream: bool,
) -> Result<Settlement, (ApiError, Option<Settlement>)> {
    let record = Record {
        request_id: uuid::Uuid::now_v7().to_string(),
        tenant_id: a.tenant.config.id.clone(),
        protocol: a.endpoint.protocol().as_str(),
        endpoint: a.endpoint.as_str(),
        model: client_model.to_string(),
        stream,
        billable: a.endpoint.billable(),
        ..Default::default()
    };
    let mut settlement = Settlement::new(
        gw.clone(),
        a.rt.pricing.clone(),
        a.rt.config.server.timezone,
        record,
        a.started,
    );
    settlement.price_model = claude_model.to_string();
    if !permissions::model_allowed(&a.tenant.config.allowed_models, claude_model) {
        let err = ApiError::ModelNotAllowed {
            model: claude_model.to_string(),
            allowed: a.tenant.config.allowed_models.join(", "),
        };
        return Err((err, Some(settlement)));
    }
    let estimate = match a.rt.pricing.lookup(claude_model) {
        Some((entry, _)) => budget::estimate_cost(body_len, max_tokens, &entry.rates),
        None => 0,
    };
    let limits = &a.tenant.config.limits;
    match budget::admit(
        &a.tenant.state,
        limits,
        a.rt.config.server.timezone,
        estimate,
        a.endpoint.billable(),
    )
    .await
    {
        Ok(adm) => {
            settlement.set_admission(adm);
            Ok(settlement)
        }
        Err(e) => Err((e, Some(settlement))),
    }
}

/// Records a refusal (after the tenant is known) and renders it.
pub fn reject(err: ApiError, settlement: Option<Settlement>, protocol: Protocol) -> Response {
    if let Some(s) = settlement {
        let status = err.status().as_u16();
        let status = if protocol == Protocol::OpenAi {
            err.openai_parts().0.as_u16()
        } else {
            status
        };
        s.finish(
            status,
            &Usage::default(),
            Ending::Rejected,
            Some(err.class()),
        );
    }
    err.into_response_for(protocol)
}

/// Step 4: the session key for affinity, if enabled.
pub fn session_for(a: &Admitted, scanned: &Scanned) -> Option<String> {
    if !a.rt.config.load_balancer.session_affinity {
        return None;
    }
    affinity::session_key(
        &a.tenant.config.id,
        &a.headers,
        scanned.user_id.as_deref(),
        scanned.user.as_deref(),
    )
}

/// Step 5, plus the bookkeeping of its outcome: returns either a streaming exchange for the tee, or a finished
/// response (an upstream error answered as-is, or CCGate's own error) with the settlement already recorded.
// Returned once per request and unpacked at once; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum Dispatched {
    Streaming(forward::Streaming, Settlement),
    Done(Response),
}

pub async fn dispatch(
    a: &Admitted,
    body: Bytes,
    claude_model: &str,
    model_span: Option<std::ops::Range<usize>>,
    session: Option<&str>,
    mut settlement: Settlement,
    render_upstream_error: impl FnOnce(StatusCode, &HeaderMap, Bytes) -> Response,
) -> Dispatched {
    let plan = Plan {
        path: a.endpoint.upstream_path(),
        query: a.query.as_deref(),
        headers: &a.headers,
        body,
        model: claude_model,
        model_span,
        session,
    };
    settlement.record.session_id =
        session.map(|s| s.rsplit('\u{1f}').next().unwrap_or(s).to_string());
    let protocol = a.endpoint.protocol();
    match forward::forward(&a.rt, &plan).await {
        Forwarded::Streaming(s) => {
            settlement.record.upstream_request_id = s
                .response
                .headers()
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            Dispatched::Streaming(s, settlement)
        }
        Forwarded::Reply {
            status,
            headers,
            body,
            upstream,
            upstream_model,
        } => {
            settlement.set_upstream(
                None,
                &upstream.config.id,
                upstream.config.price_multiplier_milli,
                &upstream_model,
            );
            settlement.record.upstream_request_id = headers
                .get("request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let class = format!("upstream_http_{}", status.as_u16());
            // count_tokens answers with usage-free JSON; a 2xx never lands here.
            settlement.finish(
                status.as_u16(),
                &Usage::default(),
                Ending::UpstreamError,
                Some(&class),
            );
            Dispatched::Done(render_upstream_error(status, &headers, body))
        }
        Forwarded::Failed { error, upstream } => {
            if let Some(u) = &upstream {
                settlement.set_upstream(
                    None,
                    &u.config.id,
                    u.config.price_multiplier_milli,
                    claude_model,
                );
            }
            let err = match error {
                AttemptError::NoUpstream => ApiError::NoUpstream(claude_model.to_string()),
                AttemptError::Connect(m) => ApiError::UpstreamConnect(m),
                AttemptError::Timeout(m) => ApiError::UpstreamTimeout(m),
                AttemptError::Credentials => ApiError::UpstreamCredentials,
                AttemptError::Redirect(status) => ApiError::UpstreamRedirect(status.as_u16()),
            };
            let status = match protocol {
                Protocol::Anthropic => err.status(),
                Protocol::OpenAi => err.openai_parts().0,
            };
            settlement.finish(
                status.as_u16(),
                &Usage::default(),
                Ending::UpstreamError,
                Some(err.class()),
            );
            Dispatched::Done(err.into_response_for(protocol))
        }
    }
}

/// Response head for a streamed 2xx: the upstream's headers minus the ones that describe our key or the hop.
/// Header names as constants: inserting by `&str` would copy a non-standard name into a new allocation.
const X_CCGATE_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-ccgate-request-id");
const X_ACCEL_BUFFERING: http::HeaderName = http::HeaderName::from_static("x-accel-buffering");

pub fn response_head(
    status: StatusCode,
    upstream_headers: &HeaderMap,
    request_id: &str,
    is_sse: bool,
) -> http::response::Builder {
    let mut builder = Response::builder().status(status);
    if let Some(h) = builder.headers_mut() {
        crate::forward::headers::copy_response_headers(upstream_headers, h);
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert(X_CCGATE_REQUEST_ID, v);
        }
        if is_sse {
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            h.insert(X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
        }
    }
    builder
}

pub fn body_response(builder: http::response::Builder, body: Body) -> Response {
    builder.body(body).unwrap_or_else(|e| {
        ApiError::Internal(format!("could not build the response: {e}"))
            .into_response_for(Protocol::Anthropic)
    })
}
