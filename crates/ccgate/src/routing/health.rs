//! Live upstream state: lock-free counters read on every pick, updated on every outcome.
//!
//! Three health signals take an upstream out of rotation:
//!
//! * **cooldown** (passive): consecutive failures, or an upstream-given `retry-after`;
//! * **probe** (active): the health checker's last probe failed;
//! * **ejection** (outlier detection, [`OutlierWindow`]): too high an error rate over the last minute, even when
//!   successes in between keep the consecutive-failure count at zero (an upstream that breaks a third of its
//!   streams mid-way never fails three times in a row). An ejection is soft: the balancer skips an ejected
//!   upstream only while another one can serve, and brings it back gradually ([`UpstreamState::traffic_share`]).
//!
//! Requests waiting for response headers from an upstream that fails its probe, or enters a cooldown for
//! connection failures, timeouts or 5xx, are told at once ([`UpstreamState::became_unavailable`]), so they can
//! move to another upstream instead of waiting for the first-byte timeout.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[derive(Debug, Default)]
pub struct UpstreamState {
    /// The upstream's id, for log lines.
    pub id: String,
    pub in_flight: AtomicU32,
    pub consecutive_failures: AtomicU32,
    /// Unix ms until which passive health keeps this upstream out of rotation (0 = not cooling).
    pub cooldown_until_ms: AtomicU64,
    /// Set by the active health checker; `true` until a probe says otherwise.
    pub probe_unhealthy: AtomicBool,
    /// Exponentially weighted moving average of time to response headers, in µs.
    pub latency_ewma_us: AtomicU64,
    /// The same average of time to the first token of an answer (streamed or not), in µs; 0 = none yet.
    pub ttft_ewma_us: AtomicU64,
    pub requests_total: AtomicU64,
    pub failures_total: AtomicU64,
    /// The most recent failure. Kept after a success, but [`UpstreamState::current_error`] shows it only while no
    /// success came after it: `/health` says what is true now, not what was true before a recovery.
    pub last_error: Mutex<Option<LastError>>,
    /// Unix ms of the last success (response headers from a real request, or a passing health check); 0 = none.
    pub last_success_ms: AtomicU64,
    /// Cooldown backoff level, raised by consecutive cooldowns and reset on success.
    pub backoff_level: AtomicU32,
    /// Woken when the upstream enters a cooldown or fails its probe: requests still waiting for its response
    /// headers re-check whether to move elsewhere (see `forward::forward`).
    pub became_unavailable: tokio::sync::Notify,
    /// Attempts and failures of the last minute, for outlier ejection.
    pub window: Mutex<OutlierWindow>,
    /// Unix ms until which outlier detection keeps this upstream out of rotation (0 = never ejected).
    pub ejected_until_ms: AtomicU64,
    /// Ejections in a row (the next one lasts longer); forgotten after [`EJECTION_MEMORY`] without one.
    pub ejections: AtomicU32,
    /// Demoted by an open trust flag (`trust.onSuspect: "demote"`): served only when no other upstream can be.
    /// Kept apart from the admin's priority override, and lifted when an admin clears the flag.
    pub demoted: AtomicBool,
    /// The error rate (percent) that caused the last ejection, for `/health` (the window starts empty after it).
    pub ejection_error_rate: AtomicU32,
}

/// A failure's text and when it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    pub text: String,
    /// Unix ms.
    pub at_ms: u64,
}

/// What one attempt against an upstream taught us about its health.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Success {
        latency: Duration,
    },
    /// A failure that says something about the upstream (connect error, 5xx, 529, rate limit, bad credentials).
    Failure {
        reason: String,
        retry_after: Option<Duration>,
        kind: FailureKind,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Connection refused, reset, DNS, TLS, timeout before headers.
    Connect,
    /// 529 overloaded: global, transient. Never a long lock.
    Overloaded,
    /// 429 that is a real rate limit of our upstream key.
    RateLimited,
    /// 5xx.
    ServerError,
    /// 401/403 about our upstream key.
    Credentials,
}

/// Consecutive failures that start a cooldown.
const FAILURE_THRESHOLD: u32 = 3;
const BASE_COOLDOWN: Duration = Duration::from_secs(5);
const MAX_COOLDOWN: Duration = Duration::from_secs(300);
const MAX_OVERLOAD_COOLDOWN: Duration = Duration::from_secs(30);

// Outlier detection. An upstream is ejected when, over the last `WINDOW`, at least `MIN_ATTEMPTS` attempts were
// made and at least `EJECT_PERCENT` of them failed by the upstream's own fault (connect errors, timeouts before
// headers, 5xx, streams broken mid-way); 429, 529 and 401/403 have their own cooldowns and do not count. 25% is
// low on purpose: the ejection is soft (the upstream still serves when nothing else can), and a stream broken
// mid-way costs the tenant a whole turn. It lasts `BASE_EJECTION` doubled for each ejection in a row (at most
// `MAX_EJECTION`); then the upstream's share of traffic ramps from `RAMP_START_PERCENT` to 100% over `RAMP`, and
// its window starts empty, so a still-broken upstream is ejected again after `MIN_ATTEMPTS` more attempts.

/// Width of one window bucket; the window is `BUCKETS` of them.
const BUCKET_MS: u64 = 10_000;
const BUCKETS: usize = 6;
pub const WINDOW: Duration = Duration::from_millis(BUCKET_MS * BUCKETS as u64);
pub const MIN_ATTEMPTS: u32 = 20;
pub const EJECT_PERCENT: u32 = 25;
pub const BASE_EJECTION: Duration = Duration::from_secs(30);
pub const MAX_EJECTION: Duration = Duration::from_secs(300);
pub const RAMP: Duration = Duration::from_secs(60);
pub const RAMP_START_PERCENT: u64 = 10;
/// Ejections further apart than this start again from `BASE_EJECTION`.
pub const EJECTION_MEMORY: Duration = Duration::from_secs(900);

/// Attempts and failures over the last [`WINDOW`], in time buckets. Counting attempts when they start (rather
/// than outcomes) counts a stream that broke mid-way once, as a failure, although its headers were a success.
#[derive(Debug, Default)]
pub struct OutlierWindow {
    /// (bucket number = unix ms / BUCKET_MS, attempts, failures)
    buckets: [(u64, u32, u32); BUCKETS],
}

impl OutlierWindow {
    fn bucket(&mut self, now_ms: u64) -> &mut (u64, u32, u32) {
        let n = now_ms / BUCKET_MS;
        let b = &mut self.buckets[(n % BUCKETS as u64) as usize];
        if b.0 != n {
            *b = (n, 0, 0);
        }
        b
    }

    /// (attempts, failures) over the window ending at `now_ms`.
    pub fn totals(&self, now_ms: u64) -> (u32, u32) {
        let n = now_ms / BUCKET_MS;
        self.buckets
            .iter()
            .filter(|b| b.0 + (BUCKETS as u64) > n && b.0 <= n)
            .fold((0, 0), |(a, f), b| (a + b.1, f + b.2))
    }

    fn clear(&mut self) {
        *self = OutlierWindow::default();
    }
}

impl UpstreamState {
    pub fn named(id: &str) -> UpstreamState {
        UpstreamState {
            id: id.to_string(),
            ..Default::default()
        }
    }

    /// Notes a failure's reason (shown until the next success).
    pub fn set_error(&self, text: String) {
        *self.last_error.lock() = Some(LastError {
            text,
            at_ms: now_ms(),
        });
    }

    /// The last failure, unless the upstream has succeeded since (or its endpoint changed since: see
    /// [`UpstreamState::start_afresh`]).
    pub fn current_error(&self) -> Option<LastError> {
        let success = self.last_success_ms.load(Ordering::Relaxed);
        self.last_error
            .lock()
            .clone()
            .filter(|e| e.at_ms >= success)
    }

    /// The upstream's URL or credentials changed: what was learnt about the old endpoint (errors, cooldowns,
    /// ejections, latency, a failed probe) says nothing about the new one. Totals and in-flight counts stay.
    pub fn start_afresh(&self) {
        *self.last_error.lock() = None;
        self.last_success_ms.store(0, Ordering::Relaxed);
        self.consecutive_failures.store(0, Ordering::Relaxed);
        self.backoff_level.store(0, Ordering::Relaxed);
        self.cooldown_until_ms.store(0, Ordering::Relaxed);
        self.probe_unhealthy.store(false, Ordering::Relaxed);
        self.latency_ewma_us.store(0, Ordering::Relaxed);
        self.window.lock().clear();
        self.ejected_until_ms.store(0, Ordering::Relaxed);
        self.ejections.store(0, Ordering::Relaxed);
        self.ejection_error_rate.store(0, Ordering::Relaxed);
    }

    pub fn is_cooling(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// Cooling down or failing its probe: what makes a request waiting for its headers move elsewhere.
    pub fn is_down(&self, now_ms: u64) -> bool {
        self.is_cooling(now_ms) || self.probe_unhealthy.load(Ordering::Relaxed)
    }

    pub fn is_ejected(&self, now_ms: u64) -> bool {
        self.ejected_until_ms.load(Ordering::Relaxed) > now_ms
    }

    /// The share of its normal traffic this upstream gets now, in percent: 0 while ejected, ramping up from
    /// [`RAMP_START_PERCENT`] to 100 over [`RAMP`] after an ejection, 100 otherwise.
    pub fn traffic_share(&self, now_ms: u64) -> u64 {
        let until = self.ejected_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return 100;
        }
        if now_ms < until {
            return 0;
        }
        let ramp = RAMP.as_millis() as u64;
        let since = now_ms - until;
        if since >= ramp {
            return 100;
        }
        RAMP_START_PERCENT + (100 - RAMP_START_PERCENT) * since / ramp
    }

    /// Error rate over the window, in percent, with the number of attempts it is based on.
    pub fn error_rate(&self, now_ms: u64) -> (u32, u32) {
        let (attempts, failures) = self.window.lock().totals(now_ms);
        let rate = (failures.min(attempts) * 100)
            .checked_div(attempts)
            .unwrap_or(0);
        (rate, attempts)
    }

    /// An attempt is about to be sent to this upstream.
    pub fn note_attempt(&self) {
        let now = now_ms();
        // While ejected, nothing is counted (the only attempts are those with nowhere else to go, and the
        // failures of streams begun before the ejection): the ramp afterwards judges the upstream afresh.
        if !self.is_ejected(now) {
            self.window.lock().bucket(now).1 += 1;
        }
    }

    /// Counts a failure in the window and ejects the upstream if its error rate crossed the threshold.
    fn note_window_failure(&self, now: u64) {
        let last_until = self.ejected_until_ms.load(Ordering::Relaxed);
        if last_until > now {
            return;
        }
        let (attempts, failures) = {
            let mut w = self.window.lock();
            w.bucket(now).2 += 1;
            w.totals(now)
        };
        if attempts < MIN_ATTEMPTS || failures.min(attempts) * 100 < attempts * EJECT_PERCENT {
            return;
        }
        let mut level = self.ejections.load(Ordering::Relaxed);
        if last_until != 0 && now.saturating_sub(last_until) > EJECTION_MEMORY.as_millis() as u64 {
            level = 0;
        }
        let d = (BASE_EJECTION * 2u32.pow(level.min(4))).min(MAX_EJECTION);
        // One ejection however many requests fail at once.
        if self
            .ejected_until_ms
            .compare_exchange(
                last_until,
                now + d.as_millis() as u64,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return;
        }
        self.ejections.store(level + 1, Ordering::Relaxed);
        let rate = failures.min(attempts) * 100 / attempts;
        self.ejection_error_rate.store(rate, Ordering::Relaxed);
        self.window.lock().clear();
        tracing::warn!(
            upstream = %self.id,
            attempts,
            failures,
            ejected_seconds = d.as_secs(),
            "upstream ejected: {rate}% of its attempts in the last minute failed"
        );
    }

    /// Sets a cooldown until `until`; with `wake`, the requests waiting on this upstream's headers are told.
    fn cool_until(&self, until: u64, wake: bool) {
        crate::telemetry::metrics::cooldown(&self.id);
        self.cooldown_until_ms.store(until, Ordering::Relaxed);
        if wake {
            self.became_unavailable.notify_waiters();
        }
    }

    /// Marks the probe result; wakes the waiting requests when the upstream turns unhealthy.
    pub fn set_probe_unhealthy(&self, unhealthy: bool) -> bool {
        let was = self.probe_unhealthy.swap(unhealthy, Ordering::Relaxed);
        if unhealthy && !was {
            self.became_unavailable.notify_waiters();
        }
        was
    }

    pub fn is_available(&self, now_ms: u64, max_concurrency: Option<u32>) -> bool {
        !self.is_cooling(now_ms)
            && !self.probe_unhealthy.load(Ordering::Relaxed)
            && max_concurrency.is_none_or(|m| self.in_flight.load(Ordering::Relaxed) < m)
    }

    /// A first token arrived `ttft` after the request was sent.
    pub fn record_ttft(&self, ttft: Duration) {
        ewma(&self.ttft_ewma_us, ttft.as_micros() as u64);
    }

    pub fn record(&self, outcome: &Outcome) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Success { latency } => {
                self.last_success_ms.store(now_ms(), Ordering::Relaxed);
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.backoff_level.store(0, Ordering::Relaxed);
                ewma(&self.latency_ewma_us, latency.as_micros() as u64);
            }
            Outcome::Failure {
                reason,
                retry_after,
                kind,
            } => {
                self.failures_total.fetch_add(1, Ordering::Relaxed);
                self.set_error(reason.clone());
                if matches!(kind, FailureKind::Connect | FailureKind::ServerError) {
                    self.note_window_failure(now_ms());
                }
                let n = self.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
                let cooldown = match kind {
                    // A single 529 is a global blip: no pause at all, whatever retry-after it carries (one 529
                    // must not take an upstream out for minutes); a short pause only after repeated ones.
                    FailureKind::Overloaded if n < FAILURE_THRESHOLD => None,
                    // Overload is global and transient: even repeated 529s pause an upstream for seconds, never
                    // minutes, whatever retry-after says.
                    FailureKind::Overloaded => Some(
                        retry_after
                            .unwrap_or(BASE_COOLDOWN)
                            .min(MAX_OVERLOAD_COOLDOWN),
                    ),
                    // The upstream told us how long: honour it exactly, whatever the failure count.
                    _ if retry_after.is_some() => retry_after.map(|d| d.min(MAX_COOLDOWN)),
                    FailureKind::Credentials => Some(Duration::from_secs(60)),
                    _ if n < FAILURE_THRESHOLD => None,
                    _ => {
                        let level = self.backoff_level.fetch_add(1, Ordering::Relaxed).min(6);
                        Some((BASE_COOLDOWN * 2u32.pow(level)).min(MAX_COOLDOWN))
                    }
                };
                if let Some(d) = cooldown {
                    // Only a cooldown for connection failures, timeouts or 5xx moves the requests still waiting
                    // on this upstream: 429, 529 and 401/403 are answered at once, so a request still waiting is
                    // being served (a non-streaming one may be minutes into its answer), and abandoning it would
                    // throw that work away.
                    let wake = matches!(kind, FailureKind::Connect | FailureKind::ServerError);
                    self.cool_until(now_ms() + d.as_millis() as u64, wake);
                }
            }
        }
        crate::alerts::upstream_outcome(self, outcome);
    }
}

/// Active health checks (when `loadBalancer.healthCheckEnabled`): each enabled upstream with
/// `healthCheck.enabled` is probed every `interval` with a cheap GET of `{url}{path}` (default `/v1/models`, under
/// the URL's path prefix) carrying the upstream key. A failing probe takes the upstream out of rotation; a passing
/// one brings it back. Never a paid call unless the operator configures one.
pub fn spawn_checker(gw: std::sync::Arc<crate::state::Gateway>) {
    tokio::spawn(async move {
        let mut next_due: std::collections::HashMap<String, tokio::time::Instant> =
            Default::default();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = gw.shutdown.cancelled() => return,
            }
            let rt = gw.rt();
            if !rt.config.load_balancer.health_check_enabled {
                for u in &rt.upstreams {
                    u.state.set_probe_unhealthy(false);
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            // Keyed by id and URL: an upstream whose URL a reload changed is probed at once, so `/health` soon
            // says whether the new endpoint works.
            let key =
                |u: &crate::state::UpstreamRt| format!("{}\u{1f}{}", u.config.id, u.config.url);
            next_due.retain(|k, _| rt.upstreams.iter().any(|u| key(u) == *k));
            for u in rt
                .upstreams
                .iter()
                .filter(|u| u.config.enabled && u.config.health_check.enabled)
            {
                let due = next_due.get(&key(u)).copied().unwrap_or(now);
                if due > now {
                    continue;
                }
                next_due.insert(key(u), now + u.config.health_check.interval);
                let u = u.clone();
                tokio::spawn(async move { probe(&u).await });
            }
        }
    });
}

async fn probe(u: &crate::state::UpstreamRt) {
    let hc = &u.config.health_check;
    let headers = u.request_headers(&http::HeaderMap::new());
    let result = match u.url_for(&hc.path, None) {
        Ok(url) => {
            let send = u
                .client
                .send(http::Method::GET, url, headers, bytes::Bytes::new());
            tokio::time::timeout(hc.timeout, send).await
        }
        Err(e) => {
            u.state.set_error(format!("health check: bad URL: {e}"));
            u.state.set_probe_unhealthy(true);
            return;
        }
    };
    let healthy = match &result {
        Ok(Ok(r)) => {
            let s = r.status().as_u16();
            // 404 means "no models endpoint" on some resellers: reachable and authenticated is what matters.
            (200..300).contains(&s) || s == 404 || s == 405
        }
        _ => false,
    };
    let reason = (!healthy).then(|| match result {
        Ok(Ok(r)) => format!("health check: HTTP {}", r.status().as_u16()),
        Ok(Err(e)) => format!("health check: {e}"),
        Err(_) => format!(
            "health check: no answer within {} ms",
            hc.timeout.as_millis()
        ),
    });
    // The reason is in place before the upstream shows as unhealthy: `/health` must never report one without
    // the other.
    match &reason {
        Some(reason) => u.state.set_error(reason.clone()),
        // A passing probe is a recovery: the error before it is history, not the upstream's state.
        None => u.state.last_success_ms.store(now_ms(), Ordering::Relaxed),
    }
    let was_unhealthy = u.state.set_probe_unhealthy(!healthy);
    crate::alerts::upstream_probe(&u.config.id, reason.as_deref());
    if healthy && was_unhealthy {
        tracing::info!(upstream = %u.config.id, "health check passed; upstream back in rotation");
        u.state.consecutive_failures.store(0, Ordering::Relaxed);
        u.state.cooldown_until_ms.store(0, Ordering::Relaxed);
    } else if let (Some(reason), false) = (&reason, was_unhealthy) {
        tracing::warn!(upstream = %u.config.id, %reason, "upstream failed its health check");
    }
}

/// Folds `sample` into the moving average in `avg` with alpha = 1/8: smooth enough to ignore one slow answer, quick
/// enough to follow a trend.
fn ewma(avg: &AtomicU64, sample: u64) {
    let old = avg.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    avg.store(new, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(kind: FailureKind, retry: Option<u64>) -> Outcome {
        Outcome::Failure {
            reason: "x".into(),
            retry_after: retry.map(Duration::from_secs),
            kind,
        }
    }

    #[test]
    fn one_529_does_not_cool_but_three_connect_errors_do() {
        let s = UpstreamState::default();
        s.record(&fail(FailureKind::Overloaded, None));
        assert!(!s.is_cooling(now_ms()));
        s.record(&fail(FailureKind::Connect, None));
        s.record(&fail(FailureKind::Connect, None));
        assert!(s.is_cooling(now_ms()));
        s.record(&Outcome::Success {
            latency: Duration::from_millis(5),
        });
        assert_eq!(s.consecutive_failures.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn one_529_with_a_long_retry_after_does_not_cool() {
        let s = UpstreamState::default();
        s.record(&fail(FailureKind::Overloaded, Some(120)));
        assert!(!s.is_cooling(now_ms()));
    }

    /// `attempts` streams whose headers arrive (a success), of which every `1/every`-th breaks mid-way.
    fn streams(s: &UpstreamState, attempts: u32, break_one_in: u32) {
        for n in 0..attempts {
            s.note_attempt();
            s.record(&Outcome::Success {
                latency: Duration::from_millis(5),
            });
            if n % break_one_in == break_one_in - 1 {
                s.record(&fail(FailureKind::ServerError, None));
            }
        }
    }

    #[test]
    fn a_third_of_streams_broken_ejects_although_successes_reset_the_failure_count() {
        let s = UpstreamState::default();
        streams(&s, 31, 3);
        assert_eq!(s.consecutive_failures.load(Ordering::Relaxed), 0);
        assert!(!s.is_cooling(now_ms()));
        assert!(s.is_ejected(now_ms()), "{:?}", s.error_rate(now_ms()));
        assert_eq!(s.traffic_share(now_ms()), 0);
        assert_eq!(s.ejection_error_rate.load(Ordering::Relaxed), 33);
        // The window starts empty after the ejection, and counts nothing while it lasts.
        assert_eq!(s.error_rate(now_ms()), (0, 0));
    }

    #[test]
    fn a_low_error_rate_or_a_small_sample_does_not_eject() {
        let s = UpstreamState::default();
        streams(&s, 200, 10);
        assert!(!s.is_ejected(now_ms()));
        assert_eq!(s.error_rate(now_ms()), (10, 200));
        // Below the minimum volume, even 100% failures are left to the cooldown logic.
        let s = UpstreamState::default();
        for _ in 0..MIN_ATTEMPTS - 1 {
            s.note_attempt();
            s.record(&fail(FailureKind::ServerError, None));
        }
        assert!(!s.is_ejected(now_ms()));
        // Rate limits and overload are not the upstream's fault and never eject.
        let s = UpstreamState::default();
        for _ in 0..50 {
            s.note_attempt();
            s.record(&fail(FailureKind::Overloaded, None));
        }
        assert!(!s.is_ejected(now_ms()));
    }

    #[test]
    fn an_ejected_upstream_ramps_back_and_repeat_ejections_last_longer() {
        let s = UpstreamState::default();
        streams(&s, 20, 2);
        let until = s.ejected_until_ms.load(Ordering::Relaxed);
        let first = until - now_ms();
        assert!(
            first <= BASE_EJECTION.as_millis() as u64 && first > 25_000,
            "{first}"
        );
        assert_eq!(s.traffic_share(until - 1), 0);
        assert_eq!(s.traffic_share(until), RAMP_START_PERCENT);
        let half = s.traffic_share(until + RAMP.as_millis() as u64 / 2);
        assert!((50..60).contains(&half), "{half}");
        assert_eq!(s.traffic_share(until + RAMP.as_millis() as u64), 100);
        // Pretend the ejection is over; failing again ejects for twice as long.
        s.ejected_until_ms.store(now_ms() - 1, Ordering::Relaxed);
        streams(&s, 20, 2);
        let second = s.ejected_until_ms.load(Ordering::Relaxed) - now_ms();
        assert!(second > 55_000 && second <= 60_000, "{second}");
    }

    #[tokio::test]
    async fn waiters_are_woken_when_the_upstream_goes_down() {
        let s = UpstreamState::default();
        {
            let woken = s.became_unavailable.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Cooldown after three connection failures.
            for _ in 0..3 {
                s.record(&fail(FailureKind::Connect, None));
            }
            tokio::time::timeout(Duration::from_secs(1), woken)
                .await
                .expect("woken by the cooldown");
        }
        let woken = s.became_unavailable.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        assert!(!s.set_probe_unhealthy(true));
        tokio::time::timeout(Duration::from_secs(1), woken)
            .await
            .expect("woken by the failed probe");
    }

    #[test]
    fn an_error_is_shown_until_the_next_success() {
        let s = UpstreamState::default();
        assert_eq!(s.current_error(), None);
        s.record(&fail(FailureKind::ServerError, None));
        assert_eq!(s.current_error().map(|e| e.text), Some("x".to_string()));
        // Successes within the same millisecond as the failure must still win once they come later.
        std::thread::sleep(Duration::from_millis(2));
        s.record(&Outcome::Success {
            latency: Duration::from_millis(5),
        });
        assert_eq!(s.current_error(), None);
        std::thread::sleep(Duration::from_millis(2));
        s.record(&fail(FailureKind::Connect, None));
        assert!(s.current_error().is_some());
    }

    #[test]
    fn a_new_endpoint_starts_afresh_but_keeps_the_totals() {
        let s = UpstreamState::default();
        for _ in 0..3 {
            s.record(&fail(FailureKind::Connect, None));
        }
        s.set_probe_unhealthy(true);
        assert!(s.is_cooling(now_ms()));
        s.start_afresh();
        assert_eq!(s.current_error(), None);
        assert!(s.is_available(now_ms(), None));
        assert_eq!(s.consecutive_failures.load(Ordering::Relaxed), 0);
        assert_eq!(s.failures_total.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn retry_after_is_honoured() {
        let s = UpstreamState::default();
        s.record(&fail(FailureKind::RateLimited, Some(7)));
        let until = s.cooldown_until_ms.load(Ordering::Relaxed);
        let d = until - now_ms();
        assert!((6_000..=7_000).contains(&d), "{d}");
    }
}
