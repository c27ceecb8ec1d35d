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

/// A browser (it asks for HTML) is sent to the dashboard, as the original served it at `/`; probes, Claude Code's
/// included, keep their plain 200.
pub async fn root(method: http::Method, headers: http::HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if method == http::Method::GET && wants_html {
        return axum::response::Redirect::to("/dashboard").into_response();
    }
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "CCGate is running\n",
    )
        .into_response()
}

/// `disabled`, `cooling_down`, `unhealthy` (failed its probe), `ejected` (outlier) or `healthy`.
pub fn upstream_status(u: &crate::state::UpstreamRt, now: u64) -> &'static str {
    let s = &u.state;
    if !u.config.enabled {
        "disabled"
    } else if s.cooldown_until_ms.load(Ordering::Relaxed) > now {
        "cooling_down"
    } else if s.probe_unhealthy.load(Ordering::Relaxed) {
        "unhealthy"
    } else if s.is_ejected(now) {
        "ejected"
    } else {
        "healthy"
    }
}

pub async fn health(State(gw): State<Arc<Gateway>>, req: axum::extract::Request) -> Response {
    let rt = gw.rt();
    let headers = req.headers();
    // Credentials are checked (and throttled) only when sent: load balancers probe without any.
    let admin = match crate::auth::basic_credentials(headers) {
        // The console's session cookie shows the admin view too.
        None => {
            headers.contains_key(header::COOKIE)
                && super::admin_session::admin_only(&gw, req.method(), headers, req.extensions())
                    .await
                    .is_ok()
        }
        Some((u, p)) => {
            let client = crate::auth::client_ip(
                headers,
                req.extensions(),
                rt.config.server.trust_proxy_headers,
            );
            if let Err(e) = crate::auth::check_lockout(&gw, client) {
                return e.into_response_for(crate::error::Protocol::Anthropic);
            }
            match super::usage::admin_login(&rt.config, &u, &p) {
                super::usage::AdminLogin::Accepted => true,
                // The right credentials with a refused default password: not a guess, not counted.
                super::usage::AdminLogin::Refused(_) => false,
                super::usage::AdminLogin::Wrong => {
                    crate::auth::note_failure(&gw, client, "/health");
                    false
                }
            }
        }
    };
    let now = now_ms();
    let upstreams: Vec<serde_json::Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let s = &u.state;
            let cooldown_until = s.cooldown_until_ms.load(Ordering::Relaxed);
            let cooling = cooldown_until > now;
            let status = upstream_status(u, now);
            let ejected_until = s.ejected_until_ms.load(Ordering::Relaxed);
            let (error_rate, window_attempts) = if ejected_until > now {
                (s.ejection_error_rate.load(Ordering::Relaxed), 0)
            } else {
                s.error_rate(now)
            };
            let last_error = s.current_error();
            let at = |ms: u64| {
                chrono::DateTime::from_timestamp_millis(ms as i64).map(|t| t.to_rfc3339())
            };
            let last_success_ms = s.last_success_ms.load(Ordering::Relaxed);
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
                // Only while no success came after it (routing/health.rs: `current_error`).
                "last_error": last_error.as_ref().map(|e| redact(&e.text, &u.config.key)),
                "last_error_at": last_error.as_ref().and_then(|e| at(e.at_ms)),
                "last_success_at": (last_success_ms > 0).then(|| at(last_success_ms)).flatten(),
                // Outlier detection (routing/health.rs): the error rate over the last minute (while ejected: the
                // rate that caused it), the ejection, and the share of its traffic while it ramps back.
                "error_rate_percent": error_rate,
                "window_attempts": window_attempts,
                "ejected_until": (ejected_until > now).then(|| chrono::DateTime::from_timestamp_millis(ejected_until as i64).map(|t| t.to_rfc3339())).flatten(),
                "traffic_share_percent": s.traffic_share(now),
            })
        })
        .collect();
    let available = upstreams
        .iter()
        .filter(|u| u["status"] == "healthy")
        .count();
    let enabled = rt.upstreams.iter().filter(|u| u.config.enabled).count();
    let ledger = gw.ledger.health.report();
    let status = if available == enabled && enabled > 0 {
        // Requests are served, but a ledger that cannot store them is a problem to page someone about.
        if ledger.status == "ok" {
            "ok"
        } else {
            "degraded"
        }
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
    // The running config is the last good one; the files on disk may say otherwise after a rejected reload.
    let rejected = gw.rejected_config.lock().clone();
    body["config"] = match (&rejected, admin) {
        (None, _) => serde_json::json!({"status": "ok"}),
        (Some(r), true) => serde_json::json!({
            "status": "rejected",
            "error": r.error,
            "since": r.since.to_rfc3339(),
            "note": "the files on disk were rejected; the last good config is still running",
        }),
        (Some(_), false) => serde_json::json!({"status": "rejected"}),
    };
    body["ledger"] = if admin {
        serde_json::to_value(&ledger).unwrap_or_default()
    } else {
        serde_json::json!({"status": ledger.status})
    };
    if let Some(shared) = gw.shared_limits() {
        // `shared`: limits hold across instances; `local`: the database failed lately and this instance enforces
        // its last known budgets alone (policy/lease.rs).
        let status = shared.status();
        body["sharedLimits"] = if admin {
            status
        } else {
            serde_json::json!({"mode": status["mode"]})
        };
    }
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
