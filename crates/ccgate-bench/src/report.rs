//! Ratios, targets and the markdown table, all derived from the JSON results.

use serde_json::{json, Value};
use std::fmt::Write as _;

const PATHS: [(&str, &str); 6] = [
    ("direct", "direct"),
    ("nginx", "nginx"),
    ("floor", "hyper floor"),
    ("litellm", "LiteLLM"),
    ("anthropic", "ccgate /anthropic"),
    ("openai", "ccgate /openai"),
];
const BODIES: [(&str, &str); 3] = [("small", "small"), ("large", "75 KB"), ("sse", "SSE")];

fn path_name(key: &str) -> &str {
    PATHS
        .iter()
        .find(|(k, _)| *k == key)
        .map_or(key, |(_, n)| n)
}

fn find<'a>(runs: &'a [Value], path: &str, body: &str, conns: u64) -> Option<&'a Value> {
    runs.iter()
        .find(|r| r["path"] == path && r["body"] == body && r["conns"] == conns)
}

fn f(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b * 1000.0).round() / 1000.0),
        _ => None,
    }
}

fn concurrencies(runs: &[Value]) -> Vec<u64> {
    let mut c: Vec<u64> = runs
        .iter()
        .filter_map(|r| r["conns"].as_u64())
        .filter(|&c| c > 1)
        .collect();
    c.sort_unstable();
    c.dedup();
    c
}

/// Adds `ratios` and `targets` to the results.
pub fn with_ratios_and_targets(mut res: Value) -> Value {
    let runs: Vec<Value> = res["runs"].as_array().cloned().unwrap_or_default();
    let mut ratios = Vec::new();
    for (body, _) in BODIES {
        for c in concurrencies(&runs) {
            let rps = |p: &str| find(&runs, p, body, c).and_then(|r| f(r, "rps"));
            for (path, _) in PATHS {
                let Some(x) = rps(path) else { continue };
                ratios.push(json!({
                    "body": body, "conns": c, "path": path, "rps": x,
                    "vs_nginx": ratio(Some(x), rps("nginx")),
                    "vs_direct": ratio(Some(x), rps("direct")),
                    "vs_floor": if matches!(path, "anthropic" | "openai") { ratio(Some(x), rps("floor")) } else { None },
                    "vs_anthropic": if path == "openai" { ratio(Some(x), rps("anthropic")) } else { None },
                }));
            }
        }
        let d = find(&runs, "direct", body, 1);
        for (path, _) in PATHS {
            let Some(r) = find(&runs, path, body, 1) else {
                continue;
            };
            let diff = |k: &str| match (f(r, k), d.and_then(|d| f(d, k))) {
                (Some(a), Some(b)) => Some(((a - b) * 10.0).round() / 10.0),
                _ => None,
            };
            ratios.push(json!({
                "body": body, "conns": 1, "path": path,
                "added_p50_us": diff("p50_us"), "added_p99_us": diff("p99_us"),
                "added_ttfb_p50_us": diff("ttfb_p50_us"), "added_ttfb_p99_us": diff("ttfb_p99_us"),
            }));
        }
    }

    let mut targets = Vec::new();
    let get = |body: &str, c: u64, path: &str, k: &str| -> Option<f64> {
        ratios
            .iter()
            .find(|r| r["body"] == body && r["conns"] == c && r["path"] == path)
            .and_then(|r| f(r, k))
    };
    for (body, label) in BODIES {
        for c in concurrencies(&runs) {
            // The lean-core guard rails (issue #16): CCGate may cost up to a quarter of nginx's throughput
            // for auth, policy, metering and the ledger, which nginx does not do.
            if c == 1 {
                continue;
            }
            if let Some(x) = get(body, c, "anthropic", "vs_nginx") {
                targets.push(target(
                    &format!("/anthropic throughput ≥ 0.75× nginx ({label}, c={c})"),
                    "≥ 0.75×",
                    format!("{x:.2}×"),
                    x >= 0.75,
                ));
            }
        }
    }
    for (body, label) in BODIES {
        for c in concurrencies(&runs) {
            if c == 1 {
                continue;
            }
            if let Some(x) = get(body, c, "openai", "vs_anthropic") {
                targets.push(target(
                    &format!("/openai throughput ≥ 0.6× /anthropic ({label}, c={c})"),
                    "≥ 0.60×",
                    format!("{x:.2}×"),
                    x >= 0.6,
                ));
            }
        }
    }
    for (body, label) in [("sse", "SSE")] {
        for path in ["anthropic", "openai"] {
            if let Some(x) = get(body, 1, path, "added_ttfb_p99_us") {
                targets.push(target(
                    &format!(
                        "TTFT not delayed: added time-to-first-byte p99 at c=1, /{path} {label}"
                    ),
                    "≤ 1 ms (no Nagle/buffering stall)",
                    format!("{x:.0} µs"),
                    x <= 1000.0,
                ));
            }
        }
    }
    if let Some(streams) = res["ccgate"]["streams"].as_array() {
        for s in streams.iter().filter(|s| s["path"] != "nginx") {
            let (Some(peak), Some(n)) = (f(s, "peak_rss_mib"), s["streams"].as_u64()) else {
                continue;
            };
            let errors = s["errors"].as_u64().unwrap_or(0);
            targets.push(target(
                &format!(
                    "peak RSS of ccgate at {n} concurrent streams (/{})",
                    s["path"].as_str().unwrap_or("")
                ),
                "≤ 96 MiB, no error",
                format!("{peak:.1} MiB, {errors} errors"),
                peak <= 96.0 && errors == 0 && n >= 1000,
            ));
        }
    }
    for (key, name) in [
        (
            "slow_streams",
            "10,000 concurrent slow streams held (HTTP/1.1, a connection each)",
        ),
        (
            "slow_streams_h2",
            "10,000 concurrent slow streams held (HTTP/2, many per connection)",
        ),
    ] {
        let slow = &res["ccgate"][key];
        let (Some(n), Some(peak)) = (slow["streams"].as_u64(), f(slow, "peak_rss_mib")) else {
            continue;
        };
        let requested = slow["requested"].as_u64().unwrap_or(n);
        let errors = slow["errors"].as_u64().unwrap_or(0);
        let open = slow["peak_open"].as_u64().unwrap_or(0);
        // The guard rail is completion without error; the RSS is reported beside it.
        let met = errors == 0 && n >= 10_000 && open >= n * 95 / 100;
        let mut measured = format!(
            "{n} streams (peak {open} open at once), {errors} errors, peak RSS {peak:.1} MiB"
        );
        if let Some(k) = slow["h2_streams_per_conn"].as_u64() {
            measured.push_str(&format!(", {k} streams per connection"));
        }
        if n < requested {
            measured.push_str(&format!(" — only {n} of {requested}: fd limit"));
        }
        targets.push(target(name, "all 10,000 complete, no error", measured, met));
    }
    res["ratios"] = Value::Array(ratios);
    res["targets"] = Value::Array(targets);
    res
}

fn target(name: &str, goal: &str, measured: String, met: bool) -> Value {
    json!({"target": name, "goal": goal, "measured": measured, "met": met})
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(x) if x.abs() >= 1000.0 => {
            let s = format!("{:.0}", x.abs());
            let mut out = String::new();
            for (i, ch) in s.chars().enumerate() {
                if i > 0 && (s.len() - i) % 3 == 0 {
                    out.push(',');
                }
                out.push(ch);
            }
            if x < 0.0 {
                format!("-{out}")
            } else {
                out
            }
        }
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.1}"),
    }
}

fn times(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        // A peer hundreds of times slower would otherwise read 0.00×.
        Some(x) if x < 0.1 => format!("{x:.4}×"),
        Some(x) => format!("{x:.2}×"),
    }
}

fn signed(x: Option<f64>) -> String {
    match x {
        None => "–".into(),
        Some(x) if x >= 0.0 => format!("+{}", num(Some(x))),
        Some(x) => num(Some(x)),
    }
}

/// What the hyper floor says: how a proxy that is hyper + tokio and nothing else compares with nginx, and how much
/// CPU CCGate's own work (auth, body scan, policy, routing, header rewrite, metering, ledger) adds to it.
fn floor_section(
    o: &mut String,
    runs: &[Value],
    cs: &[u64],
    rget: &dyn Fn(&str, u64, &str, &str) -> Option<f64>,
) {
    let Some(&c) = cs.last() else { return };
    let mut lines = Vec::new();
    for (body, label) in BODIES {
        let cpu = |path: &str| find(runs, path, body, c).and_then(|r| f(r, "proxy_cpu_us_per_req"));
        let (Some(floor), Some(ours)) = (cpu("floor"), cpu("anthropic")) else {
            continue;
        };
        let by_conns: Vec<String> = cs
            .iter()
            .map(|&c| {
                format!(
                    "c={c}: floor {} nginx, /anthropic {} floor",
                    times(rget(body, c, "floor", "vs_nginx")),
                    times(rget(body, c, "anthropic", "vs_floor"))
                )
            })
            .collect();
        lines.push(format!(
            "- {label}: {}; CPU per request at c={c}: floor {}, nginx {}, /anthropic {} µs (CCGate's own work: {} µs)",
            by_conns.join("; "),
            num(Some(floor)),
            num(cpu("nginx")),
            num(Some(ours)),
            num(Some(ours - floor)),
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "\nThe hyper floor (`ccgate-hyper-floor`: hyper + tokio alone in CCGate's worker layout, no auth, metering or \
         ledger) is what CCGate's HTTP stack costs by itself. For CCGate to match nginx, everything it does per \
         request on top of that stack has to fit in the CPU between the floor and nginx:\n\n{}",
        lines.join("\n")
    );
}

/// CCGate against LiteLLM's proxy, when the run measured it (`--litellm`): throughput and latency at c=1.
fn peer_section(o: &mut String, runs: &[Value], cs: &[u64]) {
    let mut lines = Vec::new();
    for (body, label) in BODIES {
        let rps = |path: &str, c: u64| find(runs, path, body, c).and_then(|r| f(r, "rps"));
        let by_conns: Vec<String> = cs
            .iter()
            .filter_map(|&c| {
                let (ours, peer) = (rps("anthropic", c)?, rps("litellm", c)?);
                (peer > 0.0).then(|| {
                    format!(
                        "c={c}: {} vs {} req/s ({:.0}×)",
                        num(Some(ours)),
                        num(Some(peer)),
                        ours / peer
                    )
                })
            })
            .collect();
        let p50 = |path: &str| find(runs, path, body, 1).and_then(|r| f(r, "p50_us"));
        let latency = match (p50("anthropic"), p50("litellm")) {
            (Some(a), Some(l)) => format!("; p50 at c=1: {} vs {} µs", num(Some(a)), num(Some(l))),
            _ => String::new(),
        };
        if !by_conns.is_empty() || !latency.is_empty() {
            lines.push(format!("- {label}: {}{latency}", by_conns.join(", ")));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(
            o,
            "\nCCGate /anthropic against LiteLLM's proxy (`/v1/messages`, same mock, one worker per core):\n\n{}",
            lines.join("\n")
        );
    }
}

pub fn markdown(res: &Value) -> String {
    let runs: Vec<Value> = res["runs"].as_array().cloned().unwrap_or_default();
    let ratios: Vec<Value> = res["ratios"].as_array().cloned().unwrap_or_default();
    let m = &res["machine"];
    let s = &res["settings"];
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# CCGate benchmark ({} run)\n",
        s["mode"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        o,
        "Machine: {} cores, {}, {} GiB RAM, Linux {}. Cells: {} s warm-up + {} s measured, {} round(s), the quietest kept per cell; load generator on {} threads, sharing the cores with the system under test.\n",
        m["nproc"], m["cpu_model"].as_str().unwrap_or("?"), m["mem_gib"], m["kernel"].as_str().unwrap_or("?"),
        s["warmup_s"], s["duration_s"], s["rounds"], s["client_threads"]
    );
    let _ = writeln!(
        o,
        "Command: `{}` (commit {}, load average before the run: {})\n",
        s["command"].as_str().unwrap_or(""),
        s["git"].as_str().unwrap_or("?"),
        s["loadavg_before"].as_str().unwrap_or("?")
    );
    let cs = concurrencies(&runs);
    let rget = |body: &str, c: u64, path: &str, k: &str| -> Option<f64> {
        ratios
            .iter()
            .find(|r| r["body"] == body && r["conns"] == c && r["path"] == path)
            .and_then(|r| f(r, k))
    };

    let _ = writeln!(o, "## Throughput (requests/s, closed loop, keep-alive)\n");
    let mut head = String::from("| body | path |");
    let mut sep = String::from("|---|---|");
    for c in &cs {
        let _ = write!(head, " c={c} | ×nginx | ×direct |");
        sep.push_str("---:|---:|---:|");
    }
    head.push_str(" proxy CPU µs/req | mock CPU µs/req | errors |");
    sep.push_str("---:|---:|---:|");
    let _ = writeln!(o, "{head}\n{sep}");
    for (body, label) in BODIES {
        for (path, pname) in PATHS {
            if !runs
                .iter()
                .any(|r| r["path"] == path && r["body"] == body && r["conns"].as_u64() > Some(1))
            {
                continue;
            }
            let mut line = format!("| {label} | {pname} |");
            let mut errors = 0;
            for &c in &cs {
                let r = find(&runs, path, body, c);
                errors += r.and_then(|r| r["errors"].as_u64()).unwrap_or(0);
                let _ = write!(
                    line,
                    " {} | {} | {} |",
                    num(r.and_then(|r| f(r, "rps"))),
                    if path == "nginx" {
                        "–".into()
                    } else {
                        times(rget(body, c, path, "vs_nginx"))
                    },
                    if path == "direct" {
                        "–".into()
                    } else {
                        times(rget(body, c, path, "vs_direct"))
                    },
                );
            }
            let last = cs.last().and_then(|&c| find(&runs, path, body, c));
            let _ = writeln!(
                line,
                " {} | {} | {} |",
                num(last.and_then(|r| f(r, "proxy_cpu_us_per_req"))),
                num(last.and_then(|r| f(r, "mock_cpu_us_per_req"))),
                errors
            );
            o.push_str(&line);
        }
    }
    if let Some(c) = cs.last() {
        let _ = writeln!(o, "\nCPU columns: utime+stime of the process (nginx: master + workers) over the measured window at c={c}, divided by the requests.");
    }
    let mut foreign: Vec<f64> = runs
        .iter()
        .filter_map(|r| f(r, "foreign_cpu_pct"))
        .collect();
    if !foreign.is_empty() {
        foreign.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        let _ = writeln!(
            o,
            "\nOther workloads on the machine during the kept cells (CPU not used by the bench, the mock, nginx or ccgate, % of all cores): median {:.1} %, max {:.1} %.",
            foreign[foreign.len() / 2],
            foreign[foreign.len() - 1]
        );
    }
    let mut oa = Vec::new();
    for (body, label) in BODIES {
        for &c in &cs {
            if let Some(x) = rget(body, c, "openai", "vs_anthropic") {
                oa.push(format!("{label} c={c}: {x:.2}×"));
            }
        }
    }
    if !oa.is_empty() {
        let _ = writeln!(o, "\n/openai ÷ /anthropic throughput: {}.", oa.join(", "));
    }
    floor_section(&mut o, &runs, &cs, &rget);
    peer_section(&mut o, &runs, &cs);

    let _ = writeln!(o, "\n## Latency at concurrency 1 (µs)\n");
    let _ = writeln!(o, "| body | path | p50 | p99 | added p50 | added p99 | TTFB p50 | TTFB p99 | added TTFB p99 | proxy CPU µs/req | errors |");
    let _ = writeln!(o, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (body, label) in BODIES {
        for (path, pname) in PATHS {
            let Some(r) = find(&runs, path, body, 1) else {
                continue;
            };
            let _ = writeln!(
                o,
                "| {label} | {pname} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                num(f(r, "p50_us")),
                num(f(r, "p99_us")),
                if path == "direct" {
                    "–".into()
                } else {
                    signed(rget(body, 1, path, "added_p50_us"))
                },
                if path == "direct" {
                    "–".into()
                } else {
                    signed(rget(body, 1, path, "added_p99_us"))
                },
                num(f(r, "ttfb_p50_us")),
                num(f(r, "ttfb_p99_us")),
                if path == "direct" {
                    "–".into()
                } else {
                    signed(rget(body, 1, path, "added_ttfb_p99_us"))
                },
                num(f(r, "proxy_cpu_us_per_req")),
                r["errors"].as_u64().unwrap_or(0),
            );
        }
    }
    let _ = writeln!(o, "\nAdded = this path minus direct (client → mock) at the same quantile. TTFB = time to the first body byte (SSE: the first event).");

    let cg = &res["ccgate"];
    let _ = writeln!(o, "\n## Memory and concurrent streams (ccgate)\n");
    let _ = writeln!(
        o,
        "- Peak RSS (VmHWM) over the whole matrix above: {} MiB (RSS after it: {} MiB)",
        num(f(cg, "peak_rss_mib_matrix")),
        num(f(cg, "rss_after_matrix_mib"))
    );
    if let Some(x) = f(cg, "fresh_rss_mib") {
        let _ = writeln!(o, "- The stream checks below run on a fresh ccgate process: RSS {} MiB after one request each way", num(Some(x)));
    }
    if let Some(n) = f(&res["nginx"], "peak_rss_mib_matrix_all_processes") {
        let _ = writeln!(
            o,
            "- nginx, for comparison (sum of VmHWM over master + workers): {} MiB",
            num(Some(n))
        );
    }
    if let Some(streams) = cg["streams"].as_array() {
        for st in streams {
            let _ = writeln!(
                o,
                "- {} concurrent fast SSE streams via {} (closed loop): {} streams/s, p99 {} µs, peak RSS {} MiB (from {} MiB), {} errors; other workloads {} %",
                st["streams"], path_name(st["path"].as_str().unwrap_or("")), num(f(st, "rps")), num(f(st, "p99_us")),
                num(f(st, "peak_rss_mib")), num(f(st, "rss_before_mib")), st["errors"], num(f(st, "foreign_cpu_pct"))
            );
        }
    }
    for (key, label, who) in [
        (
            "slow_streams_direct_baseline",
            "straight to the mock (baseline)",
            "mock",
        ),
        ("slow_streams", "through ccgate /anthropic", "ccgate"),
        (
            "slow_streams_h2",
            "through ccgate /anthropic over HTTP/2",
            "ccgate",
        ),
    ] {
        let sl = &cg[key];
        if !sl.is_object() {
            continue;
        }
        let conns = match sl["h2_streams_per_conn"].as_u64() {
            Some(k) => format!("{k} per h2c connection"),
            None => "one connection each".to_string(),
        };
        let _ = writeln!(
            o,
            "- {} slow SSE streams {label} ({conns}, opened over {} s, {} ms between events, ~25 events): {} completed, {} errors, peak {} open at once; {who} peak RSS {} MiB (from {} MiB), peak {} fds, CPU {} s; TTFB p50 {} ms / p99 {} ms; stream p50 {} s / max {} s; kernel listen-queue drops {}; other workloads {} %",
            sl["streams"], sl["ramp_s"], sl["event_delay_ms"], sl["completed"], sl["errors"], sl["peak_open"],
            num(f(sl, "peak_rss_mib")), num(f(sl, "rss_before_mib")), sl["peak_fds"], num(f(sl, "server_cpu_s")),
            num(f(sl, "ttfb_p50_ms")), num(f(sl, "ttfb_p99_ms")), sl["stream_p50_s"], sl["stream_max_s"], sl["listen_drops"], num(f(sl, "foreign_cpu_pct"))
        );
    }

    let _ = writeln!(o, "\n## Targets (measured in this run)\n");
    let _ = writeln!(o, "| target | goal | measured | met |\n|---|---|---|---|");
    for t in res["targets"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} |",
            t["target"].as_str().unwrap_or(""),
            t["goal"].as_str().unwrap_or(""),
            t["measured"].as_str().unwrap_or(""),
            if t["met"] == true { "yes" } else { "**no**" }
        );
    }
    if let Some(notes) = res["notes"].as_array().filter(|n| !n.is_empty()) {
        let _ = writeln!(o, "\n## Notes\n");
        for n in notes {
            let _ = writeln!(o, "- {}", n.as_str().unwrap_or(""));
        }
    }
    o
}

/// Short console summary: throughput ratios and the targets.
pub fn summary(res: &Value) -> String {
    let mut o = String::from("ratios (throughput; ×nginx / ×direct):\n");
    for r in res["ratios"].as_array().cloned().unwrap_or_default() {
        if r["conns"].as_u64() == Some(1) || r["path"] == "direct" {
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<6} c={:<4} {:<10} {:>9} req/s  {} nginx  {} direct{}",
            r["body"].as_str().unwrap_or(""),
            r["conns"],
            r["path"].as_str().unwrap_or(""),
            num(f(&r, "rps")),
            times(f(&r, "vs_nginx")),
            times(f(&r, "vs_direct")),
            f(&r, "vs_anthropic")
                .map(|x| format!("  {x:.2}× /anthropic"))
                .unwrap_or_default()
        );
    }
    o.push_str("added latency at c=1 over direct (p50 / p99 µs):\n");
    for r in res["ratios"].as_array().cloned().unwrap_or_default() {
        if r["conns"].as_u64() != Some(1) || r["path"] == "direct" {
            continue;
        }
        let _ = writeln!(
            o,
            "  {:<6} {:<10} {} / {}",
            r["body"].as_str().unwrap_or(""),
            r["path"].as_str().unwrap_or(""),
            signed(f(&r, "added_p50_us")),
            signed(f(&r, "added_p99_us"))
        );
    }
    o.push_str("targets:\n");
    for t in res["targets"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            o,
            "  [{}] {} — {} (goal {})",
            if t["met"] == true { "met " } else { "MISS" },
            t["target"].as_str().unwrap_or(""),
            t["measured"].as_str().unwrap_or(""),
            t["goal"].as_str().unwrap_or("")
        );
    }
    o
}
