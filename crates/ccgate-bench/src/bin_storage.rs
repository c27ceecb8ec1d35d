//! The store benchmark (issue #19, docs/scale-out.md): how fast `POST /usage` (the original's usage report) answers
//! over a large ledger, on SQLite and on PostgreSQL, in the same run.
//!
//! For each backend and each size it fills a fresh ledger with synthetic rows (20 tenants, 5 models, 90 days, 2 %
//! refused) straight in SQL, builds the rollups the batch writer would have built, starts the release `ccgate` on
//! it, and times `POST /usage` (admin) for the ranges the dashboard shows: today, 7 days, 30 days, everything.
//! The throughput half (one instance on SQLite against one on PostgreSQL) is `bench/storage.sh`, which runs
//! `ccgate-bench` on both stores alternately.
//!
//!   cargo build --release -p ccgate -p ccgate-bench
//!   target/release/ccgate-bench-storage --rows 1000000,10000000

#[path = "procs.rs"]
#[allow(dead_code)]
mod procs;

use anyhow::{bail, Context, Result};
use clap::Parser;
use procs::Child;
use serde_json::{json, Value};
use sqlx::Connection;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "ccgate-bench-storage",
    about = "/usage over large ledgers, SQLite vs PostgreSQL"
)]
struct Args {
    /// Ledger sizes, comma-separated.
    #[arg(long, default_value = "1000000,10000000")]
    rows: String,
    /// PostgreSQL to use (a schema of its own is created and dropped).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    database_url: String,
    /// Timed calls per range.
    #[arg(long, default_value_t = 20)]
    calls: usize,
    /// Folder with the release `ccgate` (default: this binary's folder).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Where to write storage.md and storage.json.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Only this backend (sqlite or postgres).
    #[arg(long)]
    only: Option<String>,
}

const TENANTS: usize = 20;
const MODELS: [&str; 5] = [
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-1",
];
const DAYS: i64 = 90;
const ADMIN_PASSWORD: &str = "benchadmin123";

fn main() -> Result<()> {
    let args = Args::parse();
    let bins = match &args.bin_dir {
        Some(b) => b.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("binary folder")?
            .to_path_buf(),
    };
    if !bins.join("ccgate").is_file() {
        bail!(
            "{} not found: cargo build --release -p ccgate -p ccgate-bench",
            bins.join("ccgate").display()
        );
    }
    let sizes: Vec<u64> = args
        .rows
        .split(',')
        .map(|s| s.trim().parse().context("--rows"))
        .collect::<Result<_>>()?;
    let rt = tokio::runtime::Runtime::new()?;
    let tmp = std::env::temp_dir().join(format!("ccgate-bench-storage-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let mut results = Vec::new();
    for &n in &sizes {
        for backend in ["sqlite", "postgres"] {
            if args.only.as_deref().is_some_and(|o| o != backend) {
                continue;
            }
            let r = rt.block_on(run_one(&args, &bins, &tmp, backend, n))?;
            println!("{}", serde_json::to_string(&r)?);
            results.push(r);
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&args.out)?;
    let md = render(&results);
    std::fs::write(args.out.join("storage.md"), &md)?;
    std::fs::write(
        args.out.join("storage.json"),
        serde_json::to_string_pretty(&json!({"machine": procs::machine(), "results": results}))?,
    )?;
    println!("{md}");
    Ok(())
}

/// One backend at one size: fill, start, time.
async fn run_one(args: &Args, bins: &Path, tmp: &Path, backend: &str, n: u64) -> Result<Value> {
    let tag = format!("{backend}-{n}");
    let conf = tmp.join(format!("{tag}-config"));
    let data = tmp.join(format!("{tag}-data"));
    std::fs::create_dir_all(&data)?;
    let port = procs::free_port()?;
    write_config(&conf, port)?;
    let (url, schema) = match backend {
        "sqlite" => (
            format!("sqlite://{}", data.join("ccgate.db").display()),
            None,
        ),
        _ => {
            let name = format!("bench_{}_{}", std::process::id(), n);
            let mut c = sqlx::PgConnection::connect(&args.database_url)
                .await
                .context("connect to PostgreSQL")?;
            sqlx::query(&format!("CREATE SCHEMA {name}"))
                .execute(&mut c)
                .await?;
            let sep = if args.database_url.contains('?') {
                '&'
            } else {
                '?'
            };
            (
                format!(
                    "{}{sep}options=-c%20search_path%3D{name}",
                    args.database_url
                ),
                Some(name),
            )
        }
    };
    // A first start creates the schema (migrations); the rows are then written while no gateway runs.
    drop(start(
        bins,
        &conf,
        &data,
        &url,
        &tmp.join(format!("{tag}-1.log")),
    )?);
    let t = Instant::now();
    match backend {
        "sqlite" => fill_sqlite(&data.join("ccgate.db"), n).await?,
        _ => fill_postgres(&url, n).await?,
    }
    let fill_s = t.elapsed().as_secs_f64();
    println!("{tag}: filled in {fill_s:.0} s");
    let (gw, addr) = start(bins, &conf, &data, &url, &tmp.join(format!("{tag}-2.log")))?;
    let client = reqwest::Client::new();
    let today = chrono_today();
    let mut ranges = Vec::new();
    for (name, from) in [
        ("today", Some(0)),
        ("7 days", Some(6)),
        ("30 days", Some(29)),
        ("all", None::<i64>),
    ] {
        let body = match from {
            Some(d) => json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD,
                              "from": day_before(&today, d)}),
            None => json!({"type": "admin", "username": "admin", "password": ADMIN_PASSWORD,
                           "from": "2000-01-01"}),
        };
        let mut times = Vec::with_capacity(args.calls);
        for i in 0..args.calls + 2 {
            let t = Instant::now();
            let r = client
                .post(format!("http://{addr}/usage"))
                .json(&body)
                .send()
                .await?;
            let status = r.status();
            let v: Value = r.json().await?;
            if !status.is_success() {
                bail!("/usage answered {status}: {v}");
            }
            if i >= 2 {
                // Two warm-up calls (caches, plans).
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            if i == 2 && name == "all" {
                let requests = v["totals"]["requests"].as_i64().unwrap_or(-1);
                println!("{tag}: /usage (all) counts {requests} requests");
            }
        }
        times.sort_by(f64::total_cmp);
        ranges.push(json!({
            "range": name,
            "p50_ms": times[times.len() / 2],
            "p95_ms": times[(times.len() * 95 / 100).min(times.len() - 1)],
        }));
    }
    drop(gw);
    if let Some(name) = schema {
        let mut c = sqlx::PgConnection::connect(&args.database_url).await?;
        sqlx::query(&format!("DROP SCHEMA {name} CASCADE"))
            .execute(&mut c)
            .await?;
    }
    let _ = std::fs::remove_dir_all(&data);
    Ok(json!({"backend": backend, "rows": n, "fill_seconds": fill_s, "ranges": ranges}))
}

fn start(bins: &Path, conf: &Path, data: &Path, url: &str, log: &Path) -> Result<(Child, String)> {
    let mut cmd = Command::new(bins.join("ccgate"));
    cmd.arg("serve")
        .arg("--config-dir")
        .arg(conf)
        .arg("--data-dir")
        .arg(data)
        .env("CCGATE_DATABASE_URL", url);
    let (child, line) = Child::spawn(
        "ccgate",
        cmd,
        log,
        "CCGate listening on",
        Duration::from_secs(600),
        libc::SIGKILL,
    )?;
    let addr = procs::addr_in(&line)?.to_string();
    Ok((child, addr))
}

fn write_config(dir: &Path, port: u16) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tenants: Vec<Value> = (0..TENANTS)
        .map(|i| json!({"id": format!("t{i}"), "name": format!("t{i}"), "key": format!("bench-tenant-key-{i:04}-xxxxxxxxxxxx"),
                        "allowedModels": ["*"], "limits": {"daily": {"maxUSD": 1000}}}))
        .collect();
    let files = [
        (
            "server.json",
            json!({"server": {"port": port, "host": "127.0.0.1"}, "admin": {"password": ADMIN_PASSWORD}}),
        ),
        (
            "upstreams.json",
            json!({"upstreams": [{"id": "u", "name": "u", "url": "http://127.0.0.1:9", "key": "k", "enabled": true}],
                   "loadBalancer": {"healthCheckEnabled": false}}),
        ),
        ("tenants.json", json!({"tenants": tenants})),
    ];
    for (name, v) in files {
        std::fs::write(dir.join(name), serde_json::to_vec_pretty(&v)?)?;
    }
    Ok(())
}

fn chrono_today() -> String {
    let out = Command::new("date").arg("+%Y-%m-%d").output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "2026-12-07".into())
}

fn day_before(today: &str, days: i64) -> String {
    let out = Command::new("date")
        .args(["-d", &format!("{today} -{days} days"), "+%Y-%m-%d"])
        .output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| today.to_string())
}

/// The synthetic rows as SQL expressions of a row number `x` (the same on both backends, up to syntax): tenant,
/// model and day cycle independently; every 50th row is a refusal.
fn row_select(x: &str, day_expr: &str, id_expr: &str) -> String {
    let models = MODELS
        .iter()
        .enumerate()
        .map(|(i, m)| format!("WHEN {i} THEN '{m}'"))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "SELECT {x} * 1000, {day_expr}, {id_expr}, 't' || ({x} % {TENANTS}), 'u', NULL, 'anthropic', 'messages',
                CASE {x} % 5 {models} END, NULL, ({x} % 2) = 0,
                CASE WHEN {x} % 50 = 0 THEN 402 ELSE 200 END,
                CASE WHEN {x} % 50 = 0 THEN 'rejected' ELSE 'ok' END,
                CASE WHEN {x} % 50 = 0 THEN 'budget_exceeded' ELSE NULL END,
                1000 + {x} % 997, 0, 0, 5000 + {x} % 3001, 200 + {x} % 501, NULL, 0,
                CASE WHEN {x} % 50 = 0 THEN 0 ELSE 10000000 + {x} % 1000003 END,
                CASE WHEN {x} % 50 = 0 THEN 0 ELSE 10000000 + {x} % 1000003 END,
                ({x} % 50) <> 0, 'bench', 100 + {x} % 900, 50 + {x} % 400, NULL, true, 'bench'"
    )
}

const INSERT_HEAD: &str = "INSERT INTO requests (ts_ms, day, request_id, tenant_id, upstream_id,
    upstream_request_id, protocol, endpoint, model, upstream_model, stream, status, outcome, error_class, input_tokens,
    cache_write_5m_tokens, cache_write_1h_tokens, cache_read_tokens, output_tokens, thinking_tokens,
    web_search_requests, cost_nanousd, upstream_cost_nanousd, priced, price_version, latency_ms, ttft_ms, session_id,
    billable, instance_id) ";

const ROLLUP: &str = "INSERT INTO daily_rollup (day, tenant_id, model, requests, input_tokens, cache_write_5m_tokens,
    cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd, unpriced_requests,
    errors, max_cost_nanousd)
    SELECT day, tenant_id, model, COUNT(*), SUM(input_tokens), SUM(cache_write_5m_tokens), SUM(cache_write_1h_tokens),
           SUM(cache_read_tokens), SUM(output_tokens), SUM(cost_nanousd), SUM(upstream_cost_nanousd), 0, 0,
           MAX(cost_nanousd)
    FROM requests WHERE outcome <> 'rejected' GROUP BY day, tenant_id, model";

async fn fill_sqlite(path: &Path, n: u64) -> Result<()> {
    use sqlx::sqlite::SqliteConnectOptions;
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Off);
    let mut c = sqlx::SqliteConnection::connect_with(&opts).await?;
    const CHUNK: u64 = 200_000;
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        let sql = format!(
            "{INSERT_HEAD} WITH RECURSIVE c(x) AS (SELECT {start} UNION ALL SELECT x + 1 FROM c WHERE x < {end})
             {sel}",
            start = done + 1,
            end = done + k,
            sel = row_select(
                "x",
                &format!("date('now', '-' || (x % {DAYS}) || ' days')"),
                "printf('bench-%012d', x)"
            ) + " FROM c"
        );
        let mut tx = c.begin().await?;
        sqlx::query(&sql).execute(&mut *tx).await?;
        tx.commit().await?;
        done += k;
    }
    sqlx::query(ROLLUP).execute(&mut c).await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut c)
        .await?;
    Ok(())
}

async fn fill_postgres(url: &str, n: u64) -> Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    const CHUNK: u64 = 1_000_000;
    let mut done = 0;
    while done < n {
        let k = CHUNK.min(n - done);
        let sql = format!(
            "{INSERT_HEAD} {sel} FROM generate_series({start}::bigint, {end}::bigint) AS x",
            start = done + 1,
            end = done + k,
            sel = row_select(
                "x",
                &format!("to_char(current_date - (x % {DAYS})::int, 'YYYY-MM-DD')"),
                "'bench-' || lpad(x::text, 12, '0')"
            )
        );
        sqlx::query(&sql).execute(&mut c).await?;
        done += k;
    }
    sqlx::query(ROLLUP).execute(&mut c).await?;
    // What autovacuum does soon after a bulk load: statistics, and the visibility map index-only scans need.
    sqlx::query("VACUUM ANALYZE").execute(&mut c).await?;
    Ok(())
}

fn render(results: &[Value]) -> String {
    let mut md = String::from(
        "# /usage over large ledgers\n\n`target/release/ccgate-bench-storage`: admin `POST /usage` (what the dashboard \
         loads) over a ledger of N synthetic rows (20 tenants, 5 models, 90 days, 2 % refused), p50 / p95 of \
         timed calls after two warm-up calls.\n\n| backend | rows | today | 7 days | 30 days | all |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in results {
        let cell = |name: &str| {
            r["ranges"]
                .as_array()
                .and_then(|a| a.iter().find(|x| x["range"] == name))
                .map(|x| {
                    format!(
                        "{:.1} / {:.1} ms",
                        x["p50_ms"].as_f64().unwrap_or(0.0),
                        x["p95_ms"].as_f64().unwrap_or(0.0)
                    )
                })
                .unwrap_or_default()
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r["backend"].as_str().unwrap_or(""),
            r["rows"],
            cell("today"),
            cell("7 days"),
            cell("30 days"),
            cell("all")
        ));
    }
    md
}
