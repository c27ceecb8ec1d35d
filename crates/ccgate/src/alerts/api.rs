//! `GET /api/admin/alerts`: the recent alerts and what became of each delivery, for the admin (HTTP Basic, the
//! admin credentials of `server.json`, throttled like every login).

use crate::api::usage::{admin_login, AdminLogin};
use crate::error::{anthropic_error_body, Protocol};
use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use std::sync::Arc;

pub async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rt = gw.rt();
    let headers = req.headers();
    let client = crate::auth::client_ip(
        headers,
        req.extensions(),
        rt.config.server.trust_proxy_headers,
    );
    if let Err(e) = crate::auth::check_lockout(&gw, client) {
        return e.into_response_for(Protocol::Anthropic);
    }
    let refused = |status: StatusCode, kind: &str, msg: &str| {
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            anthropic_error_body(kind, msg),
        )
            .into_response()
    };
    match crate::auth::basic_credentials(headers).map(|(u, p)| admin_login(&rt.config, &u, &p)) {
        Some(AdminLogin::Accepted) => {}
        Some(AdminLogin::Refused(problem)) => {
            return refused(
                StatusCode::FORBIDDEN,
                "permission_error",
                &crate::api::usage::admin_refused_message(problem),
            )
        }
        wrong => {
            if wrong.is_some() {
                crate::auth::note_failure(&gw, client, "/api/admin/alerts");
            }
            return refused(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "admin credentials required (HTTP Basic auth with server.json's admin.username and admin.password)",
            );
        }
    }
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
