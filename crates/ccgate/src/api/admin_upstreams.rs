//! `/api/admin/upstreams`: every upstream with its health, and runtime overrides of `enabled`, `weight` and
//! `priority` that an admin sets without editing `upstreams.json`. Overrides are kept in the store, so they survive
//! restarts and every instance on a shared store applies them within about a second (`crate::tenants` follows
//! them). They are shown beside the file's values. An upstream's key is never shown.

use super::admin_session::admin_only;
use super::admin_tenants::{double_option, parse_json, read_body, AdminError};
use crate::ledger::store::UpstreamOverride;
use crate::state::Gateway;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::Arc;

fn list_json(gw: &Gateway) -> Value {
    let rt = gw.rt();
    let file = gw.file_config();
    let overrides = gw.upstream_overrides();
    let now = crate::routing::health::now_ms();
    let items: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let c = &u.config;
            let from_file = file
                .as_ref()
                .and_then(|f| f.upstreams.iter().find(|x| x.id == c.id));
            let o = overrides.iter().find(|o| o.upstream_id == c.id);
            let s = &u.state;
            let ms = |us: u64| (us > 0).then(|| us as f64 / 1000.0);
            let cooldown_until = s.cooldown_until_ms.load(Ordering::Relaxed);
            let (error_rate, _) = s.error_rate(now);
            json!({
                "id": c.id,
                "name": c.name,
                "url": u.base_url(),
                "status": super::probes::upstream_status(u, now),
                "inFlight": u.in_flight(),
                "enabled": c.enabled,
                "weight": c.weight,
                "priority": c.priority,
                // Trust demotion (docs/trust.md): below every tier until an admin clears the flag; apart from
                // the priority override.
                "demoted": u.state.demoted.load(std::sync::atomic::Ordering::Relaxed),
                "suspect": gw.trust.open_checks(&c.id),
                "file": from_file.map(|f| json!({"enabled": f.enabled, "weight": f.weight, "priority": f.priority})),
                "overrides": {
                    "enabled": o.and_then(|o| o.enabled),
                    "weight": o.and_then(|o| o.weight),
                    "priority": o.and_then(|o| o.priority),
                },
                // Moving averages (alpha 1/8) of time to response headers and to the first token, the error rate of
                // the last minute, and the end of a cooldown (routing/health.rs).
                "health": {
                    "status": super::probes::upstream_status(u, now),
                    "latencyMs": ms(s.latency_ewma_us.load(Ordering::Relaxed)),
                    "ttftMs": ms(s.ttft_ewma_us.load(Ordering::Relaxed)),
                    "errorRatePercent": error_rate,
                    "cooldownUntil": (cooldown_until > now)
                        .then(|| chrono::DateTime::from_timestamp_millis(cooldown_until as i64).map(|t| t.to_rfc3339()))
                        .flatten(),
                    "inFlight": u.in_flight(),
                    "requestsTotal": s.requests_total.load(Ordering::Relaxed),
                    "failuresTotal": s.failures_total.load(Ordering::Relaxed),
                },
            })
        })
        .collect();
    json!({ "upstreams": items })
}

/// `GET /api/admin/upstreams`
pub async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    match admin_only(&gw, req.method(), req.headers(), req.extensions()).await {
        Ok(_) => (StatusCode::OK, axum::Json(list_json(&gw))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A change: a value sets the override, `null` clears it (back to the file's value), absent leaves it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default, deserialize_with = "double_option")]
    enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "double_option")]
    weight: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    priority: Option<Option<i64>>,
}

/// `PATCH /api/admin/upstreams/{id}`
pub async fn update(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        let change: Change = parse_json(&read_body(&gw, body).await?)?;
        if !gw.rt().upstreams.iter().any(|u| u.config.id == id) {
            return Err(AdminError::UpstreamNotFound(id.clone()));
        }
        if let Some(Some(w)) = change.weight {
            if !(0..=1_000_000).contains(&w) {
                return Err(AdminError::invalid(
                    "weight",
                    "a whole number from 0 to 1000000",
                ));
            }
        }
        let mut o = gw
            .upstream_overrides()
            .into_iter()
            .find(|o| o.upstream_id == id)
            .unwrap_or(UpstreamOverride {
                upstream_id: id.clone(),
                ..Default::default()
            });
        if let Some(v) = change.enabled {
            o.enabled = v;
        }
        if let Some(v) = change.weight {
            o.weight = v;
        }
        if let Some(v) = change.priority {
            o.priority = v;
        }
        o.updated_ms = chrono::Utc::now().timestamp_millis().max(o.updated_ms + 1);
        gw.ledger.store.put_upstream_override(&o).await?;
        crate::tenants::reload(&gw).await?;
        let all = list_json(&gw);
        Ok::<_, AdminError>(
            all["upstreams"]
                .as_array()
                .and_then(|a| a.iter().find(|u| u["id"] == id.as_str()).cloned())
                .unwrap_or(Value::Null),
        )
    }
    .await;
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}
