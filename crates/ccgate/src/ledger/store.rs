//! The storage seam: the embedded SQLite ledger (`sqlite.rs`) and the shared PostgreSQL one (`postgres.rs`)
//! implement the same trait with the same semantics; `contract.rs` holds the tests both must pass.

use super::{LedgerError, Record};
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::path::Path;

/// Day bounds that include every day: a query binds these for an open end instead of testing for NULL, because
/// `(? IS NULL OR day >= ?)` keeps the planner from scanning an index by day (a cached, generic plan must work
/// for NULL too), and the refusals report then reads every refused row ever recorded.
pub const FIRST_DAY: &str = "0000-01-01";
pub const LAST_DAY: &str = "9999-12-31";

#[derive(Debug, Clone, Default)]
pub struct UsageQuery {
    /// `None` = every tenant.
    pub tenant_id: Option<String>,
    /// Inclusive local days, `YYYY-MM-DD`.
    pub from_day: Option<String>,
    pub to_day: Option<String>,
}

/// Column names are the usage API's; a backend's query aliases its rollup columns to them.
#[derive(Debug, Clone, Default, Serialize, PartialEq, sqlx::FromRow)]
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

#[derive(Debug, Clone, Default, Serialize, sqlx::FromRow)]
pub struct UsageRow {
    pub tenant_id: String,
    pub day: String,
    pub model: String,
    #[sqlx(flatten)]
    pub totals: UsageTotals,
}

/// A tenant's billed cost over some days.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct TenantSpend {
    pub tenant_id: String,
    pub cost_nanousd: i64,
}

/// A tenant's billed cost for one model (the model as the tenant asked for it) over some days.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct ModelSpend {
    pub tenant_id: String,
    pub model: String,
    pub cost_nanousd: i64,
}

/// Billed cost and `tpm` tokens (input, cache writes, output) of one tenant and model in one time bucket.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, sqlx::FromRow)]
pub struct SpendBucket {
    pub tenant_id: String,
    pub model: String,
    /// Start of the bucket, Unix milliseconds.
    pub start_ms: i64,
    pub cost_nanousd: i64,
    pub tokens: i64,
}

/// Refused requests (outcome `rejected`: CCGate answered 401/402/403/429 or 400 before any upstream saw them) of
/// one tenant for one reason.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, sqlx::FromRow)]
pub struct RefusalRow {
    pub tenant_id: String,
    /// The ledger's `error_class` (`model_not_allowed`, `budget_exceeded`, `rate_limited`, …).
    pub reason: String,
    /// The status the tenant saw.
    pub status: i64,
    pub requests: i64,
}

/// A tenant made through the admin API, as stored (`console_tenants`; see `crate::tenants`). Only a SHA-256 of its
/// key is kept.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredTenant {
    pub id: String,
    pub name: String,
    /// Lower-case hex.
    pub key_sha256: String,
    /// What the console shows of the key, e.g. `sk-…a1b2`.
    pub key_hint: String,
    pub enabled: bool,
    /// JSON, as `allowedModels` in tenants.json.
    pub allowed_models: String,
    /// JSON, as `limits` in tenants.json.
    pub limits: String,
    /// RFC 3339.
    pub expires_at: Option<String>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

/// An admin's runtime override of an upstream (`upstream_overrides`; see `crate::overrides`); `None`: the file's
/// value.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct UpstreamOverride {
    pub upstream_id: String,
    pub enabled: Option<bool>,
    pub weight: Option<i64>,
    pub priority: Option<i64>,
    pub updated_ms: i64,
}

/// An admin console login (`admin_sessions`; see `crate::api::admin_session`). The cookie itself is never stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AdminSession {
    /// Hex SHA-256 of the session cookie's value.
    pub token_sha256: String,
    pub username: String,
    pub csrf_token: String,
    /// Hex SHA-256 over the cookie value and the admin credential in force at login: a changed password or
    /// username no longer matches it.
    pub credential_tag: String,
    pub created_ms: i64,
    pub expires_ms: i64,
}

/// Which hourly rollups to read (`None`: any); hours from `from_ms` (inclusive) to `to_ms` (exclusive).
#[derive(Debug, Clone, Default)]
pub struct HourlyQuery {
    pub from_ms: i64,
    pub to_ms: i64,
    pub tenant_id: Option<String>,
    pub model: Option<String>,
    pub upstream_id: Option<String>,
}

/// One row of `hourly_rollup`.
#[derive(Debug, Clone, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct HourlyRow {
    pub hour_ms: i64,
    pub tenant_id: String,
    pub model: String,
    /// `""`: the request reached no upstream.
    pub upstream_id: String,
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
}

/// One named counter of an upstream, model and hour (`trust_counters`; see `crate::trust::counters`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrustCounter {
    pub upstream_id: String,
    pub model: String,
    /// Unix ms of the start of the hour (UTC).
    pub hour_ms: i64,
    pub name: String,
    pub n: i64,
}

/// A flag a trust check raised on an upstream (`trust_flags`); open while `cleared_ms` is `None`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrustFlag {
    pub id: i64,
    pub upstream_id: String,
    pub check_name: String,
    pub model: String,
    pub raised_ms: i64,
    pub cleared_ms: Option<i64>,
    /// JSON: the measured figures, the threshold and sample request ids.
    pub evidence: String,
}

/// A request that showed a suspect behaviour (`trust_samples`): a flag's evidence names the newest of every
/// instance's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustSample {
    pub upstream_id: String,
    pub check_name: String,
    pub request_id: String,
    pub ts_ms: i64,
}

/// The canary of one upstream, shared by every instance (`trust_canary`; see `crate::trust::canary`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TrustCanary {
    pub upstream_id: String,
    /// When the last probe was claimed (one probe per interval for the whole cluster).
    pub claimed_ms: i64,
    pub runs: i64,
    /// What the probes (and the reference's answers to them) cost, at the upstreams' prices.
    pub cost_nanousd: i64,
    /// Probes in a row that disagreed with the reference.
    pub streak: i64,
    /// Whether the last probe that was recorded disagreed (`None`: it failed, or the flag was cleared since).
    pub last_outcome: Option<bool>,
    /// JSON of the last probe and of the reference's answer to it (`crate::trust::canary::CanaryRun`).
    pub last_run: Option<String>,
    pub reference_run: Option<String>,
}

/// Which requests the request log lists (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct RequestFilter {
    pub tenant_id: Option<String>,
    pub model: Option<String>,
    pub upstream_id: Option<String>,
    /// Inclusive status range (`404..=404`, or `500..=599` for `5xx`).
    pub status: Option<(i64, i64)>,
    /// `ts_ms` from (inclusive) and to (exclusive).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// Only rows older than this row id (the previous page's cursor).
    pub before_id: Option<i64>,
    /// The gateway's request id (`x-request-id` of the answer; the ids a trust flag names).
    pub request_id: Option<String>,
}

/// One row of the request log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow)]
pub struct RequestLogRow {
    /// The store's row id: the paging cursor.
    pub id: i64,
    pub ts_ms: i64,
    pub request_id: String,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    pub protocol: String,
    pub endpoint: String,
    pub model: String,
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: i64,
    pub outcome: String,
    pub error_class: Option<String>,
    pub input_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub output_tokens: i64,
    pub cost_nanousd: i64,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub instance_id: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UsageReport {
    /// Rollup rows (day × tenant × model) in the range.
    pub rows: Vec<UsageRow>,
}

pub trait Store: Send + Sync {
    /// `sqlite` or `postgres`, for `/health`.
    fn backend(&self) -> &'static str;
    /// The PostgreSQL store, for what several instances share beyond the ledger (limits, session pins).
    fn postgres(&self) -> Option<&super::postgres::PgStore> {
        None
    }
    /// Stores the rows and their rollups in one transaction: all of them or none. `journal_seq` is the highest
    /// crash-journal sequence number among them, stored in the same transaction (see `ledger/journal.rs`).
    fn insert_batch<'a>(
        &'a self,
        rows: &'a [Record],
        journal_seq: Option<u64>,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Which of these request ids have a row (the journal's replay asks this of requests it saw in flight).
    fn stored_request_ids<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>>;
    /// The highest journal sequence number stored so far (0 if none).
    fn journal_committed_seq(&self) -> BoxFuture<'_, Result<u64, LedgerError>>;
    /// Checks that the database on disk is still the one being written. `Ok(Some(what))` when it was not and the
    /// store recovered (the incident, for the log and `/health`).
    fn verify_file(&self) -> BoxFuture<'_, Result<Option<String>, LedgerError>> {
        Box::pin(async { Ok(None) })
    }
    fn usage<'a>(&'a self, q: &'a UsageQuery) -> BoxFuture<'a, Result<UsageReport, LedgerError>>;
    /// Billed cost per tenant since `from_day` (inclusive; `None` = all time).
    fn spend_by_tenant<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<TenantSpend>, LedgerError>>;
    /// Cost per tenant and model since `from_day` (per-model limits' calendar windows, at start).
    fn spend_by_tenant_model<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ModelSpend>, LedgerError>>;
    /// Billable requests since `since_ms`, summed per tenant, model and bucket of `width_ms` (rolling windows and
    /// `tpm`, at start and after a change of limits: `policy/history.rs`). Reads `requests` (on SQLite a scan).
    fn spend_buckets(
        &self,
        since_ms: i64,
        width_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<SpendBucket>, LedgerError>>;
    /// The highest billed cost of one of a tenant's requests on `since_day` or later (seeds budget reservations
    /// at start).
    fn peak_cost<'a>(
        &'a self,
        tenant_id: &'a str,
        since_day: &'a str,
    ) -> BoxFuture<'a, Result<Option<i64>, LedgerError>>;
    /// Deletes requests and rollups of days before `day`; returns rows deleted.
    fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, LedgerError>>;
    fn count_requests(&self) -> BoxFuture<'_, Result<i64, LedgerError>>;
    /// Refused requests per tenant, reason and status in the query's days (and tenant, if it names one).
    fn refusals<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<RefusalRow>, LedgerError>>;
    /// Moves everything in the write-ahead log into the database file and empties the log, so that the file
    /// alone holds all the data (called at a clean shutdown, after the last write).
    fn checkpoint(&self) -> BoxFuture<'_, Result<(), LedgerError>>;
    /// Writes a consistent copy of the whole ledger to `dest`, which must not exist, while writers go on.
    fn backup_into<'a>(&'a self, dest: &'a Path) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// The request log, newest first: at most `limit` rows matching `f`.
    fn requests_page<'a>(
        &'a self,
        f: &'a RequestFilter,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<RequestLogRow>, LedgerError>>;
    /// Every upstream override made through the admin API.
    fn upstream_overrides(&self) -> BoxFuture<'_, Result<Vec<UpstreamOverride>, LedgerError>>;
    /// Sets an upstream's overrides whole (an override with no field left is removed).
    fn put_upstream_override<'a>(
        &'a self,
        o: &'a UpstreamOverride,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Every tenant made through the admin API.
    /// Adds each counter to its stored value (created at 0), saturating; one transaction.
    fn trust_add<'a>(&'a self, rows: &'a [TrustCounter]) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Every counter of the hours from `since_hour_ms` on.
    fn trust_counters(
        &self,
        since_hour_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<TrustCounter>, LedgerError>>;
    /// Forgets the counters of the hours before `hour_ms`, and the samples older than it.
    fn trust_prune(&self, hour_ms: i64) -> BoxFuture<'_, Result<u64, LedgerError>>;
    /// Stores samples (a request id already stored for its upstream and check is skipped), then keeps only the
    /// newest `keep` of each upstream and check; one transaction.
    fn trust_add_samples<'a>(
        &'a self,
        rows: &'a [TrustSample],
        keep: i64,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// The newest request ids of an upstream and check from `since_ms` on, newest first (at most `limit`).
    fn trust_samples<'a>(
        &'a self,
        upstream_id: &'a str,
        check_name: &'a str,
        since_ms: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>>;
    /// Claims the upstream's next canary probe: `true` (and `claimed_ms` set to `now_ms`) when no probe was ever
    /// claimed or the last was claimed at least `interval_ms` ago; atomic, so one instance of a cluster wins.
    fn trust_canary_claim<'a>(
        &'a self,
        upstream_id: &'a str,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'a, Result<bool, LedgerError>>;
    /// Records a probe: one more run, its cost, the streak of disagreements (`outcome` `None`: the probe failed
    /// and says nothing), and the probe's and the reference's answers.
    fn trust_canary_record<'a>(
        &'a self,
        upstream_id: &'a str,
        outcome: Option<bool>,
        cost_nanousd: i64,
        last_run: &'a str,
        reference_run: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Every upstream's canary state.
    fn trust_canaries(&self) -> BoxFuture<'_, Result<Vec<TrustCanary>, LedgerError>>;
    /// Forgets the canary's verdict (streak and last outcome) when its flag is cleared.
    fn trust_canary_reset<'a>(
        &'a self,
        upstream_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Stores a new open flag unless the upstream already has an open one for that check; whether it was stored.
    fn trust_raise<'a>(&'a self, f: &'a TrustFlag) -> BoxFuture<'a, Result<bool, LedgerError>>;
    /// Flags, newest first, open and cleared (at most `limit`); all upstreams when `upstream_id` is `None`.
    fn trust_flags<'a>(
        &'a self,
        upstream_id: Option<&'a str>,
        open_only: bool,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<TrustFlag>, LedgerError>>;
    /// Clears an upstream's open flags (one check's, or all); how many.
    fn trust_clear<'a>(
        &'a self,
        upstream_id: &'a str,
        check_name: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, LedgerError>>;
    fn console_tenants(&self) -> BoxFuture<'_, Result<Vec<StoredTenant>, LedgerError>>;
    /// Changes whenever a console tenant or an upstream override is added, changed or removed (counts and sums of
    /// `updated_ms`): instances poll it to follow each other's edits.
    fn console_tenants_version(&self) -> BoxFuture<'_, Result<(i64, i64), LedgerError>>;
    /// Adds the tenant, or replaces the one with its id whole.
    fn put_console_tenant<'a>(
        &'a self,
        t: &'a StoredTenant,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// Removes a console tenant (its usage rows stay); whether it existed.
    fn delete_console_tenant<'a>(&'a self, id: &'a str)
        -> BoxFuture<'a, Result<bool, LedgerError>>;
    /// Adds an admin session, and removes every session that expired before `s.created_ms`.
    fn put_admin_session<'a>(
        &'a self,
        s: &'a AdminSession,
    ) -> BoxFuture<'a, Result<(), LedgerError>>;
    /// The session whose cookie hashes to `token_sha256`, expired or not.
    fn admin_session<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<AdminSession>, LedgerError>>;
    /// Ends a session (logout); whether it existed.
    fn delete_admin_session<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>>;
    /// Usage per hour, tenant, model and upstream in the query's range, oldest first.
    fn hourly_usage<'a>(
        &'a self,
        q: &'a HourlyQuery,
    ) -> BoxFuture<'a, Result<Vec<HourlyRow>, LedgerError>>;
}
