//! The PostgreSQL ledger (`storage.url` or `CCGATE_DATABASE_URL` = `postgres://…`): the same tables, rollups and
//! semantics as [`super::sqlite`], in a database several gateway instances can share.
//!
//! Differences from SQLite, each for a reason:
//! * Sums saturate in SQL (`LEAST`/`GREATEST` over `NUMERIC`): a `BIGINT` overflow raises an error instead of
//!   turning into a REAL as in SQLite, and a batch that fails every time would be retried for ever.
//! * A batch upserts its rollup rows in key order: two instances adding to the same rows in opposite orders
//!   would deadlock, and PostgreSQL would abort one of the batches.
//! * `ledger_journal` holds one high-water mark per crash journal (`journal_id`), because each instance numbers
//!   its own journal; with SQLite there is one instance and one row.
//!
//! The schema lives in versioned migrations under `migrations/postgres/`; sqlx takes an advisory lock while it
//! migrates, so instances starting together do not race.

use super::columns::{bind_hourly, bind_rollup, push_request_values, REQUEST_COLUMNS};
use super::rollup::{hourly_groups, rollup_groups};
use super::store::{
    AdminSession, HourlyQuery, HourlyRow, ModelSpend, RefusalRow, RequestFilter, RequestLogRow,
    SpendBucket, Store, StoredTenant, TenantSpend, TrustCanary, TrustCounter, TrustFlag,
    TrustSample, UpstreamOverride, UsageQuery, UsageReport, UsageRow, FIRST_DAY, LAST_DAY,
};
use super::{LedgerError, Record};
use futures_util::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres, QueryBuilder};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// The journal key of a store opened without a journal (the `usage` and `clean` commands): they never write a
/// high-water mark.
const NO_JOURNAL: &str = "";

pub struct PgStore {
    pool: PgPool,
    /// Which row of `ledger_journal` this process's crash journal owns (see `journal::journal_id`).
    journal_id: String,
    /// Told what each committed batch moved out of the leases, so the instance's own view of its leases follows the
    /// database's; it also knows which `limits.models` entries a row's tokens count for (set once the shared limits
    /// start; see [`crate::policy::lease`]).
    committed: OnceLock<Arc<crate::policy::lease::SharedLimits>>,
}

impl PgStore {
    /// Connects and migrates. `what` names the database in errors without its password. `journal_id` is the
    /// crash journal's key (empty for a store that only reads or cleans).
    pub async fn open(url: &str, what: &str, journal_id: &str) -> Result<PgStore, LedgerError> {
        let open_err = |source| LedgerError::OpenPostgres {
            url: what.to_owned(),
            source,
        };
        let opts: PgConnectOptions = url.parse().map_err(open_err)?;
        let opts = opts.application_name("ccgate");
        // One connection first: a pool that cannot connect reports only "pool timed out", while the operator
        // needs the cause (connection refused, authentication failed, no such database).
        sqlx::PgConnection::connect_with(&opts)
            .await
            .map_err(open_err)?
            .close()
            .await
            .map_err(open_err)?;
        let pool = PgPoolOptions::new()
            // The batch writer uses one connection at a time; the rest serve `/usage`, the dashboard and start-up.
            .max_connections(8)
            // A request for a connection fails after this instead of hanging the writer: it then retries with
            // back-off and `/health` shows why.
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        MIGRATOR.run(&pool).await?;
        Ok(PgStore {
            pool,
            journal_id: journal_id.to_owned(),
            committed: OnceLock::new(),
        })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Tells `shared` what each committed batch spent, from now on.
    pub fn on_commit(&self, shared: Arc<crate::policy::lease::SharedLimits>) {
        let _ = self.committed.set(shared);
    }

    /// Like [`super::sqlite::SqliteStore`]'s: one transaction per batch, stored whole or not at all.
    ///
    /// Idempotent by request id: a batch whose commit reached the server but whose acknowledgement was lost (the
    /// connection dropped) is sent again after a reconnect, and rows already stored are skipped, with their
    /// rollups, so nothing counts twice. The same transaction moves each tenant's new spend and `tpm` tokens out
    /// of this instance's leases ([`crate::policy::lease::lease_moves`]): ledger and leases change together, so
    /// another instance reading both never sees the money or tokens twice or not at all.
    async fn insert(&self, rows: &[Record], journal_seq: Option<u64>) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        let mut insert =
            QueryBuilder::<Postgres>::new(format!("INSERT INTO requests ({REQUEST_COLUMNS}) "));
        let mut stored: HashSet<String> = HashSet::with_capacity(rows.len());
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert.reset();
            insert.push_values(chunk, |mut b, r| push_request_values(&mut b, r));
            insert.push(" ON CONFLICT (request_id) DO NOTHING RETURNING request_id");
            let ids: Vec<String> = insert.build_query_scalar().fetch_all(&mut *tx).await?;
            stored.extend(ids);
        }
        let fresh: Vec<Record>;
        let rows = if stored.len() == rows.len() {
            rows
        } else {
            tracing::warn!(
                skipped = rows.len() - stored.len(),
                "ledger rows already stored (a batch sent again after a lost acknowledgement) were skipped"
            );
            fresh = rows
                .iter()
                .filter(|r| stored.contains(&r.request_id))
                .cloned()
                .collect();
            &fresh
        };
        let mut groups = rollup_groups(rows);
        // Row locks in one global order: concurrent batches from several instances never deadlock.
        groups.sort_by(|(a, _), (b, _)| {
            (a.day, a.tenant_id, a.model).cmp(&(b.day, b.tenant_id, b.model))
        });
        let moves = crate::policy::lease::lease_moves(rows, self.committed.get().map(|s| &**s));
        for (k, d) in groups {
            bind_rollup(sqlx::query(UPSERT_ROLLUP), &k, &d)
                .execute(&mut *tx)
                .await?;
        }
        let mut hourly = hourly_groups(rows);
        hourly.sort_by_key(|(k, _)| *k);
        for (k, d) in hourly {
            bind_hourly(sqlx::query(UPSERT_HOURLY), &k, &d)
                .execute(&mut *tx)
                .await?;
        }
        for mv in &moves {
            crate::policy::lease::move_to_ledger(&mut tx, mv).await?;
        }
        if let Some(seq) = journal_seq {
            sqlx::query(
                "INSERT INTO ledger_journal (journal_id, committed_seq) VALUES ($1, $2)
                 ON CONFLICT (journal_id) DO UPDATE
                 SET committed_seq = GREATEST(ledger_journal.committed_seq, excluded.committed_seq)",
            )
            .bind(&self.journal_id)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        if let Some(hook) = self.committed.get() {
            hook.committed(&moves);
        }
        Ok(())
    }

    async fn query_usage(&self, q: &UsageQuery) -> Result<UsageReport, LedgerError> {
        let rows = sqlx::query_as::<_, UsageRow>(
            // The columns are BIGINT and saturate when written; only the one sum computed here could overflow.
            "SELECT day, tenant_id, model, requests, input_tokens, output_tokens,
                    LEAST(cache_write_5m_tokens::numeric + cache_write_1h_tokens, 9223372036854775807)::bigint
                        AS cache_creation_input_tokens,
                    cache_write_5m_tokens, cache_write_1h_tokens,
                    cache_read_tokens AS cache_read_input_tokens,
                    cost_nanousd, upstream_cost_nanousd, unpriced_requests, errors
             FROM daily_rollup
             WHERE ($1::text IS NULL OR tenant_id = $1) AND ($2::text IS NULL OR day >= $2)
                AND ($3::text IS NULL OR day <= $3)
             ORDER BY day, tenant_id, model",
        )
        .bind(&q.tenant_id)
        .bind(&q.from_day)
        .bind(&q.to_day)
        .fetch_all(&self.pool)
        .await?;
        Ok(UsageReport { rows })
    }
}

/// Rows per multi-row INSERT: 128 × 30 = 3,840 parameters (PostgreSQL allows 65,535). Larger than SQLite's
/// chunks because every statement is a network round trip here; still a fixed size, so the prepared statement
/// of a full chunk is reused.
const ROWS_PER_INSERT: usize = 128;

/// `sat(a, b)`: `a + b` clamped to BIGINT, as SQLite's REAL-then-CAST reads it.
macro_rules! sat_add {
    ($col:literal) => {
        sat_add_to!("daily_rollup", $col)
    };
}

/// [`sat_add`] for a column of `table`.
macro_rules! sat_add_to {
    ($table:literal, $col:literal) => {
        concat!(
            $col,
            " = LEAST(GREATEST(",
            $table,
            ".",
            $col,
            "::numeric + excluded.",
            $col,
            ", -9223372036854775808), 9223372036854775807)::bigint"
        )
    };
}

const UPSERT_ROLLUP: &str = concat!(
    "INSERT INTO daily_rollup (day, tenant_id, model, requests, input_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd,
    upstream_cost_nanousd, unpriced_requests, errors, max_cost_nanousd)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (day, tenant_id, model) DO UPDATE SET ",
    sat_add!("requests"),
    ", ",
    sat_add!("input_tokens"),
    ", ",
    sat_add!("cache_write_5m_tokens"),
    ", ",
    sat_add!("cache_write_1h_tokens"),
    ", ",
    sat_add!("cache_read_tokens"),
    ", ",
    sat_add!("output_tokens"),
    ", ",
    sat_add!("cost_nanousd"),
    ", ",
    sat_add!("upstream_cost_nanousd"),
    ", ",
    sat_add!("unpriced_requests"),
    ", ",
    sat_add!("errors"),
    ", max_cost_nanousd = GREATEST(daily_rollup.max_cost_nanousd, excluded.max_cost_nanousd)"
);

const UPSERT_HOURLY: &str = concat!(
    "INSERT INTO hourly_rollup (hour_ms, tenant_id, model, upstream_id, requests, input_tokens, cache_write_5m_tokens,
    cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd, unpriced_requests,
    errors)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
    ON CONFLICT (hour_ms, tenant_id, model, upstream_id) DO UPDATE SET ",
    sat_add_to!("hourly_rollup", "requests"),
    ", ",
    sat_add_to!("hourly_rollup", "input_tokens"),
    ", ",
    sat_add_to!("hourly_rollup", "cache_write_5m_tokens"),
    ", ",
    sat_add_to!("hourly_rollup", "cache_write_1h_tokens"),
    ", ",
    sat_add_to!("hourly_rollup", "cache_read_tokens"),
    ", ",
    sat_add_to!("hourly_rollup", "output_tokens"),
    ", ",
    sat_add_to!("hourly_rollup", "cost_nanousd"),
    ", ",
    sat_add_to!("hourly_rollup", "upstream_cost_nanousd"),
    ", ",
    sat_add_to!("hourly_rollup", "unpriced_requests"),
    ", ",
    sat_add_to!("hourly_rollup", "errors"),
);

impl Store for PgStore {
    fn postgres(&self) -> Option<&PgStore> {
        Some(self)
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn insert_batch<'a>(
        &'a self,
        rows: &'a [Record],
        journal_seq: Option<u64>,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(self.insert(rows, journal_seq))
    }

    fn journal_committed_seq(&self) -> BoxFuture<'_, Result<u64, LedgerError>> {
        Box::pin(async move {
            if self.journal_id == NO_JOURNAL {
                return Ok(0);
            }
            let seq: Option<i64> = sqlx::query_scalar(
                "SELECT committed_seq FROM ledger_journal WHERE journal_id = $1",
            )
            .bind(&self.journal_id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
        })
    }

    fn usage<'a>(&'a self, q: &'a UsageQuery) -> BoxFuture<'a, Result<UsageReport, LedgerError>> {
        Box::pin(self.query_usage(q))
    }

    fn spend_by_tenant<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<TenantSpend>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as(
                // SUM over BIGINT is NUMERIC (never overflows); the clamp keeps one absurd row from stopping the
                // gateway at start, as SQLite's total() and CAST do.
                "SELECT tenant_id,
                        LEAST(GREATEST(SUM(cost_nanousd), -9223372036854775808), 9223372036854775807)::bigint
                            AS cost_nanousd
                 FROM daily_rollup WHERE ($1::text IS NULL OR day >= $1) GROUP BY tenant_id",
            )
            .bind(from_day)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn spend_by_tenant_model<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ModelSpend>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as(
                "SELECT tenant_id, model,
                        LEAST(GREATEST(SUM(cost_nanousd), -9223372036854775808), 9223372036854775807)::bigint
                            AS cost_nanousd
                 FROM daily_rollup WHERE ($1::text IS NULL OR day >= $1) GROUP BY tenant_id, model",
            )
            .bind(from_day)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn spend_buckets(
        &self,
        since_ms: i64,
        width_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<SpendBucket>, LedgerError>> {
        Box::pin(async move {
            // Served by the (tenant_id, ts_ms) index of migration 0007 only per tenant; at start this reads the
            // rows of the longest window once.
            Ok(sqlx::query_as(
                "SELECT tenant_id, model, (ts_ms / $2) * $2 AS start_ms,
                        LEAST(SUM(cost_nanousd::numeric), 9223372036854775807)::bigint AS cost_nanousd,
                        LEAST(SUM(input_tokens::numeric + cache_write_5m_tokens + cache_write_1h_tokens
                                  + output_tokens), 9223372036854775807)::bigint AS tokens
                 FROM requests WHERE ts_ms >= $1 AND billable GROUP BY 1, 2, 3 ORDER BY 3",
            )
            .bind(since_ms)
            .bind(width_ms.max(1))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn peak_cost<'a>(
        &'a self,
        tenant_id: &'a str,
        since_day: &'a str,
    ) -> BoxFuture<'a, Result<Option<i64>, LedgerError>> {
        Box::pin(async move {
            // Served by the (tenant_id, day) rollup index.
            Ok(sqlx::query_scalar(
                "SELECT MAX(max_cost_nanousd) FROM daily_rollup WHERE tenant_id = $1 AND day >= $2",
            )
            .bind(tenant_id)
            .bind(since_day)
            .fetch_one(&self.pool)
            .await?)
        })
    }

    fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, LedgerError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM requests WHERE day < $1")
                .bind(day)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM daily_rollup WHERE day < $1")
                .bind(day)
                .execute(&mut *tx)
                .await?;
            // Hourly rows carry no local day: those that end before the first request kept are removed (the hour
            // holding the first kept request stays whole), and all of them when no request is kept.
            sqlx::query(
                "DELETE FROM hourly_rollup WHERE hour_ms + 3600000 <= COALESCE(
                    (SELECT MIN(ts_ms) FROM requests WHERE day >= $1), 9223372036854775807 - 3600000)",
            )
            .bind(day)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(deleted.rows_affected())
        })
    }

    fn count_requests(&self) -> BoxFuture<'_, Result<i64, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM requests")
                .fetch_one(&self.pool)
                .await?)
        })
    }

    fn refusals<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<RefusalRow>, LedgerError>> {
        Box::pin(async move {
            // `outcome = 'rejected'` as a literal: it is what lets the planner use the partial index (0002); the day
            // range is never NULL (see `store::FIRST_DAY`), so a generic plan still reads only those days.
            Ok(sqlx::query_as(
                "SELECT tenant_id, COALESCE(error_class, 'unknown') AS reason, status::bigint AS status,
                        COUNT(*) AS requests
                 FROM requests
                 WHERE outcome = 'rejected' AND day >= $2 AND day <= $3
                   AND ($1::text IS NULL OR tenant_id = $1)
                 GROUP BY tenant_id, COALESCE(error_class, 'unknown'), status
                 ORDER BY tenant_id COLLATE \"C\", COALESCE(error_class, 'unknown') COLLATE \"C\", status",
            )
            .bind(&q.tenant_id)
            .bind(q.from_day.as_deref().unwrap_or(FIRST_DAY))
            .bind(q.to_day.as_deref().unwrap_or(LAST_DAY))
            .fetch_all(&self.pool)
            .await?)
        })
    }

    /// PostgreSQL has no write-ahead log file to fold into a copyable database file: nothing to do.
    fn checkpoint(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async { Ok(()) })
    }

    fn backup_into<'a>(&'a self, _dest: &'a Path) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async { Err(LedgerError::BackupUnsupported) })
    }

    fn stored_request_ids<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>> {
        Box::pin(async move {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            // One array parameter, served by the `requests_request_id` index; DISTINCT because the index is not
            // unique and the caller wants a set.
            Ok(sqlx::query_scalar(
                "SELECT DISTINCT request_id FROM requests WHERE request_id = ANY($1)",
            )
            .bind(ids)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn console_tenants(&self) -> BoxFuture<'_, Result<Vec<StoredTenant>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, StoredTenant>(
                "SELECT id, name, key_sha256, key_hint, enabled, allowed_models, limits, expires_at, created_ms, updated_ms FROM console_tenants ORDER BY id",
            )
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn console_tenants_version(&self) -> BoxFuture<'_, Result<(i64, i64), LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT COUNT(*) FROM console_tenants) + 1000000 * (SELECT COUNT(*) FROM upstream_overrides),
                        (SELECT COALESCE(SUM(updated_ms), 0)::bigint FROM console_tenants)
                        + (SELECT COALESCE(SUM(updated_ms), 0)::bigint FROM upstream_overrides)",
            )
            .fetch_one(&self.pool)
            .await?)
        })
    }

    fn put_console_tenant<'a>(
        &'a self,
        t: &'a StoredTenant,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO console_tenants (id, name, key_sha256, key_hint, enabled, allowed_models, limits, expires_at, created_ms, updated_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, key_sha256 = excluded.key_sha256,
                   key_hint = excluded.key_hint, enabled = excluded.enabled,
                   allowed_models = excluded.allowed_models, limits = excluded.limits,
                   expires_at = excluded.expires_at, updated_ms = excluded.updated_ms",
            )
            .bind(&t.id)
            .bind(&t.name)
            .bind(&t.key_sha256)
            .bind(&t.key_hint)
            .bind(t.enabled)
            .bind(&t.allowed_models)
            .bind(&t.limits)
            .bind(&t.expires_at)
            .bind(t.created_ms)
            .bind(t.updated_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn hourly_usage<'a>(
        &'a self,
        q: &'a HourlyQuery,
    ) -> BoxFuture<'a, Result<Vec<HourlyRow>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, HourlyRow>(
                "SELECT hour_ms, tenant_id, model, upstream_id, requests, input_tokens, cache_write_5m_tokens,
                    cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd,
                    unpriced_requests, errors
                 FROM hourly_rollup
                 WHERE hour_ms >= $1 AND hour_ms < $2 AND ($3::text IS NULL OR tenant_id = $3)
                    AND ($4::text IS NULL OR model = $4) AND ($5::text IS NULL OR upstream_id = $5)
                 ORDER BY hour_ms",
            )
            .bind(q.from_ms)
            .bind(q.to_ms)
            .bind(&q.tenant_id)
            .bind(&q.model)
            .bind(&q.upstream_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn put_admin_session<'a>(
        &'a self,
        s: &'a AdminSession,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM admin_sessions WHERE expires_ms < $1")
                .bind(s.created_ms)
                .execute(&self.pool)
                .await?;
            sqlx::query(
                "INSERT INTO admin_sessions (token_sha256, username, csrf_token, credential_tag, created_ms, expires_ms)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&s.token_sha256)
            .bind(&s.username)
            .bind(&s.csrf_token)
            .bind(&s.credential_tag)
            .bind(s.created_ms)
            .bind(s.expires_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn admin_session<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<AdminSession>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, AdminSession>(
                "SELECT token_sha256, username, csrf_token, credential_tag, created_ms, expires_ms
                 FROM admin_sessions WHERE token_sha256 = $1",
            )
            .bind(token_sha256)
            .fetch_optional(&self.pool)
            .await?)
        })
    }

    fn delete_admin_session<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM admin_sessions WHERE token_sha256 = $1")
                .bind(token_sha256)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn delete_console_tenant<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM console_tenants WHERE id = $1")
                .bind(id)
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn requests_page<'a>(
        &'a self,
        f: &'a RequestFilter,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<RequestLogRow>, LedgerError>> {
        Box::pin(async move {
            // Newest first by row id (the paging cursor), which follows insertion and so, closely, time. A request
            // id is an equality, not `$10 IS NULL OR …`, so that its unique index finds the row.
            let by_request_id = if f.request_id.is_some() {
                "request_id = $10"
            } else {
                "$10::text IS NULL"
            };
            Ok(sqlx::query_as::<_, RequestLogRow>(&format!(
                "SELECT id, ts_ms, request_id, tenant_id, upstream_id, protocol, endpoint, model, upstream_model, stream,
                        status::bigint AS status, outcome, error_class, input_tokens, cache_write_5m_tokens,
                        cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, latency_ms, ttft_ms,
                        instance_id
                 FROM requests
                 WHERE {by_request_id} AND id < $1 AND ts_ms >= $2 AND ts_ms < $3
                   AND ($4::text IS NULL OR tenant_id = $4) AND ($5::text IS NULL OR model = $5)
                   AND ($6::text IS NULL OR upstream_id = $6) AND status >= $7 AND status <= $8
                 ORDER BY id DESC LIMIT $9"
            ))
            .bind(f.before_id.unwrap_or(i64::MAX))
            .bind(f.from_ms.unwrap_or(i64::MIN))
            .bind(f.to_ms.unwrap_or(i64::MAX))
            .bind(&f.tenant_id)
            .bind(&f.model)
            .bind(&f.upstream_id)
            .bind(f.status.map_or(i64::MIN, |s| s.0))
            .bind(f.status.map_or(i64::MAX, |s| s.1))
            .bind(limit)
            .bind(&f.request_id)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn upstream_overrides(&self) -> BoxFuture<'_, Result<Vec<UpstreamOverride>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, UpstreamOverride>(
                "SELECT upstream_id, enabled, weight, priority, updated_ms FROM upstream_overrides
                 ORDER BY upstream_id",
            )
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn put_upstream_override<'a>(
        &'a self,
        o: &'a UpstreamOverride,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            if o.enabled.is_none() && o.weight.is_none() && o.priority.is_none() {
                sqlx::query("DELETE FROM upstream_overrides WHERE upstream_id = $1")
                    .bind(&o.upstream_id)
                    .execute(&self.pool)
                    .await?;
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO upstream_overrides (upstream_id, enabled, weight, priority, updated_ms)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (upstream_id) DO UPDATE SET enabled = excluded.enabled, weight = excluded.weight,
                   priority = excluded.priority, updated_ms = excluded.updated_ms",
            )
            .bind(&o.upstream_id)
            .bind(o.enabled)
            .bind(o.weight)
            .bind(o.priority)
            .bind(o.updated_ms)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }
    fn trust_add<'a>(&'a self, rows: &'a [TrustCounter]) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            // Key order, so that two instances' transactions cannot deadlock.
            let mut sorted: Vec<&TrustCounter> = rows.iter().collect();
            sorted.sort_by(|a, b| {
                (&a.upstream_id, &a.model, a.hour_ms, &a.name).cmp(&(
                    &b.upstream_id,
                    &b.model,
                    b.hour_ms,
                    &b.name,
                ))
            });
            let mut tx = self.pool.begin().await?;
            for r in sorted {
                sqlx::query(
                    "INSERT INTO trust_counters (upstream_id, model, hour_ms, name, n) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (upstream_id, model, hour_ms, name)
                     DO UPDATE SET n = GREATEST(LEAST(trust_counters.n::numeric + excluded.n,
                                                      9223372036854775807), -9223372036854775807)::bigint",
                )
                .bind(&r.upstream_id)
                .bind(&r.model)
                .bind(r.hour_ms)
                .bind(&r.name)
                .bind(r.n)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn trust_counters(
        &self,
        since_hour_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<TrustCounter>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TrustCounter>(
                "SELECT upstream_id, model, hour_ms, name, n FROM trust_counters
                 WHERE hour_ms >= $1 ORDER BY upstream_id, model, hour_ms, name",
            )
            .bind(since_hour_ms)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn trust_prune(&self, hour_ms: i64) -> BoxFuture<'_, Result<u64, LedgerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM trust_samples WHERE ts_ms < $1")
                .bind(hour_ms)
                .execute(&self.pool)
                .await?;
            Ok(sqlx::query("DELETE FROM trust_counters WHERE hour_ms < $1")
                .bind(hour_ms)
                .execute(&self.pool)
                .await?
                .rows_affected())
        })
    }

    fn trust_raise<'a>(&'a self, f: &'a TrustFlag) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO trust_flags (upstream_id, check_name, model, raised_ms, cleared_ms, evidence)
                 VALUES ($1, $2, $3, $4, NULL, $5)
                 ON CONFLICT (upstream_id, check_name) WHERE cleared_ms IS NULL DO NOTHING",
            )
            .bind(&f.upstream_id)
            .bind(&f.check_name)
            .bind(&f.model)
            .bind(f.raised_ms)
            .bind(&f.evidence)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn trust_flags<'a>(
        &'a self,
        upstream_id: Option<&'a str>,
        open_only: bool,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<TrustFlag>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TrustFlag>(
                "SELECT id, upstream_id, check_name, model, raised_ms, cleared_ms, evidence FROM trust_flags
                 WHERE ($1::text IS NULL OR upstream_id = $1) AND (NOT $2 OR cleared_ms IS NULL)
                 ORDER BY id DESC LIMIT $3",
            )
            .bind(upstream_id)
            .bind(open_only)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn trust_clear<'a>(
        &'a self,
        upstream_id: &'a str,
        check_name: Option<&'a str>,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<u64, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query(
                "UPDATE trust_flags SET cleared_ms = $1
                 WHERE upstream_id = $2 AND ($3::text IS NULL OR check_name = $3) AND cleared_ms IS NULL",
            )
            .bind(now_ms)
            .bind(upstream_id)
            .bind(check_name)
            .execute(&self.pool)
            .await?
            .rows_affected())
        })
    }

    fn trust_add_samples<'a>(
        &'a self,
        rows: &'a [TrustSample],
        keep: i64,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            // Key order, so that two instances' transactions cannot deadlock.
            let mut sorted: Vec<&TrustSample> = rows.iter().collect();
            sorted.sort_by(|a, b| {
                (&a.upstream_id, &a.check_name, &a.request_id).cmp(&(
                    &b.upstream_id,
                    &b.check_name,
                    &b.request_id,
                ))
            });
            let mut tx = self.pool.begin().await?;
            for r in &sorted {
                sqlx::query(
                    "INSERT INTO trust_samples (upstream_id, check_name, request_id, ts_ms) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (upstream_id, check_name, request_id) DO NOTHING",
                )
                .bind(&r.upstream_id)
                .bind(&r.check_name)
                .bind(&r.request_id)
                .bind(r.ts_ms)
                .execute(&mut *tx)
                .await?;
            }
            let mut keys: Vec<(&str, &str)> = sorted
                .iter()
                .map(|r| (r.upstream_id.as_str(), r.check_name.as_str()))
                .collect();
            keys.dedup();
            for (upstream_id, check_name) in keys {
                sqlx::query(
                    "DELETE FROM trust_samples WHERE upstream_id = $1 AND check_name = $2 AND request_id NOT IN
                     (SELECT request_id FROM trust_samples WHERE upstream_id = $1 AND check_name = $2
                      ORDER BY ts_ms DESC, request_id DESC LIMIT $3)",
                )
                .bind(upstream_id)
                .bind(check_name)
                .bind(keep)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    fn trust_samples<'a>(
        &'a self,
        upstream_id: &'a str,
        check_name: &'a str,
        since_ms: i64,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_scalar::<_, String>(
                "SELECT request_id FROM trust_samples
                 WHERE upstream_id = $1 AND check_name = $2 AND ts_ms >= $3
                 ORDER BY ts_ms DESC, request_id DESC LIMIT $4",
            )
            .bind(upstream_id)
            .bind(check_name)
            .bind(since_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn trust_canary_claim<'a>(
        &'a self,
        upstream_id: &'a str,
        now_ms: i64,
        interval_ms: i64,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            // One statement: the row is created by the first claim, and later claims update it only when the last
            // one is old enough, so of two instances claiming at once exactly one is told `true`.
            let done = sqlx::query(
                "INSERT INTO trust_canary (upstream_id, claimed_ms) VALUES ($1, $2)
                 ON CONFLICT (upstream_id) DO UPDATE SET claimed_ms = excluded.claimed_ms
                 WHERE trust_canary.claimed_ms <= $3",
            )
            .bind(upstream_id)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(interval_ms))
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn trust_canary_record<'a>(
        &'a self,
        upstream_id: &'a str,
        outcome: Option<bool>,
        cost_nanousd: i64,
        last_run: &'a str,
        reference_run: Option<&'a str>,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE trust_canary SET runs = runs + 1, cost_nanousd = cost_nanousd + $2,
                   streak = CASE WHEN $3::boolean IS NULL THEN streak WHEN $3::boolean THEN streak + 1 ELSE 0 END,
                   last_outcome = $3, last_run = $4, reference_run = $5
                 WHERE upstream_id = $1",
            )
            .bind(upstream_id)
            .bind(cost_nanousd)
            .bind(outcome)
            .bind(last_run)
            .bind(reference_run)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }

    fn trust_canaries(&self) -> BoxFuture<'_, Result<Vec<TrustCanary>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, TrustCanary>(
                "SELECT upstream_id, claimed_ms, runs, cost_nanousd, streak, last_outcome, last_run, reference_run
                 FROM trust_canary ORDER BY upstream_id",
            )
            .fetch_all(&self.pool)
            .await?)
        })
    }

    fn trust_canary_reset<'a>(
        &'a self,
        upstream_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE trust_canary SET streak = 0, last_outcome = NULL WHERE upstream_id = $1",
            )
            .bind(upstream_id)
            .execute(&self.pool)
            .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    //! The PostgreSQL side of the contract suite (`ledger/contract.rs`): each test gets a schema of its own in
    //! the test database, dropped afterwards. Without a reachable server the tests say why and pass, unless
    //! `CCGATE_TEST_REQUIRE_POSTGRES` is set (CI sets it when the server answered).

    use super::*;
    use crate::ledger::contract::{Fixture, Raw, StoredRow};

    /// Where the tests look for a server, in order: `CCGATE_TEST_DATABASE_URL`, then the CI machine's trust-auth
    /// users.
    fn candidates() -> Vec<String> {
        match std::env::var("CCGATE_TEST_DATABASE_URL") {
            Ok(u) if !u.is_empty() => vec![u],
            _ => vec![
                "postgres://postgres@127.0.0.1:5432/test".into(),
                "postgres://root@127.0.0.1:5432/test".into(),
            ],
        }
    }

    /// A URL whose connections use `schema`.
    fn with_schema(base: &str, schema: &str) -> String {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!("{base}{sep}options=-c%20search_path%3D{schema}")
    }

    /// A fresh schema in the test database, or `None` (with the reason printed) when no server answers.
    pub(in crate::ledger) async fn schema() -> Option<TestSchema> {
        let mut errors = Vec::new();
        for base in candidates() {
            let opts: PgConnectOptions = match base.parse() {
                Ok(o) => o,
                Err(e) => {
                    errors.push(format!("{base}: {e}"));
                    continue;
                }
            };
            let connect = sqlx::PgConnection::connect_with(&opts);
            match tokio::time::timeout(Duration::from_secs(5), connect).await {
                Ok(Ok(mut conn)) => {
                    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
                    sqlx::query(&format!("CREATE SCHEMA {name}"))
                        .execute(&mut conn)
                        .await
                        .expect("create test schema");
                    let _ = conn.close().await;
                    return Some(TestSchema {
                        url: with_schema(&base, &name),
                        base,
                        name,
                    });
                }
                Ok(Err(e)) => errors.push(format!("{base}: {e}")),
                Err(_) => errors.push(format!("{base}: no answer within 5 s")),
            }
        }
        let why = errors.join("; ");
        if std::env::var_os("CCGATE_TEST_REQUIRE_POSTGRES").is_some() {
            panic!("PostgreSQL is required (CCGATE_TEST_REQUIRE_POSTGRES) but unreachable: {why}");
        }
        eprintln!("skipping: PostgreSQL not reachable ({why})");
        None
    }

    /// A schema of the test database, dropped (with everything in it) when this is dropped.
    pub(in crate::ledger) struct TestSchema {
        pub url: String,
        base: String,
        name: String,
    }

    impl Drop for TestSchema {
        fn drop(&mut self) {
            let base = self.base.clone();
            let name = self.name.clone();
            // Drop cannot await, and may run inside a runtime (or while a failed test unwinds): a thread with a
            // runtime of its own does the async work.
            let dropped = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                rt.block_on(async {
                    let mut conn = sqlx::PgConnection::connect(&base).await.ok()?;
                    sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
                        .execute(&mut conn)
                        .await
                        .ok()?;
                    conn.close().await.ok()
                })
            })
            .join();
            if !matches!(dropped, Ok(Some(()))) {
                eprintln!("could not drop test schema {}", self.name);
            }
        }
    }

    struct PgRaw {
        pool: PgPool,
    }

    impl Raw for PgRaw {
        fn stored_rows(&self) -> BoxFuture<'_, Vec<StoredRow>> {
            Box::pin(async move {
                sqlx::query_as(&format!(
                    "SELECT {REQUEST_COLUMNS} FROM requests ORDER BY ts_ms"
                ))
                .fetch_all(&self.pool)
                .await
                .expect("read requests")
            })
        }

        fn refuse_negative_timestamps(&self) -> BoxFuture<'_, ()> {
            Box::pin(async move {
                sqlx::query(
                    "ALTER TABLE requests ADD CONSTRAINT no_negative_ts CHECK (ts_ms >= 0)",
                )
                .execute(&self.pool)
                .await
                .expect("add constraint");
            })
        }
    }

    pub(in crate::ledger) async fn fixture() -> Option<Fixture> {
        let schema = schema().await?;
        let store = PgStore::open(&schema.url, "test schema", "test-journal")
            .await
            .expect("open PgStore");
        let raw = PgRaw {
            pool: store.pool.clone(),
        };
        Some(Fixture {
            store: std::sync::Arc::new(store),
            raw: Box::new(raw),
            _guard: Box::new(schema),
        })
    }

    /// A batch written again (its first commit's acknowledgement was lost) adds no row and no rollup twice; the
    /// spend it stores leaves its instance's budget lease in the same transaction, once.
    #[tokio::test]
    async fn a_batch_sent_twice_counts_once_and_leaves_the_lease_once() {
        let Some(f) = fixture().await else {
            return;
        };
        let pg = f.store.postgres().expect("a PostgreSQL store");
        sqlx::query(
            "INSERT INTO limit_leases (tenant_id, kind, instance_id, amount, expires_at)
             VALUES ('a', 'usd', 'i1', 100, now() + interval '1 minute')",
        )
        .execute(pg.pool())
        .await
        .unwrap();
        let mut rows: Vec<Record> = (0..3)
            .map(|_| super::super::contract::rec("a", 30, super::super::Outcome::Ok))
            .collect();
        for r in &mut rows {
            r.instance_id = Some("i1".into());
        }
        f.store.insert_batch(&rows, None).await.unwrap();
        // The same rows again, plus one new one.
        let mut again = rows.clone();
        let mut extra = super::super::contract::rec("a", 5, super::super::Outcome::Ok);
        extra.instance_id = Some("i1".into());
        again.push(extra);
        f.store.insert_batch(&again, None).await.unwrap();
        assert_eq!(f.store.count_requests().await.unwrap(), 4);
        let spend = f.store.spend_by_tenant(None).await.unwrap();
        assert_eq!(spend.len(), 1);
        assert_eq!(spend[0].cost_nanousd, 95);
        let (lease,): (i64,) = sqlx::query_as(
            "SELECT amount FROM limit_leases WHERE tenant_id = 'a' AND instance_id = 'i1'",
        )
        .fetch_one(pg.pool())
        .await
        .unwrap();
        assert_eq!(lease, 5, "100 leased, 95 stored: 5 left, never below 0");
    }

    /// Each instance's journal has its own high-water mark: one instance's commits must not make another's
    /// replay skip rows it never stored.
    #[tokio::test]
    async fn journal_marks_are_per_journal() {
        let Some(schema) = schema().await else {
            return;
        };
        let a = PgStore::open(&schema.url, "a", "journal-a").await.unwrap();
        let b = PgStore::open(&schema.url, "b", "journal-b").await.unwrap();
        let cli = PgStore::open(&schema.url, "cli", NO_JOURNAL).await.unwrap();
        a.insert_batch(&[Record::default()], Some(900))
            .await
            .unwrap();
        b.insert_batch(&[Record::default()], Some(7)).await.unwrap();
        assert_eq!(a.journal_committed_seq().await.unwrap(), 900);
        assert_eq!(b.journal_committed_seq().await.unwrap(), 7);
        assert_eq!(cli.journal_committed_seq().await.unwrap(), 0);
        a.pool.close().await;
        b.pool.close().await;
        cli.pool.close().await;
    }

    /// `sslmode=require` in the URL gives an encrypted connection, where the server offers TLS.
    #[tokio::test]
    async fn sslmode_require_connects_over_tls() {
        let Some(schema) = schema().await else {
            return;
        };
        let plain = PgStore::open(&schema.url, "plain", NO_JOURNAL)
            .await
            .unwrap();
        let offered: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(&plain.pool)
            .await
            .unwrap();
        plain.pool.close().await;
        if offered != "on" {
            eprintln!("skipping: the test server does not offer TLS (ssl = {offered})");
            return;
        }
        let tls = PgStore::open(
            &format!("{}&sslmode=require", schema.url),
            "tls",
            NO_JOURNAL,
        )
        .await
        .unwrap();
        let encrypted: bool =
            sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(&tls.pool)
                .await
                .unwrap();
        assert!(encrypted);
        tls.pool.close().await;
    }
}
