//! Step 7 of the request path: the ledger. Every request that reached an upstream (and every request CCGate
//! refused after authenticating its tenant) becomes one [`Record`].
//!
//! Records leave the request path through a bounded channel; a single writer task batches them into one
//! transaction per batch (up to [`BATCH_MAX`] rows or [`BATCH_WINDOW`]), which also maintains the daily
//! rollups that the usage API and budgets read. Shutdown closes the channel and waits for the writer, so a
//! record accepted is a record stored.

mod error;
mod outcome;
mod rollup;
pub mod sqlite;
pub mod store;

pub use error::LedgerError;
pub use outcome::Outcome;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
pub use store::{RefusalRow, Store, TenantSpend, UsageQuery, UsageReport, UsageRow, UsageTotals};
use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const BATCH_MAX: usize = 512;
pub const BATCH_WINDOW: Duration = Duration::from_millis(50);
/// Bounded so that a stalled disk shows up as back-pressure on the drain tasks, not as unbounded memory.
pub const CHANNEL_CAPACITY: usize = 65_536;

/// One request, as recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Record {
    pub ts_ms: i64,
    /// Local calendar day (`YYYY-MM-DD`) in `server.timezone` at `ts_ms`.
    pub day: String,
    pub request_id: String,
    pub tenant_id: String,
    pub upstream_id: Option<String>,
    pub upstream_request_id: Option<String>,
    pub protocol: &'static str,
    pub endpoint: &'static str,
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
}

/// Handle to the ledger: cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Record>,
    pub store: Arc<dyn Store>,
    close: CancellationToken,
    writer: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Ledger {
    pub fn start(store: Arc<dyn Store>) -> Ledger {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let close = CancellationToken::new();
        let writer = tokio::spawn(write_loop(rx, store.clone(), close.clone()));
        Ledger {
            tx,
            store,
            close,
            writer: Arc::new(Mutex::new(Some(writer))),
        }
    }

    /// Queues a record without waiting. If the queue is full (the disk is far behind), the record is handed to a
    /// task that waits for room: it is delayed, never dropped.
    pub fn record(&self, rec: Record) {
        match self.tx.try_send(rec) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(rec)) => {
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = tx.send(rec).await {
                        log_lost(&e.0);
                    }
                });
            }
            Err(mpsc::error::TrySendError::Closed(rec)) => log_lost(&rec),
        }
    }

    /// Stops accepting records and waits until every queued record is stored. Call it after in-flight requests
    /// have finished (the gateway's task tracker), so nothing arrives after the close.
    pub async fn flush_and_close(&self) {
        self.close.cancel();
        let handle = self.writer.lock().await.take();
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}

fn log_lost(rec: &Record) {
    tracing::error!(record = %serde_json::to_string(rec).unwrap_or_default(), "ledger closed; usage record logged here instead");
}

/// Drains the queue on a fixed tick instead of waking per record: at thousands of requests per second the
/// request path then pays one lock-free `try_send` per record and no cross-thread wake-up.
async fn write_loop(
    mut rx: mpsc::Receiver<Record>,
    store: Arc<dyn Store>,
    close: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH_MAX);
    let mut tick = tokio::time::interval(BATCH_WINDOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closing = tokio::select! {
            biased;
            _ = close.cancelled() => true,
            _ = tick.tick() => false,
        };
        if closing {
            rx.close();
        }
        loop {
            while batch.len() < BATCH_MAX {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            write_with_retry(&*store, &mut batch).await;
        }
        if closing {
            // Records that were still being handed over by tasks waiting for room.
            while let Some(r) = rx.recv().await {
                batch.push(r);
                if batch.len() >= BATCH_MAX {
                    write_with_retry(&*store, &mut batch).await;
                }
            }
            write_with_retry(&*store, &mut batch).await;
            return;
        }
    }
}

async fn write_with_retry(store: &dyn Store, batch: &mut Vec<Record>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=8 {
        match store.insert_batch(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, rows = batch.len(), error = %e, "ledger write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    for r in batch.drain(..) {
        tracing::error!(record = %serde_json::to_string(&r).unwrap_or_default(), "ledger write failed for good; record logged here");
    }
}

#[cfg(test)]
mod tests {
    use super::sqlite::tests::TempDb;
    use super::sqlite::SqliteStore;
    use super::*;

    /// A record accepted is a record stored: more than fit in one batch, and more than fit in the channel (the
    /// overflow waits in tasks), all land by the time `flush_and_close` returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_accepted_record_is_stored_by_the_close() {
        let db = TempDb::new();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db.0).await.unwrap());
        let ledger = Ledger::start(store.clone());
        let n = CHANNEL_CAPACITY + 3 * BATCH_MAX + 7;
        for i in 0..n {
            ledger.record(Record {
                day: "2026-11-27".into(),
                tenant_id: "t".into(),
                request_id: i.to_string(),
                cost_nanousd: 3,
                billable: true,
                priced: true,
                ..Default::default()
            });
        }
        ledger.flush_and_close().await;
        assert_eq!(store.count_requests().await.unwrap(), n as i64);
        let spend = store.spend_by_tenant(None).await.unwrap();
        assert_eq!(spend[0].cost_nanousd, 3 * n as i64);
    }
}
