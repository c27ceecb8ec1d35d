//! The listener and the router.
//!
//! # Request path
//!
//! ```text
//! listener (one socket, served by tokio's multi-threaded runtime; TCP_NODELAY, header-read timeout, h2c by
//!   peeking, graceful shutdown)
//!   → router (this file; CORS on /anthropic and /openai only; protocol-shaped 404/405; the proxied
//!     endpoints go straight to their handlers when no CORS applies)
//!   → api::proxy, top to bottom:
//!       auth → body (size/time limits, lazy scan) → policy (allow-list, limits, budget reservation)
//!       → routing (affinity, tiers, strategy) → forward (timeouts, failover before the first byte)
//!       → tee (bytes to the client, usage on the side) → ledger (settlement, batched writer)
//! ```
//!
//! Folders follow the same order: `auth/`, `policy/`, `routing/`, `forward/`, `tee/`, `ledger/`.

pub mod cors;

use crate::api::proxy::Endpoint;
use crate::api::{
    admin_session, admin_tenants, admin_upstreams, admin_usage, anthropic, models, openai, probes,
    request_log, responses, tenant_status, usage,
};
use crate::error::{ApiError, Protocol};
use crate::state::Gateway;
use crate::telemetry::request_id::{RequestId, X_REQUEST_ID};
use axum::extract::Request;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use futures_util::future::Either;
use http::{header, Method};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tracing::Instrument;

/// Builds the whole application router.
pub fn router(gw: Arc<Gateway>) -> Router {
    let anthropic = Router::new()
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1/models", get(models::anthropic_list))
        .route("/v1/models/{id}", get(models::anthropic_get));
    let openai = Router::new()
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/chat/completions", post(openai::chat_completions))
        .route(
            "/v1/responses",
            post(responses::responses).get(responses::websocket_refused),
        )
        .route(
            "/responses",
            post(responses::responses).get(responses::websocket_refused),
        )
        .route("/v1/models", get(models::openai_list))
        .route("/models", get(models::openai_list));
    let tenant_api = Router::new()
        .route("/anthropic", get(probes::root).head(probes::root))
        .nest("/anthropic", anthropic)
        .nest("/openai", openai)
        // Set here, inside the CORS layer: a preflight OPTIONS on a POST-only route must pass through cors.rs.
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(gw.clone(), cors::cors));
    Router::new()
        .route("/", get(probes::root).head(probes::root))
        .route("/health", get(probes::health))
        .route("/usage", post(usage::usage))
        .route("/api/admin/login", post(admin_session::login))
        .route("/api/admin/logout", post(admin_session::logout))
        .route("/api/admin/session", get(admin_session::current))
        .route(
            "/api/admin/tenants",
            get(admin_tenants::list).post(admin_tenants::create),
        )
        .route(
            "/api/admin/tenants/{id}",
            axum::routing::patch(admin_tenants::update).delete(admin_tenants::delete),
        )
        .route(
            "/api/admin/tenants/{id}/rotate",
            post(admin_tenants::rotate),
        )
        .route(
            "/api/admin/tenants/{id}/import",
            post(admin_tenants::import),
        )
        .route("/api/tenant/status", get(tenant_status::status))
        .route("/api/admin/upstreams", get(admin_upstreams::list))
        .route(
            "/api/admin/upstreams/{id}",
            axum::routing::patch(admin_upstreams::update),
        )
        // Upstream trust (docs/trust.md).
        .route(
            "/api/admin/upstreams/{id}/scorecard",
            get(crate::api::admin_trust::scorecard),
        )
        .route(
            "/api/admin/upstreams/{id}/trust/clear",
            post(crate::api::admin_trust::clear),
        )
        .route("/api/admin/requests", get(request_log::admin))
        .route("/api/admin/usage", get(admin_usage::admin))
        .route("/api/tenant/usage", get(admin_usage::tenant))
        .route("/api/tenant/requests", get(request_log::tenant))
        .route("/metrics", get(crate::telemetry::metrics::scrape))
        .route("/api/admin/alerts", get(crate::alerts::api::list))
        .merge(tenant_api)
        .merge(crate::dashboard::routes(&gw))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(gw)
}

async fn not_found(req: Request) -> Response {
    let path = req.uri().path().to_string();
    ApiError::NotFound {
        method: req.method().to_string(),
        path: path.clone(),
    }
    .into_response_for(Protocol::of_path(&path))
}

async fn method_not_allowed(req: Request) -> Response {
    let path = req.uri().path().to_string();
    ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: path.clone(),
    }
    .into_response_for(Protocol::of_path(&path))
}

/// The proxied endpoints, when no CORS handling applies, go straight to their handlers: the same functions the
/// router calls, minus a router match and a middleware layer on every model call.
fn proxied_endpoint(req: &Request) -> Option<Endpoint> {
    if req.method() != Method::POST || req.headers().contains_key(header::ORIGIN) {
        return None;
    }
    match req.uri().path() {
        "/anthropic/v1/messages" => Some(Endpoint::Messages),
        "/anthropic/v1/messages/count_tokens" => Some(Endpoint::CountTokens),
        "/openai/v1/chat/completions" | "/openai/chat/completions" => {
            Some(Endpoint::ChatCompletions)
        }
        "/openai/v1/responses" | "/openai/responses" => Some(Endpoint::Responses),
        _ => None,
    }
}

async fn serve_proxied(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    req: Request,
) -> Result<Response, std::convert::Infallible> {
    let state = axum::extract::State(gw);
    Ok(match endpoint {
        Endpoint::Messages => anthropic::messages(state, req).await,
        Endpoint::CountTokens => anthropic::count_tokens(state, req).await,
        Endpoint::ChatCompletions => openai::chat_completions(state, req).await,
        Endpoint::Responses => responses::responses(state, req).await,
    })
}

/// After the grace period, how long cut streams get to deliver their error event.
const CUT_WAIT: Duration = Duration::from_secs(5);

/// How long a client may take to send its request headers before the connection is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP/2 client preface (RFC 9113 §3.4): a connection that opens with it speaks h2c with prior knowledge.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

enum Sniffed {
    Http1,
    Http2,
}

/// Tells HTTP/1 from h2c by peeking at the first bytes, without consuming them.
///
/// Peeking, rather than reading the bytes and replaying them (hyper-util's `auto` builder does that), lets hyper's
/// HTTP/1 reader start on an empty socket: the replayed prefix made its first buffer grow from 8 to 16 KiB on every
/// connection, a third of the heap a held stream costs. Almost every connection is decided by its first byte or two
/// ("POST" differs from "PRI " at the second); a client that stalls inside the preface is given up on after the
/// header-read timeout, like one that stalls inside its request head.
async fn sniff_protocol(stream: &tokio::net::TcpStream) -> Option<Sniffed> {
    let sniff = async {
        let mut buf = [0u8; H2_PREFACE.len()];
        let mut wait = Duration::from_millis(1);
        loop {
            let n = stream.peek(&mut buf).await.ok()?;
            if n == 0 || buf[..n] != H2_PREFACE[..n] {
                // EOF included: hyper's HTTP/1 side closes it quietly.
                return Some(Sniffed::Http1);
            }
            if n == H2_PREFACE.len() {
                return Some(Sniffed::Http2);
            }
            // A strict prefix of the preface so far. The socket stays readable, so wait before peeking again,
            // longer each time: a client that sends "P" and stalls costs a few wake-ups a second, not a
            // thousand, until the timeout drops it.
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(64));
        }
    };
    tokio::time::timeout(HEADER_READ_TIMEOUT, sniff)
        .await
        .ok()
        .flatten()
}

/// The listening socket, with a deep accept queue: a burst of new connections (a client fleet reconnecting after
/// a restart) must not see SYNs dropped at tokio's default backlog of 1,024.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // Lets a restarted gateway bind while the old one's connections sit in TIME_WAIT; it never lets two
    // processes listen on the port at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// Serves until `gw.shutdown` is cancelled, then stops accepting and gives open connections `grace` to finish.
pub async fn serve(listener: TcpListener, gw: Arc<Gateway>) -> std::io::Result<()> {
    let app = router(gw.clone());
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    http2
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(30)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = gw.shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let shutdown = gw.shutdown.clone();
        let gw = gw.clone();
        let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(axum::body::Body::new);
            // The client's address, for the login throttle (`auth::client_ip`).
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            // Every answer carries the request's id, errors included; its log events carry it in their span.
            let id = RequestId::for_request(req.headers());
            let span = tracing::info_span!("request", id = id.shown());
            let header = id.header_value();
            req.extensions_mut().insert(id);
            let answer = match proxied_endpoint(&req) {
                Some(endpoint) => Either::Left(serve_proxied(gw.clone(), endpoint, req)),
                None => Either::Right(app.clone().oneshot(req)),
            };
            async move {
                let mut response = answer.await?;
                if let Some(v) = header {
                    response.headers_mut().insert(X_REQUEST_ID, v);
                }
                Ok::<_, std::convert::Infallible>(response)
            }
            .instrument(span)
        });
        let (http1, http2, watcher) = (http1.clone(), http2.clone(), graceful.watcher());
        tokio::spawn(async move {
            // The watcher is held from here, so a shutdown waits for this connection; one that has not sent its
            // first bytes by then has no request to finish and is closed.
            let sniffed = tokio::select! {
                s = sniff_protocol(&stream) => s,
                _ = shutdown.cancelled() => None,
            };
            let result = match sniffed {
                Some(Sniffed::Http2) => {
                    watcher
                        .watch(http2.serve_connection(TokioIo::new(stream), svc))
                        .await
                }
                Some(Sniffed::Http1) => {
                    watcher
                        .watch(http1.serve_connection(TokioIo::new(stream), svc))
                        .await
                }
                None => return,
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = gw.rt().config.server.shutdown_grace;
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "no longer accepting; waiting for open requests"
    );
    let open = graceful.shutdown();
    tokio::pin!(open);
    if tokio::time::timeout(grace, &mut open).await.is_err() {
        tracing::warn!("grace period over; ending the open streams with an error event");
        gw.cut.cancel();
        // Cut streams end at once (error event, settlement); a client that stopped reading gets a moment more.
        if tokio::time::timeout(CUT_WAIT, &mut open).await.is_err() {
            tracing::warn!("some connections did not finish after the cut; closing them");
        }
    }
    Ok(())
}
