//! The scorecard's raw material: named integer counters per upstream, model and hour, summed in the store
//! (`trust_counters`) by every instance. A request adds to a handful of them at settlement; a window is the sum
//! of its hours. Histograms are counters too, one per bucket (`ttft_le_400` …), so they add up across instances.

use super::checks;
use super::observe::Observation;
use crate::ledger::{Outcome, Record};
use std::collections::BTreeMap;

pub type Counters = BTreeMap<String, i64>;

pub fn get(c: &Counters, name: &str) -> i64 {
    c.get(name).copied().unwrap_or(0)
}

pub fn add(c: &mut Counters, name: &str, n: i64) {
    if n != 0 {
        let v = c.entry(name.to_owned()).or_insert(0);
        *v = v.saturating_add(n);
    }
}

/// Adds every counter of `from` into `into`.
pub fn merge(into: &mut Counters, from: &Counters) {
    for (k, v) in from {
        add(into, k, *v);
    }
}

pub const REQUESTS: &str = "requests";
pub const OK: &str = "ok";
/// `error:<class>`: failed requests by error class.
pub const ERROR_PREFIX: &str = "error:";
pub const INPUT_TOKENS: &str = "input_tokens";
pub const OUTPUT_TOKENS: &str = "output_tokens";
pub const UPSTREAM_COST_NANOUSD: &str = "upstream_cost_nanousd";
/// Requests that marked `cache_control`, those that read from the cache, and their tokens.
pub const CACHE_ASKED: &str = "cache_asked";
pub const CACHE_ASKED_HIT: &str = "cache_asked_hit";
pub const CACHE_ASKED_INPUT: &str = "cache_asked_input_tokens";
pub const CACHE_ASKED_READ: &str = "cache_asked_read_tokens";
pub const MODEL_ANSWERS: &str = "model_answers";
pub const MODEL_MISMATCH: &str = "model_mismatch";
pub const THINKING_ANSWERS: &str = "thinking_answers";
pub const THINKING_UNSIGNED: &str = "thinking_unsigned";
pub const EST_REQUESTS: &str = "estimate_requests";
pub const EST_TOKENS: &str = "estimate_tokens";
pub const EST_REPORTED: &str = "estimate_reported_tokens";
pub const CACHE_ELIGIBLE: &str = "cache_eligible";
pub const CACHE_ELIGIBLE_HIT: &str = "cache_eligible_hit";
pub const CACHE_LOST_NANOUSD: &str = "cache_lost_nanousd";
pub const STREAM_ELIGIBLE: &str = "stream_eligible";
pub const STREAM_BURST: &str = "stream_burst";

/// Upper bounds (ms) of the time-to-first-token histogram; past the last, `ttft_le_inf`.
pub const TTFT_BUCKETS: [i64; 10] = [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200];
/// Upper bounds of the output tokens per second histogram (streams only).
pub const TPS_BUCKETS: [i64; 10] = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560];
pub const TTFT_PREFIX: &str = "ttft_le_";
pub const TPS_PREFIX: &str = "tps_le_";

fn bucket_name(prefix: &str, bounds: &[i64], v: i64) -> String {
    match bounds.iter().find(|&&b| v <= b) {
        Some(b) => format!("{prefix}{b}"),
        None => format!("{prefix}inf"),
    }
}

/// The `p`-th percentile (0..=100) of a histogram as the upper bound of the bucket it falls in (`None`: empty;
/// `Some(None)`: past the last bound).
pub fn percentile(c: &Counters, prefix: &str, bounds: &[i64], p: i64) -> Option<Option<i64>> {
    let counts: Vec<i64> = bounds
        .iter()
        .map(|b| get(c, &format!("{prefix}{b}")))
        .collect();
    let inf = get(c, &format!("{prefix}inf"));
    let total: i64 = counts.iter().sum::<i64>() + inf;
    if total == 0 {
        return None;
    }
    // The rank of the percentile, 1-based (nearest-rank method).
    let rank = ((total * p) + 99) / 100;
    let mut seen = 0;
    for (b, n) in bounds.iter().zip(&counts) {
        seen += n;
        if seen >= rank.max(1) {
            return Some(Some(*b));
        }
    }
    Some(None)
}

/// The counters one settled request adds. `cache_lost_nanousd` is priced by the caller (it needs the price table).
pub fn of(r: &Record, o: &Observation, cache_lost_nanousd: i64) -> Counters {
    let mut c = Counters::new();
    add(&mut c, REQUESTS, 1);
    let ok = r.outcome == Outcome::Ok;
    if ok {
        add(&mut c, OK, 1);
    } else {
        let class = r.error_class.as_deref().unwrap_or(r.outcome.as_str());
        add(&mut c, &format!("{ERROR_PREFIX}{class}"), 1);
    }
    let input =
        r.input_tokens + r.cache_write_5m_tokens + r.cache_write_1h_tokens + r.cache_read_tokens;
    add(&mut c, INPUT_TOKENS, input);
    add(&mut c, OUTPUT_TOKENS, r.output_tokens);
    add(&mut c, UPSTREAM_COST_NANOUSD, r.upstream_cost_nanousd);
    if let Some(t) = r.ttft_ms.filter(|_| ok) {
        add(&mut c, &bucket_name(TTFT_PREFIX, &TTFT_BUCKETS, t), 1);
    }
    if !ok || !r.billable {
        return c;
    }
    let req = &o.request;
    if r.stream && r.output_tokens > 0 {
        let gen_ms = r.latency_ms - r.ttft_ms.unwrap_or(0);
        if gen_ms > 0 {
            let tps = r.output_tokens.saturating_mul(1000) / gen_ms;
            add(&mut c, &bucket_name(TPS_PREFIX, &TPS_BUCKETS, tps), 1);
        }
    }
    if req.cache_control {
        add(&mut c, CACHE_ASKED, 1);
        add(&mut c, CACHE_ASKED_INPUT, input);
        add(&mut c, CACHE_ASKED_READ, r.cache_read_tokens);
        if r.cache_read_tokens > 0 {
            add(&mut c, CACHE_ASKED_HIT, 1);
        }
        if req.messages >= 3 && req.estimate_tokens >= checks::CACHE_MIN_ESTIMATE {
            add(&mut c, CACHE_ELIGIBLE, 1);
            if r.cache_read_tokens > 0 {
                add(&mut c, CACHE_ELIGIBLE_HIT, 1);
            } else {
                add(&mut c, CACHE_LOST_NANOUSD, cache_lost_nanousd);
            }
        }
    }
    if let (Some(answered), Some(asked)) = (&o.answer.model, &r.upstream_model) {
        add(&mut c, MODEL_ANSWERS, 1);
        if !checks::same_model(asked, answered) {
            add(&mut c, MODEL_MISMATCH, 1);
        }
    }
    if req.thinking && o.answer.thinking_blocks > 0 {
        add(&mut c, THINKING_ANSWERS, 1);
        if o.answer.unsigned_thinking_blocks > 0 {
            add(&mut c, THINKING_UNSIGNED, 1);
        }
    }
    if req.estimate_tokens > 0 && input > 0 {
        add(&mut c, EST_REQUESTS, 1);
        add(
            &mut c,
            EST_TOKENS,
            i64::try_from(req.estimate_tokens).unwrap_or(i64::MAX),
        );
        add(&mut c, EST_REPORTED, input);
    }
    if r.stream && r.output_tokens >= checks::STREAM_MIN_OUTPUT {
        if let Some(first) = o.timing.first_content_ms {
            add(&mut c, STREAM_ELIGIBLE, 1);
            if checks::is_burst(r.output_tokens, first, o.timing.last_content_ms) {
                add(&mut c, STREAM_BURST, 1);
            }
        }
    }
    c
}

/// Whether this request, by itself, is a sample of a suspect behaviour (for the evidence's request ids).
pub fn suspicious(c: &Counters) -> Option<&'static str> {
    if get(c, MODEL_MISMATCH) > 0 {
        Some(checks::MODEL_MISMATCH)
    } else if get(c, THINKING_UNSIGNED) > 0 {
        Some(checks::THINKING_SIGNATURE)
    } else if get(c, CACHE_ELIGIBLE) > get(c, CACHE_ELIGIBLE_HIT) {
        Some(checks::CACHE_NOT_HONOURED)
    } else if get(c, STREAM_BURST) > 0 {
        Some(checks::FAKE_STREAMING)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_bucket_upper_bounds_by_nearest_rank() {
        let mut c = Counters::new();
        assert_eq!(percentile(&c, TTFT_PREFIX, &TTFT_BUCKETS, 50), None);
        add(&mut c, "ttft_le_100", 50);
        add(&mut c, "ttft_le_400", 45);
        add(&mut c, "ttft_le_inf", 5);
        assert_eq!(
            percentile(&c, TTFT_PREFIX, &TTFT_BUCKETS, 50),
            Some(Some(100))
        );
        assert_eq!(
            percentile(&c, TTFT_PREFIX, &TTFT_BUCKETS, 51),
            Some(Some(400))
        );
        assert_eq!(
            percentile(&c, TTFT_PREFIX, &TTFT_BUCKETS, 95),
            Some(Some(400))
        );
        assert_eq!(percentile(&c, TTFT_PREFIX, &TTFT_BUCKETS, 96), Some(None));
    }

    #[test]
    fn buckets_take_values_up_to_their_bound() {
        assert_eq!(bucket_name(TTFT_PREFIX, &TTFT_BUCKETS, 100), "ttft_le_100");
        assert_eq!(bucket_name(TTFT_PREFIX, &TTFT_BUCKETS, 101), "ttft_le_200");
        assert_eq!(
            bucket_name(TTFT_PREFIX, &TTFT_BUCKETS, 99_999),
            "ttft_le_inf"
        );
    }
}
