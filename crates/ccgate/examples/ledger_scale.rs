//! Ledger at scale: writes N request records through the real batch insert path, then times the queries the
//! usage API, the CLI and budget start-up run.
//!
//! `cargo run --release -p ccgate --example ledger_scale -- 10000000 /tmp/ledger-scale.db`

use ccgate::ledger::sqlite::SqliteStore;
use ccgate::ledger::{Outcome, Record, Store, UsageQuery};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), ccgate::ledger::LedgerError> {
    let mut args = std::env::args().skip(1);
    let rows: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let path =
        std::path::PathBuf::from(args.next().unwrap_or_else(|| "/tmp/ledger-scale.db".into()));
    let _ = std::fs::remove_file(&path);
    let store = SqliteStore::open(&path).await?;
    let tenants = 50;
    let models = [
        "claude-sonnet-4-6",
        "claude-opus-4-6",
        "claude-haiku-4-5-20251001",
        "claude-sonnet-4-5-20250929",
    ];
    let days = 365;
    let start = Instant::now();
    let mut batch = Vec::with_capacity(512);
    for i in 0..rows {
        let day = i % days;
        batch.push(Record {
            ts_ms: 1_735_689_600_000 + (day as i64) * 86_400_000 + (i as i64 % 86_400_000),
            day: format!("2025-{:02}-{:02}", 1 + day / 31 % 12, 1 + day % 28),
            request_id: format!("r{i}"),
            tenant_id: format!("tenant-{}", i % tenants),
            upstream_id: Some("up".into()),
            protocol: "anthropic",
            endpoint: "messages",
            model: models[i % models.len()].into(),
            stream: true,
            status: 200,
            outcome: Outcome::Ok,
            input_tokens: 100,
            output_tokens: 50,
            cost_nanousd: 1_050_000,
            upstream_cost_nanousd: 1_050_000,
            priced: true,
            price_version: "v".into(),
            billable: true,
            ..Default::default()
        });
        if batch.len() == 512 {
            store.insert_batch(&batch, None).await?;
            batch.clear();
        }
        if i > 0 && i % 1_000_000 == 0 {
            eprintln!(
                "{i} rows, {:.0} rows/s",
                i as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    store.insert_batch(&batch, None).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "inserted {rows} rows in {secs:.1} s ({:.0} rows/s)",
        rows as f64 / secs
    );
    let time = |label: &str, t: Instant| {
        println!("{label:<48} {:>8.2} ms", t.elapsed().as_secs_f64() * 1e3)
    };

    let t = Instant::now();
    let r = store
        .usage(&UsageQuery {
            tenant_id: Some("tenant-7".into()),
            from_day: None,
            to_day: None,
        })
        .await?;
    time(
        &format!("usage, one tenant, all time ({} rollup rows)", r.rows.len()),
        t,
    );
    let t = Instant::now();
    let r = store
        .usage(&UsageQuery {
            tenant_id: None,
            from_day: Some("2025-03-01".into()),
            to_day: Some("2025-03-31".into()),
        })
        .await?;
    time(
        &format!("usage, all tenants, one month ({} rows)", r.rows.len()),
        t,
    );
    let t = Instant::now();
    let r = store.usage(&UsageQuery::default()).await?;
    time(&format!("usage, everything ({} rows)", r.rows.len()), t);
    let t = Instant::now();
    store.spend_by_tenant(Some("2025-06-01")).await?;
    time("budget window spend, all tenants", t);
    let t = Instant::now();
    // What start-up asks: one tenant's most expensive request of the last day or two.
    store.peak_cost("tenant-7", "2025-12-27").await?;
    time("peak cost, one tenant, last day", t);
    let t = Instant::now();
    let n = store.count_requests().await?;
    time(&format!("count(*) = {n}"), t);
    Ok(())
}
