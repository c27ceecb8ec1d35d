//! `GET /api/admin/alerts`: the recent alerts and what became of each delivery, for the admin (HTTP Basic or the
//! console session, `api/admin_session.rs`).

use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::header;
use std::sync::Arc;

pub async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if let Err(e) =
        crate::api::admin_session::admin_only(&gw, req.method(), req.headers(), req.extensions())
            .await
    {
        return e.into_response();
    }
    let rt = gw.rt();
    let mut v = super::history();
    v["hooks"] = serde_json::json!(rt
        .config
        .alerts
        .iter()
        .map(|h| serde_json::json!({
            "target": h.target(),
            "format": h.format,
            "events": h.events.as_ref().map(|e| e.iter().map(|k| k.as_str()).collect::<Vec<_>>()),
        }))
        .collect::<Vec<_>>());
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}
