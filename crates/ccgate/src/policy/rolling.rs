//! Amounts counted back from now: the spend of `limits.rolling` windows (per-minute buckets) and the tokens of
//! `limits.tpm` (per-second buckets).
//!
//! An amount is put in the bucket of the time it settled. A bucket counts in a window as long as any part of it
//! lies inside (`bucket end > now - span`), so a window counts at most one bucket width more than its exact span,
//! never less: a limit is never under-counted. The bucket leaves the window at `bucket end + span`, which is the
//! time a refusal names as "next request fits at". Only buckets with an amount are kept, and none older than the
//! longest window, so the memory per tenant is bounded by the longest window in buckets (720 h: 43 200 minutes)
//! and in practice by the number of busy minutes.

use chrono::{DateTime, TimeZone, Utc};
use std::collections::VecDeque;

#[derive(Debug, Clone)]
pub struct Buckets {
    /// Bucket width in seconds.
    width: i64,
    /// (bucket index = unix seconds / width, amount), oldest first.
    q: VecDeque<(i64, i64)>,
}

impl Buckets {
    /// One bucket per minute: the rolling USD windows.
    pub fn per_minute() -> Buckets {
        Buckets {
            width: 60,
            q: VecDeque::new(),
        }
    }

    /// One bucket per second: tokens per minute.
    pub fn per_second() -> Buckets {
        Buckets {
            width: 1,
            q: VecDeque::new(),
        }
    }

    fn index(&self, at: DateTime<Utc>) -> i64 {
        at.timestamp().div_euclid(self.width)
    }

    /// Adds `amount` at `at`. An amount settled out of order (an older time than the newest bucket) joins the
    /// newest bucket: it can only count longer, never shorter.
    pub fn add(&mut self, at: DateTime<Utc>, amount: i64) {
        if amount == 0 {
            return;
        }
        let i = self.index(at);
        match self.q.back_mut() {
            Some((last, v)) if *last >= i => *v = v.saturating_add(amount),
            _ => self.q.push_back((i, amount)),
        }
    }

    /// Whether bucket `i` still counts in a window of `span_s` seconds at `now`.
    fn inside(&self, i: i64, now: DateTime<Utc>, span_s: i64) -> bool {
        (i + 1) * self.width > now.timestamp() - span_s
    }

    /// The amount in the window of `span_s` seconds ending at `now`.
    pub fn sum(&self, now: DateTime<Utc>, span_s: i64) -> i64 {
        self.q
            .iter()
            .rev()
            .take_while(|(i, _)| self.inside(*i, now, span_s))
            .fold(0i64, |acc, (_, v)| acc.saturating_add(*v))
    }

    /// Forgets the buckets that left a window of `keep_s` seconds (the longest window in use).
    pub fn prune(&mut self, now: DateTime<Utc>, keep_s: i64) {
        while let Some(&(i, _)) = self.q.front() {
            if self.inside(i, now, keep_s) {
                break;
            }
            self.q.pop_front();
        }
    }

    /// When the amount in the window of `span_s` seconds first drops below `below` (`now` if it already is):
    /// old buckets leave one by one, nothing new is assumed to arrive.
    pub fn below_at(&self, now: DateTime<Utc>, span_s: i64, below: i64) -> DateTime<Utc> {
        let mut sum = self.sum(now, span_s);
        let mut at = now;
        for &(i, v) in self.q.iter().filter(|(i, _)| self.inside(*i, now, span_s)) {
            if sum < below {
                break;
            }
            sum = sum.saturating_sub(v);
            at = Utc
                .timestamp_opt((i + 1) * self.width + span_s, 0)
                .single()
                .unwrap_or(now);
        }
        at
    }

    /// Adds `amount` in the bucket of `at`, wherever it lies (history read from the ledger after a change of
    /// limits: older than what is kept, so it goes in order, not into the newest bucket as [`Buckets::add`] does).
    pub fn merge(&mut self, at: DateTime<Utc>, amount: i64) {
        if amount == 0 {
            return;
        }
        let i = self.index(at);
        match self.q.binary_search_by_key(&i, |(j, _)| *j) {
            Ok(k) => self.q[k].1 = self.q[k].1.saturating_add(amount),
            Err(k) => self.q.insert(k, (i, amount)),
        }
    }

    /// The amount in the window of `span_s` seconds at `now`, and when it next drops: the time an amount below `max`
    /// is reached again when the window is full, else when its oldest amount leaves (`None`: nothing in it).
    pub fn status(
        &self,
        now: DateTime<Utc>,
        span_s: i64,
        max: i64,
    ) -> (i64, Option<DateTime<Utc>>) {
        let used = self.sum(now, span_s);
        if used == 0 {
            return (0, None);
        }
        (used, Some(self.below_at(now, span_s, used.min(max))))
    }

    pub fn is_empty(&self) -> bool {
        self.q.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, h, m, s).unwrap()
    }

    #[test]
    fn merged_history_lands_in_its_own_minute() {
        let mut b = Buckets::per_minute();
        b.add(t(10, 0, 10), 7);
        b.merge(t(9, 0, 0), 100);
        b.merge(t(10, 0, 59), 1);
        b.merge(t(9, 30, 0), 5);
        // 9:00 leaves a 1-hour window at 10:01, 9:30 at 10:31, 10:00 at 11:01.
        assert_eq!(b.sum(t(10, 0, 30), 3600), 113);
        assert_eq!(b.sum(t(10, 1, 0), 3600), 13);
        assert_eq!(b.sum(t(10, 31, 0), 3600), 8);
        assert_eq!(b.below_at(t(10, 0, 30), 3600, 10), t(10, 31, 0));
    }

    #[test]
    fn a_rolling_window_counts_from_now_minus_its_span() {
        let mut b = Buckets::per_minute();
        b.add(t(9, 0, 10), 100);
        b.add(t(9, 0, 50), 5); // same minute
        b.add(t(11, 30, 0), 20);
        let five_h = 5 * 3600;
        assert_eq!(b.sum(t(11, 30, 0), five_h), 125);
        // The 09:00 minute ends at 09:01; it counts until 14:01 (its end plus five hours), then leaves.
        assert_eq!(b.sum(t(14, 0, 59), five_h), 125);
        assert_eq!(b.sum(t(14, 1, 0), five_h), 20);
        assert_eq!(b.sum(t(16, 31, 0), five_h), 0);
    }

    #[test]
    fn the_fit_time_is_when_enough_old_spend_has_left() {
        let mut b = Buckets::per_minute();
        b.add(t(9, 0, 0), 100);
        b.add(t(10, 4, 0), 200);
        b.add(t(12, 0, 0), 50);
        let span = 5 * 3600;
        let now = t(13, 0, 0);
        // 350 spent; below 300 once the 09:00 minute has left (14:01), below 100 once 10:04 has (15:05).
        assert_eq!(b.below_at(now, span, 300), t(14, 1, 0));
        assert_eq!(b.below_at(now, span, 100), t(15, 5, 0));
        assert_eq!(b.below_at(now, span, 351), now);
        assert_eq!(b.below_at(now, span, 1), t(17, 1, 0));
    }

    #[test]
    fn tokens_per_minute_use_seconds() {
        let mut b = Buckets::per_second();
        b.add(t(9, 0, 0), 1000);
        b.add(t(9, 0, 30), 500);
        assert_eq!(b.sum(t(9, 1, 0), 60), 1500);
        assert_eq!(b.sum(t(9, 1, 1), 60), 500);
        assert_eq!(b.below_at(t(9, 0, 45), 60, 1000), t(9, 1, 1));
        b.prune(t(9, 1, 1), 60);
        assert_eq!(b.q.len(), 1);
        b.prune(t(9, 2, 31), 60);
        assert!(b.is_empty());
    }

    #[test]
    fn out_of_order_amounts_join_the_newest_bucket() {
        let mut b = Buckets::per_minute();
        b.add(t(10, 0, 0), 1);
        b.add(t(9, 0, 0), 2);
        assert_eq!(b.q.len(), 1);
        assert_eq!(b.sum(t(10, 0, 0), 3600), 3);
    }
}
