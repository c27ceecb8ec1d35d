//! The `requests` INSERT as a raw SQLite statement whose text parameters are bound without a copy.
//!
//! rusqlite binds every text value with `SQLITE_TRANSIENT`: SQLite allocates, copies, and later frees each of a
//! row's dozen strings. That was ~8k of the ~17k instructions a ledger row cost (`bench/callgrind.sh small`). Here
//! the strings are bound with `SQLITE_STATIC`, so SQLite reads the [`Record`]s' own bytes. That is sound because the
//! rows are borrowed for the whole of [`RawInsert::execute`], and every binding is cleared before it returns: no
//! pointer into a row survives the call, whatever happened inside it.

use super::Record;
use rusqlite::ffi;
use std::ffi::{c_int, CString};
use std::ptr::NonNull;

/// The columns of `requests` that a row fills, in the order [`bind_row`] binds them: the two must change together.
pub(super) const REQUEST_COLUMNS: &str = "ts_ms, day, request_id, tenant_id, upstream_id,
    upstream_request_id, protocol, endpoint, model, upstream_model, stream, status, outcome, error_class, input_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, thinking_tokens,
    web_search_requests, cost_nanousd, upstream_cost_nanousd, priced, price_version, latency_ms, ttft_ms, session_id,
    billable";
/// Parameters per row: the number of [`REQUEST_COLUMNS`].
const REQUEST_PARAMS: usize = 29;

/// `INSERT INTO requests (…) VALUES (?,…),(?,…)…` for `rows` rows, parameters numbered in row order.
fn insert_requests_sql(rows: usize) -> String {
    let one_row = format!("({})", vec!["?"; REQUEST_PARAMS].join(", "));
    format!(
        "INSERT INTO requests ({REQUEST_COLUMNS}) VALUES {}",
        vec![one_row.as_str(); rows].join(", ")
    )
}

/// A prepared INSERT of a fixed number of rows. It must be dropped before the connection it was prepared on
/// (SQLite refuses to close a connection with live statements); [`super::sqlite::Writer`] declares it first.
pub(super) struct RawInsert {
    stmt: NonNull<ffi::sqlite3_stmt>,
    db: *mut ffi::sqlite3,
    rows: usize,
}

// The statement is used only under the writer's mutex, together with the connection it belongs to.
unsafe impl Send for RawInsert {}

impl RawInsert {
    /// Prepares the INSERT of `rows` rows on `conn`.
    pub(super) fn for_rows(
        conn: &rusqlite::Connection,
        rows: usize,
    ) -> rusqlite::Result<RawInsert> {
        RawInsert::prepare(conn, &insert_requests_sql(rows), rows)
    }

    /// Prepares `sql`, an INSERT of `rows` rows of [`REQUEST_PARAMS`] parameters each, on `conn`.
    fn prepare(conn: &rusqlite::Connection, sql: &str, rows: usize) -> rusqlite::Result<RawInsert> {
        let text = CString::new(sql).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: `conn` is open; the handle stays valid while `conn` lives, and the `Writer` that owns both drops
        // this statement first.
        let db = unsafe { conn.handle() };
        let mut stmt = std::ptr::null_mut();
        // SAFETY: valid handle, NUL-terminated SQL, out-pointer to a local.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(db, text.as_ptr(), -1, &mut stmt, std::ptr::null_mut())
        };
        if rc != ffi::SQLITE_OK {
            return Err(error(db, rc));
        }
        let stmt = NonNull::new(stmt).ok_or(rusqlite::Error::InvalidQuery)?;
        let insert = RawInsert { stmt, db, rows };
        // SAFETY: the statement was just prepared.
        let count = unsafe { ffi::sqlite3_bind_parameter_count(insert.stmt.as_ptr()) };
        if usize::try_from(count) != Ok(rows * REQUEST_PARAMS) {
            return Err(rusqlite::Error::InvalidParameterCount(
                usize::try_from(count).unwrap_or(0),
                rows * REQUEST_PARAMS,
            ));
        }
        Ok(insert)
    }

    /// Inserts `rows`, which must hold exactly the number of rows the statement was prepared for.
    pub(super) fn execute(&mut self, rows: &[Record]) -> rusqlite::Result<()> {
        if rows.len() != self.rows {
            return Err(rusqlite::Error::InvalidParameterCount(
                rows.len() * REQUEST_PARAMS,
                self.rows * REQUEST_PARAMS,
            ));
        }
        let stmt = self.stmt.as_ptr();
        let mut result = Ok(());
        for (n, r) in rows.iter().enumerate() {
            // SAFETY: `stmt` is a live statement of this connection, and `r` outlives the step below; the
            // bindings are cleared before this function returns.
            let rc = unsafe { bind_row(stmt, 1 + n * REQUEST_PARAMS, r) };
            if rc != ffi::SQLITE_OK {
                result = Err(error(self.db, rc));
                break;
            }
        }
        if result.is_ok() {
            // SAFETY: every parameter is bound to memory that is alive until the bindings are cleared below.
            let rc = unsafe { ffi::sqlite3_step(stmt) };
            if rc != ffi::SQLITE_DONE {
                result = Err(error(self.db, rc));
            }
        }
        // SAFETY: resetting and unbinding a live statement; after this SQLite holds no pointer into `rows`.
        unsafe {
            ffi::sqlite3_reset(stmt);
            ffi::sqlite3_clear_bindings(stmt);
        }
        result
    }
}

impl Drop for RawInsert {
    fn drop(&mut self) {
        // SAFETY: finalised once, before the connection closes (see the type's documentation).
        unsafe {
            ffi::sqlite3_finalize(self.stmt.as_ptr());
        }
    }
}

#[cold]
fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: `db` is the live connection the failing call ran on; the message is copied out at once.
    let message = unsafe {
        let m = ffi::sqlite3_errmsg(db);
        (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), message)
}

/// Binds `r` to parameters `first ..= first + REQUEST_PARAMS - 1`; returns the first non-OK code.
///
/// # Safety
/// `stmt` must be a live statement, and `r` must stay alive and unmodified until its bindings are cleared.
unsafe fn bind_row(stmt: *mut ffi::sqlite3_stmt, first: usize, r: &Record) -> c_int {
    let mut b = Binder {
        stmt,
        at: c_int::try_from(first).unwrap_or(c_int::MAX),
        rc: ffi::SQLITE_OK,
    };
    b.int(r.ts_ms);
    b.text(Some(&r.day));
    b.text(Some(&r.request_id));
    b.text(Some(&r.tenant_id));
    b.text(r.upstream_id.as_deref());
    b.text(r.upstream_request_id.as_deref());
    b.text(Some(r.protocol));
    b.text(Some(r.endpoint));
    b.text(Some(&r.model));
    b.text(r.upstream_model.as_deref());
    b.int(i64::from(r.stream));
    b.int(i64::from(r.status));
    b.text(Some(r.outcome));
    b.text(r.error_class.as_deref());
    b.int(r.input_tokens);
    b.int(r.cache_write_5m_tokens);
    b.int(r.cache_write_1h_tokens);
    b.int(r.cache_read_tokens);
    b.int(r.output_tokens);
    b.opt_int(r.thinking_tokens);
    b.int(r.web_search_requests);
    b.int(r.cost_nanousd);
    b.int(r.upstream_cost_nanousd);
    b.int(i64::from(r.priced));
    b.text(Some(&r.price_version));
    b.int(r.latency_ms);
    b.opt_int(r.ttft_ms);
    b.text(r.session_id.as_deref());
    b.int(i64::from(r.billable));
    debug_assert!(b.rc != ffi::SQLITE_OK || b.at as usize == first + REQUEST_PARAMS);
    b.rc
}

/// Binds consecutive parameters, keeping the first failure.
struct Binder {
    stmt: *mut ffi::sqlite3_stmt,
    at: c_int,
    rc: c_int,
}

impl Binder {
    unsafe fn int(&mut self, v: i64) {
        if self.rc == ffi::SQLITE_OK {
            self.rc = ffi::sqlite3_bind_int64(self.stmt, self.at, v);
        }
        self.at += 1;
    }

    unsafe fn opt_int(&mut self, v: Option<i64>) {
        match v {
            Some(v) => self.int(v),
            None => self.null(),
        }
    }

    unsafe fn null(&mut self) {
        if self.rc == ffi::SQLITE_OK {
            self.rc = ffi::sqlite3_bind_null(self.stmt, self.at);
        }
        self.at += 1;
    }

    /// `SQLITE_STATIC`: SQLite keeps the pointer, not a copy (see the module documentation).
    unsafe fn text(&mut self, v: Option<&str>) {
        let Some(s) = v else {
            return self.null();
        };
        if self.rc == ffi::SQLITE_OK {
            self.rc = match c_int::try_from(s.len()) {
                Ok(len) => ffi::sqlite3_bind_text(
                    self.stmt,
                    self.at,
                    s.as_ptr().cast(),
                    len,
                    ffi::SQLITE_STATIC(),
                ),
                Err(_) => ffi::SQLITE_TOOBIG,
            };
        }
        self.at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::super::sqlite::SCHEMA;
    use super::*;

    fn row(ts_ms: i64, tenant: &str) -> Record {
        Record {
            ts_ms,
            day: "2026-11-27".into(),
            request_id: format!("req-{ts_ms}"),
            tenant_id: tenant.into(),
            upstream_id: None,
            upstream_request_id: None,
            protocol: "anthropic",
            endpoint: "messages",
            model: "claude-sonnet-4-6".into(),
            upstream_model: None,
            stream: false,
            status: 200,
            outcome: "ok",
            error_class: None,
            input_tokens: 1,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            cache_read_tokens: 0,
            output_tokens: 2,
            thinking_tokens: None,
            web_search_requests: 0,
            cost_nanousd: 3,
            upstream_cost_nanousd: 3,
            priced: true,
            price_version: "v".into(),
            latency_ms: 1,
            ttft_ms: None,
            session_id: None,
            billable: true,
        }
    }

    fn tenants(conn: &rusqlite::Connection) -> Vec<String> {
        let mut q = conn
            .prepare("SELECT tenant_id FROM requests ORDER BY ts_ms")
            .unwrap();
        let out = q.query_map([], |r| r.get(0)).unwrap();
        out.map(Result::unwrap).collect()
    }

    #[test]
    fn a_failed_insert_leaves_nothing_bound_and_the_statement_usable() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA[0]).unwrap();
        // A trigger that refuses negative timestamps stands in for any failure inside the step.
        conn.execute_batch(
            "CREATE TRIGGER no_negative BEFORE INSERT ON requests WHEN NEW.ts_ms < 0
             BEGIN SELECT RAISE(ABORT, 'negative timestamp'); END",
        )
        .unwrap();
        let mut two = RawInsert::for_rows(&conn, 2).unwrap();
        let err = two
            .execute(&[row(1, "first"), row(-1, "refused")])
            .unwrap_err();
        assert!(err.to_string().contains("negative timestamp"), "{err}");
        assert!(tenants(&conn).is_empty());
        // A row count the statement was not prepared for is refused before anything is bound.
        assert!(two.execute(&[row(1, "alone")]).is_err());
        // Strings that die right after the call: the stored copies must be SQLite's own.
        let batch = vec![row(2, "second"), row(3, "third")];
        two.execute(&batch).unwrap();
        drop(batch);
        assert_eq!(tenants(&conn), ["second", "third"]);
        drop(two);
        // Finalised: the connection closes cleanly.
        conn.close().map_err(|(_, e)| e).unwrap();
    }

    #[test]
    fn the_parameter_count_is_checked_when_prepared() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(SCHEMA[0]).unwrap();
        assert!(RawInsert::prepare(&conn, &insert_requests_sql(2), 3).is_err());
        assert!(RawInsert::prepare(&conn, "INSERT INTO nowhere VALUES (1)", 1).is_err());
    }
}
