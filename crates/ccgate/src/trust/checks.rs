//! The passive checks: pure rules over one upstream's counters for one model, compared with the other
//! upstreams' counters for the same model. Every rule, threshold and minimum sample is documented in
//! docs/trust.md; the constants below are the same numbers.

use super::counters::{self as c, Counters};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    InsufficientData,
    Suspect,
}

/// One check's verdict, as the scorecard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub evidence: Value,
}

pub const MODEL_MISMATCH: &str = "model_mismatch";
pub const THINKING_SIGNATURE: &str = "thinking_signature";
pub const TOKEN_INFLATION: &str = "token_inflation";
pub const CACHE_NOT_HONOURED: &str = "cache_not_honoured";
pub const FAKE_STREAMING: &str = "fake_streaming";
pub const CANARY: &str = "canary";

/// Every check name, for metrics and for clearing.
pub const NAMES: [&str; 6] = [
    MODEL_MISMATCH,
    THINKING_SIGNATURE,
    TOKEN_INFLATION,
    CACHE_NOT_HONOURED,
    FAKE_STREAMING,
    CANARY,
];

/// Model mismatch: answers that named a model, at least this many.
pub const MISMATCH_MIN: i64 = 20;
/// ... and suspect when at least this many of them, and this share (percent), named another model.
pub const MISMATCH_COUNT: i64 = 5;
pub const MISMATCH_PERCENT: i64 = 10;
/// Thinking: answers with thinking blocks to a request that asked for thinking.
pub const THINKING_MIN: i64 = 20;
pub const THINKING_COUNT: i64 = 5;
pub const THINKING_PERCENT: i64 = 10;
/// Token inflation: successful requests with a local estimate, on this upstream and on the baseline.
pub const INFLATION_MIN: i64 = 100;
/// Suspect when `reported / estimate` is at least this many per mille of the baseline's ratio (110 % = 1100).
pub const INFLATION_PER_MILLE: i64 = 1100;
/// Caching: follow-up turns that mark `cache_control` with a prefix large enough to cache.
pub const CACHE_MIN: i64 = 20;
/// Suspect when fewer than this share (percent) of them read from the cache, while another upstream's share is at
/// least [`CACHE_PEER_PERCENT`]; with no upstream to compare, when none of at least [`CACHE_ALONE_MIN`] did.
pub const CACHE_PERCENT: i64 = 10;
pub const CACHE_PEER_PERCENT: i64 = 50;
pub const CACHE_ALONE_MIN: i64 = 50;
/// The estimated request size from which a follow-up turn must hit the cache (Claude caches prefixes of 1024
/// tokens and more; twice that leaves a margin for the estimate).
pub const CACHE_MIN_ESTIMATE: u64 = 2048;
/// Fake streaming: streams with at least this many output tokens.
pub const STREAM_MIN_OUTPUT: i64 = 200;
pub const STREAM_MIN: i64 = 20;
/// Suspect when at least this share (percent) of them were bursts ([`is_burst`]).
pub const STREAM_PERCENT: i64 = 50;
/// A burst delivers its output faster than this (tokens per second) ...
pub const BURST_TOKENS_PER_SECOND: i64 = 1000;
/// ... within less than this share (percent) of the time it took to the first content.
pub const BURST_SPAN_PERCENT: u64 = 25;

/// Whether one stream was replayed rather than streamed: all of its (long) output came in a span much shorter
/// than the wait for its first content, and faster than any model writes.
pub fn is_burst(output_tokens: i64, first_content_ms: u64, last_content_ms: u64) -> bool {
    let span = last_content_ms.saturating_sub(first_content_ms);
    let fast = output_tokens.saturating_mul(1000) / (span.max(1) as i64) > BURST_TOKENS_PER_SECOND;
    fast && span.saturating_mul(100) < first_content_ms.saturating_mul(BURST_SPAN_PERCENT)
}

/// Whether an answer's model is the one asked for: equal (ignoring case), or one is the other plus a date suffix
/// (`claude-sonnet-4-5` answered as `claude-sonnet-4-5-20250929`).
pub fn same_model(asked: &str, answered: &str) -> bool {
    let (a, b) = (asked.to_ascii_lowercase(), answered.to_ascii_lowercase());
    let dated = |long: &str, short: &str| {
        long.strip_prefix(short)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|d| d.len() == 8 && d.bytes().all(|c| c.is_ascii_digit()))
    };
    a == b || dated(&a, &b) || dated(&b, &a)
}

/// Another upstream's counters for the same model.
pub struct Peer<'a> {
    pub upstream: &'a str,
    pub reference: bool,
    pub counters: &'a Counters,
}

fn pct(part: i64, whole: i64) -> f64 {
    if whole <= 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

/// The five passive checks for one upstream and model.
pub fn passive(me: &Counters, peers: &[Peer<'_>]) -> Vec<Check> {
    vec![
        share_check(
            MODEL_MISMATCH,
            c::get(me, c::MODEL_ANSWERS),
            c::get(me, c::MODEL_MISMATCH),
            (MISMATCH_MIN, MISMATCH_COUNT, MISMATCH_PERCENT),
        ),
        share_check(
            THINKING_SIGNATURE,
            c::get(me, c::THINKING_ANSWERS),
            c::get(me, c::THINKING_UNSIGNED),
            (THINKING_MIN, THINKING_COUNT, THINKING_PERCENT),
        ),
        inflation(me, peers),
        caching(me, peers),
        streaming(me),
    ]
}

/// "At least `min` samples; suspect when at least `count` and `percent` % of them are bad."
fn share_check(name: &'static str, samples: i64, bad: i64, rule: (i64, i64, i64)) -> Check {
    let (min, count, percent) = rule;
    let status = if samples < min {
        Status::InsufficientData
    } else if bad >= count && bad * 100 >= samples * percent {
        Status::Suspect
    } else {
        Status::Ok
    };
    Check {
        name,
        status,
        evidence: json!({
            "samples": samples, "bad": bad, "badPercent": pct(bad, samples),
            "threshold": {"minSamples": min, "minBad": count, "minBadPercent": percent},
        }),
    }
}

/// `reported / estimate` in per mille, when there are enough samples.
fn ratio(counters: &Counters) -> Option<i64> {
    let n = c::get(counters, c::EST_REQUESTS);
    let est = c::get(counters, c::EST_TOKENS);
    (n >= INFLATION_MIN && est > 0)
        .then(|| (c::get(counters, c::EST_REPORTED) as i128 * 1000 / est as i128) as i64)
}

fn inflation(me: &Counters, peers: &[Peer<'_>]) -> Check {
    let mine = ratio(me);
    // The reference upstream when it has enough samples, else the median of the others.
    let baseline = peers
        .iter()
        .find(|p| p.reference)
        .and_then(|p| ratio(p.counters).map(|r| (r, format!("reference {}", p.upstream))))
        .or_else(|| {
            let mut rs: Vec<i64> = peers.iter().filter_map(|p| ratio(p.counters)).collect();
            rs.sort_unstable();
            let n = rs.len();
            (n > 0).then(|| (rs[(n - 1) / 2], format!("median of {n} other upstream(s)")))
        });
    let status = match (mine, &baseline) {
        (Some(m), Some((b, _))) if *b > 0 && m * 1000 >= b * INFLATION_PER_MILLE => Status::Suspect,
        (Some(_), Some(_)) => Status::Ok,
        _ => Status::InsufficientData,
    };
    Check {
        name: TOKEN_INFLATION,
        status,
        evidence: json!({
            "samples": c::get(me, c::EST_REQUESTS),
            "reportedPerEstimated": mine.map(|m| m as f64 / 1000.0),
            "baseline": baseline.as_ref().map(|(b, _)| *b as f64 / 1000.0),
            "baselineFrom": baseline.as_ref().map(|(_, from)| from.clone()),
            "excessPercent": match (mine, baseline) {
                (Some(m), Some((b, _))) if b > 0 => Some(((m - b) as f64 * 1000.0 / b as f64).round() / 10.0),
                _ => None,
            },
            "threshold": {"minSamples": INFLATION_MIN, "maxRatioOfBaseline": INFLATION_PER_MILLE as f64 / 1000.0},
        }),
    }
}

fn caching(me: &Counters, peers: &[Peer<'_>]) -> Check {
    let n = c::get(me, c::CACHE_ELIGIBLE);
    let hits = c::get(me, c::CACHE_ELIGIBLE_HIT);
    let peer = peers
        .iter()
        .filter(|p| c::get(p.counters, c::CACHE_ELIGIBLE) >= CACHE_MIN)
        .map(|p| {
            (
                p.upstream,
                pct(
                    c::get(p.counters, c::CACHE_ELIGIBLE_HIT),
                    c::get(p.counters, c::CACHE_ELIGIBLE),
                ),
            )
        })
        .max_by(|a, b| a.1.total_cmp(&b.1));
    let low = n >= CACHE_MIN && hits * 100 < n * CACHE_PERCENT;
    let status = match peer {
        _ if n < CACHE_MIN => Status::InsufficientData,
        Some((_, share)) if low && share >= CACHE_PEER_PERCENT as f64 => Status::Suspect,
        None if n >= CACHE_ALONE_MIN && hits == 0 => Status::Suspect,
        None if low => Status::InsufficientData,
        _ => Status::Ok,
    };
    Check {
        name: CACHE_NOT_HONOURED,
        status,
        evidence: json!({
            "samples": n, "hits": hits, "hitPercent": pct(hits, n),
            "bestPeer": peer.map(|(u, s)| json!({"upstream": u, "hitPercent": s})),
            "lostUsd": c::get(me, c::CACHE_LOST_NANOUSD) as f64 / 1e9,
            "threshold": {"minSamples": CACHE_MIN, "maxHitPercent": CACHE_PERCENT,
                          "peerMinHitPercent": CACHE_PEER_PERCENT, "aloneMinSamples": CACHE_ALONE_MIN},
        }),
    }
}

fn streaming(me: &Counters) -> Check {
    let n = c::get(me, c::STREAM_ELIGIBLE);
    let bursts = c::get(me, c::STREAM_BURST);
    let status = if n < STREAM_MIN {
        Status::InsufficientData
    } else if bursts * 100 >= n * STREAM_PERCENT {
        Status::Suspect
    } else {
        Status::Ok
    };
    Check {
        name: FAKE_STREAMING,
        status,
        evidence: json!({
            "samples": n, "bursts": bursts, "burstPercent": pct(bursts, n),
            "threshold": {"minSamples": STREAM_MIN, "minOutputTokens": STREAM_MIN_OUTPUT,
                          "minBurstPercent": STREAM_PERCENT, "burstTokensPerSecond": BURST_TOKENS_PER_SECOND,
                          "burstSpanPercentOfFirstContent": BURST_SPAN_PERCENT},
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(pairs: &[(&str, i64)]) -> Counters {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    fn status(checks: &[Check], name: &str) -> Status {
        checks.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn models_match_exactly_or_with_a_date_suffix() {
        assert!(same_model(
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-20250929"
        ));
        assert!(same_model(
            "claude-sonnet-4-5-20250929",
            "Claude-Sonnet-4-5"
        ));
        assert!(!same_model("claude-opus-4-1", "claude-3-5-haiku-20241022"));
        assert!(!same_model("claude-opus-4", "claude-opus-4-1"));
    }

    #[test]
    fn a_burst_is_fast_and_short_compared_with_the_wait() {
        // 400 tokens in 4 ms after a 2 s wait: replayed.
        assert!(is_burst(400, 2000, 2004));
        // 400 tokens over 4 s at 100 tok/s after 500 ms: streamed.
        assert!(!is_burst(400, 500, 4500));
        // Fast, but the wait was short: a fast model, not a replay.
        assert!(!is_burst(400, 10, 14));
    }

    #[test]
    fn share_checks_need_their_minimum_and_both_thresholds() {
        let few = counters(&[(c::MODEL_ANSWERS, 19), (c::MODEL_MISMATCH, 19)]);
        assert_eq!(
            status(&passive(&few, &[]), MODEL_MISMATCH),
            Status::InsufficientData
        );
        let some = counters(&[(c::MODEL_ANSWERS, 100), (c::MODEL_MISMATCH, 9)]);
        assert_eq!(status(&passive(&some, &[]), MODEL_MISMATCH), Status::Ok);
        let many = counters(&[(c::MODEL_ANSWERS, 100), (c::MODEL_MISMATCH, 10)]);
        assert_eq!(
            status(&passive(&many, &[]), MODEL_MISMATCH),
            Status::Suspect
        );
    }

    #[test]
    fn inflation_compares_with_the_reference_or_the_median() {
        let honest = counters(&[
            (c::EST_REQUESTS, 100),
            (c::EST_TOKENS, 10_000),
            (c::EST_REPORTED, 12_000),
        ]);
        let high = counters(&[
            (c::EST_REQUESTS, 100),
            (c::EST_TOKENS, 10_000),
            (c::EST_REPORTED, 13_300),
        ]);
        let slightly = counters(&[
            (c::EST_REQUESTS, 100),
            (c::EST_TOKENS, 10_000),
            (c::EST_REPORTED, 13_100),
        ]);
        let peer = |c: &'static Counters| Peer {
            upstream: "p",
            reference: false,
            counters: c,
        };
        let honest: &'static Counters = Box::leak(Box::new(honest));
        assert_eq!(
            status(&passive(&high, &[peer(honest)]), TOKEN_INFLATION),
            Status::Suspect
        );
        assert_eq!(
            status(&passive(&slightly, &[peer(honest)]), TOKEN_INFLATION),
            Status::Ok
        );
        assert_eq!(
            status(&passive(&high, &[]), TOKEN_INFLATION),
            Status::InsufficientData
        );
        // The reference wins over the median.
        let r = Peer {
            upstream: "r",
            reference: true,
            counters: &high,
        };
        assert_eq!(
            status(&passive(&high, &[r, peer(honest)]), TOKEN_INFLATION),
            Status::Ok
        );
    }

    #[test]
    fn caching_is_judged_against_peers_or_alone_when_it_never_hits() {
        let never = counters(&[(c::CACHE_ELIGIBLE, 30), (c::CACHE_ELIGIBLE_HIT, 0)]);
        let good = counters(&[(c::CACHE_ELIGIBLE, 30), (c::CACHE_ELIGIBLE_HIT, 27)]);
        let p = Peer {
            upstream: "p",
            reference: false,
            counters: &good,
        };
        assert_eq!(
            status(&passive(&never, &[p]), CACHE_NOT_HONOURED),
            Status::Suspect
        );
        assert_eq!(
            status(&passive(&never, &[]), CACHE_NOT_HONOURED),
            Status::InsufficientData
        );
        let never50 = counters(&[(c::CACHE_ELIGIBLE, 50)]);
        assert_eq!(
            status(&passive(&never50, &[]), CACHE_NOT_HONOURED),
            Status::Suspect
        );
        assert_eq!(status(&passive(&good, &[]), CACHE_NOT_HONOURED), Status::Ok);
    }

    #[test]
    fn streaming_flags_a_majority_of_bursts() {
        let half = counters(&[(c::STREAM_ELIGIBLE, 20), (c::STREAM_BURST, 10)]);
        assert_eq!(
            status(&passive(&half, &[]), FAKE_STREAMING),
            Status::Suspect
        );
        let few = counters(&[(c::STREAM_ELIGIBLE, 20), (c::STREAM_BURST, 9)]);
        assert_eq!(status(&passive(&few, &[]), FAKE_STREAMING), Status::Ok);
    }
}
