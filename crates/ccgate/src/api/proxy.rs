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

use crate::error::{ApiError, Protocol};
use crate::forward::{self, AttemptError, Forwarded, Plan};
use crate::ledger::Record;
use crate::policy::lease::ModelScope;
use crate::policy::{budget, permissions};
use crate::routing::affinity;
use crate::state::{Gateway, Runtime, TenantRt, UpstreamRt};
use crate::tee::settle::{Ending, Settlement};
use crate::tee::TeeConfig;
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
    Responses,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Messages => "messages",
            Endpoint::CountTokens => "count_tokens",
            Endpoint::ChatCompletions => "chat_completions",
            Endpoint::Responses => "responses",
        }
    }

    pub fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::CountTokens => "/v1/messages/count_tokens",
            Endpoint::Messages | Endpoint::ChatCompletions | Endpoint::Responses => "/v1/messages",
        }
    }

    /// count_tokens is free upstream: recorded, never billed, exempt from rate and concurrency limits.
    pub fn billable(self) -> bool {
        !matches!(self, Endpoint::CountTokens)
    }

    pub fn protocol(self) -> Protocol {
        match self {
            Endpoint::ChatCompletions => Protocol::OpenAi,
            Endpoint::Responses => Protocol::Responses,
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
    /// Set by the listener (`telemetry/request_id.rs`); a fresh one for a request that did not pass through it.
    pub request_id: crate::telemetry::request_id::RequestId,
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
    let answered = tokio::select! {
        r = std::future::poll_fn(|cx| request.poll_inline(cx)) => r,
        // The shutdown grace period is over and the upstream has not answered: give up on it. Dropping the
        // request here (not detaching it) records it as interrupted, before the ledger closes.
        _ = gw.cut.cancelled() => {
            request.request = None;
            return ApiError::ShuttingDown.into_response_for(protocol);
        }
    };
    answered.unwrap_or_else(|| {
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

/// One protocol on the shared request path: what differs between `/anthropic` and `/openai` (and the next API),
/// and nothing else. [`handle`] runs the steps in order and calls the adapter at the two points where protocols
/// differ: reading the tenant's body into an upstream request, and turning the upstream's answer back.
pub trait Adapter {
    /// What the adapter keeps from the request for building the answer (e.g. the `/openai` response context).
    type Context: Send + 'static;
    const PROTOCOL: Protocol;

    /// Step 2, after the body is read: the upstream request and the fields the policy and routing need.
    fn prepare(a: &Admitted, body: Bytes) -> Result<Prepared<Self::Context>, ApiError>;

    /// A final non-2xx answer from the upstream, rendered for the tenant (the request's context says how, e.g.
    /// whether it asked for a stream).
    fn upstream_error(
        context: &Self::Context,
        status: StatusCode,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Response;

    /// Step 6: the answer to a 2xx upstream exchange (usually a tee); the settlement is finished by it.
    fn respond(
        a: Admitted,
        context: Self::Context,
        exchange: Exchange,
        settlement: Settlement,
    ) -> impl std::future::Future<Output = Response> + Send;
}

/// What an adapter's [`Adapter::prepare`] hands the pipeline.
pub struct Prepared<C> {
    /// The Anthropic Messages body to send upstream.
    pub upstream_body: Bytes,
    /// The model the tenant asked for (recorded as `model`).
    pub client_model: String,
    /// The Claude model it resolves to: what the allow-list, prices and routing use.
    pub claude_model: String,
    /// Where `model` sits in `upstream_body`, for an upstream's `modelMap` rename.
    pub model_span: Option<std::ops::Range<usize>>,
    pub stream: bool,
    /// `max_tokens` of the upstream request (0 when absent), for the budget's worst case.
    pub max_tokens: u64,
    /// What the upstream trust checks read of the request (docs/trust.md), taken from the adapter's own read of
    /// the body so that trust adds no JSON pass to the request path.
    pub request_traits: crate::trust::observe::RequestTraits,
    /// Session hints for affinity: `metadata.user_id` and the OpenAI `user`.
    pub user_id: Option<String>,
    pub user: Option<String>,
    pub context: C,
}

/// A 2xx upstream exchange whose body has not been read yet, handed to [`Adapter::respond`].
pub struct Exchange {
    pub response: forward::client::UpstreamResponse,
    pub upstream: Arc<UpstreamRt>,
    /// The model name the upstream was sent (after its `modelMap`).
    pub upstream_model: String,
}

impl Exchange {
    /// The tee's deadlines for this exchange.
    pub fn tee_config(&self, a: &Admitted, model_rewrite: Option<(String, String)>) -> TeeConfig {
        let timeouts = &self.upstream.config.timeouts;
        TeeConfig {
            idle: timeouts.idle,
            total_remaining: timeouts.total.saturating_sub(a.started.elapsed()),
            drain_limit: a.rt.config.server.disconnect_drain,
            model_rewrite,
            redactor: self.upstream.redactor.clone(),
        }
    }
}

/// The whole request path for one protocol: auth → body → policy → routing → forward → tee → ledger.
pub async fn handle<A: Adapter>(gw: Arc<Gateway>, endpoint: Endpoint, req: Request) -> Response {
    let (a, body) = match authenticate_and_read(&gw, endpoint, req).await {
        Ok(x) => x,
        Err(e) => return e.into_response_for(A::PROTOCOL),
    };
    // Mutable: admission may clamp `max_tokens` in the upstream body (`limits.clampOutputTokens`).
    let mut prepared =
        match A::prepare(&a, body).and_then(|p| check_model_name(&p.client_model).map(|()| p)) {
            Ok(p) => p,
            Err(e) => return e.into_response_for(A::PROTOCOL),
        };
    let settlement = match admit(&gw, &a, &mut prepared).await {
        Ok(s) => s,
        Err((e, s)) => return reject(e, s, A::PROTOCOL),
    };
    let session = session_for(&a, &prepared);
    let mut settlement = settlement;
    let Prepared {
        upstream_body,
        claude_model,
        model_span,
        context,
        request_traits,
        ..
    } = prepared;
    settlement.trust.request = request_traits;
    let plan = Plan {
        path: a.endpoint.upstream_path(),
        query: a.query.as_deref(),
        headers: &a.headers,
        body: upstream_body,
        model: &claude_model,
        model_span,
        session: session.as_deref(),
    };
    let render = |status: StatusCode, headers: &HeaderMap, body: Bytes| {
        A::upstream_error(&context, status, headers, body)
    };
    match dispatch(&a, &plan, settlement, render).await {
        Dispatched::Done(resp) => resp,
        Dispatched::Streaming(s, mut settlement) => {
            let upstream = s.in_flight.upstream().clone();
            settlement.set_upstream(
                Some(s.in_flight),
                &upstream.config.id,
                upstream.config.price_multiplier_milli,
                &s.upstream_model,
            );
            let exchange = Exchange {
                response: s.response,
                upstream,
                upstream_model: s.upstream_model,
            };
            A::respond(a, context, exchange, settlement).await
        }
    }
}

/// Steps 1–2: authenticate and read the body.
async fn authenticate_and_read(
    gw: &Arc<Gateway>,
    endpoint: Endpoint,
    req: Request,
) -> Result<(Admitted, Bytes), ApiError> {
    let started = Instant::now();
    let rt = gw.runtime.load_full();
    let (mut parts, body) = req.into_parts();
    let tenant = crate::auth::tenant_throttled(
        gw,
        &rt,
        &parts.headers,
        &parts.extensions,
        parts.uri.path(),
    )?;
    let body = super::read_body(
        body,
        rt.config.server.body_limit_bytes,
        rt.config.server.body_read_timeout,
    )
    .await?;
    let query = parts.uri.query().and_then(without_credentials);
    let request_id = parts
        .extensions
        .remove::<crate::telemetry::request_id::RequestId>()
        .unwrap_or_else(|| crate::telemetry::request_id::RequestId::for_request(&parts.headers));
    Ok((
        Admitted {
            request_id,
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

/// Longest `model` accepted: real ids are under 64 bytes, and the name is stored, logged and shown on pages.
const MAX_MODEL_NAME: usize = 256;

/// A model name is printable ASCII of bounded length: a megabyte name would be stored and sent back on every
/// usage page, and control characters would forge log lines.
fn check_model_name(model: &str) -> Result<(), ApiError> {
    if model.len() > MAX_MODEL_NAME {
        return Err(ApiError::BadRequest(format!(
            "model: the name is {} bytes long; at most {MAX_MODEL_NAME} are accepted",
            model.len()
        )));
    }
    if !model.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ApiError::BadRequest(
            "model: the name may contain only printable ASCII characters".into(),
        ));
    }
    Ok(())
}

/// Query parameters that carry credentials: a client that put its tenant key in the URL must not have it
/// forwarded to a third-party upstream.
const CREDENTIAL_PARAMS: [&str; 5] = ["key", "api_key", "apikey", "token", "access_token"];

/// The tenant's query string without credential-like parameters; the rest is forwarded as sent (Claude Code
/// sends `?beta=true`). `None` when nothing is left.
fn without_credentials(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split('=').next().unwrap_or_default();
            let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
            !pair.is_empty()
                && !CREDENTIAL_PARAMS
                    .iter()
                    .any(|c| name.trim().eq_ignore_ascii_case(c))
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// Step 3: permission, limits and budget. Returns the settlement that will record the request.
async fn admit<C>(
    gw: &Arc<Gateway>,
    a: &Admitted,
    p: &mut Prepared<C>,
) -> Result<Settlement, (ApiError, Option<Settlement>)> {
    let record = Record {
        request_id: a.request_id.gateway.clone(),
        client_request_id: a.request_id.client.clone(),
        tenant_id: a.tenant.config.id.clone(),
        protocol: a.endpoint.protocol().as_str(),
        endpoint: a.endpoint.as_str(),
        model: p.client_model.clone(),
        stream: p.stream,
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
    settlement.price_model = p.claude_model.clone();
    if !permissions::model_allowed(&a.tenant.config.allowed_models, &p.claude_model) {
        let err = ApiError::ModelNotAllowed {
            model: p.claude_model.clone(),
            allowed: a.tenant.config.allowed_models.join(", "),
        };
        return Err((err, Some(settlement)));
    }
    let limits = &a.tenant.config.limits;
    if let Err(e) = cap_output_tokens(limits, p) {
        return Err((e, Some(settlement)));
    }
    let estimate = match a.rt.pricing.lookup(&p.claude_model) {
        Some((entry, _)) => {
            budget::estimate_cost(p.upstream_body.len(), p.max_tokens, &entry.rates)
        }
        // An unpriced model would spend nothing against a dollar budget: refused rather than served for free.
        None if limits.has_usd_limit_for(&p.claude_model) && a.endpoint.billable() => {
            return Err((
                ApiError::ModelUnpriced(p.claude_model.clone()),
                Some(settlement),
            ));
        }
        None => 0,
    };
    let ask = budget::Ask {
        nanousd: estimate,
        tokens: budget::estimate_tokens(p.upstream_body.len(), p.max_tokens),
        counts: a.endpoint.billable(),
    };
    let tz = a.rt.config.server.timezone;
    // The model's own limits first: a request they refuse takes nothing from the tenant's overall rpm. On shared
    // limits an entry's rpm, maxConcurrent and tpm are leased under its pattern.
    let shared = gw
        .shared_limits()
        .map(|s| (&**s, a.tenant.config.id.as_str()));
    let mut per_model = Vec::new();
    for (m, state) in limits.models.iter().zip(&a.tenant.model_states) {
        if !permissions::model_allowed(std::slice::from_ref(&m.pattern), &p.claude_model) {
            continue;
        }
        let scope = shared.map(|_| ModelScope::new(m, state, &a.rt.config.openai.models));
        match budget::admit(state, &m.limits, tz, ask, shared, &[], scope.as_ref()).await {
            Ok(adm) => per_model.push((m.pattern.clone(), adm)),
            Err(e) => return Err((budget::for_model(e, &m.pattern), Some(settlement))),
        }
    }
    // On shared limits, the entries' dollar windows are also checked against every instance's spend.
    let scopes: Vec<ModelScope> = match gw.shared_limits() {
        None => Vec::new(),
        Some(_) => limits
            .models
            .iter()
            .zip(&a.tenant.model_states)
            .filter(|(m, _)| {
                m.limits.has_usd_limit()
                    && permissions::model_allowed(std::slice::from_ref(&m.pattern), &p.claude_model)
            })
            .map(|(m, state)| ModelScope::new(m, state, &a.rt.config.openai.models))
            .collect(),
    };
    match budget::admit(&a.tenant.state, limits, tz, ask, shared, &scopes, None).await {
        Ok(adm) => {
            settlement.set_admission(adm, per_model);
            Ok(settlement)
        }
        Err(e) => Err((e, Some(settlement))),
    }
}

/// `limits.maxOutputTokens`: a request asking for more output is refused with 400, or sent with the cap instead
/// (`clampOutputTokens`), rewriting only the `max_tokens` value of the upstream body.
fn cap_output_tokens<C>(
    limits: &crate::config::Limits,
    p: &mut Prepared<C>,
) -> Result<(), ApiError> {
    let Some(cap) = limits.output_cap(&p.claude_model) else {
        return Ok(());
    };
    if p.max_tokens <= cap {
        return Ok(());
    }
    if !limits.clamp_output_tokens {
        return Err(ApiError::BadRequest(format!(
            "this key allows at most {cap} output tokens per request (limits.maxOutputTokens) and the request asks \
             for {} (max_tokens, max_completion_tokens or max_output_tokens; on /openai the model's default when \
             absent); ask for {cap} or fewer",
            p.max_tokens
        )));
    }
    let span = super::scan::scan(&p.upstream_body)
        .ok()
        .and_then(|s| s.max_tokens_span)
        .ok_or_else(|| ApiError::Internal("max_tokens not found in the upstream body".into()))?;
    let body = super::scan::rewrite_number(&p.upstream_body, &span, cap);
    if let Some(m) = &mut p.model_span {
        if m.start >= span.end {
            let shift = body.len() as isize - p.upstream_body.len() as isize;
            *m = (m.start as isize + shift) as usize..(m.end as isize + shift) as usize;
        }
    }
    p.upstream_body = Bytes::from(body);
    p.max_tokens = cap;
    Ok(())
}

/// Records a refusal (after the tenant is known) and renders it; the row holds the status the tenant saw.
fn reject(err: ApiError, settlement: Option<Settlement>, protocol: Protocol) -> Response {
    if let Some(s) = settlement {
        s.finish(
            err.status_for(protocol).as_u16(),
            &Usage::default(),
            Ending::Rejected,
            Some(err.class()),
        );
    }
    err.into_response_for(protocol)
}

/// Step 4: the session key for affinity, if enabled.
fn session_for<C>(a: &Admitted, p: &Prepared<C>) -> Option<String> {
    if !a.rt.config.load_balancer.session_affinity {
        return None;
    }
    affinity::session_key(
        &a.tenant.config.id,
        &a.headers,
        p.user_id.as_deref(),
        p.user.as_deref(),
    )
}

/// Step 5, plus the bookkeeping of its outcome: returns either a streaming exchange for the tee, or a finished
/// response (an upstream error answered as-is, or CCGate's own error) with the settlement already recorded.
// Returned once per request and unpacked at once; boxing the large variant would only add an allocation.
#[allow(clippy::large_enum_variant)]
enum Dispatched {
    Streaming(forward::Streaming, Settlement),
    Done(Response),
}

async fn dispatch(
    a: &Admitted,
    plan: &Plan<'_>,
    mut settlement: Settlement,
    render_upstream_error: impl FnOnce(StatusCode, &HeaderMap, Bytes) -> Response,
) -> Dispatched {
    let session = plan.session;
    let claude_model = plan.model;
    settlement.record.session_id =
        session.map(|s| s.rsplit('\u{1f}').next().unwrap_or(s).to_string());
    let protocol = a.endpoint.protocol();
    settlement.journal_forwarding();
    match forward::forward(&a.rt, plan).await {
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
            // The row holds the status the tenant saw (`/openai` turns an upstream 529 into 503, a 401 into 502);
            // the upstream's own status is kept in the error class.
            let class = format!("upstream_http_{}", status.as_u16());
            let response = render_upstream_error(status, &headers, body);
            // count_tokens answers with usage-free JSON; a 2xx never lands here.
            settlement.finish(
                response.status().as_u16(),
                &Usage::default(),
                Ending::UpstreamError,
                Some(&class),
            );
            Dispatched::Done(response)
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
                AttemptError::NoUpstream if !model_is_served(&a.rt, claude_model) => {
                    ApiError::NoUpstreamConfigured(claude_model.to_string())
                }
                AttemptError::NoUpstream => ApiError::NoUpstream(claude_model.to_string()),
                AttemptError::Connect(m) => ApiError::UpstreamConnect(m),
                AttemptError::Timeout(m) => ApiError::UpstreamTimeout(m),
                AttemptError::Credentials => ApiError::UpstreamCredentials,
                AttemptError::Redirect(status) => ApiError::UpstreamRedirect(status.as_u16()),
                AttemptError::BodyTooLarge => {
                    ApiError::UpstreamBodyTooLarge(forward::MAX_ERROR_BODY >> 20)
                }
            };
            settlement.finish(
                err.status_for(protocol).as_u16(),
                &Usage::default(),
                Ending::UpstreamError,
                Some(err.class()),
            );
            Dispatched::Done(err.into_response_for(protocol))
        }
    }
}

/// Whether any enabled upstream is configured for `model` (if none is, no retry can succeed).
fn model_is_served(rt: &Runtime, model: &str) -> bool {
    rt.upstreams
        .iter()
        .any(|u| u.config.enabled && crate::routing::balancer::serves(&u.config.models, model))
}

/// Response head for a streamed 2xx: the upstream's allow-listed headers and the protocol's content type.
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
        crate::forward::headers::copy_response_headers(upstream_headers, h, is_sse);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_parameters_are_dropped_and_the_rest_kept() {
        assert_eq!(
            without_credentials("beta=true").as_deref(),
            Some("beta=true")
        );
        assert_eq!(
            without_credentials("key=sk-1&beta=true&API_KEY=x&%74oken=y&a=1").as_deref(),
            Some("beta=true&a=1")
        );
        assert_eq!(without_credentials("apikey=1&access_token=2"), None);
        assert_eq!(without_credentials("keys=1").as_deref(), Some("keys=1"));
    }

    #[test]
    fn model_names_are_bounded_and_printable() {
        assert!(check_model_name("claude-sonnet-4-6").is_ok());
        assert!(check_model_name(&"a".repeat(MAX_MODEL_NAME)).is_ok());
        assert!(check_model_name(&"a".repeat(MAX_MODEL_NAME + 1)).is_err());
        assert!(check_model_name("claude\nINFO forged").is_err());
        assert!(check_model_name("claude\u{1b}[31m").is_err());
        assert!(check_model_name("tab\tname").is_err());
        assert!(check_model_name("claude-é").is_err());
    }
}
