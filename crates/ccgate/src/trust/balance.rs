//! Upstream balance (`upstreams[].balance`): many mirror sites run new-api/one-api and tell what is left on a
//! key through the OpenAI-legacy billing endpoints. Polled on a slow interval; the days left come from the burn
//! rate of the last 24 hours in the trust counters (what this upstream charged, every instance included). An
//! alert goes out when the balance crosses below `lowUsd` or the days left below `lowDays`.

use crate::config::{BalanceConfig, BalanceSource, BalanceUnit};
use crate::state::{Gateway, UpstreamRt};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

const POLL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BalanceState {
    pub at_ms: i64,
    pub balance_usd: Option<f64>,
    /// What the upstream charged in the last 24 hours (list price × `priceMultiplier`).
    pub burn_usd_per_day: Option<f64>,
    pub days_left: Option<f64>,
    pub low: bool,
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Balances(Mutex<HashMap<String, BalanceState>>);

impl Balances {
    pub fn state(&self, upstream: &str) -> Option<BalanceState> {
        self.0.lock().get(upstream).cloned()
    }

    /// Stores a reading; `true` when it just crossed into "low" (the alert is due).
    fn record(&self, upstream: &str, s: BalanceState) -> bool {
        let mut all = self.0.lock();
        let was_low = all.get(upstream).is_some_and(|p| p.low);
        let crossed = s.low && !was_low;
        // A failed poll keeps the last "low" state: an outage of the billing endpoint is not a top-up.
        let s = if s.balance_usd.is_none() {
            BalanceState { low: was_low, ..s }
        } else {
            s
        };
        all.insert(upstream.to_owned(), s);
        crossed
    }
}

/// Days left at `burn` USD a day (`None` without a burn).
pub fn days_left(balance_usd: f64, burn_per_day: f64) -> Option<f64> {
    (burn_per_day > 0.0).then(|| (balance_usd.max(0.0) / burn_per_day * 10.0).round() / 10.0)
}

/// Whether a reading is low by the config's thresholds.
pub fn is_low(cfg: &BalanceConfig, balance_usd: f64, days: Option<f64>) -> bool {
    cfg.low_usd.is_some_and(|l| balance_usd < l) || days.is_some_and(|d| d < cfg.low_days)
}

/// The remaining USD from the answers of a new-api: `hard_limit_usd` minus `total_usage` (cents).
pub fn new_api_balance(subscription: &Value, usage: &Value) -> Option<f64> {
    let limit = subscription.get("hard_limit_usd")?.as_f64()?;
    let used_cents = usage.get("total_usage")?.as_f64()?;
    Some(limit - used_cents / 100.0)
}

/// The number at `pointer`, in `unit`.
pub fn custom_balance(v: &Value, pointer: &str, unit: BalanceUnit) -> Option<f64> {
    let n = v.pointer(pointer)?;
    let x = n.as_f64().or_else(|| n.as_str()?.trim().parse().ok())?;
    x.is_finite().then(|| unit.to_usd(x))
}

async fn get_json(u: &UpstreamRt, path: &str) -> Result<Value, String> {
    let url = u.url_for(path, None).map_err(|e| format!("bad URL: {e}"))?;
    let headers = u.request_headers(&http::HeaderMap::new());
    let fetch = async {
        let resp = u
            .client
            .send(http::Method::GET, url, headers, bytes::Bytes::new())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("{path}: HTTP {}", status.as_u16()));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{path}: not JSON: {e}"))
    };
    tokio::time::timeout(POLL_TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{path}: no answer in time"))?
}

async fn read_balance(u: &UpstreamRt, cfg: &BalanceConfig) -> Result<f64, String> {
    match &cfg.source {
        BalanceSource::NewApi => {
            let sub = get_json(u, "/v1/dashboard/billing/subscription").await?;
            let usage = get_json(u, "/v1/dashboard/billing/usage").await?;
            new_api_balance(&sub, &usage)
                .ok_or_else(|| "no hard_limit_usd / total_usage in the billing answers".into())
        }
        BalanceSource::Custom {
            path,
            json_pointer,
            unit,
        } => {
            let v = get_json(u, path).await?;
            custom_balance(&v, json_pointer, *unit)
                .ok_or_else(|| format!("no number at {json_pointer:?} in {path}"))
        }
    }
}

/// What this upstream charged in the last 24 hours, from the store's trust counters.
async fn burn_per_day(gw: &Gateway, upstream: &str) -> Option<f64> {
    let now = chrono::Utc::now().timestamp_millis();
    let since = super::hour_of(now) - 23 * super::HOUR_MS;
    let rows = gw.ledger.store.trust_counters(since).await.ok()?;
    let nano: i64 = rows
        .iter()
        .filter(|r| r.upstream_id == upstream && r.name == super::counters::UPSTREAM_COST_NANOUSD)
        .map(|r| r.n)
        .fold(0i64, i64::saturating_add);
    Some(nano as f64 / 1e9)
}

/// Polls one upstream's balance now and records it (alerting on a crossing).
pub async fn poll(gw: &Gateway, u: &UpstreamRt, cfg: &BalanceConfig) -> BalanceState {
    let at_ms = chrono::Utc::now().timestamp_millis();
    let state = match read_balance(u, cfg).await {
        Ok(balance) => {
            // This instance's newest counters count too.
            let _ = gw.trust.flush(gw).await;
            let burn = burn_per_day(gw, &u.config.id).await;
            let days = burn.and_then(|b| days_left(balance, b));
            BalanceState {
                at_ms,
                balance_usd: Some(balance),
                burn_usd_per_day: burn,
                days_left: days,
                low: is_low(cfg, balance, days),
                error: None,
            }
        }
        Err(e) => BalanceState {
            at_ms,
            error: Some(e),
            ..Default::default()
        },
    };
    crate::telemetry::metrics::balance(&u.config.id, &state);
    if gw.trust.balances.record(&u.config.id, state.clone()) {
        if let Some(b) = state.balance_usd {
            tracing::warn!(upstream = %u.config.id, balance_usd = b, days_left = ?state.days_left, "upstream balance is low");
            crate::alerts::balance_low(&u.config.id, b, state.days_left);
        }
    }
    state
}

/// Polls each configured balance on its interval, until shutdown.
pub fn start(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = gw.shutdown.cancelled() => return,
            }
            let rt = gw.rt();
            let now = Instant::now();
            for u in rt.upstreams.iter().filter(|u| u.config.enabled) {
                let Some(cfg) = &u.config.balance else {
                    continue;
                };
                if !is_due(last.get(&u.config.id).copied(), cfg.interval, now) {
                    continue;
                }
                last.insert(u.config.id.clone(), now);
                let (gw, u, cfg) = (gw.clone(), u.clone(), cfg.clone());
                tokio::spawn(async move {
                    poll(&gw, &u, &cfg).await;
                });
            }
        }
    });
}

/// Whether a poll is due: never run, or its interval has passed since the last start.
fn is_due(last_start: Option<Instant>, interval: Duration, now: Instant) -> bool {
    last_start.is_none_or(|t| now.duration_since(t) >= interval)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_poll_runs_at_once_then_every_interval() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        assert!(is_due(None, every, t0));
        assert!(!is_due(Some(t0), every, t0 + Duration::from_secs(59)));
        assert!(is_due(Some(t0), every, t0 + Duration::from_secs(60)));
    }

    fn cfg(low_usd: Option<f64>, low_days: f64) -> BalanceConfig {
        BalanceConfig {
            source: BalanceSource::NewApi,
            interval: Duration::from_secs(60),
            low_usd,
            low_days,
        }
    }

    #[test]
    fn new_api_answers_give_the_remaining_usd() {
        let sub = json!({"object": "billing_subscription", "hard_limit_usd": 100.0});
        let usage = json!({"object": "list", "total_usage": 2550.0});
        assert_eq!(new_api_balance(&sub, &usage), Some(74.5));
        assert_eq!(new_api_balance(&json!({}), &usage), None);
    }

    #[test]
    fn custom_pointers_read_numbers_and_numeric_strings_in_their_unit() {
        let v = json!({"data": {"quota": 1_000_000, "usd": "12.5"}});
        assert_eq!(
            custom_balance(&v, "/data/quota", BalanceUnit::Quota),
            Some(2.0)
        );
        assert_eq!(
            custom_balance(&v, "/data/usd", BalanceUnit::Usd),
            Some(12.5)
        );
        assert_eq!(custom_balance(&v, "/data/none", BalanceUnit::Usd), None);
    }

    #[test]
    fn low_is_below_either_threshold_and_alerts_once_per_crossing() {
        assert_eq!(days_left(10.0, 4.0), Some(2.5));
        assert_eq!(days_left(10.0, 0.0), None);
        assert!(is_low(&cfg(None, 3.0), 10.0, Some(2.5)));
        assert!(!is_low(&cfg(None, 3.0), 10.0, None));
        assert!(is_low(&cfg(Some(20.0), 3.0), 10.0, None));
        let b = Balances::default();
        let low = BalanceState {
            balance_usd: Some(1.0),
            low: true,
            ..Default::default()
        };
        assert!(b.record("u", low.clone()));
        assert!(!b.record("u", low.clone()));
        // A failed poll is not a top-up.
        assert!(!b.record(
            "u",
            BalanceState {
                error: Some("x".into()),
                ..Default::default()
            }
        ));
        assert!(!b.record("u", low.clone()));
        assert!(!b.record(
            "u",
            BalanceState {
                balance_usd: Some(50.0),
                ..Default::default()
            }
        ));
        assert!(b.record("u", low));
    }
}
