//! `GET/HEAD /` (Claude Code's connectivity probe) and `GET /health`. Health never shows a key. Anyone gets the
//! overall status (load balancers probe it); the per-upstream details, whose error texts can carry account
//! details, need the admin credentials (HTTP Basic).

use crate::routing::health::now_ms;
use crate::state::Gateway;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::header;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub async fn root() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "CCGate is running\n",
    )
        .into_response()
}

pub async fn health(State(gw): State<Arc<Gateway>>, headers: http::HeaderMap) -> Response {
    let rt = gw.rt();
    let admin = crate::auth::basic_credentials(&headers)
        .is_some_and(|(u, p)| super::usage::admin_ok(&rt.config, &u, &p));
    let now = now_ms();
    let upstreams: Vec<serde_json::Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let s = &u.state;
            let cooldown_until = s.cooldown_until_ms.load(Ordering::Relaxed);
            let cooling = cooldown_until > now;
            let probe_unhealthy = s.probe_unhealthy.load(Ordering::Relaxed);
            let status = if !u.config.enabled {
                "disabled"
            } else if cooling {
                "cooling_down"
            } else if probe_unhealthy {
                "unhealthy"
            } else {
                "healthy"
            };
            let last_error = s.last_error.lock().clone().map(|e| redact(&e, &u.config.key));
            serde_json::json!({
                "id": u.config.id,
                "name": u.config.name,
                "enabled": u.config.enabled,
                "status": status,
                "priority": u.config.priority,
                "weight": u.config.weight,
                "in_flight": u.in_flight(),
                "consecutive_failures": s.consecutive_failures.load(Ordering::Relaxed),
                "cooldown_until": cooling.then(|| chrono::DateTime::from_timestamp_millis(cooldown_until as i64).map(|t| t.to_rfc3339())).flatten(),
                "latency_ewma_ms": s.latency_ewma_us.load(Ordering::Relaxed) as f64 / 1000.0,
                "requests_total": s.requests_total.load(Ordering::Relaxed),
                "failures_total": s.failures_total.load(Ordering::Relaxed),
                "last_error": last_error,
            })
        })
        .collect();
    let available = upstreams
        .iter()
        .filter(|u| u["status"] == "healthy")
        .count();
    let enabled = rt.upstreams.iter().filter(|u| u.config.enabled).count();
    let status = if available == enabled && enabled > 0 {
        "ok"
    } else if available > 0 {
        "degraded"
    } else {
        "unavailable"
    };
    let mut body = serde_json::json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": gw.started_at.elapsed().as_secs(),
    });
    if admin {
        body["upstreams"] = serde_json::Value::Array(upstreams);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// An upstream's error text may echo the credential it was sent; never show it.
fn redact(text: &str, key: &str) -> String {
    if key.len() >= 4 && text.contains(key) {
        text.replace(key, "[redacted]")
    } else {
        text.to_string()
    }
}
