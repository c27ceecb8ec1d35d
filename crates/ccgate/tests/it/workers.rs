//! The listener: one socket per worker thread on the same port (SO_REUSEPORT), and nobody else let in.

use crate::common::*;
use std::process::Stdio;
use std::time::Duration;

/// Each worker has its own listening socket on the port, so a second CCGate started on that port must still be
/// refused (SO_REUSEPORT would otherwise let it share the port and take half the traffic).
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

/// Many separate connections, spread by the kernel over the workers' sockets, all get answered and metered.
#[tokio::test]
async fn every_connection_is_served_whichever_worker_takes_it() {
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
