//! `ccgate import-usage DIR`: the original CCGate's usage history into the ledger.
//!
//! The original wrote `data/usage/{tenantId}/{YYYY-MM}/{YYYY-MM-DD}.json`, one JSON record per line with the fields
//! `requestId, tenantId, timestamp, model, inputTokens, outputTokens, cacheCreationTokens, cacheReadTokens,
//! totalTokens, inputCost, outputCost, cacheCreationCost, cacheReadCost, totalCost, duration, statusCode,
//! errorType, upstream, userAgent, clientIP, metadata`. Each becomes a `requests` row (and its rollup), marked
//! `imported`, on the file's day, with:
//!
//! * the original's `totalCost` kept as recorded (`original_cost_nanousd`), and CCGate's own price of the same
//!   tokens in `cost_nanousd` (the current price table with `pricing.json`), so reports and budgets use one price
//!   list for old and new rows while the original's figure stays auditable;
//! * cache writes as 5-minute writes (the original did not tell the two TTLs apart);
//! * `statusCode` as the status (2xx: `ok`, otherwise `upstream_error` with `errorType` as the error class).
//!
//! Idempotent by `requestId`: ids already in the ledger (an earlier run) and repeats within the files are skipped.
//! A bad line is reported as `file:line: why` and skipped; the exit code is 0 when every good line was imported.
//! `userAgent`, `clientIP` and `metadata` are not imported (the ledger keeps no client details).

use super::storage;
use super::Dirs;
use crate::config::load_dir;
use crate::ledger::{Outcome, Record, Store};
use ccgate_meter::pricing::PriceTable;
use ccgate_meter::Usage;
use serde_json::Value;
use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Rows per ledger transaction.
const BATCH: usize = 2000;
/// How often progress is printed on a large tree.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

pub async fn import_usage(dirs: &Dirs, dir: &Path) -> anyhow::Result<()> {
    let loaded = load_dir(&dirs.config_dir)?;
    let pricing = match &loaded.pricing_json {
        Some(text) => PriceTable::builtin().with_overrides_json(text)?.0,
        None => PriceTable::builtin(),
    };
    let multipliers: std::collections::HashMap<String, u32> = loaded
        .config
        .upstreams
        .iter()
        .map(|u| (u.id.clone(), u.price_multiplier_milli))
        .collect();
    let root = if dir.join("usage").is_dir() {
        dir.join("usage")
    } else {
        dir.to_owned()
    };
    let files = usage_files(&root)?;
    if files.is_empty() {
        anyhow::bail!(
            "no usage files in {} (expected {{tenantId}}/{{YYYY-MM}}/{{YYYY-MM-DD}}.json, as the original CCGate wrote them in data/usage/)",
            root.display()
        );
    }
    let env_url = storage::from_env().map_err(|e| anyhow::anyhow!("{}: {e}", storage::ENV))?;
    let url = storage::resolve(env_url, loaded.config.storage.as_ref(), &dirs.data_dir);
    let store = storage::open(&url, None).await?;
    eprintln!(
        "Importing {} usage file(s) from {} into {url}",
        files.len(),
        root.display()
    );
    let mut run = Run {
        store: &*store,
        pricing: &pricing,
        multipliers: &multipliers,
        seen: HashSet::new(),
        pending: Vec::with_capacity(BATCH),
        stats: Stats::default(),
    };
    let started = Instant::now();
    let mut last_progress = Instant::now();
    for (i, file) in files.iter().enumerate() {
        run.file(file).await?;
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            eprintln!(
                "  {}/{} files, {} lines read, {} imported, {} duplicates, {} bad",
                i + 1,
                files.len(),
                run.stats.lines,
                run.stats.imported,
                run.stats.duplicates,
                run.stats.bad
            );
        }
    }
    run.flush().await?;
    let s = &run.stats;
    println!(
        "Imported {} record(s) from {} file(s) in {:.1} s; {} duplicate(s) skipped (already in the ledger, or repeated in the files); {} bad line(s) (reported above).",
        s.imported,
        files.len(),
        started.elapsed().as_secs_f64(),
        s.duplicates,
        s.bad
    );
    if s.unpriced > 0 {
        println!(
            "{} imported record(s) have a model CCGate has no price for: their cost is unknown (the original's is kept).",
            s.unpriced
        );
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

#[derive(Default)]
struct Stats {
    lines: u64,
    imported: u64,
    duplicates: u64,
    bad: u64,
    unpriced: u64,
}

struct Run<'a> {
    store: &'a dyn Store,
    pricing: &'a PriceTable,
    multipliers: &'a std::collections::HashMap<String, u32>,
    /// Request ids read in this run: a repeat within the files is skipped like one already stored.
    seen: HashSet<String>,
    pending: Vec<Record>,
    stats: Stats,
}

impl Run<'_> {
    async fn file(&mut self, f: &UsageFile) -> anyhow::Result<()> {
        let file = std::fs::File::open(&f.path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", f.path.display()))?;
        for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line_no = n + 1;
            let line = match line {
                Ok(l) => l,
                Err(e) => {
                    self.bad(&f.path, line_no, &format!("unreadable: {e}"));
                    continue;
                }
            };
            if line.trim().is_empty() {
                continue;
            }
            self.stats.lines += 1;
            match to_record(&line, f, self.pricing, self.multipliers) {
                Ok(rec) => {
                    if !self.seen.insert(rec.request_id.clone()) {
                        self.stats.duplicates += 1;
                        continue;
                    }
                    self.pending.push(rec);
                    if self.pending.len() >= BATCH {
                        self.flush().await?;
                    }
                }
                Err(why) => self.bad(&f.path, line_no, &why),
            }
        }
        Ok(())
    }

    fn bad(&mut self, path: &Path, line: usize, why: &str) {
        self.stats.bad += 1;
        eprintln!("{}:{line}: {why}", path.display());
    }

    /// Stores the pending rows that are not in the ledger yet, in one transaction.
    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = self.pending.iter().map(|r| r.request_id.clone()).collect();
        let stored: HashSet<String> = self
            .store
            .stored_request_ids(&ids)
            .await?
            .into_iter()
            .collect();
        let rows: Vec<Record> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|r| !stored.contains(&r.request_id))
            .collect();
        self.stats.duplicates += (ids.len() - rows.len()) as u64;
        self.stats.unpriced += rows.iter().filter(|r| !r.priced).count() as u64;
        if !rows.is_empty() {
            self.store.insert_batch(&rows, None).await?;
        }
        self.stats.imported += rows.len() as u64;
        Ok(())
    }
}

/// One `{tenant}/{YYYY-MM}/{YYYY-MM-DD}.json` file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageFile {
    pub path: PathBuf,
    pub tenant: String,
    /// `YYYY-MM-DD`, from the file name.
    pub day: String,
}

/// Every usage file under `root`, sorted by tenant and day. Other files are ignored.
fn usage_files(root: &Path) -> anyhow::Result<Vec<UsageFile>> {
    let read = |p: &Path| -> anyhow::Result<Vec<std::fs::DirEntry>> {
        let mut entries: Vec<_> = std::fs::read_dir(p)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?
            .filter_map(Result::ok)
            .collect();
        entries.sort_by_key(|e| e.file_name());
        Ok(entries)
    };
    let is_dir = |e: &std::fs::DirEntry| e.file_type().is_ok_and(|t| t.is_dir());
    let mut out = Vec::new();
    for tenant in read(root)?.into_iter().filter(is_dir) {
        let Some(tenant_id) = tenant.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        for month in read(&tenant.path())?.into_iter().filter(is_dir) {
            let month_name = month.file_name().to_string_lossy().into_owned();
            if chrono::NaiveDate::parse_from_str(&format!("{month_name}-01"), "%Y-%m-%d").is_err() {
                continue;
            }
            for day in read(&month.path())? {
                let name = day.file_name().to_string_lossy().into_owned();
                let Some(stem) = name.strip_suffix(".json") else {
                    continue;
                };
                if chrono::NaiveDate::parse_from_str(stem, "%Y-%m-%d").is_err() || is_dir(&day) {
                    continue;
                }
                out.push(UsageFile {
                    path: day.path(),
                    tenant: tenant_id.clone(),
                    day: stem.to_owned(),
                });
            }
        }
    }
    Ok(out)
}

/// A token count: a non-negative integer (a float with no fraction, as JavaScript may write one, is accepted).
fn count(v: &Value, field: &str) -> Result<i64, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(0),
        Some(Value::Number(n)) => n
            .as_i64()
            .filter(|x| *x >= 0)
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                    .map(|f| f as i64)
            })
            .ok_or_else(|| format!("{field}: expected a non-negative whole number, got {n}")),
        Some(other) => Err(format!("{field}: expected a number, got {other}")),
    }
}

/// Parses one line into a ledger row.
pub fn to_record(
    line: &str,
    f: &UsageFile,
    pricing: &PriceTable,
    multipliers: &std::collections::HashMap<String, u32>,
) -> Result<Record, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    if !v.is_object() {
        return Err("expected a JSON object".into());
    }
    let text = |field: &str| v.get(field).and_then(Value::as_str).map(str::to_owned);
    let request_id = text("requestId")
        .filter(|s| !s.trim().is_empty())
        .ok_or("requestId: missing (it is what makes a second import skip the record)")?;
    let tenant_id = text("tenantId")
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| f.tenant.clone());
    let ts_ms = match v.get("timestamp") {
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| format!("timestamp: expected an ISO 8601 time, got {s:?}"))?,
        Some(Value::Number(n)) => n
            .as_i64()
            .ok_or_else(|| format!("timestamp: expected milliseconds, got {n}"))?,
        _ => chrono::NaiveDate::parse_from_str(&f.day, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or(0),
    };
    let model = text("model").unwrap_or_else(|| "unknown".into());
    let input_tokens = count(&v, "inputTokens")?;
    let output_tokens = count(&v, "outputTokens")?;
    let cache_write = count(&v, "cacheCreationTokens")?;
    let cache_read = count(&v, "cacheReadTokens")?;
    let original_cost_nanousd = match v.get("totalCost") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64() {
            Some(c) if (0.0..9.0e9).contains(&c) => Some((c * 1e9).round() as i64),
            _ => {
                return Err(format!(
                    "totalCost: expected a non-negative amount in USD, got {n}"
                ))
            }
        },
        Some(other) => return Err(format!("totalCost: expected a number, got {other}")),
    };
    let status = match v.get("statusCode") {
        None | Some(Value::Null) => 200,
        Some(s) => s
            .as_u64()
            .and_then(|s| u16::try_from(s).ok())
            .filter(|s| (100..600).contains(s))
            .ok_or_else(|| format!("statusCode: expected an HTTP status, got {s}"))?,
    };
    let upstream_id = text("upstream").filter(|s| !s.is_empty());
    let usage = Usage {
        input_tokens: input_tokens as u64,
        cache_creation_input_tokens: cache_write as u64,
        cache_write_5m_tokens: cache_write as u64,
        cache_read_input_tokens: cache_read as u64,
        output_tokens: output_tokens as u64,
        ..Usage::default()
    };
    let has_tokens = input_tokens + output_tokens + cache_write + cache_read > 0;
    let (cost_nanousd, priced) = match pricing.cost(&model, &usage) {
        Some(c) => (c.total.0, true),
        None => (0, !has_tokens),
    };
    let multiplier = upstream_id
        .as_ref()
        .and_then(|u| multipliers.get(u))
        .copied()
        .unwrap_or(1000);
    let ok = (200..300).contains(&status);
    Ok(Record {
        ts_ms,
        day: f.day.clone(),
        request_id,
        tenant_id,
        upstream_id,
        protocol: "anthropic",
        endpoint: "messages",
        model,
        status,
        outcome: if ok {
            Outcome::Ok
        } else {
            Outcome::UpstreamError
        },
        error_class: (!ok).then(|| text("errorType").unwrap_or_else(|| format!("http_{status}"))),
        input_tokens,
        cache_write_5m_tokens: cache_write,
        cache_read_tokens: cache_read,
        output_tokens,
        cost_nanousd,
        upstream_cost_nanousd: i64::try_from(
            (cost_nanousd as i128 * multiplier as i128 + 500) / 1000,
        )
        .unwrap_or(i64::MAX),
        priced,
        price_version: pricing.version().to_owned(),
        latency_ms: count(&v, "duration").unwrap_or(0),
        billable: true,
        imported: true,
        original_cost_nanousd,
        ..Record::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> UsageFile {
        UsageFile {
            path: "t/2025-09/2025-09-14.json".into(),
            tenant: "alice".into(),
            day: "2025-09-14".into(),
        }
    }

    #[test]
    fn an_original_record_becomes_an_imported_row_with_both_costs() {
        let line = r#"{"requestId":"req_1","tenantId":"alice","timestamp":"2025-09-14T08:00:00.000Z","model":"claude-sonnet-4-20250514","inputTokens":1000,"outputTokens":200,"cacheCreationTokens":50,"cacheReadTokens":300,"totalTokens":1550,"inputCost":0.003,"outputCost":0.003,"cacheCreationCost":0.0001875,"cacheReadCost":0.00009,"totalCost":0.0062775,"duration":1234,"statusCode":200,"errorType":null,"upstream":"up1","userAgent":"claude-cli","clientIP":"1.2.3.4","metadata":{}}"#;
        let r = to_record(line, &file(), &PriceTable::builtin(), &Default::default()).unwrap();
        assert_eq!(r.request_id, "req_1");
        assert_eq!(r.tenant_id, "alice");
        assert_eq!(r.day, "2025-09-14");
        assert_eq!(r.ts_ms, 1_757_836_800_000);
        assert_eq!(
            (
                r.input_tokens,
                r.output_tokens,
                r.cache_write_5m_tokens,
                r.cache_read_tokens
            ),
            (1000, 200, 50, 300)
        );
        assert_eq!(r.original_cost_nanousd, Some(6_277_500));
        assert!(r.imported && r.priced && r.billable);
        // Sonnet 4 list price: 3/15/3.75/0.30 USD per million.
        assert_eq!(r.cost_nanousd, 3_000_000 + 3_000_000 + 187_500 + 90_000);
        assert_eq!(r.outcome, Outcome::Ok);
        assert_eq!(r.latency_ms, 1234);
    }

    #[test]
    fn errors_and_bad_lines() {
        let t = PriceTable::builtin();
        let m = Default::default();
        let r = to_record(r#"{"requestId":"e","model":"claude-sonnet-4-20250514","statusCode":529,"errorType":"overloaded_error"}"#, &file(), &t, &m).unwrap();
        assert_eq!(
            (r.status, r.outcome, r.error_class.as_deref()),
            (529, Outcome::UpstreamError, Some("overloaded_error"))
        );
        assert_eq!(
            r.tenant_id, "alice",
            "the folder names the tenant when the record does not"
        );
        for (line, why) in [
            ("{not json", "not JSON"),
            (r#"{"model":"m"}"#, "requestId"),
            (r#"{"requestId":"x","inputTokens":-3}"#, "inputTokens"),
            (r#"{"requestId":"x","inputTokens":"many"}"#, "inputTokens"),
            (r#"{"requestId":"x","timestamp":"yesterday"}"#, "timestamp"),
            (r#"{"requestId":"x","totalCost":"1"}"#, "totalCost"),
            (r#"[1,2]"#, "object"),
        ] {
            let e = to_record(line, &file(), &t, &m).unwrap_err();
            assert!(e.contains(why), "{line}: {e}");
        }
    }
}
