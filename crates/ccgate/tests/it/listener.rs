//! The listener: one socket for HTTP/1 and h2c, and nobody else let in on its port.

use crate::common::*;
use std::process::Stdio;
use std::time::Duration;

/// A second CCGate started on a port in use is refused with a clear message, not let in to share it.
#[tokio::test]
async fn a_second_gateway_on_a_port_in_use_is_refused() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let port = gw.url.rsplit(':').next().unwrap().to_string();
    let config = TempDir::new("second-cfg");
    let data = TempDir::new("second-data");
    Files::new(&[m.url()]).write(&config.0);
    let second = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["serve", "--workers", "2", "--port", &port, "--config-dir"])
        .arg(&config.0)
        .arg("--data-dir")
        .arg(&data.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second gateway should exit at once, not serve")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is the port in use"), "{err}");
    // The first one still answers.
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.status(), 200);
}

/// Many separate connections at once, served by the runtime's workers, all get answered and metered.
#[tokio::test]
async fn many_concurrent_connections_are_all_served() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let url = format!("{}/anthropic/v1/messages", gw.url);
        tasks.push(tokio::spawn(async move {
            // A client of its own: a new connection (and source port) per request.
            let c = reqwest::Client::builder().no_proxy().build().unwrap();
            c.post(url)
                .header("x-api-key", TENANT_KEY)
                .json(&messages_body("claude-sonnet-4-6", true))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert!(t.await.unwrap().contains("message_stop"));
    }
    assert_eq!(m.request_count(), 24);
}

/// The listener tells h2c (prior knowledge) from HTTP/1 by peeking: both are served on the same port, and metered.
#[tokio::test]
async fn h2c_prior_knowledge_and_http1_share_the_port() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let h2 = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .json(&messages_body("claude-sonnet-4-6", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert!(r.text().await.unwrap().contains("message_stop"));
    let r = post_messages(&gw, TENANT_KEY, &messages_body("claude-sonnet-4-6", false)).await;
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.status(), 200);
    assert_eq!(m.request_count(), 2);
}

/// A raw connection to the gateway, for requests that no HTTP client would send that way.
async fn raw_connection(gw: &Gateway) -> tokio::net::TcpStream {
    let s = tokio::net::TcpStream::connect(gw.url.trim_start_matches("http://"))
        .await
        .unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Everything the gateway writes until it closes the connection (the requests end with `connection: close`).
async fn read_until_closed(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// A request head that arrives a byte at a time, starting like the h2 preface ("P"), is still read as HTTP/1.
#[tokio::test]
async fn a_request_trickling_in_byte_by_byte_is_served() {
    use tokio::io::AsyncWriteExt;
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let mut s = raw_connection(&gw).await;
    for b in b"PRI-not-a-preface /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
        .iter()
        .take(3)
    {
        s.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // "PRI" so far is a prefix of the preface; the fourth byte settles it.
    s.write_all(b"-not-a-preface /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let out = read_until_closed(&mut s).await;
    // Not a valid method for any route, but an HTTP/1 answer all the same, not a dropped connection.
    assert!(out.starts_with("HTTP/1.1 "), "{out}");
    let mut s = raw_connection(&gw).await;
    for b in b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" {
        s.write_all(&[*b]).await.unwrap();
    }
    assert!(read_until_closed(&mut s).await.starts_with("HTTP/1.1 200"));
}

/// A request pipelined behind one still in flight, its head split across writes, is read whole and answered
/// after the first, in order.
#[tokio::test]
async fn a_request_pipelined_behind_one_in_flight_is_answered_in_order() {
    use tokio::io::AsyncWriteExt;
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let body = messages_body("claude-sonnet-4-6", false).to_string();
    let first = format!(
        "POST /anthropic/v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {TENANT_KEY}\r\n\
         x-mock-first-byte-delay-ms: 400\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let filler = "a".repeat(1500);
    let second = format!(
        "GET /health HTTP/1.1\r\nhost: x\r\nx-filler: {filler}\r\nconnection: close\r\n\r\n"
    );
    let mut s = raw_connection(&gw).await;
    s.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (a, b) = second.split_at(20);
    s.write_all(a.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(b.as_bytes()).await.unwrap();
    let out = read_until_closed(&mut s).await;
    let first_at = out.find("HTTP/1.1 200").expect("first answer");
    let msg_at = out.find("\"type\":\"message\"").expect("the message");
    let second_at = out[first_at + 1..]
        .find("HTTP/1.1 200")
        .expect("second answer")
        + first_at
        + 1;
    assert!(msg_at < second_at, "{out}");
    assert!(out[second_at..].contains("\"status\""), "{out}");
    assert_eq!(m.request_count(), 1);
}

/// A connection that was opened but has not sent a byte yet does not hold up a shutdown: the gateway stops
/// waiting for its first bytes and exits at once instead of after the grace period.
#[tokio::test]
async fn a_silent_connection_does_not_delay_shutdown() {
    let m = mock().await;
    let mut gw = Gateway::start(&Files::new(&[m.url()])).await;
    let _silent = raw_connection(&gw).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = gw.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?} (the grace period is 30 s)",
        started.elapsed()
    );
}
