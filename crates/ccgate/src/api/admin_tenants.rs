//! `/api/admin/tenants`: the admin API for tenants (list, create, change, rotate, delete, import).
//!
//! Authenticated by HTTP Basic with the admin credentials of `server.json` (throttled per client address like every
//! login). Tenants made here are console tenants, kept in the store (`crate::tenants`), so every instance on a shared
//! store serves them within about a second; this instance reloads them at once. A key is returned once, when it
//! is made or rotated; the store keeps only its SHA-256. Tenants of `tenants.json` are listed with `source: "file"`
//! and answer 409 to changes: they are edited in the file, or imported into the console first.
//!
//! Errors are `{"error": {"type", "message", "field"?}}` with the status in [`AdminError::status`]; the other
//! admin endpoints (`request_log.rs`) use the same.

use super::admin_session::admin_only;
use crate::config::{TenantConfig, TenantSource};
use crate::ledger::store::{StoredTenant, UsageQuery};
use crate::ledger::LedgerError;
use crate::policy::budget::{day_key, local_day, Window};
use crate::state::Gateway;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use http::{header, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why an admin API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin credentials required: HTTP Basic with the admin username and password of server.json")]
    Unauthorized,
    #[error("wrong username or password")]
    WrongLogin,
    #[error("not logged in, or the console session ended (12 hours after login, at logout, or when the admin password changed): log in again")]
    NoSession,
    #[error("this change needs the X-CSRF-Token header of your console session (GET /api/admin/session gives it); a page of another site cannot send it")]
    CsrfRefused,
    #[error("{0}")]
    PasswordRefused(String),
    #[error("too many failed authentication attempts from your address; try again in {0} seconds")]
    LockedOut(u64),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("no tenant with id {0:?}")]
    NotFound(String),
    #[error("no upstream with id {0:?} in upstreams.json")]
    UpstreamNotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error("the store failed: {0}")]
    Store(#[from] LedgerError),
}

impl AdminError {
    pub fn status(&self) -> StatusCode {
        match self {
            AdminError::Unauthorized | AdminError::WrongLogin | AdminError::NoSession => {
                StatusCode::UNAUTHORIZED
            }
            AdminError::CsrfRefused => StatusCode::FORBIDDEN,
            AdminError::PasswordRefused(_) => StatusCode::FORBIDDEN,
            AdminError::LockedOut(_) => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Invalid { .. } => StatusCode::BAD_REQUEST,
            AdminError::NotFound(_) | AdminError::UpstreamNotFound(_) => StatusCode::NOT_FOUND,
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::Conflict(_) => StatusCode::CONFLICT,
            AdminError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            AdminError::Unauthorized | AdminError::WrongLogin | AdminError::NoSession => {
                "authentication_error"
            }
            AdminError::CsrfRefused => "permission_error",
            AdminError::PasswordRefused(_) => super::usage::ADMIN_PASSWORD_REFUSED,
            AdminError::LockedOut(_) => "rate_limit_error",
            AdminError::Invalid { .. } => "invalid_request_error",
            AdminError::NotFound(_) | AdminError::UpstreamNotFound(_) => "not_found_error",
            AdminError::Forbidden(_) => "permission_error",
            AdminError::Conflict(_) => "conflict_error",
            AdminError::Store(_) => "store_error",
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> AdminError {
        AdminError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let mut error = json!({"type": self.kind(), "message": self.to_string()});
        if let AdminError::Invalid { field, .. } = &self {
            error["field"] = json!(field);
        }
        let mut resp = (self.status(), axum::Json(json!({ "error": error }))).into_response();
        match &self {
            AdminError::Unauthorized => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Basic realm=\"ccgate admin\""),
                );
            }
            AdminError::LockedOut(secs) => {
                if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

/// A new tenant key: `sk-ccg-` and 40 random letters and digits (238 bits).
fn new_key() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    format!(
        "sk-ccg-{}",
        Alphanumeric.sample_string(&mut rand::rngs::OsRng, 40)
    )
}

fn key_hint(key: &str) -> String {
    let tail: String = key
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("sk-…{tail}")
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The fields a create or change may set; anything else is refused with its name.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TenantFields {
    id: Option<String>,
    name: Option<String>,
    enabled: Option<bool>,
    allowed_models: Option<Vec<String>>,
    limits: Option<Value>,
    /// `null` clears it.
    #[serde(default, deserialize_with = "double_option")]
    expires_at: Option<Option<String>>,
    /// Batch create: how many, named `namePrefix-1` … (ids generated).
    count: Option<u32>,
    name_prefix: Option<String>,
}

/// For a field where `null` means "clear": absent is `None`, `null` is `Some(None)`.
pub(super) fn double_option<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

fn parse_fields(body: &Bytes) -> Result<TenantFields, AdminError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(TenantFields::default());
    }
    parse_json(body)
}

/// A JSON body, or a 400 naming the field serde refused (an unknown field) or `body`.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AdminError> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        // serde names an unknown field in its message: "unknown field `x`, expected one of …".
        let field = msg
            .split('`')
            .nth(1)
            .filter(|_| msg.starts_with("unknown field"))
            .unwrap_or("body");
        AdminError::invalid(field, msg.clone())
    })
}

fn check_id(id: &str) -> Result<(), AdminError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::invalid(
            "id",
            "1 to 64 characters: letters, digits, '-', '_' or '.'",
        ))
    }
}

fn check_name(name: &str) -> Result<(), AdminError> {
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AdminError::invalid(
            "name",
            "1 to 100 characters, no control characters",
        ));
    }
    Ok(())
}

fn check_models(models: &[String]) -> Result<(), AdminError> {
    for (i, m) in models.iter().enumerate() {
        let ok = !m.is_empty() && m.len() <= 256 && m.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            return Err(AdminError::invalid(
                format!("allowedModels[{i}]"),
                "a model name or a pattern with '*' (printable ASCII, at most 256 characters)",
            ));
        }
    }
    Ok(())
}

/// `limits` as in tenants.json, validated by the same rules (and unknown names refused).
fn check_limits(limits: &Value) -> Result<String, AdminError> {
    let mut unknown = Vec::new();
    let section: crate::config::raw::LimitsSection =
        serde_ignored::deserialize(limits, |path| unknown.push(path.to_string()))
            .map_err(|e| AdminError::invalid("limits", e.to_string()))?;
    if let Some(u) = unknown.first() {
        return Err(AdminError::invalid(
            format!("limits.{u}"),
            "unknown limit (known: daily, weekly, monthly, total (each {\"maxUSD\": n}), rpm, maxConcurrent)",
        ));
    }
    crate::config::load::validate_limits(Some(section), "")
        .map_err(|e| AdminError::invalid(e.path.trim_start_matches('.'), e.message.clone()))?;
    Ok(limits.to_string())
}

fn check_expiry(at: &str) -> Result<(), AdminError> {
    chrono::DateTime::parse_from_rfc3339(at)
        .map(|_| ())
        .map_err(|e| {
            AdminError::invalid(
                "expiresAt",
                format!("not an RFC 3339 time ({e}), e.g. 2027-01-31T00:00:00Z"),
            )
        })
}

/// The tenant as the API shows it: never the key.
/// A tenant as listed. A console tenant is shown as the store holds it (what every instance serves within a
/// second), never half from the store and half from this instance's runtime.
fn tenant_json(t: &TenantConfig, stored: Option<&StoredTenant>, usage: &Usage) -> Value {
    let (name, enabled, allowed_models, hint, limits, expires_at) = match stored {
        Some(s) => (
            s.name.clone(),
            s.enabled,
            serde_json::from_str(&s.allowed_models).unwrap_or(Value::Null),
            s.key_hint.clone(),
            serde_json::from_str(&s.limits).unwrap_or(Value::Null),
            s.expires_at.clone(),
        ),
        None => (
            t.name.clone(),
            t.enabled,
            json!(t.allowed_models),
            key_hint(&t.key),
            limits_value(&t.limits),
            t.expires_at.map(|at| at.to_rfc3339()),
        ),
    };
    let today = usage.today.get(&t.id).copied().unwrap_or_default();
    let month = usage.month.get(&t.id).copied().unwrap_or_default();
    json!({
        "id": t.id,
        "name": name,
        "source": t.source.as_str(),
        "enabled": enabled,
        "allowedModels": allowed_models,
        "limits": limits,
        "expiresAt": expires_at,
        "keyHint": hint,
        "usage": {
            "today": {"requests": today.0, "costUSD": today.1 as f64 / 1e9},
            "month": {"requests": month.0, "costUSD": month.1 as f64 / 1e9},
        },
    })
}

/// A file tenant's limits in the tenants.json shape.
fn limits_value(l: &crate::config::Limits) -> Value {
    serde_json::to_value(limits_section(l)).unwrap_or(Value::Null)
}

fn limits_section(l: &crate::config::Limits) -> crate::config::raw::LimitsSection {
    use crate::config::raw::{LimitsSection, RollingEntry, UsdLimit};
    let usd = |nano: Option<i64>| {
        nano.map(|n| UsdLimit {
            max_usd: Some(n as f64 / 1e9),
        })
    };
    LimitsSection {
        daily: usd(l.daily_nanousd),
        weekly: usd(l.weekly_nanousd),
        monthly: usd(l.monthly_nanousd),
        total: usd(l.total_nanousd),
        rolling: (!l.rolling.is_empty()).then(|| {
            l.rolling
                .iter()
                .map(|r| RollingEntry {
                    hours: Some(f64::from(r.hours)),
                    max_usd: Some(r.max_nanousd as f64 / 1e9),
                })
                .collect()
        }),
        rpm: l.rpm,
        tpm: l.tpm,
        max_concurrent: l.max_concurrent,
        max_output_tokens: l.max_output_tokens,
        clamp_output_tokens: l.clamp_output_tokens.then_some(true),
        models: (!l.models.is_empty()).then(|| {
            l.models
                .iter()
                .map(|m| (m.pattern.clone(), limits_section(&m.limits)))
                .collect()
        }),
    }
}

/// Requests and nano-USD per tenant, today and this month.
#[derive(Default)]
struct Usage {
    today: BTreeMap<String, (i64, i64)>,
    month: BTreeMap<String, (i64, i64)>,
}

async fn usage(gw: &Gateway) -> Result<Usage, LedgerError> {
    let rt = gw.rt();
    let today = local_day(rt.config.server.timezone, Utc::now());
    let month_start = Window::Monthly.start(today).unwrap_or(today);
    let report = gw
        .ledger
        .store
        .usage(&UsageQuery {
            tenant_id: None,
            from_day: Some(day_key(month_start)),
            to_day: Some(day_key(today)),
        })
        .await?;
    let today_key = day_key(today);
    let mut u = Usage::default();
    for row in report.rows {
        let add = |m: &mut BTreeMap<String, (i64, i64)>| {
            let e = m.entry(row.tenant_id.clone()).or_default();
            e.0 += row.totals.requests;
            e.1 = e.1.saturating_add(row.totals.cost_nanousd);
        };
        add(&mut u.month);
        if row.day == today_key {
            add(&mut u.today);
        }
    }
    Ok(u)
}

async fn stored_by_id(gw: &Gateway) -> Result<BTreeMap<String, StoredTenant>, LedgerError> {
    Ok(gw
        .ledger
        .store
        .console_tenants()
        .await?
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect())
}

fn json_response(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// `GET /api/admin/tenants`
pub async fn list(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    match list_inner(&gw, &parts).await {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

async fn list_inner(gw: &Gateway, parts: &http::request::Parts) -> Result<Value, AdminError> {
    admin_only(gw, &parts.method, &parts.headers, &parts.extensions).await?;
    let stored = stored_by_id(gw).await?;
    let usage = usage(gw).await?;
    let rt = gw.runtime.load_full();
    let tz = rt.config.server.timezone;
    let shared = super::tenant_status::shared_window_spend(gw, tz).await;
    let mut clusters = std::collections::HashMap::new();
    for t in &rt.config.tenants {
        if let Some(c) = super::usage::cluster_use(gw, t, &rt.config.openai.models, tz).await {
            clusters.insert(t.id.clone(), c);
        }
    }
    let mut out: Vec<Value> = rt
        .config
        .tenants
        .iter()
        .map(|t| {
            let s = (t.source == TenantSource::Console)
                .then(|| stored.get(&t.id))
                .flatten();
            let mut v = tenant_json(t, s, &usage);
            // Each limit with max, used, remaining and reset time, as the tenant's own status shows it.
            if let Some(served) = rt.tenants_by_id.get(&t.id) {
                let (_, limits) = super::tenant_status::limit_status(
                    served,
                    tz,
                    shared.as_deref(),
                    clusters.get(&t.id),
                );
                v["limitStatus"] = json!(limits);
            }
            v
        })
        .collect();
    // Console tenants the runtime does not serve (they clash with tenants.json): shown, flagged.
    for (id, s) in &stored {
        if rt
            .config
            .tenants
            .iter()
            .any(|t| &t.id == id && t.source == TenantSource::Console)
        {
            continue;
        }
        if let Ok(c) = crate::tenants::to_config(s) {
            let mut v = tenant_json(&c, Some(s), &usage);
            v["served"] = json!(false);
            v["note"] =
                json!("its id or key clashes with a tenants.json tenant, which is served instead");
            out.push(v);
        }
    }
    Ok(json!({ "tenants": out }))
}

/// `POST /api/admin/tenants`: one tenant (`{name, id?, allowedModels?, limits?, expiresAt?}`), or a batch
/// (`{count, namePrefix, …}`). 201 with each tenant and its key, shown this once.
pub async fn create(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    match create_inner(&gw, &parts, body).await {
        Ok(v) => json_response(StatusCode::CREATED, v),
        Err(e) => e.into_response(),
    }
}

pub(super) async fn read_body(gw: &Gateway, body: axum::body::Body) -> Result<Bytes, AdminError> {
    let timeout = gw.rt().config.server.body_read_timeout;
    super::read_body(body, 1 << 16, timeout)
        .await
        .map_err(|e| AdminError::invalid("body", e.to_string()))
}

async fn create_inner(
    gw: &Gateway,
    parts: &http::request::Parts,
    body: axum::body::Body,
) -> Result<Value, AdminError> {
    admin_only(gw, &parts.method, &parts.headers, &parts.extensions).await?;
    let f = parse_fields(&read_body(gw, body).await?)?;
    let batch = f.count.is_some() || f.name_prefix.is_some();
    let names: Vec<(Option<String>, String)> = if batch {
        if f.id.is_some() || f.name.is_some() {
            return Err(AdminError::invalid(
                "count",
                "a batch takes namePrefix and count, not id or name",
            ));
        }
        let count = f.count.unwrap_or(1);
        if !(1..=100).contains(&count) {
            return Err(AdminError::invalid("count", "1 to 100"));
        }
        let prefix = f
            .name_prefix
            .clone()
            .ok_or_else(|| AdminError::invalid("namePrefix", "required with count"))?;
        check_name(&prefix)
            .map_err(|_| AdminError::invalid("namePrefix", "1 to 100 characters"))?;
        (1..=count)
            .map(|i| (None, format!("{prefix}-{i}")))
            .collect()
    } else {
        let name = f
            .name
            .clone()
            .ok_or_else(|| AdminError::invalid("name", "required"))?;
        vec![(f.id.clone(), name)]
    };
    let allowed = f.allowed_models.clone().unwrap_or_else(|| vec!["*".into()]);
    check_models(&allowed)?;
    let limits = check_limits(f.limits.as_ref().unwrap_or(&json!({})))?;
    let expires_at = f.expires_at.clone().flatten();
    if let Some(at) = &expires_at {
        check_expiry(at)?;
    }
    let rt = gw.rt();
    let stored = stored_by_id(gw).await?;
    let mut made = Vec::new();
    for (id, name) in names {
        check_name(&name)?;
        let id = match id {
            Some(id) => {
                check_id(&id)?;
                if rt.config.tenants.iter().any(|t| t.id == id) || stored.contains_key(&id) {
                    return Err(AdminError::invalid(
                        "id",
                        format!("a tenant with id {id:?} exists"),
                    ));
                }
                id
            }
            None => format!("t-{}", uuid::Uuid::now_v7().simple()),
        };
        let key = new_key();
        let t = StoredTenant {
            id,
            name,
            key_sha256: hex::encode(crate::tenants::key_sha256(&key)),
            key_hint: key_hint(&key),
            enabled: f.enabled.unwrap_or(true),
            allowed_models: serde_json::to_string(&allowed).unwrap_or_else(|_| "[]".into()),
            limits: limits.clone(),
            expires_at: expires_at.clone(),
            created_ms: now_ms(),
            updated_ms: now_ms(),
        };
        gw.ledger.store.put_console_tenant(&t).await?;
        made.push((t, key));
    }
    crate::tenants::reload(gw).await?;
    let usage = Usage::default();
    let shown: Vec<Value> = made
        .iter()
        .filter_map(|(s, key)| {
            let c = crate::tenants::to_config(s).ok()?;
            let mut v = tenant_json(&c, Some(s), &usage);
            v["key"] = json!(key);
            Some(v)
        })
        .collect();
    Ok(if batch {
        json!({ "tenants": shown })
    } else {
        shown.into_iter().next().unwrap_or(Value::Null)
    })
}

/// The console tenant `id`, or why it cannot be changed here.
async fn console_tenant(gw: &Gateway, id: &str) -> Result<StoredTenant, AdminError> {
    if let Some(s) = gw
        .ledger
        .store
        .console_tenants()
        .await?
        .into_iter()
        .find(|t| t.id == id)
    {
        return Ok(s);
    }
    if gw
        .rt()
        .config
        .tenants
        .iter()
        .any(|t| t.id == id && t.source == TenantSource::File)
    {
        return Err(AdminError::Conflict(format!(
            "tenant {id:?} is defined in tenants.json: edit the file (the gateway reloads it), or import it into the \
             console first with POST /api/admin/tenants/{id}/import"
        )));
    }
    Err(AdminError::NotFound(id.to_string()))
}

/// Stores a changed console tenant whole (the last write wins whole), serves it here at once, and shows it.
async fn save(gw: &Gateway, mut t: StoredTenant) -> Result<Value, AdminError> {
    t.updated_ms = now_ms().max(t.updated_ms + 1);
    gw.ledger.store.put_console_tenant(&t).await?;
    crate::tenants::reload(gw).await?;
    let c =
        crate::tenants::to_config(&t).map_err(|e| AdminError::invalid("body", e.to_string()))?;
    Ok(tenant_json(&c, Some(&t), &usage(gw).await?))
}

/// `PATCH /api/admin/tenants/{id}`: `name`, `enabled`, `allowedModels`, `limits`, `expiresAt` (null clears).
pub async fn update(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        let f = parse_fields(&read_body(&gw, body).await?)?;
        if f.id.is_some() || f.count.is_some() || f.name_prefix.is_some() {
            return Err(AdminError::invalid(
                if f.id.is_some() { "id" } else { "count" },
                "cannot be changed",
            ));
        }
        let mut t = console_tenant(&gw, &id).await?;
        if let Some(name) = f.name {
            check_name(&name)?;
            t.name = name;
        }
        if let Some(e) = f.enabled {
            t.enabled = e;
        }
        if let Some(m) = f.allowed_models {
            check_models(&m)?;
            t.allowed_models = serde_json::to_string(&m).unwrap_or_else(|_| "[]".into());
        }
        if let Some(l) = &f.limits {
            t.limits = check_limits(l)?;
        }
        if let Some(at) = f.expires_at {
            if let Some(a) = &at {
                check_expiry(a)?;
            }
            t.expires_at = at;
        }
        save(&gw, t).await
    }
    .await;
    match r {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/admin/tenants/{id}/rotate`: a new key, returned once; the old one stops on every instance within
/// about a second.
pub async fn rotate(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        let mut t = console_tenant(&gw, &id).await?;
        let key = new_key();
        t.key_sha256 = hex::encode(crate::tenants::key_sha256(&key));
        t.key_hint = key_hint(&key);
        let mut v = save(&gw, t).await?;
        v["key"] = json!(key);
        Ok::<_, AdminError>(v)
    }
    .await;
    match r {
        Ok(v) => json_response(StatusCode::OK, v),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/admin/tenants/{id}`: the tenant goes, its usage rows stay.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        console_tenant(&gw, &id).await?;
        gw.ledger.store.delete_console_tenant(&id).await?;
        crate::tenants::reload(&gw).await?;
        Ok::<_, AdminError>(())
    }
    .await;
    match r {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/admin/tenants/{id}/import`: copies a tenants.json tenant (same id, key, models and limits) into the
/// console. The file's entry keeps being served until it is removed from tenants.json; from then on the console's
/// copy is, and can be changed here.
pub async fn import(
    State(gw): State<Arc<Gateway>>,
    Path(id): Path<String>,
    req: Request,
) -> Response {
    let (parts, _) = req.into_parts();
    let r = async {
        admin_only(&gw, &parts.method, &parts.headers, &parts.extensions).await?;
        let rt = gw.rt();
        let Some(t) = rt
            .config
            .tenants
            .iter()
            .find(|t| t.id == id && t.source == TenantSource::File)
        else {
            return Err(AdminError::NotFound(id.clone()));
        };
        if stored_by_id(&gw).await?.contains_key(&id) {
            return Err(AdminError::Conflict(format!(
                "tenant {id:?} is already imported; remove it from tenants.json to serve the console's copy"
            )));
        }
        let s = StoredTenant {
            id: t.id.clone(),
            name: t.name.clone(),
            key_sha256: hex::encode(crate::tenants::key_sha256(&t.key)),
            key_hint: key_hint(&t.key),
            enabled: t.enabled,
            allowed_models: serde_json::to_string(&t.allowed_models).unwrap_or_else(|_| "[]".into()),
            limits: limits_value(&t.limits).to_string(),
            expires_at: t.expires_at.map(|at| at.to_rfc3339()),
            created_ms: now_ms(),
            updated_ms: now_ms(),
        };
        gw.ledger.store.put_console_tenant(&s).await?;
        crate::tenants::reload(&gw).await?;
        let mut v = tenant_json(t, Some(&s), &usage(&gw).await?);
        v["note"] = json!("imported; remove this tenant from tenants.json to let the console manage it");
        Ok(v)
    }
    .await;
    match r {
        Ok(v) => json_response(StatusCode::CREATED, v),
        Err(e) => e.into_response(),
    }
}
