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
