//! `GET /api/admin/upstreams/{id}/scorecard`: the figures of one upstream per model and window, the checks'
//! verdicts, its flags with their evidence, its canary and its balance. Shape in docs/trust.md.

use super::counters::{self as c, Counters};
use super::{hour_of, View, HOUR_MS, WINDOWS};
use crate::ledger::store::TrustFlag;
use crate::state::Gateway;
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;

/// Figures of one window.
pub fn figures(k: &Counters) -> Value {
    let requests = c::get(k, c::REQUESTS);
    let ok = c::get(k, c::OK);
    let errors: Map<String, Value> = k
        .iter()
        .filter_map(|(name, n)| Some((name.strip_prefix(c::ERROR_PREFIX)?.to_owned(), json!(n))))
        .collect();
    let pct = |a: i64, b: i64| (b > 0).then(|| (a as f64 * 1000.0 / b as f64).round() / 10.0);
    let cost = c::get(k, c::UPSTREAM_COST_NANOUSD);
    let tokens = c::get(k, c::INPUT_TOKENS).saturating_add(c::get(k, c::OUTPUT_TOKENS));
    let p = |prefix: &str, bounds: &[i64], q: i64| -> Value {
        match c::percentile(k, prefix, bounds, q) {
            None => Value::Null,
            Some(Some(b)) => json!(b),
            Some(None) => json!(format!(">{}", bounds[bounds.len() - 1])),
        }
    };
    json!({
        "requests": requests,
        "ok": ok,
        "successPercent": pct(ok, requests),
        "errors": errors,
        "ttftMs": {"p50": p(c::TTFT_PREFIX, &c::TTFT_BUCKETS, 50), "p95": p(c::TTFT_PREFIX, &c::TTFT_BUCKETS, 95)},
        "outputTokensPerSecond": {"p50": p(c::TPS_PREFIX, &c::TPS_BUCKETS, 50), "p95": p(c::TPS_PREFIX, &c::TPS_BUCKETS, 95)},
        "cache": {
            "askedRequests": c::get(k, c::CACHE_ASKED),
            "hitRequests": c::get(k, c::CACHE_ASKED_HIT),
            "hitPercent": pct(c::get(k, c::CACHE_ASKED_HIT), c::get(k, c::CACHE_ASKED)),
            "readTokenPercent": pct(c::get(k, c::CACHE_ASKED_READ), c::get(k, c::CACHE_ASKED_INPUT)),
        },
        "tokens": {"input": c::get(k, c::INPUT_TOKENS), "output": c::get(k, c::OUTPUT_TOKENS)},
        "cost": {
            "upstreamUsd": cost as f64 / 1e9,
            "perMillionTokensUsd": (tokens > 0).then(|| cost as f64 / tokens as f64 * 1e6 / 1e9),
            "perSuccessfulRequestUsd": (ok > 0).then(|| cost as f64 / ok as f64 / 1e9),
        },
    })
}

/// One window's figures as the metrics export them (`telemetry/metrics.rs`, `trust_scorecards`): ratios 0–1 and
/// seconds; `None` where the figure is undefined (no request, no sample), exported as `NaN`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowGauges {
    pub requests: i64,
    pub success_ratio: Option<f64>,
    /// p50 and p95; past the last bucket, `+Inf`.
    pub ttft_seconds: [Option<f64>; 2],
    pub output_tokens_per_second: [Option<f64>; 2],
    /// Requests that marked `cache_control` and read from the cache, of those that marked it.
    pub cache_hit_ratio: Option<f64>,
    pub cost_per_million_tokens_usd: Option<f64>,
    pub cost_per_successful_request_usd: Option<f64>,
}

/// The percentiles the metrics export, with their `quantile` label.
pub const QUANTILES: [(i64, &str); 2] = [(50, "0.5"), (95, "0.95")];

pub fn gauges(k: &Counters) -> WindowGauges {
    let requests = c::get(k, c::REQUESTS);
    let ok = c::get(k, c::OK);
    let ratio = |a: i64, b: i64| (b > 0).then(|| a as f64 / b as f64);
    let cost = c::get(k, c::UPSTREAM_COST_NANOUSD);
    let tokens = c::get(k, c::INPUT_TOKENS).saturating_add(c::get(k, c::OUTPUT_TOKENS));
    let p = |prefix: &str, bounds: &[i64], scale: f64| {
        QUANTILES.map(|(q, _)| {
            c::percentile(k, prefix, bounds, q)
                .map(|b| b.map_or(f64::INFINITY, |b| b as f64 / scale))
        })
    };
    WindowGauges {
        requests,
        success_ratio: ratio(ok, requests),
        ttft_seconds: p(c::TTFT_PREFIX, &c::TTFT_BUCKETS, 1000.0),
        output_tokens_per_second: p(c::TPS_PREFIX, &c::TPS_BUCKETS, 1.0),
        cache_hit_ratio: ratio(c::get(k, c::CACHE_ASKED_HIT), c::get(k, c::CACHE_ASKED)),
        cost_per_million_tokens_usd: (tokens > 0).then(|| cost as f64 / tokens as f64 * 1e6 / 1e9),
        cost_per_successful_request_usd: (ok > 0).then(|| cost as f64 / ok as f64 / 1e9),
    }
}

pub fn flag_json(f: &TrustFlag) -> Value {
    json!({
        "id": f.id,
        "check": f.check_name,
        "model": f.model,
        "raisedAt": rfc3339(f.raised_ms),
        "clearedAt": f.cleared_ms.map(rfc3339),
        "open": f.cleared_ms.is_none(),
        "evidence": serde_json::from_str::<Value>(&f.evidence).unwrap_or(Value::String(f.evidence.clone())),
    })
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// The scorecard of a configured upstream (the caller checked the id).
pub async fn scorecard(gw: &Gateway, upstream: &str) -> Result<Value, crate::ledger::LedgerError> {
    gw.trust.flush(gw).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let view = View::load(gw, now).await?;
    let rt = gw.rt();
    let u = rt.upstreams.iter().find(|u| u.config.id == upstream);
    let checks = view.checks_of(&rt, upstream);
    let models: Vec<Value> = view
        .models_of(upstream)
        .into_iter()
        .map(|model| {
            let windows: Map<String, Value> = WINDOWS
                .iter()
                .map(|(name, hours)| {
                    let from = hour_of(now) - (hours - 1) * HOUR_MS;
                    (
                        name.to_string(),
                        figures(&view.window(upstream, &model, from)),
                    )
                })
                .collect();
            let cs = checks
                .iter()
                .find(|(m, _)| *m == model)
                .map(|(_, cs)| json!(cs))
                .unwrap_or(Value::Null);
            json!({"model": model, "windows": windows, "checks": cs})
        })
        .collect();
    let flags = gw
        .ledger
        .store
        .trust_flags(Some(upstream), false, 50)
        .await?;
    let canary = gw
        .ledger
        .store
        .trust_canaries()
        .await?
        .into_iter()
        .find(|c| c.upstream_id == upstream);
    Ok(json!({
        "upstream": upstream,
        "reference": u.is_some_and(|u| u.config.trust.reference),
        "onSuspect": match u.map(|u| u.config.trust.on_suspect) {
            Some(crate::config::OnSuspect::Demote) => "demote",
            _ => "warn",
        },
        "demoted": u.is_some_and(|u| u.state.demoted.load(Ordering::Relaxed)),
        "checksSince": rfc3339(view.check_start(upstream)),
        "models": models,
        "flags": flags.iter().map(flag_json).collect::<Vec<_>>(),
        "canary": canary.as_ref().map(super::canary::state_json),
        "balance": gw.trust.balances.state(upstream),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_known_window() {
        let mut k = Counters::new();
        for (n, v) in [
            (c::REQUESTS, 4),
            (c::OK, 3),
            ("error:upstream_http_529", 1),
            ("ttft_le_100", 2),
            ("ttft_le_800", 1),
            (c::INPUT_TOKENS, 600_000),
            (c::OUTPUT_TOKENS, 400_000),
            (c::UPSTREAM_COST_NANOUSD, 3_000_000_000),
        ] {
            c::add(&mut k, n, v);
        }
        let f = figures(&k);
        assert_eq!(f["successPercent"], 75.0);
        assert_eq!(f["errors"]["upstream_http_529"], 1);
        assert_eq!(f["ttftMs"]["p50"], 100);
        assert_eq!(f["ttftMs"]["p95"], 800);
        assert_eq!(f["cost"]["perMillionTokensUsd"], 3.0);
        assert_eq!(f["cost"]["perSuccessfulRequestUsd"], 1.0);
        assert_eq!(f["outputTokensPerSecond"]["p50"], Value::Null);
        let g = gauges(&k);
        assert_eq!(g.requests, 4);
        assert_eq!(g.success_ratio, Some(0.75));
        assert_eq!(g.ttft_seconds, [Some(0.1), Some(0.8)]);
        assert_eq!(g.output_tokens_per_second, [None, None]);
        assert_eq!(g.cache_hit_ratio, None);
        assert_eq!(g.cost_per_million_tokens_usd, Some(3.0));
        assert_eq!(g.cost_per_successful_request_usd, Some(1.0));
    }

    #[test]
    fn gauges_past_the_last_bucket_are_infinite() {
        let mut k = Counters::new();
        c::add(&mut k, "tps_le_inf", 1);
        c::add(&mut k, c::CACHE_ASKED, 4);
        c::add(&mut k, c::CACHE_ASKED_HIT, 1);
        let g = gauges(&k);
        assert_eq!(g.output_tokens_per_second, [Some(f64::INFINITY); 2]);
        assert_eq!(g.cache_hit_ratio, Some(0.25));
        assert_eq!(g.requests, 0);
        assert_eq!(g.success_ratio, None);
    }
}
