//! `ccgate import-usage DIR`: a generated tree in the original CCGate's format (100,000 records) gives the same
//! totals per tenant and day as the files; a second import adds nothing; bad lines are named and skipped.

use crate::common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

/// Per (tenant, day): requests, input, output, cache writes, cache reads, original cost in nano-USD.
type Totals = BTreeMap<(String, String), [i64; 6]>;

const MODELS: [&str; 4] = [
    "claude-sonnet-4-20250514",
    "claude-3-5-haiku-20241022",
    "claude-opus-4-20250514",
    "some-model-without-a-price",
];

/// Writes `{tenant}/{YYYY-MM}/{YYYY-MM-DD}.json` files holding `per_file` records each; returns the totals the
/// files hold. Adds three bad lines and one repeated record (which must count once).
fn generate(root: &Path, tenants: &[&str], days: &[chrono::NaiveDate], per_file: usize) -> Totals {
    let mut totals = Totals::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut n = 0u64;
    for t in tenants {
        for d in days {
            let dir = root.join(t).join(d.format("%Y-%m").to_string());
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{d}.json"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
            let entry = totals.entry((t.to_string(), d.to_string())).or_default();
            for i in 0..per_file {
                n += 1;
                let (input, output, cw, cr) =
                    (next(50_000), next(4_000), next(2_000), next(90_000));
                let micro = next(2_000_000); // the original's totalCost, whole micro-dollars
                let status = if next(50) == 0 { 529 } else { 200 };
                let rec = json!({
                    "requestId": format!("req_{t}_{d}_{i}_{n}"),
                    "tenantId": t,
                    "timestamp": format!("{d}T{:02}:{:02}:{:02}.000Z", i % 24, i % 60, (i / 60) % 60),
                    "model": MODELS[(n % 4) as usize],
                    "inputTokens": input, "outputTokens": output,
                    "cacheCreationTokens": cw, "cacheReadTokens": cr,
                    "totalTokens": input + output + cw + cr,
                    "inputCost": 0.0, "outputCost": 0.0, "cacheCreationCost": 0.0, "cacheReadCost": 0.0,
                    "totalCost": micro as f64 / 1e6,
                    "duration": next(30_000),
                    "statusCode": status,
                    "errorType": if status == 529 { json!("overloaded_error") } else { json!(null) },
                    "upstream": "up1", "userAgent": "claude-cli/2.0", "clientIP": "10.0.0.1", "metadata": {},
                });
                writeln!(out, "{rec}").unwrap();
                let e = &mut *entry;
                e[0] += 1;
                e[1] += input as i64;
                e[2] += output as i64;
                e[3] += cw as i64;
                e[4] += cr as i64;
                e[5] += micro as i64 * 1000;
                if n == 5 {
                    // The same record again (the original could append twice): counted once.
                    writeln!(out, "{rec}").unwrap();
                }
            }
            out.flush().unwrap();
        }
    }
    // Bad lines at the end of the first tenant's first file.
    let first = root
        .join(tenants[0])
        .join(days[0].format("%Y-%m").to_string())
        .join(format!("{}.json", days[0]));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(first)
        .unwrap();
    writeln!(f, "{{\"requestId\": \"cut off").unwrap();
    writeln!(f, "{}", json!({"requestId": "neg", "inputTokens": -5})).unwrap();
    writeln!(f, "{}", json!({"tenantId": "t1", "inputTokens": 5})).unwrap();
    totals
}

async fn run(config: &Path, data: &Path, tree: &Path) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["import-usage", "--config-dir"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .arg(tree)
        .env_remove("CCGATE_DATABASE_URL")
        .output()
        .await
        .unwrap()
}

async fn ledger_totals(db: &Path) -> (Totals, Totals, i64) {
    use sqlx::Row;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut rows = Totals::new();
    for r in sqlx::query(
        "SELECT tenant_id, day, COUNT(*) n, SUM(input_tokens) i, SUM(output_tokens) o, SUM(cache_write_5m_tokens) w,
                SUM(cache_read_tokens) r, SUM(original_cost_nanousd) c
         FROM requests WHERE imported = 1 GROUP BY tenant_id, day",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        rows.insert(
            (r.get("tenant_id"), r.get("day")),
            ["n", "i", "o", "w", "r", "c"].map(|c| r.get::<i64, _>(c)),
        );
    }
    // What the usage reports read.
    let mut rollups = Totals::new();
    for r in sqlx::query(
        "SELECT tenant_id, day, SUM(requests) n, SUM(input_tokens) i, SUM(output_tokens) o, SUM(cache_write_5m_tokens) w,
                SUM(cache_read_tokens) r FROM daily_rollup GROUP BY tenant_id, day",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    {
        let mut v = ["n", "i", "o", "w", "r"].map(|c| r.get::<i64, _>(c)).to_vec();
        v.push(0);
        rollups.insert((r.get("tenant_id"), r.get("day")), v.try_into().unwrap());
    }
    let not_imported: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM requests WHERE imported = 0 OR original_cost_nanousd IS NULL",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    (rows, rollups, not_imported)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_100k_record_tree_imports_with_the_files_totals_and_a_second_import_adds_nothing() {
    let tree = TempDir::new("orig-usage");
    let usage = tree.0.join("usage");
    let tenants = ["t1", "t2", "t3", "t4"];
    let start = chrono::NaiveDate::from_ymd_opt(2025, 8, 20).unwrap();
    let days: Vec<_> = (0..25).map(|i| start + chrono::Duration::days(i)).collect();
    let expected = generate(&usage, &tenants, &days, 1000);
    assert_eq!(expected.values().map(|t| t[0]).sum::<i64>(), 100_000);

    let config = TempDir::new("import-cfg");
    let data = TempDir::new("import-data");
    Files::new(&["http://127.0.0.1:9".to_string()]).write(&config.0);
    // The original's data folder (holding usage/) is accepted as well as usage/ itself.
    let out = run(&config.0, &data.0, &tree.0).await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Imported 100000 record(s)"), "{text}");
    let first_file = usage.join("t1/2025-08/2025-08-20.json");
    for line in [1002, 1003, 1004] {
        assert!(
            text.contains(&format!("{}:{line}:", first_file.display())),
            "bad line {line} not reported: {text}"
        );
    }
    assert!(
        text.contains("1 duplicate(s) skipped"),
        "the repeated record: {text}"
    );
    let db = data.0.join("ccgate.db");
    let (rows, rollups, not_imported) = ledger_totals(&db).await;
    assert_eq!(not_imported, 0);
    assert_eq!(
        rows, expected,
        "per tenant and day, with the original's costs"
    );
    let expected_tokens: Totals = expected
        .iter()
        .map(|(k, v)| (k.clone(), [v[0], v[1], v[2], v[3], v[4], 0]))
        .collect();
    assert_eq!(rollups, expected_tokens, "the rollups the reports read");

    let out = run(&config.0, &data.0, &usage).await;
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Imported 0 record(s)"), "{text}");
    assert!(text.contains("100001 duplicate(s) skipped"), "{text}");
    let (rows_after, rollups_after, _) = ledger_totals(&db).await;
    assert_eq!(rows_after, expected);
    assert_eq!(rollups_after, rollups);

    // The history shows in the usage reports, with CCGate's own price of the priced models.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_ccgate"))
        .args(["usage", "--json", "--tenant", "t2", "--config-dir"])
        .arg(&config.0)
        .arg("--data-dir")
        .arg(&data.0)
        .output()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let t2: i64 = expected
        .iter()
        .filter(|(k, _)| k.0 == "t2")
        .map(|(_, v)| v[0])
        .sum();
    assert_eq!(report["totals"]["requests"], t2, "{report}");
    assert!(report["totals"]["cost_nanousd"].as_i64().unwrap() > 0);
    assert!(
        report["totals"]["unpriced_requests"].as_i64().unwrap() > 0,
        "the unknown model is unpriced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_folder_is_an_error_that_says_what_was_expected() {
    let tree = TempDir::new("orig-empty");
    let config = TempDir::new("import-cfg");
    let data = TempDir::new("import-data");
    Files::new(&["http://127.0.0.1:9".to_string()]).write(&config.0);
    let out = run(&config.0, &data.0, &tree.0).await;
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("{tenantId}/{YYYY-MM}/{YYYY-MM-DD}.json"),
        "{text}"
    );
}
