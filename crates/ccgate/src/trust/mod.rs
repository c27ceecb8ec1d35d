//! Upstream trust (docs/trust.md): a scorecard per upstream and model, and checks that catch a reseller
//! cheating (substituted models, unsigned thinking, inflated token counts, caching not honoured, fake streaming),
//! from live traffic and from opt-in canary probes; plus the upstream's balance where the reseller tells it.
//!
//! The request path adds one [`Observation`] per settled request ([`Trust::observe`]: a few counter additions
//! under a short lock). A background task ([`start`]) flushes the counters to the store, where every instance's
//! add up, then evaluates the checks on the store's sums, raises flags (stored with their evidence, alerted,
//! counted in metrics) and keeps `demote` in force.

pub mod balance;
pub mod canary;
pub mod checks;
pub mod counters;
pub mod observe;
pub mod scorecard;

use crate::config::OnSuspect;
use crate::ledger::store::{TrustCanary, TrustCounter, TrustFlag, TrustSample};
use crate::ledger::{LedgerError, Record};
use crate::state::Gateway;
use checks::{Check, Peer, Status};
use counters::Counters;
use observe::Observation;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub const HOUR_MS: i64 = 3_600_000;
/// How often the counters are flushed and the checks evaluated.
const EVALUATE_EVERY: Duration = Duration::from_secs(5);
/// Request ids kept per upstream and check, as the evidence's samples.
const SAMPLES: usize = 5;
/// Samples kept in the store per upstream and check (every instance adds its own).
const SAMPLES_KEPT: i64 = 20;
/// Counters older than this are pruned (the longest window is 7 days).
const KEEP_HOURS: i64 = 8 * 24;

/// Request ids with their time (ms), oldest first.
type Samples = VecDeque<(String, i64)>;

/// `(upstream, model, hour)`.
type Key = (String, String, i64);

/// The process's trust state; lives in [`Gateway`].
#[derive(Default)]
pub struct Trust {
    /// Counters not yet added to the store.
    pending: Mutex<HashMap<Key, Counters>>,
    /// Recent request ids that showed a suspect behaviour, per (upstream, check), with their time, not yet in the
    /// store (`trust_samples`, flushed with the counters so that every instance's flag can name them).
    samples: Mutex<HashMap<(String, &'static str), Samples>>,
    /// One flush or evaluation at a time (the background task and the admin API may meet).
    flushing: tokio::sync::Mutex<()>,
    /// Per upstream, the checks with an open flag, as the last [`Trust::sync_demotions`] read them from the store
    /// (the upstream list shows them without a store read).
    open_checks: Mutex<HashMap<String, Vec<String>>>,
    pub balances: balance::Balances,
}

pub fn hour_of(ms: i64) -> i64 {
    ms.div_euclid(HOUR_MS) * HOUR_MS
}

impl Trust {
    /// One settled request (`model` is the Claude model it resolved to). Constant work: a handful of counters.
    pub fn observe(&self, r: &Record, model: &str, o: &Observation, cache_lost_nanousd: i64) {
        let Some(upstream) = &r.upstream_id else {
            return;
        };
        let c = counters::of(r, o, cache_lost_nanousd);
        if let Some(check) = counters::suspicious(&c) {
            let mut samples = self.samples.lock();
            let q = samples.entry((upstream.clone(), check)).or_default();
            if q.len() == SAMPLES {
                q.pop_front();
            }
            q.push_back((r.request_id.clone(), r.ts_ms));
        }
        let key = (upstream.clone(), model.to_owned(), hour_of(r.ts_ms));
        counters::merge(self.pending.lock().entry(key).or_default(), &c);
    }

    /// The checks with an open flag on `upstream` (every instance's, as of the last evaluation or clear).
    pub fn open_checks(&self, upstream: &str) -> Vec<String> {
        self.open_checks
            .lock()
            .get(upstream)
            .cloned()
            .unwrap_or_default()
    }

    /// Adds the pending counters to the store; on failure they stay pending (nothing is lost).
    pub async fn flush(&self, gw: &Gateway) -> Result<(), LedgerError> {
        let _one = self.flushing.lock().await;
        self.flush_locked(gw).await
    }

    async fn flush_locked(&self, gw: &Gateway) -> Result<(), LedgerError> {
        self.flush_samples(gw).await?;
        let taken = std::mem::take(&mut *self.pending.lock());
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<TrustCounter> = taken
            .iter()
            .flat_map(|((upstream, model, hour), c)| {
                c.iter().map(move |(name, n)| TrustCounter {
                    upstream_id: upstream.clone(),
                    model: model.clone(),
                    hour_ms: *hour,
                    name: name.clone(),
                    n: *n,
                })
            })
            .collect();
        if let Err(e) = gw.ledger.store.trust_add(&rows).await {
            let mut pending = self.pending.lock();
            for (k, c) in taken {
                counters::merge(pending.entry(k).or_default(), &c);
            }
            return Err(e);
        }
        Ok(())
    }

    /// Adds the pending samples to the store; on failure they stay pending (at most [`SAMPLES`] per key).
    async fn flush_samples(&self, gw: &Gateway) -> Result<(), LedgerError> {
        let taken = std::mem::take(&mut *self.samples.lock());
        if taken.is_empty() {
            return Ok(());
        }
        let rows: Vec<TrustSample> = taken
            .iter()
            .flat_map(|((upstream, check), q)| {
                q.iter().map(move |(id, ts)| TrustSample {
                    upstream_id: upstream.clone(),
                    check_name: (*check).to_owned(),
                    request_id: id.clone(),
                    ts_ms: *ts,
                })
            })
            .collect();
        if let Err(e) = gw.ledger.store.trust_add_samples(&rows, SAMPLES_KEPT).await {
            let mut pending = self.samples.lock();
            for (k, q) in taken {
                let newer = pending.entry(k).or_default();
                let mut all: Samples = q;
                all.extend(newer.drain(..));
                while all.len() > SAMPLES {
                    all.pop_front();
                }
                *newer = all;
            }
            return Err(e);
        }
        Ok(())
    }

    /// Flushes, then evaluates every check of every upstream on the store's sums: raises new flags (alert,
    /// metrics) and keeps `demote` in force. Returns the flags raised now.
    pub async fn evaluate(&self, gw: &Gateway) -> Result<Vec<TrustFlag>, LedgerError> {
        let _one = self.flushing.lock().await;
        self.flush_locked(gw).await?;
        let store = &gw.ledger.store;
        let now = chrono::Utc::now().timestamp_millis();
        let view = View::load(gw, now).await?;
        let rt = gw.rt();
        let canaries: Vec<TrustCanary> = store.trust_canaries().await?;
        let mut raised = Vec::new();
        let mut cards = Vec::new();
        for u in &rt.upstreams {
            let id = &u.config.id;
            let mut all: Vec<(String, Check)> = view
                .checks_of(&rt, id)
                .into_iter()
                .flat_map(|(model, cs)| cs.into_iter().map(move |c| (model.clone(), c)))
                .collect();
            if let Some(c) = canaries
                .iter()
                .find(|c| c.upstream_id == *id)
                .and_then(canary::verdict)
            {
                let model = u.config.trust.canary.as_ref().map(|c| c.model.clone());
                all.push((model.unwrap_or_default(), c));
            }
            cards.extend(metric_cards(&view, id, &all));
            let suspects = all.into_iter().filter(|(_, c)| c.status == Status::Suspect);
            for (model, check) in suspects {
                if view
                    .open
                    .iter()
                    .any(|f| f.upstream_id == *id && f.check_name == check.name)
                {
                    continue;
                }
                let mut evidence = check.evidence.clone();
                if let Value::Object(m) = &mut evidence {
                    m.insert("model".into(), json!(model));
                    let samples = store
                        .trust_samples(id, check.name, view.check_start(id), SAMPLES as i64)
                        .await?;
                    if !samples.is_empty() {
                        m.insert("requestIds".into(), json!(samples));
                    }
                }
                let flag = TrustFlag {
                    id: 0,
                    upstream_id: id.clone(),
                    check_name: check.name.to_owned(),
                    model: model.clone(),
                    raised_ms: now,
                    cleared_ms: None,
                    evidence: evidence.to_string(),
                };
                if store.trust_raise(&flag).await? {
                    tracing::warn!(upstream = %id, check = check.name, %model, %evidence, "upstream trust check flagged the upstream as suspect");
                    crate::alerts::upstream_suspect(id, check.name, &model, &evidence);
                    raised.push(flag);
                }
            }
        }
        crate::telemetry::metrics::trust_scorecards(&cards);
        self.sync_demotions(gw).await?;
        if now % (HOUR_MS / 4) < EVALUATE_EVERY.as_millis() as i64 {
            store
                .trust_prune(hour_of(now) - KEEP_HOURS * HOUR_MS)
                .await?;
        }
        Ok(raised)
    }

    /// Demotes exactly the upstreams with `onSuspect: "demote"` and an open flag (in the store: any instance may
    /// have raised or cleared it), and sets the metrics' gauges.
    pub async fn sync_demotions(&self, gw: &Gateway) -> Result<(), LedgerError> {
        let open = gw.ledger.store.trust_flags(None, true, 10_000).await?;
        let mut by_upstream: HashMap<String, Vec<String>> = HashMap::new();
        for f in &open {
            by_upstream
                .entry(f.upstream_id.clone())
                .or_default()
                .push(f.check_name.clone());
        }
        for u in &gw.rt().upstreams {
            let id = &u.config.id;
            let checks = by_upstream.get(id).map_or(&[][..], Vec::as_slice);
            let flagged = |check: &str| checks.iter().any(|c| c == check);
            let demote = !checks.is_empty() && u.config.trust.on_suspect == OnSuspect::Demote;
            if u.state.demoted.swap(demote, Ordering::Relaxed) != demote {
                tracing::warn!(upstream = %id, demoted = demote, "upstream trust: demotion changed");
            }
            crate::telemetry::metrics::trust(id, demote, &flagged);
        }
        *self.open_checks.lock() = by_upstream;
        Ok(())
    }

    /// Clears an upstream's open flags (one check's, or all) and lifts its demotion; how many were cleared.
    pub async fn clear(
        &self,
        gw: &Gateway,
        upstream: &str,
        check: Option<&str>,
    ) -> Result<u64, LedgerError> {
        let now = chrono::Utc::now().timestamp_millis();
        let n = gw.ledger.store.trust_clear(upstream, check, now).await?;
        self.samples
            .lock()
            .retain(|(u, c), _| u != upstream || check.is_some_and(|k| k != *c));
        if check.is_none_or(|c| c == checks::CANARY) {
            gw.ledger.store.trust_canary_reset(upstream).await?;
        }
        self.sync_demotions(gw).await?;
        Ok(n)
    }
}

/// The metrics' scorecards of one upstream: per `model` label (a catalog id or `other`, so that a model name
/// cannot add series), the windows' figures and each check's worst verdict among the models behind the label.
fn metric_cards(
    view: &View,
    upstream: &str,
    checks: &[(String, Check)],
) -> Vec<crate::telemetry::metrics::TrustScorecard> {
    use crate::telemetry::metrics::{catalog_label, check_value, TrustScorecard};
    let mut by_label: BTreeMap<&'static str, (Vec<Counters>, BTreeMap<&'static str, Status>)> =
        BTreeMap::new();
    for model in view.models_of(upstream) {
        let (windows, _) = by_label.entry(catalog_label(&model)).or_default();
        windows.resize(WINDOWS.len(), Counters::new());
        for ((_, hours), sum) in WINDOWS.iter().zip(windows.iter_mut()) {
            let from = hour_of(view.now_ms) - (hours - 1) * HOUR_MS;
            counters::merge(sum, &view.window(upstream, &model, from));
        }
    }
    for (model, c) in checks {
        let (windows, statuses) = by_label.entry(catalog_label(model)).or_default();
        windows.resize(WINDOWS.len(), Counters::new());
        let s = statuses.entry(c.name).or_insert(c.status);
        if check_value(c.status) > check_value(*s) {
            *s = c.status;
        }
    }
    by_label
        .into_iter()
        .map(|(model, (windows, statuses))| TrustScorecard {
            upstream: upstream.to_owned(),
            model,
            windows: WINDOWS
                .iter()
                .zip(&windows)
                .map(|((name, _), k)| (*name, scorecard::gauges(k)))
                .collect(),
            checks: statuses.into_iter().collect(),
        })
        .collect()
}

/// The store's counters of the last 7 days and the flags, read once for an evaluation or a scorecard.
pub struct View {
    pub now_ms: i64,
    /// `(upstream, model) → hour → counters`.
    pub hours: BTreeMap<(String, String), BTreeMap<i64, Counters>>,
    pub open: Vec<TrustFlag>,
    /// Per upstream, when its flags were last cleared: the checks judge only what came after.
    pub cleared_ms: HashMap<String, i64>,
}

/// The windows of the scorecard, in hours including the current one.
pub const WINDOWS: [(&str, i64); 3] = [("1h", 1), ("24h", 24), ("7d", 168)];
/// The window the checks judge.
pub const CHECK_WINDOW_HOURS: i64 = 24;

impl View {
    pub async fn load(gw: &Gateway, now_ms: i64) -> Result<View, LedgerError> {
        let store = &gw.ledger.store;
        let since = hour_of(now_ms) - 167 * HOUR_MS;
        let mut hours: BTreeMap<(String, String), BTreeMap<i64, Counters>> = BTreeMap::new();
        for r in store.trust_counters(since).await? {
            let c = hours
                .entry((r.upstream_id, r.model))
                .or_default()
                .entry(r.hour_ms)
                .or_default();
            counters::add(c, &r.name, r.n);
        }
        let flags = store.trust_flags(None, false, 10_000).await?;
        let mut cleared_ms: HashMap<String, i64> = HashMap::new();
        for f in &flags {
            if let Some(at) = f.cleared_ms {
                let e = cleared_ms.entry(f.upstream_id.clone()).or_insert(at);
                *e = (*e).max(at);
            }
        }
        Ok(View {
            now_ms,
            hours,
            open: flags
                .into_iter()
                .filter(|f| f.cleared_ms.is_none())
                .collect(),
            cleared_ms,
        })
    }

    /// The sum of the hours from `from_hour_ms` on.
    pub fn window(&self, upstream: &str, model: &str, from_hour_ms: i64) -> Counters {
        let mut out = Counters::new();
        if let Some(h) = self.hours.get(&(upstream.to_owned(), model.to_owned())) {
            for (_, c) in h.range(from_hour_ms..) {
                counters::merge(&mut out, c);
            }
        }
        out
    }

    /// Where the checks' window starts for an upstream: 24 hours, or the first whole hour after its flags were
    /// last cleared (what was judged before a clear is not judged again).
    pub fn check_start(&self, upstream: &str) -> i64 {
        let day = hour_of(self.now_ms) - (CHECK_WINDOW_HOURS - 1) * HOUR_MS;
        match self.cleared_ms.get(upstream) {
            Some(&at) => day.max(hour_of(at) + HOUR_MS),
            None => day,
        }
    }

    pub fn models_of(&self, upstream: &str) -> Vec<String> {
        self.hours
            .keys()
            .filter(|(u, _)| u == upstream)
            .map(|(_, m)| m.clone())
            .collect()
    }

    /// The passive checks of every model an upstream served.
    pub fn checks_of(
        &self,
        rt: &crate::state::Runtime,
        upstream: &str,
    ) -> Vec<(String, Vec<Check>)> {
        let day = hour_of(self.now_ms) - (CHECK_WINDOW_HOURS - 1) * HOUR_MS;
        self.models_of(upstream)
            .into_iter()
            .map(|model| {
                let me = self.window(upstream, &model, self.check_start(upstream));
                let others: Vec<(String, bool, Counters)> = rt
                    .upstreams
                    .iter()
                    .filter(|u| u.config.id != upstream)
                    .map(|u| {
                        (
                            u.config.id.clone(),
                            u.config.trust.reference,
                            self.window(&u.config.id, &model, day),
                        )
                    })
                    .collect();
                let peers: Vec<Peer<'_>> = others
                    .iter()
                    .map(|(id, reference, c)| Peer {
                        upstream: id,
                        reference: *reference,
                        counters: c,
                    })
                    .collect();
                let cs = checks::passive(&me, &peers);
                (model, cs)
            })
            .collect()
    }
}

/// The background task: flush and evaluate every few seconds, until shutdown (then one last flush).
pub fn start(gw: Arc<Gateway>) {
    canary::start(gw.clone());
    balance::start(gw.clone());
    let tracker = gw.tasks.clone();
    tracker.spawn(async move {
        if let Err(e) = gw.trust.sync_demotions(&gw).await {
            tracing::warn!(error = %e, "upstream trust: cannot read the flags");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(EVALUATE_EVERY) => {}
                _ = gw.shutdown.cancelled() => break,
            }
            if let Err(e) = gw.trust.evaluate(&gw).await {
                tracing::warn!(error = %e, "upstream trust: evaluation failed; retried on the next round");
            }
        }
        if let Err(e) = gw.trust.flush(&gw).await {
            tracing::warn!(error = %e, "upstream trust: the last counters could not be stored");
        }
    });
}
