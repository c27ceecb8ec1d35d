//! `ccgate-hyper-floor --upstream ADDR [--port N] [--workers N]`: the floor of the HTTP stack CCGate is built on.
//!
//! A reverse proxy that is nothing but hyper + tokio, laid out like CCGate's workers (one single-threaded runtime
//! per CPU with its own SO_REUSEPORT listener, TCP_NODELAY on both sides), with one keep-alive upstream connection
//! per client connection, which is cheaper than any pool. Bodies stream through untouched both ways. No auth, no
//! body scan, no header rewriting, no metering, no ledger: what this costs per request, CCGate cannot cost less
//! while it serves HTTP with hyper. `ccgate-bench` measures it as the path `floor`, beside nginx.

use anyhow::{bail, Context, Result};
use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1 as server_http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

struct Args {
    port: u16,
    upstream: SocketAddr,
    workers: usize,
}

fn args() -> Result<Args> {
    let mut port = 0;
    let mut upstream = None;
    let mut workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().context("--port")?,
            "--upstream" => upstream = Some(value.parse().context("--upstream: HOST:PORT")?),
            "--workers" => workers = value.parse().context("--workers")?,
            _ => bail!(
                "unknown option {flag} (options: --upstream HOST:PORT, --port N, --workers N)"
            ),
        }
    }
    Ok(Args {
        port,
        upstream: upstream.context("--upstream HOST:PORT is required")?,
        workers: workers.max(1),
    })
}

fn listener(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    Ok(socket.listen(4096)?.into_std()?)
}

fn main() -> Result<()> {
    let args = args()?;
    // tokio's socket builder needs a reactor even for a listener handed on as a std one.
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let _reactor = setup.enter();
    // The first listener picks the port (when 0); the others share it through SO_REUSEPORT, as CCGate's do.
    let first = listener(SocketAddr::from(([127, 0, 0, 1], args.port)))?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..args.workers {
        listeners.push(listener(addr)?);
    }
    let mut threads = Vec::new();
    for l in listeners {
        let upstream = args.upstream;
        threads.push(std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            tokio::task::LocalSet::new().block_on(&rt, serve(l, upstream))
        }));
    }
    println!("ccgate-hyper-floor listening on http://{addr}");
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

type Upstream = Rc<RefCell<Option<client_http1::SendRequest<Incoming>>>>;

async fn serve(listener: std::net::TcpListener, upstream: SocketAddr) -> Result<()> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let conn: Upstream = Rc::new(RefCell::new(None));
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                forward(conn.clone(), upstream, req)
            });
            let _ = server_http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Sends `req` on this client connection's upstream connection, opening it on first use or after it closed.
async fn forward(
    conn: Upstream,
    upstream: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Incoming>> {
    let idle = conn.borrow_mut().take();
    let mut sender = match idle {
        Some(s) if !s.is_closed() => s,
        _ => {
            let stream = tokio::net::TcpStream::connect(upstream).await?;
            stream.set_nodelay(true)?;
            let (s, connection) = client_http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(connection);
            s
        }
    };
    // HTTP/1 without pipelining: ready once the previous response body has been read to its end.
    sender.ready().await?;
    let resp = sender.send_request(req).await?;
    *conn.borrow_mut() = Some(sender);
    Ok(resp)
}
