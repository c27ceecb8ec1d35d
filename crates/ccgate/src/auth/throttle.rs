//! Brute-force protection: per client address, failed logins (admin password, tenant key) lead to a lockout.
//!
//! After [`MAX_FAILURES`] failures within [`WINDOW`], the address is locked out for [`BASE_LOCKOUT`], doubled with
//! each further lockout up to [`MAX_LOCKOUT`]. While locked, every request from it that carries credentials is
//! answered 429 with `retry-after`, *before* the credentials are checked: right credentials are refused too,
//! otherwise the lockout would still let a guesser learn when it guessed right. Other addresses are never affected.
//! A success does not clear the count: a tenant that knows its own key could otherwise interleave successes with
//! guesses at the admin password.
//!
//! The limit is per address, so it is loose enough for a handful of people behind one NAT who mistype a
//! password (10 a minute), and tight enough to turn hundreds of guesses a second into a few dozen an hour.
//! IPv6 clients are counted per /64, the smallest block a host is usually given.
//!
//! The map is bounded ([`MAX_ADDRESSES`], least recently failed evicted first), so an attacker with many
//! addresses costs a fixed amount of memory; such an attacker can evict its own older entries, never lock out
//! anyone else.

use hashlink::LinkedHashMap;
use parking_lot::Mutex;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const MAX_FAILURES: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
pub const BASE_LOCKOUT: Duration = Duration::from_secs(60);
pub const MAX_LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// An address that has not failed for this long starts again from [`BASE_LOCKOUT`].
const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
pub const MAX_ADDRESSES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    window_start: Instant,
    failures: u32,
    locked_until: Option<Instant>,
    /// Lockouts so far; the next one lasts `BASE_LOCKOUT × 2^lockouts`.
    lockouts: u32,
    last_failure: Instant,
}

/// What a failure led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// Counted; `failures` in the current window so far.
    Counted { failures: u32 },
    /// This failure locked the address out for this long.
    LockedOut(Duration),
}

pub struct Throttle {
    map: Mutex<LinkedHashMap<IpAddr, Entry>>,
    capacity: usize,
    /// When the last lockout of any address ends, in ms since `epoch`: every request with credentials is checked,
    /// and while no address is locked out that check is one atomic load, not a lock of the shared map.
    lockouts_end_ms: AtomicU64,
    epoch: Instant,
}

impl Default for Throttle {
    fn default() -> Throttle {
        Throttle::with_capacity(MAX_ADDRESSES)
    }
}

impl Throttle {
    pub fn with_capacity(capacity: usize) -> Throttle {
        Throttle {
            map: Mutex::new(LinkedHashMap::new()),
            capacity: capacity.max(1),
            lockouts_end_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64
    }

    /// `Err(remaining)` while `ip` is locked out.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        if self.ms(now) >= self.lockouts_end_ms.load(Ordering::Relaxed) {
            return Ok(());
        }
        let key = bucket(ip);
        let map = self.map.lock();
        match map.get(&key).and_then(|e| e.locked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Records a failed login from `ip`.
    pub fn failure(&self, ip: IpAddr, now: Instant) -> Failed {
        let key = bucket(ip);
        let mut map = self.map.lock();
        let fresh = Entry {
            window_start: now,
            failures: 0,
            locked_until: None,
            lockouts: 0,
            last_failure: now,
        };
        let mut e = map.remove(&key).unwrap_or(fresh);
        if now.duration_since(e.last_failure) > FORGET_AFTER {
            e = fresh;
        }
        if now.duration_since(e.window_start) > WINDOW {
            e.window_start = now;
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        let result = if e.failures >= MAX_FAILURES {
            let d = (BASE_LOCKOUT * 2u32.saturating_pow(e.lockouts.min(10))).min(MAX_LOCKOUT);
            e.lockouts = e.lockouts.saturating_add(1);
            e.locked_until = Some(now + d);
            // Rounded up, so the fast path in `check` never skips a lockout's last millisecond.
            self.lockouts_end_ms
                .fetch_max(self.ms(now + d) + 1, Ordering::Relaxed);
            e.failures = 0;
            e.window_start = now;
            Failed::LockedOut(d)
        } else {
            Failed::Counted {
                failures: e.failures,
            }
        };
        // Re-inserted at the back: the front is the address that failed least recently, evicted first.
        map.insert(key, e);
        while map.len() > self.capacity {
            map.pop_front();
        }
        result
    }

    pub fn len(&self) -> usize {
        self.map.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The unit an address is counted in: itself for IPv4, its /64 for IPv6 (IPv4-mapped addresses as IPv4).
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn locks_after_the_limit_doubling_up_to_the_cap_and_only_that_address() {
        let t = Throttle::default();
        let now = Instant::now();
        let a = ip("10.0.0.1");
        for n in 1..MAX_FAILURES {
            assert_eq!(t.failure(a, now), Failed::Counted { failures: n });
            assert!(t.check(a, now).is_ok());
        }
        assert_eq!(t.failure(a, now), Failed::LockedOut(BASE_LOCKOUT));
        assert_eq!(t.check(a, now), Err(BASE_LOCKOUT));
        assert!(t.check(ip("10.0.0.2"), now).is_ok());
        let later = now + BASE_LOCKOUT;
        assert!(t.check(a, later).is_ok());
        let mut last = Failed::Counted { failures: 0 };
        for _ in 0..MAX_FAILURES {
            last = t.failure(a, later);
        }
        assert_eq!(last, Failed::LockedOut(BASE_LOCKOUT * 2));
        let mut at = later;
        for _ in 0..10 {
            at += MAX_LOCKOUT;
            for _ in 0..MAX_FAILURES {
                last = t.failure(a, at);
            }
        }
        assert_eq!(last, Failed::LockedOut(MAX_LOCKOUT));
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_lock() {
        let t = Throttle::default();
        let mut now = Instant::now();
        let a = ip("10.0.0.1");
        for _ in 0..100 {
            assert!(matches!(t.failure(a, now), Failed::Counted { .. }));
            now += Duration::from_secs(7);
        }
    }

    #[test]
    fn bounded_and_ipv6_counted_per_64() {
        let t = Throttle::with_capacity(3);
        let now = Instant::now();
        for i in 0..10 {
            t.failure(ip(&format!("10.0.0.{i}")), now);
        }
        assert_eq!(t.len(), 3);
        let t = Throttle::default();
        for i in 0..MAX_FAILURES {
            t.failure(ip(&format!("2001:db8::{i:x}")), now);
        }
        assert!(t.check(ip("2001:db8::ffff"), now).is_err());
        assert!(t.check(ip("2001:db8:0:1::1"), now).is_ok());
        assert!(t.check(ip("::ffff:10.0.0.1"), now).is_ok());
    }
}
