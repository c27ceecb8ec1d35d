//! `GET /metrics`: the Prometheus text format, rendered by `metrics-exporter-prometheus` from what the `metrics`
//! facade recorded. Never hand-written exposition.
//!
//! Who may scrape: with `server.metricsToken`, the main listener serves `/metrics` to `Authorization: Bearer
//! <token>` (a wrong token counts as a failed login for the address, like a wrong admin password); with
//! `server.metricsListen`, a separate listener (`serve_separately`) serves it, meant for an address only the
//! scraper reaches (the token is required there too when both are set). Without either, `/metrics` is off (404):
//! it names tenants and their spend.
//!
//! Labels are bounded by the config, never by a request: `tenant` (a configured tenant id: only authenticated
//! requests are counted), `upstream` (a configured upstream id, `none` before one was chosen), `model` (the
//! catalog id the model resolves to, `ccgate-meter`'s `catalog::find_model`, or `other`: a tenant asking for
//! made-up names cannot add series), `protocol` (`anthropic`, `openai`), `status` (`2xx` … `5xx`), `reason`
//! (the refusal's error class, a fixed set in `error.rs`), `type` (a token field). Nothing per request (ids,
//! sessions, raw model names) becomes a label.

use crate::ledger::{Outcome, Record};
use crate::routing::health::now_ms;
use crate::state::Gateway;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{header, HeaderMap, HeaderValue, StatusCode};
use metrics::{counter, gauge, histogram, Counter, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::Duration;
use subtle::ConstantTimeEq;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
/// The separate listener's address, once bound: from then on the main listener does not serve `/metrics`.
static SEPARATE: OnceLock<std::net::SocketAddr> = OnceLock::new();

/// Seconds: from a fast refusal to a long agentic stream.
const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// Seconds per ledger batch commit.
const LEDGER_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

/// Installs the process's recorder (once; later calls are no-ops). Until it runs, every metric call is a no-op.
pub fn install() {
    if HANDLE.get().is_some() {
        return;
    }
    let builder = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("ccgate_ledger_write_seconds".into()),
                LEDGER_BUCKETS,
            )
        });
    let handle = match builder.and_then(|b| b.install_recorder()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot install the recorder; /metrics will be empty");
            return;
        }
    };
    describe();
    gauge!("ccgate_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    // Histograms are kept as raw samples until drained; the HTTP listener this exporter can bring does that on
    // its own, the gateway serves /metrics itself, so it drains them here.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let _ = HANDLE.set(handle);
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "ccgate_requests_total",
        "Requests recorded in the ledger, by tenant, model, upstream, protocol and status class"
    );
    describe_histogram!(
        "ccgate_request_duration_seconds",
        Unit::Seconds,
        "Time from the request's arrival to its end (last byte of a stream)"
    );
    describe_histogram!(
        "ccgate_time_to_first_token_seconds",
        Unit::Seconds,
        "Time from the request's arrival to the first answer byte from the upstream"
    );
    describe_counter!(
        "ccgate_tokens_total",
        "Tokens metered, by tenant, model and type (input, output, cache_write_5m, cache_write_1h, cache_read)"
    );
    describe_counter!(
        "ccgate_cost_nanousd_total",
        "Tenant cost at list price in nano-USD (divide by 1e9 for USD), by tenant and model"
    );
    describe_counter!(
        "ccgate_upstream_cost_nanousd_total",
        "What upstreams charge (list price x priceMultiplier) in nano-USD, by upstream"
    );
    describe_gauge!(
        "ccgate_requests_in_flight",
        "Requests admitted and not yet settled, by protocol"
    );
    describe_counter!(
        "ccgate_refusals_total",
        "Requests the gateway refused itself (budget, rate, concurrency, model), by tenant and reason"
    );
    describe_gauge!(
        "ccgate_tenant_limit_max",
        "Each configured tenant limit (USD for dollar limits, else its unit), by tenant, limit and model scope"
    );
    describe_gauge!(
        "ccgate_tenant_limit_used",
        "What this instance counts against each tenant limit, by tenant, limit and model scope"
    );
    describe_gauge!(
        "ccgate_upstream_healthy",
        "1 if the upstream takes traffic (enabled, not cooling down, probe passing, not ejected), else 0"
    );
    describe_gauge!(
        "ccgate_upstream_cooling_down",
        "1 while the upstream is in a cooldown"
    );
    describe_gauge!(
        "ccgate_upstream_in_flight",
        "Requests in flight on the upstream"
    );
    describe_counter!(
        "ccgate_upstream_cooldowns_total",
        "Cooldowns the upstream entered"
    );
    describe_counter!(
        "ccgate_failovers_total",
        "Requests moved from this upstream to another one before the first byte"
    );
    describe_gauge!(
        "ccgate_upstream_trust_suspect",
        "1 while the upstream has an open trust flag for the check (docs/trust.md), else 0"
    );
    describe_gauge!(
        "ccgate_upstream_demoted",
        "1 while the upstream is demoted by a trust flag (onSuspect: demote), else 0"
    );
    describe_gauge!(
        "ccgate_upstream_trust_check",
        "Each trust check's verdict per upstream and model (docs/trust.md): 0 ok, 1 insufficient_data, 2 suspect"
    );
    describe_gauge!(
        "ccgate_upstream_trust_requests",
        "Requests the upstream served for the model in the window (every instance, from the store)"
    );
    describe_gauge!(
        "ccgate_upstream_trust_success_ratio",
        "Successful requests / requests in the window (NaN without requests)"
    );
    describe_gauge!(
        "ccgate_upstream_trust_ttft_seconds",
        "Time to first token in the window, by quantile (upper bound of the histogram bucket; NaN without samples)"
    );
    describe_gauge!(
        "ccgate_upstream_trust_output_tokens_per_second",
        "Output speed of streams in the window, by quantile (upper bound of the histogram bucket; NaN without samples)"
    );
    describe_gauge!(
        "ccgate_upstream_trust_cache_hit_ratio",
        "Requests that marked cache_control and read from the cache / those that marked it, in the window"
    );
    describe_gauge!(
        "ccgate_upstream_trust_cost_per_million_tokens_usd",
        "What the upstream charged (list price x priceMultiplier) per million input + output tokens, in the window"
    );
    describe_gauge!(
        "ccgate_upstream_trust_cost_per_successful_request_usd",
        "What the upstream charged per successful request, in the window"
    );
    describe_gauge!(
        "ccgate_upstream_balance_usd",
        "The upstream's remaining balance as its billing endpoint last said"
    );
    describe_gauge!(
        "ccgate_upstream_balance_days_left",
        "Days the upstream's balance lasts at the last 24 hours' burn rate"
    );
    describe_gauge!(
        "ccgate_ledger_queue_depth",
        "Records waiting for the ledger writer"
    );
    describe_histogram!(
        "ccgate_ledger_write_seconds",
        Unit::Seconds,
        "Time of one ledger batch commit"
    );
    describe_counter!(
        "ccgate_ledger_rows_written_total",
        "Rows stored in the ledger"
    );
    describe_counter!(
        "ccgate_ledger_write_failures_total",
        "Ledger batch writes that failed (the rows are kept and retried)"
    );
    describe_counter!(
        "ccgate_log_lines_dropped_total",
        "Log lines dropped because the log writer fell behind (never blocks a request), by file"
    );
}

/// The `model` label: the catalog id the name resolves to, or `other`.
pub fn model_label(r: &Record) -> &'static str {
    ccgate_meter::catalog::find_model(&r.model)
        .or_else(|| {
            r.upstream_model
                .as_deref()
                .and_then(ccgate_meter::catalog::find_model)
        })
        .map_or("other", |m| m.id)
}

fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// The token fields, as the `type` label of `ccgate_tokens_total`.
const TOKEN_TYPES: [&str; 5] = [
    "input",
    "output",
    "cache_write_5m",
    "cache_write_1h",
    "cache_read",
];

/// The labels of one row's series.
#[derive(PartialEq, Eq)]
struct RowKey {
    tenant: String,
    model: &'static str,
    upstream: Option<String>,
    protocol: &'static str,
    status: &'static str,
}

/// The series a row adds to, resolved once per label set: a request then costs one map lookup and a few atomic
/// adds, not a registry lookup (with its label allocations) per series.
struct RowSeries {
    requests: Counter,
    duration: Histogram,
    ttft: Histogram,
    tokens: [Counter; 5],
    cost: Counter,
    upstream_cost: Counter,
}

impl RowSeries {
    fn new(k: &RowKey) -> RowSeries {
        let upstream = k.upstream.clone().unwrap_or_else(|| "none".into());
        let tenant = k.tenant.clone();
        RowSeries {
            requests: counter!("ccgate_requests_total",
                "tenant" => tenant.clone(), "model" => k.model, "upstream" => upstream.clone(),
                "protocol" => k.protocol, "status" => k.status),
            duration: histogram!("ccgate_request_duration_seconds",
                "protocol" => k.protocol, "upstream" => upstream.clone()),
            ttft: histogram!("ccgate_time_to_first_token_seconds",
                "protocol" => k.protocol, "upstream" => upstream.clone()),
            tokens: TOKEN_TYPES.map(|kind| {
                counter!("ccgate_tokens_total", "tenant" => tenant.clone(), "model" => k.model, "type" => kind)
            }),
            cost: counter!("ccgate_cost_nanousd_total", "tenant" => tenant, "model" => k.model),
            upstream_cost: counter!("ccgate_upstream_cost_nanousd_total", "upstream" => upstream),
        }
    }
}

/// Row series by a hash of their labels (a bucket holds the rare collisions). Bounded like the labels: by the
/// tenants, upstreams and catalog models configured over the process's life.
type SeriesShelf = HashMap<u64, Vec<(RowKey, Arc<RowSeries>)>>;
static ROW_SERIES: LazyLock<RwLock<SeriesShelf>> = LazyLock::new(Default::default);

fn row_series(r: &Record, model: &'static str, status: &'static str) -> Arc<RowSeries> {
    let hash =
        std::hash::BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
            .hash_one((&r.tenant_id, model, &r.upstream_id, r.protocol, status));
    let matches = |k: &RowKey| {
        k.tenant == r.tenant_id
            && k.model == model
            && k.upstream == r.upstream_id
            && k.protocol == r.protocol
            && k.status == status
    };
    if let Some(bucket) = ROW_SERIES.read().get(&hash) {
        if let Some((_, s)) = bucket.iter().find(|(k, _)| matches(k)) {
            return s.clone();
        }
    }
    let mut shelf = ROW_SERIES.write();
    let bucket = shelf.entry(hash).or_default();
    if let Some((_, s)) = bucket.iter().find(|(k, _)| matches(k)) {
        return s.clone();
    }
    let key = RowKey {
        tenant: r.tenant_id.clone(),
        model,
        upstream: r.upstream_id.clone(),
        protocol: r.protocol,
        status,
    };
    let series = Arc::new(RowSeries::new(&key));
    bucket.push((key, series.clone()));
    series
}

/// Counts one ledger record: called once per request, where its row is finished (`tee/settle.rs`).
pub fn record(r: &Record) {
    let series = row_series(r, model_label(r), status_class(r.status));
    series.requests.increment(1);
    series.duration.record(r.latency_ms as f64 / 1000.0);
    if let Some(ttft) = r.ttft_ms {
        series.ttft.record(ttft as f64 / 1000.0);
    }
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let tokens = [
        r.input_tokens,
        r.output_tokens,
        r.cache_write_5m_tokens,
        r.cache_write_1h_tokens,
        r.cache_read_tokens,
    ];
    for (counter, n) in series.tokens.iter().zip(tokens) {
        if n > 0 {
            counter.increment(count(n));
        }
    }
    if r.cost_nanousd > 0 {
        series.cost.increment(count(r.cost_nanousd));
    }
    if r.upstream_cost_nanousd > 0 {
        series
            .upstream_cost
            .increment(count(r.upstream_cost_nanousd));
    }
    if r.outcome == Outcome::Rejected {
        // Rare enough for a registry lookup.
        let reason = r.error_class.clone().unwrap_or_else(|| "other".into());
        counter!("ccgate_refusals_total", "tenant" => r.tenant_id.clone(), "reason" => reason)
            .increment(1);
    }
}

/// A request was admitted (its settlement exists); [`settled`] ends it.
pub fn admitted(protocol: &'static str) {
    gauge!("ccgate_requests_in_flight", "protocol" => protocol).increment(1.0);
}

pub fn settled(protocol: &'static str) {
    gauge!("ccgate_requests_in_flight", "protocol" => protocol).decrement(1.0);
}

/// A request left `upstream` for another one (before its first byte).
pub fn failover(upstream: &str) {
    counter!("ccgate_failovers_total", "upstream" => upstream.to_owned()).increment(1);
}

/// `upstream` entered a cooldown.
pub fn cooldown(upstream: &str) {
    counter!("ccgate_upstream_cooldowns_total", "upstream" => upstream.to_owned()).increment(1);
}

/// The ledger writer's queue after it took a batch.
pub fn ledger_queue(depth: usize) {
    gauge!("ccgate_ledger_queue_depth").set(depth as f64);
}

/// One ledger batch write: its duration, and whether it was stored.
pub fn ledger_write(took: Duration, rows: usize, stored: bool) {
    histogram!("ccgate_ledger_write_seconds").record(took.as_secs_f64());
    if stored {
        counter!("ccgate_ledger_rows_written_total").increment(rows as u64);
    } else {
        counter!("ccgate_ledger_write_failures_total").increment(1);
    }
}

/// Why `/metrics` was not served.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeRefusal {
    #[error(
        "/metrics is off: set server.metricsToken (Bearer) or server.metricsListen in server.json"
    )]
    Off,
    #[error("/metrics needs Authorization: Bearer <server.metricsToken>")]
    MissingToken,
    #[error("the metrics token is wrong")]
    WrongToken,
    #[error("{0}")]
    LockedOut(crate::error::ApiError),
}

impl IntoResponse for ScrapeRefusal {
    fn into_response(self) -> Response {
        let (status, kind) = match self {
            ScrapeRefusal::Off => (StatusCode::NOT_FOUND, "not_found_error"),
            ScrapeRefusal::MissingToken | ScrapeRefusal::WrongToken => {
                (StatusCode::UNAUTHORIZED, "authentication_error")
            }
            ScrapeRefusal::LockedOut(e) => {
                return e.into_response_for(crate::error::Protocol::Anthropic)
            }
        };
        let body = crate::error::anthropic_error_body(kind, &self.to_string());
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// `GET /metrics` on the main listener.
pub async fn scrape(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let rt = gw.rt();
    let server = &rt.config.server;
    // With a separate listener, the main one does not serve metrics: the operator chose where they are reachable.
    let Some(token) = server
        .metrics_token
        .as_deref()
        // What was bound at start decides (`metricsListen` is read at start only).
        .filter(|_| SEPARATE.get().is_none())
    else {
        return ScrapeRefusal::Off.into_response();
    };
    match authorize(&gw, &req, token) {
        Ok(()) => render(&gw),
        Err(e) => e.into_response(),
    }
}

/// `GET /metrics` on `server.metricsListen`: the token is required only when one is configured.
async fn scrape_separate(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let token = gw.rt().config.server.metrics_token.clone();
    match token.map_or(Ok(()), |t| authorize(&gw, &req, &t)) {
        Ok(()) => render(&gw),
        Err(e) => e.into_response(),
    }
}

fn authorize(gw: &Gateway, req: &axum::extract::Request, token: &str) -> Result<(), ScrapeRefusal> {
    let rt = gw.rt();
    let client = crate::auth::client_ip(
        req.headers(),
        req.extensions(),
        rt.config.server.trust_proxy_headers,
    );
    crate::auth::check_lockout(gw, client).map_err(ScrapeRefusal::LockedOut)?;
    let presented = bearer(req.headers()).ok_or(ScrapeRefusal::MissingToken)?;
    if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
        Ok(())
    } else {
        crate::auth::note_failure(gw, client, "/metrics");
        Err(ScrapeRefusal::WrongToken)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The exposition, after setting the gauges that are read from live state rather than counted.
fn render(gw: &Gateway) -> Response {
    let Some(handle) = HANDLE.get() else {
        return ScrapeRefusal::Off.into_response();
    };
    let rt = gw.rt();
    let now = now_ms();
    for u in &rt.upstreams {
        let s = &u.state;
        let cooling = s.is_cooling(now);
        let healthy = u.config.enabled
            && !cooling
            && !s.probe_unhealthy.load(Ordering::Relaxed)
            && !s.is_ejected(now);
        let id = u.config.id.clone();
        gauge!("ccgate_upstream_healthy", "upstream" => id.clone())
            .set(f64::from(u8::from(healthy)));
        gauge!("ccgate_upstream_cooling_down", "upstream" => id.clone())
            .set(f64::from(u8::from(cooling)));
        gauge!("ccgate_upstream_in_flight", "upstream" => id).set(f64::from(u.in_flight()));
    }
    tenant_limits(&rt);
    for (file, dropped) in super::logs::dropped_lines() {
        counter!("ccgate_log_lines_dropped_total", "file" => file).absolute(dropped);
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        handle.render(),
    )
        .into_response()
}

/// `ccgate_tenant_limit_max` and `_used` for every limit of every tenant, as `POST /usage` shows them (this
/// instance's view of the spend).
fn tenant_limits(rt: &crate::state::Runtime) {
    let tz = rt.config.server.timezone;
    let today = crate::policy::budget::local_day(tz, chrono::Utc::now());
    for t in rt.tenants_by_id.values() {
        let used = |_: &crate::config::TenantConfig, w| t.state.spent(w, today);
        for e in crate::api::usage::limits_json(
            &t.config,
            tz,
            &used,
            Some(&t.state),
            &t.model_states,
            None,
        ) {
            let (max, used) = if e["kind"] == "usd" {
                (e["max_usd"].as_f64(), e["used_usd"].as_f64())
            } else {
                (e["max"].as_f64(), e["used"].as_f64())
            };
            let labels = [
                ("tenant", t.config.id.clone()),
                ("limit", e["name"].as_str().unwrap_or_default().to_string()),
                (
                    "scope",
                    e["scope"]["model"].as_str().unwrap_or_default().to_string(),
                ),
            ];
            if let Some(max) = max {
                gauge!("ccgate_tenant_limit_max", &labels).set(max);
            }
            if let Some(used) = used {
                gauge!("ccgate_tenant_limit_used", &labels).set(used);
            }
        }
    }
}

/// Serves `/metrics` alone on `addr` (`server.metricsListen`) until the gateway shuts down.
pub async fn serve_separately(
    addr: std::net::SocketAddr,
    gw: Arc<Gateway>,
) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let _ = SEPARATE.set(bound);
    let shutdown = gw.shutdown.clone();
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(scrape_separate))
        .with_state(gw)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(bound)
}

/// The trust gauges of one upstream (`trust::Trust::sync_demotions`): demoted, and one per check.
pub fn trust(upstream: &str, demoted: bool, flagged: &dyn Fn(&str) -> bool) {
    gauge!("ccgate_upstream_demoted", "upstream" => upstream.to_owned())
        .set(f64::from(u8::from(demoted)));
    for check in crate::trust::checks::NAMES {
        gauge!("ccgate_upstream_trust_suspect", "upstream" => upstream.to_owned(), "check" => check)
            .set(f64::from(u8::from(flagged(check))));
    }
}

/// The catalog id a model name resolves to, or `other`: the trust series' `model` label, bounded like
/// [`model_label`].
pub fn catalog_label(model: &str) -> &'static str {
    ccgate_meter::catalog::find_model(model).map_or("other", |m| m.id)
}

/// The scorecard of one upstream and `model` label, as one trust evaluation computed it (`trust::Trust::evaluate`).
pub struct TrustScorecard {
    pub upstream: String,
    pub model: &'static str,
    pub windows: Vec<(&'static str, crate::trust::scorecard::WindowGauges)>,
    pub checks: Vec<(&'static str, crate::trust::checks::Status)>,
}

/// The value of `ccgate_upstream_trust_check` (documented in docs/trust.md).
pub fn check_value(s: crate::trust::checks::Status) -> f64 {
    use crate::trust::checks::Status;
    match s {
        Status::Ok => 0.0,
        Status::InsufficientData => 1.0,
        Status::Suspect => 2.0,
    }
}

/// The (upstream, model) pairs the last evaluation exported, with their checks.
type TrustShelf = HashMap<(String, &'static str), Vec<&'static str>>;
static TRUST_SERIES: LazyLock<parking_lot::Mutex<TrustShelf>> = LazyLock::new(Default::default);

/// Sets the trust scorecard gauges of every upstream and model. The recorder cannot remove one series (the
/// exporter's idle timeout applies to every gauge, `ccgate_build_info` included), so a pair that is gone (its
/// upstream removed, or no request in 7 days) is set once to "no data": 0 requests, NaN figures, every check
/// `insufficient_data`; its series then stay until the process restarts.
pub fn trust_scorecards(cards: &[TrustScorecard]) {
    use crate::trust::checks::Status;
    use crate::trust::scorecard::{WindowGauges, QUANTILES};
    let set = |name: &'static str, labels: &[(&'static str, String)], v: Option<f64>| {
        gauge!(name, labels).set(v.unwrap_or(f64::NAN));
    };
    let window = |upstream: &str, model: &'static str, w: &'static str, g: &WindowGauges| {
        let labels = [
            ("upstream", upstream.to_owned()),
            ("model", model.to_owned()),
            ("window", w.to_owned()),
        ];
        set(
            "ccgate_upstream_trust_requests",
            &labels,
            Some(g.requests as f64),
        );
        set(
            "ccgate_upstream_trust_success_ratio",
            &labels,
            g.success_ratio,
        );
        set(
            "ccgate_upstream_trust_cache_hit_ratio",
            &labels,
            g.cache_hit_ratio,
        );
        set(
            "ccgate_upstream_trust_cost_per_million_tokens_usd",
            &labels,
            g.cost_per_million_tokens_usd,
        );
        set(
            "ccgate_upstream_trust_cost_per_successful_request_usd",
            &labels,
            g.cost_per_successful_request_usd,
        );
        for (i, (_, q)) in QUANTILES.iter().enumerate() {
            let mut labels = labels.to_vec();
            labels.push(("quantile", (*q).to_owned()));
            set(
                "ccgate_upstream_trust_ttft_seconds",
                &labels,
                g.ttft_seconds[i],
            );
            set(
                "ccgate_upstream_trust_output_tokens_per_second",
                &labels,
                g.output_tokens_per_second[i],
            );
        }
    };
    let check = |upstream: &str, model: &'static str, name: &'static str, s: Status| {
        gauge!("ccgate_upstream_trust_check",
            "upstream" => upstream.to_owned(), "model" => model, "check" => name)
        .set(check_value(s));
    };
    let mut now = TrustShelf::new();
    for card in cards {
        for (w, g) in &card.windows {
            window(&card.upstream, card.model, w, g);
        }
        for (name, s) in &card.checks {
            check(&card.upstream, card.model, name, *s);
        }
        now.insert(
            (card.upstream.clone(), card.model),
            card.checks.iter().map(|(name, _)| *name).collect(),
        );
    }
    let mut exported = TRUST_SERIES.lock();
    for ((upstream, model), names) in exported.iter() {
        if now.contains_key(&(upstream.clone(), model)) {
            continue;
        }
        for (w, _) in crate::trust::WINDOWS {
            window(upstream, model, w, &WindowGauges::default());
        }
        for name in names {
            check(upstream, model, name, Status::InsufficientData);
        }
    }
    *exported = now;
}

/// An upstream's balance reading (`trust/balance.rs`).
pub fn balance(upstream: &str, s: &crate::trust::balance::BalanceState) {
    if let Some(b) = s.balance_usd {
        gauge!("ccgate_upstream_balance_usd", "upstream" => upstream.to_owned()).set(b);
    }
    if let Some(d) = s.days_left {
        gauge!("ccgate_upstream_balance_days_left", "upstream" => upstream.to_owned()).set(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(model: &str, upstream_model: Option<&str>) -> Record {
        Record {
            model: model.into(),
            upstream_model: upstream_model.map(str::to_owned),
            ..Default::default()
        }
    }

    #[test]
    fn model_labels_are_catalog_ids_or_other() {
        assert_eq!(
            model_label(&rec("claude-sonnet-4-6", None)),
            "claude-sonnet-4-6"
        );
        // An OpenAI alias is labelled by the Claude model it was sent as.
        assert_eq!(
            model_label(&rec("gpt-4o", Some("claude-sonnet-4-6"))),
            "claude-sonnet-4-6"
        );
        assert_eq!(model_label(&rec("made-up-model-123", None)), "other");
        assert_eq!(model_label(&rec("made-up", Some("also-made-up"))), "other");
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(402), "4xx");
        assert_eq!(status_class(529), "5xx");
        assert_eq!(status_class(0), "5xx");
    }

    #[test]
    fn bearer_tokens() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
    }
}
