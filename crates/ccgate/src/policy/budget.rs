//! Budgets and limits per tenant: `daily`/`weekly`/`monthly`/`total` USD budgets, `rpm`, `maxConcurrent`.
//!
//! Race-free by construction: admission and settlement take the tenant's own small lock (never a global
//! one), and a request is admitted only while `spent + reserved < max`, reserving its estimated cost. Concurrent
//! requests therefore see each other's reservations, and a burst can overshoot a budget by at most the
//! difference between one request's actual cost and its reservation: about one request.
//!
//! The estimate (see [`estimate_cost`]) prices the body at input rates and `max_tokens` at output rates: an
//! upper bound for almost every request, so reservations rarely under-reserve. It only governs how many requests
//! may be in flight near the end of a budget; the bill itself is always the metered cost.
//!
//! Windows follow `server.timezone`: a day starts at local midnight, a week on Monday, a month on the 1st.

use crate::config::Limits;
use crate::error::ApiError;
use chrono::{DateTime, Datelike, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
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
    pub const ALL: [Window; 4] = [Window::Daily, Window::Weekly, Window::Monthly, Window::Total];

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
            Window::Weekly => Some(day - ChronoDuration::days(day.weekday().num_days_from_monday() as i64)),
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
                let (y, m) = if day.month() == 12 { (day.year() + 1, 1) } else { (day.year(), day.month() + 1) };
                NaiveDate::from_ymd_opt(y, m, 1)
            }
            Window::Total => None,
        }
    }
}

pub fn local_day(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

/// Local midnight of `day` in `tz`, as RFC 3339 (the reset time shown to tenants).
pub fn midnight_rfc3339(tz: Tz, day: NaiveDate) -> String {
    let naive = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.to_rfc3339(),
        None => naive.and_utc().to_rfc3339(),
    }
}

#[derive(Debug, Default)]
struct Book {
    /// Spend per window, with the window's start day (`None` for total) it belongs to.
    spent: [(Option<NaiveDate>, i64); 4],
    reserved: i64,
}

#[derive(Debug, Default)]
pub struct TenantState {
    book: Mutex<Book>,
    pub in_flight: AtomicU32,
    rpm: Mutex<VecDeque<Instant>>,
}

impl TenantState {
    /// Sets the spend already recorded for a window (at startup, from the ledger).
    pub fn load_spent(&self, w: Window, window_start: Option<NaiveDate>, spent: i64) {
        self.book.lock().spent[w as usize] = (window_start, spent);
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
}

/// A tenant's admitted request. Settle it with the metered cost; dropping it unsettled releases the reservation
/// and the concurrency slot (a panic or an early return can never leak either).
pub struct Admission {
    state: Arc<TenantState>,
    reserved: i64,
    holds_slot: bool,
    tz: Tz,
}

impl Admission {
    pub fn settle(mut self, cost_nanousd: i64) {
        let today = local_day(self.tz, Utc::now());
        let mut book = self.state.book.lock();
        book.reserved -= self.reserved;
        for w in Window::ALL {
            let start = w.start(today);
            let slot = &mut book.spent[w as usize];
            if slot.0 != start {
                *slot = (start, 0);
            }
            slot.1 += cost_nanousd;
        }
        drop(book);
        self.reserved = 0;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.reserved != 0 {
            self.state.book.lock().reserved -= self.reserved;
        }
        if self.holds_slot {
            self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Upper-bound cost estimate of a request, in nano-USD: every body byte as up to one-third token at the input
/// rate (JSON and CJK text run at 1–4 bytes per token, so this is generous for prose and close for code), plus
/// `max_tokens` at the output rate. Cache reads would make the real input cheaper, never dearer.
pub fn estimate_cost(body_len: usize, max_tokens: u64, input_pico_per_token: u64, output_pico_per_token: u64) -> i64 {
    let input_tokens = (body_len as u128).div_ceil(3);
    let pico = input_tokens * input_pico_per_token as u128 + max_tokens as u128 * output_pico_per_token as u128;
    (pico / 1000).min(i64::MAX as u128) as i64
}

/// Admission: concurrency, then requests per minute, then budgets. `counts_toward_limits` is false for
/// `count_tokens`, which is free and must not eat a tenant's rate limit.
pub fn admit(
    state: &Arc<TenantState>,
    limits: &Limits,
    tz: Tz,
    estimate_nanousd: i64,
    counts_toward_limits: bool,
) -> Result<Admission, ApiError> {
    let mut adm = Admission { state: state.clone(), reserved: 0, holds_slot: false, tz };
    if !counts_toward_limits {
        return Ok(adm);
    }
    if let Some(max) = limits.max_concurrent {
        let prev = state.in_flight.fetch_add(1, Ordering::AcqRel);
        adm.holds_slot = true;
        if prev >= max {
            return Err(ApiError::RateLimited(
                format!("too many concurrent requests: this key allows {max} at a time; retry when one finishes"),
                1,
            ));
        }
    }
    if let Some(rpm) = limits.rpm {
        let now = Instant::now();
        let mut log = state.rpm.lock();
        while log.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60)) {
            log.pop_front();
        }
        if log.len() as u32 >= rpm {
            let wait = log.front().map(|t| 60u64.saturating_sub(now.duration_since(*t).as_secs())).unwrap_or(60).max(1);
            return Err(ApiError::RateLimited(
                format!("rate limit of {rpm} requests per minute reached for this key; retry in {wait} s"),
                wait,
            ));
        }
        log.push_back(now);
    }
    let today = local_day(tz, Utc::now());
    let mut book = state.book.lock();
    for w in Window::ALL {
        let Some(max) = w.max(limits) else { continue };
        let start = w.start(today);
        let slot = &mut book.spent[w as usize];
        if slot.0 != start {
            *slot = (start, 0);
        }
        let spent = slot.1;
        if spent + book.reserved >= max {
            let resets_at = match w.next_start(today) {
                Some(d) => midnight_rfc3339(tz, d),
                None => "never (total budget)".to_string(),
            };
            return Err(ApiError::BudgetExceeded {
                limit: w.name().to_string(),
                max_usd: usd(max),
                used_usd: usd(spent),
                resets_at,
            });
        }
    }
    book.reserved += estimate_nanousd;
    adm.reserved = estimate_nanousd;
    Ok(adm)
}

pub fn usd(nano: i64) -> String {
    format!("{:.2}", nano as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(daily: f64) -> Limits {
        Limits { daily_nanousd: Some((daily * 1e9) as i64), ..Default::default() }
    }

    #[test]
    fn burst_overshoots_by_at_most_one_request() {
        let st = Arc::new(TenantState::default());
        let l = limits(3.0);
        // 40 concurrent admissions of $1 requests: reservations stop the burst at the budget.
        let mut admitted = Vec::new();
        for _ in 0..40 {
            if let Ok(a) = admit(&st, &l, chrono_tz::UTC, 1_000_000_000, true) {
                admitted.push(a);
            }
        }
        assert_eq!(admitted.len(), 3);
        for a in admitted {
            a.settle(1_000_000_000);
        }
        assert!(admit(&st, &l, chrono_tz::UTC, 1, true).is_err());
        assert_eq!(st.reserved(), 0);
    }

    #[test]
    fn dropped_admission_releases_everything() {
        let st = Arc::new(TenantState::default());
        let l = Limits { max_concurrent: Some(1), daily_nanousd: Some(10), ..Default::default() };
        let a = admit(&st, &l, chrono_tz::UTC, 5, true).unwrap();
        assert!(matches!(admit(&st, &l, chrono_tz::UTC, 5, true), Err(ApiError::RateLimited(..))));
        drop(a);
        assert_eq!(st.reserved(), 0);
        assert_eq!(st.in_flight.load(Ordering::Relaxed), 0);
        assert!(admit(&st, &l, chrono_tz::UTC, 5, true).is_ok());
    }

    #[test]
    fn rpm_limit() {
        let st = Arc::new(TenantState::default());
        let l = Limits { rpm: Some(2), ..Default::default() };
        assert!(admit(&st, &l, chrono_tz::UTC, 0, true).is_ok());
        assert!(admit(&st, &l, chrono_tz::UTC, 0, true).is_ok());
        assert!(matches!(admit(&st, &l, chrono_tz::UTC, 0, true), Err(ApiError::RateLimited(_, s)) if s >= 1));
        assert!(admit(&st, &l, chrono_tz::UTC, 0, false).is_ok());
    }

    #[test]
    fn windows() {
        let d = NaiveDate::from_ymd_opt(2026, 11, 27).unwrap(); // a Friday
        assert_eq!(Window::Weekly.start(d), NaiveDate::from_ymd_opt(2026, 11, 23));
        assert_eq!(Window::Monthly.next_start(d), NaiveDate::from_ymd_opt(2026, 12, 1));
        assert_eq!(Window::Monthly.next_start(NaiveDate::from_ymd_opt(2026, 12, 5).unwrap()), NaiveDate::from_ymd_opt(2027, 1, 1));
        assert_eq!(midnight_rfc3339(chrono_tz::Asia::Shanghai, d), "2026-11-27T00:00:00+08:00");
    }
}
