//! The request log: `GET /api/admin/requests` (every tenant, admin credentials) and `GET /api/tenant/requests` (the
//! caller's own, by its key). Newest first, `limit` rows a page (default 100, at most 1,000), `cursor` from the
//! previous page's `nextCursor`; `format=csv` exports the page as CSV.
//!
//! Filters: `tenant`, `model`, `upstream`, `status` (a code such as `429`, or a class such as `5xx`), `from` and `to`
//! (RFC 3339 times, or `YYYY-MM-DD` days in `server.timezone`; `to` is exclusive for a time, inclusive for a day),
//! `request` (the gateway's request id, as in a trust flag's evidence).

use super::admin_session::admin_only;
use super::admin_tenants::AdminError;
use crate::error::Protocol;
use crate::ledger::store::{RequestFilter, RequestLogRow};
use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, TimeZone};
use http::{header, StatusCode};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1_000;

/// The query string's filters, or the parameter that is wrong.
fn filter_from(
    q: &HashMap<String, String>,
    tz: chrono_tz::Tz,
) -> Result<(RequestFilter, i64, bool), AdminError> {
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let status = match q.get("status").map(String::as_str) {
        None | Some("") => None,
        Some(s) if s.len() == 3 && s.ends_with("xx") => {
            let d: i64 = s[..1]
                .parse()
                .map_err(|_| AdminError::invalid("status", "a status code (429) or class (4xx)"))?;
            Some((d * 100, d * 100 + 99))
        }
        Some(s) => {
            let code: i64 = s
                .parse()
                .map_err(|_| AdminError::invalid("status", "a status code (429) or class (4xx)"))?;
            Some((code, code))
        }
    };
    let time = |k: &str, end: bool| time_param(q, k, end, tz);
    let limit = match text("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| AdminError::invalid("limit", format!("1 to {MAX_LIMIT}")))?,
    };
    let before_id =
        match text("cursor") {
            None => None,
            Some(c) => Some(c.parse::<i64>().map_err(|_| {
                AdminError::invalid("cursor", "the nextCursor of the previous page")
            })?),
        };
    let csv = match q.get("format").map(String::as_str) {
        None | Some("") | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(AdminError::invalid("format", "json or csv")),
    };
    Ok((
        RequestFilter {
            tenant_id: text("tenant"),
            model: text("model"),
            upstream_id: text("upstream"),
            status,
            from_ms: time("from", false)?,
            to_ms: time("to", true)?,
            before_id,
            request_id: text("request"),
        },
        limit,
        csv,
    ))
}

/// Parameter `k` as milliseconds since the epoch: an RFC 3339 time, or a day (`YYYY-MM-DD`) in `tz`, whose start
/// it names, or with `end` its end (the next local midnight), so that a day given as `to` is included.
pub(super) fn time_param(
    q: &HashMap<String, String>,
    k: &str,
    end: bool,
    tz: chrono_tz::Tz,
) -> Result<Option<i64>, AdminError> {
    let Some(v) = q.get(k).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Ok(Some(t.timestamp_millis()));
    }
    let day = NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| {
        AdminError::invalid(
            k,
            "an RFC 3339 time (2026-12-07T10:00:00Z) or a day (2026-12-07)",
        )
    })?;
    let day = if end {
        day.succ_opt().unwrap_or(day)
    } else {
        day
    };
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    Ok(Some(match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.timestamp_millis(),
        None => midnight.and_utc().timestamp_millis(),
    }))
}

pub(super) fn query_map(uri: &http::Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

async fn page(
    gw: &Gateway,
    f: &RequestFilter,
    limit: i64,
    csv: bool,
) -> Result<Response, AdminError> {
    let rows = gw.ledger.store.requests_page(f, limit).await?;
    let next = (rows.len() as i64 == limit)
        .then(|| rows.last().map(|r| r.id))
        .flatten();
    if csv {
        return Ok(csv_response(&rows, next));
    }
    let items: Vec<serde_json::Value> = rows.iter().map(row_json).collect();
    Ok((
        StatusCode::OK,
        axum::Json(json!({"requests": items, "nextCursor": next.map(|n| n.to_string())})),
    )
        .into_response())
}

fn row_json(r: &RequestLogRow) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["time"] = json!(chrono::DateTime::from_timestamp_millis(r.ts_ms).map(|t| t.to_rfc3339()));
    v["cost_usd"] = json!(r.cost_nanousd as f64 / 1e9);
    v
}

fn csv_response(rows: &[RequestLogRow], next: Option<i64>) -> Response {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut ok = true;
    for r in rows {
        ok &= w.serialize(r).is_ok();
    }
    if rows.is_empty() {
        // Headers even for an empty page.
        ok &= w
            .write_record([
                "id",
                "ts_ms",
                "request_id",
                "tenant_id",
                "upstream_id",
                "protocol",
                "endpoint",
                "model",
                "upstream_model",
                "stream",
                "status",
                "outcome",
                "error_class",
                "input_tokens",
                "cache_write_5m_tokens",
                "cache_write_1h_tokens",
                "cache_read_tokens",
                "output_tokens",
                "cost_nanousd",
                "latency_ms",
                "ttft_ms",
                "instance_id",
            ])
            .is_ok();
    }
    let body = match (ok, w.into_inner()) {
        (true, Ok(b)) => b,
        _ => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "could not write the CSV").into_response();
        }
    };
    let mut resp = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"ccgate-requests.csv\"",
            ),
        ],
        body,
    )
        .into_response();
    if let Some(n) = next.and_then(|n| http::HeaderValue::from_str(&n.to_string()).ok()) {
        resp.headers_mut().insert("x-next-cursor", n);
    }
    resp
}

/// `GET /api/admin/requests`
pub async fn admin(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let checked = admin_only(&gw, req.method(), req.headers(), req.extensions())
        .await
        .and_then(|_| filter_from(&query_map(req.uri()), gw.rt().config.server.timezone));
    let r = match checked {
        Ok((f, limit, csv)) => page(&gw, &f, limit, csv).await,
        Err(e) => Err(e),
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/tenant/requests`: the caller's own requests (a `tenant` parameter naming another tenant is refused).
pub async fn tenant(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let checked = tenant_filter(&gw, &req);
    let r = match checked {
        Ok(Ok((f, limit, csv))) => page(&gw, &f, limit, csv).await,
        Ok(Err(e)) => Err(e),
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    r.unwrap_or_else(IntoResponse::into_response)
}

/// The tenant's own filter: authentication fails in the Anthropic shape (as every tenant endpoint), a bad
/// parameter in the admin API's.
#[allow(clippy::result_large_err)]
fn tenant_filter(
    gw: &Gateway,
    req: &Request,
) -> Result<Result<(RequestFilter, i64, bool), AdminError>, crate::error::ApiError> {
    let rt = gw.runtime.load_full();
    let t = crate::auth::tenant_throttled(
        gw,
        &rt,
        req.headers(),
        req.extensions(),
        "/api/tenant/requests",
    )?;
    let q = query_map(req.uri());
    if q.get("tenant")
        .is_some_and(|v| !v.is_empty() && *v != t.config.id)
    {
        return Ok(Err(AdminError::Forbidden(
            "a tenant key lists only its own requests".into(),
        )));
    }
    Ok(
        filter_from(&q, rt.config.server.timezone).map(|(mut f, limit, csv)| {
            f.tenant_id = Some(t.config.id.clone());
            (f, limit, csv)
        }),
    )
}
