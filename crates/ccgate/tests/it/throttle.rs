//! Brute-force protection (`auth/throttle.rs`): after 10 failed logins within a minute from one address, that
//! address gets 429 with `retry-after` on every credentialed endpoint, right credentials included, in the
//! endpoint's protocol shape; another address is unaffected.

use crate::common::*;
use serde_json::{json, Value};
use std::net::IpAddr;

/// The throttle's limit (`auth::throttle::MAX_FAILURES`).
const LIMIT: usize = 10;

/// A client whose connections come from `local` (any 127.x address reaches the gateway on 127.0.0.1).
fn client_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(local.parse::<IpAddr>().unwrap())
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn usage_admin(c: &reqwest::Client, gw: &Gateway, password: &str) -> reqwest::Response {
    c.post(format!("{}/usage", gw.url))
        .json(&json!({"type": "admin", "username": "admin", "password": password}))
        .send()
        .await
        .unwrap()
}

async fn messages(c: &reqwest::Client, gw: &Gateway, key: &str) -> reqwest::Response {
    c.post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap()
}

async fn chat(c: &reqwest::Client, gw: &Gateway, key: &str) -> reqwest::Response {
    c.post(format!("{}/openai/v1/chat/completions", gw.url))
        .bearer_auth(key)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
}

/// Status, `retry-after` in seconds, and JSON body.
async fn parts(r: reqwest::Response) -> (u16, Option<u64>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

fn assert_locked(p: &(u16, Option<u64>, Value)) {
    assert_eq!(p.0, 429, "{p:?}");
    let retry = p.1.expect("retry-after");
    assert!((1..=60).contains(&retry), "{p:?}");
}

#[tokio::test]
async fn admin_password_guesses_lock_out_the_address_and_only_it() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let here = client_from("127.0.0.1");
    for i in 0..LIMIT {
        let r = usage_admin(&here, &gw, &format!("guess-{i}")).await;
        assert_eq!(r.status(), 401, "guess {i}");
    }
    let locked = parts(usage_admin(&here, &gw, "guess-more").await).await;
    assert_locked(&locked);
    assert_eq!(locked.2["error"]["type"], "rate_limit_error", "{locked:?}");
    // The right password is refused too while the lockout lasts, on every admin endpoint.
    assert_locked(&parts(usage_admin(&here, &gw, ADMIN_PASSWORD).await).await);
    let h = here
        .get(format!("{}/health", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_locked(&parts(h).await);
    // …and the tenant endpoints: one count per address, whatever was guessed.
    assert_locked(&parts(messages(&here, &gw, TENANT_KEY).await).await);
    // The public health view needs no credentials and stays open.
    let public = here.get(format!("{}/health", gw.url)).send().await.unwrap();
    assert_eq!(public.status(), 200);

    // Another address is unaffected.
    let there = client_from("127.0.0.2");
    let ok = usage_admin(&there, &gw, ADMIN_PASSWORD).await;
    assert_eq!(ok.status(), 200);
    let h = there
        .get(format!("{}/health", gw.url))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    assert!(h.json::<Value>().await.unwrap()["upstreams"].is_array());

    // Every failure is logged with the address and endpoint, never the guessed secret.
    let logs = gw.logs();
    assert!(
        logs.matches("authentication failed").count() >= LIMIT,
        "{logs}"
    );
    assert!(
        logs.contains("127.0.0.1") && logs.contains("/usage"),
        "{logs}"
    );
    assert!(logs.contains("locked out"), "{logs}");
    assert!(
        !logs.contains("guess-1"),
        "a guessed password reached the log"
    );
}

#[tokio::test]
async fn tenant_key_guesses_on_anthropic_get_429_in_anthropic_shape() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let here = client_from("127.0.0.1");
    for i in 0..LIMIT {
        let (status, _, body) =
            parts(messages(&here, &gw, &format!("sk-guess-{i:04}")).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["type"], "authentication_error");
    }
    let locked = parts(messages(&here, &gw, "sk-guess-more").await).await;
    assert_locked(&locked);
    assert_eq!(locked.2["type"], "error", "{locked:?}");
    assert_eq!(locked.2["error"]["type"], "rate_limit_error", "{locked:?}");
    assert_locked(&parts(messages(&here, &gw, TENANT_KEY).await).await);
    // X-Forwarded-For is not trusted by default: it cannot dodge the lockout.
    let spoofed = here
        .post(format!("{}/anthropic/v1/messages", gw.url))
        .header("x-api-key", TENANT_KEY)
        .header("x-forwarded-for", "198.51.100.7")
        .json(&messages_body("claude-sonnet-4-6", false))
        .send()
        .await
        .unwrap();
    assert_eq!(spoofed.status(), 429);
    let models = here
        .get(format!("{}/anthropic/v1/models", gw.url))
        .header("x-api-key", TENANT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 429);

    let there = client_from("127.0.0.2");
    let r = messages(&there, &gw, TENANT_KEY).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // The wrong keys never reached the log.
    assert!(!gw.logs().contains("sk-guess-0001"));
}

#[tokio::test]
async fn tenant_key_guesses_on_openai_get_429_in_openai_shape() {
    let m = mock().await;
    let gw = Gateway::start(&Files::new(&[m.url()])).await;
    let here = client_from("127.0.0.1");
    for i in 0..LIMIT {
        let (status, _, body) = parts(chat(&here, &gw, &format!("sk-guess-{i:04}")).await).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    let locked = parts(chat(&here, &gw, TENANT_KEY).await).await;
    assert_locked(&locked);
    assert_eq!(locked.2["error"]["type"], "rate_limit_error", "{locked:?}");
    assert_eq!(
        locked.2["error"]["code"], "rate_limit_exceeded",
        "{locked:?}"
    );
    let models = here
        .get(format!("{}/openai/v1/models", gw.url))
        .bearer_auth(TENANT_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(models.status(), 429);

    let there = client_from("127.0.0.2");
    let r = chat(&there, &gw, TENANT_KEY).await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Behind a reverse proxy every client has the proxy's address; with `server.trustProxyHeaders` the last hop of
/// `X-Forwarded-For` is the client, so one client's guesses do not lock out the others.
#[tokio::test]
async fn behind_a_proxy_the_forwarded_address_is_the_client() {
    let m = mock().await;
    let mut files = Files::new(&[m.url()]);
    files.server["server"]["trustProxyHeaders"] = json!(true);
    let gw = Gateway::start(&files).await;
    let proxy = client_from("127.0.0.1");
    let send = |key: &'static str, client: &'static str| {
        proxy
            .post(format!("{}/usage", gw.url))
            .header("x-api-key", key)
            // What a client sent first, then the hop the proxy appended.
            .header("x-forwarded-for", format!("10.0.0.99, {client}"))
            .send()
    };
    for _ in 0..LIMIT {
        assert_eq!(
            send("wrong-key-wrong-key", "203.0.113.5")
                .await
                .unwrap()
                .status(),
            401
        );
    }
    assert_eq!(send(TENANT_KEY, "203.0.113.5").await.unwrap().status(), 429);
    assert_eq!(send(TENANT_KEY, "203.0.113.6").await.unwrap().status(), 200);
    assert!(gw.logs().contains("203.0.113.5"));
}
