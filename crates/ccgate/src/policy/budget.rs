//! Budgets and limits per tenant: `daily`/`weekly`/`monthly`/`total` USD budgets, `rpm`, `maxConcurrent`.
//!
//! Race-free by construction: admission and settlement take the tenant's own small lock (never a global
//! one), and a request is admitted only while `spent + reserved < max`, reserving its estimated cost. Concurrent
//! requests therefore see each other's reservations, and a burst can overshoot a budget by at most the
//! difference between one request's actual cost and its reservation: about one request.
//!
//! The reservation is the larger of two numbers (see [`estimate_cost`] and [`TenantState::observed_peak`]):
//! a worst case computed from the request itself (every body byte as one token at the dearest input rate, plus
//! `max_tokens` at the output rate; a token is at least one byte of text), and the recent peak of what this
//! tenant's requests actually cost. The first is an upper bound for any honest answer; the second catches
//! upstreams whose reported usage exceeds what the body suggests (cached system prompts, server-side tools).
//! With no history at all (a tenant's first request since start), one request runs alone until it settles
//! (waiting at most [`ADMISSION_WAIT`]), so a cold burst cannot race past a budget either.
//!
//! Windows follow `server.timezone`: a day starts at local midnight, a week on Monday, a month on the 1st.
//! `rolling` windows count back from now ([`super::rolling`]) under the same rule: admitted while
//! `spent + reserved < max`. `tpm` does the same with tokens: a request reserves its worst case (every body byte
//! as one token plus `max_tokens`) until it settles with the metered count.
//!
//! Admission and settlement take the time as an argument ([`try_admit`], [`Admission::settle_at`]), so the rolling
//! windows are tested with a controlled clock.

use super::rolling::Buckets;
use crate::config::{Limits, RollingLimit};
use crate::error::ApiError;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Daily,
    Weekly,
    Monthly,
    Total,
}

impl Window {
    pub const ALL: [Window; 4] = [
        Window::Daily,
        Window::Weekly,
        Window::Monthly,
        Window::Total,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Window::Daily => "daily",
            Window::Weekly => "weekly",
            Window::Monthly => "monthly",
            Window::Total => "total",
        }
    }

    pub fn max(self, l: &Limits) -> Option<i64> {
        match self {
            Window::Daily => l.daily_nanousd,
            Window::Weekly => l.weekly_nanousd,
            Window::Monthly => l.monthly_nanousd,
            Window::Total => l.total_nanousd,
        }
    }

    /// First local day of the window containing `day`.
    pub fn start(self, day: NaiveDate) -> Option<NaiveDate> {
        match self {
            Window::Daily => Some(day),
            Window::Weekly => {
                Some(day - ChronoDuration::days(day.weekday().num_days_from_monday() as i64))
            }
            Window::Monthly => day.with_day(1),
            Window::Total => None,
        }
    }

    /// First local day after the window containing `day`.
    pub fn next_start(self, day: NaiveDate) -> Option<NaiveDate> {
        match self {
            Window::Daily => day.succ_opt(),
            Window::Weekly => self.start(day).map(|d| d + ChronoDuration::days(7)),
            Window::Monthly => {
                let (y, m) = if day.month() == 12 {
                    (day.year() + 1, 1)
                } else {
                    (day.year(), day.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, 1)
            }
            Window::Total => None,
        }
    }
}

pub fn local_day(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// `day` as the ledger's `YYYY-MM-DD` key. Written digit by digit: it runs once per request, and `format!`
/// costs about as much as the rest of the settlement's bookkeeping.
pub fn day_key(day: NaiveDate) -> String {
    let (y, m, d) = (day.year(), day.month(), day.day());
    let Ok(y @ 0..=9999) = u32::try_from(y) else {
        return format!("{y:04}-{m:02}-{d:02}");
    };
    let digits = [
        y / 1000,
        y / 100 % 10,
        y / 10 % 10,
        y % 10,
        m / 10,
        m % 10,
        d / 10,
        d % 10,
    ];
    let mut key = String::with_capacity(10);
    for (i, digit) in digits.into_iter().enumerate() {
        if i == 4 || i == 6 {
            key.push('-');
        }
        key.push(char::from(b'0' + digit as u8));
    }
    key
}

/// Local midnight of `day` in `tz`, as RFC 3339 (the reset time shown to tenants).
pub fn midnight_rfc3339(tz: Tz, day: NaiveDate) -> String {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.to_rfc3339(),
        None => naive.and_utc().to_rfc3339(),
    }
}

/// How long a request waits for in-flight requests of its tenant to settle: the first request after start (no cost
/// history yet), or the requests holding the last of a budget. After that: admitted on its own estimate (cold
/// start) or refused with 429 and `retry-after` (budget still reserved).
pub const ADMISSION_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Book {
    /// Spend per window, with the window's start day (`None` for total) it belongs to.
    spent: [(Option<NaiveDate>, i64); 4],
    reserved: i64,
    /// Settled spend per minute, over the longest rolling window.
    rolling: Buckets,
    /// Metered tokens per second, over the last minute (`tpm`).
    tokens: Buckets,
    /// Worst-case tokens of the requests in flight.
    reserved_tokens: i64,
    /// Decaying peak of settled request costs (nano-USD).
    observed_peak: i64,
    /// At least one request has settled (or history was loaded), so `observed_peak` means something.
    has_history: bool,
    /// An admitted request that ran without history is still in flight.
    blind_in_flight: bool,
    /// What this instance holds of the tenant's shared limits (only with shared limits; see [`super::lease`]).
    lease: super::lease::Share,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            spent: Default::default(),
            reserved: 0,
            rolling: Buckets::per_minute(),
            tokens: Buckets::per_second(),
            reserved_tokens: 0,
            observed_peak: 0,
            has_history: false,
            blind_in_flight: false,
            lease: Default::default(),
        }
    }
}

/// Seconds in a rolling window of `hours`.
pub fn span_s(hours: u32) -> i64 {
    i64::from(hours) * 3600
}

/// Tokens counted by `tpm`: input (uncached and cache writes) plus output. Cache reads are left out, as in
/// Anthropic's own input-tokens-per-minute limits.
pub fn tpm_tokens(u: &ccgate_meter::Usage) -> i64 {
    let n = u
        .input_tokens
        .saturating_add(u.cache_creation_input_tokens)
        .saturating_add(u.output_tokens);
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[derive(Debug, Default)]
pub struct TenantState {
    book: Mutex<Book>,
    pub in_flight: AtomicU32,
    rpm: Mutex<VecDeque<Instant>>,
    settled: tokio::sync::Notify,
}

impl TenantState {
    /// Sets the spend already recorded for a window (at startup, from the ledger).
    pub fn load_spent(&self, w: Window, window_start: Option<NaiveDate>, spent: i64) {
        self.book.lock().spent[w as usize] = (window_start, spent);
    }

    /// Adds `spent` to a calendar window (a new `limits.models` entry's spend before a change of limits,
    /// `policy/history.rs`): added, since what settled after the change is counted already.
    pub fn add_spent(&self, w: Window, window_start: Option<NaiveDate>, spent: i64) {
        let mut book = self.book.lock();
        let slot = &mut book.spent[w as usize];
        if slot.0 != window_start {
            *slot = (window_start, 0);
        }
        slot.1 = slot.1.saturating_add(spent);
    }

    /// Rolling spend from the ledger, older than what this state kept (`policy/history.rs`): the minutes that left
    /// a window of `keep_s` seconds at `at` are dropped first, then the ledger's minutes merged in.
    pub fn fill_rolling(&self, at: DateTime<Utc>, keep_s: i64, older: &[(DateTime<Utc>, i64)]) {
        let mut book = self.book.lock();
        book.rolling.prune(at, keep_s);
        for &(when, cost) in older {
            book.rolling.merge(when, cost);
        }
    }

    /// Current spend per window, for reporting.
    pub fn spent(&self, w: Window, today: NaiveDate) -> i64 {
        let book = self.book.lock();
        let (start, v) = book.spent[w as usize];
        if start == w.start(today) {
            v
        } else {
            0
        }
    }

    pub fn reserved(&self) -> i64 {
        self.book.lock().reserved
    }

    /// Spend settled at `at` (at startup, from the ledger's recent rows), for the rolling windows.
    pub fn load_rolling(&self, at: DateTime<Utc>, cost: i64) {
        self.book.lock().rolling.add(at, cost);
    }

    /// Tokens metered at `at` (at startup, from the ledger's last minute), for `tpm`.
    pub fn load_tokens(&self, at: DateTime<Utc>, tokens: i64) {
        self.book.lock().tokens.add(at, tokens);
    }

    /// Spend in a rolling window at `now`, and when it next drops: the time the next request fits when the
    /// window is full, else when its oldest spend leaves (`None`: nothing spent in it).
    pub fn rolling_status(
        &self,
        r: &RollingLimit,
        now: DateTime<Utc>,
    ) -> (i64, Option<DateTime<Utc>>) {
        self.book
            .lock()
            .rolling
            .status(now, span_s(r.hours), r.max_nanousd)
    }

    /// Tokens metered in the last minute, and when that count next drops (`None`: none).
    pub fn tpm_status(&self, tpm: u64, now: DateTime<Utc>) -> (i64, Option<DateTime<Utc>>) {
        let max = i64::try_from(tpm).unwrap_or(i64::MAX);
        self.book.lock().tokens.status(now, 60, max)
    }

    /// Seeds the recent-cost peak from the ledger at startup.
    pub fn load_observed_peak(&self, peak: i64) {
        let mut b = self.book.lock();
        b.observed_peak = b.observed_peak.max(peak);
        b.has_history = true;
    }

    /// Requests counted in the rolling minute, and how long until the oldest of them leaves it.
    pub fn rpm_window(&self) -> (u32, Option<Duration>) {
        let now = Instant::now();
        let log = self.rpm.lock();
        let live: Vec<&Instant> = log
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(60))
            .collect();
        let next = live
            .first()
            .map(|t| Duration::from_secs(60).saturating_sub(now.duration_since(**t)));
        (live.len() as u32, next)
    }

    pub fn observed_peak(&self) -> i64 {
        self.book.lock().observed_peak
    }

    /// The shared ledger's spend per window ([`Window::ALL`] order), plus what this instance settled and has not
    /// stored yet: the last known budgets, should the database go away.
    pub fn refresh_spent(&self, today: NaiveDate, stored: [i64; 4]) {
        let mut book = self.book.lock();
        let pending = book.lease.pending;
        for w in Window::ALL {
            book.spent[w as usize] = (w.start(today), stored[w as usize].saturating_add(pending));
        }
    }

    pub fn lease_granted(&self, grant: super::lease::Grant) {
        self.book.lock().lease.granted(grant, Instant::now());
        self.settled.notify_waiters();
    }

    pub fn lease_committed(&self, cost: i64, tokens: i64) {
        self.book.lock().lease.committed(cost, tokens);
    }

    pub fn lease_restore(&self, back: &super::lease::Returned) {
        self.book.lock().lease.restore(back);
    }

    /// What this instance should give back of its share now (see [`super::lease::Share::trim`]).
    pub fn lease_trim(&self, now: Instant) -> super::lease::Returned {
        let mut book = self.book.lock();
        let (reserved, reserved_tokens) = (book.reserved, book.reserved_tokens);
        let in_flight = self.in_flight.load(Ordering::Acquire);
        book.lease.trim(reserved, reserved_tokens, in_flight, now)
    }
}

/// A tenant's admitted request. Settle it with the metered cost; dropping it unsettled releases the reservation
/// and the concurrency slot (a panic or an early return can never leak either).
pub struct Admission {
    state: Arc<TenantState>,
    reserved: i64,
    reserved_tokens: i64,
    /// The longest rolling window of the limits it was admitted under (how long spend history is kept).
    keep_s: i64,
    /// Counted toward the limits (not `count_tokens`): its tokens count for `tpm`.
    counts: bool,
    /// The rolling windows it was admitted under, for the alerts' before and after.
    rolling: Vec<RollingLimit>,
    holds_slot: bool,
    blind: bool,
    tz: Tz,
    /// Admitted under the tenant's shared limits: its cost is pending against this instance's lease until stored.
    pending_usd: bool,
    /// Admitted under a shared `tpm` (the tenant's or a model's): its tokens are pending against this instance's
    /// token lease until stored.
    pending_tokens: bool,
}

/// A window's spend before and after a settlement (what alerts look at for threshold crossings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpendChange {
    pub window: Window,
    /// The window's first day (`None`: total).
    pub start: Option<NaiveDate>,
    pub before: i64,
    pub after: i64,
}

/// A rolling window's spend before and after a settlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RollingChange {
    pub limit: RollingLimit,
    pub before: i64,
    pub after: i64,
}

/// What a settlement changed, for the 80 %/100 % alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub calendar: [SpendChange; 4],
    pub rolling: Vec<RollingChange>,
}

impl Admission {
    /// Adds the metered cost and tokens to every window; returns each window's spend before and after.
    pub fn settle(self, cost_nanousd: i64, tokens: i64) -> Settled {
        self.settle_at(cost_nanousd, tokens, Utc::now())
    }

    pub fn settle_at(mut self, cost_nanousd: i64, tokens: i64, now: DateTime<Utc>) -> Settled {
        let today = local_day(self.tz, now);
        let mut book = self.state.book.lock();
        book.reserved -= self.reserved;
        book.reserved_tokens -= self.reserved_tokens;
        self.reserved_tokens = 0;
        let rolling = std::mem::take(&mut self.rolling)
            .into_iter()
            .map(|limit| {
                let before = book.rolling.sum(now, span_s(limit.hours));
                RollingChange {
                    limit,
                    before,
                    after: before.saturating_add(cost_nanousd.max(0)),
                }
            })
            .collect();
        if self.keep_s > 0 {
            book.rolling.add(now, cost_nanousd.max(0));
            book.rolling.prune(now, self.keep_s);
        }
        if self.counts {
            book.tokens.add(now, tokens.max(0));
            book.tokens.prune(now, 60);
        }
        if self.pending_usd {
            // Spent here, not yet in the shared ledger: it stays counted against this instance's lease until the
            // batch that stores it commits (see `lease::SharedLimits::committed`).
            book.lease.pending = book.lease.pending.saturating_add(cost_nanousd.max(0));
        }
        if self.pending_tokens && self.counts {
            book.lease.pending_tokens = book.lease.pending_tokens.saturating_add(tokens.max(0));
        }
        let calendar = Window::ALL.map(|w| {
            let start = w.start(today);
            let slot = &mut book.spent[w as usize];
            if slot.0 != start {
                *slot = (start, 0);
            }
            let before = slot.1;
            slot.1 += cost_nanousd;
            SpendChange {
                window: w,
                start,
                before,
                after: slot.1,
            }
        });
        // A decaying peak: follows the dearest recent requests, forgets one outlier over a few dozen requests.
        book.observed_peak = cost_nanousd.max(book.observed_peak - book.observed_peak / 16);
        book.has_history = true;
        if self.blind {
            book.blind_in_flight = false;
            self.blind = false;
        }
        drop(book);
        self.reserved = 0;
        self.state.settled.notify_waiters();
        Settled { calendar, rolling }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.reserved != 0 || self.reserved_tokens != 0 || self.blind {
            let mut book = self.state.book.lock();
            book.reserved -= self.reserved;
            book.reserved_tokens -= self.reserved_tokens;
            if self.blind {
                book.blind_in_flight = false;
            }
            drop(book);
            self.state.settled.notify_waiters();
        }
        if self.holds_slot {
            self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Worst-case cost of a request, in nano-USD, from the request alone: every body byte as one token at the
/// dearest input rate (a text token is at least one byte; a cache write can cost up to 2× input), plus
/// `max_tokens` at the output rate.
pub fn estimate_cost(
    body_len: usize,
    max_tokens: u64,
    rates: &ccgate_meter::pricing::Rates,
) -> i64 {
    let input_rate = rates
        .input
        .max(rates.cache_write_5m)
        .max(rates.cache_write_1h) as u128;
    let pico = body_len as u128 * input_rate + max_tokens as u128 * rates.output as u128;
    (pico / 1000).min(i64::MAX as u128) as i64
}

/// Worst-case tokens of a request for `tpm`: every body byte as one token, plus `max_tokens`.
pub fn estimate_tokens(body_len: usize, max_tokens: u64) -> i64 {
    i64::try_from((body_len as u64).saturating_add(max_tokens)).unwrap_or(i64::MAX)
}

/// What a request asks of its tenant's limits.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ask {
    /// Worst-case cost ([`estimate_cost`]).
    pub nanousd: i64,
    /// Worst-case tokens ([`estimate_tokens`]).
    pub tokens: i64,
    /// False for `count_tokens`, which is free and must not eat a tenant's rate limit.
    pub counts: bool,
}

enum Refusal {
    Refused(ApiError),
    /// Wait for an in-flight request of this tenant to settle, then try again.
    Wait,
    /// This instance's share of the shared limits is too small: claim more, then try again.
    Claim(super::lease::Need),
}

/// How long a request waits between claims while the rest of a shared budget is held by requests in flight.
const SHARED_WAIT_STEP: Duration = Duration::from_millis(100);

/// Admission: concurrency, then budgets, then tokens and requests per minute. With `shared` (several instances on
/// PostgreSQL) each limit is also checked against what this instance holds of the tenant's global limits, and
/// more is claimed from the database when that is not enough ([`super::lease`]).
///
/// `models`: the request's `limits.models` entries with dollar windows. With shared limits each such request is
/// checked against the entries' global spend once (a claim), since a lease is carved from the tenant's room, not
/// the model's.
///
/// `model`: this admission is for that `limits.models` entry (`state` and `limits` are the entry's): its `rpm`,
/// `maxConcurrent` and `tpm` are leased under the entry's scope; its dollar windows are left to the tenant's
/// admission (through `models`).
pub async fn admit(
    state: &Arc<TenantState>,
    limits: &Limits,
    tz: Tz,
    ask: Ask,
    shared: Option<(&super::lease::SharedLimits, &str)>,
    models: &[super::lease::ModelScope<'_>],
    model: Option<&super::lease::ModelScope<'_>>,
) -> Result<Admission, ApiError> {
    let deadline = tokio::time::Instant::now() + ADMISSION_WAIT;
    let mut models_checked = models.is_empty();
    loop {
        let notified = state.settled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let may_wait = tokio::time::Instant::now() < deadline;
        let leased = shared.is_some_and(|(s, _)| s.enforcing());
        match try_admit(
            state,
            limits,
            tz,
            ask,
            may_wait,
            leased
                .then(|| {
                    shared.map(|(s, _)| Leased {
                        valid: s.lease_valid(),
                        usd: model.is_none(),
                        models: ModelDollars {
                            apply: !models.is_empty(),
                            check: !models_checked,
                        },
                    })
                })
                .flatten(),
            Utc::now(),
        ) {
            Ok(mut a) => {
                a.pending_usd = shared.is_some() && model.is_none();
                a.pending_tokens = shared.is_some() && limits.tpm.is_some();
                return Ok(a);
            }
            Err(Refusal::Refused(e)) => return Err(e),
            Err(Refusal::Wait) => {
                let _ = tokio::time::timeout_at(deadline, notified).await;
            }
            Err(Refusal::Claim(need)) => {
                let Some((shared, tenant_id)) = shared else {
                    continue;
                };
                match shared
                    .claim(tenant_id, state, limits, tz, need, models, model)
                    .await
                {
                    super::lease::Claimed::Granted | super::lease::Claimed::Unavailable => {
                        models_checked |= need.check_models;
                    }
                    super::lease::Claimed::Refused(e) => return Err(e),
                    super::lease::Claimed::HeldInFlight(rest) => {
                        if !may_wait {
                            return Err(ApiError::RateLimited(
                                format!(
                                    "the rest of the {rest} is reserved by requests in flight on this or another \
                                     gateway instance; retry when they finish"
                                ),
                                5,
                            ));
                        }
                        let step = tokio::time::Instant::now() + SHARED_WAIT_STEP;
                        let _ = tokio::time::timeout_at(step.min(deadline), notified).await;
                    }
                }
            }
        }
    }
}

/// Whether a request falls under `limits.models` dollar windows (`apply`), and whether they are still to be
/// checked against every instance's spend (`check`, once per request). Only with shared limits.
#[derive(Debug, Clone, Copy, Default)]
struct ModelDollars {
    apply: bool,
    check: bool,
}

/// Admission under shared limits: whether this instance's lease is still valid (renewed in time), whether the
/// dollar budgets are leased (the tenant's admission; not a model entry's), and the request's per-model dollar
/// windows.
#[derive(Debug, Clone, Copy)]
struct Leased {
    valid: bool,
    usd: bool,
    models: ModelDollars,
}

/// `leased`: `None` when only this instance's own limits apply (one instance, or the shared store is
/// unreachable).
fn try_admit(
    state: &Arc<TenantState>,
    limits: &Limits,
    tz: Tz,
    ask: Ask,
    may_wait: bool,
    leased: Option<Leased>,
    now_utc: DateTime<Utc>,
) -> Result<Admission, Refusal> {
    let lease = leased.map(|l| l.valid);
    let lease_usd = leased.is_some_and(|l| l.usd);
    let models = leased.map(|l| l.models).unwrap_or_default();
    let mut adm = Admission {
        state: state.clone(),
        reserved: 0,
        reserved_tokens: 0,
        keep_s: limits
            .rolling
            .iter()
            .map(|r| span_s(r.hours))
            .max()
            .unwrap_or(0),
        counts: ask.counts,
        rolling: limits.rolling.clone(),
        holds_slot: false,
        blind: false,
        tz,
        pending_usd: false,
        pending_tokens: false,
    };
    if !ask.counts {
        return Ok(adm);
    }
    let mut need = super::lease::Need::default();
    let mut book = state.book.lock();
    if let Some(valid) = lease {
        if !valid {
            // A lease that was not renewed in time may already count for nothing elsewhere.
            book.lease.forget();
        }
    }
    if let Some(max) = limits.max_concurrent {
        let prev = state.in_flight.fetch_add(1, Ordering::AcqRel);
        adm.holds_slot = true;
        if prev >= max {
            return Err(Refusal::Refused(ApiError::RateLimited(
                format!("too many concurrent requests: this key allows {max} at a time; retry when one finishes"),
                1,
            )));
        }
        if lease.is_some() && prev + 1 > book.lease.slots {
            need.slots = prev + 1 - book.lease.slots;
        }
    }
    // A request under a model's dollar limit reserves against the tenant too: on shared limits its reservation
    // must sit in the lease that other instances see.
    let dollars = models.apply && lease.is_some();
    let reserve = budget_reservation(
        &mut book,
        limits,
        tz,
        ask.nanousd,
        may_wait,
        now_utc,
        dollars,
    )?;
    let reserve_tokens = tokens_reservation(&book, limits, ask.tokens, may_wait, now_utc)?;
    if let (Some(_), Some(t)) = (lease, reserve_tokens) {
        let used = book
            .reserved_tokens
            .saturating_add(book.lease.pending_tokens)
            .saturating_add(t);
        if used > book.lease.tokens {
            need.tokens = used - book.lease.tokens;
            need.unit_tokens = t;
        }
    }
    if let (true, Some(r)) = (lease_usd, reserve) {
        let used = book
            .reserved
            .saturating_add(book.lease.pending)
            .saturating_add(r);
        if used > book.lease.usd {
            need.usd = used - book.lease.usd;
            need.unit_usd = r;
        }
        if models.check {
            need.check_models = true;
            need.held = book.reserved.saturating_add(book.lease.pending);
        }
    }
    let now = Instant::now();
    if let Some(rpm) = limits.rpm {
        let mut log = state.rpm.lock();
        while log
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            log.pop_front();
        }
        if log.len() as u32 >= rpm {
            let wait = log
                .front()
                .map(|t| 60u64.saturating_sub(now.duration_since(*t).as_secs()))
                .unwrap_or(60)
                .max(1);
            return Err(Refusal::Refused(ApiError::RateLimited(
                format!("rate limit of {rpm} requests per minute reached for this key; retry in {wait} s"),
                wait,
            )));
        }
        if lease.is_some() && book.lease.tickets_left(now) == 0 {
            need.tickets = 1;
            need.rpm = rpm;
        }
        if need.is_empty() {
            log.push_back(now);
        }
    }
    if !need.is_empty() {
        return Err(Refusal::Claim(need));
    }
    if lease.is_some() && limits.rpm.is_some() {
        book.lease.take_ticket(now);
    }
    if let Some(r) = reserve {
        if !book.has_history {
            book.blind_in_flight = true;
            adm.blind = true;
        }
        book.reserved += r;
        adm.reserved = r;
    }
    if let Some(t) = reserve_tokens {
        book.reserved_tokens = book.reserved_tokens.saturating_add(t);
        adm.reserved_tokens = t;
    }
    Ok(adm)
}

/// The `tpm` check: `Ok(Some(reservation))` when the request may go, `Ok(None)` without a `tpm` limit.
fn tokens_reservation(
    book: &Book,
    limits: &Limits,
    estimate: i64,
    may_wait: bool,
    now: DateTime<Utc>,
) -> Result<Option<i64>, Refusal> {
    let Some(tpm) = limits.tpm else {
        return Ok(None);
    };
    let max = i64::try_from(tpm).unwrap_or(i64::MAX);
    let used = book.tokens.sum(now, 60);
    if used >= max {
        let at = book.tokens.below_at(now, 60, max);
        return Err(Refusal::Refused(tpm_exhausted(max, used, at, now)));
    }
    if used.saturating_add(book.reserved_tokens) >= max {
        if may_wait {
            return Err(Refusal::Wait);
        }
        return Err(Refusal::Refused(ApiError::RateLimited(
            format!(
                "the rest of the tokens per minute limit ({} of {tpm}) is reserved by requests in flight; \
                 retry when they finish",
                max - used
            ),
            5,
        )));
    }
    Ok(Some(estimate.max(0)))
}

/// The refusal of a request whose `tpm` is used up (`used` tokens in the last minute); the next request fits at
/// `at`.
pub fn tpm_exhausted(tpm: i64, used: i64, at: DateTime<Utc>, now: DateTime<Utc>) -> ApiError {
    let wait = (at - now).num_seconds().max(1) as u64;
    ApiError::RateLimited(
        format!(
            "tokens per minute limit of {tpm} reached ({used} used); next request fits at {}",
            fits_at(at, now)
        ),
        wait,
    )
}

/// A time a refused request may be retried at, as tenants read it: `14:05 UTC`, with the date if not today.
pub fn fits_at(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let time = if at.second() == 0 {
        "%H:%M UTC"
    } else {
        "%H:%M:%S UTC"
    };
    if at.date_naive() == now.date_naive() {
        at.format(time).to_string()
    } else {
        at.format(&format!("%Y-%m-%d {time}")).to_string()
    }
}

/// The budget check: `Ok(Some(reservation))` when the request may go (nothing is reserved yet), `Ok(None)` when the
/// tenant has no budget.
fn budget_reservation(
    book: &mut Book,
    limits: &Limits,
    tz: Tz,
    estimate_nanousd: i64,
    may_wait: bool,
    now: DateTime<Utc>,
    per_model_dollars: bool,
) -> Result<Option<i64>, Refusal> {
    if Window::ALL.iter().all(|w| w.max(limits).is_none())
        && limits.rolling.is_empty()
        && !per_model_dollars
    {
        return Ok(None);
    }
    let today = local_day(tz, now);
    for w in Window::ALL {
        let Some(max) = w.max(limits) else { continue };
        let start = w.start(today);
        let slot = &mut book.spent[w as usize];
        if slot.0 != start {
            *slot = (start, 0);
        }
        let spent = slot.1;
        if spent < max && spent + book.reserved >= max {
            // Not exhausted: the rest is reserved by requests in flight. Wait for them to settle (they may leave
            // room, or use it up), rather than tell the tenant a budget is gone that is not.
            if may_wait {
                return Err(Refusal::Wait);
            }
            return Err(Refusal::Refused(ApiError::RateLimited(
                format!(
                    "the rest of the {} budget (${} of ${}) is reserved by requests in flight; retry when they finish",
                    w.name(),
                    usd(max - spent),
                    usd(max)
                ),
                5,
            )));
        }
        if spent >= max {
            return Err(Refusal::Refused(exhausted(w, max, spent, today, tz)));
        }
    }
    for r in &limits.rolling {
        let (max, span) = (r.max_nanousd, span_s(r.hours));
        let spent = book.rolling.sum(now, span);
        if spent >= max {
            let at = book.rolling.below_at(now, span, max);
            return Err(Refusal::Refused(rolling_exhausted(r, spent, at, now)));
        }
        if spent.saturating_add(book.reserved) >= max {
            if may_wait {
                return Err(Refusal::Wait);
            }
            return Err(Refusal::Refused(ApiError::RateLimited(
                format!(
                    "the rest of the rolling {}h budget (${} of ${}) is reserved by requests in flight; retry when \
                     they finish",
                    r.hours,
                    usd(max - spent),
                    usd(max)
                ),
                5,
            )));
        }
    }
    if !book.has_history && book.blind_in_flight && may_wait {
        return Err(Refusal::Wait);
    }
    Ok(Some(estimate_nanousd.max(book.observed_peak)))
}

/// The refusal of a request whose budget window `w` is spent.
pub fn exhausted(w: Window, max: i64, spent: i64, today: NaiveDate, tz: Tz) -> ApiError {
    let resets_at = match w.next_start(today) {
        Some(d) => midnight_rfc3339(tz, d),
        None => "never (total budget)".to_string(),
    };
    ApiError::BudgetExceeded {
        limit: w.name().to_string(),
        max_usd: usd(max),
        used_usd: usd(spent),
        resets_at,
    }
}

/// A refusal by a `limits.models` entry says which models it is about.
pub fn for_model(e: ApiError, pattern: &str) -> ApiError {
    match e {
        ApiError::RateLimited(m, s) => ApiError::RateLimited(format!("models {pattern:?}: {m}"), s),
        ApiError::BudgetExceeded {
            limit,
            max_usd,
            used_usd,
            resets_at,
        } => ApiError::BudgetExceeded {
            limit: format!("{limit} (models {pattern:?})"),
            max_usd,
            used_usd,
            resets_at,
        },
        other => other,
    }
}

/// The refusal of a request whose rolling window `r` holds `spent`; the next request fits at `at`.
pub fn rolling_exhausted(
    r: &RollingLimit,
    spent: i64,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> ApiError {
    let wait = (at - now).num_seconds().max(1) as u64;
    ApiError::RateLimited(
        format!(
            "rolling {}h limit ${} reached (${} used); next request fits at {}",
            r.hours,
            usd(r.max_nanousd),
            usd(spent),
            fits_at(at, now)
        ),
        wait,
    )
}

pub fn usd(nano: i64) -> String {
    format!("{:.2}", nano as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(daily: f64) -> Limits {
        Limits {
            daily_nanousd: Some((daily * 1e9) as i64),
            ..Default::default()
        }
    }

    fn ask(nanousd: i64) -> Ask {
        Ask {
            nanousd,
            tokens: 0,
            counts: true,
        }
    }

    fn admit_now(st: &Arc<TenantState>, l: &Limits, est: i64) -> Result<Admission, ApiError> {
        match try_admit(st, l, chrono_tz::UTC, ask(est), false, None, Utc::now()) {
            Ok(a) => Ok(a),
            Err(Refusal::Refused(e)) => Err(e),
            Err(Refusal::Wait) => panic!("no wait without may_wait"),
            Err(Refusal::Claim(_)) => panic!("no claim without shared limits"),
        }
    }

    #[test]
    fn burst_overshoots_by_at_most_one_request() {
        let st = Arc::new(TenantState::default());
        st.load_observed_peak(0);
        let l = limits(3.0);
        // 40 concurrent admissions of $1 requests: reservations stop the burst at the budget.
        let mut admitted = Vec::new();
        for _ in 0..40 {
            if let Ok(a) = admit_now(&st, &l, 1_000_000_000) {
                admitted.push(a);
            }
        }
        assert_eq!(admitted.len(), 3);
        for a in admitted {
            a.settle(1_000_000_000, 0);
        }
        assert!(admit_now(&st, &l, 1).is_err());
        assert_eq!(st.reserved(), 0);
    }

    #[test]
    fn observed_peak_covers_underestimated_requests() {
        let st = Arc::new(TenantState::default());
        let l = limits(3.0);
        // First request: no history, runs blind; it turns out to cost $1 although estimated at ~0.
        let a = admit_now(&st, &l, 10).unwrap();
        a.settle(1_000_000_000, 0);
        let admitted: Vec<_> = (0..40)
            .filter_map(|_| admit_now(&st, &l, 10).ok())
            .collect();
        assert_eq!(admitted.len(), 2, "the peak of $1 is reserved per request");
    }

    #[tokio::test]
    async fn cold_start_runs_one_request_alone() {
        let st = Arc::new(TenantState::default());
        let l = limits(3.0);
        let first = admit(&st, &l, chrono_tz::UTC, ask(10), None, &[], None)
            .await
            .unwrap();
        let st2 = st.clone();
        let l2 = l.clone();
        let waiter = tokio::spawn(async move {
            admit(&st2, &l2, chrono_tz::UTC, ask(10), None, &[], None)
                .await
                .map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !waiter.is_finished(),
            "second request waits for the first to settle"
        );
        first.settle(1_000_000_000, 0);
        assert!(waiter.await.unwrap().is_ok());
    }

    #[tokio::test]
    async fn reserved_remainder_waits_then_admits_or_refuses() {
        let st = Arc::new(TenantState::default());
        st.load_observed_peak(0);
        let l = limits(3.0);
        let held = admit(&st, &l, chrono_tz::UTC, ask(3_000_000_000), None, &[], None)
            .await
            .unwrap();
        // The whole budget is reserved, not spent: a second request waits instead of getting a false 402.
        let (st2, l2) = (st.clone(), l.clone());
        let waiter = tokio::spawn(async move {
            admit(&st2, &l2, chrono_tz::UTC, ask(1), None, &[], None)
                .await
                .map(|a| a.settle(0, 0))
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished());
        held.settle(1_000_000_000, 0); // cheaper than reserved: room is left
        assert!(waiter.await.unwrap().is_ok());
        // Now spend it all while another request waits: that one gets the real 402.
        let held = admit(&st, &l, chrono_tz::UTC, ask(3_000_000_000), None, &[], None)
            .await
            .unwrap();
        let (st2, l2) = (st.clone(), l.clone());
        let waiter = tokio::spawn(async move {
            admit(&st2, &l2, chrono_tz::UTC, ask(1), None, &[], None)
                .await
                .map(|_| ())
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        held.settle(2_000_000_000, 0);
        assert!(matches!(
            waiter.await.unwrap(),
            Err(ApiError::BudgetExceeded { .. })
        ));
    }

    #[test]
    fn dropped_admission_releases_everything() {
        let st = Arc::new(TenantState::default());
        let l = Limits {
            max_concurrent: Some(1),
            daily_nanousd: Some(10),
            ..Default::default()
        };
        let a = admit_now(&st, &l, 5).unwrap();
        assert!(matches!(
            admit_now(&st, &l, 5),
            Err(ApiError::RateLimited(..))
        ));
        drop(a);
        assert_eq!(st.reserved(), 0);
        assert_eq!(st.in_flight.load(Ordering::Relaxed), 0);
        assert!(admit_now(&st, &l, 5).is_ok());
    }

    #[test]
    fn rpm_limit() {
        let st = Arc::new(TenantState::default());
        let l = Limits {
            rpm: Some(2),
            ..Default::default()
        };
        assert!(admit_now(&st, &l, 0).is_ok());
        assert!(admit_now(&st, &l, 0).is_ok());
        assert!(matches!(admit_now(&st, &l, 0), Err(ApiError::RateLimited(_, s)) if s >= 1));
        assert!(try_admit(
            &st,
            &l,
            chrono_tz::UTC,
            Ask::default(),
            false,
            None,
            Utc::now(),
        )
        .is_ok());
    }

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, s).unwrap()
    }

    fn admit_at(
        st: &Arc<TenantState>,
        l: &Limits,
        ask: Ask,
        now: DateTime<Utc>,
    ) -> Result<Admission, ApiError> {
        match try_admit(st, l, chrono_tz::UTC, ask, false, None, now) {
            Ok(a) => Ok(a),
            Err(Refusal::Refused(e)) => Err(e),
            Err(_) => panic!("neither wait nor claim here"),
        }
    }

    fn rolling(hours: u32, usd: f64) -> Limits {
        Limits {
            rolling: vec![RollingLimit {
                hours,
                max_nanousd: (usd * 1e9) as i64,
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_rolling_window_refuses_until_old_spend_leaves_it() {
        let st = Arc::new(TenantState::default());
        st.load_observed_peak(0);
        let l = rolling(5, 3.0);
        admit_at(&st, &l, ask(1), at(9, 0, 30))
            .unwrap()
            .settle_at(3_020_000_000, 0, at(9, 0, 30));
        let refused = admit_at(&st, &l, ask(1), at(13, 0, 0)).err().unwrap();
        match refused {
            ApiError::RateLimited(msg, wait) => {
                assert_eq!(
                    msg,
                    "rolling 5h limit $3.00 reached ($3.02 used); next request fits at 14:01 UTC"
                );
                assert_eq!(wait, 3660);
            }
            other => panic!("{other:?}"),
        }
        assert!(admit_at(&st, &l, ask(1), at(14, 0, 59)).is_err());
        assert!(admit_at(&st, &l, ask(1), at(14, 1, 0)).is_ok());
        let (spent, resets) = st.rolling_status(&l.rolling[0], at(13, 0, 0));
        assert_eq!((spent, resets), (3_020_000_000, Some(at(14, 1, 0))));
    }

    #[test]
    fn a_rolling_burst_overshoots_by_at_most_one_request() {
        let st = Arc::new(TenantState::default());
        st.load_observed_peak(0);
        let l = rolling(5, 3.0);
        let now = at(10, 0, 0);
        let admitted: Vec<_> = (0..40)
            .filter_map(|_| admit_at(&st, &l, ask(1_000_000_000), now).ok())
            .collect();
        assert_eq!(admitted.len(), 3);
        for a in admitted {
            a.settle_at(1_000_000_000, 0, now);
        }
        assert!(admit_at(&st, &l, ask(1), now).is_err());
        // The calendar windows are untouched by a rolling-only tenant.
        assert_eq!(st.spent(Window::Daily, now.date_naive()), 3_000_000_000);
    }

    #[test]
    fn tokens_per_minute_count_metered_tokens_and_reserve_the_worst_case() {
        let st = Arc::new(TenantState::default());
        let l = Limits {
            tpm: Some(1000),
            ..Default::default()
        };
        let tokens = |t| Ask {
            nanousd: 0,
            tokens: t,
            counts: true,
        };
        // A burst: each request reserves 400 tokens, admitted while used + reserved < 1000.
        let now = at(10, 0, 0);
        let burst: Vec<_> = (0..10)
            .filter_map(|_| admit_at(&st, &l, tokens(400), now).ok())
            .collect();
        assert_eq!(burst.len(), 3);
        let mut it = burst.into_iter();
        it.next().unwrap().settle_at(0, 1100, now);
        // Metered: 1100 tokens at 10:00:00 fill the minute; they leave it at 10:01:01.
        drop(it);
        let e = admit_at(&st, &l, tokens(1), at(10, 0, 30)).err().unwrap();
        assert!(
            matches!(&e, ApiError::RateLimited(m, 31) if m == "tokens per minute limit of 1000 reached (1100 used); next request fits at 10:01:01 UTC"),
            "{e:?}"
        );
        assert!(admit_at(&st, &l, tokens(1), at(10, 1, 1)).is_ok());
        // count_tokens neither counts nor is refused.
        let free = Ask {
            counts: false,
            ..tokens(5000)
        };
        admit_at(&st, &l, free, at(10, 1, 2))
            .unwrap()
            .settle_at(0, 5000, at(10, 1, 2));
        assert_eq!(st.tpm_status(1000, at(10, 1, 3)).0, 0);
    }

    #[test]
    fn windows() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(); // a Friday
        assert_eq!(
            Window::Weekly.start(d),
            NaiveDate::from_ymd_opt(2026, 11, 23)
        );
        assert_eq!(
            Window::Monthly.next_start(d),
            NaiveDate::from_ymd_opt(2026, 12, 1)
        );
        assert_eq!(
            Window::Monthly.next_start(NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()),
            NaiveDate::from_ymd_opt(2027, 1, 1)
        );
        assert_eq!(
            midnight_rfc3339(chrono_tz::Asia::Shanghai, d),
            "2026-11-27T00:00:00+08:00"
        );
    }

    #[test]
    fn day_keys_are_zero_padded_iso_dates() {
        let mut day = NaiveDate::from_ymd_opt(1999, 12, 25).unwrap();
        for _ in 0..800 {
            assert_eq!(day_key(day), day.format("%Y-%m-%d").to_string());
            day = day.succ_opt().unwrap();
        }
        for (y, m, d) in [
            (5, 1, 9),
            (987, 10, 1),
            (9999, 12, 31),
            (10000, 1, 1),
            (-3, 2, 1),
        ] {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(day_key(day), format!("{:04}-{:02}-{:02}", y, m, d));
        }
    }
}
