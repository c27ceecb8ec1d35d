//! The floor of the HTTP stack CCGate is built on: a reverse proxy that is nothing but hyper + tokio, laid out like
//! CCGate's workers (one single-threaded runtime per CPU, SO_REUSEPORT listener each, TCP_NODELAY on both sides),
//! with one keep-alive upstream connection per client connection (cheaper than any pool). No auth, no body
//! scan, no metering, no ledger: whatever this costs per request, CCGate cannot cost less while using hyper.
//!
//!   cargo run --release -p ccgate-bench --example bare_proxy -- LISTEN_PORT UPSTREAM_PORT [WORKERS]
//!
//! Used by `bench/floor.sh` to compare nginx, this floor and CCGate in one run.

use hyper::body::Incoming;
use hyper::client::conn::http1 as client_http1;
use hyper::server::conn::http1 as server_http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let listen: u16 = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(3100);
    let upstream: u16 = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(3200);
    let workers: usize = args
        .get(3)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let listen = SocketAddr::from(([127, 0, 0, 1], listen));
    let upstream = SocketAddr::from(([127, 0, 0, 1], upstream));
    let mut threads = Vec::new();
    for _ in 0..workers {
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, serve(listen, upstream))
        }));
    }
    eprintln!("listening on {listen}");
    for t in threads {
        t.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
    }
    Ok(())
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<()> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(listen)?;
    let listener = socket.listen(4096)?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::task::spawn_local(async move {
            // One upstream connection per client connection, opened on the first request.
            let sender: Rc<RefCell<Option<client_http1::SendRequest<Incoming>>>> =
                Rc::new(RefCell::new(None));
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let sender = sender.clone();
                async move {
                    let taken = sender.borrow_mut().take();
                    let mut s = match taken {
                        Some(s) if !s.is_closed() => s,
                        _ => {
                            let up = tokio::net::TcpStream::connect(upstream).await?;
                            up.set_nodelay(true)?;
                            let (s, conn) = client_http1::handshake(TokioIo::new(up)).await?;
                            tokio::task::spawn_local(conn);
                            s
                        }
                    };
                    s.ready().await?;
                    let resp = s.send_request(req).await?;
                    *sender.borrow_mut() = Some(s);
                    Ok::<Response<Incoming>, anyhow::Error>(resp)
                }
            });
            let _ = server_http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}
