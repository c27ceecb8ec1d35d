//! The embedded SQLite ledger at `data/ccgate.db` (WAL mode), the default store (see `postgres.rs` for the shared one).
//!
//! `requests` holds one row per request; `daily_rollup` holds one row per (day, tenant, model), updated in the
//! same transaction as the inserts, so usage queries and budget windows read a few hundred rollup rows instead of
//! scanning millions of requests. The schema lives in versioned migrations under `migrations/sqlite/`.

use super::columns::{bind_hourly, bind_rollup, push_request_values, REQUEST_COLUMNS};
use super::rollup::{hourly_groups, rollup_groups};
use super::store::{
    AdminSession, HourlyQuery, HourlyRow, ModelSpend, RefusalRow, RequestFilter, RequestLogRow,
    SpendBucket, Store, StoredTenant, TenantSpend, TrustCanary, TrustCounter, TrustFlag,
    TrustSample, UpstreamOverride, UsageQuery, UsageReport, UsageRow, FIRST_DAY, LAST_DAY,
};
use super::{LedgerError, Record};
use futures_util::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    path: PathBuf,
    /// Reads, migrations and maintenance; swapped with `writer` when the file is recreated (`verify_file`).
    pool: RwLock<SqlitePool>,
    /// The batch writer's own single connection: SQLite admits one writer at a time anyway, and with a pool of its
    /// own a batch never waits for a connection behind readers (WAL: readers never wait for it either).
    writer: RwLock<SqlitePool>,
    /// `(device, inode)` of the file the pools have open: a different one at `path` means it was deleted or
    /// replaced under us.
    identity: Mutex<Option<(u64, u64)>>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Refuses a data directory the gateway cannot write, naming the cause, before SQLite turns it into "unable to
/// open database file" (or, with an existing file, into a ledger that silently stores nothing).
fn check_writable(path: &Path) -> Result<(), LedgerError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|source| LedgerError::CreateDir {
        path: dir.to_owned(),
        source,
    })?;
    let probe = dir.join(format!(".ccgate-write-test-{}", std::process::id()));
    let not_writable = |path: &Path, source| LedgerError::NotWritable {
        path: path.to_owned(),
        source,
    };
    std::fs::write(&probe, b"ok").map_err(|e| not_writable(dir, e))?;
    let _ = std::fs::remove_file(&probe);
    for p in [path.to_owned(), path.with_extension("db-wal")] {
        if p.exists() {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&p)
                .map_err(|e| not_writable(&p, e))?;
        }
    }
    Ok(())
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore, LedgerError> {
        check_writable(path)?;
        let (pool, writer) = Self::connect(path).await?;
        add_legacy_max_cost(&pool).await?;
        MIGRATOR.run(&pool).await?;
        warn_out_of_range_rows(&pool).await;
        Ok(SqliteStore {
            path: path.to_owned(),
            pool: RwLock::new(pool),
            writer: RwLock::new(writer),
            identity: Mutex::new(file_identity(path)),
        })
    }

    async fn connect(path: &Path) -> Result<(SqlitePool, SqlitePool), LedgerError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let open_err = |source| LedgerError::Open {
            path: path.to_owned(),
            source,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.clone())
            .await
            .map_err(open_err)?;
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .map_err(open_err)?;
        Ok((pool, writer))
    }

    fn pool(&self) -> SqlitePool {
        self.pool.read().clone()
    }

    fn writer(&self) -> SqlitePool {
        self.writer.read().clone()
    }

    /// The file at `path` is gone (`rm data/ccgate.db*`) while the pools still write to the unlinked one: copy the
    /// open database to `path` (`VACUUM INTO` reads it, WAL included, through the open connection) and reopen
    /// there, so nothing written before or after is lost. A different file at `path` is not ours to overwrite:
    /// that is an error until an operator sorts it out.
    async fn recreate(&self) -> Result<Option<String>, LedgerError> {
        let expected = *self.identity.lock();
        let now = file_identity(&self.path);
        if now == expected {
            return Ok(None);
        }
        if now.is_some() {
            return Err(LedgerError::Replaced {
                path: self.path.clone(),
            });
        }
        let target = self.path.to_string_lossy().into_owned();
        sqlx::query("VACUUM INTO ?")
            .bind(&target)
            .execute(&self.writer())
            .await?;
        let (pool, writer) = Self::connect(&self.path).await?;
        let old_pool = std::mem::replace(&mut *self.pool.write(), pool);
        let old_writer = std::mem::replace(&mut *self.writer.write(), writer);
        *self.identity.lock() = file_identity(&self.path);
        old_pool.close().await;
        old_writer.close().await;
        Ok(Some(format!(
            "the database file {target} was deleted while the gateway ran; it was recreated from the open copy, \
             nothing was lost (find out what deleted it)"
        )))
    }

    /// One transaction per batch: the rows in multi-row INSERTs of [`ROWS_PER_INSERT`], then one upsert per
    /// (day, tenant, model) group of the batch into the rollups. Dropped or failed before the commit, the
    /// transaction rolls back: a batch is stored whole or not at all, so the writer can retry it.
    async fn insert(&self, rows: &[Record], journal_seq: Option<u64>) -> Result<(), LedgerError> {
        let writer = self.writer();
        let mut tx = writer.begin().await?;
        let mut insert =
            QueryBuilder::<Sqlite>::new(format!("INSERT INTO requests ({REQUEST_COLUMNS}) "));
        for chunk in rows.chunks(ROWS_PER_INSERT) {
            insert.reset();
            insert.push_values(chunk, |mut b, r| push_request_values(&mut b, r));
            insert.build().execute(&mut *tx).await?;
        }
        for (k, d) in rollup_groups(rows) {
            bind_rollup(sqlx::query(UPSERT_ROLLUP), &k, &d)
                .execute(&mut *tx)
                .await?;
        }
        for (k, d) in hourly_groups(rows) {
            bind_hourly(sqlx::query(UPSERT_HOURLY), &k, &d)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(seq) = journal_seq {
            sqlx::query(
                "UPDATE ledger_journal SET committed_seq = MAX(committed_seq, ?) WHERE id = 1",
            )
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query_usage(&self, q: &UsageQuery) -> Result<UsageReport, LedgerError> {
        let rows = sqlx::query_as::<_, UsageRow>(
            // CAST: a rollup that overflowed before usage was clamped holds a REAL; it reads as the nearest
            // integer (saturated) instead of failing every usage query.
            "SELECT day, tenant_id, model, CAST(requests AS INTEGER) AS requests,
                    CAST(input_tokens AS INTEGER) AS input_tokens, CAST(output_tokens AS INTEGER) AS output_tokens,
                    CAST(cache_write_5m_tokens + cache_write_1h_tokens AS INTEGER)
                        AS cache_creation_input_tokens,
                    CAST(cache_write_5m_tokens AS INTEGER) AS cache_write_5m_tokens,
                    CAST(cache_write_1h_tokens AS INTEGER) AS cache_write_1h_tokens,
                    CAST(cache_read_tokens AS INTEGER) AS cache_read_input_tokens,
                    CAST(cost_nanousd AS INTEGER) AS cost_nanousd,
                    CAST(upstream_cost_nanousd AS INTEGER) AS upstream_cost_nanousd,
                    CAST(unpriced_requests AS INTEGER) AS unpriced_requests, CAST(errors AS INTEGER) AS errors
             FROM daily_rollup
             WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR day >= ?2) AND (?3 IS NULL OR day <= ?3)
             ORDER BY day, tenant_id, model",
        )
        .bind(&q.tenant_id)
        .bind(&q.from_day)
        .bind(&q.to_day)
        .fetch_all(&self.pool())
        .await?;
        Ok(UsageReport { rows })
    }
}

/// Rows written before usage counts were clamped can hold negative counts or, after an overflow, REALs: they
/// are read saturated (see the CASTs in the queries); the admin is told once at start-up.
async fn warn_out_of_range_rows(pool: &SqlitePool) {
    let bad: Result<i64, _> = sqlx::query_scalar(
        "SELECT COUNT(*) FROM daily_rollup WHERE typeof(cost_nanousd) != 'integer' OR cost_nanousd < 0
            OR typeof(input_tokens) != 'integer' OR input_tokens < 0
            OR typeof(output_tokens) != 'integer' OR output_tokens < 0",
    )
    .fetch_one(pool)
    .await;
    if let Ok(n @ 1..) = bad {
        {
            tracing::warn!(
                rows = n,
                "the ledger holds usage rollups with out-of-range values (absurd usage reported by an upstream \
                 before CCGate clamped it); they read as the nearest valid number. Inspect them with: \
                 sqlite3 data/ccgate.db \"SELECT * FROM daily_rollup WHERE cost_nanousd < 0 OR typeof(cost_nanousd) != 'integer'\""
            );
        }
    }
}

/// Ledgers from before the rollups kept each group's most expensive request lack that column. Migration 0001 only
/// creates what is missing, so the column is added here, before any migration can rely on it.
async fn add_legacy_max_cost(pool: &SqlitePool) -> Result<(), LedgerError> {
    let (columns, has_max): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(name = 'max_cost_nanousd'), 0) FROM pragma_table_info('daily_rollup')",
    )
    .fetch_one(pool)
    .await?;
    if columns > 0 && has_max == 0 {
        sqlx::query(
            "ALTER TABLE daily_rollup ADD COLUMN max_cost_nanousd INTEGER NOT NULL DEFAULT 0",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// Rows per multi-row INSERT: 32 × 30 = 960 parameters, far below SQLite's limit (32,766; 999 before 3.32). A
/// fixed size keeps the statement text, and so sqlx's cached prepared statement, the same for every full chunk.
const ROWS_PER_INSERT: usize = 32;

/// Refused requests per tenant, reason and status. `outcome = 'rejected'` as a literal is what lets SQLite use the
/// partial index of migration 0003, and the day range (never NULL: see `store::FIRST_DAY`) reads only its days.
const REFUSALS: &str =
    "SELECT tenant_id, COALESCE(error_class, 'unknown') AS reason, status, COUNT(*) AS requests
     FROM requests
     WHERE outcome = 'rejected' AND day >= ?2 AND day <= ?3 AND (?1 IS NULL OR tenant_id = ?1)
     GROUP BY tenant_id, reason, status
     ORDER BY tenant_id, reason, status";

const UPSERT_ROLLUP: &str =
    "INSERT INTO daily_rollup (day, tenant_id, model, requests, input_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd,
    upstream_cost_nanousd, unpriced_requests, errors, max_cost_nanousd)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
    ON CONFLICT (day, tenant_id, model) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
        cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_nanousd = cost_nanousd + excluded.cost_nanousd,
        upstream_cost_nanousd = upstream_cost_nanousd + excluded.upstream_cost_nanousd,
        unpriced_requests = unpriced_requests + excluded.unpriced_requests,
        errors = errors + excluded.errors,
        max_cost_nanousd = MAX(max_cost_nanousd, excluded.max_cost_nanousd)";

const UPSERT_HOURLY: &str =
    "INSERT INTO hourly_rollup (hour_ms, tenant_id, model, upstream_id, requests, input_tokens, cache_write_5m_tokens,
    cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd, unpriced_requests,
    errors)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
    ON CONFLICT (hour_ms, tenant_id, model, upstream_id) DO UPDATE SET
        requests = requests + excluded.requests,
        input_tokens = input_tokens + excluded.input_tokens,
        cache_write_5m_tokens = cache_write_5m_tokens + excluded.cache_write_5m_tokens,
        cache_write_1h_tokens = cache_write_1h_tokens + excluded.cache_write_1h_tokens,
        cache_read_tokens = cache_read_tokens + excluded.cache_read_tokens,
        output_tokens = output_tokens + excluded.output_tokens,
        cost_nanousd = cost_nanousd + excluded.cost_nanousd,
        upstream_cost_nanousd = upstream_cost_nanousd + excluded.upstream_cost_nanousd,
        unpriced_requests = unpriced_requests + excluded.unpriced_requests,
        errors = errors + excluded.errors";

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT committed_seq FROM ledger_journal WHERE id = 1")
                    .fetch_optional(&self.pool())
                    .await?;
            Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
        })
    }

    fn verify_file(&self) -> BoxFuture<'_, Result<Option<String>, LedgerError>> {
        Box::pin(self.recreate())
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
                // total() never overflows (SUM raises "integer overflow"), and the CAST saturates: one absurd
                // row cannot keep the gateway from starting.
                "SELECT tenant_id, CAST(total(cost_nanousd) AS INTEGER) AS cost_nanousd FROM daily_rollup
                 WHERE (?1 IS NULL OR day >= ?1) GROUP BY tenant_id",
            )
            .bind(from_day)
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn spend_by_tenant_model<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<ModelSpend>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as(
                "SELECT tenant_id, model, CAST(total(cost_nanousd) AS INTEGER) AS cost_nanousd FROM daily_rollup
                 WHERE (?1 IS NULL OR day >= ?1) GROUP BY tenant_id, model",
            )
            .bind(from_day)
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn spend_buckets(
        &self,
        since_ms: i64,
        width_ms: i64,
    ) -> BoxFuture<'_, Result<Vec<SpendBucket>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as(SPEND_BUCKETS)
                .bind(since_ms)
                .bind(width_ms.max(1))
                .fetch_all(&self.pool())
                .await?)
        })
    }

    fn peak_cost<'a>(
        &'a self,
        tenant_id: &'a str,
        since_day: &'a str,
    ) -> BoxFuture<'a, Result<Option<i64>, LedgerError>> {
        Box::pin(async move {
            // Served by the (tenant_id, day) rollup index: a few rows, whatever the size of `requests`.
            Ok(sqlx::query_scalar(
                "SELECT CAST(MAX(max_cost_nanousd) AS INTEGER) FROM daily_rollup WHERE tenant_id = ? AND day >= ?",
            )
            .bind(tenant_id)
            .bind(since_day)
            .fetch_one(&self.pool())
            .await?)
        })
    }

    fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, LedgerError>> {
        Box::pin(async move {
            let pool = self.pool();
            let mut tx = pool.begin().await?;
            let deleted = sqlx::query("DELETE FROM requests WHERE day < ?")
                .bind(day)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM daily_rollup WHERE day < ?")
                .bind(day)
                .execute(&mut *tx)
                .await?;
            // Hourly rows carry no local day: those that end before the first request kept are removed (the hour
            // holding the first kept request stays whole), and all of them when no request is kept.
            sqlx::query(
                "DELETE FROM hourly_rollup WHERE hour_ms + 3600000 <= COALESCE(
                    (SELECT MIN(ts_ms) FROM requests WHERE day >= ?), 9223372036854775807 - 3600000)",
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
                .fetch_one(&self.pool())
                .await?)
        })
    }

    fn stored_request_ids<'a>(
        &'a self,
        ids: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>> {
        Box::pin(async move {
            let mut found = Vec::new();
            // Served by the `requests_request_id` index.
            for chunk in ids.chunks(500) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "SELECT request_id FROM requests WHERE request_id IN (",
                );
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id.as_str());
                }
                q.push(")");
                found.extend(
                    q.build_query_scalar::<String>()
                        .fetch_all(&self.pool())
                        .await?,
                );
            }
            Ok(found)
        })
    }

    fn refusals<'a>(
        &'a self,
        q: &'a UsageQuery,
    ) -> BoxFuture<'a, Result<Vec<RefusalRow>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as(REFUSALS)
                .bind(&q.tenant_id)
                .bind(q.from_day.as_deref().unwrap_or(FIRST_DAY))
                .bind(q.to_day.as_deref().unwrap_or(LAST_DAY))
                .fetch_all(&self.pool())
                .await?)
        })
    }

    fn checkpoint(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool())
                .await?;
            Ok(())
        })
    }

    fn backup_into<'a>(&'a self, dest: &'a Path) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let dest_str = dest
                .to_str()
                .ok_or_else(|| LedgerError::NonUtf8Path(dest.to_owned()))?;
            // One read transaction: the copy is the ledger as of one moment, whatever the writer does meanwhile.
            sqlx::query("VACUUM INTO ?")
                .bind(dest_str)
                .execute(&self.pool())
                .await?;
            Ok(())
        })
    }

    fn console_tenants(&self) -> BoxFuture<'_, Result<Vec<StoredTenant>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, StoredTenant>(
                "SELECT id, name, key_sha256, key_hint, enabled, allowed_models, limits, expires_at, created_ms, updated_ms FROM console_tenants ORDER BY id",
            )
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn console_tenants_version(&self) -> BoxFuture<'_, Result<(i64, i64), LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, (i64, i64)>(
                "SELECT (SELECT COUNT(*) FROM console_tenants) + 1000000 * (SELECT COUNT(*) FROM upstream_overrides),
                        (SELECT CAST(COALESCE(SUM(updated_ms), 0) AS INTEGER) FROM console_tenants)
                        + (SELECT CAST(COALESCE(SUM(updated_ms), 0) AS INTEGER) FROM upstream_overrides)",
            )
            .fetch_one(&self.pool())
            .await?)
        })
    }

    fn put_console_tenant<'a>(
        &'a self,
        t: &'a StoredTenant,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO console_tenants (id, name, key_sha256, key_hint, enabled, allowed_models, limits, expires_at, created_ms, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            .execute(&self.writer())
            .await?;
            Ok(())
        })
    }

    fn hourly_usage<'a>(
        &'a self,
        q: &'a HourlyQuery,
    ) -> BoxFuture<'a, Result<Vec<HourlyRow>, LedgerError>> {
        Box::pin(async move {
            // CAST: a sum that overflowed is a REAL in SQLite; it reads back saturated instead of failing.
            Ok(sqlx::query_as::<_, HourlyRow>(
                "SELECT hour_ms, tenant_id, model, upstream_id,
                    CAST(requests AS INTEGER) AS requests,
                    CAST(input_tokens AS INTEGER) AS input_tokens,
                    CAST(cache_write_5m_tokens AS INTEGER) AS cache_write_5m_tokens,
                    CAST(cache_write_1h_tokens AS INTEGER) AS cache_write_1h_tokens,
                    CAST(cache_read_tokens AS INTEGER) AS cache_read_tokens,
                    CAST(output_tokens AS INTEGER) AS output_tokens,
                    CAST(cost_nanousd AS INTEGER) AS cost_nanousd,
                    CAST(upstream_cost_nanousd AS INTEGER) AS upstream_cost_nanousd,
                    CAST(unpriced_requests AS INTEGER) AS unpriced_requests,
                    CAST(errors AS INTEGER) AS errors
                 FROM hourly_rollup
                 WHERE hour_ms >= ?1 AND hour_ms < ?2 AND (?3 IS NULL OR tenant_id = ?3)
                    AND (?4 IS NULL OR model = ?4) AND (?5 IS NULL OR upstream_id = ?5)
                 ORDER BY hour_ms",
            )
            .bind(q.from_ms)
            .bind(q.to_ms)
            .bind(&q.tenant_id)
            .bind(&q.model)
            .bind(&q.upstream_id)
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn put_admin_session<'a>(
        &'a self,
        s: &'a AdminSession,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM admin_sessions WHERE expires_ms < ?")
                .bind(s.created_ms)
                .execute(&self.writer())
                .await?;
            sqlx::query(
                "INSERT INTO admin_sessions (token_sha256, username, csrf_token, credential_tag, created_ms, expires_ms)
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&s.token_sha256)
            .bind(&s.username)
            .bind(&s.csrf_token)
            .bind(&s.credential_tag)
            .bind(s.created_ms)
            .bind(s.expires_ms)
            .execute(&self.writer())
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
                 FROM admin_sessions WHERE token_sha256 = ?",
            )
            .bind(token_sha256)
            .fetch_optional(&self.pool())
            .await?)
        })
    }

    fn delete_admin_session<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM admin_sessions WHERE token_sha256 = ?")
                .bind(token_sha256)
                .execute(&self.writer())
                .await?;
            Ok(r.rows_affected() > 0)
        })
    }

    fn delete_console_tenant<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let r = sqlx::query("DELETE FROM console_tenants WHERE id = ?")
                .bind(id)
                .execute(&self.writer())
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
            // id is an equality, not `?10 IS NULL OR …`, so that its index finds the row instead of a scan.
            let by_request_id = if f.request_id.is_some() {
                "request_id = ?10"
            } else {
                "?10 IS NULL"
            };
            Ok(sqlx::query_as::<_, RequestLogRow>(&format!(
                "SELECT id, ts_ms, request_id, tenant_id, upstream_id, protocol, endpoint, model, upstream_model, stream,
                        status AS status, outcome, error_class, input_tokens, cache_write_5m_tokens,
                        cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, latency_ms, ttft_ms,
                        instance_id
                 FROM requests
                 WHERE {by_request_id} AND id < ?1 AND ts_ms >= ?2 AND ts_ms < ?3
                   AND (?4 IS NULL OR tenant_id = ?4) AND (?5 IS NULL OR model = ?5)
                   AND (?6 IS NULL OR upstream_id = ?6) AND status >= ?7 AND status <= ?8
                 ORDER BY id DESC LIMIT ?9"
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
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn upstream_overrides(&self) -> BoxFuture<'_, Result<Vec<UpstreamOverride>, LedgerError>> {
        Box::pin(async move {
            Ok(sqlx::query_as::<_, UpstreamOverride>(
                "SELECT upstream_id, enabled, weight, priority, updated_ms FROM upstream_overrides
                 ORDER BY upstream_id",
            )
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn put_upstream_override<'a>(
        &'a self,
        o: &'a UpstreamOverride,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            if o.enabled.is_none() && o.weight.is_none() && o.priority.is_none() {
                sqlx::query("DELETE FROM upstream_overrides WHERE upstream_id = ?")
                    .bind(&o.upstream_id)
                    .execute(&self.writer())
                    .await?;
                return Ok(());
            }
            sqlx::query(
                "INSERT INTO upstream_overrides (upstream_id, enabled, weight, priority, updated_ms)
                 VALUES (?, ?, ?, ?, ?)
                 ON CONFLICT (upstream_id) DO UPDATE SET enabled = excluded.enabled, weight = excluded.weight,
                   priority = excluded.priority, updated_ms = excluded.updated_ms",
            )
            .bind(&o.upstream_id)
            .bind(o.enabled)
            .bind(o.weight)
            .bind(o.priority)
            .bind(o.updated_ms)
            .execute(&self.writer())
            .await?;
            Ok(())
        })
    }
    fn trust_add<'a>(&'a self, rows: &'a [TrustCounter]) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            let writer = self.writer();
            let mut tx = writer.begin().await?;
            for r in rows {
                // An overflowing sum becomes REAL in SQLite; MIN brings it back to the largest integer.
                sqlx::query(
                    "INSERT INTO trust_counters (upstream_id, model, hour_ms, name, n) VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (upstream_id, model, hour_ms, name)
                     DO UPDATE SET n = CAST(MIN(MAX(n + excluded.n, -9223372036854775807), 9223372036854775807) AS INTEGER)",
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
                "SELECT upstream_id, model, hour_ms, name, CAST(n AS INTEGER) AS n FROM trust_counters
                 WHERE hour_ms >= ? ORDER BY upstream_id, model, hour_ms, name",
            )
            .bind(since_hour_ms)
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn trust_prune(&self, hour_ms: i64) -> BoxFuture<'_, Result<u64, LedgerError>> {
        Box::pin(async move {
            sqlx::query("DELETE FROM trust_samples WHERE ts_ms < ?")
                .bind(hour_ms)
                .execute(&self.writer())
                .await?;
            Ok(sqlx::query("DELETE FROM trust_counters WHERE hour_ms < ?")
                .bind(hour_ms)
                .execute(&self.writer())
                .await?
                .rows_affected())
        })
    }

    fn trust_raise<'a>(&'a self, f: &'a TrustFlag) -> BoxFuture<'a, Result<bool, LedgerError>> {
        Box::pin(async move {
            let done = sqlx::query(
                "INSERT INTO trust_flags (upstream_id, check_name, model, raised_ms, cleared_ms, evidence)
                 VALUES (?, ?, ?, ?, NULL, ?)
                 ON CONFLICT (upstream_id, check_name) WHERE cleared_ms IS NULL DO NOTHING",
            )
            .bind(&f.upstream_id)
            .bind(&f.check_name)
            .bind(&f.model)
            .bind(f.raised_ms)
            .bind(&f.evidence)
            .execute(&self.writer())
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
                 WHERE (?1 IS NULL OR upstream_id = ?1) AND (NOT ?2 OR cleared_ms IS NULL)
                 ORDER BY id DESC LIMIT ?3",
            )
            .bind(upstream_id)
            .bind(open_only)
            .bind(limit)
            .fetch_all(&self.pool())
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
                "UPDATE trust_flags SET cleared_ms = ?1
                 WHERE upstream_id = ?2 AND (?3 IS NULL OR check_name = ?3) AND cleared_ms IS NULL",
            )
            .bind(now_ms)
            .bind(upstream_id)
            .bind(check_name)
            .execute(&self.writer())
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
            let writer = self.writer();
            let mut tx = writer.begin().await?;
            for r in &sorted {
                sqlx::query(
                    "INSERT INTO trust_samples (upstream_id, check_name, request_id, ts_ms) VALUES (?1, ?2, ?3, ?4)
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
                    "DELETE FROM trust_samples WHERE upstream_id = ?1 AND check_name = ?2 AND request_id NOT IN
                     (SELECT request_id FROM trust_samples WHERE upstream_id = ?1 AND check_name = ?2
                      ORDER BY ts_ms DESC, request_id DESC LIMIT ?3)",
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
                 WHERE upstream_id = ?1 AND check_name = ?2 AND ts_ms >= ?3
                 ORDER BY ts_ms DESC, request_id DESC LIMIT ?4",
            )
            .bind(upstream_id)
            .bind(check_name)
            .bind(since_ms)
            .bind(limit)
            .fetch_all(&self.pool())
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
                "INSERT INTO trust_canary (upstream_id, claimed_ms) VALUES (?1, ?2)
                 ON CONFLICT (upstream_id) DO UPDATE SET claimed_ms = excluded.claimed_ms
                 WHERE trust_canary.claimed_ms <= ?3",
            )
            .bind(upstream_id)
            .bind(now_ms)
            .bind(now_ms.saturating_sub(interval_ms))
            .execute(&self.writer())
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
                "UPDATE trust_canary SET runs = runs + 1, cost_nanousd = cost_nanousd + ?2,
                   streak = CASE WHEN ?3 IS NULL THEN streak WHEN ?3 THEN streak + 1 ELSE 0 END,
                   last_outcome = ?3, last_run = ?4, reference_run = ?5
                 WHERE upstream_id = ?1",
            )
            .bind(upstream_id)
            .bind(cost_nanousd)
            .bind(outcome)
            .bind(last_run)
            .bind(reference_run)
            .execute(&self.writer())
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
            .fetch_all(&self.pool())
            .await?)
        })
    }

    fn trust_canary_reset<'a>(
        &'a self,
        upstream_id: &'a str,
    ) -> BoxFuture<'a, Result<(), LedgerError>> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE trust_canary SET streak = 0, last_outcome = NULL WHERE upstream_id = ?1",
            )
            .bind(upstream_id)
            .execute(&self.writer())
            .await?;
            Ok(())
        })
    }
}

/// Recent billable spend and tokens in buckets. `requests` has no index on `ts_ms` on purpose: an index costs every
/// insert about 15 % of the writer's time (measured with `examples/ledger_scale.rs` on rows in time order), while
/// this runs only at start and after a change of limits, where a scan of a million rows takes about a second.
const SPEND_BUCKETS: &str = "SELECT tenant_id, model, (ts_ms / ?2) * ?2 AS start_ms,
        CAST(total(cost_nanousd) AS INTEGER) AS cost_nanousd,
        CAST(total(input_tokens + cache_write_5m_tokens + cache_write_1h_tokens + output_tokens) AS INTEGER) AS tokens
    FROM requests WHERE ts_ms >= ?1 AND billable = 1 GROUP BY 1, 2, 3 ORDER BY 3";

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::ledger::contract::{rec, Fixture, Raw, StoredRow};
    use crate::ledger::Outcome;
    use sqlx::Connection;
    use std::path::PathBuf;

    /// A fresh database path, removed with its WAL files when dropped.
    pub(in crate::ledger) struct TempDb(pub PathBuf);

    impl TempDb {
        pub(in crate::ledger) fn new() -> TempDb {
            TempDb(std::env::temp_dir().join(format!("ccgate-ledger-{}.db", uuid::Uuid::now_v7())))
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            for ext in ["db", "db-wal", "db-shm"] {
                let _ = std::fs::remove_file(self.0.with_extension(ext));
            }
        }
    }

    struct SqliteRaw {
        pool: SqlitePool,
    }

    impl Raw for SqliteRaw {
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
                    "CREATE TRIGGER no_negative BEFORE INSERT ON requests WHEN NEW.ts_ms < 0
                     BEGIN SELECT RAISE(ABORT, 'negative timestamp'); END",
                )
                .execute(&self.pool)
                .await
                .expect("create trigger");
            })
        }
    }

    /// The SQLite side of the contract suite (`ledger/contract.rs`): a fresh file per test.
    pub(in crate::ledger) async fn fixture() -> Fixture {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.0).await.expect("open SqliteStore");
        let raw = SqliteRaw { pool: store.pool() };
        Fixture {
            store: std::sync::Arc::new(store),
            raw: Box::new(raw),
            _guard: Box::new(db),
        }
    }

    /// The schema exactly as the code before versioned migrations created it (`CREATE TABLE IF NOT EXISTS` at
    /// every start), optionally without the rollups' later `max_cost_nanousd` column.
    async fn create_pre_migration_ledger(path: &Path, with_max_cost: bool) {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        let max_cost = if with_max_cost {
            ",\n        max_cost_nanousd INTEGER NOT NULL DEFAULT 0"
        } else {
            ""
        };
        let schema = [
            "CREATE TABLE IF NOT EXISTS requests (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        day TEXT NOT NULL,
        request_id TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        upstream_id TEXT,
        upstream_request_id TEXT,
        protocol TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        model TEXT NOT NULL,
        upstream_model TEXT,
        stream INTEGER NOT NULL,
        status INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        error_class TEXT,
        input_tokens INTEGER NOT NULL,
        cache_write_5m_tokens INTEGER NOT NULL,
        cache_write_1h_tokens INTEGER NOT NULL,
        cache_read_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        thinking_tokens INTEGER,
        web_search_requests INTEGER NOT NULL,
        cost_nanousd INTEGER NOT NULL,
        upstream_cost_nanousd INTEGER NOT NULL,
        priced INTEGER NOT NULL,
        price_version TEXT NOT NULL,
        latency_ms INTEGER NOT NULL,
        ttft_ms INTEGER,
        session_id TEXT,
        billable INTEGER NOT NULL
    )"
            .to_string(),
            "DROP INDEX IF EXISTS requests_day".into(),
            "DROP INDEX IF EXISTS requests_tenant_ts".into(),
            format!(
                "CREATE TABLE IF NOT EXISTS daily_rollup (
        day TEXT NOT NULL,
        tenant_id TEXT NOT NULL,
        model TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
        cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost_nanousd INTEGER NOT NULL DEFAULT 0,
        upstream_cost_nanousd INTEGER NOT NULL DEFAULT 0,
        unpriced_requests INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0{max_cost},
        PRIMARY KEY (day, tenant_id, model)
    )"
            ),
            "CREATE INDEX IF NOT EXISTS daily_rollup_tenant_day ON daily_rollup (tenant_id, day)".into(),
            "INSERT INTO requests (ts_ms, day, request_id, tenant_id, protocol, endpoint, model, stream, status,
                outcome, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens,
                output_tokens, web_search_requests, cost_nanousd, upstream_cost_nanousd, priced, price_version,
                latency_ms, billable)
             VALUES (1, '2026-01-02', 'old-req', 'old-tenant', 'anthropic', 'messages', 'm', 1, 200,
                'client_aborted', 7, 0, 0, 0, 3, 0, 4200, 4200, 1, 'v', 9, 1)"
                .into(),
            "INSERT INTO daily_rollup (day, tenant_id, model, requests, input_tokens, output_tokens, cost_nanousd,
                upstream_cost_nanousd)
             VALUES ('2026-01-02', 'old-tenant', 'm', 1, 7, 3, 4200, 4200)"
                .into(),
        ];
        for stmt in schema {
            sqlx::query(&stmt).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
    }

    async fn opens_a_pre_migration_ledger(with_max_cost: bool) {
        let db = TempDb::new();
        create_pre_migration_ledger(&db.0, with_max_cost).await;
        let store = SqliteStore::open(&db.0).await.unwrap();
        let (request_id, outcome): (String, Outcome) =
            sqlx::query_as("SELECT request_id, outcome FROM requests")
                .fetch_one(&store.pool())
                .await
                .unwrap();
        assert_eq!(
            (request_id.as_str(), outcome),
            ("old-req", Outcome::ClientAborted)
        );
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
            .fetch_all(&store.pool())
            .await
            .unwrap();
        // Every migration of this build (not a fixed list: each new one would have to edit this line).
        let all: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        assert_eq!(applied, all);
        assert_eq!(applied[..4], [1, 2, 3, 4]);
        // The old rollup row goes on accumulating.
        store
            .insert_batch(
                &[Record {
                    day: "2026-01-02".into(),
                    tenant_id: "old-tenant".into(),
                    ..rec("old-tenant", 800, Outcome::Ok)
                }],
                None,
            )
            .await
            .unwrap();
        drop(store);
        // Opening again applies nothing new and loses nothing.
        let store = SqliteStore::open(&db.0).await.unwrap();
        assert_eq!(store.count_requests().await.unwrap(), 2);
        let report = store.usage(&UsageQuery::default()).await.unwrap();
        assert_eq!(report.rows.len(), 1);
        assert_eq!(report.rows[0].totals.requests, 2);
        assert_eq!(report.rows[0].totals.cost_nanousd, 5000);
        assert_eq!(
            store.peak_cost("old-tenant", "2026-01-01").await.unwrap(),
            Some(800)
        );
    }

    /// The refusals report reads the partial index, not every request (the counting is a contract test).
    #[tokio::test]
    async fn refusals_use_the_partial_index() {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.0).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(&format!("EXPLAIN QUERY PLAN {REFUSALS}"))
                .bind(None::<String>)
                .bind("2026-11-01")
                .bind("2026-11-30")
                .fetch_all(&store.pool())
                .await
                .unwrap();
        // A search of the index by day, not a scan of it (or of the table).
        assert!(
            plan.iter().any(|p| p.3.contains("SEARCH")
                && p.3.contains("requests_refused")
                && p.3.contains("day>")),
            "{plan:?}"
        );
    }

    /// After the checkpoint the database file alone holds every row, and a backup is a complete ledger.
    #[tokio::test]
    async fn checkpoint_empties_the_wal_and_backup_copies_everything() {
        let db = TempDb::new();
        let store = SqliteStore::open(&db.0).await.unwrap();
        let rows: Vec<Record> = (0..10).map(|_| rec("a", 5, Outcome::Ok)).collect();
        store.insert_batch(&rows, None).await.unwrap();
        store.checkpoint().await.unwrap();
        let wal = db.0.with_extension("db-wal");
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0);
        let copy = TempDb::new();
        std::fs::copy(&db.0, &copy.0).unwrap();
        let reopened = SqliteStore::open(&copy.0).await.unwrap();
        assert_eq!(reopened.count_requests().await.unwrap(), 10);

        let backup = TempDb::new();
        store.backup_into(&backup.0).await.unwrap();
        let restored = SqliteStore::open(&backup.0).await.unwrap();
        assert_eq!(restored.count_requests().await.unwrap(), 10);
        assert_eq!(
            restored.spend_by_tenant(None).await.unwrap()[0].cost_nanousd,
            50
        );
        // VACUUM INTO never overwrites.
        assert!(store.backup_into(&backup.0).await.is_err());
    }

    #[tokio::test]
    async fn a_ledger_made_before_migrations_opens_with_its_rows() {
        opens_a_pre_migration_ledger(true).await;
    }

    #[tokio::test]
    async fn a_ledger_made_before_the_peak_cost_column_gets_it() {
        opens_a_pre_migration_ledger(false).await;
    }
}
