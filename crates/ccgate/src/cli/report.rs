//! The report commands' tables: `ccgate usage` (from the ledger) and `ccgate health` (from a running gateway's
//! `/health`). Both read the same JSON the API answers, so the tables never show anything the API does not.

use super::table::{count, dollars, fit, Column, Cut, Style, Table, Tone};
use serde_json::Value;

/// A JSON value as plain text; `serde_json::Value`'s own `Display` quotes strings.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The usage columns; the first one's title names what the rows are. Refusals are counted per tenant only, so
/// the per-day and per-model tables leave that column out and give the width to the names.
fn usage_columns(first: &'static str, refused: bool) -> Vec<Column> {
    let mut cols = vec![
        Column::name(first, 12),
        Column::right("REQS", 6),
        Column::right("ERRORS", 6),
    ];
    if refused {
        cols.push(Column::right("REFUSED", 7));
    }
    cols.extend([
        Column::right("INPUT", 7),
        Column::right("OUTPUT", 7),
        Column::right("CACHE-W", 7),
        Column::right("CACHE-R", 7),
        Column::right("COST", 8),
    ]);
    cols
}

/// One usage row; `refused` is `None` where refusals are not broken down (per day, per model).
fn usage_row(name: &str, t: &Value, refused: Option<i64>, bold: bool) -> Vec<(String, Tone)> {
    let plain = if bold { Tone::Bold } else { Tone::Plain };
    let errors = int(&t["errors"]);
    let mut cost = dollars(t["cost_usd"].as_f64().unwrap_or(0.0));
    if int(&t["unpriced_requests"]) > 0 {
        cost.push('*');
    }
    let mut row = vec![
        (name.to_string(), plain),
        (count(int(&t["requests"]), 6), plain),
        (count(errors, 6), if errors > 0 { Tone::Bad } else { plain }),
    ];
    if let Some(n) = refused {
        row.push((count(n, 7), if n > 0 { Tone::Warn } else { plain }));
    }
    row.extend([
        (count(int(&t["input_tokens"]), 7), plain),
        (count(int(&t["output_tokens"]), 7), plain),
        (count(int(&t["cache_creation_input_tokens"]), 7), plain),
        (count(int(&t["cache_read_input_tokens"]), 7), plain),
        (cost, plain),
    ]);
    row
}

pub fn usage_table(v: &Value, style: Style) -> String {
    let mut out = format!(
        "Usage {} .. {} ({})\n\n",
        v["from"].as_str().unwrap_or("start"),
        v["to"].as_str().unwrap_or("today"),
        v["timezone"].as_str().unwrap_or("UTC")
    );
    let mut tenants = Table::new(usage_columns("TENANT", true));
    for t in v["tenants"].as_array().into_iter().flatten() {
        let refused = int(&t["refusals"]["requests"]);
        tenants.row_toned(usage_row(
            t["id"].as_str().unwrap_or("?"),
            &t["totals"],
            Some(refused),
            false,
        ));
        for l in t["limits"].as_array().into_iter().flatten() {
            if l["kind"] == "usd" {
                tenants.note(
                    format!(
                        "{} limit {}: used {}, {} left, resets {}",
                        l["name"].as_str().unwrap_or(""),
                        dollars(l["max_usd"].as_f64().unwrap_or(0.0)),
                        dollars(l["used_usd"].as_f64().unwrap_or(0.0)),
                        dollars(l["remaining_usd"].as_f64().unwrap_or(0.0)),
                        l["resets_at"].as_str().unwrap_or("never"),
                    ),
                    Tone::Dim,
                );
            }
        }
    }
    tenants.row_toned(usage_row(
        "TOTAL",
        &v["totals"],
        Some(int(&v["refusals"]["requests"])),
        true,
    ));
    out.push_str("By tenant\n");
    out.push_str(&tenants.render(style));

    let mut days = Table::new(usage_columns("DAY", false));
    for d in v["by_day"].as_array().into_iter().flatten() {
        days.row_toned(usage_row(d["day"].as_str().unwrap_or("?"), d, None, false));
    }
    out.push_str("\nBy day\n");
    out.push_str(&days.render(style));

    let mut models = Table::new(usage_columns("MODEL", false));
    for m in v["by_model"].as_array().into_iter().flatten() {
        models.row_toned(usage_row(
            m["model"].as_str().unwrap_or("?"),
            m,
            None,
            false,
        ));
    }
    out.push_str("\nBy model\n");
    out.push_str(&models.render(style));
    let unpriced = v["totals"]["unpriced_requests"].as_i64().unwrap_or(0) > 0;
    if unpriced {
        out.push_str("* includes requests without a price; the cost shown leaves them out\n");
    }

    out.push_str("\nRefused by CCGate (never sent upstream), per tenant and reason\n");
    let mut refusals = Table::new(vec![
        Column {
            flex: false,
            ..Column::name("TENANT", 20)
        },
        Column::left("REASON", 24),
        Column::right("STATUS", 6),
        Column::right("REQUESTS", 8),
    ]);
    let mut any = false;
    for t in v["tenants"].as_array().into_iter().flatten() {
        for r in t["refusals"]["by_reason"].as_array().into_iter().flatten() {
            any = true;
            refusals.row(vec![
                t["id"].as_str().unwrap_or("?").to_string(),
                text(&r["reason"]),
                text(&r["status"]),
                count(int(&r["requests"]), 8),
            ]);
        }
    }
    if any {
        out.push_str(&refusals.render(style));
    } else {
        out.push_str("(none in this range)\n");
    }
    out.push_str(&match v["unauthenticated"]["failed_logins"].as_i64() {
        Some(n) => {
            format!("Failed logins (wrong key or password) since the gateway started: {n}\n")
        }
        None => "Requests with a wrong or unknown key have no tenant, so the ledger holds none;\n\
                 a running gateway's POST /usage (as admin) counts them since it started.\n"
            .to_string(),
    });
    out
}

fn status_tone(status: &str) -> Tone {
    match status {
        "healthy" | "ok" => Tone::Good,
        "cooling_down" | "ejected" | "degraded" => Tone::Warn,
        "unhealthy" | "unavailable" => Tone::Bad,
        _ => Tone::Dim,
    }
}

/// Seconds from now until an RFC 3339 time, if it is in the future.
fn seconds_until(t: &Value) -> Option<i64> {
    let t = chrono::DateTime::parse_from_rfc3339(t.as_str()?).ok()?;
    let s = (t.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    (s >= 0).then_some(s + 1)
}

pub fn health_table(v: &Value, style: Style) -> String {
    let status = v["status"].as_str().unwrap_or("?");
    let mut out = format!(
        "CCGate {}  status: {}  uptime: {}s\n\n",
        v["version"].as_str().unwrap_or("?"),
        style.paint(status, status_tone(status)),
        text(&v["uptime_seconds"])
    );
    if v["config"]["status"] == "rejected" {
        out.push_str(&style.paint(
            &format!(
                "CONFIG REJECTED since {}: the files on disk were not applied; the last good config is running.",
                v["config"]["since"].as_str().unwrap_or("?"),
            ),
            Tone::Bad,
        ));
        out.push('\n');
        let error = v["config"]["error"]
            .as_str()
            .unwrap_or("(details need the admin credentials)");
        out.push_str(&fit(&format!("  {error}"), style.width, Cut::End));
        out.push_str("\n\n");
    }
    if v["ledger"]["status"] == "degraded" {
        out.push_str(&style.paint(
            &format!(
                "LEDGER DEGRADED (last successful write {}):",
                v["ledger"]["last_write"].as_str().unwrap_or("never"),
            ),
            Tone::Bad,
        ));
        out.push('\n');
        let error = v["ledger"]["error"]
            .as_str()
            .unwrap_or("(details need the admin credentials)");
        out.push_str(&fit(&format!("  {error}"), style.width, Cut::End));
        out.push_str("\n\n");
    }
    if v.get("upstreams").is_none() {
        out.push_str("(upstream details need the admin credentials: run with --config-dir pointing at the gateway's config folder)\n");
        return out;
    }
    let mut table = Table::new(vec![
        Column {
            cut: Cut::Middle,
            ..Column::left("ID", 14)
        },
        Column::left("STATUS", 12),
        Column::right("PRIO", 4),
        Column::right("IN-FL", 5),
        Column::right("FAILS", 5),
        Column::right("ERRORS", 6),
        Column::right("LATENCY", 8),
        Column::right("REQS", 7),
        Column {
            flex: true,
            ..Column::left("LAST ERROR", 10)
        },
    ]);
    for u in v["upstreams"].as_array().into_iter().flatten() {
        let status = u["status"].as_str().unwrap_or("?");
        // The time left says more than the moment it ends, and fits the column.
        let shown = match status {
            "cooling_down" => seconds_until(&u["cooldown_until"])
                .map(|s| format!("cooling {s}s"))
                .unwrap_or_else(|| status.to_string()),
            "ejected" => seconds_until(&u["ejected_until"])
                .map(|s| format!("ejected {s}s"))
                .unwrap_or_else(|| status.to_string()),
            _ => status.to_string(),
        };
        let fails = int(&u["consecutive_failures"]);
        let latency = u["latency_ewma_ms"].as_f64().unwrap_or(0.0);
        table.row_toned(vec![
            (text(&u["id"]), Tone::Plain),
            (shown, status_tone(status)),
            (text(&u["priority"]), Tone::Plain),
            (text(&u["in_flight"]), Tone::Plain),
            (
                count(fails, 5),
                if fails > 0 { Tone::Bad } else { Tone::Plain },
            ),
            (count(int(&u["failures_total"]), 6), Tone::Plain),
            (
                if latency > 0.0 {
                    format!("{latency:.0}ms")
                } else {
                    "-".into()
                },
                Tone::Plain,
            ),
            (count(int(&u["requests_total"]), 7), Tone::Plain),
            (
                u["last_error"].as_str().unwrap_or("-").to_string(),
                if u["last_error"].is_string() {
                    Tone::Bad
                } else {
                    Tone::Dim
                },
            ),
        ]);
    }
    out.push_str(&table.render(style));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn totals(requests: i64, errors: i64) -> Value {
        json!({"requests": requests, "errors": errors, "input_tokens": 123_456_789, "output_tokens": 5,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 9_999_999, "cost_usd": 1234.5,
               "unpriced_requests": 0})
    }

    fn report() -> Value {
        let long = "claude-sonnet-4-5-20250929-with-a-name-longer-than-any-column";
        let mut model = totals(3, 1);
        model["model"] = json!(long);
        let mut day = totals(3, 1);
        day["day"] = json!("2026-12-07");
        json!({
            "from": "2026-12-01", "to": null, "timezone": "UTC",
            "totals": totals(3, 1),
            "refusals": {"requests": 2},
            "tenants": [{"id": "a-tenant-with-a-rather-long-identifier", "totals": totals(3, 1),
                "refusals": {"requests": 2, "by_reason": [{"reason": "model_not_allowed", "status": 403, "requests": 2}]},
                "limits": [{"kind": "usd", "name": "daily", "max_usd": 1.0, "used_usd": 0.5, "remaining_usd": 0.5,
                            "resets_at": "2026-12-08T00:00:00+00:00"}]}],
            "by_day": [day],
            "by_model": [model],
        })
    }

    #[test]
    fn the_usage_table_fits_the_terminal_and_keeps_its_columns() {
        for width in [80, 100] {
            let out = usage_table(&report(), Style::plain(width));
            for line in out.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
            let header = out.lines().find(|l| l.starts_with("TENANT")).unwrap();
            assert!(
                header.contains("ERRORS") && header.contains("REFUSED"),
                "{header}"
            );
            // Every row of a section ends where its header does: right-aligned columns line up.
            let model_header = out.lines().find(|l| l.starts_with("MODEL")).unwrap();
            let model_row = out.lines().find(|l| l.starts_with("claude-")).unwrap();
            assert_eq!(
                model_row.chars().count(),
                model_header.chars().count(),
                "{out}"
            );
            assert!(model_row.contains('…'), "{model_row}");
            assert!(out.contains("model_not_allowed"), "{out}");
            assert!(!out.contains('\x1b'));
        }
    }

    #[test]
    fn the_health_table_fits_and_colours_only_when_asked() {
        let v = json!({"status": "degraded", "version": "1", "uptime_seconds": 5, "upstreams": [
            {"id": "up1", "status": "healthy", "priority": 1, "in_flight": 0, "consecutive_failures": 0,
             "failures_total": 0, "latency_ewma_ms": 12.3, "requests_total": 10, "last_error": null},
            {"id": "an-upstream-with-a-long-id", "status": "unhealthy", "priority": 2, "in_flight": 1,
             "consecutive_failures": 3, "failures_total": 7, "latency_ewma_ms": 0.0, "requests_total": 9,
             "last_error": "health check: HTTP 503 and a long explanation that goes on well past any terminal width"}]});
        let out = health_table(&v, Style::plain(80));
        for line in out.lines() {
            assert!(line.chars().count() <= 80, "{line:?}");
        }
        assert!(out
            .lines()
            .any(|l| l.starts_with("up1 ") && l.contains("healthy")));
        assert!(!out.contains('\x1b'));
        let coloured = health_table(
            &v,
            Style {
                width: 80,
                colour: true,
            },
        );
        assert!(coloured.contains("\x1b[31m"), "{coloured}");
    }

    #[test]
    fn a_rejected_config_and_a_degraded_ledger_are_said_first() {
        let v = json!({"status": "ok", "version": "1", "uptime_seconds": 5,
            "config": {"status": "rejected", "since": "2026-12-07T10:00:00Z", "error": "tenants.json: bad"},
            "ledger": {"status": "degraded", "last_write": "2026-12-07T10:01:00Z", "error": "disk full"}});
        let out = health_table(&v, Style::plain(80));
        assert!(
            out.contains("CONFIG REJECTED since 2026-12-07T10:00:00Z"),
            "{out}"
        );
        assert!(out.contains("tenants.json: bad"), "{out}");
        assert!(
            out.contains("LEDGER DEGRADED (last successful write 2026-12-07T10:01:00Z)"),
            "{out}"
        );
        assert!(out.contains("disk full"), "{out}");
    }
}
