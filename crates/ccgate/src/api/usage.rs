//! `POST /usage`, compatible with the original: credentials in the JSON body (`{"type":"tenant","apiKey":…}` or
//! `{"type":"admin","username":…,"password":…}`), or a tenant key in `x-api-key`/`Authorization: Bearer`, or
//! admin credentials as HTTP Basic auth. Optional `from`/`to` (YYYY-MM-DD, inclusive, local days in
//! `server.timezone`). A tenant sees only itself; the admin sees every tenant.
//!
//! The answer also carries the original's shape beside CCGate's own fields, so scripts and bots written for the
//! original keep working: `success`, `type` and `data` (`data.usage` with `tenantId`, `date`, `limits.usd`
//! {`used`, `limit`, `percentage`, `exceeded`} and `todayUsage`, plus `data.tenant` for a tenant; for the admin
//! `data.usage` per tenant, `data.system` and `data.upstreams`). Every error answer has `"success": false` and a
//! top-level `message` beside the usual `{"type":"error","error":{…}}`.

use crate::config::defaults::WeakPassword;
use crate::config::{Config, TenantConfig};
use crate::error::{anthropic_error_body, ApiError, Protocol};
use crate::ledger::{LedgerError, RefusalRow, Store, UsageQuery, UsageRow, UsageTotals};
use crate::policy::budget::{local_day, midnight_rfc3339, span_s, usd, TenantState, Window};
use crate::policy::lease::{ClusterUse, ScopeUse};
use crate::state::Gateway;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use http::{header, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageRequest {
    #[serde(rename = "type")]
    kind: Option<String>,
    api_key: Option<String>,
    username: Option<String>,
    password: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

enum Who {
    Tenant(Box<TenantConfig>),
    Admin,
    /// The admin's own credentials, refused because the configured password is a known default or too short.
    RefusedAdmin(WeakPassword),
}

pub async fn usage(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let resp = answer(gw, req).await;
    if resp.status().is_success() {
        return resp;
    }
    with_success_false(resp).await
}

/// An error answer with the original's `"success": false` (and its `message`) added to the JSON body.
async fn with_success_false(resp: Response) -> Response {
    let (mut parts, body) = resp.into_parts();
    // Error bodies are CCGate's own few hundred bytes; the cap only guards against a mistake.
    let bytes = axum::body::to_bytes(body, 64 << 10)
        .await
        .unwrap_or_default();
    let mut v: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        let message = obj
            .get("error")
            .and_then(|e| e.get("message"))
            .cloned()
            .unwrap_or_else(|| json!(parts.status.canonical_reason().unwrap_or("error")));
        obj.insert("success".into(), json!(false));
        obj.entry("message").or_insert(message);
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(v.to_string()))
}

async fn answer(gw: Arc<Gateway>, req: Request) -> Response {
    let rt = gw.runtime.load_full();
    let (parts, body) = req.into_parts();
    let client = crate::auth::client_ip(
        &parts.headers,
        &parts.extensions,
        rt.config.server.trust_proxy_headers,
    );
    // Before anything is read: a locked-out address learns nothing, not even whether its JSON parses.
    if let Err(e) = crate::auth::check_lockout(&gw, client) {
        return e.into_response_for(Protocol::Anthropic);
    }
    let body = match super::read_body(body, 1 << 20, rt.config.server.body_read_timeout).await {
        Ok(b) => b,
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let ur: UsageRequest = if body.iter().all(|b| b.is_ascii_whitespace()) {
        UsageRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return ApiError::BadRequest(format!("invalid JSON body: {e}"))
                    .into_response_for(Protocol::Anthropic)
            }
        }
    };
    let Some(who) = identify(&rt.config, &rt, &parts.headers, &ur) else {
        if presents_credentials(&parts.headers, &ur) {
            crate::auth::note_failure(&gw, client, "/usage");
        }
        let msg = "invalid credentials: send a tenant key (x-api-key, Bearer, or {\"type\":\"tenant\",\"apiKey\":…}) or admin credentials (Basic auth or {\"type\":\"admin\",\"username\":…,\"password\":…})";
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            anthropic_error_body("authentication_error", msg),
        )
            .into_response();
    };
    if let Who::RefusedAdmin(problem) = who {
        return admin_refused_response(problem);
    }
    let range = match parse_range(ur.from.as_deref(), ur.to.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            return ApiError::BadRequest(e.to_string()).into_response_for(Protocol::Anthropic)
        }
    };
    let tz = rt.config.server.timezone;
    let today = local_day(tz, Utc::now());
    // Several instances on one store: the spend of the windows is the shared ledger's, not this instance's.
    let mut shared_spend: Option<std::collections::HashMap<(String, usize), i64>> = None;
    if gw.shared_limits().is_some() {
        match window_spend(&*gw.ledger.store, tz).await {
            Ok(rows) => {
                shared_spend = Some(
                    rows.into_iter()
                        .map(|(w, _, s)| ((s.tenant_id, w as usize), s.cost_nanousd))
                        .collect(),
                )
            }
            Err(e) => {
                tracing::warn!(error = %e, "usage: cannot read the shared spend; showing this instance's view")
            }
        }
    }
    let live = |t: &TenantConfig, w: Window| match &shared_spend {
        Some(m) => m.get(&(t.id.clone(), w as usize)).copied().unwrap_or(0),
        None => gw.tenant_state(&t.id).spent(w, today),
    };
    let admin = matches!(who, Who::Admin);
    let result = match who {
        Who::Tenant(t) => {
            let state = gw.tenant_state(&t.id);
            let models = model_states(&gw, &t);
            let cluster = cluster_use(&gw, &t, &rt.config.openai.models, tz).await;
            tenant_report(
                &*gw.ledger.store,
                &t,
                &range,
                tz,
                &live,
                Some(&state),
                &models,
                cluster.as_ref(),
            )
            .await
        }
        Who::RefusedAdmin(problem) => return admin_refused_response(problem),
        Who::Admin => {
            let mut clusters = std::collections::HashMap::new();
            for t in &rt.config.tenants {
                if let Some(c) = cluster_use(&gw, t, &rt.config.openai.models, tz).await {
                    clusters.insert(t.id.clone(), c);
                }
            }
            admin_report(
                &*gw.ledger.store,
                &rt.config.tenants,
                &range,
                tz,
                &live,
                &|t| (Some(gw.tenant_state(&t.id)), model_states(&gw, t)),
                &clusters,
            )
            .await
        }
    };
    let result = match result {
        Ok(mut v) => {
            if admin {
                v["unauthenticated"] = unauthenticated_json(&gw);
            }
            original_shape(&gw, &rt, &mut v, admin, tz, today)
                .await
                .map(|()| v)
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(v) => (
            [(header::CONTENT_TYPE, "application/json")],
            Body::from(v.to_string()),
        )
            .into_response(),
        Err(e) => ApiError::Internal(format!("usage query failed: {e}"))
            .into_response_for(Protocol::Anthropic),
    }
}

/// Adds the original CCGate's `success`, `type` and `data` to a report (see the module comment). The original had
/// one USD limit, the daily one: `limits.usd` is that; `todayUsage` is today's usage in `server.timezone`.
async fn original_shape(
    gw: &Gateway,
    rt: &crate::state::Runtime,
    v: &mut Value,
    admin: bool,
    tz: chrono_tz::Tz,
    today: NaiveDate,
) -> Result<(), LedgerError> {
    let date = today.to_string();
    let tenant_id = (!admin).then(|| v["tenant"]["id"].as_str().unwrap_or_default().to_owned());
    let today_rows = gw
        .ledger
        .store
        .usage(&UsageQuery {
            tenant_id: tenant_id.clone(),
            from_day: Some(date.clone()),
            to_day: Some(date.clone()),
        })
        .await?
        .rows;
    let today_of = |id: &str| {
        let mut t = UsageTotals::default();
        for r in today_rows.iter().filter(|r| r.tenant_id == id) {
            add(&mut t, &r.totals);
        }
        t
    };
    let usage_of = |t: &TenantConfig| {
        let used = gw.tenant_state(&t.id).spent(Window::Daily, today);
        let limit = t.limits.daily_nanousd;
        json!({
            "tenantId": t.id,
            "tenantName": t.name,
            "date": date,
            "timezone": tz.name(),
            "limits": {"usd": {
                "used": used as f64 / 1e9,
                "limit": limit.map(|l| l as f64 / 1e9),
                "percentage": limit.filter(|l| *l > 0).map_or(0.0, |l| (used as f64 * 10_000.0 / l as f64).round() / 100.0),
                "exceeded": limit.is_some_and(|l| used >= l),
            }},
            "todayUsage": original_totals(&today_of(&t.id)),
        })
    };
    if let Some(id) = tenant_id {
        let Some(t) = rt.tenants_by_id.get(&id) else {
            return Ok(());
        };
        v["success"] = json!(true);
        v["type"] = json!("tenant");
        v["data"] = json!({
            "usage": usage_of(&t.config),
            "tenant": {"id": t.config.id, "name": t.config.name},
        });
        return Ok(());
    }
    let now = crate::routing::health::now_ms();
    let upstreams: Vec<Value> = rt
        .upstreams
        .iter()
        .map(|u| {
            let status = super::probes::upstream_status(u, now);
            let s = &u.state;
            json!({
                "id": u.config.id,
                "name": u.config.name,
                "enabled": u.config.enabled,
                "healthy": status == "healthy",
                "status": status,
                "priority": u.config.priority,
                "weight": u.config.weight,
                "inFlight": u.in_flight(),
                "totalRequests": s.requests_total.load(std::sync::atomic::Ordering::Relaxed),
                "failedRequests": s.failures_total.load(std::sync::atomic::Ordering::Relaxed),
            })
        })
        .collect();
    let mut all_today = UsageTotals::default();
    for r in &today_rows {
        add(&mut all_today, &r.totals);
    }
    let c = &rt.config;
    v["success"] = json!(true);
    v["type"] = json!("admin");
    v["data"] = json!({
        "usage": c.tenants.iter().map(usage_of).collect::<Vec<_>>(),
        "system": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime": gw.started_at.elapsed().as_secs(),
            "date": date,
            "timezone": tz.name(),
            "tenants": {"total": c.tenants.len(), "enabled": c.tenants.iter().filter(|t| t.enabled).count()},
            "upstreams": {
                "total": upstreams.len(),
                "enabled": c.upstreams.iter().filter(|u| u.enabled).count(),
                "healthy": upstreams.iter().filter(|u| u["healthy"] == true).count(),
            },
            "todayUsage": original_totals(&all_today),
        },
        "upstreams": upstreams,
    });
    Ok(())
}

/// Totals under the original's names (its usage records' token and cost fields).
fn original_totals(t: &UsageTotals) -> Value {
    json!({
        "requests": t.requests,
        "inputTokens": t.input_tokens,
        "outputTokens": t.output_tokens,
        "cacheCreationTokens": t.cache_creation_input_tokens,
        "cacheReadTokens": t.cache_read_input_tokens,
        "totalTokens": t.input_tokens + t.output_tokens + t.cache_creation_input_tokens + t.cache_read_input_tokens,
        "totalCost": t.cost_nanousd as f64 / 1e9,
        "errors": t.errors,
    })
}

fn identify(
    cfg: &Config,
    rt: &crate::state::Runtime,
    headers: &http::HeaderMap,
    ur: &UsageRequest,
) -> Option<Who> {
    match ur.kind.as_deref() {
        Some("tenant") => {
            return crate::auth::tenant_for_key(rt, ur.api_key.as_deref()?)
                .map(|t| Who::Tenant(Box::new(t.config.clone())))
        }
        Some("admin") => {
            return admin_login(cfg, ur.username.as_deref()?, ur.password.as_deref()?).who();
        }
        _ => {}
    }
    if let Some((u, p)) = crate::auth::basic_credentials(headers) {
        return admin_login(cfg, &u, &p).who();
    }
    if let Some(key) = ur.api_key.as_deref() {
        return crate::auth::tenant_for_key(rt, key)
            .map(|t| Who::Tenant(Box::new(t.config.clone())));
    }
    crate::auth::authenticate(rt, headers).map(|t| Who::Tenant(Box::new(t.config.clone())))
}

/// Whether the request carries any credential: one that carries none is not a guess and is not counted.
fn presents_credentials(headers: &http::HeaderMap, ur: &UsageRequest) -> bool {
    ur.kind.is_some()
        || ur.api_key.is_some()
        || ur.username.is_some()
        || ur.password.is_some()
        || headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key("x-api-key")
}

/// What presented admin credentials amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminLogin {
    Accepted,
    /// Right username and password, but the password is one nobody may log in with: the admin is told so (a
    /// guesser learns nothing it could use, as the login stays refused), and it is not counted as a failure.
    Refused(WeakPassword),
    Wrong,
}

impl AdminLogin {
    fn who(self) -> Option<Who> {
        match self {
            AdminLogin::Accepted => Some(Who::Admin),
            AdminLogin::Refused(p) => Some(Who::RefusedAdmin(p)),
            AdminLogin::Wrong => None,
        }
    }
}

pub fn admin_login(cfg: &Config, user: &str, pass: &str) -> AdminLogin {
    let a = &cfg.admin;
    if !a.enabled {
        return AdminLogin::Wrong;
    }
    match (a.credentials_match(user, pass), a.password_problem()) {
        (false, _) => AdminLogin::Wrong,
        (true, None) => AdminLogin::Accepted,
        (true, Some(problem)) => AdminLogin::Refused(problem),
    }
}

pub fn admin_ok(cfg: &Config, user: &str, pass: &str) -> bool {
    admin_login(cfg, user, pass) == AdminLogin::Accepted
}

/// The error code the dashboard's login page looks for to show the message instead of "wrong credentials".
pub const ADMIN_PASSWORD_REFUSED: &str = "admin_password_refused";

pub fn admin_refused_message(problem: WeakPassword) -> String {
    format!(
        "Admin login refused: {}. Set your own admin.password in config/server.json (the gateway applies it within a second, no restart).",
        problem.explain()
    )
}

fn admin_refused_response(problem: WeakPassword) -> Response {
    let body = json!({"type": "error", "error": {
        "type": "permission_error",
        "code": ADMIN_PASSWORD_REFUSED,
        "message": admin_refused_message(problem),
    }});
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Requests refused before a tenant was known (wrong or unknown key, wrong admin password) have no tenant to
/// record them under, so the ledger never sees them; the gateway counts them since it started.
fn unauthenticated_json(gw: &Gateway) -> Value {
    let since =
        Utc::now() - chrono::Duration::from_std(gw.started_at.elapsed()).unwrap_or_default();
    json!({
        "failed_logins": gw.failed_logins.load(std::sync::atomic::Ordering::Relaxed),
        "since": since.to_rfc3339(),
        "note": "wrong or unknown tenant keys and admin passwords since the gateway started; they have no tenant, so the ledger does not record them",
    })
}

/// Refused requests (the rows' sum, and per reason and status) of the given ledger rows.
pub fn refusals_json(rows: &[&RefusalRow]) -> Value {
    let mut by: BTreeMap<(&str, i64), i64> = BTreeMap::new();
    for r in rows {
        *by.entry((r.reason.as_str(), r.status)).or_default() += r.requests;
    }
    let total: i64 = by.values().sum();
    let mut list: Vec<Value> = by
        .into_iter()
        .map(|((reason, status), n)| json!({"reason": reason, "status": status, "requests": n}))
        .collect();
    list.sort_by_key(|v| std::cmp::Reverse(v["requests"].as_i64().unwrap_or(0)));
    json!({"requests": total, "by_reason": list})
}

pub struct Range {
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// A `from`/`to` pair that is not a range of days.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{field}: expected a date as YYYY-MM-DD, got {value:?}")]
    NotADate { field: &'static str, value: String },
    #[error("from ({from}) is after to ({to})")]
    Reversed { from: NaiveDate, to: NaiveDate },
}

pub fn parse_range(from: Option<&str>, to: Option<&str>) -> Result<Range, RangeError> {
    let p = |s: Option<&str>, field: &'static str| -> Result<Option<NaiveDate>, RangeError> {
        match s.filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Some)
                .map_err(|_| RangeError::NotADate {
                    field,
                    value: s.to_owned(),
                }),
        }
    };
    let r = Range {
        from: p(from, "from")?,
        to: p(to, "to")?,
    };
    if let (Some(from), Some(to)) = (r.from, r.to) {
        if from > to {
            return Err(RangeError::Reversed { from, to });
        }
    }
    Ok(r)
}

fn totals_json(t: &UsageTotals) -> Value {
    json!({
        "requests": t.requests,
        "input_tokens": t.input_tokens,
        "output_tokens": t.output_tokens,
        "cache_creation_input_tokens": t.cache_creation_input_tokens,
        "cache_write_5m_tokens": t.cache_write_5m_tokens,
        "cache_write_1h_tokens": t.cache_write_1h_tokens,
        "cache_read_input_tokens": t.cache_read_input_tokens,
        "cost_usd": t.cost_nanousd as f64 / 1e9,
        "cost_nanousd": t.cost_nanousd,
        "upstream_cost_usd": t.upstream_cost_nanousd as f64 / 1e9,
        "unpriced_requests": t.unpriced_requests,
        "errors": t.errors,
    })
}

fn add(a: &mut UsageTotals, b: &UsageTotals) {
    a.requests += b.requests;
    a.input_tokens += b.input_tokens;
    a.output_tokens += b.output_tokens;
    a.cache_creation_input_tokens += b.cache_creation_input_tokens;
    a.cache_write_5m_tokens += b.cache_write_5m_tokens;
    a.cache_write_1h_tokens += b.cache_write_1h_tokens;
    a.cache_read_input_tokens += b.cache_read_input_tokens;
    a.cost_nanousd += b.cost_nanousd;
    a.upstream_cost_nanousd += b.upstream_cost_nanousd;
    a.unpriced_requests += b.unpriced_requests;
    a.errors += b.errors;
}

/// Totals, by day and by model, of the given rollup rows.
pub fn summarize(rows: &[&UsageRow]) -> Value {
    let mut totals = UsageTotals::default();
    let mut by_day: BTreeMap<&str, UsageTotals> = BTreeMap::new();
    let mut by_model: BTreeMap<&str, UsageTotals> = BTreeMap::new();
    for r in rows {
        add(&mut totals, &r.totals);
        add(by_day.entry(&r.day).or_default(), &r.totals);
        add(by_model.entry(&r.model).or_default(), &r.totals);
    }
    let with_key = |k: &str, name: &str, t: &UsageTotals| {
        let mut v = totals_json(t);
        v[name] = json!(k);
        v
    };
    json!({
        "totals": totals_json(&totals),
        "by_day": by_day.iter().map(|(d, t)| with_key(d, "day", t)).collect::<Vec<_>>(),
        "by_model": by_model.iter().map(|(m, t)| with_key(m, "model", t)).collect::<Vec<_>>(),
    })
}

/// Each configured limit with max, used, remaining and reset time; `models`: the states of the tenant's
/// `limits.models` entries (in the config's order), whose limits follow with a `scope`. `cluster`: on shared
/// limits, what every instance has used (`policy/lease.rs`), shown instead of this instance's own count.
pub fn limits_json(
    t: &TenantConfig,
    tz: chrono_tz::Tz,
    used: &(dyn Fn(&TenantConfig, Window) -> i64 + Sync),
    state: Option<&TenantState>,
    models: &[Arc<TenantState>],
    cluster: Option<&ClusterUse>,
) -> Vec<Value> {
    let scope = |s: &str| cluster.and_then(|c| c.get(s));
    let mut out = limit_entries(&t.limits, tz, &|w| used(t, w), state, scope(""));
    for (i, m) in t.limits.models.iter().enumerate() {
        let st = models.get(i).map(|s| &**s);
        let today = local_day(tz, Utc::now());
        let observed = scope(&m.pattern);
        let spent = |w: Window| match observed.and_then(|o| o.spent) {
            Some(spent) => spent[w as usize],
            None => st.map_or(0, |s| s.spent(w, today)),
        };
        for mut e in limit_entries(&m.limits, tz, &spent, st, observed) {
            e["scope"] = json!({"model": m.pattern});
            out.push(e);
        }
    }
    out
}

/// On shared limits, what every instance has used of `t`'s limits that the ledger's rollups do not show (rolling
/// windows, `tpm`, `rpm`, `maxConcurrent`, the `limits.models` entries'); `None` on a store of one instance, whose
/// own view is exact, for a tenant without such limits, or when the database cannot be read.
pub(super) async fn cluster_use(
    gw: &Gateway,
    t: &TenantConfig,
    aliases: &BTreeMap<String, String>,
    tz: chrono_tz::Tz,
) -> Option<ClusterUse> {
    let l = &t.limits;
    let beyond_rollups = !l.rolling.is_empty()
        || l.tpm.is_some()
        || l.rpm.is_some()
        || l.max_concurrent.is_some()
        || !l.models.is_empty();
    let shared = gw.shared_limits().filter(|_| beyond_rollups)?;
    match shared.cluster_use(t, aliases, tz).await {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(tenant = %t.id, error = %e, "cannot read every instance's use of the limits; showing this instance's");
            None
        }
    }
}

/// The live states of `t`'s `limits.models` entries, in the config's order.
fn model_states(gw: &Gateway, t: &TenantConfig) -> Vec<Arc<TenantState>> {
    t.limits
        .models
        .iter()
        .map(|m| gw.model_state(&t.id, &m.pattern))
        .collect()
}

fn limit_entries(
    l: &crate::config::Limits,
    tz: chrono_tz::Tz,
    used: &dyn Fn(Window) -> i64,
    state: Option<&TenantState>,
    observed: Option<&ScopeUse>,
) -> Vec<Value> {
    let now = Utc::now();
    let today = local_day(tz, now);
    let mut out = Vec::new();
    let usd_entry = |name: String, max: i64, spent: i64, resets_at: Option<String>| {
        json!({
            "name": name,
            "kind": "usd",
            "max_usd": max as f64 / 1e9,
            "used_usd": spent as f64 / 1e9,
            "remaining_usd": (max - spent).max(0) as f64 / 1e9,
            "used": usd(spent),
            "resets_at": resets_at,
        })
    };
    for w in Window::ALL {
        let Some(max) = w.max(l) else {
            continue;
        };
        let resets_at = w.next_start(today).map(|d| midnight_rfc3339(tz, d));
        out.push(usd_entry(w.name().into(), max, used(w), resets_at));
    }
    for r in &l.rolling {
        // `resets_at`: when the next request fits again if the window is full, else when its oldest spend leaves.
        let (spent, next) = match observed.and_then(|o| o.rolling.as_ref()) {
            Some(b) => b.status(now, span_s(r.hours), r.max_nanousd),
            None => state.map_or((0, None), |s| s.rolling_status(r, now)),
        };
        let mut e = usd_entry(
            format!("rolling {}h", r.hours),
            r.max_nanousd,
            spent,
            next.map(|t| t.to_rfc3339()),
        );
        e["window"] = json!(format!("rolling {} h", r.hours));
        out.push(e);
    }
    if let Some(rpm) = l.rpm {
        let (used, next) = match observed.and_then(|o| o.requests) {
            Some(requests) => requests,
            None => state.map(|s| s.rpm_window()).unwrap_or((0, None)),
        };
        let resets_at = next
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| (now + d).to_rfc3339());
        out.push(json!({"name": "rpm", "kind": "requests_per_minute", "max": rpm, "used": used,
            "remaining": rpm.saturating_sub(used), "window": "rolling 60 s", "resets_at": resets_at}));
    }
    if let Some(tpm) = l.tpm {
        let (used, next) = match observed.and_then(|o| o.tokens.as_ref()) {
            Some(b) => b.status(now, 60, i64::try_from(tpm).unwrap_or(i64::MAX)),
            None => state.map_or((0, None), |s| s.tpm_status(tpm, now)),
        };
        let used = u64::try_from(used).unwrap_or(0);
        out.push(
            json!({"name": "tpm", "kind": "tokens_per_minute", "max": tpm, "used": used,
            "remaining": tpm.saturating_sub(used), "window": "rolling 60 s",
            "resets_at": next.map(|t| t.to_rfc3339())}),
        );
    }
    if let Some(mc) = l.max_concurrent {
        let in_flight = match observed.and_then(|o| o.slots) {
            Some(slots) => slots,
            None => state
                .map(|s| s.in_flight.load(std::sync::atomic::Ordering::Relaxed))
                .unwrap_or(0),
        };
        out.push(json!({"name": "maxConcurrent", "kind": "concurrent_requests", "max": mc, "used": in_flight,
            "remaining": mc.saturating_sub(in_flight), "resets_at": null}));
    }
    if let Some(cap) = l.max_output_tokens {
        // A cap per request: nothing is used up, so nothing remains or resets.
        out.push(
            json!({"name": "maxOutputTokens", "kind": "output_tokens_per_request", "max": cap,
            "used": null, "remaining": null, "clamp": l.clamp_output_tokens, "resets_at": null}),
        );
    }
    out
}

fn query(tenant: Option<&str>, r: &Range) -> UsageQuery {
    UsageQuery {
        tenant_id: tenant.map(str::to_owned),
        from_day: r.from.map(|d| d.to_string()),
        to_day: r.to.map(|d| d.to_string()),
    }
}

/// `cluster`: what every instance has used of the limits ([`cluster_use`]); `None` offline or on one instance.
#[allow(clippy::too_many_arguments)]
pub async fn tenant_report(
    store: &dyn Store,
    t: &TenantConfig,
    r: &Range,
    tz: chrono_tz::Tz,
    used: &(dyn Fn(&TenantConfig, Window) -> i64 + Sync),
    state: Option<&TenantState>,
    models: &[Arc<TenantState>],
    cluster: Option<&ClusterUse>,
) -> Result<Value, LedgerError> {
    let report = store.usage(&query(Some(&t.id), r)).await?;
    let refused = store.refusals(&query(Some(&t.id), r)).await?;
    let rows: Vec<&UsageRow> = report.rows.iter().collect();
    let mut v = summarize(&rows);
    v["refusals"] = refusals_json(&refused.iter().collect::<Vec<_>>());
    v["tenant"] = json!({"id": t.id, "name": t.name});
    v["from"] = json!(r.from.map(|d| d.to_string()));
    v["to"] = json!(r.to.map(|d| d.to_string()));
    v["timezone"] = json!(tz.name());
    v["limits"] = json!(limits_json(t, tz, used, state, models, cluster));
    Ok(v)
}

/// A tenant's live state and those of its `limits.models` entries (none in the offline `ccgate usage` report).
pub type LiveStates<'a> =
    dyn Fn(&TenantConfig) -> (Option<Arc<TenantState>>, Vec<Arc<TenantState>>) + Sync + 'a;

pub async fn admin_report(
    store: &dyn Store,
    tenants: &[TenantConfig],
    r: &Range,
    tz: chrono_tz::Tz,
    used: &(dyn Fn(&TenantConfig, Window) -> i64 + Sync),
    state: &LiveStates<'_>,
    clusters: &std::collections::HashMap<String, ClusterUse>,
) -> Result<Value, LedgerError> {
    let report = store.usage(&query(None, r)).await?;
    let refused = store.refusals(&query(None, r)).await?;
    let all: Vec<&UsageRow> = report.rows.iter().collect();
    let mut v = summarize(&all);
    v["refusals"] = refusals_json(&refused.iter().collect::<Vec<_>>());
    let refusals_of = |id: &str| {
        let rows: Vec<&RefusalRow> = refused.iter().filter(|x| x.tenant_id == id).collect();
        refusals_json(&rows)
    };
    let mut list = Vec::new();
    for t in tenants {
        let rows: Vec<&UsageRow> = report
            .rows
            .iter()
            .filter(|row| row.tenant_id == t.id)
            .collect();
        let mut tv = summarize(&rows);
        tv["id"] = json!(t.id);
        tv["name"] = json!(t.name);
        tv["enabled"] = json!(t.enabled);
        tv["refusals"] = refusals_of(&t.id);
        let (st, models) = state(t);
        tv["limits"] = json!(limits_json(
            t,
            tz,
            used,
            st.as_deref(),
            &models,
            clusters.get(&t.id)
        ));
        list.push(tv);
    }
    // Tenants removed from the config still have history; show it rather than hide spend.
    let known: std::collections::HashSet<&str> = tenants.iter().map(|t| t.id.as_str()).collect();
    let mut orphans: BTreeMap<&str, Vec<&UsageRow>> = BTreeMap::new();
    for row in &report.rows {
        if !known.contains(row.tenant_id.as_str()) {
            orphans.entry(&row.tenant_id).or_default().push(row);
        }
    }
    for row in &refused {
        if !known.contains(row.tenant_id.as_str()) {
            orphans.entry(&row.tenant_id).or_default();
        }
    }
    for (id, rows) in orphans {
        let mut tv = summarize(&rows);
        tv["refusals"] = refusals_of(id);
        tv["id"] = json!(id);
        tv["name"] = json!(id);
        tv["enabled"] = json!(false);
        tv["removed"] = json!(true);
        tv["limits"] = json!([]);
        list.push(tv);
    }
    v["tenants"] = json!(list);
    v["from"] = json!(r.from.map(|d| d.to_string()));
    v["to"] = json!(r.to.map(|d| d.to_string()));
    v["timezone"] = json!(tz.name());
    Ok(v)
}

/// Every tenant's spend in each budget window containing today, from the ledger (all instances' rows):
/// `(window, window start, spend)`.
pub async fn window_spend(
    store: &dyn crate::ledger::Store,
    tz: chrono_tz::Tz,
) -> Result<
    Vec<(
        Window,
        Option<chrono::NaiveDate>,
        crate::ledger::TenantSpend,
    )>,
    crate::ledger::LedgerError,
> {
    let today = local_day(tz, Utc::now());
    let mut out = Vec::new();
    for w in Window::ALL {
        let start = w.start(today);
        let from = start.map(|d| d.to_string());
        for spend in store.spend_by_tenant(from.as_deref()).await? {
            out.push((w, start, spend));
        }
    }
    Ok(out)
}
