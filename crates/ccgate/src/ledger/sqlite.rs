//! The embedded SQLite ledger at `data/ccgate.db` (WAL mode).
//!
//! `requests` holds one row per request; `daily_rollup` holds one row per (day, tenant, model), updated in the
//! same transaction as the inserts, so usage queries and budget windows read a few hundred rollup rows instead of
//! scanning millions of requests.

use super::raw_insert::RawInsert;
use super::store::{Store, UsageQuery, UsageReport, UsageRow, UsageTotals};
use super::Record;
use futures_util::future::BoxFuture;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

pub(super) const SCHEMA: &[&str] = &[
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
    )",
    // Usage queries, budget windows and the start-up peak cost all read the rollups; only `ccgate clean` filters
    // requests by day, rarely enough for a scan. An index on `requests` would cost B-tree work on every insert.
    "DROP INDEX IF EXISTS requests_day",
    "DROP INDEX IF EXISTS requests_tenant_ts",
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
        errors INTEGER NOT NULL DEFAULT 0,
        max_cost_nanousd INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (day, tenant_id, model)
    )",
    "CREATE INDEX IF NOT EXISTS daily_rollup_tenant_day ON daily_rollup (tenant_id, day)",
];

pub struct SqliteStore {
    /// Reads, schema and maintenance.
    pool: SqlitePool,
    /// The one connection that appends request rows (WAL: readers are never blocked by it).
    writer: parking_lot::Mutex<Writer>,
}

/// The writer connection with its two request INSERTs. Fields drop in declaration order: the statements are
/// finalised before the connection closes, as SQLite requires.
struct Writer {
    insert_chunk: RawInsert,
    insert_one: RawInsert,
    conn: rusqlite::Connection,
}

impl Writer {
    fn open(path: &Path) -> rusqlite::Result<Writer> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.set_prepared_statement_cache_capacity(8);
        Ok(Writer {
            insert_chunk: RawInsert::for_rows(&conn, ROWS_PER_INSERT)?,
            insert_one: RawInsert::for_rows(&conn, 1)?,
            conn,
        })
    }
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<SqliteStore, String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .map_err(|e| e.to_string())?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|e| format!("cannot open ledger {}: {e}", path.display()))?;
        for stmt in SCHEMA {
            sqlx::query(stmt)
                .execute(&pool)
                .await
                .map_err(|e| format!("ledger schema: {e}"))?;
        }
        // Ledgers created before the rollups kept each group's most expensive request.
        let has_max: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pragma_table_info('daily_rollup') WHERE name = 'max_cost_nanousd'",
        )
        .fetch_one(&pool)
        .await
        .map_err(|e| format!("ledger schema: {e}"))?;
        if has_max == 0 {
            sqlx::query(
                "ALTER TABLE daily_rollup ADD COLUMN max_cost_nanousd INTEGER NOT NULL DEFAULT 0",
            )
            .execute(&pool)
            .await
            .map_err(|e| format!("ledger schema: {e}"))?;
        }
        let writer = Writer::open(path)
            .map_err(|e| format!("cannot open ledger {}: {e}", path.display()))?;
        Ok(SqliteStore {
            pool,
            writer: parking_lot::Mutex::new(writer),
        })
    }

    /// One transaction per batch on the dedicated writer connection: a prepared 32-row insert per 32 rows, then one
    /// upsert per (day, tenant, model) group of the batch into the rollups. The work is synchronous SQLite; on a
    /// multi-threaded runtime it runs under `block_in_place` so requests on this worker move elsewhere meanwhile.
    fn insert(&self, rows: &[Record]) -> Result<(), String> {
        let run = || {
            let mut writer = self.writer.lock();
            write_batch(&mut writer, rows).map_err(|e| e.to_string())
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }

    async fn query_usage(&self, q: &UsageQuery) -> Result<UsageReport, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT day, tenant_id, model, requests, input_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
                    cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd, unpriced_requests, errors
             FROM daily_rollup
             WHERE (?1 IS NULL OR tenant_id = ?1) AND (?2 IS NULL OR day >= ?2) AND (?3 IS NULL OR day <= ?3)
             ORDER BY day, tenant_id, model",
        )
        .bind(&q.tenant_id)
        .bind(&q.from_day)
        .bind(&q.to_day)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .into_iter()
            .map(|r| {
                let w5: i64 = r.get(5);
                let w1: i64 = r.get(6);
                UsageRow {
                    day: r.get(0),
                    tenant_id: r.get(1),
                    model: r.get(2),
                    totals: UsageTotals {
                        requests: r.get(3),
                        input_tokens: r.get(4),
                        cache_write_5m_tokens: w5,
                        cache_write_1h_tokens: w1,
                        cache_creation_input_tokens: w5 + w1,
                        cache_read_input_tokens: r.get(7),
                        output_tokens: r.get(8),
                        cost_nanousd: r.get(9),
                        upstream_cost_nanousd: r.get(10),
                        unpriced_requests: r.get(11),
                        errors: r.get(12),
                    },
                }
            })
            .collect();
        Ok(UsageReport { rows })
    }
}

/// Rows per multi-row INSERT. Each statement execution has a fixed cost (VDBE start-up, halt, reset,
/// unbinding) comparable to a row's own; 32 rows share it at 928 parameters, far below SQLite's limit (32,766).
const ROWS_PER_INSERT: usize = 32;

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

fn write_batch(writer: &mut Writer, rows: &[Record]) -> rusqlite::Result<()> {
    let tx = writer.conn.transaction()?;
    {
        let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
        for chunk in &mut chunks {
            writer.insert_chunk.execute(chunk)?;
        }
        for r in chunks.remainder() {
            writer.insert_one.execute(std::slice::from_ref(r))?;
        }
        let mut upsert = tx.prepare_cached(UPSERT_ROLLUP)?;
        for ((day, tenant, model), t) in rollup_groups(rows) {
            upsert.execute(rusqlite::params![
                day, tenant, model, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7], t[8], t[9],
                t[10]
            ])?;
        }
    }
    tx.commit()
}

/// The batch's rows summed per (day, tenant, model): requests, the five token counts, cost, upstream cost,
/// unpriced requests, errors; then the most expensive request's cost. Refused requests stay in `requests` for audit but are not usage: they never reached
/// an upstream.
fn rollup_groups(rows: &[Record]) -> Vec<((&str, &str, &str), [i64; 11])> {
    let mut groups: Vec<((&str, &str, &str), [i64; 11])> = Vec::new();
    for r in rows
        .iter()
        .filter(|r| r.billable && r.outcome != "rejected")
    {
        let key = (r.day.as_str(), r.tenant_id.as_str(), r.model.as_str());
        // A batch holds a handful of groups: a linear search beats hashing three strings per row.
        let idx = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, [0; 11]));
                groups.len() - 1
            }
        };
        let is_error = r.status >= 400 || r.outcome == "upstream_error";
        let unpriced = !r.priced && r.input_tokens + r.output_tokens > 0;
        let add = [
            1,
            r.input_tokens,
            r.cache_write_5m_tokens,
            r.cache_write_1h_tokens,
            r.cache_read_tokens,
            r.output_tokens,
            r.cost_nanousd,
            r.upstream_cost_nanousd,
            i64::from(unpriced),
            i64::from(is_error),
        ];
        let totals = &mut groups[idx].1;
        for (a, b) in totals.iter_mut().zip(add) {
            *a += b;
        }
        totals[10] = totals[10].max(r.cost_nanousd);
    }
    groups
}

impl Store for SqliteStore {
    fn insert_batch<'a>(&'a self, rows: &'a [Record]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.insert(rows) })
    }

    fn usage<'a>(&'a self, q: &'a UsageQuery) -> BoxFuture<'a, Result<UsageReport, String>> {
        Box::pin(async move { self.query_usage(q).await.map_err(|e| e.to_string()) })
    }

    fn spend_by_tenant<'a>(
        &'a self,
        from_day: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, String>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT tenant_id, SUM(cost_nanousd) FROM daily_rollup WHERE (?1 IS NULL OR day >= ?1) GROUP BY tenant_id",
            )
            .bind(from_day)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| e.to_string())?;
            Ok(rows
                .into_iter()
                .map(|r| (r.get::<String, _>(0), r.get::<i64, _>(1)))
                .collect())
        })
    }

    fn peak_cost<'a>(
        &'a self,
        tenant_id: &'a str,
        since_day: &'a str,
    ) -> BoxFuture<'a, Result<Option<i64>, String>> {
        Box::pin(async move {
            // Served by the (tenant_id, day) rollup index: a few rows, whatever the size of `requests`.
            sqlx::query_scalar(
                "SELECT MAX(max_cost_nanousd) FROM daily_rollup WHERE tenant_id = ? AND day >= ?",
            )
            .bind(tenant_id)
            .bind(since_day)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| e.to_string())
        })
    }

    fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, String>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(|e| e.to_string())?;
            let a = sqlx::query("DELETE FROM requests WHERE day < ?")
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            sqlx::query("DELETE FROM daily_rollup WHERE day < ?")
                .bind(day)
                .execute(&mut *tx)
                .await
                .map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            Ok(a.rows_affected())
        })
    }

    fn count_requests(&self) -> BoxFuture<'_, Result<i64, String>> {
        Box::pin(async move {
            sqlx::query_scalar("SELECT COUNT(*) FROM requests")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::raw_insert::REQUEST_COLUMNS;
    use super::*;

    #[tokio::test]
    async fn batches_round_trip_into_rollups() {
        let path = std::env::temp_dir().join(format!("ccgate-ledger-{}.db", uuid::Uuid::now_v7()));
        let store = SqliteStore::open(&path).await.unwrap();
        let rec = |tenant: &str, cost: i64, outcome: &'static str| Record {
            day: "2026-11-27".into(),
            tenant_id: tenant.into(),
            model: "m".into(),
            outcome,
            status: 200,
            cost_nanousd: cost,
            input_tokens: 10,
            priced: true,
            billable: true,
            ..Default::default()
        };
        let mut rows: Vec<Record> = (0..37)
            .map(|i| rec(if i % 2 == 0 { "a" } else { "b" }, 5, "ok"))
            .collect();
        rows.push(rec("a", 1000, "rejected"));
        store.insert_batch(&rows).await.unwrap();
        assert_eq!(store.count_requests().await.unwrap(), 38);
        let mut spend = store.spend_by_tenant(None).await.unwrap();
        spend.sort();
        assert_eq!(
            spend,
            vec![("a".to_string(), 19 * 5), ("b".to_string(), 18 * 5)]
        );
        let _ = std::fs::remove_file(&path);
    }

    /// Every column lands where it belongs, in a full multi-row chunk and in the single-row rest.
    #[tokio::test]
    async fn every_field_is_stored_in_its_column() {
        let path = std::env::temp_dir().join(format!("ccgate-ledger-{}.db", uuid::Uuid::now_v7()));
        let store = SqliteStore::open(&path).await.unwrap();
        let rec = |i: i64| Record {
            ts_ms: 1_000 + i,
            day: format!("2026-11-{:02}", 1 + i % 28),
            request_id: format!("req-{i}"),
            tenant_id: format!("tenant-{i}"),
            upstream_id: (i % 2 == 0).then(|| format!("up-{i}")),
            upstream_request_id: Some(format!("ureq-{i}")),
            protocol: "openai",
            endpoint: "chat_completions",
            model: format!("model-{i}"),
            upstream_model: Some(format!("umodel-{i}")),
            stream: i % 3 == 0,
            status: 200 + i as u16,
            outcome: "partial",
            error_class: Some(format!("err-{i}")),
            input_tokens: 10 * i + 1,
            cache_write_5m_tokens: 10 * i + 2,
            cache_write_1h_tokens: 10 * i + 3,
            cache_read_tokens: 10 * i + 4,
            output_tokens: 10 * i + 5,
            thinking_tokens: Some(10 * i + 6),
            web_search_requests: 10 * i + 7,
            cost_nanousd: 10 * i + 8,
            upstream_cost_nanousd: 10 * i + 9,
            priced: i % 2 == 1,
            price_version: format!("pv-{i}"),
            latency_ms: 100 + i,
            ttft_ms: Some(50 + i),
            session_id: Some(format!("sess-{i}")),
            billable: i % 4 != 0,
        };
        let n = ROWS_PER_INSERT as i64 + 3;
        let rows: Vec<Record> = (0..n).map(rec).collect();
        store.insert_batch(&rows).await.unwrap();
        // The rows were bound without a copy: the stored values must not depend on them any more.
        drop(rows);
        let stored = sqlx::query(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests ORDER BY ts_ms"
        ))
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(stored.len() as i64, n);
        for (i, row) in stored.iter().enumerate() {
            let r = rec(i as i64);
            let text = |c: usize| row.get::<Option<String>, _>(c);
            let int = |c: usize| row.get::<Option<i64>, _>(c);
            assert_eq!(int(0), Some(r.ts_ms));
            assert_eq!(text(1), Some(r.day.clone()));
            assert_eq!(text(2), Some(r.request_id.clone()));
            assert_eq!(text(3), Some(r.tenant_id.clone()));
            assert_eq!(text(4), r.upstream_id.clone());
            assert_eq!(text(5), r.upstream_request_id.clone());
            assert_eq!(text(6).as_deref(), Some(r.protocol));
            assert_eq!(text(7).as_deref(), Some(r.endpoint));
            assert_eq!(text(8), Some(r.model.clone()));
            assert_eq!(text(9), r.upstream_model.clone());
            assert_eq!(int(10), Some(i64::from(r.stream)));
            assert_eq!(int(11), Some(i64::from(r.status)));
            assert_eq!(text(12).as_deref(), Some(r.outcome));
            assert_eq!(text(13), r.error_class.clone());
            let counts: Vec<Option<i64>> = (14..=18).map(int).collect();
            assert_eq!(
                counts,
                (1..=5).map(|k| Some(10 * i as i64 + k)).collect::<Vec<_>>()
            );
            assert_eq!(int(19), r.thinking_tokens);
            assert_eq!(int(20), Some(r.web_search_requests));
            assert_eq!(int(21), Some(r.cost_nanousd));
            assert_eq!(int(22), Some(r.upstream_cost_nanousd));
            assert_eq!(int(23), Some(i64::from(r.priced)));
            assert_eq!(text(24), Some(r.price_version.clone()));
            assert_eq!(int(25), Some(r.latency_ms));
            assert_eq!(int(26), r.ttft_ms);
            assert_eq!(text(27), r.session_id.clone());
            assert_eq!(int(28), Some(i64::from(r.billable)));
        }
        let _ = std::fs::remove_file(&path);
    }
}
