//! Upstream trust in the admin API (docs/trust.md): `GET /api/admin/upstreams/{id}/scorecard` and
//! `POST /api/admin/upstreams/{id}/trust/clear` (body `{}` clears every open flag, `{"check": "…"}` one check's),
//! which also lifts a demotion.

use super::admin_session::admin_only;
use super::admin_tenants::{parse_json, read_body, AdminError};
use crate::state::Gateway;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

fn known(gw: &Gateway, id: &str) -> Result<(), AdminError> {
    if gw.rt().upstreams.iter().any(|u| u.config.id == id) {
        Ok(())
    } else {
        Err(AdminError::NotFound(id.to_owned()))
    }
}

/// `GET /api/admin/upstreams/{id}/scorecard`
pub async fn scorecard(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        known(&gw, &id)?;
        Ok::<_, AdminError>(crate::trust::scorecard::scorecard(&gw, &id).await?)
    }
    .await;
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Clear {
    check: Option<String>,
}

/// `POST /api/admin/upstreams/{id}/trust/clear`
pub async fn clear(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        let body = read_body(&gw, body).await?;
        let clear: Clear = if body.iter().all(u8::is_ascii_whitespace) {
            Clear::default()
        } else {
            parse_json(&body)?
        };
        if let Some(c) = &clear.check {
            if !crate::trust::checks::NAMES.contains(&c.as_str()) {
                return Err(AdminError::invalid(
                    "check",
                    format!("one of {}", crate::trust::checks::NAMES.join(", ")),
                ));
            }
        }
        known(&gw, &id)?;
        let n = gw.trust.clear(&gw, &id, clear.check.as_deref()).await?;
        tracing::info!(upstream = %id, check = ?clear.check, cleared = n, "upstream trust flags cleared by an admin");
        Ok::<_, AdminError>(json!({"upstream": id, "cleared": n}))
    }
    .await;
    match r {
        Ok(v) => (StatusCode::OK, axum::Json(v)).into_response(),
        Err(e) => e.into_response(),
    }
}
