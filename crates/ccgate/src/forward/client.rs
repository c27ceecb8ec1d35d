//! The upstream HTTP client: one reqwest client per upstream, built at config load.
//!
//! Keep-alive pooling, HTTP/2 by ALPN on `https://`, rustls with Mozilla's roots plus the system's (plus the
//! upstream's `caFile`), the upstream's outbound `proxy`, and decoding of gzip, brotli and deflate answers all come
//! from reqwest. What it must not do is act on its own: redirects are never followed (a 3xx is an upstream failure,
//! see [`super::forward`]) and nothing is retried (failover decides where a request goes next).

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use std::time::Duration;

/// An upstream answer's body (already decoded if the upstream compressed it).
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

    pub fn from_reqwest(e: reqwest::Error) -> UpstreamError {
        let kind = if e.is_timeout() || chain_has_timeout(&e) {
            ErrorKind::Timeout
        } else if e.is_connect() {
            ErrorKind::Connect
        } else if e.is_body() || e.is_decode() {
            ErrorKind::Body
        } else {
            ErrorKind::Other
        };
        let what = match kind {
            ErrorKind::Connect => "connection failed",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Body if e.is_decode() => "response body could not be decoded",
            ErrorKind::Body => "response body broke",
            ErrorKind::Other => "upstream error",
        };
        let root = root_cause(e);
        let message = if root.is_empty() {
            what.to_string()
        } else {
            format!("{what}: {root}")
        };
        UpstreamError { kind, message }
    }
}

/// The innermost cause's text ("Connection refused (os error 111)", "invalid peer certificate: UnknownIssuer"),
/// which names no URL; reqwest's own text carries the request URL, and so any credentials in it, unless it is
/// taken without it.
fn root_cause(e: reqwest::Error) -> String {
    use std::error::Error as _;
    let Some(mut cur) = e.source() else {
        return e.without_url().to_string();
    };
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn chain_has_timeout(e: &reqwest::Error) -> bool {
    use std::error::Error as _;
    let mut cur = e.source();
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

/// Why an upstream's client could not be built (reported at config load, with the upstream's id).
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error("proxy: {0}")]
    Proxy(String),
    #[error("caFile {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Build(String),
}

/// An upstream's transport settings: what its client is built from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub proxy: Option<String>,
    pub ca_file: Option<crate::config::CaFile>,
}

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
const POOL_MAX_IDLE_PER_HOST: usize = 2048;

/// One upstream's HTTP client; cloning shares its connection pool.
#[derive(Clone)]
pub struct UpstreamClient {
    http: reqwest::Client,
}

impl UpstreamClient {
    pub fn new(settings: &ClientSettings) -> Result<UpstreamClient, ClientBuildError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .tcp_nodelay(true)
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST);
        builder = match &settings.proxy {
            Some(p) => builder
                .proxy(reqwest::Proxy::all(p).map_err(|e| ClientBuildError::Proxy(root_cause(e)))?),
            // HTTP(S)_PROXY in the environment must not silently reroute a direct upstream.
            None => builder.no_proxy(),
        };
        if let Some(ca) = &settings.ca_file {
            let certs = reqwest::Certificate::from_pem_bundle(&ca.pem).map_err(|e| {
                ClientBuildError::CaFile {
                    path: ca.path.display().to_string(),
                    reason: e.to_string(),
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| match &settings.ca_file {
            // The roots are only parsed here: a PEM block that is not a certificate fails the build.
            Some(ca) => ClientBuildError::CaFile {
                path: ca.path.display().to_string(),
                reason: root_cause(e),
            },
            None => ClientBuildError::Build(root_cause(e)),
        })?;
        Ok(UpstreamClient { http })
    }

    /// Sends one request; resolves when the response headers are in (the body streams afterwards).
    pub async fn send(
        &self,
        method: http::Method,
        url: reqwest::Url,
        headers: http::HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, UpstreamError> {
        let mut req = reqwest::Request::new(method, url);
        *req.headers_mut() = headers;
        if !body.is_empty() {
            *req.body_mut() = Some(body.into());
        }
        let resp = self
            .http
            .execute(req)
            .await
            .map_err(UpstreamError::from_reqwest)?;
        Ok(http::Response::from(resp)
            .map(|body| body.map_err(UpstreamError::from_reqwest).boxed_unsync()))
    }
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
