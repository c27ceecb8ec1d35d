//! Log files, as the original had them, in `logging.directory` (default `<data-dir>/logs`, i.e. `./data/logs`):
//!
//! - `access.log`: one JSON line per recorded request (every ledger row: served, failed upstream, refused), written
//!   where the row is finished ([`access`]): time, ids, tenant, model, upstream, status, outcome, latency, TTFT,
//!   tokens and cost. Never a key, a prompt or an answer.
//! - `combined.log`: every log event at `logging.level` or above, as JSON lines (with the request's id from its
//!   span).
//! - `error.log`: the `error` events only.
//!
//! Each file is rotated by size (`file-rotate`: once a file has passed `logging.maxFileSize` it becomes `name.1`,
//! the older ones move up, and at most `logging.maxFiles` files exist per log, the current one included). Lines
//! reach the files through `tracing-appender`'s non-blocking writer: a bounded queue and a worker thread per file,
//! so a request never waits for a disk; when a queue is full the line is dropped and counted
//! (`ccgate_log_lines_dropped_total`). The console (stderr) is kept unless `logging.enableConsole` is false; its
//! filter is `CCGATE_LOG` when set, otherwise `logging.level`.
//!
//! `logging` is read at start; a change needs a restart.

use crate::config::LoggingConfig;
use crate::ledger::Record;
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use parking_lot::Mutex;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use tracing_appender::non_blocking::{ErrorCounter, NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Lines a file's queue holds before new ones are dropped: at ~300 bytes an access line, about 40 MB at worst.
const QUEUE_LINES: usize = 128_000;

pub const ACCESS_LOG: &str = "access.log";
pub const COMBINED_LOG: &str = "combined.log";
pub const ERROR_LOG: &str = "error.log";

struct Files {
    access: NonBlocking,
    counters: Vec<(&'static str, ErrorCounter)>,
    /// Dropping a guard flushes its queue to the file: taken at shutdown ([`flush`]).
    guards: Mutex<Vec<WorkerGuard>>,
    directory: PathBuf,
}

static FILES: OnceLock<Files> = OnceLock::new();

/// Why the log files could not be set up; the gateway does not start without them.
#[derive(Debug, thiserror::Error)]
#[error("cannot write log files in {}: {} (run CCGate as a user who can write there, or set logging.directory in server.json)", .directory.display(), crate::ledger::io_cause(.source))]
pub struct LogDirError {
    directory: PathBuf,
    source: std::io::Error,
}

/// Console logging only, for the commands other than `serve` (and `serve` until its config is read).
pub fn init_console() {
    let _ = tracing_subscriber::registry()
        .with(console_layer(console_filter(None)))
        .try_init();
}

fn console_filter(level: Option<tracing::Level>) -> EnvFilter {
    EnvFilter::try_from_env("CCGATE_LOG")
        .or_else(|_| {
            EnvFilter::try_new(level.map_or("info".into(), |l| l.to_string().to_lowercase()))
        })
        .unwrap_or_default()
}

fn console_layer<S>(filter: EnvFilter) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .with_filter(filter)
}

/// Where the files go: `logging.directory` (relative to the working directory, as in the original), or
/// `<data-dir>/logs`.
pub fn directory(config: &LoggingConfig, data_dir: &Path) -> PathBuf {
    config
        .directory
        .clone()
        .unwrap_or_else(|| data_dir.join("logs"))
}

/// Sets up the three files and the process's log subscriber (console as configured, plus the files). Call once,
/// at the start of `serve`, before anything is logged.
pub fn init(config: &LoggingConfig, data_dir: &Path) -> Result<PathBuf, LogDirError> {
    let directory = directory(config, data_dir);
    let fail = |source| LogDirError {
        directory: directory.clone(),
        source,
    };
    std::fs::create_dir_all(&directory).map_err(fail)?;
    // `file-rotate` panics on a folder it cannot write: find out here, with the cause.
    for name in [ACCESS_LOG, COMBINED_LOG, ERROR_LOG] {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(directory.join(name))
            .map_err(fail)?;
    }
    let mut guards = Vec::new();
    let mut counters = Vec::new();
    let mut open = |name: &'static str| {
        let file = FileRotate::new(
            directory.join(name),
            // Rotated files kept beside the current one: maxFiles counts them all.
            AppendCount::new(config.max_files.saturating_sub(1) as usize),
            ContentLimit::BytesSurpassed(
                usize::try_from(config.max_file_size).unwrap_or(usize::MAX),
            ),
            Compression::None,
            None,
        );
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUE_LINES)
            .thread_name("ccgate-log")
            .finish(file);
        guards.push(guard);
        counters.push((name, writer.error_counter()));
        writer
    };
    let access = open(ACCESS_LOG);
    let combined = open(COMBINED_LOG);
    let errors = open(ERROR_LOG);
    let console = config
        .enable_console
        .then(|| console_layer(console_filter(Some(config.level))));
    let _ = tracing_subscriber::registry()
        .with(console)
        .with(json(combined).with_filter(LevelFilter::from_level(config.level)))
        .with(json(errors).with_filter(LevelFilter::ERROR))
        .try_init();
    let _ = FILES.set(Files {
        access,
        counters,
        guards: Mutex::new(guards),
        directory: directory.clone(),
    });
    Ok(directory)
}

/// A file's JSON-lines layer, with the current span (the request's id) in each line.
fn json<S>(writer: NonBlocking) -> impl Layer<S> + Send + Sync
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_ansi(false)
        .with_writer(writer)
}

/// The folder the files are written to, once [`init`] ran.
pub fn files_directory() -> Option<&'static Path> {
    FILES.get().map(|f| f.directory.as_path())
}

/// Writes what is queued to the files; nothing is written to them afterwards. Call at the very end of `serve`.
pub fn flush() {
    if let Some(f) = FILES.get() {
        f.guards.lock().clear();
    }
}

/// Lines dropped so far per file (their queue was full).
pub fn dropped_lines() -> Vec<(&'static str, u64)> {
    FILES.get().map_or_else(Vec::new, |f| {
        f.counters
            .iter()
            .map(|(name, c)| (*name, c.dropped_lines() as u64))
            .collect()
    })
}

/// One `access.log` line: the ledger row's facts, nothing from the prompt or the answer, no key.
#[derive(Serialize)]
struct AccessLine<'a> {
    time: String,
    request_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_request_id: Option<&'a str>,
    upstream_request_id: Option<&'a str>,
    tenant_id: &'a str,
    protocol: &'a str,
    endpoint: &'a str,
    model: &'a str,
    upstream_model: Option<&'a str>,
    upstream: Option<&'a str>,
    stream: bool,
    status: u16,
    outcome: &'a str,
    error_class: Option<&'a str>,
    latency_ms: i64,
    ttft_ms: Option<i64>,
    input_tokens: i64,
    output_tokens: i64,
    cache_write_5m_tokens: i64,
    cache_write_1h_tokens: i64,
    cache_read_tokens: i64,
    /// For people; `cost_nanousd` is the exact figure, as in the ledger.
    cost_usd: f64,
    cost_nanousd: i64,
    upstream_cost_nanousd: i64,
    priced: bool,
    instance: Option<&'a str>,
}

pub(crate) fn access_line(r: &Record) -> Vec<u8> {
    let time = chrono::DateTime::from_timestamp_millis(r.ts_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let line = AccessLine {
        time,
        request_id: &r.request_id,
        client_request_id: r.client_request_id.as_deref(),
        upstream_request_id: r.upstream_request_id.as_deref(),
        tenant_id: &r.tenant_id,
        protocol: r.protocol,
        endpoint: r.endpoint,
        model: &r.model,
        upstream_model: r.upstream_model.as_deref(),
        upstream: r.upstream_id.as_deref(),
        stream: r.stream,
        status: r.status,
        outcome: r.outcome.as_str(),
        error_class: r.error_class.as_deref(),
        latency_ms: r.latency_ms,
        ttft_ms: r.ttft_ms,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        cache_write_5m_tokens: r.cache_write_5m_tokens,
        cache_write_1h_tokens: r.cache_write_1h_tokens,
        cache_read_tokens: r.cache_read_tokens,
        cost_usd: r.cost_nanousd as f64 / 1e9,
        cost_nanousd: r.cost_nanousd,
        upstream_cost_nanousd: r.upstream_cost_nanousd,
        priced: r.priced,
        instance: r.instance_id.as_deref(),
    };
    let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

/// Queues the record's `access.log` line (a no-op before [`init`]). One write: the writer sends each write as one
/// message, so a line is never split between rotated files.
pub fn access(r: &Record) {
    if let Some(f) = FILES.get() {
        // A clone is a channel sender's clone; writing needs `&mut`.
        let _ = f.access.clone().write_all(&access_line(r));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_line_is_one_json_line_with_the_rows_facts() {
        let r = Record {
            ts_ms: 1_700_000_000_123,
            request_id: "gw-id".into(),
            client_request_id: Some("client-id".into()),
            tenant_id: "t1".into(),
            protocol: "anthropic",
            endpoint: "messages",
            model: "claude-sonnet-4-6".into(),
            upstream_id: Some("up1".into()),
            status: 200,
            input_tokens: 10,
            output_tokens: 5,
            cost_nanousd: 1_500_000,
            ttft_ms: Some(12),
            latency_ms: 34,
            ..Default::default()
        };
        let bytes = access_line(&r);
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 1);
        assert!(bytes.ends_with(b"\n"));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(v["request_id"], "gw-id");
        assert_eq!(v["client_request_id"], "client-id");
        assert_eq!(v["tenant_id"], "t1");
        assert_eq!(v["upstream"], "up1");
        assert_eq!(v["status"], 200);
        assert_eq!(v["outcome"], "ok");
        assert_eq!(v["ttft_ms"], 12);
        assert_eq!(v["input_tokens"], 10);
        assert_eq!(v["cost_nanousd"], 1_500_000);
        assert_eq!(v["cost_usd"], 0.0015);
    }
}
