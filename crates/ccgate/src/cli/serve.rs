//! The subcommands' bodies.

use super::storage;
use super::table::Style;
use super::{Dirs, ServeArgs};
use crate::api::usage::{admin_report, parse_range, tenant_report, window_spend};
use crate::config::{self, examples, load_dir};
use crate::ledger::journal::{self, Journal};
use crate::ledger::{Ledger, LedgerError, Store};
use crate::policy::budget::Window;
use crate::state::Gateway;
use chrono::Utc;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

pub fn db_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("ccgate.db")
}

pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let dirs = &args.dirs;
    // A fresh clone has `config/` with only the `*.json.example` files: that is a first start too. A folder with
    // some live files but not others is a mistake the loader reports, not something to paper over.
    let live = [
        config::load::SERVER_FILE,
        config::load::UPSTREAMS_FILE,
        config::load::TENANTS_FILE,
    ];
    if live.iter().all(|f| !dirs.config_dir.join(f).exists()) {
        let boot = examples::bootstrap(&dirs.config_dir)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dirs.config_dir.display()))?;
        println!("================================================================");
        println!(
            " First start: created {} from the embedded examples.",
            dirs.config_dir.display()
        );
        println!(
            " Admin login (console at /admin):  admin / {}",
            boot.admin_password
        );
        println!(" Demo tenant key:                  {}", boot.tenant_key);
        if std::env::var_os("ANTHROPIC_API_KEY").is_some_and(|v| !v.is_empty()) {
            println!(" Upstream key: taken from ANTHROPIC_API_KEY.");
        } else {
            println!(" Upstream key: set ANTHROPIC_API_KEY, or edit upstreams.json.");
        }
        println!(" These are printed once; they are stored in the config files.");
        println!("================================================================");
        let _ = std::io::stdout().flush();
    }
    let mut loaded = match load_dir(&dirs.config_dir) {
        Ok(l) => l,
        Err(e) => {
            crate::telemetry::logs::init_console();
            return Err(e.into());
        }
    };
    let log_dir = crate::telemetry::logs::init(&loaded.config.logging, &dirs.data_dir)?;
    crate::telemetry::metrics::install();
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    if let Some(p) = args.port {
        loaded.config.server.port = p;
    }
    if let Some(h) = &args.host {
        loaded.config.server.host = h.clone();
    }
    let host = loaded.config.server.host.clone();
    let port = loaded.config.server.port;
    let tz = loaded.config.server.timezone;
    let env_url = storage::from_env().map_err(|e| anyhow::anyhow!("{}: {e}", storage::ENV))?;
    let storage_url = storage::resolve(env_url, loaded.config.storage.as_ref(), &dirs.data_dir);
    let journal_dir = dirs.data_dir.join("journal");
    let store = storage::open(&storage_url, Some(&journal_dir)).await?;
    tracing::info!(store = %storage_url, "ledger opened");
    let journal = replay_journal(&*store, &journal_dir).await?;
    let ledger = Ledger::start(store.clone(), Some(journal));
    let gw = Gateway::new(
        loaded,
        dirs.config_dir.clone(),
        dirs.data_dir.clone(),
        ledger.clone(),
    )?;
    // Tenants made through the admin API, from the store; followed from now on (every instance on a shared store).
    crate::tenants::load_and_follow(gw.clone()).await?;
    load_budgets(&gw, &*store, tz).await?;
    let listen_error = |e: std::io::Error| {
        anyhow::anyhow!(
            "cannot listen on {host}:{port}: {e} (is the port in use? change server.port)"
        )
    };
    let bind_addr = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(listen_error)?
        .next()
        .ok_or_else(|| {
            anyhow::anyhow!("cannot listen on {host}:{port}: the host name has no address")
        })?;
    let listener = crate::server::bind(bind_addr).map_err(listen_error)?;
    let addr = listener.local_addr()?;
    let instance_id =
        storage::instance_id(gw.rt().config.server.instance_id.as_deref(), addr.port());
    ledger.set_instance_id(instance_id.clone());
    if let Some(pg) = store.postgres() {
        // Several instances on one database: tenant limits hold across all of them (policy/lease.rs), and so do
        // session pins (routing/shared_pins.rs).
        crate::routing::shared_pins::spawn(
            pg.pool().clone(),
            gw.session_pins().clone(),
            instance_id.clone(),
            gw.shutdown.clone(),
        );
        let shared = Arc::new(crate::policy::lease::SharedLimits::new(
            pg.pool().clone(),
            instance_id,
            crate::policy::lease::LEASE_TTL,
            &gw,
        ));
        pg.on_commit(shared.clone());
        let _ = gw.shared_limits.set(shared.clone());
        crate::policy::lease::spawn_upkeep(shared, gw.clone());
    }
    // The port override must survive reloads, so reloads re-apply it (see Gateway::apply's caller).
    config::watch::spawn(gw.clone());
    config::watch::spawn_sighup(gw.clone());
    crate::alerts::start(gw.clone());
    crate::routing::health::spawn_checker(gw.clone());
    crate::trust::start(gw.clone());
    // Bound to every interface: show a URL a client on this machine can use.
    let reachable = if addr.ip().is_unspecified() {
        std::net::SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let metrics_listen = match gw.rt().config.server.metrics_listen {
        Some(at) => Some(
            crate::telemetry::metrics::serve_separately(at, gw.clone())
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot listen on {at} for metrics: {e} (change server.metricsListen)"
                    )
                })?,
        ),
        None => None,
    };
    println!("CCGate listening on http://{addr}");
    {
        let rt = gw.rt();
        let config_file = dirs.config_dir.join(config::load::SERVER_FILE);
        let facts = crate::telemetry::banner::Facts {
            reachable,
            store: &storage_url,
            logs: Some(&log_dir),
            metrics_listen,
            config_file: &config_file,
        };
        let (lines, warnings) = crate::telemetry::banner::lines(&rt.config, &facts);
        for line in lines {
            println!("{line}");
        }
        for w in warnings {
            println!("  WARNING: {w}");
            tracing::warn!("{w}");
        }
    }
    let _ = std::io::stdout().flush();
    let signal_gw = gw.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested");
        signal_gw.shutdown.cancel();
    });
    crate::server::serve(listener, gw.clone()).await?;
    gw.tasks.close();
    let drain = gw.rt().config.server.disconnect_drain;
    if tokio::time::timeout(drain, gw.tasks.wait()).await.is_err() {
        tracing::warn!("some requests were still draining at shutdown; recording them now");
    }
    let report = ledger.flush_and_close().await;
    if let Some(shared) = gw.shared_limits() {
        // After the last rows are stored: what the leases held is now spend, and the rest is free for the others.
        shared.release_all().await;
    }
    // Until a checkpoint the last writes live in ccgate.db-wal: after this, ccgate.db alone holds everything, so
    // a copy of that one file (or a restore of it) is complete.
    if let Err(e) = store.checkpoint().await {
        tracing::warn!(error = %e, "ledger checkpoint at shutdown failed; the data is safe in ccgate.db-wal");
    }
    if report.unstored > 0 {
        // A non-zero exit: whatever supervises the gateway must see that rows are not in the database.
        return Err(anyhow::Error::msg(if report.journaled {
            format!(
                "{} usage record(s) could not be written to the ledger database before exit; they are kept in {} \
                 and will be stored at the next start",
                report.unstored,
                dirs.data_dir.join("journal").display()
            )
        } else {
            format!(
                "{} usage record(s) could not be stored and are only in the log above (search for \"ledger could not \
                 store\")",
                report.unstored
            )
        }));
    }
    tracing::info!("ledger flushed; bye");
    crate::telemetry::logs::flush();
    Ok(())
}

/// Stores what the crash journal holds from the last run (rows whose answers went out before a crash, and
/// requests that were in flight), in one transaction, then starts the journal for this run.
async fn replay_journal(store: &dyn Store, dir: &Path) -> Result<Journal, LedgerError> {
    let journal_err = |source| LedgerError::Journal {
        path: dir.to_owned(),
        source,
    };
    let committed = store.journal_committed_seq().await?;
    let replay = journal::read(dir, committed).map_err(journal_err)?;
    if replay.unreadable > 0 {
        tracing::warn!(
            lines = replay.unreadable,
            "crash journal: skipped lines cut off by the crash (a request whose line was being written)"
        );
    }
    // A request journaled in flight may have finished after all, its end line in a segment deleted since.
    let ids: Vec<String> = replay
        .in_flight
        .iter()
        .map(|r| r.request_id.clone())
        .collect();
    let stored: std::collections::HashSet<String> =
        store.stored_request_ids(&ids).await?.into_iter().collect();
    let interrupted: Vec<_> = replay
        .in_flight
        .into_iter()
        .filter(|r| !stored.contains(&r.request_id))
        .collect();
    let interrupted_count = interrupted.len();
    let mut rows = replay.rows;
    rows.extend(interrupted);
    if !rows.is_empty() {
        store.insert_batch(&rows, Some(replay.max_seq)).await?;
        tracing::warn!(
            rows = rows.len(),
            interrupted = interrupted_count,
            "crash journal: the last run ended without a clean shutdown; stored the rows it had not yet written \
             (requests that were in flight are recorded as interrupted)"
        );
    }
    for f in &replay.files {
        std::fs::remove_file(f).map_err(journal_err)?;
    }
    Journal::open(dir, committed.max(replay.max_seq)).map_err(|source| LedgerError::NotWritable {
        path: dir.to_owned(),
        source,
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Budgets continue where the ledger left off: the spend of the current day, week, month and all time.
pub async fn load_budgets(
    gw: &Arc<Gateway>,
    store: &dyn Store,
    tz: chrono_tz::Tz,
) -> Result<(), LedgerError> {
    for (w, start, spend) in window_spend(store, tz).await? {
        gw.tenant_state(&spend.tenant_id)
            .load_spent(w, start, spend.cost_nanousd);
    }
    // Yesterday and today in the budget timezone: at least the last 24 hours.
    let since_day = (Utc::now() - chrono::Duration::days(1))
        .with_timezone(&tz)
        .format("%Y-%m-%d")
        .to_string();
    let tenant_ids: Vec<String> = gw
        .rt()
        .config
        .tenants
        .iter()
        .map(|t| t.id.clone())
        .collect();
    for id in tenant_ids {
        if let Some(peak) = store.peak_cost(&id, &since_day).await? {
            gw.tenant_state(&id).load_observed_peak(peak);
            for m in gw
                .rt()
                .tenants_by_id
                .get(&id)
                .iter()
                .flat_map(|t| &t.model_states)
            {
                m.load_observed_peak(peak);
            }
        }
    }
    load_recent_limits(gw, store, tz).await
}

/// The spend and tokens that `limits.models`, `limits.rolling` and `limits.tpm` count, from the ledger: per-model
/// calendar windows from the daily rollups, rolling windows and the last minute's tokens from recent requests.
/// A ledger row names the model the tenant asked for; it counts for a pattern matching it or, on `/openai`, the
/// model its `openai.models` alias resolves to.
async fn load_recent_limits(
    gw: &Arc<Gateway>,
    store: &dyn Store,
    tz: chrono_tz::Tz,
) -> Result<(), LedgerError> {
    let rt = gw.rt();
    let aliases = &rt.config.openai.models;
    let matches = |pattern: &str, model: &str| {
        crate::policy::permissions::row_matches(pattern, model, aliases)
    };
    let tenants: Vec<_> = rt.tenants_by_id.values().cloned().collect();
    let today = crate::policy::budget::local_day(tz, Utc::now());
    if tenants.iter().any(|t| !t.config.limits.models.is_empty()) {
        for w in Window::ALL {
            let start = w.start(today);
            let from = start.map(|d| d.to_string());
            let rows = store.spend_by_tenant_model(from.as_deref()).await?;
            for t in &tenants {
                for (m, state) in t.config.limits.models.iter().zip(&t.model_states) {
                    let spent = rows
                        .iter()
                        .filter(|r| r.tenant_id == t.config.id && matches(&m.pattern, &r.model))
                        .fold(0i64, |acc, r| acc.saturating_add(r.cost_nanousd));
                    state.load_spent(w, start, spent);
                }
            }
        }
    }
    let now = Utc::now();
    let longest = tenants
        .iter()
        .filter_map(|t| t.config.limits.longest_rolling_hours())
        .max();
    let has_tpm = |l: &crate::config::Limits| {
        l.tpm.is_some() || l.models.iter().any(|m| m.limits.tpm.is_some())
    };
    let mut loads: Vec<(i64, i64, bool)> = Vec::new();
    if let Some(hours) = longest {
        loads.push((crate::policy::budget::span_s(hours), 60, false));
    }
    if tenants.iter().any(|t| has_tpm(&t.config.limits)) {
        loads.push((60, 1, true));
    }
    for (span, width, tokens) in loads {
        let since_ms = (now.timestamp() - span - width) * 1000;
        for b in store.spend_buckets(since_ms, width * 1000).await? {
            let Some(t) = rt.tenants_by_id.get(&b.tenant_id) else {
                continue;
            };
            let Some(at) = chrono::DateTime::from_timestamp_millis(b.start_ms) else {
                continue;
            };
            let load = |state: &crate::policy::budget::TenantState, l: &crate::config::Limits| {
                match tokens {
                    true if l.tpm.is_some() => state.load_tokens(at, b.tokens),
                    false if !l.rolling.is_empty() => state.load_rolling(at, b.cost_nanousd),
                    _ => {}
                }
            };
            load(&t.state, &t.config.limits);
            for (m, state) in t.config.limits.models.iter().zip(&t.model_states) {
                if matches(&m.pattern, &b.model) {
                    load(state, &m.limits);
                }
            }
        }
    }
    Ok(())
}

pub fn init(dirs: &Dirs) -> anyhow::Result<()> {
    let written = examples::init(&dirs.config_dir)?;
    if written.is_empty() {
        println!(
            "Nothing to do: the example files already exist in {}.",
            dirs.config_dir.display()
        );
    }
    for w in written {
        println!("wrote {w}");
    }
    println!("Copy each *.json.example to *.json and edit it (or just run `ccgate`: a first start creates them).");
    Ok(())
}

pub fn validate(dirs: &Dirs) -> anyhow::Result<()> {
    let loaded = load_dir(&dirs.config_dir)?;
    for w in &loaded.warnings {
        println!("warning: {w}");
    }
    if let Some(p) = &loaded.pricing_json {
        let (_, warnings) = ccgate_meter::pricing::PriceTable::builtin().with_overrides_json(p)?;
        for w in &warnings {
            println!("warning: {w}");
        }
    }
    let c = &loaded.config;
    println!(
        "OK: {} upstream(s) ({} enabled), {} tenant(s), strategy {}",
        c.upstreams.len(),
        c.upstreams.iter().filter(|u| u.enabled).count(),
        c.tenants.len(),
        c.load_balancer.strategy.as_str()
    );
    Ok(())
}

/// The ledger a report command reads: `configured` is `storage.url`, looked up only when the environment does
/// not name one.
async fn open_store(
    dirs: &Dirs,
    configured: impl FnOnce() -> Result<Option<config::StorageUrl>, config::ConfigErrors>,
) -> anyhow::Result<(config::StorageUrl, Arc<dyn Store>)> {
    let env_url = storage::from_env().map_err(|e| anyhow::anyhow!("{}: {e}", storage::ENV))?;
    let configured = match env_url {
        Some(_) => None,
        None => configured()?,
    };
    let url = storage::resolve(env_url, configured.as_ref(), &dirs.data_dir);
    if let config::StorageUrl::Sqlite(path) = &url {
        if !path.exists() {
            return Err(anyhow::anyhow!(
                "no ledger at {} (has the gateway run with this --data-dir?)",
                path.display()
            ));
        }
    }
    let store = storage::open(&url, None).await?;
    Ok((url, store))
}

pub async fn usage(
    dirs: &Dirs,
    tenant: Option<String>,
    from: Option<String>,
    to: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let loaded = load_dir(&dirs.config_dir)?;
    let cfg = loaded.config;
    let tz = cfg.server.timezone;
    let (_, store) = open_store(dirs, || Ok(cfg.storage.clone())).await?;
    let range = parse_range(from.as_deref(), to.as_deref())?;
    // Offline: "used" comes from the ledger's rollups for each window.
    let spent: std::collections::HashMap<(String, usize), i64> = window_spend(&*store, tz)
        .await?
        .into_iter()
        .map(|(w, _, s)| ((s.tenant_id, w as usize), s.cost_nanousd))
        .collect();
    let used = |t: &crate::config::TenantConfig, w: Window| {
        spent.get(&(t.id.clone(), w as usize)).copied().unwrap_or(0)
    };
    let report = match &tenant {
        Some(id) => {
            let t = cfg
                .tenants
                .iter()
                .find(|t| &t.id == id)
                .ok_or_else(|| anyhow::anyhow!("no tenant with id {id:?} in tenants.json"))?;
            let mut v = tenant_report(&*store, t, &range, tz, &used, None, &[], None).await?;
            v["tenants"] = serde_json::json!([{
                "id": t.id, "name": t.name, "totals": v["totals"].clone(), "limits": v["limits"].clone(),
                "refusals": v["refusals"].clone()
            }]);
            v
        }
        None => {
            admin_report(
                &*store,
                &cfg.tenants,
                &range,
                tz,
                &used,
                &|_| (None, Vec::new()),
                &Default::default(),
            )
            .await?
        }
    };
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(());
    }
    print!("{}", super::report::usage_table(&report, Style::stdout()));
    Ok(())
}

pub async fn clean(dirs: &Dirs, before: Option<String>, yes: bool) -> anyhow::Result<()> {
    let day = match &before {
        Some(d) => {
            chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .map_err(|_| anyhow::anyhow!("--before: expected YYYY-MM-DD, got {d:?}"))?;
            d.clone()
        }
        None => "9999-12-31".to_string(),
    };
    let what = match &before {
        Some(d) => format!("all recorded usage before {d}"),
        None => "ALL recorded usage".to_string(),
    };
    // Only `storage.url` is needed: cleaning works with a config folder whose other files are broken or absent.
    let (url, store) = open_store(dirs, || config::load::load_storage(&dirs.config_dir)).await?;
    if !yes {
        print!("Delete {what} from {url}? Budgets count from what remains. [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("Nothing deleted.");
            return Ok(());
        }
    }
    let n = store.delete_before(&day).await?;
    println!("Deleted {n} request record(s) ({what}).");
    Ok(())
}

pub async fn health(dirs: &Dirs, url: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    // The config folder gives the port and the admin's credentials (the per-upstream details are the admin's);
    // without a readable config the overall status is still shown.
    let config = load_dir(&dirs.config_dir).ok().map(|l| l.config);
    let base = match (url, &config) {
        (Some(u), _) => u.trim_end_matches('/').to_string(),
        (None, Some(c)) => format!("http://127.0.0.1:{}", c.server.port),
        (None, None) => "http://127.0.0.1:3000".to_string(),
    };
    let url = format!("{base}/health");
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let mut request = client.get(&url);
    if let Some(admin) = config.as_ref().map(|c| &c.admin) {
        // With `passwordHash` the password is not in the file: the public view is shown.
        if admin.login_allowed() && admin.password_hash.is_none() {
            request = request.basic_auth(&admin.username, Some(&admin.password));
        }
    }
    let resp = request.send().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach {url}: {}",
            crate::forward::client::UpstreamError::from_reqwest(e)
        )
    })?;
    let text = resp.text().await?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{url} did not answer JSON: {e}"))?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or(text));
        return Ok(());
    }
    print!("{}", super::report::health_table(&v, Style::stdout()));
    if let Some(problem) = config.as_ref().and_then(|c| c.admin.password_problem()) {
        eprintln!(
            "note: {}",
            crate::api::usage::admin_refused_message(problem)
        );
    }
    if v["status"] == "unavailable" {
        anyhow::bail!("no upstream is available");
    }
    Ok(())
}

/// `ccgate alerts test`: one test message to every hook of `server.json` `alerts`, one try each; fails if any hook
/// did not take it.
pub async fn alerts_test(dirs: &Dirs) -> anyhow::Result<()> {
    let loaded = load_dir(&dirs.config_dir)?;
    let hooks = &loaded.config.alerts;
    if hooks.is_empty() {
        anyhow::bail!(
            "no webhooks configured: add an \"alerts\" list to {}",
            dirs.config_dir.join(config::load::SERVER_FILE).display()
        );
    }
    let results = crate::alerts::send_test(hooks).await;
    let mut failed = 0;
    for d in &results {
        match &d.error {
            None => println!(
                "alerts[{}] {} ({}): delivered",
                d.hook,
                d.target,
                d.format.as_str()
            ),
            Some(e) => {
                failed += 1;
                println!(
                    "alerts[{}] {} ({}): FAILED: {e}",
                    d.hook,
                    d.target,
                    d.format.as_str()
                );
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} webhook(s) did not take the test message",
            results.len()
        );
    }
    Ok(())
}
