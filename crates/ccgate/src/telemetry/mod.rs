//! Operations: what an operator reads about a running gateway.
//!
//! - [`metrics`]: `GET /metrics` in the Prometheus format (`server.metricsToken`, `server.metricsListen`);
//! - [`logs`]: `access.log`, `combined.log` and `error.log`, size-rotated, written off the request path;
//! - [`request_id`]: the `x-request-id` of every request, in its answer, its ledger row and its logs;
//! - [`banner`]: the start-up summary.
//!
//! The request path calls in at a few points only: the listener tags each request with its id
//! (`server/mod.rs`), the settlement reports each finished row ([`on_record`], `tee/settle.rs`), and the ledger
//! writer, the forwarder and upstream health count their events (`metrics::ledger_write`, `metrics::failover`,
//! `metrics::cooldown`).

pub mod banner;
pub mod logs;
pub mod metrics;
pub mod request_id;

/// A request's ledger row is finished: count it and write its `access.log` line. Cheap and non-blocking (the
/// line goes to the log writer's queue).
pub fn on_record(r: &crate::ledger::Record) {
    metrics::record(r);
    logs::access(r);
}

#[cfg(test)]
mod cost {
    use super::*;
    use crate::ledger::Record;
    use std::time::Instant;

    /// What the telemetry adds to one request, on this machine: the request id and its span (listener), and the
    /// metrics and access-log line of its row (settlement). Not a pass/fail test: run with the optimised
    /// `profiling` profile and read the numbers.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement: cargo test --profile profiling -p ccgate --lib telemetry::cost -- --ignored --nocapture"]
    async fn telemetry_cost_per_request() {
        let dir = std::env::temp_dir().join(format!("ccgate-cost-{}", std::process::id()));
        let config = crate::config::LoggingConfig {
            enable_console: false,
            ..Default::default()
        };
        logs::init(&config, &dir).unwrap();
        metrics::install();
        let record = Record {
            ts_ms: 1_700_000_000_000,
            request_id: uuid::Uuid::now_v7().to_string(),
            tenant_id: "tenant-1".into(),
            upstream_id: Some("anthropic-main".into()),
            upstream_request_id: Some("req_011CXYZabcdefghijklmnop".into()),
            protocol: "anthropic",
            endpoint: "messages",
            model: "claude-sonnet-4-6".into(),
            upstream_model: Some("claude-sonnet-4-6".into()),
            status: 200,
            input_tokens: 1200,
            output_tokens: 350,
            cache_read_tokens: 40_000,
            cost_nanousd: 21_450_000,
            upstream_cost_nanousd: 21_450_000,
            priced: true,
            latency_ms: 2300,
            ttft_ms: Some(640),
            ..Default::default()
        };
        let headers = http::HeaderMap::new();
        let n = 100_000u32;
        for _ in 0..10_000 {
            on_record(&record);
        }
        let t = Instant::now();
        for _ in 0..n {
            let id = request_id::RequestId::for_request(&headers);
            let span = tracing::info_span!("request", id = id.shown());
            let _entered = span.enter();
            std::hint::black_box(id.header_value());
        }
        let id_ns = t.elapsed().as_nanos() / u128::from(n);
        let t = Instant::now();
        for _ in 0..n {
            metrics::record(&record);
        }
        let metrics_ns = t.elapsed().as_nanos() / u128::from(n);
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(logs::access_line(&record));
        }
        let line_ns = t.elapsed().as_nanos() / u128::from(n);
        let t = Instant::now();
        for _ in 0..n {
            logs::access(&record);
        }
        let access_ns = t.elapsed().as_nanos() / u128::from(n);
        logs::flush();
        let dropped: u64 = logs::dropped_lines().iter().map(|(_, d)| d).sum();
        println!(
            "per request: id + span {id_ns} ns, metrics {metrics_ns} ns, access line {access_ns} ns (of which JSON {line_ns} ns) \
             (on the caller's thread; {dropped} lines dropped)"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
