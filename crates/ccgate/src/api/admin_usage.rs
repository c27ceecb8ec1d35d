//! Usage over time: `GET /api/admin/usage` (every tenant; admin) and `GET /api/tenant/usage` (the caller's own, by
//! its key), for the console's charts and for scripts.
//!
//! Parameters: `from` and `to` (RFC 3339 times, or `YYYY-MM-DD` days in `server.timezone`; `to` is exclusive for a
//! time, inclusive for a day; default: the last 7 days), `interval` (`hour` or `day`; default `hour` for a range of
//! at most 2 days, else `day`), `groupBy` (`tenant`, `model` or `upstream`; a tenant's own usage is grouped by
//! model), and the filters `tenant`, `model` and `upstream`.
//!
//! The answer has one series per group with a point per bucket (zero where nothing happened), the totals of each
//! group and of all, the cache-hit ratio (cache reads ÷ all input tokens) and what caching saved: cache reads
//! priced at the model's list input rate minus what they cost at its cache-read rate.
//!
//! The figures come from the hourly rollups (`hourly_rollup`, written with every batch of ledger rows), so a range
//! of months reads a few thousand rows, never the request log. Hours are UTC hours: a day bucket holds the hours
//! that start on that local day, which is exact in every time zone whose offset is a whole number of hours.

use super::admin_session::admin_only;
use super::admin_tenants::AdminError;
use super::request_log::{query_map, time_param};
use crate::error::Protocol;
use crate::ledger::rollup::HOUR_MS;
use crate::ledger::store::{HourlyQuery, HourlyRow};
use crate::state::Gateway;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use ccgate_meter::pricing::PriceTable;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use http::StatusCode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// The longest range per interval: enough for a month of hours and a year of days, small enough to answer fast.
const MAX_HOURS: i64 = 31 * 24 + 1;
const MAX_DAYS: i64 = 400;
const DEFAULT_RANGE_MS: i64 = 7 * 24 * HOUR_MS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    Hour,
    Day,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Tenant,
    Model,
    Upstream,
}

impl GroupBy {
    fn name(self) -> &'static str {
        match self {
            GroupBy::Tenant => "tenant",
            GroupBy::Model => "model",
            GroupBy::Upstream => "upstream",
        }
    }

    fn key(self, r: &HourlyRow) -> &str {
        match self {
            GroupBy::Tenant => &r.tenant_id,
            GroupBy::Model => &r.model,
            GroupBy::Upstream => &r.upstream_id,
        }
    }
}

/// A validated request for a series.
#[derive(Debug)]
struct Series {
    from_ms: i64,
    to_ms: i64,
    interval: Interval,
    group_by: GroupBy,
    query: HourlyQuery,
}

fn parse(
    q: &HashMap<String, String>,
    tz: Tz,
    now_ms: i64,
    default_group: GroupBy,
) -> Result<Series, AdminError> {
    let to_ms = time_param(q, "to", true, tz)?.unwrap_or(now_ms);
    let from_ms = time_param(q, "from", false, tz)?.unwrap_or(to_ms - DEFAULT_RANGE_MS);
    if from_ms >= to_ms {
        return Err(AdminError::invalid("from", "must be before `to`"));
    }
    let interval = match q.get("interval").map(String::as_str) {
        None | Some("") => {
            if to_ms - from_ms <= 2 * 24 * HOUR_MS {
                Interval::Hour
            } else {
                Interval::Day
            }
        }
        Some("hour") => Interval::Hour,
        Some("day") => Interval::Day,
        Some(_) => return Err(AdminError::invalid("interval", "hour or day")),
    };
    let group_by = match q.get("groupBy").map(String::as_str) {
        None | Some("") => default_group,
        Some("tenant") => GroupBy::Tenant,
        Some("model") => GroupBy::Model,
        Some("upstream") => GroupBy::Upstream,
        Some(_) => return Err(AdminError::invalid("groupBy", "tenant, model or upstream")),
    };
    let span_hours = (to_ms - from_ms + HOUR_MS - 1) / HOUR_MS;
    match interval {
        Interval::Hour if span_hours > MAX_HOURS => {
            return Err(AdminError::invalid(
                "to",
                format!(
                    "hourly series span at most {} days; use interval=day",
                    MAX_HOURS / 24
                ),
            ))
        }
        Interval::Day if span_hours > MAX_DAYS * 24 + 24 => {
            return Err(AdminError::invalid(
                "to",
                format!("daily series span at most {MAX_DAYS} days"),
            ))
        }
        _ => {}
    }
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    Ok(Series {
        from_ms,
        to_ms,
        interval,
        group_by,
        query: HourlyQuery {
            // Whole hours: the hour holding `from` is counted whole.
            from_ms: from_ms.div_euclid(HOUR_MS) * HOUR_MS,
            to_ms,
            tenant_id: text("tenant"),
            model: text("model"),
            upstream_id: text("upstream"),
        },
    })
}

/// Sums of one bucket or one group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sums {
    requests: i64,
    errors: i64,
    cost_nanousd: i64,
    input_tokens: i64,
    output_tokens: i64,
    cache_write_tokens: i64,
    cache_read_tokens: i64,
    /// What the cache reads would have cost as fresh input, minus what they cost.
    cache_saved_nanousd: i64,
}

impl Sums {
    fn add(&mut self, r: &HourlyRow, saved: i64) {
        self.requests = self.requests.saturating_add(r.requests);
        self.errors = self.errors.saturating_add(r.errors);
        self.cost_nanousd = self.cost_nanousd.saturating_add(r.cost_nanousd);
        self.input_tokens = self.input_tokens.saturating_add(r.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(r.output_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(r.cache_write_5m_tokens)
            .saturating_add(r.cache_write_1h_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(r.cache_read_tokens);
        self.cache_saved_nanousd = self.cache_saved_nanousd.saturating_add(saved);
    }

    fn point(&self) -> Value {
        json!({
            "requests": self.requests,
            "errors": self.errors,
            "costUSD": usd(self.cost_nanousd),
            "inputTokens": self.input_tokens,
            "outputTokens": self.output_tokens,
            "cacheWriteTokens": self.cache_write_tokens,
            "cacheReadTokens": self.cache_read_tokens,
        })
    }

    fn totals(&self) -> Value {
        let mut v = self.point();
        let all_input = self
            .input_tokens
            .saturating_add(self.cache_write_tokens)
            .saturating_add(self.cache_read_tokens);
        v["cacheHitRatio"] = if all_input > 0 {
            json!(self.cache_read_tokens as f64 / all_input as f64)
        } else {
            Value::Null
        };
        v["cacheSavedUSD"] = json!(usd(self.cache_saved_nanousd));
        v
    }
}

fn usd(nano: i64) -> f64 {
    nano as f64 / 1e9
}

/// Cache reads priced at the list input rate, minus their price at the cache-read rate (rates are pico-USD a
/// token). Zero for a model without a price.
fn cache_saved(pricing: &PriceTable, model: &str, cache_read_tokens: i64) -> i64 {
    let Some((entry, _)) = pricing.lookup(model) else {
        return 0;
    };
    let per_token = i128::from(entry.rates.input) - i128::from(entry.rates.cache_read);
    let pico = i128::from(cache_read_tokens) * per_token.max(0);
    i64::try_from(pico / 1000).unwrap_or(i64::MAX)
}

/// The buckets' starts (ms) and a function from an hour to its bucket's index.
struct Buckets {
    starts: Vec<i64>,
    interval: Interval,
    tz: Tz,
    first_day: NaiveDate,
}

impl Buckets {
    fn new(s: &Series, tz: Tz) -> Buckets {
        let first_day = local_day(tz, s.from_ms);
        let starts = match s.interval {
            Interval::Hour => {
                let first = s.from_ms.div_euclid(HOUR_MS) * HOUR_MS;
                (first..s.to_ms).step_by(HOUR_MS as usize).collect()
            }
            Interval::Day => {
                let last_day = local_day(tz, s.to_ms - 1);
                first_day
                    .iter_days()
                    .take_while(|d| *d <= last_day)
                    .map(|d| day_start_ms(tz, d))
                    .collect()
            }
        };
        Buckets {
            starts,
            interval: s.interval,
            tz,
            first_day,
        }
    }

    fn index(&self, hour_ms: i64) -> Option<usize> {
        let i = match self.interval {
            Interval::Hour => usize::try_from((hour_ms - *self.starts.first()?) / HOUR_MS).ok()?,
            Interval::Day => {
                usize::try_from((local_day(self.tz, hour_ms) - self.first_day).num_days()).ok()?
            }
        };
        (i < self.starts.len()).then_some(i)
    }

    fn labels(&self) -> Vec<String> {
        self.starts
            .iter()
            .map(|ms| {
                DateTime::<Utc>::from_timestamp_millis(*ms)
                    .map(|t| t.with_timezone(&self.tz).to_rfc3339())
                    .unwrap_or_default()
            })
            .collect()
    }
}

fn local_day(tz: Tz, ms: i64) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.with_timezone(&tz).date_naive())
        .unwrap_or_default()
}

fn day_start_ms(tz: Tz, day: NaiveDate) -> i64 {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&midnight).earliest() {
        Some(t) => t.timestamp_millis(),
        None => midnight.and_utc().timestamp_millis(),
    }
}

/// The answer for these rows: series per group (largest cost first), their totals and the overall ones.
fn report(s: &Series, rows: &[HourlyRow], tz: Tz, pricing: &PriceTable) -> Value {
    let buckets = Buckets::new(s, tz);
    let mut groups: BTreeMap<&str, (Sums, Vec<Sums>)> = BTreeMap::new();
    let mut total = Sums::default();
    for r in rows {
        let Some(i) = buckets.index(r.hour_ms) else {
            continue;
        };
        let saved = cache_saved(pricing, &r.model, r.cache_read_tokens);
        let (sum, series) = groups
            .entry(s.group_by.key(r))
            .or_insert_with(|| (Sums::default(), vec![Sums::default(); buckets.starts.len()]));
        sum.add(r, saved);
        series[i].add(r, saved);
        total.add(r, saved);
    }
    let mut ordered: Vec<(&str, (Sums, Vec<Sums>))> = groups.into_iter().collect();
    ordered.sort_by(|a, b| {
        b.1 .0
            .cost_nanousd
            .cmp(&a.1 .0.cost_nanousd)
            .then(a.0.cmp(b.0))
    });
    let labels = buckets.labels();
    let at = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms).map(|t| t.with_timezone(&tz).to_rfc3339())
    };
    json!({
        "from": at(s.from_ms),
        "to": at(s.to_ms),
        "interval": match s.interval { Interval::Hour => "hour", Interval::Day => "day" },
        "groupBy": s.group_by.name(),
        "timezone": tz.name(),
        "buckets": labels,
        "totals": total.totals(),
        "groups": ordered.iter().map(|(key, (sum, series))| json!({
            "key": key,
            "totals": sum.totals(),
            "series": series.iter().zip(&labels).map(|(p, t)| {
                let mut v = p.point();
                v["t"] = json!(t);
                v
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

async fn answer(gw: &Gateway, s: Series) -> Result<Response, AdminError> {
    let rt = gw.runtime.load_full();
    let rows = gw.ledger.store.hourly_usage(&s.query).await?;
    let body = report(&s, &rows, rt.config.server.timezone, &rt.pricing);
    Ok((StatusCode::OK, axum::Json(body)).into_response())
}

/// `GET /api/admin/usage`
pub async fn admin(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let r = async {
        admin_only(&gw, &req.method, &req.headers, &req.extensions).await?;
        let tz = gw.rt().config.server.timezone;
        let s = parse(
            &query_map(&req.uri),
            tz,
            Utc::now().timestamp_millis(),
            GroupBy::Tenant,
        )?;
        answer(&gw, s).await
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/tenant/usage`: the caller's own usage by model. Naming another tenant is refused; so is grouping or
/// filtering by upstream, which a tenant is not shown.
pub async fn tenant(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rt = gw.runtime.load_full();
    let t = match crate::auth::tenant_throttled(
        &gw,
        &rt,
        req.headers(),
        req.extensions(),
        "/api/tenant/usage",
    ) {
        Ok(t) => t,
        Err(e) => return e.into_response_for(Protocol::Anthropic),
    };
    let uri = req.uri().clone();
    drop(req);
    let r = async {
        let q = query_map(&uri);
        if q.get("tenant")
            .is_some_and(|v| !v.is_empty() && *v != t.config.id)
        {
            return Err(AdminError::Forbidden(
                "a tenant key reads only its own usage".into(),
            ));
        }
        if q.get("upstream").is_some_and(|v| !v.is_empty())
            || q.get("groupBy")
                .is_some_and(|g| !g.is_empty() && g != "model")
        {
            return Err(AdminError::invalid(
                "groupBy",
                "a tenant's usage is grouped and filtered by model only",
            ));
        }
        let mut s = parse(
            &q,
            rt.config.server.timezone,
            Utc::now().timestamp_millis(),
            GroupBy::Model,
        )?;
        s.query.tenant_id = Some(t.config.id.clone());
        answer(&gw, s).await
    };
    r.await.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn row(hour_ms: i64, tenant: &str, model: &str, cost: i64, cache_read: i64) -> HourlyRow {
        HourlyRow {
            hour_ms,
            tenant_id: tenant.into(),
            model: model.into(),
            upstream_id: "u1".into(),
            requests: 1,
            input_tokens: 100,
            cache_read_tokens: cache_read,
            output_tokens: 10,
            cost_nanousd: cost,
            ..Default::default()
        }
    }

    const H: i64 = HOUR_MS;
    /// 2026-12-07T00:00:00Z
    const DAY0: i64 = 1_796_601_600_000;

    #[test]
    fn defaults_and_bad_parameters() {
        let tz = chrono_tz::UTC;
        let s = parse(&q(&[]), tz, DAY0, GroupBy::Tenant).unwrap();
        assert_eq!((s.from_ms, s.to_ms), (DAY0 - 7 * 24 * H, DAY0));
        assert_eq!(s.interval, Interval::Day);
        let s = parse(
            &q(&[("from", "2026-12-06")]),
            tz,
            DAY0 + 5 * H,
            GroupBy::Model,
        )
        .unwrap();
        assert_eq!(s.interval, Interval::Hour);
        assert_eq!(s.group_by, GroupBy::Model);
        for (k, v) in [
            ("interval", "week"),
            ("groupBy", "color"),
            ("from", "yesterday"),
        ] {
            let e = parse(&q(&[(k, v)]), tz, DAY0, GroupBy::Tenant).unwrap_err();
            assert!(
                matches!(e, AdminError::Invalid { ref field, .. } if field == k),
                "{e}"
            );
        }
        let e = parse(
            &q(&[("from", "2026-12-07"), ("to", "2026-12-01")]),
            tz,
            DAY0,
            GroupBy::Tenant,
        )
        .unwrap_err();
        assert!(matches!(e, AdminError::Invalid { ref field, .. } if field == "from"));
        let e = parse(
            &q(&[
                ("from", "2026-01-01"),
                ("to", "2026-12-01"),
                ("interval", "hour"),
            ]),
            tz,
            DAY0,
            GroupBy::Tenant,
        )
        .unwrap_err();
        assert!(matches!(e, AdminError::Invalid { ref field, .. } if field == "to"));
    }

    #[test]
    fn hourly_series_are_exact_and_zero_filled() {
        let tz = chrono_tz::UTC;
        let s = parse(
            &q(&[
                ("from", "2026-12-07T00:00:00Z"),
                ("to", "2026-12-07T04:00:00Z"),
            ]),
            tz,
            DAY0 + 10 * H,
            GroupBy::Tenant,
        )
        .unwrap();
        let rows = vec![
            row(DAY0, "a", "claude-sonnet-4-5", 5, 0),
            row(DAY0 + 2 * H, "a", "claude-sonnet-4-5", 7, 0),
            row(DAY0 + 2 * H, "b", "claude-sonnet-4-5", 100, 0),
            // Outside the range: ignored.
            row(DAY0 + 4 * H, "a", "claude-sonnet-4-5", 1000, 0),
        ];
        let v = report(&s, &rows, tz, &PriceTable::builtin());
        assert_eq!(v["buckets"].as_array().unwrap().len(), 4);
        assert_eq!(v["buckets"][0], "2026-12-07T00:00:00+00:00");
        assert_eq!(v["groups"][0]["key"], "b", "largest cost first");
        let a = &v["groups"][1];
        let costs: Vec<f64> = a["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["costUSD"].as_f64().unwrap())
            .collect();
        assert_eq!(costs, vec![5e-9, 0.0, 7e-9, 0.0]);
        assert_eq!(a["totals"]["requests"], 2);
        assert_eq!(v["totals"]["requests"], 3);
        assert_eq!(v["totals"]["costUSD"], 112e-9);
        assert_eq!(v["totals"]["cacheHitRatio"], 0.0);
    }

    #[test]
    fn daily_buckets_follow_the_local_day_and_caching_savings_use_list_prices() {
        // Shanghai is UTC+8: 2026-12-07 local starts at 2026-12-06T16:00Z.
        let tz: Tz = "Asia/Shanghai".parse().unwrap();
        let s = parse(
            &q(&[
                ("from", "2026-12-06"),
                ("to", "2026-12-07"),
                ("interval", "day"),
            ]),
            tz,
            DAY0 + 20 * H,
            GroupBy::Model,
        )
        .unwrap();
        let pricing = PriceTable::builtin();
        let rows = vec![
            // 2026-12-06T15:00Z is 23:00 local on the 6th; 16:00Z is midnight of the 7th.
            row(DAY0 - 9 * H, "a", "claude-sonnet-4-5", 1, 1_000_000),
            row(DAY0 - 8 * H, "a", "claude-sonnet-4-5", 2, 0),
        ];
        let v = report(&s, &rows, tz, &pricing);
        assert_eq!(v["buckets"][0], "2026-12-06T00:00:00+08:00");
        let series = &v["groups"][0]["series"];
        assert_eq!(series[0]["costUSD"], 1e-9);
        assert_eq!(series[1]["costUSD"], 2e-9);
        // A million cache reads of Sonnet 4.5: $3.00 as input, $0.30 as cache reads.
        let (entry, _) = pricing.lookup("claude-sonnet-4-5").unwrap();
        let expected = (entry.rates.input - entry.rates.cache_read) as f64 * 1_000_000.0 / 1e12;
        assert_eq!(v["totals"]["cacheSavedUSD"], expected);
        assert!((expected - 2.7).abs() < 1e-9, "{expected}");
        let ratio = v["totals"]["cacheHitRatio"].as_f64().unwrap();
        assert!((ratio - 1_000_000.0 / 1_000_200.0).abs() < 1e-12);
    }
}
