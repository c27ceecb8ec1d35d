//! The load generator: N keep-alive HTTP/1.1 connections, one task per connection (the hyper connection is
//! driven inside the same task, so a request costs no cross-task wake-ups), closed loop, fixed duration after a
//! warm-up, latencies in an HDR histogram (nanoseconds, 3 significant digits).
//!
//! A request is an error if the status is not 2xx, the body or stream fails, or the body does not end as
//! expected (for SSE: the last event; every body is read to the end).

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// One kind of request against one address.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// The response body must end with these bytes (after trimming trailing whitespace), if set.
    pub expect_tail: Option<&'static [u8]>,
}

impl Target {
    fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.path.parse().expect("path");
        let h = req.headers_mut();
        for (k, v) in &self.headers {
            h.insert(k.clone(), v.clone());
        }
        req
    }
}

impl Target {
    /// The request in absolute form, as HTTP/2 carries `:scheme` and `:authority`.
    fn request_h2(&self) -> Request<Full<Bytes>> {
        let mut req = self.request();
        *req.uri_mut() = format!("http://{}{}", self.addr, self.path)
            .parse()
            .expect("uri");
        req
    }
}

/// An HTTP/2 connection without TLS (prior knowledge), its driver spawned; the sender is cloned per stream.
async fn connect_h2(addr: SocketAddr) -> Result<http2::SendRequest<Full<Bytes>>, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 120_000_000_000, 3).expect("histogram")
}

/// What one run measured.
pub struct RunStats {
    /// Requests completed inside the measurement window.
    pub requests: u64,
    pub errors: u64,
    pub reconnects: u64,
    pub window: Duration,
    pub latency: Histogram<u64>,
    /// Time to the first body byte (SSE: the first event).
    pub ttfb: Histogram<u64>,
    pub error_samples: Vec<String>,
    pub bytes: u64,
}

impl RunStats {
    fn empty(window: Duration) -> Self {
        RunStats {
            requests: 0,
            errors: 0,
            reconnects: 0,
            window,
            latency: new_hist(),
            ttfb: new_hist(),
            error_samples: Vec::new(),
            bytes: 0,
        }
    }

    fn merge(&mut self, o: RunStats) {
        self.requests += o.requests;
        self.errors += o.errors;
        self.reconnects += o.reconnects;
        self.bytes += o.bytes;
        self.latency.add(&o.latency).expect("hist add");
        self.ttfb.add(&o.ttfb).expect("hist add");
        for s in o.error_samples {
            if self.error_samples.len() < 5 {
                self.error_samples.push(s);
            }
        }
    }

    pub fn rps(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    /// Quantile in microseconds.
    pub fn lat_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn ttfb_us(&self, q: f64) -> f64 {
        self.ttfb.value_at_quantile(q) as f64 / 1000.0
    }
}

enum Outcome {
    Ok {
        ttfb: Duration,
        bytes: u64,
    },
    /// The request failed; `reconnect` if the connection is unusable afterwards.
    Err {
        msg: String,
        reconnect: bool,
    },
}

async fn one_request(
    sender: &mut http1::SendRequest<Full<Bytes>>,
    target: &Target,
    t0: Instant,
) -> Outcome {
    if let Err(e) = sender.ready().await {
        return Outcome::Err {
            msg: format!("connection not ready: {e}"),
            reconnect: true,
        };
    }
    let resp = match sender.send_request(target.request()).await {
        Ok(r) => r,
        Err(e) => {
            return Outcome::Err {
                msg: format!("send: {e}"),
                reconnect: true,
            }
        }
    };
    let status = resp.status();
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut bytes = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    let mut first_chunk: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Ok(data) = f.into_data() {
                    if data.is_empty() {
                        continue;
                    }
                    if ttfb.is_none() {
                        ttfb = Some(t0.elapsed());
                        if !status.is_success() {
                            first_chunk.extend_from_slice(&data[..data.len().min(300)]);
                        }
                    }
                    bytes += data.len() as u64;
                    if target.expect_tail.is_some() {
                        if data.len() >= 64 {
                            tail.clear();
                            tail.extend_from_slice(&data[data.len() - 64..]);
                        } else {
                            tail.extend_from_slice(&data);
                            if tail.len() > 128 {
                                tail.drain(..tail.len() - 64);
                            }
                        }
                    }
                }
            }
            Err(e) => {
                return Outcome::Err {
                    msg: format!("body ({status}): {e}"),
                    reconnect: true,
                }
            }
        }
    }
    if !status.is_success() {
        return Outcome::Err {
            msg: format!("status {status}: {}", String::from_utf8_lossy(&first_chunk)),
            reconnect: false,
        };
    }
    if let Some(expect) = target.expect_tail {
        let end = tail
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if !tail[..end].ends_with(expect) {
            return Outcome::Err {
                msg: format!(
                    "stream ended early: ...{:?}",
                    String::from_utf8_lossy(&tail)
                ),
                reconnect: false,
            };
        }
    }
    if bytes == 0 {
        return Outcome::Err {
            msg: "empty body".into(),
            reconnect: false,
        };
    }
    Outcome::Ok {
        ttfb: ttfb.unwrap_or_default(),
        bytes,
    }
}

async fn connect(
    addr: SocketAddr,
) -> Result<
    (
        http1::SendRequest<Full<Bytes>>,
        http1::Connection<TokioIo<TcpStream>, Full<Bytes>>,
    ),
    String,
> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    http1::Builder::new()
        .max_buf_size(1 << 20)
        .handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))
}

/// One closed-loop connection until `end`. Requests started before `measure_from` are warm-up and not recorded;
/// requests finishing after `end` are not counted.
async fn worker(target: Arc<Target>, measure_from: Instant, end: Instant) -> RunStats {
    let mut st = RunStats::empty(end - measure_from);
    let mut first = true;
    'conn: while Instant::now() < end {
        if !first {
            st.reconnects += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        first = false;
        let (mut sender, conn) = match connect(target.addr).await {
            Ok(x) => x,
            Err(e) => {
                st.errors += 1;
                if st.error_samples.len() < 5 {
                    st.error_samples.push(e);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        tokio::pin!(conn);
        let mut conn_done = false;
        // A request cannot outlive the run by more than a few seconds (bounded).
        let deadline = tokio::time::sleep_until((end + Duration::from_secs(10)).into());
        tokio::pin!(deadline);
        loop {
            let now = Instant::now();
            if now >= end {
                break 'conn;
            }
            let fut = one_request(&mut sender, &target, now);
            tokio::pin!(fut);
            // Drive the connection and the request in the same task. When the connection future ends first (the
            // server closed it after a complete response), the request still resolves from what was read.
            let outcome = loop {
                tokio::select! {
                    biased;
                    o = &mut fut => break o,
                    _ = &mut conn, if !conn_done => conn_done = true,
                    _ = &mut deadline => break Outcome::Err { msg: "request timed out".into(), reconnect: true },
                }
            };
            let t1 = Instant::now();
            match outcome {
                Outcome::Ok { ttfb, bytes } => {
                    if now >= measure_from && t1 <= end {
                        st.requests += 1;
                        st.bytes += bytes;
                        let _ = st.latency.record((t1 - now).as_nanos() as u64);
                        let _ = st.ttfb.record(ttfb.as_nanos() as u64);
                    }
                }
                Outcome::Err { msg, reconnect } => {
                    // A keep-alive connection closed by the server between requests is a reconnect, not an error.
                    let benign = reconnect && msg.starts_with("connection not ready");
                    if !benign {
                        st.errors += 1;
                        if st.error_samples.len() < 5 {
                            st.error_samples.push(msg);
                        }
                    }
                    if reconnect {
                        continue 'conn;
                    }
                }
            }
        }
    }
    st
}

/// Closed-loop run: `conns` connections for `warmup + duration`.
pub async fn run(target: &Target, conns: usize, warmup: Duration, duration: Duration) -> RunStats {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        tasks.push(tokio::spawn(worker(target.clone(), measure_from, end)));
    }
    let mut total = RunStats::empty(duration);
    for t in tasks {
        match t.await {
            Ok(s) => total.merge(s),
            Err(e) => {
                total.errors += 1;
                total.error_samples.push(format!("worker panicked: {e}"));
            }
        }
    }
    total
}

/// Reads a held stream to its end; returns the time to its first body bytes. Counts it in `open` meanwhile.
async fn read_held_stream(
    resp: http::Response<hyper::body::Incoming>,
    target: &Target,
    open: &AtomicUsize,
    peak: &AtomicUsize,
    t0: Instant,
) -> Result<Duration, String> {
    let status = resp.status();
    let now_open = open.fetch_add(1, Ordering::Relaxed) + 1;
    peak.fetch_max(now_open, Ordering::Relaxed);
    let mut body = resp.into_body();
    let mut ttfb = None;
    let mut last = Bytes::new();
    let res = loop {
        match body.frame().await {
            None => break Ok(()),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    if ttfb.is_none() {
                        ttfb = Some(t0.elapsed());
                    }
                    if !d.is_empty() {
                        last = d;
                    }
                }
            }
            Some(Err(e)) => break Err(format!("body: {e}")),
        }
    };
    open.fetch_sub(1, Ordering::Relaxed);
    res?;
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    if let Some(expect) = target.expect_tail {
        let end = last
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(0, |i| i + 1);
        if !last[..end].ends_with(expect) {
            return Err("stream ended early".to_string());
        }
    }
    Ok(ttfb.unwrap_or_default())
}

/// Result of the many-slow-streams test.
pub struct HoldStats {
    pub started: u64,
    pub completed: u64,
    pub errors: u64,
    pub peak_open: usize,
    pub ttfb: Histogram<u64>,
    pub duration: Histogram<u64>,
    pub error_samples: Vec<String>,
    pub wall: Duration,
}

/// `n` clients each holding one (slow) stream open until it ends: each on its own HTTP/1.1 connection, or with
/// `h2_streams_per_conn`, `n / k` HTTP/2 connections carrying `k` streams each. Streams start at `rate` per second.
/// `open` counts streams whose response head arrived and whose body has not ended.
pub async fn hold_streams(
    target: &Target,
    n: usize,
    rate: f64,
    limit: Duration,
    open: Arc<AtomicUsize>,
    h2_streams_per_conn: Option<usize>,
) -> HoldStats {
    let target = Arc::new(target.clone());
    let start = Instant::now();
    let peak = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicU64::new(0));
    let per_conn = h2_streams_per_conn.map(|k| k.max(1));
    let h2_conns: Arc<Vec<tokio::sync::OnceCell<http2::SendRequest<Full<Bytes>>>>> = Arc::new(
        (0..per_conn.map_or(0, |k| n.div_ceil(k)))
            .map(|_| tokio::sync::OnceCell::new())
            .collect(),
    );
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let target = target.clone();
        let open = open.clone();
        let peak = peak.clone();
        let completed = completed.clone();
        let h2_conns = h2_conns.clone();
        let at = start + Duration::from_secs_f64(i as f64 / rate);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(at.into()).await;
            let fut = async {
                if let Some(k) = per_conn {
                    let mut sender = h2_conns[i / k]
                        .get_or_try_init(|| connect_h2(target.addr))
                        .await?
                        .clone();
                    let t0 = Instant::now();
                    sender
                        .ready()
                        .await
                        .map_err(|e| format!("not ready: {e}"))?;
                    let resp = sender
                        .send_request(target.request_h2())
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    let ttfb = read_held_stream(resp, &target, &open, &peak, t0).await?;
                    return Ok((ttfb, t0.elapsed()));
                }
                let (mut sender, conn) = connect(target.addr).await?;
                tokio::pin!(conn);
                let t0 = Instant::now();
                let body_fut = async {
                    sender
                        .ready()
                        .await
                        .map_err(|e| format!("not ready: {e}"))?;
                    let resp = sender
                        .send_request(target.request())
                        .await
                        .map_err(|e| format!("send: {e}"))?;
                    read_held_stream(resp, &target, &open, &peak, t0).await
                };
                tokio::pin!(body_fut);
                let mut conn_done = false;
                loop {
                    tokio::select! {
                        biased;
                        r = &mut body_fut => break r.map(|ttfb| (ttfb, t0.elapsed())),
                        _ = &mut conn, if !conn_done => conn_done = true,
                    }
                }
            };
            let r = match tokio::time::timeout_at((start + limit).into(), fut).await {
                Ok(r) => r,
                Err(_) => Err("timed out".to_string()),
            };
            if r.is_ok() {
                completed.fetch_add(1, Ordering::Relaxed);
            }
            r
        }));
    }
    let mut ttfb = new_hist();
    let mut duration = new_hist();
    let mut errors = 0;
    let mut samples = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok((a, b))) => {
                let _ = ttfb.record(a.as_nanos() as u64);
                let _ = duration.record(b.as_nanos() as u64);
            }
            Ok(Err(e)) => {
                errors += 1;
                if samples.len() < 5 {
                    samples.push(e);
                }
            }
            Err(e) => {
                errors += 1;
                samples.push(format!("panic: {e}"));
            }
        }
    }
    HoldStats {
        started: n as u64,
        completed: completed.load(Ordering::Relaxed),
        errors,
        peak_open: peak.load(Ordering::Relaxed),
        ttfb,
        duration,
        error_samples: samples,
        wall: start.elapsed(),
    }
}
