//! Upstream selection. Lock-free: the smooth weighted round-robin order is precomputed when the config is
//! loaded, and requests take positions in it with one atomic increment.
//!
//! Order of decisions: eligible upstreams (enabled, weight > 0, serve the model, not yet tried by this request,
//! not cooling down or probe-unhealthy, below `maxConcurrency`) → the best priority tier that has one → session
//! affinity (weighted rendezvous hashing) if the request has a session key, else the configured strategy.
//! Upstreams ejected for their error rate (or ramping back) are left out of a first pass, and taken only if that
//! finds nothing.

use super::health::now_ms;
use crate::config::Strategy;
use crate::state::UpstreamRt;
use ccgate_meter::wildcard;
use rand::Rng;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct Tier {
    /// Indices into the runtime's upstream list.
    members: Vec<usize>,
    /// Smooth WRR schedule over `members` (indices into the upstream list).
    schedule: Vec<usize>,
    cursor: AtomicUsize,
}

pub struct Balancer {
    strategy: Strategy,
    tiers: Vec<Tier>,
}

/// The longest schedule precomputed; larger weight sums are scaled down proportionally.
const MAX_SCHEDULE: u64 = 4096;

impl Balancer {
    pub fn new(strategy: Strategy, upstreams: &[Arc<UpstreamRt>]) -> Balancer {
        let mut priorities: Vec<i64> = upstreams.iter().map(|u| u.config.priority).collect();
        priorities.sort_unstable();
        priorities.dedup();
        let tiers = priorities
            .into_iter()
            .map(|p| {
                let members: Vec<usize> = (0..upstreams.len())
                    .filter(|&i| upstreams[i].config.priority == p && upstreams[i].config.enabled)
                    .collect();
                let weights: Vec<u64> = members
                    .iter()
                    .map(|&i| upstreams[i].config.weight as u64)
                    .collect();
                let schedule = smooth_wrr_schedule(&weights)
                    .into_iter()
                    .map(|k| members[k])
                    .collect();
                Tier {
                    members,
                    schedule,
                    cursor: AtomicUsize::new(0),
                }
            })
            .filter(|t| !t.members.is_empty())
            .collect();
        Balancer { strategy, tiers }
    }

    /// Picks an upstream for `model`, skipping those in `tried`. `session` enables affinity: a pinned upstream
    /// (see [`super::pins`]) if it is eligible, else the rendezvous choice within the best tier.
    pub fn pick(
        &self,
        upstreams: &[Arc<UpstreamRt>],
        model: &str,
        tried: &[usize],
        session: Option<(&str, Option<&str>)>,
    ) -> Option<usize> {
        let now = now_ms();
        let base = |i: usize| {
            let u = &upstreams[i];
            u.config.enabled
                && u.config.weight > 0
                && !tried.contains(&i)
                && serves(&u.config.models, model)
        };
        let available = |i: usize| {
            base(i)
                && upstreams[i]
                    .state
                    .is_available(now, upstreams[i].config.max_concurrency)
        };
        // An upstream ejected for its error rate, or ramping back after an ejection, gets its share of traffic
        // only while others can take the rest; when nothing else is available it serves as before.
        // One draw per pick, so that the repeated eligibility checks of one pick agree.
        let request_draw = std::cell::OnceCell::new();
        let in_share = |i: usize| {
            let share = upstreams[i].state.traffic_share(now);
            share >= 100
                || (share > 0 && {
                    // A session's draw is fixed, so a session is not bounced between upstreams (and their prompt
                    // caches) during the ramp: the sessions let back only grow as the share grows. It must not
                    // hash like the rendezvous score, or the sessions that prefer an upstream would return last.
                    let draw = match session {
                        Some((key, _)) => (unit_hash(key, "\u{0}ramp") * 100.0) as u64,
                        None => *request_draw.get_or_init(|| rand::thread_rng().gen_range(0..100)),
                    };
                    draw < share
                })
        };
        let preferred = |i: usize| available(i) && in_share(i);
        // A demoted upstream (an open trust flag, `onSuspect: "demote"`) is below every tier: it serves only
        // when no other upstream is available.
        let trusted = |i: usize| !upstreams[i].state.demoted.load(Ordering::Relaxed);
        let passes: [&dyn Fn(usize) -> bool; 4] = [
            &|i| preferred(i) && trusted(i),
            &|i| available(i) && trusted(i),
            &preferred,
            &available,
        ];
        for eligible in passes {
            if let Some(i) = self.pick_among(upstreams, session, eligible) {
                return Some(i);
            }
        }
        // Every candidate is cooling down or unhealthy: rather than refuse outright, try the one whose cooldown
        // ends first. A stale cooldown must not lock tenants out when nothing better exists. Only for a request's
        // first attempt: retries are capped by the healthy upstreams (a retry into a cooling upstream would hammer
        // it and replace a real answer with, say, our key's rate limit).
        if !tried.is_empty() {
            return None;
        }
        upstreams
            .iter()
            .enumerate()
            .filter(|(i, u)| base(*i) && u.config.max_concurrency.is_none_or(|m| u.in_flight() < m))
            .min_by_key(|(_, u)| u.state.cooldown_until_ms.load(Ordering::Relaxed))
            .map(|(i, _)| i)
    }

    /// The best tier with an `eligible` member, then affinity or the strategy within it.
    fn pick_among(
        &self,
        upstreams: &[Arc<UpstreamRt>],
        session: Option<(&str, Option<&str>)>,
        eligible: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        for tier in &self.tiers {
            if !tier.members.iter().any(|&i| eligible(i)) {
                continue;
            }
            if let Some((key, pinned)) = session {
                if let Some(i) =
                    pinned.and_then(|id| upstreams.iter().position(|u| u.config.id == id))
                {
                    // A pin to a better-tier upstream is honoured here; a pin to a worse tier yields to this one.
                    if eligible(i)
                        && upstreams[i].config.priority
                            == upstreams[tier.members[0]].config.priority
                    {
                        return Some(i);
                    }
                }
                return rendezvous(upstreams, &tier.members, key, eligible);
            }
            return self.pick_in_tier(upstreams, tier, eligible);
        }
        None
    }

    fn pick_in_tier(
        &self,
        upstreams: &[Arc<UpstreamRt>],
        tier: &Tier,
        eligible: &dyn Fn(usize) -> bool,
    ) -> Option<usize> {
        match self.strategy {
            Strategy::WeightedRoundRobin => {
                let n = tier.schedule.len();
                let start = tier.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| tier.schedule[(start + k) % n])
                    .find(|&i| eligible(i))
            }
            Strategy::RoundRobin => {
                let n = tier.members.len();
                let start = tier.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| tier.members[(start + k) % n])
                    .find(|&i| eligible(i))
            }
            Strategy::Random => {
                let cands: Vec<usize> = tier
                    .members
                    .iter()
                    .copied()
                    .filter(|&i| eligible(i))
                    .collect();
                let total: u64 = cands
                    .iter()
                    .map(|&i| upstreams[i].config.weight as u64)
                    .sum();
                if total == 0 {
                    return None;
                }
                let mut r = rand::thread_rng().gen_range(0..total);
                for &i in &cands {
                    let w = upstreams[i].config.weight as u64;
                    if r < w {
                        return Some(i);
                    }
                    r -= w;
                }
                cands.last().copied()
            }
            Strategy::LeastConnections => {
                // Fewest in flight; ties go to the higher weight, then rotate so equal peers share the load.
                let n = tier.members.len();
                let start = tier.cursor.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| tier.members[(start + k) % n])
                    .filter(|&i| eligible(i))
                    .min_by_key(|&i| {
                        (
                            upstreams[i].in_flight(),
                            std::cmp::Reverse(upstreams[i].config.weight),
                        )
                    })
            }
        }
    }

    /// Where hashing alone sends `session` for `model`, health ignored (the reference point for pins).
    pub fn rendezvous_choice<'a>(
        &self,
        upstreams: &'a [Arc<UpstreamRt>],
        model: &str,
        session: &str,
    ) -> Option<&'a str> {
        let base = |i: usize| {
            let u = &upstreams[i];
            u.config.enabled && u.config.weight > 0 && serves(&u.config.models, model)
        };
        self.tiers
            .iter()
            .find(|t| t.members.iter().any(|&i| base(i)))
            .and_then(|t| rendezvous(upstreams, &t.members, session, &base))
            .map(|i| upstreams[i].config.id.as_str())
    }
}

pub fn serves(patterns: &[String], model: &str) -> bool {
    patterns.is_empty() || patterns.iter().any(|p| wildcard::matches(p, model))
}

/// nginx's smooth weighted round-robin, unrolled into one period: weights 3:1 give `a a b a`.
fn smooth_wrr_schedule(weights: &[u64]) -> Vec<usize> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().filter(|&w| w > 0).fold(0, gcd);
    if g == 0 {
        return (0..weights.len()).collect();
    }
    let mut w: Vec<u64> = weights.iter().map(|x| x / g).collect();
    let sum: u64 = w.iter().sum();
    if sum > MAX_SCHEDULE {
        w = w
            .iter()
            .map(|&x| {
                if x == 0 {
                    0
                } else {
                    (x * MAX_SCHEDULE / sum).max(1)
                }
            })
            .collect();
    }
    let total: i64 = w.iter().sum::<u64>() as i64;
    let mut current = vec![0i64; w.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for k in 0..w.len() {
            current[k] += w[k] as i64;
            if current[k] > current[best] {
                best = k;
            }
        }
        current[best] -= total;
        out.push(best);
    }
    out
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Weighted rendezvous (highest random weight) hashing: every ccgate instance computes the same winner for a
/// session without sharing state, and removing one upstream only moves the sessions that were on it.
fn rendezvous(
    upstreams: &[Arc<UpstreamRt>],
    members: &[usize],
    key: &str,
    eligible: &dyn Fn(usize) -> bool,
) -> Option<usize> {
    members
        .iter()
        .copied()
        .filter(|&i| eligible(i))
        .map(|i| {
            (
                i,
                rendezvous_score(key, &upstreams[i].config.id, upstreams[i].config.weight),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

pub fn rendezvous_score(key: &str, upstream_id: &str, weight: u32) -> f64 {
    weight as f64 / -unit_hash(key, upstream_id).ln()
}

/// A hash of (key, upstream id) spread evenly over (0, 1).
fn unit_hash(key: &str, upstream_id: &str) -> f64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in key
        .as_bytes()
        .iter()
        .chain([0u8].iter())
        .chain(upstream_id.as_bytes())
    {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    // splitmix64 finaliser: FNV alone is poorly mixed in the high bits.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^= h >> 31;
    ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_schedule_is_exact_and_interleaved() {
        assert_eq!(smooth_wrr_schedule(&[3, 1]), vec![0, 0, 1, 0]);
        assert_eq!(smooth_wrr_schedule(&[300, 100]), vec![0, 0, 1, 0]);
        let s = smooth_wrr_schedule(&[5, 1, 1]);
        assert_eq!(s, vec![0, 0, 1, 0, 2, 0, 0]);
        let s = smooth_wrr_schedule(&[1_000_000, 1]);
        assert!(s.len() <= MAX_SCHEDULE as usize + 1 && s.contains(&1));
    }

    #[test]
    fn rendezvous_is_stable_and_weighted() {
        let a = rendezvous_score("session-1", "up-a", 1);
        assert_eq!(a, rendezvous_score("session-1", "up-a", 1));
        let mut wins = [0u32; 2];
        for s in 0..4000 {
            let k = format!("s{s}");
            let sa = rendezvous_score(&k, "a", 3);
            let sb = rendezvous_score(&k, "b", 1);
            wins[if sa > sb { 0 } else { 1 }] += 1;
        }
        let ratio = wins[0] as f64 / wins[1] as f64;
        assert!((2.5..3.6).contains(&ratio), "{wins:?}");
    }
}
