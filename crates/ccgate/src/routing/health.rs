//! Live upstream state: lock-free counters read on every pick, updated on every outcome.

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
    pub in_flight: AtomicU32,
    pub consecutive_failures: AtomicU32,
    /// Unix ms until which passive health keeps this upstream out of rotation (0 = not cooling).
    pub cooldown_until_ms: AtomicU64,
    /// Set by the active health checker; `true` until a probe says otherwise.
    pub probe_unhealthy: AtomicBool,
    /// Exponentially weighted moving average of time to response headers, in µs.
    pub latency_ewma_us: AtomicU64,
    pub requests_total: AtomicU64,
    pub failures_total: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// Cooldown backoff level, raised by consecutive cooldowns and reset on success.
    pub backoff_level: AtomicU32,
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

impl UpstreamState {
    pub fn is_cooling(&self, now_ms: u64) -> bool {
        self.cooldown_until_ms.load(Ordering::Relaxed) > now_ms
    }

    pub fn is_available(&self, now_ms: u64, max_concurrency: Option<u32>) -> bool {
        !self.is_cooling(now_ms)
            && !self.probe_unhealthy.load(Ordering::Relaxed)
            && max_concurrency.is_none_or(|m| self.in_flight.load(Ordering::Relaxed) < m)
    }

    pub fn record(&self, outcome: &Outcome) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Success { latency } => {
                self.consecutive_failures.store(0, Ordering::Relaxed);
                self.backoff_level.store(0, Ordering::Relaxed);
                let sample = latency.as_micros() as u64;
                let old = self.latency_ewma_us.load(Ordering::Relaxed);
                // alpha = 1/8: smooth enough to ignore one slow answer, quick enough to follow a trend.
                let new = if old == 0 {
                    sample
                } else {
                    old - old / 8 + sample / 8
                };
                self.latency_ewma_us.store(new, Ordering::Relaxed);
            }
            Outcome::Failure {
                reason,
                retry_after,
                kind,
            } => {
                self.failures_total.fetch_add(1, Ordering::Relaxed);
                *self.last_error.lock() = Some(reason.clone());
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
                    self.cooldown_until_ms
                        .store(now_ms() + d.as_millis() as u64, Ordering::Relaxed);
                }
            }
        }
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
                    u.state.probe_unhealthy.store(false, Ordering::Relaxed);
                }
                continue;
            }
            let now = tokio::time::Instant::now();
            for u in rt
                .upstreams
                .iter()
                .filter(|u| u.config.enabled && u.config.health_check.enabled)
            {
                let due = next_due.get(&u.config.id).copied().unwrap_or(now);
                if due > now {
                    continue;
                }
                next_due.insert(u.config.id.clone(), now + u.config.health_check.interval);
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
        Ok(uri) => {
            let mut request = http::Request::new(bytes::Bytes::new());
            *request.uri_mut() = uri;
            *request.headers_mut() = headers;
            tokio::time::timeout(hc.timeout, u.client.send(request)).await
        }
        Err(e) => {
            *u.state.last_error.lock() = Some(format!("health check: bad URL: {e}"));
            u.state.probe_unhealthy.store(true, Ordering::Relaxed);
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
    if let Some(reason) = &reason {
        *u.state.last_error.lock() = Some(reason.clone());
    }
    let was_unhealthy = u.state.probe_unhealthy.swap(!healthy, Ordering::Relaxed);
    if healthy && was_unhealthy {
        tracing::info!(upstream = %u.config.id, "health check passed; upstream back in rotation");
        u.state.consecutive_failures.store(0, Ordering::Relaxed);
        u.state.cooldown_until_ms.store(0, Ordering::Relaxed);
    } else if let (Some(reason), false) = (&reason, was_unhealthy) {
        tracing::warn!(upstream = %u.config.id, %reason, "upstream failed its health check");
    }
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

    #[test]
    fn retry_after_is_honoured() {
        let s = UpstreamState::default();
        s.record(&fail(FailureKind::RateLimited, Some(7)));
        let until = s.cooldown_until_ms.load(Ordering::Relaxed);
        let d = until - now_ms();
        assert!((6_000..=7_000).contains(&d), "{d}");
    }
}
