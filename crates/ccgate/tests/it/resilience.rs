//! Resilience and routing: failover before the first byte, passive cooldowns, active health checks, session
//! affinity, priority tiers, per-upstream options and timeouts, mid-stream failures, `/health` and
//! `ccgate health`.
//!
//! Each mock answers with its own text (`served-by-N`), so a response tells which upstream produced it even when
//! failover touched several.

use crate::common::*;
use base64::Engine;
use ccgate_mock::{MockConfig, MockHandle};
use futures_util::StreamExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const SONNET: &str = "claude-sonnet-4-6";
const HAIKU: &str = "claude-haiku-4-5";

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

/// The healthy behaviour of mock `i`: answers "served-by-i".
pub(crate) fn ok_cfg(i: usize) -> MockConfig {
    MockConfig {
        text: format!("served-by-{i}"),
        ..Default::default()
    }
}

pub(crate) async fn mocks(n: usize) -> Vec<MockHandle> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(mock_with(ok_cfg(i)).await);
    }
    v
}

pub(crate) fn files_for(ms: &[MockHandle]) -> Files {
    Files::new(&ms.iter().map(|m| m.url()).collect::<Vec<_>>())
}

/// Merges `patch` into upstream `i` of `files`.
fn patch_up(files: &mut Files, i: usize, patch: Value) {
    let u = &mut files.upstreams["upstreams"][i];
    for (k, v) in patch.as_object().unwrap() {
        u[k] = v.clone();
    }
}

/// Merges `patch` into `loadBalancer`.
fn patch_lb(files: &mut Files, patch: Value) {
    let lb = &mut files.upstreams["loadBalancer"];
    for (k, v) in patch.as_object().unwrap() {
        lb[k] = v.clone();
    }
}

/// `POST …/v1/messages` requests a mock received (health probes excluded).
fn posts(m: &MockHandle) -> usize {
    m.requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/v1/messages"))
        .count()
}

/// Which mock produced this answer text (`served-by-N`).
pub(crate) fn who(text: &str) -> Option<usize> {
    let at = text.find("served-by-")? + "served-by-".len();
    text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect::<String>()
        .parse()
        .ok()
}

fn up<'a>(health: &'a Value, id: &str) -> &'a Value {
    health["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .unwrap_or_else(|| panic!("no {id} in {health}"))
}

/// Seconds from now until the upstream's `cooldown_until` (negative: in the past; None: not cooling).
fn cooldown_secs(u: &Value) -> Option<f64> {
    let s = u["cooldown_until"].as_str()?;
    let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
    Some((t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0)
}

/// `(event name, data)` of every SSE event in `text`.
fn sse_events(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let mut name = String::new();
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                name = n.to_string();
            } else if let Some(d) = line.strip_prefix("data: ") {
                data.push_str(d);
            }
        }
        if !name.is_empty() || !data.is_empty() {
            out.push((
                name,
                serde_json::from_str(&data).unwrap_or(Value::String(data)),
            ));
        }
    }
    out
}

/// One `/anthropic` request with extra headers; returns status and full body text.
pub(crate) async fn send(gw: &Gateway, body: &Value, headers: &[(&str, &str)]) -> (u16, String) {
    let mut rb = client()
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("anthropic-version", "2023-06-01");
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.json(body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.text().await.unwrap())
}

async fn send_sonnet(gw: &Gateway) -> (u16, String) {
    send(gw, &messages_body(SONNET, false), &[]).await
}

/// `n` requests, `conc` at a time, alternating JSON and SSE. Returns `(status, body or transport error)`.
async fn load(gw: &Gateway, n: usize, conc: usize) -> Vec<(usize, u16, String)> {
    let c = client();
    let url = format!("{}/anthropic/v1/messages", gw.url);
    futures_util::stream::iter(0..n)
        .map(|i| {
            let c = c.clone();
            let url = url.clone();
            async move {
                let r = c
                    .post(url)
                    .header("x-api-key", TENANT_KEY)
                    .header("anthropic-version", "2023-06-01")
                    .json(&messages_body(SONNET, i % 2 == 1))
                    .send()
                    .await;
                match r {
                    Ok(r) => {
                        let s = r.status().as_u16();
                        (
                            i,
                            s,
                            r.text()
                                .await
                                .unwrap_or_else(|e| format!("BODY ERROR: {e}")),
                        )
                    }
                    Err(e) => (i, 0, format!("SEND ERROR: {e}")),
                }
            }
        })
        .buffer_unordered(conc)
        .collect()
        .await
}

/// Every answer is a complete 200 (JSON with content, or SSE ending in message_stop without an error event).
fn assert_all_ok(results: &[(usize, u16, String)]) {
    let bad: Vec<_> = results
        .iter()
        .filter(|(i, s, t)| {
            *s != 200
                || who(t).is_none()
                || (i % 2 == 1
                    && (!t.contains("event: message_stop") || t.contains("event: error")))
        })
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} requests failed for the client: {:?}",
        bad.len(),
        results.len(),
        &bad[..bad.len().min(3)]
    );
}

/// Sends until mock `target` has received `n` more POSTs (at most `max` requests); every answer must be a 200.
async fn send_until_hit(gw: &Gateway, target: &MockHandle, max: usize) {
    let before = target.request_count();
    for _ in 0..max {
        let (s, t) = send_sonnet(gw).await;
        assert_eq!(s, 200, "{t}");
        if target.request_count() > before {
            return;
        }
    }
    panic!("the target upstream got no request in {max} tries");
}

// ---------------------------------------------------------------------------------------------------------------
// Failover under load, cooldowns
// ---------------------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Breakage {
    Refused,
    Overloaded,
    RateLimited,
}

/// 3 upstreams, one breaks, 60 requests 20 at a time: no client sees a failure, the broken upstream is tried only
/// until it cools down, and a second wave does not touch it at all.
async fn failing_upstream_under_load(kind: Breakage) {
    let ms = mocks(3).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    assert_all_ok(&load(&gw, 6, 1).await);
    for m in &ms {
        assert_eq!(posts(m), 2, "warm-up is round robin");
        m.clear_requests();
    }
    match kind {
        Breakage::Refused => ms[0].shutdown(),
        Breakage::Overloaded => ms[0].set_config(MockConfig {
            status: 529,
            ..ok_cfg(0)
        }),
        Breakage::RateLimited => ms[0].set_config(MockConfig {
            status: 429,
            retry_after: Some(30),
            ..ok_cfg(0)
        }),
    }
    let started = Instant::now();
    let results = load(&gw, 60, 20).await;
    let took = started.elapsed();
    assert_all_ok(&results);
    let h = health(&gw).await;
    let u1 = up(&h, "up1");
    let tries = u1["failures_total"].as_u64().unwrap();
    if !matches!(kind, Breakage::Refused) {
        assert_eq!(
            ms[0].request_count(),
            tries,
            "every request the broken upstream saw is a recorded failure"
        );
    }
    eprintln!("{kind:?}: broken upstream tried {tries} times out of 60 ({took:?}); {u1}");
    // Without a cooldown it would get its fair share, 20 (more with retries); it may only see the first concurrent
    // wave (20 requests over 3 upstreams before the first failures are recorded: ~7).
    assert!(
        (1..=12).contains(&tries),
        "{kind:?}: broken upstream tried {tries} times"
    );
    assert_eq!(
        posts(&ms[1]) + posts(&ms[2]),
        60,
        "the healthy two served everything"
    );
    assert_eq!(u1["status"], "cooling_down", "{u1}");
    let err = u1["last_error"].as_str().unwrap();
    match kind {
        Breakage::Refused => assert!(err.contains("connection"), "{err}"),
        Breakage::Overloaded => assert!(err.contains("529"), "{err}"),
        Breakage::RateLimited => assert!(err.contains("429"), "{err}"),
    }
    // The cooldown holds: a second wave never touches it.
    assert_all_ok(&load(&gw, 60, 20).await);
    let again = up(&health(&gw).await, "up1")["failures_total"]
        .as_u64()
        .unwrap();
    assert_eq!(again, tries, "{kind:?}: a cooling upstream was tried again");
    assert!(!health_text(&gw).await.contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn load_with_refusing_upstream_has_no_client_failures() {
    failing_upstream_under_load(Breakage::Refused).await;
}

#[tokio::test]
async fn load_with_overloaded_upstream_has_no_client_failures() {
    failing_upstream_under_load(Breakage::Overloaded).await;
}

#[tokio::test]
async fn load_with_rate_limited_upstream_has_no_client_failures() {
    failing_upstream_under_load(Breakage::RateLimited).await;
}

#[tokio::test]
async fn retry_after_cools_for_that_long_then_the_upstream_rejoins() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    ms[0].set_config(MockConfig {
        status: 429,
        retry_after: Some(1),
        ..ok_cfg(0)
    });
    send_until_hit(&gw, &ms[0], 3).await;
    let t0 = Instant::now();
    ms[0].set_config(ok_cfg(0));
    let h = health(&gw).await;
    let u1 = up(&h, "up1");
    assert_eq!(u1["status"], "cooling_down", "{u1}");
    let left = cooldown_secs(u1).unwrap();
    assert!(
        (0.5..=1.05).contains(&left),
        "cooldown should end ~1 s after the 429, ends in {left} s"
    );
    assert!(u1["last_error"].as_str().unwrap().contains("429"), "{u1}");
    // Skipped while cooling, used again as soon as it ends.
    let before = posts(&ms[0]);
    let back_at = loop {
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 200, "{t}");
        if posts(&ms[0]) > before {
            break t0.elapsed();
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "up1 never came back");
        tokio::time::sleep(Duration::from_millis(40)).await;
    };
    eprintln!("up1 back after {back_at:?}");
    assert!(
        back_at >= Duration::from_millis(850),
        "used again after only {back_at:?} of a 1 s retry-after"
    );
    assert!(
        back_at <= Duration::from_millis(1600),
        "rejoined only after {back_at:?}"
    );
    let h = health(&gw).await;
    assert_eq!(up(&h, "up1")["status"], "healthy");
    assert_eq!(up(&h, "up1")["consecutive_failures"], 0);
}

#[tokio::test]
async fn ratelimit_reset_headers_set_the_cooldown() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    let reset = (chrono::Utc::now() + chrono::Duration::seconds(20)).to_rfc3339();
    let extra = [
        (
            "anthropic-ratelimit-tokens-remaining".to_string(),
            "0".to_string(),
        ),
        ("anthropic-ratelimit-tokens-reset".to_string(), reset),
        // Not exhausted: its (earlier) reset must not matter.
        (
            "anthropic-ratelimit-requests-remaining".to_string(),
            "10".to_string(),
        ),
        (
            "anthropic-ratelimit-requests-reset".to_string(),
            (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339(),
        ),
    ];
    ms[0].set_config(MockConfig {
        status: 429,
        ratelimit_headers: false,
        extra_headers: extra.into_iter().collect(),
        ..ok_cfg(0)
    });
    send_until_hit(&gw, &ms[0], 3).await;
    let h = health(&gw).await;
    let left = cooldown_secs(up(&h, "up1")).expect("cooling");
    assert!(
        (17.0..=20.5).contains(&left),
        "cooldown should follow the exhausted limit's reset (~20 s), is {left} s"
    );
}

#[tokio::test]
async fn repeated_connect_failures_back_off_exponentially() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    m.shutdown();
    let mut cooldowns = Vec::new();
    for _ in 0..5 {
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 502, "{t}");
        assert!(!t.contains(UPSTREAM_KEY));
        cooldowns.push(cooldown_secs(up(&health(&gw).await, "up1")));
    }
    eprintln!("cooldowns after each failure: {cooldowns:?}");
    assert_eq!(cooldowns[0], None, "one failure does not cool");
    assert_eq!(cooldowns[1], None, "two failures do not cool");
    let c = |i: usize| cooldowns[i].unwrap();
    assert!(
        (4.0..=5.05).contains(&c(2)),
        "third failure: base cooldown 5 s, got {}",
        c(2)
    );
    assert!(
        (9.0..=10.05).contains(&c(3)),
        "fourth failure: doubled, got {}",
        c(3)
    );
    assert!(
        (19.0..=20.05).contains(&c(4)),
        "fifth failure: doubled again, got {}",
        c(4)
    );
}

#[tokio::test]
async fn long_context_429_and_a_single_529_do_not_cool_the_upstream() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    ms[0].set_config(MockConfig {
        status: 429,
        error_message: Some("Extra usage is required for long context requests.".into()),
        ..ok_cfg(0)
    });
    for _ in 0..4 {
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(who(&t), Some(1));
    }
    // Cooled, it would have been tried once; every request may start with it.
    assert!(
        ms[0].request_count() >= 3,
        "long-context 429 cooled the upstream: tried {} times",
        ms[0].request_count()
    );
    let h = health(&gw).await;
    assert_eq!(up(&h, "up1")["status"], "healthy", "{h}");
    assert_eq!(up(&h, "up1")["consecutive_failures"], 0, "{h}");
    // Every upstream needs extra usage: the tenant gets the 429 itself, with its wording.
    ms[1].set_config(ms[0].config());
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 429, "{t}");
    assert!(t.contains("long context"), "{t}");

    // A single 529 (even with a long retry-after) must not condemn the upstream.
    for retry_after in [None, Some(120)] {
        ms[0].set_config(MockConfig {
            status: 529,
            retry_after,
            ..ok_cfg(0)
        });
        ms[1].set_config(ok_cfg(1));
        ms[0].clear_requests();
        send_until_hit(&gw, &ms[0], 3).await;
        ms[0].set_config(ok_cfg(0));
        let h = health(&gw).await;
        let u1 = up(&h, "up1");
        assert_eq!(
            u1["status"], "healthy",
            "one 529 (retry-after {retry_after:?}) cooled the upstream: {u1}"
        );
        assert_eq!(u1["consecutive_failures"], 1, "{u1}");
        let mut served_by_up1 = false;
        for _ in 0..3 {
            let (s, t) = send_sonnet(&gw).await;
            assert_eq!(s, 200);
            served_by_up1 |= who(&t) == Some(0);
        }
        assert!(
            served_by_up1,
            "up1 not used right after a single 529 (retry-after {retry_after:?})"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Attempts, tenant errors, final errors
// ---------------------------------------------------------------------------------------------------------------

fn total_posts(ms: &[MockHandle]) -> usize {
    ms.iter().map(posts).sum()
}

#[tokio::test]
async fn max_attempts_bounds_tries_and_never_repeats_an_upstream() {
    for (max_attempts, expected) in [(Some(2), 2), (None, 3), (Some(5), 3), (Some(1), 1)] {
        let ms = mocks(3).await;
        for (i, m) in ms.iter().enumerate() {
            m.set_config(MockConfig {
                status: 529,
                ..ok_cfg(i)
            });
        }
        let mut f = files_for(&ms);
        if let Some(n) = max_attempts {
            patch_lb(&mut f, json!({"maxAttempts": n}));
        }
        let gw = Gateway::start(&f).await;
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 529, "{t}");
        assert_eq!(total_posts(&ms), expected, "maxAttempts {max_attempts:?}");
        assert!(
            ms.iter().all(|m| posts(m) <= 1),
            "an upstream was tried twice by one request"
        );
    }
}

/// "maxAttempts … capped by healthy upstreams": a retry must not go to an upstream that is cooling down (or failed
/// its health check). Only a request that has no healthy candidate at all may fall back to a cooling one.
#[tokio::test]
async fn retries_never_go_to_a_cooling_upstream() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    ms[0].set_config(MockConfig {
        status: 429,
        retry_after: Some(30),
        ..ok_cfg(0)
    });
    send_until_hit(&gw, &ms[0], 3).await;
    assert_eq!(up(&health(&gw).await, "up1")["status"], "cooling_down");
    assert_eq!(ms[0].request_count(), 1);
    // The only healthy upstream fails: its answer is final, the cooling one is left alone.
    ms[1].set_config(MockConfig {
        status: 529,
        ..ok_cfg(1)
    });
    for _ in 0..2 {
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 529, "the healthy upstream's 529 is the answer: {t}");
        assert_eq!(
            ms[0].request_count(),
            1,
            "a retry went to the cooling upstream"
        );
    }
    // up2 now cools too (third 529 in a row): nothing healthy is left, so a fresh request may try the cooling
    // upstream whose cooldown ends first rather than refuse outright.
    let (s, _) = send_sonnet(&gw).await;
    assert_eq!(s, 529);
    assert_eq!(up(&health(&gw).await, "up2")["status"], "cooling_down");
    let before = ms[0].request_count() + ms[1].request_count();
    send_sonnet(&gw).await;
    assert_eq!(
        ms[0].request_count() + ms[1].request_count(),
        before + 1,
        "one try when everything is cooling"
    );
}

#[tokio::test]
async fn failover_disabled_means_one_try() {
    let ms = mocks(3).await;
    let mut f = files_for(&ms);
    patch_lb(&mut f, json!({"failoverEnabled": false}));
    let gw = Gateway::start(&f).await;
    for (i, m) in ms.iter().enumerate() {
        m.set_config(MockConfig {
            status: 503,
            ..ok_cfg(i)
        });
    }
    for n in 1..=3 {
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 503, "{t}");
        assert_eq!(total_posts(&ms), n);
    }
    // Refused connection, no failover: 502 straight away.
    ms[0].shutdown();
    ms[1].set_config(ok_cfg(1));
    ms[2].set_config(ok_cfg(2));
    let mut saw_502 = false;
    for _ in 0..3 {
        let (s, t) = send_sonnet(&gw).await;
        assert!(s == 200 || s == 502, "{s} {t}");
        saw_502 |= s == 502;
    }
    assert!(
        saw_502,
        "with failover off, the refusing upstream's failure reaches the client"
    );
}

#[tokio::test]
async fn tenant_errors_are_never_retried() {
    let ms = mocks(3).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    for status in ["400", "404", "413", "422"] {
        let before = total_posts(&ms);
        let (s, t) = send(
            &gw,
            &messages_body(SONNET, false),
            &[("x-mock-status", status)],
        )
        .await;
        assert_eq!(s.to_string(), status, "{t}");
        assert_eq!(
            total_posts(&ms) - before,
            1,
            "HTTP {status} was retried elsewhere"
        );
    }
    let h = health(&gw).await;
    for id in ["up1", "up2", "up3"] {
        assert_eq!(
            up(&h, id)["consecutive_failures"],
            0,
            "tenant errors say nothing about upstream health: {h}"
        );
    }
}

#[tokio::test]
async fn upstream_401_fails_over_and_all_rejected_is_502() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    ms[0].set_config(MockConfig {
        require_key: Some("another-key".into()),
        ..ok_cfg(0)
    });
    send_until_hit(&gw, &ms[0], 3).await;
    let h = health(&gw).await;
    assert_eq!(
        up(&h, "up1")["status"],
        "cooling_down",
        "a rejected key cools the upstream: {h}"
    );
    ms[1].set_config(MockConfig {
        require_key: Some("another-key".into()),
        ..ok_cfg(1)
    });
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 502, "{t}");
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["type"], "api_error");
    assert!(
        !t.contains(UPSTREAM_KEY) && !t.contains("another-key"),
        "{t}"
    );
}

#[tokio::test]
async fn all_failing_answers_in_each_protocols_shape_without_secrets() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    // Credentials in the URL too: they must not show up in a connection error.
    for (i, m) in ms.iter().enumerate() {
        patch_up(
            &mut f,
            i,
            json!({"url": format!("http://user:url-password-{i}@{}", m.addr)}),
        );
    }
    let gw = Gateway::start(&f).await;
    for (i, m) in ms.iter().enumerate() {
        m.set_config(MockConfig {
            status: 529,
            ..ok_cfg(i)
        });
    }
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 529, "{t}");
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(!t.contains(UPSTREAM_KEY));
    // The URL's credentials reach the upstream as HTTP basic auth (and not in the request line).
    for (i, m) in ms.iter().enumerate() {
        let req = m.last_request().expect("both upstreams tried");
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("user:url-password-{i}"))
        );
        assert_eq!(req.header("authorization"), Some(expected.as_str()));
    }

    let r = post_openai(
        &gw,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 503);
    let t = r.text().await.unwrap();
    let v: Value = serde_json::from_str(&t).unwrap();
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(!t.contains(UPSTREAM_KEY));

    for m in &ms {
        m.shutdown();
    }
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 502, "{t}");
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["type"], "api_error", "{v}");
    let r = post_openai(
        &gw,
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(r.status(), 502);
    let t2 = r.text().await.unwrap();
    for text in [&t, &t2] {
        assert!(
            !text.contains(UPSTREAM_KEY) && !text.contains("url-password"),
            "secret in {text}"
        );
    }
}

#[tokio::test]
async fn upstream_error_echoing_our_key_does_not_reach_the_tenant() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    for (i, m) in ms.iter().enumerate() {
        m.set_config(MockConfig {
            status: 529,
            error_message: Some(format!("overloaded (key {UPSTREAM_KEY})")),
            ..ok_cfg(i)
        });
    }
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 529);
    assert!(
        !t.contains(UPSTREAM_KEY),
        "upstream key leaked to the tenant: {t}"
    );
    // /health redacts it already.
    assert!(!health_text(&gw).await.contains(UPSTREAM_KEY));
}

// ---------------------------------------------------------------------------------------------------------------
// Mid-stream failures and timeouts
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn mid_stream_break_ends_with_an_error_event_and_is_metered() {
    let ms = mocks(2).await;
    for (i, m) in ms.iter().enumerate() {
        m.set_config(MockConfig {
            chunks: 6,
            fail_after_events: Some(4),
            ..ok_cfg(i)
        });
    }
    let gw = Gateway::start(&files_for(&ms)).await;
    let (s, t) = send(&gw, &messages_body(SONNET, true), &[]).await;
    assert_eq!(s, 200);
    let ev = sse_events(&t);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"), "{t}");
    assert_eq!(names.last(), Some(&"error"), "{t}");
    assert!(!names.contains(&"message_stop"), "{t}");
    assert_eq!(ev.last().unwrap().1["error"]["type"], "api_error", "{t}");
    assert!(t.ends_with("\n\n"), "the stream ends on an event boundary");
    assert_eq!(total_posts(&ms), 1, "bytes reached the client: no retry");
    let u = wait_requests(&gw, 1).await;
    assert_eq!(
        u["totals"]["input_tokens"], 25,
        "usage so far is metered: {u}"
    );

    // OpenAI: an error chunk, then a clean end.
    let r = post_openai(&gw, &json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(r.status(), 200);
    let t = r.text().await.expect("clean end of the body");
    eprintln!("openai stream after a break:\n{t}");
    let data: Vec<&str> = t
        .split("\n\n")
        .filter_map(|b| b.trim().strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .collect();
    let last: Value = serde_json::from_str(data.last().expect("some chunks")).unwrap();
    assert!(
        last["error"]["message"].is_string(),
        "the last chunk is an error: {t}"
    );
    assert!(data.len() >= 2, "content before the error: {t}");
    let u = wait_requests(&gw, 2).await;
    assert_eq!(u["totals"]["input_tokens"], 50, "{u}");
}

#[tokio::test]
async fn slow_headers_trip_first_byte_and_fail_over() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    for i in 0..2 {
        patch_up(&mut f, i, json!({"timeouts": {"firstByte": 300}}));
    }
    let gw = Gateway::start(&f).await;
    ms[0].set_config(MockConfig {
        first_byte_delay_ms: 2000,
        ..ok_cfg(0)
    });
    for _ in 0..2 {
        let started = Instant::now();
        let (s, t) = send_sonnet(&gw).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(who(&t), Some(1));
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "{:?}",
            started.elapsed()
        );
    }
    assert!(ms[0].request_count() >= 1);
    let h = health(&gw).await;
    let err = up(&h, "up1")["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("300 ms"), "{err}");
    // Both slow: a timeout in Anthropic's shape, after one firstByte per upstream.
    ms[1].set_config(MockConfig {
        first_byte_delay_ms: 2000,
        ..ok_cfg(1)
    });
    let started = Instant::now();
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 504, "{t}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let v: Value = serde_json::from_str(&t).unwrap();
    assert_eq!(v["error"]["type"], "timeout_error");
}

#[tokio::test]
async fn stalled_stream_trips_idle_and_ends_with_an_error_event() {
    let m = mock_with(MockConfig {
        chunks: 3,
        event_delay_ms: 3000,
        ..ok_cfg(0)
    })
    .await;
    let mut f = Files::new(&[m.url()]);
    patch_up(&mut f, 0, json!({"timeouts": {"idle": 300}}));
    let gw = Gateway::start(&f).await;
    let started = Instant::now();
    let r = post_messages(&gw, TENANT_KEY, &messages_body(SONNET, true)).await;
    assert_eq!(r.status(), 200);
    let t = r.text().await.expect("clean end");
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(2000),
        "idle 300 ms should end the stream long before the 3 s event: {took:?}"
    );
    let ev = sse_events(&t);
    assert_eq!(
        ev.first().map(|e| e.0.as_str()),
        Some("message_start"),
        "{t}"
    );
    assert_eq!(ev.last().map(|e| e.0.as_str()), Some("error"), "{t}");
    eprintln!("idle error event: {}", ev.last().unwrap().1);
    assert_eq!(m.request_count(), 1);
}

#[tokio::test]
async fn idle_timeout_message_states_the_real_idle_time() {
    let m = mock_with(MockConfig {
        chunks: 3,
        event_delay_ms: 3000,
        ..ok_cfg(0)
    })
    .await;
    let mut f = Files::new(&[m.url()]);
    patch_up(&mut f, 0, json!({"timeouts": {"idle": 300}}));
    let gw = Gateway::start(&f).await;
    let (_, t) = send(&gw, &messages_body(SONNET, true), &[]).await;
    let ev = sse_events(&t);
    let msg = ev.last().unwrap().1["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(msg.contains("no data"), "{msg}");
    assert!(
        !msg.contains(" 0 s"),
        "the message claims a 0 s idle deadline: {msg}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Session affinity
// ---------------------------------------------------------------------------------------------------------------

pub(crate) async fn send_session(gw: &Gateway, session: &str) -> usize {
    let (s, t) = send(
        gw,
        &messages_body(SONNET, false),
        &[("x-claude-code-session-id", session)],
    )
    .await;
    assert_eq!(s, 200, "{t}");
    who(&t).unwrap()
}

#[tokio::test]
async fn sessions_stick_and_two_gateways_agree() {
    let ms = mocks(3).await;
    let f = files_for(&ms);
    let gw1 = Gateway::start(&f).await;
    let gw2 = Gateway::start(&f).await;
    let mut used = std::collections::BTreeSet::new();
    for s in 0..12 {
        let session = format!("session-{s}-{}", s * 7919);
        let first = send_session(&gw1, &session).await;
        used.insert(first);
        for k in 0..5 {
            let gw = if k % 2 == 0 { &gw2 } else { &gw1 };
            assert_eq!(
                send_session(gw, &session).await,
                first,
                "session {session} moved (request {k})"
            );
        }
        // The same id from metadata.user_id (a JSON string) is the same session.
        let uid = json!({"device_id": "d", "account_uuid": "a", "session_id": session}).to_string();
        let mut body = messages_body(SONNET, false);
        body["metadata"] = json!({"user_id": uid});
        for gw in [&gw1, &gw2] {
            let (st, t) = send(gw, &body, &[]).await;
            assert_eq!(st, 200);
            assert_eq!(
                who(&t),
                Some(first),
                "metadata.user_id session {session} went elsewhere"
            );
        }
    }
    assert!(used.len() >= 2, "12 sessions all on one upstream: {used:?}");
    // OpenAI `user` is a session key too; both gateways agree on it.
    for user in ["alice", "bob", "carol", "dave"] {
        let body = json!({"model": "gpt-4o", "user": user, "messages": [{"role": "user", "content": "hi"}]});
        let mut seen = std::collections::BTreeSet::new();
        for gw in [&gw1, &gw2, &gw1, &gw2] {
            let r = post_openai(gw, &body).await;
            assert_eq!(r.status(), 200);
            seen.insert(who(&r.text().await.unwrap()).unwrap());
        }
        assert_eq!(seen.len(), 1, "user {user} spread over {seen:?}");
    }
}

/// The issue: "on failure the session moves and stays on its new upstream". Weighted rendezvous alone would send
/// it back as soon as the old upstream is healthy again; the session pins (`routing/pins.rs`) keep it where it
/// moved, in this process.
#[tokio::test]
async fn a_session_moves_when_its_upstream_fails_and_stays_there() {
    let ms = mocks(3).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    let sessions: Vec<String> = (0..12).map(|s| format!("sticky-{s}")).collect();
    let mut home = Vec::new();
    for s in &sessions {
        home.push(send_session(&gw, s).await);
    }
    let k = home[0];
    let on_k: Vec<usize> = (0..sessions.len()).filter(|&i| home[i] == k).collect();
    assert!(
        on_k.len() >= 2,
        "need two sessions on upstream {k}: {home:?}"
    );
    let (moved, stayed) = (on_k[0], on_k[1]);
    // Upstream k goes down for ~1 s.
    ms[k].set_config(MockConfig {
        status: 429,
        retry_after: Some(1),
        ..ok_cfg(k)
    });
    let new_home = send_session(&gw, &sessions[moved]).await;
    assert_ne!(new_home, k);
    for _ in 0..4 {
        assert_eq!(
            send_session(&gw, &sessions[moved]).await,
            new_home,
            "the moved session must stay put"
        );
    }
    assert_eq!(
        ms[k].request_count() as usize,
        on_k.len() + 1,
        "cooling upstream not tried again"
    );
    // k recovers.
    ms[k].set_config(ok_cfg(k));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        up(&health(&gw).await, &format!("up{}", k + 1))["status"],
        "healthy"
    );
    for _ in 0..3 {
        assert_eq!(
            send_session(&gw, &sessions[moved]).await,
            new_home,
            "moved session went back after recovery"
        );
    }
    // Sessions that never had to move are still on k.
    assert_eq!(send_session(&gw, &sessions[stayed]).await, k);
    // Sessions elsewhere were never disturbed.
    for (i, s) in sessions.iter().enumerate() {
        if home[i] != k {
            assert_eq!(send_session(&gw, s).await, home[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Priority tiers, active health checks
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn priority_tier_falls_back_and_returns_with_active_checks() {
    let ms = mocks(3).await;
    let mut f = files_for(&ms);
    patch_lb(&mut f, json!({"healthCheckEnabled": true}));
    for (i, prio) in [(0, 0), (1, 1), (2, 1)] {
        patch_up(
            &mut f,
            i,
            json!({"priority": prio, "healthCheck": {"enabled": true, "interval": 300, "timeout": 300}}),
        );
    }
    let gw = Gateway::start(&f).await;
    for _ in 0..4 {
        assert_eq!(
            who(&send_sonnet(&gw).await.1),
            Some(0),
            "the preferred tier serves everything"
        );
    }
    ms[0].set_config(MockConfig {
        models_status: Some(500),
        ..ok_cfg(0)
    });
    eventually(10, || async {
        (up(&health(&gw).await, "up1")["status"] == "unhealthy").then_some(())
    })
    .await;
    let before = posts(&ms[0]);
    let mut counts = [0; 3];
    for _ in 0..6 {
        counts[who(&send_sonnet(&gw).await.1).unwrap()] += 1;
    }
    assert_eq!(posts(&ms[0]), before, "an unhealthy upstream was tried");
    assert_eq!(counts, [0, 3, 3], "the fallback tier shares the load");
    ms[0].set_config(ok_cfg(0));
    eventually(10, || async {
        (up(&health(&gw).await, "up1")["status"] == "healthy").then_some(())
    })
    .await;
    for _ in 0..4 {
        assert_eq!(
            who(&send_sonnet(&gw).await.1),
            Some(0),
            "back to the preferred tier"
        );
    }
}

#[tokio::test]
async fn priority_tier_falls_back_during_a_cooldown() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    patch_up(&mut f, 1, json!({"priority": 5}));
    let gw = Gateway::start(&f).await;
    assert_eq!(who(&send_sonnet(&gw).await.1), Some(0));
    ms[0].set_config(MockConfig {
        status: 429,
        retry_after: Some(1),
        ..ok_cfg(0)
    });
    assert_eq!(who(&send_sonnet(&gw).await.1), Some(1));
    ms[0].set_config(ok_cfg(0));
    assert_eq!(
        who(&send_sonnet(&gw).await.1),
        Some(1),
        "cooling: the lower tier serves"
    );
    // A session that had to move to the lower tier is pinned there, yet returns once the better tier is back.
    let session = [("x-claude-code-session-id", "tiered-session")];
    let (_, t) = send(&gw, &messages_body(SONNET, false), &session).await;
    assert_eq!(who(&t), Some(1));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        who(&send_sonnet(&gw).await.1),
        Some(0),
        "recovered: back to the better tier"
    );
    let (_, t) = send(&gw, &messages_body(SONNET, false), &session).await;
    assert_eq!(
        who(&t),
        Some(0),
        "a session pinned to a worse tier returns to the better one"
    );
}

#[tokio::test]
async fn active_check_respects_the_path_prefix_and_moves_upstreams_in_and_out() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    patch_lb(&mut f, json!({"healthCheckEnabled": true}));
    patch_up(
        &mut f,
        0,
        json!({"url": format!("{}/api", ms[0].url()), "healthCheck": {"interval": 300, "timeout": 300}}),
    );
    patch_up(&mut f, 1, json!({"healthCheck": {"enabled": false}}));
    let gw = Gateway::start(&f).await;
    let probe = eventually(10, || async {
        ms[0].requests().into_iter().find(|r| r.method == "GET")
    })
    .await;
    assert_eq!(probe.path, "/api/v1/models");
    assert_eq!(probe.header("x-api-key"), Some(UPSTREAM_KEY));
    assert!(
        ms[1].requests().iter().all(|r| r.method != "GET"),
        "probes are per upstream"
    );
    // Traffic uses the prefix too.
    send_until_hit(&gw, &ms[0], 3).await;
    assert!(ms[0]
        .requests()
        .iter()
        .any(|r| r.method == "POST" && r.path == "/api/v1/messages"));

    ms[0].set_config(MockConfig {
        models_status: Some(500),
        ..ok_cfg(0)
    });
    let h = eventually(10, || async {
        let h = health(&gw).await;
        (up(&h, "up1")["status"] == "unhealthy").then_some(h)
    })
    .await;
    assert_eq!(h["status"], "degraded");
    assert!(
        up(&h, "up1")["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{h}"
    );
    let before = posts(&ms[0]);
    for _ in 0..4 {
        assert_eq!(who(&send_sonnet(&gw).await.1), Some(1));
    }
    assert_eq!(posts(&ms[0]), before, "unhealthy upstream skipped");

    ms[0].set_config(ok_cfg(0));
    eventually(10, || async {
        (up(&health(&gw).await, "up1")["status"] == "healthy").then_some(())
    })
    .await;
    send_until_hit(&gw, &ms[0], 3).await;
    assert_eq!(health(&gw).await["status"], "ok");
}

// ---------------------------------------------------------------------------------------------------------------
// Per-upstream options
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn models_filter_and_model_map() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    patch_up(&mut f, 0, json!({"models": ["*haiku*"]}));
    patch_up(
        &mut f,
        1,
        json!({"models": ["claude-sonnet-*"], "modelMap": {SONNET: "vendor/sonnet-x"}}),
    );
    let gw = Gateway::start(&f).await;
    for stream in [false, true, false, true] {
        let (s, t) = send(&gw, &messages_body(SONNET, stream), &[]).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(who(&t), Some(1));
        assert!(
            !t.contains("vendor/sonnet-x"),
            "the upstream's name leaked to the client: {t}"
        );
        if stream {
            let ev = sse_events(&t);
            assert_eq!(ev[0].0, "message_start");
            assert_eq!(ev[0].1["message"]["model"], SONNET, "{t}");
        } else {
            let v: Value = serde_json::from_str(&t).unwrap();
            assert_eq!(v["model"], SONNET);
        }
        assert_eq!(
            ms[1].last_request().unwrap().json()["model"],
            "vendor/sonnet-x"
        );
    }
    for _ in 0..2 {
        let (s, t) = send(&gw, &messages_body(HAIKU, false), &[]).await;
        assert_eq!(s, 200, "{t}");
        assert_eq!(who(&t), Some(0));
        assert_eq!(ms[0].last_request().unwrap().json()["model"], HAIKU);
    }
    assert_eq!(posts(&ms[0]), 2, "the haiku-only upstream never got sonnet");
    // Failover never crosses the model filter.
    ms[1].set_config(MockConfig {
        status: 529,
        ..ok_cfg(1)
    });
    let (s, _) = send_sonnet(&gw).await;
    assert_eq!(s, 529);
    assert_eq!(
        posts(&ms[0]),
        2,
        "sonnet failed over to an upstream that does not serve it"
    );
}

#[tokio::test]
async fn auth_header_and_configured_headers() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    patch_up(
        &mut f,
        0,
        json!({"authHeader": "bearer", "headers": {"user-agent": "ccgate-test/1.0", "x-extra": "yes"}}),
    );
    patch_up(&mut f, 1, json!({"authHeader": "both"}));
    let gw = Gateway::start(&f).await;
    for _ in 0..2 {
        let (s, _) = send(
            &gw,
            &messages_body(SONNET, false),
            &[("user-agent", "claude-cli/9.9 (external, cli)")],
        )
        .await;
        assert_eq!(s, 200);
    }
    let r0 = ms[0].last_request().unwrap();
    assert_eq!(
        r0.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(r0.header("x-api-key"), None);
    assert_eq!(r0.header_all("user-agent"), ["ccgate-test/1.0"]);
    assert_eq!(r0.header("x-extra"), Some("yes"));
    let r1 = ms[1].last_request().unwrap();
    assert_eq!(
        r1.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
    assert_eq!(r1.header("x-api-key"), Some(UPSTREAM_KEY));
    assert_eq!(
        r1.header("user-agent"),
        Some("claude-cli/9.9 (external, cli)"),
        "the client's user-agent passes by default"
    );
    // The probe carries the same credentials.
    let mut f2 = files_for(&ms[..1]);
    patch_up(
        &mut f2,
        0,
        json!({"authHeader": "bearer", "healthCheck": {"interval": 300}}),
    );
    patch_lb(&mut f2, json!({"healthCheckEnabled": true}));
    ms[0].clear_requests();
    let _gw2 = Gateway::start(&f2).await;
    let probe = eventually(10, || async {
        ms[0].requests().into_iter().find(|r| r.method == "GET")
    })
    .await;
    assert_eq!(
        probe.header("authorization"),
        Some(format!("Bearer {UPSTREAM_KEY}").as_str())
    );
}

#[tokio::test]
async fn max_concurrency_spills_to_another_upstream() {
    let ms = mocks(2).await;
    ms[0].set_config(MockConfig {
        chunks: 4,
        event_delay_ms: 200,
        ..ok_cfg(0)
    });
    let mut f = files_for(&ms);
    patch_up(&mut f, 0, json!({"maxConcurrency": 1}));
    patch_up(&mut f, 1, json!({"priority": 1}));
    let gw = Gateway::start(&f).await;
    let a = post_messages(&gw, TENANT_KEY, &messages_body(SONNET, true)).await;
    let mut a_stream = a.bytes_stream();
    let first = a_stream.next().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("message_start"));
    assert_eq!(up(&health(&gw).await, "up1")["in_flight"], 1);
    let (s, t) = send_sonnet(&gw).await;
    assert_eq!(s, 200);
    assert_eq!(
        who(&t),
        Some(1),
        "up1 is at maxConcurrency 1: the second request goes elsewhere"
    );
    let mut rest = first.to_vec();
    while let Some(c) = a_stream.next().await {
        rest.extend_from_slice(&c.unwrap());
    }
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.contains("event: message_stop"), "{rest}");
    assert_eq!(posts(&ms[0]), 1, "the held request was up1's");
    assert_eq!(up(&health(&gw).await, "up1")["in_flight"], 0);
    assert_eq!(who(&send_sonnet(&gw).await.1), Some(0), "free again");
}

#[tokio::test]
async fn price_multiplier_scales_the_upstream_cost() {
    let m = mock_with(ok_cfg(0)).await;
    let mut f = Files::new(&[m.url()]);
    patch_up(&mut f, 0, json!({"priceMultiplier": 2.5}));
    let gw = Gateway::start(&f).await;
    assert_eq!(send_sonnet(&gw).await.0, 200);
    let u = wait_requests(&gw, 1).await;
    let cost = u["totals"]["cost_usd"].as_f64().unwrap();
    let upstream = u["totals"]["upstream_cost_usd"].as_f64().unwrap();
    assert!(cost > 0.0, "{u}");
    assert!(
        (upstream - cost * 2.5).abs() < 1e-9,
        "upstream cost {upstream} should be 2.5 × {cost}"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// /health and `ccgate health`
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test]
async fn health_json_shows_state_and_never_a_key() {
    let ms = mocks(2).await;
    let gw = Gateway::start(&files_for(&ms)).await;
    ms[0].set_config(MockConfig {
        status: 500,
        error_message: Some(format!("bad key {UPSTREAM_KEY}")),
        ..ok_cfg(0)
    });
    send_until_hit(&gw, &ms[0], 3).await;
    let h = health(&gw).await;
    for id in ["up1", "up2"] {
        let u = up(&h, id);
        for field in [
            "status",
            "priority",
            "weight",
            "in_flight",
            "consecutive_failures",
            "cooldown_until",
            "latency_ewma_ms",
            "last_error",
        ] {
            assert!(u.get(field).is_some(), "{id}: no {field} in {u}");
        }
    }
    let u1 = up(&h, "up1");
    assert_eq!(u1["consecutive_failures"], 1);
    assert!(u1["last_error"].as_str().unwrap().contains("500"), "{u1}");
    assert!(up(&h, "up2")["latency_ewma_ms"].as_f64().unwrap() > 0.0);
    let text = health_text(&gw).await;
    assert!(!text.contains(UPSTREAM_KEY), "key in /health: {text}");
    // Without the admin's credentials (or with wrong ones): the overall status only, no names or error texts.
    for auth in [None, Some("wrong-password")] {
        let mut req = client().get(format!("{}/health", gw.url));
        if let Some(p) = auth {
            req = req.basic_auth("admin", Some(p));
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["status"], h["status"]);
        assert!(v.get("upstreams").is_none(), "{v}");
        assert!(!v.to_string().contains("up1"), "{v}");
    }
}

#[tokio::test]
async fn ccgate_health_prints_a_table() {
    let ms = mocks(2).await;
    let mut f = files_for(&ms);
    patch_lb(&mut f, json!({"healthCheckEnabled": true}));
    patch_up(
        &mut f,
        1,
        json!({"healthCheck": {"interval": 300, "timeout": 300}}),
    );
    patch_up(&mut f, 0, json!({"healthCheck": {"enabled": false}}));
    let gw = Gateway::start(&f).await;
    ms[1].set_config(MockConfig {
        models_status: Some(503),
        ..ok_cfg(1)
    });
    eventually(10, || async {
        (up(&health(&gw).await, "up2")["status"] == "unhealthy").then_some(())
    })
    .await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["health", "--url", &gw.url])
        .arg("--config-dir")
        .arg(&gw.config.0)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "degraded is not a failure: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("status: degraded"), "{stdout}");
    let header = stdout
        .lines()
        .find(|l| l.starts_with("ID"))
        .expect("table header");
    assert!(
        header.contains("STATUS") && header.contains("LATENCY") && header.contains("LAST ERROR"),
        "{header}"
    );
    let row = |id: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for {id}"))
            .to_string()
    };
    assert!(
        row("up1").contains("healthy") && !row("up1").contains("unhealthy"),
        "{}",
        row("up1")
    );
    assert!(
        row("up2").contains("unhealthy") && row("up2").contains("503"),
        "{}",
        row("up2")
    );
    assert!(!stdout.contains(UPSTREAM_KEY));

    // Everything down: non-zero exit.
    ms[0].shutdown();
    for _ in 0..3 {
        // Three refused connections in a row cool up1 down.
        send_sonnet(&gw).await;
    }
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["health", "--url", &gw.url])
        .output()
        .await
        .unwrap();
    assert!(
        !out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // A gateway that is not there: a clear error, non-zero exit.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["health", "--url", "http://127.0.0.1:9"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Without `--url`, `ccgate health` finds the gateway at the port in server.json and shows the admin's details.
#[tokio::test]
async fn ccgate_health_reads_the_port_from_server_json() {
    let ms = mocks(1).await;
    let mut f = files_for(&ms);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    f.server["server"]["port"] = json!(port);
    let gw = Gateway::start(&f).await;
    assert!(gw.url.ends_with(&format!(":{port}")), "{}", gw.url);
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .arg("health")
        .arg("--config-dir")
        .arg(&gw.config.0)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("status: ok"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("up1")), "{stdout}");
}
