//! Step 7 of the request path: the ledger. Every request that reached an upstream (and every request CCGate
//! refused after authenticating its tenant) becomes one [`Record`].
//!
//! A record is first appended to the crash journal ([`journal`]), then queued; a single writer task batches the
//! queue into one transaction per batch (up to [`BATCH_MAX`] rows or [`BATCH_WINDOW`]), which also maintains the
//! daily rollups that the usage API and budgets read. A failing database (a full disk) is retried for as long as
//! it takes, and shows in `/health`. Shutdown closes the queue and waits for the writer, so a record accepted is
//! a record stored, now or, from the journal, at the next start.

mod columns;
#[cfg(test)]
mod contract;
mod error;
pub mod journal;
mod outcome;
pub mod postgres;
pub(crate) mod rollup;
pub mod sqlite;
pub mod store;

pub(crate) use error::io_cause;
pub use error::LedgerError;
use journal::{Hold, Journal, Kind};
pub use outcome::Outcome;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
pub use store::{RefusalRow, Store, TenantSpend, UsageQuery, UsageReport, UsageRow, UsageTotals};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const BATCH_MAX: usize = 512;
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// One request, as recorded (and as the crash journal holds it, hence `Deserialize`; a field added later reads
/// as its default from an older journal line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Record {
    pub ts_ms: i64,
    /// Local calendar day (`YYYY-MM-DD`) in `server.timezone` at `ts_ms`.
    pub day: String,
    pub request_id: String,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    pub upstream_request_id: Option<String>,
    #[serde(deserialize_with = "static_label")]
    pub protocol: Label,
    #[serde(deserialize_with = "static_label")]
    pub endpoint: Label,
    /// The model the tenant asked for.
    pub model: String,
    /// The model sent upstream (after alias resolution and `modelMap`).
    pub upstream_model: Option<String>,
    pub stream: bool,
    pub status: u16,
    pub outcome: Outcome,
    pub error_class: Option<String>,
    pub input_tokens: i64,
    pub cache_write_5m_tokens: i64,
    pub cache_write_1h_tokens: i64,
    pub cache_read_tokens: i64,
    pub output_tokens: i64,
    pub thinking_tokens: Option<i64>,
    pub web_search_requests: i64,
    /// What the tenant is charged, at list price.
    pub cost_nanousd: i64,
    /// What the upstream charges us (list price × `priceMultiplier`).
    pub upstream_cost_nanousd: i64,
    /// False when no price matched the model: the tokens are recorded, the cost is unknown, never silently $0.
    pub priced: bool,
    pub price_version: String,
    pub latency_ms: i64,
    pub ttft_ms: Option<i64>,
    pub session_id: Option<String>,
    /// Non-billable calls (count_tokens) are recorded but never charged.
    pub billable: bool,
    /// The gateway that served the request (`server.instanceId`, default `hostname:port`). Absent from journal
    /// lines written before the column existed.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// The client's `x-request-id` when it sent a sane one; `request_id` stays the gateway's own, unique id
    /// (`telemetry/request_id.rs`).
    pub client_request_id: Option<String>,
    /// Imported from the original CCGate's usage files (`ccgate import-usage`), not metered by this gateway.
    pub imported: bool,
    /// On imported rows: the cost the original recorded (`totalCost`), kept as it was; `cost_nanousd` is CCGate's
    /// own price of the same tokens.
    pub original_cost_nanousd: Option<i64>,
}

/// The `protocol` and `endpoint` labels the gateway writes (`Protocol::as_str`, `Endpoint::as_str` in
/// `api/proxy.rs`), for reading a record back from the journal into its `&'static str` fields.
const LABELS: [&str; 6] = [
    "anthropic",
    "openai",
    "messages",
    "count_tokens",
    "chat_completions",
    "responses",
];

/// A fixed label. An alias, so that serde's derive does not take the field for a string borrowed from the input.
pub type Label = &'static str;

fn static_label<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
    Ok(LABELS.into_iter().find(|l| *l == s).unwrap_or("unknown"))
}

/// Handle to the ledger: cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::UnboundedSender<Queued>,
    journal: Option<Arc<Journal>>,
    pub store: Arc<dyn Store>,
    pub health: Arc<LedgerHealth>,
    close: CancellationToken,
    writer: Arc<Mutex<Option<WriterHandle>>>,
    /// The name this gateway writes into every row (`server.instanceId`, or `hostname:port`). Set once the
    /// listener is bound, since the port may be chosen by the OS; nothing is recorded before that.
    instance_id: Arc<std::sync::OnceLock<String>>,
}

/// The batch writer: at its end, the records it could not store and how many spilled ones were left on disk.
type WriterHandle = JoinHandle<(Vec<Queued>, usize)>;

/// A record on its way to the database, with the journal line that covers it until then.
struct Queued {
    seq: Option<u64>,
    rec: Record,
    _hold: Option<Hold>,
}

/// What a stop left unstored (the database refused to the end). `journaled` of them will be stored at the next
/// start; the rest were logged to stderr.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CloseReport {
    pub unstored: usize,
    pub journaled: bool,
}

/// How long the writer keeps retrying at shutdown before it gives up on a failing database.
const CLOSE_RETRY: Duration = Duration::from_secs(10);

impl Ledger {
    /// Starts the batch writer. With a journal, every record is journaled before it is queued (see
    /// [`journal`]).
    pub fn start(store: Arc<dyn Store>, journal: Option<Journal>) -> Ledger {
        let (tx, rx) = mpsc::unbounded_channel();
        let close = CancellationToken::new();
        let journal = journal.map(Arc::new);
        let health = Arc::new(LedgerHealth {
            backend: store.backend(),
            ..LedgerHealth::default()
        });
        let writer = tokio::spawn(write_loop(
            rx,
            store.clone(),
            journal.clone(),
            health.clone(),
            close.clone(),
        ));
        Ledger {
            tx,
            journal,
            store,
            health,
            close,
            writer: Arc::new(Mutex::new(Some(writer))),
            instance_id: Arc::default(),
        }
    }

    /// Names this gateway in the rows it records from now on; the first call wins.
    pub fn set_instance_id(&self, id: String) {
        let _ = self.instance_id.set(id);
    }

    pub fn instance_id(&self) -> Option<&str> {
        self.instance_id.get().map(String::as_str)
    }

    /// Journals the record and queues it, without waiting for the database. The queue is unbounded: while the
    /// database fails (a full disk), records wait in memory and are retried, never dropped.
    pub fn record(&self, rec: Record) {
        match &self.journal {
            Some(j) => {
                let mut guard = j.lock();
                let (seq, hold) = guard.append(Kind::End, &rec);
                // Still under the journal lock: the writer receives records in sequence order.
                self.send(Queued {
                    seq: Some(seq),
                    rec,
                    _hold: hold,
                });
            }
            None => self.send(Queued {
                seq: None,
                rec,
                _hold: None,
            }),
        }
    }

    fn send(&self, q: Queued) {
        if let Err(e) = self.tx.send(q) {
            self.health.lost.fetch_add(1, Ordering::Relaxed);
            log_lost(&e.0.rec);
        }
    }

    /// Journals what is known of a request as it is forwarded (`Kind::Start`) or once the upstream reported its
    /// first usage (`Kind::Progress`): a crash before its end then records it as interrupted, with that usage.
    /// The hold keeps the line on disk until the request's end is journaled.
    pub fn journal_in_flight(&self, kind: Kind, rec: &Record) -> Option<Hold> {
        self.journal.as_ref()?.lock().append(kind, rec).1
    }

    /// Stops accepting records and waits until every queued record is stored, or the database has refused them
    /// for [`CLOSE_RETRY`]. Call it after in-flight requests have settled (the gateway's task tracker), so
    /// nothing arrives after the close.
    pub async fn flush_and_close(&self) -> CloseReport {
        self.close.cancel();
        let handle = self.writer.lock().await.take();
        let (unstored, spilled) = match handle {
            Some(h) => h.await.unwrap_or_default(),
            None => (Vec::new(), 0),
        };
        let lost_before = self.health.lost.load(Ordering::Relaxed) as usize;
        match &self.journal {
            _ if unstored.is_empty() && spilled == 0 && lost_before == 0 => {
                if let Some(j) = &self.journal {
                    j.seal();
                }
                CloseReport::default()
            }
            _ => {
                for q in &unstored {
                    log_lost(&q.rec);
                }
                if spilled > 0 {
                    tracing::error!(
                        rows = spilled,
                        "ledger: rows spilled to the journal could not be stored before exit; the next start stores them"
                    );
                }
                CloseReport {
                    unstored: unstored.len() + spilled + lost_before,
                    journaled: lost_before == 0 && unstored.iter().all(|q| q._hold.is_some()),
                }
            }
        }
    }
}

fn log_lost(rec: &Record) {
    tracing::error!(record = %serde_json::to_string(rec).unwrap_or_default(), "ledger could not store this record; logged here");
}

/// The ledger's state for `/health`: `degraded` while writes fail, or after the database file was replaced
/// under the running gateway.
#[derive(Debug, Default)]
pub struct LedgerHealth {
    /// The store's [`Store::backend`].
    backend: &'static str,
    last_write_ms: AtomicI64,
    failing_since_ms: AtomicI64,
    error: parking_lot::Mutex<Option<String>>,
    /// A condition that stays until restart: the database file was deleted or replaced while running.
    incident: parking_lot::Mutex<Option<(i64, String)>>,
    journal_error: parking_lot::Mutex<Option<String>>,
    /// Records that reached neither the journal nor the queue (the ledger was closed).
    lost: AtomicU64,
    /// Records waiting in the journal on disk (spilled) for the database to come back.
    spilled: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LedgerStatus {
    /// `ok` or `degraded`.
    pub status: &'static str,
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// Last successful commit (RFC 3339), if any.
    pub last_write: Option<String>,
    /// Since when writes fail (RFC 3339).
    pub failing_since: Option<String>,
    /// What is wrong, for the admin.
    pub error: Option<String>,
    /// Records waiting on disk (in the crash journal) for the database to come back.
    pub spilled: u64,
}

fn rfc3339(ms: i64) -> Option<String> {
    (ms > 0)
        .then(|| chrono::DateTime::from_timestamp_millis(ms))
        .flatten()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

impl LedgerHealth {
    fn wrote(&self) {
        self.last_write_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        if self.failing_since_ms.swap(0, Ordering::Relaxed) != 0 {
            tracing::info!("ledger: writes succeed again");
        }
        *self.error.lock() = None;
        crate::alerts::ledger_wrote();
    }

    fn failed(&self, e: &LedgerError) {
        let _ = self.failing_since_ms.compare_exchange(
            0,
            chrono::Utc::now().timestamp_millis(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        *self.error.lock() = Some(e.to_string());
        crate::alerts::ledger_failed(e);
    }

    pub fn report(&self) -> LedgerStatus {
        let failing = self.failing_since_ms.load(Ordering::Relaxed);
        let mut problems: Vec<String> = Vec::new();
        if let Some(e) = self.error.lock().clone() {
            problems.push(format!("writes fail: {e}"));
        }
        if let Some(e) = self.journal_error.lock().clone() {
            problems.push(format!("journal: {e}"));
        }
        if let Some((at, what)) = self.incident.lock().clone() {
            problems.push(format!("{what} (at {})", rfc3339(at).unwrap_or_default()));
        }
        LedgerStatus {
            status: if problems.is_empty() {
                "ok"
            } else {
                "degraded"
            },
            backend: self.backend,
            last_write: rfc3339(self.last_write_ms.load(Ordering::Relaxed)),
            failing_since: rfc3339(failing),
            error: (!problems.is_empty()).then(|| problems.join("; ")),
            spilled: self.spilled.load(Ordering::Relaxed),
        }
    }
}

/// While the database fails, at most this many records wait in memory; later ones are *spilled*: only their
/// journal sequence number and segment hold stay in memory (a few dozen bytes), the record itself is on disk in
/// the crash journal, and is read back when the database answers again. An outage therefore costs disk (the
/// journal's segments), not memory. Only a journal that cannot be written (a full disk) keeps records in memory.
pub const MEMORY_ROWS: usize = 10_000;

/// Records spilled to the journal while the database failed, oldest first; stored before anything newer, so the
/// database still commits journal lines in sequence order.
#[derive(Default)]
struct Spill {
    rows: VecDeque<Spilled>,
}

enum Spilled {
    /// In the journal: read back when its turn comes.
    OnDisk(u64, Hold),
    /// A record the journal could not take (its disk is full): it can only wait in memory.
    InMemory(Box<Queued>),
}

impl Spill {
    /// Moves the channel's backlog to the spill once it is over [`MEMORY_ROWS`] (or a spill has begun: then
    /// every record goes behind it, to keep the order).
    fn take_backlog(&mut self, rx: &mut mpsc::UnboundedReceiver<Queued>, health: &LedgerHealth) {
        if self.rows.is_empty() && rx.len() <= MEMORY_ROWS {
            return;
        }
        while let Ok(q) = rx.try_recv() {
            self.rows.push_back(match q {
                Queued {
                    seq: Some(seq),
                    _hold: Some(hold),
                    ..
                } => Spilled::OnDisk(seq, hold),
                q => Spilled::InMemory(Box::new(q)),
            });
        }
        health
            .spilled
            .store(self.rows.len() as u64, Ordering::Relaxed);
    }

    /// The oldest spilled records (at most [`BATCH_MAX`]): those in memory, or those of one journal segment,
    /// read back from it.
    fn read_batch(&mut self, health: &LedgerHealth) -> Vec<Queued> {
        let mut batch = Vec::new();
        while batch.len() < BATCH_MAX && matches!(self.rows.front(), Some(Spilled::InMemory(_))) {
            if let Some(Spilled::InMemory(q)) = self.rows.pop_front() {
                batch.push(*q);
            }
        }
        if !batch.is_empty() {
            health
                .spilled
                .store(self.rows.len() as u64, Ordering::Relaxed);
            return batch;
        }
        let Some(Spilled::OnDisk(_, first)) = self.rows.front() else {
            return batch;
        };
        let n = self
            .rows
            .iter()
            .take(BATCH_MAX)
            .take_while(|r| matches!(r, Spilled::OnDisk(_, h) if h.same_segment(first)))
            .count();
        let taken: Vec<(u64, Hold)> = self
            .rows
            .drain(..n)
            .filter_map(|r| match r {
                Spilled::OnDisk(seq, hold) => Some((seq, hold)),
                Spilled::InMemory(_) => None,
            })
            .collect();
        health
            .spilled
            .store(self.rows.len() as u64, Ordering::Relaxed);
        let seqs: std::collections::HashSet<u64> = taken.iter().map(|(s, _)| *s).collect();
        let mut found = match taken.first().map(|(_, h)| h.read_back(&seqs)) {
            Some(Ok(found)) => found,
            Some(Err(e)) => {
                tracing::error!(error = %e, rows = taken.len(), "ledger: cannot read spilled rows back from the journal");
                Default::default()
            }
            None => Default::default(),
        };
        for (seq, hold) in taken {
            match found.remove(&seq) {
                Some(rec) => batch.push(Queued {
                    seq: Some(seq),
                    rec,
                    _hold: Some(hold),
                }),
                None => {
                    health.lost.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        seq,
                        "ledger: a spilled row is missing from the journal; it is lost"
                    );
                }
            }
        }
        batch
    }
}

/// Drains the queue on a fixed tick instead of waking per record: at thousands of requests per second the
/// request path then pays one channel send per record and no cross-thread wake-up. Returns the records it could
/// not store by the end of [`CLOSE_RETRY`] after the close (their journal holds kept: the journal is not sealed),
/// and how many spilled records were left in the journal.
async fn write_loop(
    mut rx: mpsc::UnboundedReceiver<Queued>,
    store: Arc<dyn Store>,
    journal: Option<Arc<Journal>>,
    health: Arc<LedgerHealth>,
    close: CancellationToken,
) -> (Vec<Queued>, usize) {
    let mut batch: Vec<Queued> = Vec::with_capacity(BATCH_MAX);
    let mut spill = Spill::default();
    let mut tick = tokio::time::interval(BATCH_WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_check = std::time::Instant::now();
    let mut closing_since: Option<tokio::time::Instant> = None;
    loop {
        if closing_since.is_none() {
            tokio::select! {
                biased;
                _ = close.cancelled() => closing_since = Some(tokio::time::Instant::now()),
                _ = tick.tick() => {}
            }
        }
        if closing_since.is_some() {
            // Nothing is sent after the close: what the queue holds now is all there is.
            rx.close();
        }
        if last_check.elapsed() >= FILE_CHECK_INTERVAL {
            last_check = std::time::Instant::now();
            match store.verify_file().await {
                Ok(None) => {}
                Ok(Some(incident)) => {
                    tracing::error!("ledger: {incident}");
                    *health.incident.lock() =
                        Some((chrono::Utc::now().timestamp_millis(), incident));
                }
                Err(e) => health.failed(&e),
            }
        }
        if let Some(j) = &journal {
            *health.journal_error.lock() = j.error();
        }
        loop {
            if spill.rows.is_empty() {
                while batch.len() < BATCH_MAX {
                    match rx.try_recv() {
                        Ok(q) => batch.push(q),
                        Err(_) => break,
                    }
                }
            } else {
                // Spilled rows first: they are older than anything still queued.
                spill.take_backlog(&mut rx, &health);
                batch = spill.read_batch(&health);
            }
            crate::telemetry::metrics::ledger_queue(rx.len() + batch.len());
            if batch.is_empty() {
                break;
            }
            let stored = write_until_stored(
                &*store,
                &mut batch,
                &health,
                &close,
                &mut closing_since,
                &mut rx,
                &mut spill,
            )
            .await;
            if !stored {
                rx.close();
                let mut on_disk = 0;
                for r in spill.rows.drain(..) {
                    match r {
                        Spilled::OnDisk(..) => on_disk += 1,
                        Spilled::InMemory(q) => batch.push(*q),
                    }
                }
                while let Ok(q) = rx.try_recv() {
                    batch.push(q);
                }
                return (batch, on_disk);
            }
            if let Some(j) = &journal {
                j.prune();
            }
            if closing_since.is_some() {
                rx.close();
            }
        }
        if closing_since.is_some() {
            return (Vec::new(), 0);
        }
    }
}

/// How often the writer checks that the database file on disk is still the one it writes to.
const FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Stores the batch, retrying with back-off for as long as it takes (a full disk is a reason to wait, not to
/// drop rows), or, once the ledger is closing (seen here too: a close can come while a write is failing), for
/// [`CLOSE_RETRY`] after the close. Returns whether it was stored; the batch is emptied if so.
async fn write_until_stored(
    store: &dyn Store,
    batch: &mut Vec<Queued>,
    health: &LedgerHealth,
    close: &CancellationToken,
    closing_since: &mut Option<tokio::time::Instant>,
    rx: &mut mpsc::UnboundedReceiver<Queued>,
    spill: &mut Spill,
) -> bool {
    let rows: Vec<Record> = batch
        .iter_mut()
        .map(|q| std::mem::take(&mut q.rec))
        .collect();
    let seq = batch.iter().filter_map(|q| q.seq).max();
    let mut delay = Duration::from_millis(50);
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let began = std::time::Instant::now();
        let result = store.insert_batch(&rows, seq).await;
        crate::telemetry::metrics::ledger_write(began.elapsed(), rows.len(), result.is_ok());
        match result {
            Ok(()) => {
                health.wrote();
                batch.clear();
                return true;
            }
            Err(e) => {
                health.failed(&e);
                if attempt == 1 || attempt.is_power_of_two() {
                    tracing::warn!(attempt, rows = rows.len(), error = %e, "ledger write failed; retrying (rows are kept)");
                }
                // Rows keep coming while the database is away: past a bound they wait on disk, not in memory.
                spill.take_backlog(rx, health);
                let now = tokio::time::Instant::now();
                if close.is_cancelled() && closing_since.is_none() {
                    *closing_since = Some(now);
                }
                if closing_since.is_some_and(|t| now + delay > t + CLOSE_RETRY) {
                    for (q, r) in batch.iter_mut().zip(rows) {
                        q.rec = r;
                    }
                    return false;
                }
                if closing_since.is_some() {
                    tokio::time::sleep(delay).await;
                } else {
                    // A close during the back-off starts the shutdown's retry window at once.
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = close.cancelled() => {}
                    }
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite::tests::TempDb;
    use super::sqlite::SqliteStore;
    use super::*;
    use futures_util::future::BoxFuture;
    use std::sync::atomic::AtomicUsize;

    fn rec(i: usize) -> Record {
        Record {
            day: "2026-11-27".into(),
            tenant_id: "t".into(),
            request_id: i.to_string(),
            protocol: "anthropic",
            endpoint: "messages",
            cost_nanousd: 3,
            billable: true,
            priced: true,
            ..Default::default()
        }
    }

    /// A record accepted is a record stored: more than fit in one batch all land by the time `flush_and_close`
    /// returns, and a clean close leaves no journal segment behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_accepted_record_is_stored_by_the_close() {
        let db = TempDb::new();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
        let dir = db.0.with_extension("journal");
        let ledger = Ledger::start(store.clone(), Some(Journal::open(&dir, 0).unwrap()));
        let n = 7 * BATCH_MAX + 7;
        for i in 0..n {
            ledger.record(rec(i));
        }
        assert_eq!(ledger.flush_and_close().await, CloseReport::default());
        assert_eq!(store.count_requests().await.unwrap(), n as i64);
        let spend = store.spend_by_tenant(None).await.unwrap();
        assert_eq!(spend[0].cost_nanousd, 3 * n as i64);
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no segment left"
        );
        assert_eq!(store.journal_committed_seq().await.unwrap(), n as u64);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A database that fails (a full disk) for a while: rows wait and are retried, /health says degraded while
    /// it lasts, and every row lands once it recovers.
    struct Flaky {
        inner: SqliteStore,
        failures_left: AtomicUsize,
    }

    impl Store for Flaky {
        fn insert_batch<'a>(
            &'a self,
            rows: &'a [Record],
            seq: Option<u64>,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            if self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Box::pin(async {
                    Err(LedgerError::Db(sqlx::Error::Protocol(
                        "database or disk is full".into(),
                    )))
                });
            }
            self.inner.insert_batch(rows, seq)
        }
        fn usage<'a>(
            &'a self,
            q: &'a UsageQuery,
        ) -> BoxFuture<'a, Result<UsageReport, LedgerError>> {
            self.inner.usage(q)
        }
        fn spend_by_tenant<'a>(
            &'a self,
            from_day: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<TenantSpend>, LedgerError>> {
            self.inner.spend_by_tenant(from_day)
        }
        fn spend_by_tenant_model<'a>(
            &'a self,
            from_day: Option<&'a str>,
        ) -> BoxFuture<'a, Result<Vec<store::ModelSpend>, LedgerError>> {
            self.inner.spend_by_tenant_model(from_day)
        }
        fn spend_buckets(
            &self,
            since_ms: i64,
            width_ms: i64,
        ) -> BoxFuture<'_, Result<Vec<store::SpendBucket>, LedgerError>> {
            self.inner.spend_buckets(since_ms, width_ms)
        }
        fn peak_cost<'a>(
            &'a self,
            tenant_id: &'a str,
            since_day: &'a str,
        ) -> BoxFuture<'a, Result<Option<i64>, LedgerError>> {
            self.inner.peak_cost(tenant_id, since_day)
        }
        fn delete_before<'a>(&'a self, day: &'a str) -> BoxFuture<'a, Result<u64, LedgerError>> {
            self.inner.delete_before(day)
        }
        fn count_requests(&self) -> BoxFuture<'_, Result<i64, LedgerError>> {
            self.inner.count_requests()
        }
        fn backend(&self) -> &'static str {
            "flaky"
        }
        fn journal_committed_seq(&self) -> BoxFuture<'_, Result<u64, LedgerError>> {
            self.inner.journal_committed_seq()
        }
        fn stored_request_ids<'a>(
            &'a self,
            ids: &'a [String],
        ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>> {
            self.inner.stored_request_ids(ids)
        }
        fn refusals<'a>(
            &'a self,
            q: &'a UsageQuery,
        ) -> BoxFuture<'a, Result<Vec<store::RefusalRow>, LedgerError>> {
            self.inner.refusals(q)
        }
        fn checkpoint(&self) -> BoxFuture<'_, Result<(), LedgerError>> {
            self.inner.checkpoint()
        }
        fn backup_into<'a>(
            &'a self,
            dest: &'a std::path::Path,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.backup_into(dest)
        }
        fn console_tenants(&self) -> BoxFuture<'_, Result<Vec<store::StoredTenant>, LedgerError>> {
            self.inner.console_tenants()
        }
        fn console_tenants_version(&self) -> BoxFuture<'_, Result<(i64, i64), LedgerError>> {
            self.inner.console_tenants_version()
        }
        fn put_console_tenant<'a>(
            &'a self,
            t: &'a store::StoredTenant,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.put_console_tenant(t)
        }
        fn delete_console_tenant<'a>(
            &'a self,
            id: &'a str,
        ) -> BoxFuture<'a, Result<bool, LedgerError>> {
            self.inner.delete_console_tenant(id)
        }
        fn hourly_usage<'a>(
            &'a self,
            q: &'a store::HourlyQuery,
        ) -> BoxFuture<'a, Result<Vec<store::HourlyRow>, LedgerError>> {
            self.inner.hourly_usage(q)
        }
        fn put_admin_session<'a>(
            &'a self,
            s: &'a store::AdminSession,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.put_admin_session(s)
        }
        fn admin_session<'a>(
            &'a self,
            token_sha256: &'a str,
        ) -> BoxFuture<'a, Result<Option<store::AdminSession>, LedgerError>> {
            self.inner.admin_session(token_sha256)
        }
        fn delete_admin_session<'a>(
            &'a self,
            token_sha256: &'a str,
        ) -> BoxFuture<'a, Result<bool, LedgerError>> {
            self.inner.delete_admin_session(token_sha256)
        }
        fn requests_page<'a>(
            &'a self,
            f: &'a store::RequestFilter,
            limit: i64,
        ) -> BoxFuture<'a, Result<Vec<store::RequestLogRow>, LedgerError>> {
            self.inner.requests_page(f, limit)
        }
        fn upstream_overrides(
            &self,
        ) -> BoxFuture<'_, Result<Vec<store::UpstreamOverride>, LedgerError>> {
            self.inner.upstream_overrides()
        }
        fn put_upstream_override<'a>(
            &'a self,
            o: &'a store::UpstreamOverride,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.put_upstream_override(o)
        }
        fn trust_add<'a>(
            &'a self,
            rows: &'a [store::TrustCounter],
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.trust_add(rows)
        }
        fn trust_counters(
            &self,
            since: i64,
        ) -> BoxFuture<'_, Result<Vec<store::TrustCounter>, LedgerError>> {
            self.inner.trust_counters(since)
        }
        fn trust_prune(&self, hour_ms: i64) -> BoxFuture<'_, Result<u64, LedgerError>> {
            self.inner.trust_prune(hour_ms)
        }
        fn trust_raise<'a>(
            &'a self,
            f: &'a store::TrustFlag,
        ) -> BoxFuture<'a, Result<bool, LedgerError>> {
            self.inner.trust_raise(f)
        }
        fn trust_flags<'a>(
            &'a self,
            upstream_id: Option<&'a str>,
            open_only: bool,
            limit: i64,
        ) -> BoxFuture<'a, Result<Vec<store::TrustFlag>, LedgerError>> {
            self.inner.trust_flags(upstream_id, open_only, limit)
        }
        fn trust_clear<'a>(
            &'a self,
            upstream_id: &'a str,
            check_name: Option<&'a str>,
            now_ms: i64,
        ) -> BoxFuture<'a, Result<u64, LedgerError>> {
            self.inner.trust_clear(upstream_id, check_name, now_ms)
        }
        fn trust_add_samples<'a>(
            &'a self,
            rows: &'a [store::TrustSample],
            keep: i64,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.trust_add_samples(rows, keep)
        }
        fn trust_samples<'a>(
            &'a self,
            upstream_id: &'a str,
            check_name: &'a str,
            since_ms: i64,
            limit: i64,
        ) -> BoxFuture<'a, Result<Vec<String>, LedgerError>> {
            self.inner
                .trust_samples(upstream_id, check_name, since_ms, limit)
        }
        fn trust_canary_claim<'a>(
            &'a self,
            upstream_id: &'a str,
            now_ms: i64,
            interval_ms: i64,
        ) -> BoxFuture<'a, Result<bool, LedgerError>> {
            self.inner
                .trust_canary_claim(upstream_id, now_ms, interval_ms)
        }
        fn trust_canary_record<'a>(
            &'a self,
            upstream_id: &'a str,
            outcome: Option<bool>,
            cost_nanousd: i64,
            last_run: &'a str,
            reference_run: Option<&'a str>,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.trust_canary_record(
                upstream_id,
                outcome,
                cost_nanousd,
                last_run,
                reference_run,
            )
        }
        fn trust_canaries(&self) -> BoxFuture<'_, Result<Vec<store::TrustCanary>, LedgerError>> {
            self.inner.trust_canaries()
        }
        fn trust_canary_reset<'a>(
            &'a self,
            upstream_id: &'a str,
        ) -> BoxFuture<'a, Result<(), LedgerError>> {
            self.inner.trust_canary_reset(upstream_id)
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_database_delays_rows_and_loses_none() {
        let db = TempDb::new();
        let flaky = Arc::new(Flaky {
            inner: SqliteStore::open(&db.0).await.unwrap(),
            failures_left: AtomicUsize::new(4),
        });
        let store: Arc<dyn Store> = flaky.clone();
        let ledger = Ledger::start(store.clone(), None);
        for i in 0..100 {
            ledger.record(rec(i));
        }
        let mut saw_degraded = false;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let r = ledger.health.report();
            if r.status == "degraded" {
                saw_degraded = true;
                assert!(r.error.unwrap().contains("disk is full"));
                assert!(r.failing_since.is_some());
            }
            if store.count_requests().await.unwrap() == 100 {
                break;
            }
        }
        assert!(saw_degraded, "/health must show the failing ledger");
        assert_eq!(store.count_requests().await.unwrap(), 100);
        assert_eq!(ledger.health.report().status, "ok");
        assert_eq!(ledger.flush_and_close().await, CloseReport::default());
    }

    /// A long outage: past [`MEMORY_ROWS`] records wait in the journal on disk, not in memory; when the database
    /// comes back every one is stored exactly once, in journal order, and the journal is emptied.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_outage_spills_to_the_journal_and_loses_nothing() {
        let db = TempDb::new();
        let dir = db.0.with_extension("journal");
        let flaky = Arc::new(Flaky {
            inner: SqliteStore::open(&db.0).await.unwrap(),
            failures_left: AtomicUsize::new(usize::MAX),
        });
        let ledger = Ledger::start(flaky.clone(), Some(Journal::open(&dir, 0).unwrap()));
        let n = MEMORY_ROWS + 3_000;
        for i in 0..n {
            ledger.record(rec(i));
        }
        let spilled = eventually_value(|| {
            let s = ledger.health.report().spilled;
            (s > 0).then_some(s)
        })
        .await;
        assert!(
            spilled as usize >= n - MEMORY_ROWS - BATCH_MAX,
            "{spilled} spilled"
        );
        // The database comes back.
        flaky.failures_left.store(0, Ordering::SeqCst);
        for _ in 0..600 {
            if flaky.inner.count_requests().await.unwrap() == n as i64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(flaky.inner.count_requests().await.unwrap(), n as i64);
        assert_eq!(ledger.health.report().spilled, 0);
        assert_eq!(
            flaky.inner.journal_committed_seq().await.unwrap(),
            n as u64,
            "committed in journal order"
        );
        let spend = flaky.inner.spend_by_tenant(None).await.unwrap();
        assert_eq!(spend[0].cost_nanousd, 3 * n as i64);
        assert_eq!(ledger.flush_and_close().await, CloseReport::default());
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "no segment left"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    async fn eventually_value<T>(mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..400 {
            if let Some(v) = f() {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("condition not met within 10 s");
    }

    /// A database that never recovers: the close gives up after its retry window and reports what it could not
    /// store; the journal keeps those rows, and the next start's replay stores them exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_left_at_a_failed_close_come_back_from_the_journal() {
        let db = TempDb::new();
        let dir = db.0.with_extension("journal");
        let flaky = Arc::new(Flaky {
            inner: SqliteStore::open(&db.0).await.unwrap(),
            failures_left: AtomicUsize::new(usize::MAX),
        });
        let ledger = Ledger::start(flaky.clone(), Some(Journal::open(&dir, 0).unwrap()));
        for i in 0..10 {
            ledger.record(rec(i));
        }
        // Let the writer take the rows and start failing: the close must be seen in the middle of the retries.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = tokio::time::timeout(Duration::from_secs(30), ledger.flush_and_close())
            .await
            .expect("the close gives up within its retry window");
        assert_eq!(
            report,
            CloseReport {
                unstored: 10,
                journaled: true
            }
        );
        let replay = journal::read(&dir, 0).unwrap();
        assert_eq!(replay.rows.len(), 10);
        flaky
            .inner
            .insert_batch(&replay.rows, Some(replay.max_seq))
            .await
            .unwrap();
        assert_eq!(
            journal::read(&dir, replay.max_seq).unwrap().rows.len(),
            0,
            "idempotent"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
