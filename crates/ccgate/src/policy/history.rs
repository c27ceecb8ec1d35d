//! What a reload or a console change adds to a tenant's limits is counted from the ledger, not from the change on
//! (docs/limits.md "Rolling windows"): a rolling window made longer, or a new one, counts the spend already in the
//! ledger for its whole length; a new `limits.models` entry counts the model's spend in its calendar windows too.
//!
//! The live state already holds what it was keeping (a rolling window's minutes, everything settled since the
//! change), so the ledger fills in only what the state cannot have: minutes older than the window it kept, and for
//! a window that did not exist, the spend settled before the change. Rows are stamped when they settle
//! (`tee/settle.rs`), the same clock the state counts by, so the two never count one request twice. Requests that
//! settle in the last moments before the change and are not yet stored when the ledger is read are missed: the
//! read waits [`SETTLE_WAIT`] (many times the batch writer's 50 ms) for them.

use super::budget::{local_day, span_s, TenantState, Window};
use super::permissions::row_matches;
use crate::config::{Limits, TenantConfig};
use crate::ledger::store::Store;
use crate::state::Runtime;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long after a change the ledger is read, so that what settled just before is stored.
pub const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// One state whose limits grew.
struct Fill {
    tenant_id: String,
    /// The `limits.models` pattern, `None` for the tenant's own limits.
    pattern: Option<String>,
    state: Arc<TenantState>,
    /// The longest rolling window (seconds) the state kept before the change (0: none), and after.
    kept_s: i64,
    wanted_s: i64,
    /// A new `limits.models` entry: its calendar windows count the spend before the change too.
    calendar: bool,
}

fn longest_rolling_s(limits: &Limits) -> i64 {
    limits
        .rolling
        .iter()
        .map(|r| span_s(r.hours))
        .max()
        .unwrap_or(0)
}

/// What `after` needs from the ledger that the states kept under `before` cannot have.
fn plan(before: &Runtime, after: &Runtime) -> Vec<Fill> {
    let mut fills = Vec::new();
    for t in after.tenants_by_id.values() {
        let old: Option<&TenantConfig> = before.tenants_by_id.get(&t.config.id).map(|o| &o.config);
        // A tenant new to this process (made in the console) has no spend to fill.
        let Some(old) = old else {
            continue;
        };
        let kept_s = longest_rolling_s(&old.limits);
        let wanted_s = longest_rolling_s(&t.config.limits);
        if wanted_s > kept_s {
            fills.push(Fill {
                tenant_id: t.config.id.clone(),
                pattern: None,
                state: t.state.clone(),
                kept_s,
                wanted_s,
                calendar: false,
            });
        }
        for (m, state) in t.config.limits.models.iter().zip(&t.model_states) {
            let was = old.limits.models.iter().find(|o| o.pattern == m.pattern);
            let kept_s = was.map_or(0, |o| longest_rolling_s(&o.limits));
            let wanted_s = longest_rolling_s(&m.limits);
            let calendar = was.is_none() && m.limits.has_usd_limit();
            if wanted_s > kept_s || calendar {
                fills.push(Fill {
                    tenant_id: t.config.id.clone(),
                    pattern: Some(m.pattern.clone()),
                    state: state.clone(),
                    kept_s,
                    wanted_s,
                    calendar,
                });
            }
        }
    }
    fills
}

/// Called after each runtime swap (`state::Gateway::build`): counts what the new limits need from the ledger, in
/// the background. Nothing to do (no task) when no limit grew.
pub fn after_change(store: Arc<dyn Store>, before: &Runtime, after: &Arc<Runtime>) {
    let fills = plan(before, after);
    if fills.is_empty() {
        return;
    }
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let changed_at = Utc::now();
    let aliases = after.config.openai.models.clone();
    let tz = after.config.server.timezone;
    handle.spawn(async move {
        tokio::time::sleep(SETTLE_WAIT).await;
        if let Err(e) = fill(&*store, &fills, &aliases, tz, changed_at).await {
            tracing::warn!(error = %e, "limits changed: their earlier spend could not be read from the ledger; they count from the change on");
        }
    });
}

async fn fill(
    store: &dyn Store,
    fills: &[Fill],
    aliases: &BTreeMap<String, String>,
    tz: chrono_tz::Tz,
    changed_at: DateTime<Utc>,
) -> Result<(), crate::ledger::LedgerError> {
    let now = Utc::now();
    let changed_ms = changed_at.timestamp_millis();
    let counts = |f: &Fill, tenant: &str, model: &str| {
        tenant == f.tenant_id
            && f.pattern
                .as_deref()
                .is_none_or(|p| row_matches(p, model, aliases))
    };
    let longest = fills.iter().map(|f| f.wanted_s).max().unwrap_or(0);
    let minutes = if longest > 0 {
        store
            .spend_buckets((now.timestamp() - longest - 60) * 1000, 60_000)
            .await?
    } else {
        Vec::new()
    };
    // From the minute of the change on, to the millisecond: before the change belongs to the ledger, after to the
    // state (read before the rollups, so a row stored in between counts twice, never not at all).
    let change_minute_ms = changed_ms.div_euclid(60_000) * 60_000;
    let change_minute = store.spend_buckets(change_minute_ms, 1).await?;
    // The calendar windows' rollups, read once for every new entry.
    let today = local_day(tz, now);
    let mut calendar = Vec::new();
    if fills.iter().any(|f| f.calendar) {
        for w in Window::ALL {
            let start = w.start(today);
            let from = start.map(|d| d.to_string());
            calendar.push((
                w,
                start,
                store.spend_by_tenant_model(from.as_deref()).await?,
            ));
        }
    }
    for f in fills {
        if f.wanted_s > f.kept_s {
            let mut older: Vec<(DateTime<Utc>, i64)> = Vec::new();
            // A state that kept a window has every minute inside it; one that kept none has only what settled
            // since the change.
            let cut_ms = if f.kept_s > 0 {
                (now.timestamp() - f.kept_s).div_euclid(60) * 60_000
            } else {
                change_minute_ms
            };
            for b in minutes.iter().filter(|b| counts(f, &b.tenant_id, &b.model)) {
                if b.start_ms < cut_ms
                    && b.start_ms + 60_000 > (now.timestamp() - f.wanted_s) * 1000
                {
                    if let Some(at) = DateTime::from_timestamp_millis(b.start_ms) {
                        older.push((at, b.cost_nanousd));
                    }
                }
            }
            if f.kept_s == 0 {
                for b in change_minute
                    .iter()
                    .filter(|b| counts(f, &b.tenant_id, &b.model))
                {
                    if b.start_ms < changed_ms {
                        if let Some(at) = DateTime::from_timestamp_millis(b.start_ms) {
                            older.push((at, b.cost_nanousd));
                        }
                    }
                }
            }
            // What the state kept stays, exactly the minutes the ledger was not asked for.
            let (prune_at, keep_s) = if f.kept_s > 0 {
                (now, f.kept_s)
            } else {
                (changed_at, 0)
            };
            f.state.fill_rolling(prune_at, keep_s, &older);
        }
        if f.calendar {
            // Rows that settled after the change are in the live state already.
            let after_change: i64 = change_minute
                .iter()
                .filter(|b| b.start_ms >= changed_ms && counts(f, &b.tenant_id, &b.model))
                .fold(0, |acc, b| acc.saturating_add(b.cost_nanousd));
            for (w, start, rows) in &calendar {
                let spent = rows
                    .iter()
                    .filter(|r| counts(f, &r.tenant_id, &r.model))
                    .fold(0i64, |acc, r| acc.saturating_add(r.cost_nanousd));
                // What settled after the change is counted by the state; the rollups hold it too once stored.
                // `after_change` only counts rows in this window when the change is in it, which it is: the
                // change was moments ago.
                f.state
                    .add_spent(*w, *start, spent.saturating_sub(after_change).max(0));
            }
        }
    }
    Ok(())
}
