//! Alerts: webhooks told when money or upstreams run out (`server.json` `alerts`, see `docs/alerts.md`).
//!
//! Events come from places deep in the gateway that hold no [`Gateway`] (an upstream's health counters, the
//! ledger's writer), so they go through one process-wide [`Hub`], installed by `serve` ([`start`]); until then (the
//! other commands, unit tests) every hook here is a no-op. Each hook is one call at the place the event happens:
//! `routing/health.rs` (an outcome, a probe), `tee/settle.rs` (a settled spend), `ledger/mod.rs` (a write failed or
//! succeeded).
//!
//! * **Once per crossing.** The hub remembers what it has said: an upstream is reported unhealthy once until it
//!   recovers, a rejected key once until the upstream serves again, the ledger once per failure episode, and a
//!   budget threshold once per tenant, limit and window (a new day, week or month re-arms it).
//! * **Never blocks a request.** An event is put on a bounded queue with `try_send`; a full queue drops it (logged
//!   and counted). A background task delivers each alert to every hook that wants it, concurrently, each with
//!   retries and exponential back-off.
//! * **Recorded.** Every alert and every delivery attempt's result is logged and kept in memory (the last
//!   [`HISTORY`]) for `GET /api/admin/alerts`.
//! * **No secrets.** Webhook URLs carry tokens (Slack, Discord, Telegram's bot token, the robots' access tokens):
//!   only their host is ever logged or shown. Alert texts are searched for every upstream and tenant key before
//!   they leave.

pub mod api;
pub mod event;
pub mod format;

pub use event::{Alert, EventKind, Severity};
pub use format::AlertFormat;

use crate::ledger::LedgerError;
use crate::policy::budget::{usd, Settled};
use crate::routing::health::{FailureKind, Outcome, UpstreamState};
use crate::state::Gateway;
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Alerts waiting for the delivery task; past this, new ones are dropped (and counted).
pub const QUEUE: usize = 256;
/// Alerts and deliveries kept for `GET /api/admin/alerts`.
pub const HISTORY: usize = 200;
/// Tries per hook and alert, the first included.
pub const ATTEMPTS: u32 = 5;
/// The wait before the second try; doubled before each further one (1, 2, 4, 8 s).
pub const RETRY_BASE: Duration = Duration::from_secs(1);
/// One try's time limit.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Deliveries in flight at once (a slow hook must not hold the others back, nor open hundreds of sockets).
const CONCURRENT_SENDS: usize = 8;

/// One webhook (`server.json` `alerts[]`). No `Debug` of the URL: it carries the service's token.
#[derive(Clone, PartialEq)]
pub struct AlertHook {
    pub url: String,
    pub format: AlertFormat,
    /// `None`: every event.
    pub events: Option<Vec<EventKind>>,
    /// Telegram's `chat_id` (`alerts[].chatId`): the URL is `https://api.telegram.org/bot<token>/sendMessage`.
    pub chat_id: Option<String>,
}

impl AlertHook {
    /// Whether this hook gets `kind`. The test message goes to every hook.
    pub fn wants(&self, kind: EventKind) -> bool {
        kind == EventKind::Test || self.events.as_ref().is_none_or(|e| e.contains(&kind))
    }

    /// Where the hook points, without path or query (which hold the tokens): for logs and the admin.
    pub fn target(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => format!(
                "{}://{}{}",
                u.scheme(),
                u.host_str().unwrap_or("?"),
                u.port().map(|p| format!(":{p}")).unwrap_or_default()
            ),
            Err(_) => "(invalid URL)".into(),
        }
    }
}

impl std::fmt::Debug for AlertHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertHook")
            .field("target", &self.target())
            .field("format", &self.format)
            .field("events", &self.events)
            .finish()
    }
}

/// What became of one alert at one hook.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub alert_id: u64,
    pub event: EventKind,
    /// Index in `server.json` `alerts`.
    pub hook: usize,
    pub format: AlertFormat,
    /// Scheme and host only.
    pub target: String,
    /// `delivered` or `failed` (after every try).
    pub status: &'static str,
    pub attempts: u32,
    pub error: Option<String>,
    /// RFC 3339, when the last try ended.
    pub at: String,
}

/// The ledger's state as alerts last reported it.
const LEDGER_OK: u8 = 0;
const LEDGER_FAILING: u8 = 1;
const LEDGER_OUTAGE: u8 = 2;

/// A budget threshold reported: (tenant, window name, window start, percent).
type BudgetMark = (String, String, Option<chrono::NaiveDate>, u8);

/// The process-wide alert state: the queue, what has been said (for once-per-crossing), and the history.
pub struct Hub {
    tx: mpsc::Sender<Alert>,
    next_id: AtomicU64,
    /// Upstreams reported unhealthy and not yet recovered.
    down: Mutex<HashSet<String>>,
    /// Upstreams whose key was reported rejected, until they serve again.
    key_rejected: Mutex<HashSet<String>>,
    /// Set while either set above is non-empty: a success (every request) then looks at them, otherwise not.
    any_flagged: AtomicBool,
    ledger: AtomicU8,
    /// Budget thresholds already reported: (tenant, window, window start, percent).
    budgets: Mutex<HashSet<BudgetMark>>,
    alerts: Mutex<VecDeque<Alert>>,
    deliveries: Mutex<VecDeque<Delivery>>,
    dropped: AtomicU64,
}

static HUB: OnceLock<Arc<Hub>> = OnceLock::new();

fn hub() -> Option<&'static Arc<Hub>> {
    HUB.get()
}

/// Installs the hub and starts the delivery task (once per process; `serve` calls it). Hooks are read from the
/// running config at each delivery, so a reload that changes `alerts` applies to the next alert.
pub fn start(gw: Arc<Gateway>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let hub = Arc::new(Hub {
        tx,
        next_id: AtomicU64::new(1),
        down: Mutex::default(),
        key_rejected: Mutex::default(),
        any_flagged: AtomicBool::new(false),
        ledger: AtomicU8::new(LEDGER_OK),
        budgets: Mutex::default(),
        alerts: Mutex::default(),
        deliveries: Mutex::default(),
        dropped: AtomicU64::new(0),
    });
    if HUB.set(hub.clone()).is_err() {
        return;
    }
    tokio::spawn(dispatch(gw, hub, rx));
}

/// Queues an alert; never waits.
fn emit(alert: Alert) {
    let Some(hub) = hub() else { return };
    let mut alert = alert;
    alert.id = hub.next_id.fetch_add(1, Ordering::Relaxed);
    if let Err(e) = hub.tx.try_send(alert) {
        hub.dropped.fetch_add(1, Ordering::Relaxed);
        let alert = match e {
            mpsc::error::TrySendError::Full(a) | mpsc::error::TrySendError::Closed(a) => a,
        };
        tracing::error!(event = alert.event.as_str(), title = %alert.title, "alert dropped: the alert queue is full");
    }
}

// ---- the hooks -------------------------------------------------------------------------------------------------

/// `routing/health.rs`, after every outcome: a 401/403 is a rejected key; a connection failure or 5xx that put the
/// upstream in a cooldown takes it out of rotation; a success is a recovery from either.
pub fn upstream_outcome(state: &UpstreamState, outcome: &Outcome) {
    let Some(hub) = hub() else { return };
    match outcome {
        Outcome::Success { .. } => {
            if hub.any_flagged.load(Ordering::Relaxed) {
                hub.recovered(&state.id, "it answered a request");
            }
        }
        Outcome::Failure { reason, kind, .. } => match kind {
            FailureKind::Credentials => hub.key_rejected(&state.id, reason),
            FailureKind::Connect | FailureKind::ServerError
                if state.is_cooling(crate::routing::health::now_ms()) =>
            {
                hub.unhealthy(&state.id, reason)
            }
            _ => {}
        },
    }
}

/// `routing/health.rs`, after every health probe.
pub fn upstream_probe(id: &str, failure: Option<&str>) {
    let Some(hub) = hub() else { return };
    match failure {
        Some(reason) => hub.unhealthy(id, reason),
        None => {
            if hub.any_flagged.load(Ordering::Relaxed) {
                hub.recovered(id, "it passed its health check");
            }
        }
    }
}

/// `trust/`, when a check raised a flag on an upstream (once per flag: the store keeps one open flag per check).
pub fn upstream_suspect(upstream: &str, check: &str, model: &str, evidence: &serde_json::Value) {
    emit(
        Alert::new(
            EventKind::UpstreamSuspect,
            format!("Upstream {upstream} is suspect: {check}"),
            format!(
                "The {check} check flagged upstream {upstream} for model {model}. Evidence: {evidence}. \
                 Clear it with POST /api/admin/upstreams/{upstream}/trust/clear once resolved."
            ),
        )
        .detail("upstream", upstream)
        .detail("check", check)
        .detail("model", model)
        .detail("evidence", evidence.clone()),
    );
}

/// `trust/balance.rs`, when an upstream's balance crosses below its threshold (once per crossing).
pub fn balance_low(upstream: &str, balance_usd: f64, days_left: Option<f64>) {
    let days = days_left.map_or("unknown".to_owned(), |d| format!("{d:.1}"));
    emit(
        Alert::new(
            EventKind::UpstreamBalanceLow,
            format!("Upstream {upstream} balance is low: ${balance_usd:.2}"),
            format!("Upstream {upstream} has ${balance_usd:.2} left; days left at the current burn rate: {days}."),
        )
        .detail("upstream", upstream)
        .detail("balance_usd", balance_usd)
        .detail("days_left", days_left),
    );
}

/// `tee/settle.rs`, after a request's cost was added to its tenant's windows: the tenant's own limits (`scope`
/// `None`) or those of its `limits.models` entry `scope`.
pub fn spend_settled(gw: &Gateway, tenant_id: &str, scope: Option<&str>, settled: &Settled) {
    let Some(hub) = hub() else { return };
    let changed = |before: i64, after: i64| after != before;
    if !settled.calendar.iter().any(|c| changed(c.before, c.after))
        && !settled.rolling.iter().any(|c| changed(c.before, c.after))
    {
        return;
    }
    let rt = gw.rt();
    let Some(tenant) = rt.tenants_by_id.get(tenant_id) else {
        return;
    };
    let limits = match scope {
        None => &tenant.config.limits,
        Some(p) => match tenant.config.limits.models.iter().find(|m| m.pattern == p) {
            Some(m) => &m.limits,
            None => return,
        },
    };
    let scoped = |name: &str| match scope {
        None => name.to_string(),
        Some(p) => format!("{name} (models {p})"),
    };
    let name = &tenant.config.name;
    for c in &settled.calendar {
        let Some(max) = c.window.max(limits) else {
            continue;
        };
        let window = scoped(c.window.name());
        let Some(percent) = hub.first_crossing(tenant_id, &window, c.start, max, c.before, c.after)
        else {
            continue;
        };
        let text = match c.start {
            Some(start) => format!(
                "Tenant {name} ({tenant_id}) has spent ${} of its {window} limit of ${} (window starting {start}).{}",
                usd(c.after),
                usd(max),
                if percent >= 100 { " Its requests are refused until the window resets or the limit is raised." } else { "" }
            ),
            None => format!(
                "Tenant {name} ({tenant_id}) has spent ${} of its {window} limit of ${}.{}",
                usd(c.after),
                usd(max),
                if percent >= 100 { " Its requests are refused until the limit is raised." } else { "" }
            ),
        };
        emit_budget(
            tenant_id, name, &window, c.start, percent, max, c.after, text,
        );
    }
    for c in &settled.rolling {
        let max = c.limit.max_nanousd;
        let window = scoped(&format!("rolling {}h", c.limit.hours));
        let Some(percent) = hub.first_crossing(tenant_id, &window, None, max, c.before, c.after)
        else {
            continue;
        };
        let text = format!(
            "Tenant {name} ({tenant_id}) has spent ${} of its {window} limit of ${} in the last {} hours.{}",
            usd(c.after),
            usd(max),
            c.limit.hours,
            if percent >= 100 { " Its requests are refused until older spend leaves the window." } else { "" }
        );
        emit_budget(tenant_id, name, &window, None, percent, max, c.after, text);
    }
}

#[allow(clippy::too_many_arguments)]
fn emit_budget(
    tenant_id: &str,
    name: &str,
    window: &str,
    start: Option<chrono::NaiveDate>,
    percent: u8,
    max: i64,
    after: i64,
    text: String,
) {
    let (kind, what) = if percent >= 100 {
        (EventKind::BudgetExceeded, "used up")
    } else {
        (EventKind::BudgetWarning, "reached 80% of")
    };
    emit(
        Alert::new(
            kind,
            format!("Tenant {name} {what} its {window} budget"),
            text,
        )
        .detail("tenant", tenant_id)
        .detail("window", window)
        .detail("window_start", start.map(|d| d.to_string()))
        .detail("percent", percent)
        .detail("limit_usd", max as f64 / 1e9)
        .detail("spent_usd", after as f64 / 1e9),
    );
}

impl Hub {
    /// The threshold `before → after` crossed that was not reported yet for this window (`start`: its first day;
    /// `None` for total and rolling windows). A rolling window that fell back under 80 % may be reported again.
    fn first_crossing(
        &self,
        tenant_id: &str,
        window: &str,
        start: Option<chrono::NaiveDate>,
        max: i64,
        before: i64,
        after: i64,
    ) -> Option<u8> {
        let percent = crossed(max, before, after)?;
        let mut said = self.budgets.lock();
        // Thresholds of an earlier window of this limit are history: forget them (bounds the set). So are those
        // of a rolling window whose spend has fallen back under 80 %.
        let recovered = (before as i128) * 100 < (max as i128) * 80;
        said.retain(|(t, w, s, _)| {
            !(t == tenant_id && w == window && (*s != start || (start.is_none() && recovered)))
        });
        if !said.insert((tenant_id.to_owned(), window.to_owned(), start, percent)) {
            return None;
        }
        if percent == 100 {
            said.insert((tenant_id.to_owned(), window.to_owned(), start, 80));
        }
        Some(percent)
    }
}

/// The highest threshold (80 or 100 percent of `max`) that `before → after` crossed upward, if any.
pub fn crossed(max: i64, before: i64, after: i64) -> Option<u8> {
    if max <= 0 || after <= before {
        return None;
    }
    // In i128: `max * 80` can overflow an i64 for absurd limits.
    let reached = |percent: i128| (after as i128) * 100 >= (max as i128) * percent;
    let was = |percent: i128| (before as i128) * 100 >= (max as i128) * percent;
    [100u8, 80]
        .into_iter()
        .find(|&p| reached(p as i128) && !was(p as i128))
}

/// `ledger/mod.rs`, when a write (or the check of the database file) failed.
pub fn ledger_failed(e: &LedgerError) {
    let Some(hub) = hub() else { return };
    let outage = is_outage(e);
    let state = if outage {
        LEDGER_OUTAGE
    } else {
        LEDGER_FAILING
    };
    if hub.ledger.swap(state, Ordering::Relaxed) == state {
        return;
    }
    let (kind, title, hint) = if outage {
        (
            EventKind::StoreOutage,
            "Ledger database unreachable",
            "Rows wait in memory and in the crash journal and are written when it is back; budgets keep counting.",
        )
    } else {
        (
            EventKind::LedgerWriteFailed,
            "Ledger writes failing",
            "Rows wait in memory and in the crash journal and are retried; check the disk (space, permissions) or the database.",
        )
    };
    emit(Alert::new(kind, title.into(), format!("{e}. {hint}")).detail("error", e.to_string()));
}

/// `ledger/mod.rs`, after a batch was written.
pub fn ledger_wrote() {
    let Some(hub) = hub() else { return };
    if hub.ledger.load(Ordering::Relaxed) == LEDGER_OK
        || hub.ledger.swap(LEDGER_OK, Ordering::Relaxed) == LEDGER_OK
    {
        return;
    }
    emit(Alert::new(
        EventKind::LedgerRecovered,
        "Ledger writes succeed again".into(),
        "The rows that waited are being written.".into(),
    ));
}

/// A store that cannot be reached at all, as opposed to one that refuses a write (a full disk, a lock).
fn is_outage(e: &LedgerError) -> bool {
    match e {
        LedgerError::OpenPostgres { .. } => true,
        LedgerError::Db(db) => matches!(
            db,
            sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
        ),
        _ => false,
    }
}

impl Hub {
    fn set_flagged(&self) {
        let any = !self.down.lock().is_empty() || !self.key_rejected.lock().is_empty();
        self.any_flagged.store(any, Ordering::Relaxed);
    }

    fn unhealthy(&self, id: &str, reason: &str) {
        if !self.down.lock().insert(id.to_owned()) {
            return;
        }
        self.any_flagged.store(true, Ordering::Relaxed);
        emit(
            Alert::new(
                EventKind::UpstreamUnhealthy,
                format!("Upstream {id} is unhealthy"),
                format!(
                    "It is out of rotation; other upstreams take its traffic. Last error: {reason}"
                ),
            )
            .detail("upstream", id)
            .detail("error", reason),
        );
    }

    fn key_rejected(&self, id: &str, reason: &str) {
        if !self.key_rejected.lock().insert(id.to_owned()) {
            return;
        }
        self.any_flagged.store(true, Ordering::Relaxed);
        emit(
            Alert::new(
                EventKind::UpstreamKeyRejected,
                format!("Upstream {id} rejected our key"),
                format!(
                    "The upstream answered 401/403 to CCGate's key (expired, revoked or out of credit?); check \
                     upstreams.json. Error: {reason}"
                ),
            )
            .detail("upstream", id)
            .detail("error", reason),
        );
    }

    fn recovered(&self, id: &str, how: &str) {
        let was_down = self.down.lock().remove(id);
        let was_rejected = self.key_rejected.lock().remove(id);
        if !(was_down || was_rejected) {
            return;
        }
        self.set_flagged();
        emit(
            Alert::new(
                EventKind::UpstreamRecovered,
                format!("Upstream {id} recovered"),
                format!("It is back in rotation: {how}."),
            )
            .detail("upstream", id),
        );
    }

    fn remember<T>(list: &Mutex<VecDeque<T>>, item: T) {
        let mut l = list.lock();
        if l.len() == HISTORY {
            l.pop_front();
        }
        l.push_back(item);
    }
}

/// The recent alerts and deliveries (newest last) and how many alerts were dropped, for the admin.
pub fn history() -> serde_json::Value {
    match hub() {
        None => serde_json::json!({"alerts": [], "deliveries": [], "dropped": 0}),
        Some(h) => serde_json::json!({
            "alerts": h.alerts.lock().iter().collect::<Vec<_>>(),
            "deliveries": h.deliveries.lock().iter().collect::<Vec<_>>(),
            "dropped": h.dropped.load(Ordering::Relaxed),
        }),
    }
}

// ---- delivery --------------------------------------------------------------------------------------------------

/// The HTTP client of every delivery: no redirects (a hook URL that redirects is misconfigured), a time limit.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default()
}

async fn dispatch(gw: Arc<Gateway>, hub: Arc<Hub>, mut rx: mpsc::Receiver<Alert>) {
    let client = client();
    let slots = Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SENDS));
    while let Some(mut alert) = rx.recv().await {
        let (hooks, keys) = {
            let rt = gw.rt();
            let keys: Vec<String> = rt
                .config
                .upstreams
                .iter()
                .map(|u| u.key.clone())
                .chain(rt.config.tenants.iter().map(|t| t.key.clone()))
                .collect();
            (rt.config.alerts.clone(), keys)
        };
        redact_keys(&mut alert, &keys);
        match alert.severity {
            Severity::Info => {
                tracing::info!(event = alert.event.as_str(), id = alert.id, text = %alert.text, "alert: {}", alert.title)
            }
            _ => {
                tracing::warn!(event = alert.event.as_str(), id = alert.id, text = %alert.text, "alert: {}", alert.title)
            }
        }
        Hub::remember(&hub.alerts, alert.clone());
        let alert = Arc::new(alert);
        for (i, hook) in hooks
            .into_iter()
            .enumerate()
            .filter(|(_, h)| h.wants(alert.event))
        {
            let (client, hub, alert, slots) =
                (client.clone(), hub.clone(), alert.clone(), slots.clone());
            tokio::spawn(async move {
                let Ok(_slot) = slots.acquire_owned().await else {
                    return;
                };
                let d = deliver(&client, i, &hook, &alert, ATTEMPTS, RETRY_BASE).await;
                Hub::remember(&hub.deliveries, d);
            });
        }
    }
}

/// Sends `alert` to one hook, trying up to `attempts` times with back-off from `retry_base`; logs the result.
pub async fn deliver(
    client: &reqwest::Client,
    index: usize,
    hook: &AlertHook,
    alert: &Alert,
    attempts: u32,
    retry_base: Duration,
) -> Delivery {
    let body = format::body(hook.format, alert, hook.chat_id.as_deref());
    let mut delay = retry_base;
    let mut last_error = None;
    let mut tries = 0;
    while tries < attempts.max(1) {
        if tries > 0 {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tries += 1;
        let result = match client.post(&hook.url).json(&body).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                format::check_answer(hook.format, status, &bytes)
            }
            // Without the URL: reqwest's errors name it, and it holds the hook's token.
            Err(e) => Err(describe(&e.without_url())),
        };
        match result {
            Ok(()) => {
                last_error = None;
                break;
            }
            Err(e) => {
                tracing::warn!(hook = index, target = %hook.target(), attempt = tries, error = %e, "alert delivery failed");
                last_error = Some(e);
            }
        }
    }
    let delivered = last_error.is_none();
    if delivered {
        tracing::info!(hook = index, target = %hook.target(), format = hook.format.as_str(), alert = alert.id, attempts = tries, "alert delivered");
    } else {
        tracing::error!(hook = index, target = %hook.target(), alert = alert.id, attempts = tries, "alert not delivered; giving up");
    }
    Delivery {
        alert_id: alert.id,
        event: alert.event,
        hook: index,
        format: hook.format,
        target: hook.target(),
        status: if delivered { "delivered" } else { "failed" },
        attempts: tries,
        error: last_error,
        at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

/// reqwest's error with its causes (the top one alone says only "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// Replaces every key (of 8 characters or more) in the alert's texts: error texts come from upstreams.
pub fn redact_keys(alert: &mut Alert, keys: &[String]) {
    let keys: Vec<&str> = keys
        .iter()
        .map(String::as_str)
        .filter(|k| k.len() >= 8)
        .collect();
    let clean = |s: &mut String| {
        for k in &keys {
            if s.contains(k) {
                *s = s.replace(k, "[redacted]");
            }
        }
    };
    clean(&mut alert.title);
    clean(&mut alert.text);
    for v in alert.details.values_mut() {
        if let serde_json::Value::String(s) = v {
            clean(s);
        }
    }
}

/// Per-hook results of `ccgate alerts test`.
pub async fn send_test(hooks: &[AlertHook]) -> Vec<Delivery> {
    let client = client();
    let mut alert = Alert::new(
        EventKind::Test,
        "Test message".into(),
        "This webhook is set up: CCGate's alerts will arrive here.".into(),
    );
    alert.id = 1;
    let sends = hooks
        .iter()
        .enumerate()
        .map(|(i, h)| deliver(&client, i, h, &alert, 1, RETRY_BASE));
    futures_util::future::join_all(sends).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threshold_counts_once_when_crossed_upward() {
        let max = 10_000;
        assert_eq!(crossed(max, 0, 7_999), None);
        assert_eq!(crossed(max, 7_999, 8_000), Some(80));
        assert_eq!(crossed(max, 8_000, 9_000), None, "already past 80%");
        assert_eq!(crossed(max, 9_000, 10_000), Some(100));
        assert_eq!(crossed(max, 10_000, 12_000), None, "already past 100%");
        assert_eq!(
            crossed(max, 1_000, 11_000),
            Some(100),
            "both at once: the higher one"
        );
        assert_eq!(crossed(max, 5_000, 5_000), None, "a free request");
        assert_eq!(crossed(0, 0, 1), None);
        assert_eq!(crossed(i64::MAX, 0, i64::MAX), Some(100), "no overflow");
    }

    #[test]
    fn hooks_take_the_events_they_list_and_the_test_message() {
        let h = AlertHook {
            url: "https://hooks.slack.com/services/T000/B000/SECRET".into(),
            format: AlertFormat::Slack,
            events: Some(vec![EventKind::BudgetExceeded]),
            chat_id: None,
        };
        assert!(h.wants(EventKind::BudgetExceeded));
        assert!(h.wants(EventKind::Test));
        assert!(!h.wants(EventKind::UpstreamUnhealthy));
        assert_eq!(h.target(), "https://hooks.slack.com");
        assert!(!format!("{h:?}").contains("SECRET"));
        let all = AlertHook { events: None, ..h };
        assert!(EventKind::ALL.iter().all(|k| all.wants(*k)));
    }

    #[test]
    fn an_unreachable_store_is_an_outage_and_a_refused_write_is_not() {
        assert!(is_outage(&LedgerError::Db(sqlx::Error::PoolTimedOut)));
        assert!(is_outage(&LedgerError::Db(sqlx::Error::Io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        ))));
        assert!(!is_outage(&LedgerError::Db(sqlx::Error::RowNotFound)));
        assert!(!is_outage(&LedgerError::Replaced {
            path: "ccgate.db".into()
        }));
    }

    #[test]
    fn keys_are_cut_out_of_alert_texts() {
        let mut a = Alert::new(
            EventKind::UpstreamKeyRejected,
            "x".into(),
            "invalid x-api-key sk-secret-123456".into(),
        )
        .detail("error", "key sk-secret-123456 revoked");
        redact_keys(&mut a, &["sk-secret-123456".into(), "short".into()]);
        assert!(!a.text.contains("sk-secret"));
        assert!(!a.details["error"].as_str().unwrap().contains("sk-secret"));
    }
}
