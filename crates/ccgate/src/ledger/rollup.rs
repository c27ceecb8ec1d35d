//! The daily rollups a batch adds to: backend-neutral, so every [`super::Store`] sums a batch the same way.

use super::{Outcome, Record};

/// One rollup row's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollupKey<'a> {
    pub day: &'a str,
    pub tenant_id: &'a str,
    pub model: &'a str,
}

/// What a batch adds to one rollup row: sums, except `max_cost_nanousd`, which the row keeps the maximum of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RollupDelta {
    pub requests: i64,
    pub input_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanousd: i64,
    pub upstream_cost_nanousd: i64,
    pub unpriced_requests: i64,
    pub errors: i64,
    pub max_cost_nanousd: i64,
}

impl RollupDelta {
    fn add(&mut self, r: &Record) {
        // Saturating: a row's counts are clamped at settlement, but a sum must never wrap into a negative total.
        self.requests += 1;
        self.input_tokens = self.input_tokens.saturating_add(r.input_tokens);
        self.cache_write_5m_tokens = self
            .cache_write_5m_tokens
            .saturating_add(r.cache_write_5m_tokens);
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(r.cache_write_1h_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(r.cache_read_tokens);
        self.output_tokens = self.output_tokens.saturating_add(r.output_tokens);
        self.cost_nanousd = self.cost_nanousd.saturating_add(r.cost_nanousd);
        self.upstream_cost_nanousd = self
            .upstream_cost_nanousd
            .saturating_add(r.upstream_cost_nanousd);
        // Tokens without a price: the cost is unknown, which the usage API must say rather than show $0.
        self.unpriced_requests += i64::from(!r.priced && r.input_tokens + r.output_tokens > 0);
        self.errors += i64::from(
            r.status >= 400 || matches!(r.outcome, Outcome::UpstreamError | Outcome::Interrupted),
        );
        self.max_cost_nanousd = self.max_cost_nanousd.max(r.cost_nanousd);
    }
}

/// One hourly rollup row's key: the UTC hour, tenant, model and upstream (`""` when none was reached).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HourKey<'a> {
    /// The hour's start, in milliseconds since the epoch (a multiple of 3,600,000).
    pub hour_ms: i64,
    pub tenant_id: &'a str,
    pub model: &'a str,
    pub upstream_id: &'a str,
}

pub const HOUR_MS: i64 = 3_600_000;

/// The batch's usage per (day, tenant, model). Refused requests and non-billable calls stay in `requests` for
/// audit but are not usage: the former never reached an upstream, the latter are never charged.
pub fn rollup_groups(rows: &[Record]) -> Vec<(RollupKey<'_>, RollupDelta)> {
    groups(rows, |r| RollupKey {
        day: &r.day,
        tenant_id: &r.tenant_id,
        model: &r.model,
    })
}

/// The batch's usage per (UTC hour, tenant, model, upstream): what the console's time series read
/// (`api/admin_usage.rs`). The same rows as [`rollup_groups`].
pub fn hourly_groups(rows: &[Record]) -> Vec<(HourKey<'_>, RollupDelta)> {
    groups(rows, |r| HourKey {
        hour_ms: r.ts_ms.div_euclid(HOUR_MS) * HOUR_MS,
        tenant_id: &r.tenant_id,
        model: &r.model,
        upstream_id: r.upstream_id.as_deref().unwrap_or(""),
    })
}

fn groups<'r, K: PartialEq>(
    rows: &'r [Record],
    key: impl Fn(&'r Record) -> K,
) -> Vec<(K, RollupDelta)> {
    let mut groups: Vec<(K, RollupDelta)> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.billable && r.outcome != Outcome::Rejected)
    {
        let key = key(r);
        // A batch holds a handful of groups: a linear search beats hashing the strings per row.
        let idx = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, RollupDelta::default()));
                groups.len() - 1
            }
        };
        groups[idx].1.add(r);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_sum_usage_and_keep_the_peak() {
        let rec = |tenant: &str, cost: i64, status: u16, outcome: Outcome, priced: bool| Record {
            day: "2026-11-27".into(),
            tenant_id: tenant.into(),
            model: "m".into(),
            status,
            outcome,
            priced,
            billable: true,
            input_tokens: 10,
            output_tokens: 1,
            cost_nanousd: cost,
            upstream_cost_nanousd: 2 * cost,
            ..Default::default()
        };
        let rows = vec![
            rec("a", 5, 200, Outcome::Ok, true),
            rec("b", 7, 200, Outcome::Ok, true),
            rec("a", 9, 200, Outcome::Partial, false),
            rec("a", 0, 502, Outcome::UpstreamError, true),
            rec("a", 1000, 403, Outcome::Rejected, true),
            Record {
                billable: false,
                ..rec("a", 1000, 200, Outcome::Ok, true)
            },
        ];
        let groups = rollup_groups(&rows);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0.tenant_id, "a");
        assert_eq!(
            groups[0].1,
            RollupDelta {
                requests: 3,
                input_tokens: 30,
                output_tokens: 3,
                cost_nanousd: 14,
                upstream_cost_nanousd: 28,
                unpriced_requests: 1,
                errors: 1,
                max_cost_nanousd: 9,
                ..Default::default()
            }
        );
        assert_eq!(groups[1].1.requests, 1);
    }

    #[test]
    fn hourly_groups_split_by_hour_and_upstream() {
        let rec = |ts_ms: i64, upstream: Option<&str>| Record {
            ts_ms,
            tenant_id: "a".into(),
            model: "m".into(),
            upstream_id: upstream.map(str::to_owned),
            status: 200,
            billable: true,
            cost_nanousd: 1,
            ..Default::default()
        };
        let rows = vec![
            rec(HOUR_MS * 5, Some("u1")),
            rec(HOUR_MS * 6 - 1, Some("u1")),
            rec(HOUR_MS * 6, Some("u1")),
            rec(HOUR_MS * 6 + 5, Some("u2")),
            rec(HOUR_MS * 6 + 9, None),
            Record {
                outcome: Outcome::Rejected,
                ..rec(HOUR_MS * 6, Some("u1"))
            },
        ];
        let g = hourly_groups(&rows);
        let summary: Vec<(i64, &str, i64)> = g
            .iter()
            .map(|(k, d)| (k.hour_ms / HOUR_MS, k.upstream_id, d.requests))
            .collect();
        assert_eq!(
            summary,
            vec![(5, "u1", 2), (6, "u1", 1), (6, "u2", 1), (6, "", 1)]
        );
    }
}
