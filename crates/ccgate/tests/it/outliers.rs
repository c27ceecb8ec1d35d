//! Health signals that used to come too late or not at all: requests waiting on an upstream that hangs move to
//! another one as soon as its probe fails (instead of waiting out the 120 s first-byte timeout), and an upstream
//! whose error rate is high (streams broken mid-way, which a success in between used to forgive) is ejected.

use crate::common::*;
use ccgate_mock::{MockConfig, MockHandle};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

fn ok_cfg(i: usize) -> MockConfig {
    MockConfig {
        text: format!("served-by-{i}"),
        ..Default::default()
    }
}

fn posts(m: &MockHandle) -> usize {
    m.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/v1/messages"))
        .count()
}

fn up<'a>(health: &'a Value, id: &str) -> &'a Value {
    health["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {health}"))
}

async fn send(c: &reqwest::Client, gw: &Gateway, stream: bool) -> (u16, String) {
    let r = c
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("claude-sonnet-4-6", stream))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (
        status,
        r.text()
            .await
            .unwrap_or_else(|e| format!("BODY ERROR: {e}")),
    )
}

/// Issue "Hardening" 11: one of two upstreams accepts connections and never answers. Requests already waiting on
/// it must move to the other one as soon as its probe marks it unhealthy, not after the 120 s first-byte timeout.
#[tokio::test]
async fn requests_waiting_on_a_hung_upstream_move_when_its_probe_fails() {
    // The mocks get their own runtime, so the test's own work cannot delay their answers (or their hanging).
    let ms = [
        ccgate_mock::start_background(ok_cfg(0)).unwrap(),
        ccgate_mock::start_background(ok_cfg(1)).unwrap(),
    ];
    let mut f = Files::new(&[ms[0].url(), ms[1].url()]);
    f.upstreams["loadBalancer"]["healthCheckEnabled"] = json!(true);
    f.upstreams["loadBalancer"]["strategy"] = json!("round_robin");
    // Probes every 300 ms. Their timeout (1 s) gives the requests time to reach the hung upstream before it is
    // marked unhealthy, so that the test sees them waiting there and moving.
    for i in 0..2 {
        f.upstreams["upstreams"][i]["healthCheck"] =
            json!({"enabled": true, "interval": 300, "timeout": 1000});
    }
    let gw = Gateway::start(&f).await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(send(&c, &gw, false).await.0, 200);
    }
    let before = posts(&ms[0]);
    ms[0].set_config(MockConfig {
        hang: true,
        ..ok_cfg(0)
    });
    let start = Instant::now();
    let n = 50;
    let requests = futures_util::future::join_all((0..n).map(|i| {
        let c = c.clone();
        let gw = &gw;
        async move {
            let (status, body) = send(&c, gw, i % 2 == 0).await;
            (status, body, start.elapsed())
        }
    }));
    // One client for the polling: building one per call (common::health) costs the test thread milliseconds.
    let admin = client();
    let watch_health = async {
        loop {
            let h: Value = admin
                .get(format!("{}/health", gw.url))
                .basic_auth("admin", Some(ADMIN_PASSWORD))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if up(&h, "up1")["status"] == "unhealthy" {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (results, unhealthy_at) = tokio::join!(requests, watch_health);
    let stuck = posts(&ms[0]) - before;
    let moved = gw.logs().matches("moving the request").count();
    let mut latencies: Vec<Duration> = results.iter().map(|r| r.2).collect();
    latencies.sort();
    let slowest = latencies[n - 1];
    println!(
        "hung upstream: {n} requests, {stuck} reached the hung upstream, {moved} moved; marked unhealthy \
         {} ms after the hang began; slowest request {} ms, median {} ms, fastest {} ms; slowest minus mark {} ms",
        unhealthy_at.as_millis(),
        slowest.as_millis(),
        latencies[n / 2].as_millis(),
        latencies[0].as_millis(),
        slowest.saturating_sub(unhealthy_at).as_millis(),
    );
    for (status, body, _) in &results {
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains("served-by-1"), "{body}");
    }
    assert!(stuck >= 10, "requests waited on the hung upstream: {stuck}");
    assert_eq!(moved, stuck, "each request that waited there moved");
    assert!(
        slowest < unhealthy_at + Duration::from_secs(2),
        "a request waited {slowest:?}, the upstream was marked unhealthy at {unhealthy_at:?}"
    );
}

/// The same without health probes: when requests to the hung upstream time out and put it in a cooldown, the
/// requests still waiting on it move at once instead of each waiting out its own first-byte timeout.
#[tokio::test]
async fn requests_waiting_on_an_upstream_that_enters_a_cooldown_move() {
    let ms = [
        ccgate_mock::start_background(ok_cfg(0)).unwrap(),
        ccgate_mock::start_background(ok_cfg(1)).unwrap(),
    ];
    let mut f = Files::new(&[ms[0].url(), ms[1].url()]);
    f.upstreams["loadBalancer"]["strategy"] = json!("round_robin");
    let first_byte = Duration::from_millis(3000);
    f.upstreams["upstreams"][0]["timeouts"] = json!({"firstByte": first_byte.as_millis() as u64});
    let gw = Gateway::start(&f).await;
    let c = client();
    for _ in 0..2 {
        assert_eq!(send(&c, &gw, false).await.0, 200);
    }
    ms[0].set_config(MockConfig {
        hang: true,
        ..ok_cfg(0)
    });
    let start = Instant::now();
    let batch = |n: usize, delay: Duration| {
        let c = c.clone();
        let gw = &gw;
        futures_util::future::join_all((0..n).map(move |_| {
            let c = c.clone();
            async move {
                tokio::time::sleep(delay).await;
                let (status, body) = send(&c, gw, false).await;
                (status, body, start.elapsed())
            }
        }))
    };
    // The first wave's three requests to the hung upstream time out at ~3 s: three failures in a row start a
    // cooldown. The second wave's, sent at 1.5 s, would wait until ~4.5 s.
    let second_at = Duration::from_millis(1500);
    let (first, second) = tokio::join!(batch(6, Duration::ZERO), batch(20, second_at));
    let slowest = second.iter().map(|r| r.2).max().unwrap();
    println!(
        "cooldown: first wave done at {} ms; second wave (sent at {} ms) done at {} ms; without the move it \
         would wait until ~{} ms",
        first.iter().map(|r| r.2).max().unwrap().as_millis(),
        second_at.as_millis(),
        slowest.as_millis(),
        (second_at + first_byte).as_millis()
    );
    for (status, body, _) in first.iter().chain(&second) {
        assert_eq!(*status, 200, "{body}");
        assert!(body.contains("served-by-1"), "{body}");
    }
    assert!(
        slowest < second_at + first_byte - Duration::from_millis(800),
        "the second wave waited until {slowest:?}"
    );
    assert_eq!(up(&health(&gw).await, "up1")["status"], "cooling_down");
}

/// With nowhere else to go, a request waiting on an upstream that turns unhealthy keeps waiting (a late answer
/// beats none) instead of failing at once.
#[tokio::test]
async fn with_no_other_upstream_a_waiting_request_keeps_waiting() {
    let m = mock_with(ok_cfg(0)).await;
    let mut f = Files::new(&[m.url()]);
    f.upstreams["loadBalancer"]["healthCheckEnabled"] = json!(true);
    f.upstreams["upstreams"][0]["healthCheck"] =
        json!({"enabled": true, "interval": 300, "timeout": 300});
    let gw = Gateway::start(&f).await;
    let c = client();
    // The probe fails (models endpoint 500) while the request itself is answered after 1.5 s.
    m.set_config(MockConfig {
        models_status: Some(500),
        first_byte_delay_ms: 1500,
        ..ok_cfg(0)
    });
    let (status, body) = send(&c, &gw, false).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(up(&health(&gw).await, "up1")["status"], "unhealthy");
}

/// Issue "Hardening" 18: an upstream that breaks its streams mid-way was never taken out of rotation, because
/// the success of each stream's headers reset its failure count. Its error rate over the last minute ejects it;
/// `/health` shows the ejection and the rate.
#[tokio::test]
async fn an_upstream_that_breaks_streams_is_ejected_and_shown_in_health() {
    let breaking = mock_with(MockConfig {
        fail_after_events: Some(3),
        ..ok_cfg(0)
    })
    .await;
    let fine = mock_with(ok_cfg(1)).await;
    let gw = Gateway::start(&Files::new(&[breaking.url(), fine.url()])).await;
    let c = client();
    let mut broken = 0;
    for _ in 0..50 {
        let (status, body) = send(&c, &gw, true).await;
        assert_eq!(status, 200);
        broken += usize::from(!body.contains("message_stop"));
    }
    let h = health(&gw).await;
    let u = up(&h, "up1");
    println!("ejection: {broken} of 50 streams broken before it; /health: {u}");
    assert_eq!(u["status"], "ejected", "{h}");
    assert_eq!(
        u["consecutive_failures"].as_u64(),
        Some(1),
        "successes reset the old counter: {u}"
    );
    assert!(u["error_rate_percent"].as_u64().unwrap() >= 25, "{u}");
    assert!(u["ejected_until"].is_string(), "{u}");
    assert_eq!(u["traffic_share_percent"], 0);
    assert_eq!(h["status"], "degraded");
    assert!(
        (20..=25).contains(&broken),
        "ejected after 20 attempts: {broken} broken"
    );
    let before = posts(&breaking);
    for _ in 0..20 {
        let (status, body) = send(&c, &gw, true).await;
        assert_eq!(status, 200);
        assert!(
            body.contains("served-by-1") && body.contains("message_stop"),
            "{body}"
        );
    }
    assert_eq!(posts(&breaking), before, "an ejected upstream got traffic");
    assert!(gw.logs().contains("upstream ejected"));
}

/// An ejection is soft: when the ejected upstream is the only one, it still serves.
#[tokio::test]
async fn an_ejected_upstream_still_serves_when_it_is_the_only_one() {
    let breaking = mock_with(MockConfig {
        fail_after_events: Some(3),
        ..ok_cfg(0)
    })
    .await;
    let gw = Gateway::start(&Files::new(&[breaking.url()])).await;
    let c = client();
    for _ in 0..20 {
        send(&c, &gw, true).await;
    }
    assert_eq!(up(&health(&gw).await, "up1")["status"], "ejected");
    let (status, body) = send(&c, &gw, false).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("served-by-0"), "{body}");
}
