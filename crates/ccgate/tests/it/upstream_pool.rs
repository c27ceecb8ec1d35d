//! The upstream client's keep-alive pool (plain `http://` upstreams): connections are reused, and one the upstream
//! has closed, or asked to close, is never used for the next request.

use crate::common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the scripted upstream treats a connection after each answer.
#[derive(Clone, Copy)]
enum AfterAnswer {
    KeepAlive,
    /// Answers with `Connection: close`, then closes.
    SayClose,
    /// Keeps the connection open for a moment, then closes it without a word (an idle timeout upstream).
    CloseSilently,
}

/// A minimal Anthropic-shaped HTTP/1.1 upstream that counts the connections it accepts.
struct ScriptedUpstream {
    url: String,
    connections: Arc<AtomicUsize>,
}

async fn scripted_upstream(after: AfterAnswer) -> ScriptedUpstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let Some(consumed) = read_request(&mut sock, &mut buf).await else {
                        return;
                    };
                    buf.drain(..consumed);
                    let body = r#"{"id":"msg_pool","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":2}}"#;
                    let close = matches!(after, AfterAnswer::SayClose);
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n",
                        body.len(),
                        if close { "connection: close\r\n" } else { "" }
                    );
                    if sock.write_all(head.as_bytes()).await.is_err()
                        || sock.write_all(body.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    match after {
                        AfterAnswer::KeepAlive => {}
                        AfterAnswer::SayClose => return,
                        AfterAnswer::CloseSilently => {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    ScriptedUpstream { url, connections }
}

/// Reads one request (head and `content-length` body) into `buf`; returns how many bytes it took.
async fn read_request(sock: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Some(end + 4 + len);
            }
        }
        let mut chunk = [0u8; 8192];
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A gateway whose one upstream is `upstream` (health probes off, so only requests open connections).
async fn pool_gateway(upstream: &ScriptedUpstream) -> Gateway {
    Gateway::start(&Files::new(std::slice::from_ref(&upstream.url))).await
}

/// One request, its answer read to the end (as clients do before reusing their connection).
async fn ask(gw: &Gateway) -> u16 {
    let r = post_messages(gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    assert!(body.contains("msg_pool"), "{body}");
    status
}

#[tokio::test]
async fn sequential_requests_share_one_upstream_connection() {
    let up = scripted_upstream(AfterAnswer::KeepAlive).await;
    let gw = pool_gateway(&up).await;
    for _ in 0..50 {
        assert_eq!(ask(&gw).await, 200);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_upstream_that_says_close_gets_a_fresh_connection_each_time() {
    let up = scripted_upstream(AfterAnswer::SayClose).await;
    let gw = pool_gateway(&up).await;
    for _ in 0..5 {
        assert_eq!(ask(&gw).await, 200);
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_not_reused() {
    let up = scripted_upstream(AfterAnswer::CloseSilently).await;
    let gw = pool_gateway(&up).await;
    for _ in 0..5 {
        assert_eq!(ask(&gw).await, 200);
        // Long enough for the upstream to hang up on the idle connection.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(up.connections.load(Ordering::SeqCst), 5);
    let rows = wait_requests(&gw, 5).await;
    assert_eq!(rows["totals"]["requests"], 5, "{rows}");
}
