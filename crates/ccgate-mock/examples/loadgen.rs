//! Minimal keep-alive HTTP/1.1 load generator for sanity-checking the mock's throughput.
//!
//! `cargo run --release -p ccgate-mock --example loadgen -- [ADDR] [CONNS] [SECONDS] [stream]`
//! Without ADDR (or with `-`), starts an in-process mock with `chunks: 20, record: false`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn complete(buf: &[u8]) -> bool {
    let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let body = &buf[head_end + 4..];
    if let Some(cl) = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        return body.len() >= cl;
    }
    body.ends_with(b"0\r\n\r\n")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut _mock = None;
    let addr = match args.first().map(String::as_str) {
        None | Some("-") => {
            let m = ccgate_mock::start(ccgate_mock::MockConfig {
                chunks: 20,
                record: false,
                ..Default::default()
            })
            .await
            .unwrap();
            let a = m.addr.to_string();
            _mock = Some(m);
            a
        }
        Some(a) => a.to_string(),
    };
    let conns: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(32);
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let stream = args.get(3).is_some_and(|s| s == "stream");
    let body = format!(
        "{{\"model\":\"claude-sonnet-4-6\",\"max_tokens\":64,\"stream\":{stream},\"messages\":[{{\"role\":\"user\",\"content\":\"hello there\"}}]}}"
    );
    let req = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\nx-api-key: k\r\nanthropic-version: 2023-06-01\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (addr, req) = (addr.clone(), req.clone());
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&addr).await.unwrap();
            s.set_nodelay(true).unwrap();
            let mut buf = Vec::with_capacity(16384);
            let mut tmp = [0u8; 16384];
            let mut n = 0u64;
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let t = Instant::now();
                s.write_all(req.as_bytes()).await.unwrap();
                buf.clear();
                loop {
                    let r = s.read(&mut tmp).await.unwrap();
                    assert!(r > 0, "connection closed");
                    buf.extend_from_slice(&tmp[..r]);
                    if complete(&buf) {
                        break;
                    }
                }
                lat.push(t.elapsed());
                n += 1;
            }
            (n, lat)
        }));
    }
    let mut total = 0;
    let mut lat = Vec::new();
    for t in tasks {
        let (n, l) = t.await.unwrap();
        total += n;
        lat.extend(l);
    }
    lat.sort();
    let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    println!(
        "{} requests in {secs}s = {:.0} req/s; p50 {:?} p99 {:?} (conns {conns}, stream {stream})",
        total,
        total as f64 / secs as f64,
        p(0.5),
        p(0.99)
    );
}
