//! Model lists, answered by CCGate from its own catalog filtered by the tenant's allow-list (proxying the
//! upstream's list would advertise models the tenant cannot use).

use crate::auth;
use crate::error::{ApiError, Protocol};
use crate::policy::permissions::model_allowed;
use crate::state::Gateway;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use ccgate_meter::catalog::{catalog, ModelInfo};
use http::header;
use std::collections::HashMap;
use std::sync::Arc;

fn allowed_catalog(patterns: &[String]) -> Vec<&'static ModelInfo> {
    catalog()
        .iter()
        .filter(|m| model_allowed(patterns, m.id))
        .collect()
}

fn anthropic_model(m: &ModelInfo) -> serde_json::Value {
    serde_json::json!({
        "type": "model",
        "id": m.id,
        "display_name": m.display_name,
        "created_at": m.created_at,
        "max_input_tokens": m.max_input_tokens,
        "max_tokens": m.max_output_tokens,
    })
}

fn json(v: serde_json::Value) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

/// `GET /anthropic/v1/models?limit=&after_id=&before_id=`
pub async fn anthropic_list(
    State(gw): State<Arc<Gateway>>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let rt = gw.rt();
    let tenant =
        match auth::tenant_throttled(&gw, &rt, req.headers(), req.extensions(), req.uri().path()) {
            Ok(t) => t,
            Err(e) => return e.into_response_for(Protocol::Anthropic),
        };
    let all = allowed_catalog(&tenant.config.allowed_models);
    let limit = q
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, 1000);
    let start = match q.get("after_id") {
        Some(id) => all
            .iter()
            .position(|m| m.id == id)
            .map(|p| p + 1)
            .unwrap_or(all.len()),
        None => 0,
    };
    let end_cap = match q.get("before_id") {
        Some(id) => all.iter().position(|m| m.id == id).unwrap_or(all.len()),
        None => all.len(),
    };
    let page: Vec<&&ModelInfo> = all[start.min(end_cap)..end_cap]
        .iter()
        .take(limit)
        .collect();
    let has_more = start + page.len() < end_cap;
    json(serde_json::json!({
        "data": page.iter().map(|m| anthropic_model(m)).collect::<Vec<_>>(),
        "has_more": has_more,
        "first_id": page.first().map(|m| m.id),
        "last_id": page.last().map(|m| m.id),
    }))
}

/// `GET /anthropic/v1/models/{id}`
pub async fn anthropic_get(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let rt = gw.rt();
    let tenant =
        match auth::tenant_throttled(&gw, &rt, req.headers(), req.extensions(), req.uri().path()) {
            Ok(t) => t,
            Err(e) => return e.into_response_for(Protocol::Anthropic),
        };
    match allowed_catalog(&tenant.config.allowed_models)
        .into_iter()
        .find(|m| m.id == id)
    {
        Some(m) => json(anthropic_model(m)),
        None => ApiError::NotFound {
            method: "GET".into(),
            path: format!("/v1/models/{id}"),
        }
        .into_response_for(Protocol::Anthropic),
    }
}

/// `GET /openai/v1/models`: the configured aliases whose target the tenant may use, then the Claude ids.
pub async fn openai_list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rt = gw.rt();
    if !rt.config.openai.enabled {
        return ApiError::NotFound {
            method: "GET".into(),
            path: req.uri().path().to_string(),
        }
        .into_response_for(Protocol::OpenAi);
    }
    let tenant =
        match auth::tenant_throttled(&gw, &rt, req.headers(), req.extensions(), req.uri().path()) {
            Ok(t) => t,
            Err(e) => return e.into_response_for(Protocol::OpenAi),
        };
    let patterns = &tenant.config.allowed_models;
    let mut ids: Vec<(String, &str)> = rt
        .config
        .openai
        .models
        .iter()
        .filter(|(_, target)| model_allowed(patterns, target))
        .map(|(alias, _)| (alias.clone(), "ccgate"))
        .collect();
    ids.extend(
        allowed_catalog(patterns)
            .into_iter()
            .map(|m| (m.id.to_string(), "anthropic")),
    );
    let body = ccgate_openai::models_list(ids);
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}
