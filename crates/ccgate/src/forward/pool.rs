//! Keep-alive HTTP/1.1 connections to plain-`http` upstreams, one pool per thread.
//!
//! Each worker thread runs its own event loop and only ever uses the connections it opened (see
//! `docs/architecture.md`), so its pool needs no lock and no hashing: a short list per upstream address, checked
//! out by popping and given back when a response body has been read to its end. hyper-util's shared pool did the
//! same job with a SipHash-keyed map behind a mutex, a `format!` of the `Host` header and a spawned task per
//! request to return the connection; that was about a tenth of a small request's CPU.
//!
//! TLS upstreams keep hyper-util's client (ALPN may pick HTTP/2, whose connections are shared, not checked out).

use super::client::{ErrorKind, UpstreamError};
use bytes::Bytes;
use http::uri::{Authority, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

type Sender = SendRequest<Full<Bytes>>;

/// How long an idle connection is kept.
pub const POOL_IDLE: Duration = Duration::from_secs(90);
/// Idle connections kept per upstream address and thread; more are closed when they come back.
pub const MAX_IDLE_PER_ADDRESS: usize = 1024;

struct Idle {
    sender: Sender,
    since: Instant,
}

thread_local! {
    /// Idle connections by upstream address. A gateway has a handful of upstreams, so a list beats a map.
    static IDLE: RefCell<Vec<(Authority, Vec<Idle>)>> = const { RefCell::new(Vec::new()) };
}

/// The most recently used live idle connection to `addr`, if any. Expired or closed ones met on the way are
/// dropped.
fn checkout(addr: &Authority) -> Option<Sender> {
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let list = &mut idle.iter_mut().find(|(a, _)| a == addr)?.1;
        while let Some(c) = list.pop() {
            if !c.sender.is_closed() && c.since.elapsed() < POOL_IDLE {
                return Some(c.sender);
            }
        }
        None
    })
}

/// Gives a connection whose response has been read completely back to this thread's pool.
fn give_back(addr: Authority, sender: Sender) {
    if sender.is_closed() {
        return;
    }
    let now = Instant::now();
    IDLE.with(|idle| {
        let mut idle = idle.borrow_mut();
        let pos = match idle.iter().position(|(a, _)| *a == addr) {
            Some(p) => p,
            None => {
                idle.push((addr, Vec::new()));
                idle.len() - 1
            }
        };
        let list = &mut idle[pos].1;
        // The oldest sit at the front: expire them there, so a pool that shrinks after a burst lets go.
        let expired = list
            .iter()
            .take_while(|c| now.duration_since(c.since) >= POOL_IDLE)
            .count();
        list.drain(..expired);
        if list.len() >= MAX_IDLE_PER_ADDRESS {
            list.remove(0);
        }
        list.push(Idle { sender, since: now });
    });
}

/// Sends `req` (an absolute `http://` URI) over a pooled connection, or a new one. A request that a reused
/// connection refused before sending a byte (the upstream had just closed it) is sent again on another one, as
/// hyper-util's client does; any other failure is the caller's to fail over.
pub async fn send(
    mut req: http::Request<Full<Bytes>>,
    connect_timeout: Duration,
) -> Result<http::Response<PooledBody>, UpstreamError> {
    let addr = req
        .uri()
        .authority()
        .cloned()
        .ok_or_else(|| UpstreamError::message(ErrorKind::Other, "upstream URL has no host"))?;
    // Requests built by `UpstreamRt::request_headers` carry `Host` already; this covers any other caller.
    if !req.headers().contains_key(http::header::HOST) {
        if let Some(host) = super::headers::host_header(req.uri()) {
            req.headers_mut().insert(http::header::HOST, host);
        }
    }
    // HTTP/1.1 to an origin server: the request line carries the path only.
    let origin_form = req
        .uri()
        .path_and_query()
        .cloned()
        .map(Uri::from)
        .unwrap_or_else(|| Uri::from_static("/"));
    *req.uri_mut() = origin_form;
    loop {
        let (mut sender, reused) = match checkout(&addr) {
            Some(s) => (s, true),
            None => (connect(&addr, connect_timeout).await?, false),
        };
        if sender.ready().await.is_err() {
            if reused {
                continue;
            }
            return Err(UpstreamError::message(
                ErrorKind::Connect,
                "connection failed: closed before the request could be sent",
            ));
        }
        match sender.try_send_request(req).await {
            Ok(resp) => {
                return Ok(resp.map(|body| PooledBody {
                    body,
                    give_back: Some((addr, sender)),
                }))
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) if reused => req = unsent,
                _ => return Err(UpstreamError::from_send(e.into_error())),
            },
        }
    }
}

/// Opens a connection to `addr` (TCP_NODELAY) and starts its HTTP/1.1 task on this thread's runtime.
async fn connect(addr: &Authority, timeout: Duration) -> Result<Sender, UpstreamError> {
    let port = addr.port_u16().unwrap_or(80);
    // An IPv6 literal comes bracketed in a URI.
    let host = addr.host().trim_start_matches('[').trim_end_matches(']');
    let stream =
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect((host, port))).await {
            Err(_) => {
                return Err(UpstreamError::message(
                    ErrorKind::Timeout,
                    &format!(
                        "connection failed: timed out after {} ms",
                        timeout.as_millis()
                    ),
                ))
            }
            Ok(Err(e)) => return Err(UpstreamError::from_io(ErrorKind::Connect, &e)),
            Ok(Ok(s)) => s,
        };
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(UpstreamError::from_send)?;
    tokio::spawn(async move {
        // Ends when the upstream or we close the connection; the error, if any, reached the request already.
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response body that gives its connection back to the pool once it has been read to the end. Dropped
/// earlier, it takes the connection with it (hyper closes a connection whose response was not read).
pub struct PooledBody {
    body: Incoming,
    give_back: Option<(Authority, Sender)>,
}

impl PooledBody {
    fn finished(&mut self) {
        if let Some((addr, sender)) = self.give_back.take() {
            give_back(addr, sender);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        match &frame {
            None => this.finished(),
            Some(Ok(_)) if this.body.is_end_stream() => this.finished(),
            // A broken body leaves a connection that cannot be reused.
            Some(Err(_)) => this.give_back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
