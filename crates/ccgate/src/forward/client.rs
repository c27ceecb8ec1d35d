//! The upstream HTTP client: pooled keep-alive connections (HTTP/1.1, or HTTP/2 when a TLS upstream offers it),
//! TCP_NODELAY, rustls with the webpki and the system's roots.
//!
//! Direct `http://` upstreams use this thread's own pool ([`super::pool`]); direct `https://` ones use hyper-util's
//! pooled client (HTTP/2 through ALPN). Either way the request's `http::Uri` is parsed once per upstream and cloned
//! per request, and no redirect/retry middleware runs (we never follow redirects, and failover decides retries).
//! Upstreams behind an outbound `proxy` (http, https or socks5) go through reqwest, whose proxy support is proven;
//! all kinds answer with the same [`UpstreamResponse`].

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

/// An upstream answer's body, whichever client produced it.
pub type UpstreamBody = UnsyncBoxBody<Bytes, UpstreamError>;
pub type UpstreamResponse = http::Response<UpstreamBody>;

/// Why an exchange with an upstream failed, worded for people (never with our key or the URL's credentials).
#[derive(Debug, Clone)]
pub struct UpstreamError {
    pub kind: ErrorKind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Body,
    Other,
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UpstreamError {}

impl UpstreamError {
    pub fn is_timeout(&self) -> bool {
        self.kind == ErrorKind::Timeout
    }

    fn new(kind: ErrorKind, root: Option<&(dyn std::error::Error + 'static)>) -> UpstreamError {
        let what = match kind {
            ErrorKind::Connect => "connection failed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Body => "response body broke",
            ErrorKind::Other => "upstream error",
        };
        let message = match root.map(root_cause) {
            Some(r) if !r.is_empty() => format!("{what}: {r}"),
            _ => what.to_string(),
        };
        UpstreamError { kind, message }
    }

    pub(crate) fn message(kind: ErrorKind, message: &str) -> UpstreamError {
        UpstreamError {
            kind,
            message: message.to_string(),
        }
    }

    pub(crate) fn from_io(kind: ErrorKind, e: &std::io::Error) -> UpstreamError {
        UpstreamError::new(kind, Some(e))
    }

    /// A failure of a pooled connection before the response headers.
    pub(crate) fn from_send(e: hyper::Error) -> UpstreamError {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Other
        };
        UpstreamError::new(kind, Some(&e))
    }

    fn from_legacy(e: &hyper_util::client::legacy::Error) -> UpstreamError {
        let kind = if is_timeout(e) {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Connect
        } else {
            ErrorKind::Other
        };
        UpstreamError::new(kind, e.source())
    }

    fn from_body(e: hyper::Error) -> UpstreamError {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else {
            ErrorKind::Body
        };
        UpstreamError::new(kind, Some(&e))
    }

    pub fn from_reqwest(e: &reqwest::Error) -> UpstreamError {
        let kind = if e.is_timeout() {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Connect
        } else if e.is_body() || e.is_decode() {
            ErrorKind::Body
        } else {
            ErrorKind::Other
        };
        UpstreamError::new(kind, e.source())
    }
}

/// The innermost error's text: "Connection refused (os error 111)" rather than "client error (Connect)".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// One connection pool per worker thread: an upstream connection is driven by the thread that opened it, so a
/// request served from the same thread's pool never hands its I/O to another thread. Slot 0 is the control
/// plane's (health checks); slot `i` is worker `i`'s.
#[derive(Clone)]
pub struct UpstreamClient {
    shared: Arc<Shared>,
}

struct Shared {
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
    slots: Box<[std::sync::OnceLock<ClientKind>]>,
}

/// More workers than this share the last slot's pool (still correct, just cross-thread).
const MAX_SLOTS: usize = 65;

thread_local! {
    static WORKER_SLOT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Called once by each worker thread: which pool slot its requests use.
pub fn set_worker_slot(slot: usize) {
    WORKER_SLOT.with(|s| s.set(slot.min(MAX_SLOTS - 1)));
}

#[derive(Clone)]
enum ClientKind {
    Direct(Client<HttpsConnector<HttpConnector>, Full<Bytes>>),
    Proxied(reqwest::Client),
}

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE_PER_HOST: usize = 2048;

impl UpstreamClient {
    pub fn new(connect_timeout: Duration, proxy: Option<&str>) -> Result<UpstreamClient, String> {
        let tls = Arc::new(tls_config()?);
        let slots: Box<[std::sync::OnceLock<ClientKind>]> =
            (0..MAX_SLOTS).map(|_| std::sync::OnceLock::new()).collect();
        // A proxied upstream keeps one reqwest pool (rare, and reqwest spreads its own connections); a direct one
        // gets a pool per worker, created on first use.
        if let Some(p) = proxy {
            let kind = ClientKind::Proxied(
                reqwest::Client::builder()
                    .connect_timeout(connect_timeout)
                    .tcp_nodelay(true)
                    .pool_idle_timeout(POOL_IDLE)
                    .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
                    .redirect(reqwest::redirect::Policy::none())
                    .proxy(reqwest::Proxy::all(p).map_err(|e| format!("proxy: {e}"))?)
                    .build()
                    .map_err(|e| format!("cannot build HTTP client: {e}"))?,
            );
            for slot in slots.iter() {
                let _ = slot.set(kind.clone());
            }
        }
        Ok(UpstreamClient {
            shared: Arc::new(Shared {
                connect_timeout,
                tls,
                slots,
            }),
        })
    }

    fn kind(&self) -> &ClientKind {
        let slot = WORKER_SLOT.with(|s| s.get());
        self.shared.slots[slot].get_or_init(|| {
            ClientKind::Direct(direct_client(
                self.shared.connect_timeout,
                self.shared.tls.clone(),
            ))
        })
    }

    /// Sends one request; resolves when the response headers are in (the body streams afterwards).
    pub async fn send(&self, req: http::Request<Bytes>) -> Result<UpstreamResponse, UpstreamError> {
        match self.kind() {
            ClientKind::Direct(_) if req.uri().scheme() == Some(&http::uri::Scheme::HTTP) => {
                let resp =
                    super::pool::send(req.map(Full::new), self.shared.connect_timeout).await?;
                Ok(decode_if_compressed(resp.map(|b| {
                    b.map_err(UpstreamError::from_body).boxed_unsync()
                })))
            }
            ClientKind::Direct(c) => match c.request(req.map(Full::new)).await {
                Ok(resp) => {
                    Ok(decode_if_compressed(resp.map(|b| {
                        b.map_err(UpstreamError::from_body).boxed_unsync()
                    })))
                }
                Err(e) => Err(UpstreamError::from_legacy(&e)),
            },
            ClientKind::Proxied(c) => {
                let req =
                    reqwest::Request::try_from(req).map_err(|e| UpstreamError::from_reqwest(&e))?;
                match c.execute(req).await {
                    Ok(resp) => Ok(http::Response::from(resp).map(|b| {
                        b.map_err(|e| UpstreamError::from_reqwest(&e))
                            .boxed_unsync()
                    })),
                    Err(e) => Err(UpstreamError::from_reqwest(&e)),
                }
            }
        }
    }
}

fn direct_client(
    connect_timeout: Duration,
    tls: Arc<rustls::ClientConfig>,
) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*tls).clone())
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https)
}

/// Mozilla's roots (webpki-roots) plus whatever the system trusts, so a reseller behind a corporate CA works.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in rustls_native_certs::load_native_certs().certs {
        // A broken system certificate is skipped, not fatal.
        let _ = roots.add(cert);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// We ask upstreams for `identity`; one that compresses anyway is decoded here, so the tee meters plain bytes
/// and the client gets an answer it did not have to negotiate.
fn decode_if_compressed(resp: UpstreamResponse) -> UpstreamResponse {
    use async_compression::tokio::bufread::{BrotliDecoder, GzipDecoder, ZlibDecoder};
    use futures_util::TryStreamExt;
    use tokio::io::AsyncRead;
    let Some(encoding) = resp
        .headers()
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return resp;
    };
    if !matches!(encoding.as_str(), "gzip" | "x-gzip" | "br" | "deflate") {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let reader =
        tokio_util::io::StreamReader::new(body.into_data_stream().map_err(std::io::Error::other));
    let decoder: std::pin::Pin<Box<dyn AsyncRead + Send>> = match encoding.as_str() {
        "br" => Box::pin(BrotliDecoder::new(reader)),
        "deflate" => Box::pin(ZlibDecoder::new(reader)),
        _ => Box::pin(GzipDecoder::new(reader)),
    };
    parts.headers.remove(http::header::CONTENT_ENCODING);
    parts.headers.remove(http::header::CONTENT_LENGTH);
    let frames = tokio_util::io::ReaderStream::new(decoder)
        .map_ok(http_body::Frame::data)
        .map_err(move |e| UpstreamError {
            kind: ErrorKind::Body,
            message: format!("response body broke: cannot decode {encoding}: {e}"),
        });
    http::Response::from_parts(
        parts,
        http_body_util::StreamBody::new(frames).boxed_unsync(),
    )
}

/// The next data chunk of a body (trailers are skipped); `None` at its end.
pub async fn next_chunk(body: &mut UpstreamBody) -> Option<Result<Bytes, UpstreamError>> {
    loop {
        match body.frame().await? {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    return Some(Ok(data));
                }
            }
            Err(e) => return Some(Err(e)),
        }
    }
}
