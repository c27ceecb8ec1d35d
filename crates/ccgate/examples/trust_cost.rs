//! What upstream trust costs a request: reading a request's traits on the request path (`RequestTraits::of_scanned`,
//! after the gateway's own body scan, which counts `messages` and reads `thinking` for it) and the counters one
//! settled request adds (`Trust::observe`), next to the scan itself and a plain `serde_json` validation of the same
//! body as yardsticks.
//!
//! `cargo run --release -p ccgate --example trust_cost`

use ccgate::ledger::{Outcome, Record};
use ccgate::trust::observe::{Observation, RequestTraits};
use ccgate::trust::Trust;
use serde_json::json;
use std::time::Instant;

/// A Claude-Code-sized body: a system prompt with `cache_control`, a long conversation, thinking on.
fn large_body() -> Vec<u8> {
    let turn =
        "Please look at src/main.rs and explain what the function does, then run the tests. "
            .repeat(12);
    let mut messages = Vec::new();
    for i in 0..60 {
        let role = if i % 2 == 0 { "user" } else { "assistant" };
        messages.push(json!({"role": role, "content": [{"type": "text", "text": turn}]}));
    }
    serde_json::to_vec(&json!({
        "model": "claude-sonnet-4-6", "max_tokens": 32000, "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 8000},
        "system": [{"type": "text", "text": "You are Claude Code. ".repeat(200), "cache_control": {"type": "ephemeral"}}],
        "messages": messages,
    }))
    .unwrap()
}

fn per_call<F: FnMut()>(n: u32, mut f: F) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn main() {
    let body = large_body();
    let n = 2000;
    let validate = per_call(n, || {
        let v: serde::de::IgnoredAny = serde_json::from_slice(&body).unwrap();
        std::hint::black_box(v);
    });
    let scan = per_call(n, || {
        std::hint::black_box(ccgate::api::scan::scan(&body).unwrap());
    });
    let scanned = ccgate::api::scan::scan(&body).unwrap();
    let traits = per_call(n, || {
        std::hint::black_box(RequestTraits::of_scanned(&body, &scanned));
    });
    let small = br#"{"model":"claude-sonnet-4-6","max_tokens":256,"messages":[{"role":"user","content":"hello"}]}"#;
    let estimate = per_call(n, || {
        std::hint::black_box(ccgate::trust::observe::estimate_tokens(&body));
    });
    println!("estimate_tokens alone: {estimate:.1} µs");
    let scanned_small = ccgate::api::scan::scan(small).unwrap();
    let traits_small = per_call(n * 50, || {
        std::hint::black_box(RequestTraits::of_scanned(small, &scanned_small));
    });
    let trust = Trust::default();
    let obs = Observation {
        request: RequestTraits::of(&body),
        ..Default::default()
    };
    let rec = Record {
        request_id: "0190-request".into(),
        upstream_id: Some("mirror-a".into()),
        upstream_model: Some("claude-sonnet-4-6".into()),
        model: "claude-sonnet-4-6".into(),
        outcome: Outcome::Ok,
        stream: true,
        billable: true,
        input_tokens: 120,
        cache_read_tokens: 20_000,
        output_tokens: 800,
        latency_ms: 9000,
        ttft_ms: Some(1200),
        ts_ms: 1_765_000_000_000,
        ..Default::default()
    };
    let observe = per_call(n * 50, || trust.observe(&rec, "claude-sonnet-4-6", &obs, 0));
    println!("body: {} bytes", body.len());
    println!("serde_json validation of the body: {validate:.1} µs");
    println!("the gateway's body scan (api/scan.rs): {scan:.1} µs");
    println!(
        "RequestTraits::of_scanned (large body): {traits:.1} µs ({:.2}x the scan)",
        traits / scan
    );
    println!("RequestTraits::of_scanned (98 B body):  {traits_small:.2} µs");
    println!("Trust::observe (one settlement):   {observe:.2} µs");
}
