//! The storage seam: SQLite today, PostgreSQL beside it later, same trait.

use super::Record;
use futures_util::future::BoxFuture;
use serde::Serialize;

#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// `None` = every tenant.
    pub tenant_id: Option<String>,
    /// Inclusive local days, `YYYY-MM-DD`.
    pub from_day: Option<String>,
    pub to_day: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct UsageTotals {
    pub requests: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_creation_input_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cache_read_input_tokens: i64,
    pub cost_nanousd: i64,
    pub upstream_cost_nanousd: i64,
    pub unpriced_requests: i64,
    pub errors: i64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct UsageRow {
    pub tenant_id: String,
    pub day: String,
    pub model: String,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    /// Rollup rows (day × tenant × model) in the range.
    pub rows: Vec<UsageRow>,
}

pub trait Store: Send + Sync {
    fn insert_batch<'a>(&'a self, rows: &'a [Record]) -> BoxFuture<'a, Result<(), String>>;
    fn usage<'a>(&'a self, q: &'a UsageQuery) -> BoxFuture<'a, Result<UsageReport, String>>;
    /// Billed cost per tenant since `from_day` (inclusive; `None` = all time).
    fn spend_by_tenant<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, String>>;
    /// The highest billed cost of one of a tenant's requests on `since_day` or later (seeds budget reservations
    /// at start).
    fn peak_cost<'a>(
        &'a self,
        tenant_id: &'a str,
        since_day: &'a str,
    ) -> BoxFuture<'a, Result<Option<i64>, String>>;
    /// Deletes requests and rollups of days before `day`; returns rows deleted.
    fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, String>>;
    fn count_requests(&self) -> BoxFuture<'_, Result<i64, String>>;
}
