//! `GET /api/tenant/status`: a tenant's own spend and limits, for scripts and for Claude Code's status line.
//!
//! Authenticated by the tenant key (`x-api-key` or `Authorization: Bearer`), throttled like every login. JSON by
//! default; `?format=line` answers one plain-text line for Claude Code's `statusLine` setting, which runs a command
//! and shows its first line, e.g. `ccgate · $1.23 / $10.00 today · resets 00:00`. Claude Code shows API-key users no
//! balance of its own, so this line is how a tenant sees what is left. On a shared store the figures are every
//! instance's.

use super::usage::{limits_json, window_spend};
use crate::config::TenantConfig;
use crate::error::{ApiError, Protocol};
use crate::policy::budget::{local_day, Window};
use crate::state::{Gateway, TenantRt};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use http::{header, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

pub async fn status(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let line = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "format=line"));
    let rt = gw.runtime.load_full();
    let tenant = match crate::auth::tenant_throttled(
        &gw,
        &rt,
        req.headers(),
        req.extensions(),
        "/api/tenant/status",
    ) {
        Ok(t) => t,
        Err(e) if line => {
            return text(
                e.status_for(Protocol::Anthropic),
                &format!("ccgate · {}", short(&e)),
            )
        }
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let tz = rt.config.server.timezone;
    let t = &tenant.config;
    let shared = shared_window_spend(&gw, tz).await;
    let cluster = super::usage::cluster_use(&gw, t, &rt.config.openai.models, tz).await;
    let (spent, limits) = limit_status(&tenant, tz, shared.as_deref(), cluster.as_ref());
    if line {
        return text(StatusCode::OK, &status_line(t, &spent, &limits, tz));
    }
    let body = json!({
        "tenant": {"id": t.id, "name": t.name},
        "today": {"costUSD": spent[Window::Daily as usize] as f64 / 1e9},
        "month": {"costUSD": spent[Window::Monthly as usize] as f64 / 1e9},
        "limits": limits,
        "expiresAt": t.expires_at.map(|at| at.to_rfc3339()),
        "timezone": tz.name(),
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Spend per calendar window on a shared store (every instance's, from the ledger); `None` on a store of one
/// instance, whose own view is exact, or when the ledger cannot be read.
pub(super) async fn shared_window_spend(
    gw: &Gateway,
    tz: chrono_tz::Tz,
) -> Option<Vec<WindowSpend>> {
    match gw.shared_limits() {
        Some(_) => window_spend(&*gw.ledger.store, tz).await.ok(),
        None => None,
    }
}

type WindowSpend = (
    Window,
    Option<chrono::NaiveDate>,
    crate::ledger::TenantSpend,
);

/// A tenant's spend per calendar window and each of its limits with max, used, remaining and reset time: what
/// `/api/tenant/status` answers and the admin listing shows per tenant. `cluster`: on shared limits, what every
/// instance has used of the limits the rollups do not show (`super::usage::cluster_use`).
pub(super) fn limit_status(
    tenant: &TenantRt,
    tz: chrono_tz::Tz,
    shared: Option<&[WindowSpend]>,
    cluster: Option<&crate::policy::lease::ClusterUse>,
) -> ([i64; 4], Vec<Value>) {
    let today = local_day(tz, Utc::now());
    let t = &tenant.config;
    let mut spent = [0i64; 4];
    for w in Window::ALL {
        spent[w as usize] = match shared {
            Some(rows) => rows
                .iter()
                .find(|(rw, _, s)| *rw == w && s.tenant_id == t.id)
                .map(|(_, _, s)| s.cost_nanousd)
                .unwrap_or(0),
            None => tenant.state.spent(w, today),
        };
    }
    let used = |_: &TenantConfig, w: Window| spent[w as usize];
    let limits = limits_json(
        t,
        tz,
        &used,
        Some(&tenant.state),
        &tenant.model_states,
        cluster,
    );
    (spent, limits)
}

fn text(status: StatusCode, line: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{line}\n"),
    )
        .into_response()
}

/// An error as a few words for the status line.
fn short(e: &ApiError) -> String {
    match e {
        ApiError::Unauthorized => "invalid key".into(),
        ApiError::KeyExpired(at) => format!("key expired {}", &at[..at.len().min(10)]),
        ApiError::RateLimited(..) => "too many failed logins; wait".into(),
        other => other.to_string(),
    }
}

/// `ccgate · $1.23 / $10.00 today · resets 00:00`: the tightest dollar limit (or today's and this month's spend when
/// there is none), then the key's expiry when it is within a week.
fn status_line(t: &TenantConfig, spent: &[i64; 4], limits: &[Value], tz: chrono_tz::Tz) -> String {
    let usd = |n: i64| format!("${:.2}", n as f64 / 1e9);
    let label = |w: Window| match w {
        Window::Daily => "today",
        Window::Weekly => "this week",
        Window::Monthly => "this month",
        Window::Total => "in total",
    };
    // The limit with the least left is the one the tenant will meet first: a calendar window or a rolling one.
    let resets_of = |name: &str| {
        limits
            .iter()
            .find(|l| l["name"] == name && l.get("scope").is_none())
            .and_then(|l| l["resets_at"].as_str())
            .and_then(|r| chrono::DateTime::parse_from_rfc3339(r).ok())
    };
    let calendar = Window::ALL.iter().filter_map(|&w| {
        let fmt = if w == Window::Daily {
            "%H:%M"
        } else {
            "%b %-d %H:%M"
        };
        w.max(&t.limits).map(|max| {
            (
                label(w).to_string(),
                spent[w as usize],
                max,
                resets_of(w.name()),
                fmt,
            )
        })
    });
    let rolling = t.limits.rolling.iter().map(|r| {
        let name = format!("rolling {}h", r.hours);
        let used = limits
            .iter()
            .find(|l| l["name"] == name.as_str() && l.get("scope").is_none())
            .and_then(|l| l["used_usd"].as_f64())
            .map_or(0, |u| (u * 1e9).round() as i64);
        let resets = resets_of(&name);
        (
            format!("in {}h", r.hours),
            used,
            r.max_nanousd,
            resets,
            "%b %-d %H:%M",
        )
    });
    let tightest = calendar
        .chain(rolling)
        .min_by_key(|(_, spent, max, _, _)| max - spent);
    let mut parts = vec!["ccgate".to_string()];
    match tightest {
        Some((label, spent_now, max, resets, fmt)) => {
            parts.push(format!("{} / {} {label}", usd(spent_now), usd(max)));
            if spent_now >= max {
                parts.push("limit reached".into());
            }
            if let Some(r) = resets {
                let local = r.with_timezone(&tz);
                let fmt = if local.date_naive() == Utc::now().with_timezone(&tz).date_naive() {
                    "%H:%M"
                } else {
                    fmt
                };
                parts.push(format!("resets {}", local.format(fmt)));
            }
        }
        None => {
            parts.push(format!("{} today", usd(spent[Window::Daily as usize])));
            parts.push(format!(
                "{} this month",
                usd(spent[Window::Monthly as usize])
            ));
        }
    }
    if let Some(at) = t.expires_at {
        let left = at - Utc::now();
        if left < chrono::Duration::days(7) {
            parts.push(format!(
                "key expires {}",
                at.with_timezone(&tz).format("%b %-d %H:%M")
            ));
        }
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, TenantSource};

    fn tenant(limits: Limits) -> TenantConfig {
        TenantConfig {
            id: "t".into(),
            name: "t".into(),
            key: String::new(),
            key_sha256: None,
            source: TenantSource::File,
            expires_at: None,
            enabled: true,
            allowed_models: vec![],
            limits,
        }
    }

    #[test]
    fn the_line_shows_the_tightest_dollar_limit_and_its_reset() {
        let t = tenant(Limits {
            daily_nanousd: Some(10_000_000_000),
            monthly_nanousd: Some(100_000_000_000),
            ..Default::default()
        });
        let spent = [1_230_000_000, 0, 95_000_000_000, 0];
        let limits = vec![
            json!({"name": "daily", "resets_at": "2026-12-08T00:00:00+00:00"}),
            json!({"name": "monthly", "resets_at": "2027-01-01T00:00:00+00:00"}),
        ];
        // $5 left this month, $8.77 today: the month's is the one to show.
        assert_eq!(
            status_line(&t, &spent, &limits, chrono_tz::UTC),
            "ccgate · $95.00 / $100.00 this month · resets Jan 1 00:00"
        );
        let spent = [1_230_000_000, 0, 2_000_000_000, 0];
        assert_eq!(
            status_line(&t, &spent, &limits, chrono_tz::UTC),
            "ccgate · $1.23 / $10.00 today · resets 00:00"
        );
    }

    #[test]
    fn a_rolling_window_with_less_left_is_the_one_shown() {
        let t = tenant(Limits {
            daily_nanousd: Some(10_000_000_000),
            rolling: vec![crate::config::RollingLimit {
                hours: 5,
                max_nanousd: 3_000_000_000,
            }],
            ..Default::default()
        });
        let limits = vec![
            json!({"name": "daily", "resets_at": "2026-12-08T00:00:00+00:00"}),
            json!({"name": "rolling 5h", "used_usd": 3.02, "resets_at": "2026-12-09T14:05:00+00:00"}),
        ];
        assert_eq!(
            status_line(&t, &[4_000_000_000, 0, 0, 0], &limits, chrono_tz::UTC),
            "ccgate · $3.02 / $3.00 in 5h · limit reached · resets Dec 9 14:05"
        );
    }

    #[test]
    fn without_limits_the_line_shows_spend() {
        let t = tenant(Limits::default());
        assert_eq!(
            status_line(&t, &[500_000_000, 0, 7_250_000_000, 0], &[], chrono_tz::UTC),
            "ccgate · $0.50 today · $7.25 this month"
        );
    }
}
