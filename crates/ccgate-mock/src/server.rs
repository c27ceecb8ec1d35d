//! Listener, connection handling, routing and the request handler.

use std::convert::Infallible;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::body::{gzip_all, MockBody, SseBody, SseOptions};
use crate::config::{apply_overrides, has_overrides, MockConfig, ToolMode};
use crate::hostile::{self, RepeatBody};
use crate::record::{RecordedRequest, Recorder};
use crate::render::{
    self, error_json, model_json_by_id, models_list_json, text_plan, tool_mode_plan, Prepared,
};

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const SSE: HeaderValue = HeaderValue::from_static("text/event-stream");

const RATELIMIT_HEADERS: &[(&str, &str)] = &[
    ("anthropic-ratelimit-requests-limit", "4000"),
    ("anthropic-ratelimit-requests-remaining", "3999"),
    ("anthropic-ratelimit-requests-reset", "2030-01-01T00:00:00Z"),
    ("anthropic-ratelimit-tokens-limit", "400000"),
    ("anthropic-ratelimit-tokens-remaining", "399000"),
    ("anthropic-ratelimit-input-tokens-limit", "400000"),
    ("anthropic-ratelimit-output-tokens-limit", "80000"),
];

/// A config with everything derived from it precomputed.
pub(crate) struct Active {
    pub cfg: MockConfig,
    /// Default text answer.
    pub prepared: Prepared,
    pub extra_headers: Vec<(HeaderName, HeaderValue)>,
}

impl Active {
    pub fn new(cfg: MockConfig) -> Active {
        let prepared = Prepared::build(&cfg, &text_plan(&cfg, &cfg.text));
        let extra_headers = compile_headers(&cfg).unwrap_or_else(|_| lenient_headers(&cfg));
        Active {
            cfg,
            prepared,
            extra_headers,
        }
    }
}

fn compile_headers(cfg: &MockConfig) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    cfg.extra_headers
        .iter()
        .map(|(k, v)| {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| format!("extra_headers: bad name {k:?}: {e}"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| format!("extra_headers: bad value for {k:?}: {e}"))?;
            Ok((name, value))
        })
        .collect()
}

fn lenient_headers(cfg: &MockConfig) -> Vec<(HeaderName, HeaderValue)> {
    cfg.extra_headers
        .iter()
        .filter_map(|(k, v)| {
            Some((
                HeaderName::from_bytes(k.as_bytes()).ok()?,
                HeaderValue::from_str(v).ok()?,
            ))
        })
        .collect()
}

/// State shared by all connections of one mock server.
pub(crate) struct Shared {
    pub active: ArcSwap<Active>,
    pub recorder: Recorder,
    counter: AtomicU64,
    tool_counter: AtomicU64,
}

impl Shared {
    pub fn new(cfg: MockConfig) -> Shared {
        Shared {
            active: ArcSwap::from_pointee(Active::new(cfg)),
            recorder: Recorder::default(),
            counter: AtomicU64::new(0),
            tool_counter: AtomicU64::new(0),
        }
    }
}

/// Slot holding the listener; emptying it closes the listening socket synchronously.
pub(crate) type ListenerSlot = Arc<Mutex<Option<TcpListener>>>;

/// Bind and spawn the accept loop on the current tokio runtime.
pub(crate) async fn spawn(
    addr: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, ListenerSlot, JoinHandle<()>)> {
    // A deep accept queue, as the gateway's and the benchmark's nginx have: a gateway opening thousands of
    // upstream connections at once must not see SYNs dropped (tokio's `bind` asks for 1,024).
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    let listener = socket.listen(4096)?;
    let local = listener.local_addr()?;
    let slot: ListenerSlot = Arc::new(Mutex::new(Some(listener)));
    let task = tokio::spawn(accept_loop(slot.clone(), shared));
    Ok((local, slot, task))
}

async fn accept_loop(slot: ListenerSlot, shared: Arc<Shared>) {
    // Connection tasks live in the JoinSet: dropping this future (abort) closes them all.
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = poll_fn(|cx| match slot.lock().as_ref() {
                Some(l) => l.poll_accept(cx).map(Some),
                None => Poll::Ready(None),
            }) => r,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        match accepted {
            None => break, // shut down
            Some(Ok((stream, _peer))) => {
                let shared = shared.clone();
                conns.spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let svc = service_fn(move |req| handle(shared.clone(), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
            Some(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::debug!("ccgate-mock accept error: {e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Root,
    Messages,
    CountTokens,
    Models,
    Model,
    AdminRequests,
    AdminConfig,
    BillingSubscription,
    BillingUsage,
    NotFound,
}

fn route(method: &Method, path: &str) -> Route {
    if path.ends_with("/_mock/requests") {
        return Route::AdminRequests;
    }
    if path.ends_with("/_mock/config") {
        return Route::AdminConfig;
    }
    let post = method == Method::POST;
    let get = method == Method::GET;
    let path_t = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    if post && path_t.ends_with("/v1/messages") {
        Route::Messages
    } else if post && path_t.ends_with("/v1/messages/count_tokens") {
        Route::CountTokens
    } else if get && path_t.ends_with("/v1/models") {
        Route::Models
    } else if get && path_t.contains("/v1/models/") {
        Route::Model
    } else if get && path_t.ends_with("/v1/dashboard/billing/subscription") {
        Route::BillingSubscription
    } else if get && path_t.ends_with("/v1/dashboard/billing/usage") {
        Route::BillingUsage
    } else if (get || method == Method::HEAD) && path == "/" {
        Route::Root
    } else {
        Route::NotFound
    }
}

struct Ctx<'a> {
    cfg: &'a MockConfig,
    extra: &'a [(HeaderName, HeaderValue)],
    id: u64,
    /// The request's key, when `echo_key` asks for its placeholders to be filled in.
    key: Option<String>,
}

impl Ctx<'_> {
    fn response(
        &self,
        status: StatusCode,
        ctype: HeaderValue,
        body: MockBody,
    ) -> Response<MockBody> {
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        let sse = ctype == SSE;
        h.insert(CONTENT_TYPE, ctype);
        self.common_headers(h);
        if self.cfg.hostile_headers {
            hostile::add_hostile_headers(h, sse);
        }
        resp
    }

    /// `bytes` with the key placeholders filled in (`echo_key`).
    fn echo(&self, bytes: Bytes) -> Bytes {
        match &self.key {
            Some(k) => hostile::substitute(bytes, k),
            None => bytes,
        }
    }

    fn common_headers(&self, h: &mut HeaderMap) {
        if let Ok(v) = HeaderValue::try_from(format!("req_mock_{}", self.id)) {
            h.insert(HeaderName::from_static("request-id"), v);
        }
        if self.cfg.ratelimit_headers {
            for (k, v) in RATELIMIT_HEADERS {
                h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
            }
        }
        for (k, v) in self.extra {
            let v = if self.key.is_some() {
                HeaderValue::from_maybe_shared(self.echo(Bytes::copy_from_slice(v.as_bytes())))
                    .unwrap_or_else(|_| v.clone())
            } else {
                v.clone()
            };
            h.insert(k.clone(), v);
        }
    }

    /// JSON (or raw) body, gzipped if configured.
    fn body(&self, status: StatusCode, ctype: HeaderValue, body: Bytes) -> Response<MockBody> {
        let body = self.echo(body);
        if self.cfg.gzip {
            let mut r = self.response(status, ctype, MockBody::full(gzip_all(&body)));
            r.headers_mut()
                .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        } else {
            self.response(status, ctype, MockBody::full(body))
        }
    }

    fn json(&self, body: Bytes) -> Response<MockBody> {
        self.body(StatusCode::OK, JSON, body)
    }

    /// Anthropic error answer; `message` wins over the config's `error_message`.
    fn error(&self, status: u16, message: Option<&str>) -> Response<MockBody> {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = match (&self.cfg.error_body, message) {
            (Some(raw), None) => {
                let ctype = if raw.trim_start().starts_with(['{', '[']) {
                    JSON
                } else {
                    HeaderValue::from_static("text/plain; charset=utf-8")
                };
                self.body(code, ctype, Bytes::from(raw.clone()))
            }
            _ => {
                let msg = message.or(self.cfg.error_message.as_deref());
                let body = error_json(status, self.cfg.error_type.as_deref(), msg, self.id);
                self.body(code, JSON, body)
            }
        };
        if let Some(secs) = self.cfg.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }

    /// An error produced by the mock itself (bad input), unaffected by error_* config.
    fn own_error(&self, status: u16, message: &str) -> Response<MockBody> {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        self.response(
            code,
            JSON,
            MockBody::full(error_json(status, None, Some(message), self.id)),
        )
    }
}

fn plain(status: StatusCode, ctype: HeaderValue, body: impl Into<Bytes>) -> Response<MockBody> {
    let mut r = Response::new(MockBody::full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, ctype);
    r
}

fn record(parts: &http::request::Parts, body: &Bytes) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        // Copy: the received buffer may share (and pin) hyper's much larger read buffer.
        body: Bytes::copy_from_slice(body),
    }
}

fn authorized(headers: &HeaderMap, key: &str) -> bool {
    let api_key = headers.get("x-api-key").map(HeaderValue::as_bytes);
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    api_key == Some(key.as_bytes()) || bearer == Some(key)
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                JSON,
                error_json(400, None, Some(&format!("failed to read body: {e}")), 0),
            ))
        }
    };
    let route = route(&parts.method, parts.uri.path());
    match route {
        Route::AdminRequests => return Ok(admin_requests(&shared, &parts.method)),
        Route::AdminConfig => return Ok(admin_config(&shared, &parts.method, &body)),
        _ => {}
    }

    let id = shared.counter.fetch_add(1, Ordering::Relaxed) + 1;
    shared.recorder.count_one();
    let active = shared.active.load_full();
    let overridden;
    let (cfg, extra, is_default): (&MockConfig, &[(HeaderName, HeaderValue)], bool) =
        if has_overrides(&parts.headers) {
            match apply_overrides(&active.cfg, &parts.headers) {
                Ok(c) => {
                    let headers = lenient_headers(&c);
                    overridden = (c, headers);
                    (&overridden.0, &overridden.1, false)
                }
                Err(msg) => {
                    if active.cfg.record {
                        shared.recorder.push(record(&parts, &body));
                    }
                    let ctx = Ctx {
                        cfg: &active.cfg,
                        extra: &active.extra_headers,
                        id,
                        key: None,
                    };
                    return Ok(ctx.own_error(400, &msg));
                }
            }
        } else {
            (&active.cfg, &active.extra_headers, true)
        };
    if cfg.record {
        shared.recorder.push(record(&parts, &body));
    }
    let key = cfg
        .echo_key
        .then(|| hostile::request_key(&parts.headers))
        .flatten();
    let ctx = Ctx {
        cfg,
        extra,
        id,
        key,
    };

    match route {
        Route::Root => {
            return Ok(ctx.response(
                StatusCode::OK,
                HeaderValue::from_static("text/plain"),
                MockBody::empty(),
            ))
        }
        Route::NotFound => {
            let msg = format!("Not found: {} {}", parts.method, parts.uri.path());
            return Ok(ctx.own_error(404, &msg));
        }
        _ => {}
    }

    if let Some(key) = &cfg.require_key {
        if !authorized(&parts.headers, key) {
            return Ok(ctx.own_error(401, "invalid x-api-key"));
        }
    }
    if cfg.first_byte_delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(cfg.first_byte_delay_ms)).await;
    }
    if cfg.hang {
        std::future::pending::<()>().await;
    }
    let status = match route {
        Route::Models | Route::Model => cfg.models_status.unwrap_or(cfg.status),
        _ => cfg.status,
    };
    if status != 200 {
        return Ok(ctx.error(status, None));
    }

    if cfg.burst && route == Route::Messages {
        // Buffer then burst: the time the paced answer would take, spent before anything is sent.
        let events = u64::from(cfg.chunks.max(1)) + 6;
        tokio::time::sleep(Duration::from_millis(cfg.event_delay_ms * events)).await;
    }

    Ok(match route {
        Route::Messages => messages(&shared, &ctx, &active.prepared, is_default, &body),
        Route::BillingSubscription | Route::BillingUsage => match cfg.billing_limit_usd {
            None => ctx.own_error(404, "no billing endpoint"),
            Some(limit) if route == Route::BillingSubscription => ctx.json(Bytes::from(
                serde_json::json!({
                    "object": "billing_subscription", "has_payment_method": true,
                    "soft_limit_usd": limit, "hard_limit_usd": limit, "system_hard_limit_usd": limit,
                    "access_until": 0,
                })
                .to_string(),
            )),
            Some(_) => ctx.json(Bytes::from(
                serde_json::json!({"object": "list", "total_usage": cfg.billing_used_usd * 100.0})
                    .to_string(),
            )),
        },
        Route::CountTokens => {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
                ctx.own_error(400, "Request body is not valid JSON")
            } else {
                let n = (body.len() / 4).max(1);
                ctx.json(Bytes::from(format!("{{\"input_tokens\":{n}}}")))
            }
        }
        Route::Models => ctx.json(models_list_json()),
        Route::Model => {
            let path = parts.uri.path().trim_end_matches('/');
            let id = path.rsplit_once("/v1/models/").map_or("", |(_, id)| id);
            match model_json_by_id(id) {
                Some(b) => ctx.json(b),
                None => ctx.own_error(404, &format!("model: {id}")),
            }
        }
        _ => ctx.own_error(404, "not found"),
    })
}

#[derive(Deserialize)]
struct MessagesRequest<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(borrow, default)]
    tools: Option<&'a RawValue>,
    #[serde(borrow, default)]
    messages: Option<&'a RawValue>,
}

fn messages(
    shared: &Shared,
    ctx: &Ctx<'_>,
    default_prepared: &Prepared,
    is_default: bool,
    body: &Bytes,
) -> Response<MockBody> {
    let req: MessagesRequest<'_> = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return ctx.own_error(400, &format!("Request body is not valid JSON: {e}")),
    };
    let substitute;
    let model: &[u8] = match req.model {
        Some(raw) if !raw.get().starts_with('"') => {
            return ctx.own_error(400, "model: Input should be a valid string")
        }
        _ if ctx.cfg.substitute_model.is_some() => {
            substitute = render::js(ctx.cfg.substitute_model.as_deref().unwrap_or_default());
            substitute.as_bytes()
        }
        None => render::DEFAULT_MODEL_JSON,
        Some(raw) => raw.get().as_bytes(),
    };
    let counted;
    let (cfg, is_default) = if ctx.cfg.realistic_usage {
        counted = counted_usage(ctx.cfg, body, req.messages);
        (&counted, false)
    } else {
        (ctx.cfg, is_default)
    };
    let built;
    let prepared = if is_default && cfg.tool_mode == ToolMode::Off {
        default_prepared
    } else {
        let plan = if cfg.tool_mode == ToolMode::Off {
            text_plan(cfg, &cfg.text)
        } else {
            tool_mode_plan(cfg, req.tools, req.messages, || {
                format!(
                    "toolu_mock_{}",
                    shared.tool_counter.fetch_add(1, Ordering::Relaxed) + 1
                )
            })
        };
        built = Prepared::build(cfg, &plan);
        &built
    };

    let stream = req.stream.unwrap_or(false);
    if cfg.bomb_bytes.is_some() || ((cfg.endless_line || cfg.endless_events) && stream) {
        return hostile_body(ctx, stream, model);
    }
    if !stream {
        return ctx.json(prepared.json_body(ctx.id, model));
    }

    let opts = SseOptions {
        delay: (cfg.event_delay_ms > 0 && !cfg.burst)
            .then(|| Duration::from_millis(cfg.event_delay_ms)),
        ping_every: cfg.ping_every_events.filter(|&n| n > 0),
        fail_after: cfg.fail_after_events,
        break_mode: cfg.break_mode,
        gzip: cfg.gzip,
    };
    let paced = opts.delay.is_some() || opts.ping_every.is_some() || opts.fail_after.is_some();
    let events = if paced {
        prepared.sse_events.clone()
    } else {
        prepared.sse_burst.clone()
    };
    let first = prepared.message_start(ctx.id, model);
    let events = match &cfg.sse_error_message {
        Some(msg) => vec![render::sse_event(
            "error",
            &format!(
                "{{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":{}}}}}",
                render::js(msg)
            ),
        )]
        .into(),
        None => events,
    };
    let mut sse = SseBody::new(first, events, opts);
    if ctx.key.is_some() {
        sse.map_events(|b| ctx.echo(b));
    }
    let mut resp = ctx.response(StatusCode::OK, SSE, MockBody::Sse(Box::new(sse)));
    let h = resp.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if cfg.gzip {
        h.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

/// `realistic_usage`: the config with the input side counted from the request (and the cheats applied).
fn counted_usage(cfg: &MockConfig, body: &[u8], messages: Option<&RawValue>) -> MockConfig {
    let total = (body.len() as u64).div_ceil(4);
    let total = total + total * u64::from(cfg.inflate_input_percent) / 100;
    let turns = messages
        .and_then(|m| serde_json::from_str::<Vec<&RawValue>>(m.get()).ok())
        .map_or(0, |m| m.len());
    let cached = body.windows(15).any(|w| w == b"\"cache_control\"");
    let read = if cached && turns >= 3 && !cfg.ignore_cache_control {
        total * 8 / 10
    } else {
        0
    };
    MockConfig {
        input_tokens: total - read,
        cache_read_input_tokens: read,
        cache_creation_input_tokens: 0,
        cache_5m: None,
        cache_1h: None,
        ..cfg.clone()
    }
}

/// A bomb (`bomb_bytes`) or an endless line (`endless_line`), gzipped when `gzip` is set.
fn hostile_body(ctx: &Ctx<'_>, stream: bool, model: &[u8]) -> Response<MockBody> {
    let cfg = ctx.cfg;
    let model = String::from_utf8_lossy(model);
    let usage = format!(
        "{{\"input_tokens\":{},\"output_tokens\":1}}",
        cfg.input_tokens
    );
    let (prefix, suffix) = if stream {
        let start = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_mock_{}\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":{model},\"stop_reason\":null,\"usage\":{usage}}}}}\n\n\
             event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\n\
             event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"",
            ctx.id
        );
        let end = format!(
            "\"}}}}\n\nevent: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n\
             event: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{}}}}}\n\n\
             event: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n",
            cfg.output_tokens
        );
        (start, end)
    } else {
        let start = format!(
            "{{\"id\":\"msg_mock_{}\",\"type\":\"message\",\"role\":\"assistant\",\"model\":{model},\"content\":[{{\"type\":\"text\",\"text\":\"",
            ctx.id
        );
        let end = format!(
            "\"}}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{usage}}}"
        );
        (start, end)
    };
    let body = if cfg.endless_events && stream {
        // message_start and the opening of a text block (whose delta is closed at once), then pings for ever.
        let start = format!("{prefix}\"}}}}\n\n");
        let ping = b"event: ping\ndata: {\"type\": \"ping\"}\n\n";
        RepeatBody::of_units(start.as_bytes(), ping, None, b"", cfg.gzip)
    } else {
        let fill = if cfg.endless_line && stream {
            None
        } else {
            Some(cfg.bomb_bytes.unwrap_or(0))
        };
        RepeatBody::new(prefix.as_bytes(), fill, suffix.as_bytes(), cfg.gzip)
    };
    let mut resp = ctx.response(
        StatusCode::OK,
        if stream { SSE } else { JSON },
        MockBody::Repeat(Box::new(body)),
    );
    if cfg.gzip {
        resp.headers_mut()
            .insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    resp
}

fn admin_requests(shared: &Shared, method: &Method) -> Response<MockBody> {
    match *method {
        Method::GET => {
            let list = shared.recorder.snapshot();
            let body = serde_json::to_vec(&list).unwrap_or_else(|_| b"[]".to_vec());
            plain(StatusCode::OK, JSON, body)
        }
        Method::DELETE => {
            shared.recorder.clear();
            plain(StatusCode::OK, JSON, &b"{\"ok\":true}"[..])
        }
        _ => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            error_json(
                405,
                Some("invalid_request_error"),
                Some("use GET or DELETE"),
                0,
            ),
        ),
    }
}

fn admin_config(shared: &Shared, method: &Method, body: &Bytes) -> Response<MockBody> {
    match *method {
        Method::GET => {
            let cfg = &shared.active.load().cfg;
            plain(
                StatusCode::OK,
                JSON,
                serde_json::to_vec(cfg).unwrap_or_default(),
            )
        }
        Method::POST | Method::PUT => {
            let cfg: MockConfig = match serde_json::from_slice(body) {
                Ok(c) => c,
                Err(e) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        JSON,
                        error_json(400, None, Some(&format!("invalid MockConfig: {e}")), 0),
                    )
                }
            };
            if let Err(e) = compile_headers(&cfg) {
                return plain(
                    StatusCode::BAD_REQUEST,
                    JSON,
                    error_json(400, None, Some(&e), 0),
                );
            }
            let out = serde_json::to_vec(&cfg).unwrap_or_default();
            shared.active.store(Arc::new(Active::new(cfg)));
            plain(StatusCode::OK, JSON, out)
        }
        _ => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            error_json(
                405,
                Some("invalid_request_error"),
                Some("use GET or POST"),
                0,
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route(&Method::POST, "/v1/messages"), Route::Messages);
        assert_eq!(route(&Method::POST, "/api/v1/messages"), Route::Messages);
        assert_eq!(
            route(&Method::POST, "/a/b/v1/messages/count_tokens"),
            Route::CountTokens
        );
        assert_eq!(route(&Method::GET, "/x/v1/models"), Route::Models);
        assert_eq!(
            route(&Method::GET, "/v1/models/claude-sonnet-4-6"),
            Route::Model
        );
        assert_eq!(route(&Method::HEAD, "/"), Route::Root);
        assert_eq!(route(&Method::GET, "/v1/messages"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/v1/messagesx"), Route::NotFound);
        assert_eq!(route(&Method::GET, "/_mock/requests"), Route::AdminRequests);
    }
}
