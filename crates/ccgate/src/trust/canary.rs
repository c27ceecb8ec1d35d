//! Canary probes (`upstreams[].trust.canary`, opt-in): a fixed tiny prompt sent on a schedule. Its answer's
//! model and reported input tokens are compared with the reference upstream's answer to the same prompt and
//! model (the reference is probed alongside), which catches substitution and inflation without any traffic.
//! Each probe costs a few tokens; the scorecard shows what the probes cost so far.

use super::checks::{self, Check, Status};
use crate::ledger::store::TrustCanary;
use crate::state::{Gateway, UpstreamRt};
use ccgate_meter::Usage;
use http_body_util::BodyExt;
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The fixed prompt: the same bytes every time, so every honest upstream reports the same input tokens.
pub const PROMPT: &str = "Reply with the single word: ok";
const MAX_TOKENS: u32 = 5;
/// Suspect after this many probes in a row that disagree with the reference (or name another model).
pub const STREAK: u32 = 2;
/// The reported input tokens may exceed the reference's by this many tokens, or this share (percent), whichever
/// is larger, before a probe disagrees.
pub const SLACK_TOKENS: u64 = 1;
pub const SLACK_PERCENT: u64 = 5;
const PROBE_TIMEOUT: Duration = Duration::from_secs(60);

/// One probe's answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryRun {
    pub at_ms: i64,
    pub model: String,
    pub answered_model: Option<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cost_usd: f64,
    pub error: Option<String>,
}

/// The canary's verdict from its shared state (`trust_canary`, every instance's probes): suspect after
/// [`STREAK`] disagreeing probes in a row; `insufficient_data` while the last probe failed (or the flag was
/// cleared) and none disagreed since; `None` before the first probe.
pub fn verdict(c: &TrustCanary) -> Option<Check> {
    if c.runs == 0 {
        return None;
    }
    let status = match c.last_outcome {
        _ if c.streak >= i64::from(STREAK) => Status::Suspect,
        None if c.streak == 0 => Status::InsufficientData,
        _ => Status::Ok,
    };
    Some(Check {
        name: checks::CANARY,
        status,
        evidence: json!({
            "probe": run_json(c.last_run.as_deref()), "reference": run_json(c.reference_run.as_deref()),
            "disagreeingInARow": c.streak,
            "threshold": {"inARow": STREAK, "slackTokens": SLACK_TOKENS, "slackPercent": SLACK_PERCENT},
        }),
    })
}

fn run_json(stored: Option<&str>) -> Value {
    stored
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(Value::Null)
}

/// The scorecard's `canary` (docs/trust.md): the same on every instance.
pub fn state_json(c: &TrustCanary) -> Value {
    let mut v = json!({
        "runs": c.runs,
        "costUsd": c.cost_nanousd as f64 / 1e9,
        "last": run_json(c.last_run.as_deref()),
        "reference": run_json(c.reference_run.as_deref()),
        "streak": c.streak,
        "lastClaimedMs": c.claimed_ms,
    });
    if let (Value::Object(m), Some(check)) = (&mut v, verdict(c)) {
        m.insert("check".into(), json!(check));
    }
    v
}

/// Whether a probe disagrees: another model answered, or more input tokens than the reference reported beyond
/// the slack. `None`: the probe failed, so it says nothing.
pub fn disagrees(run: &CanaryRun, reference: Option<&CanaryRun>) -> Option<bool> {
    let mine = run.input_tokens?;
    if run
        .answered_model
        .as_deref()
        .is_some_and(|m| !checks::same_model(&run.model, m))
    {
        return Some(true);
    }
    let theirs = reference.and_then(|r| r.input_tokens)?;
    let slack = SLACK_TOKENS.max(theirs * SLACK_PERCENT / 100);
    Some(mine > theirs + slack)
}

/// Probes `u` with the fixed prompt for the Claude model `model` (its `modelMap` applies).
async fn probe(gw: &Gateway, u: &UpstreamRt, model: &str) -> CanaryRun {
    let sent_model = u
        .config
        .model_map
        .get(model)
        .cloned()
        .unwrap_or_else(|| model.to_owned());
    let mut run = CanaryRun {
        at_ms: chrono::Utc::now().timestamp_millis(),
        model: sent_model.clone(),
        answered_model: None,
        input_tokens: None,
        output_tokens: None,
        cost_usd: 0.0,
        error: None,
    };
    let body = json!({
        "model": sent_model, "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": PROMPT}],
    });
    let mut client_headers = http::HeaderMap::new();
    client_headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    client_headers.insert(
        "anthropic-version",
        http::HeaderValue::from_static("2023-06-01"),
    );
    let headers = u.request_headers(&client_headers);
    let url = match u.url_for("/v1/messages", None) {
        Ok(url) => url,
        Err(e) => {
            run.error = Some(format!("bad URL: {e}"));
            return run;
        }
    };
    let answer = async {
        let resp = u
            .client
            .send(
                http::Method::POST,
                url,
                headers,
                bytes::Bytes::from(body.to_string()),
            )
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!("HTTP {}", status.as_u16()));
        }
        Ok(body)
    };
    let body = match tokio::time::timeout(PROBE_TIMEOUT, answer).await {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            run.error = Some(e);
            return run;
        }
        Err(_) => {
            run.error = Some("no answer in time".into());
            return run;
        }
    };
    match ccgate_meter::usage_from_json_response(&body) {
        Some((usage, meta)) => {
            run.answered_model = meta.model;
            run.input_tokens = Some(usage.total_input_tokens());
            run.output_tokens = Some(usage.output_tokens);
            run.cost_usd = cost_usd(gw, u, model, &usage);
        }
        None => run.error = Some("the answer carried no usage".into()),
    }
    run
}

fn cost_usd(gw: &Gateway, u: &UpstreamRt, model: &str, usage: &Usage) -> f64 {
    let rt = gw.rt();
    rt.pricing.cost(model, usage).map_or(0.0, |c| {
        c.total.0 as f64 * f64::from(u.config.price_multiplier_milli) / 1000.0 / 1e9
    })
}

/// Every second, claims in the store the probes that are due (one instance of a cluster wins each slot) and runs
/// them; the results go to the store, so every instance's scorecard shows them.
pub fn start(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = gw.shutdown.cancelled() => return,
            }
            let rt = gw.rt();
            let now = chrono::Utc::now().timestamp_millis();
            for u in rt.upstreams.iter().filter(|u| u.config.enabled) {
                let Some(c) = &u.config.trust.canary else {
                    continue;
                };
                let interval = i64::try_from(c.interval.as_millis()).unwrap_or(i64::MAX);
                match gw
                    .ledger
                    .store
                    .trust_canary_claim(&u.config.id, now, interval)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(upstream = %u.config.id, error = %e, "canary: cannot claim the next probe; retried in a second");
                        continue;
                    }
                }
                let reference = rt
                    .upstreams
                    .iter()
                    .find(|r| {
                        r.config.trust.reference && r.config.enabled && r.config.id != u.config.id
                    })
                    .cloned();
                let (gw, u, model) = (gw.clone(), u.clone(), c.model.clone());
                tokio::spawn(async move {
                    let run = probe(&gw, &u, &model).await;
                    let reference = match &reference {
                        Some(r) if run.error.is_none() => Some(probe(&gw, r, &model).await),
                        _ => None,
                    };
                    record(&gw, &u.config.id, &run, reference.as_ref()).await;
                });
            }
        }
    });
}

/// Stores a probe's result (a failure to store is logged: the next probe is recorded anyway).
async fn record(gw: &Gateway, upstream: &str, run: &CanaryRun, reference: Option<&CanaryRun>) {
    let cost = run.cost_usd + reference.map_or(0.0, |r| r.cost_usd);
    let cost_nanousd = (cost * 1e9).round() as i64;
    let outcome = disagrees(run, reference);
    let last = json!(run).to_string();
    let reference = reference.map(|r| json!(r).to_string());
    let stored = gw
        .ledger
        .store
        .trust_canary_record(upstream, outcome, cost_nanousd, &last, reference.as_deref())
        .await;
    if let Err(e) = stored {
        tracing::warn!(%upstream, error = %e, "canary: the probe's result could not be stored");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(model: &str, answered: &str, input: u64) -> CanaryRun {
        CanaryRun {
            at_ms: 0,
            model: model.into(),
            answered_model: Some(answered.into()),
            input_tokens: Some(input),
            output_tokens: Some(1),
            cost_usd: 0.0,
            error: None,
        }
    }

    #[test]
    fn a_probe_disagrees_on_another_model_or_more_tokens_than_the_slack() {
        let r = run("m", "m", 20);
        assert_eq!(disagrees(&run("m", "m", 21), Some(&r)), Some(false));
        assert_eq!(disagrees(&run("m", "m", 24), Some(&r)), Some(true));
        assert_eq!(disagrees(&run("m", "other", 20), None), Some(true));
        assert_eq!(disagrees(&run("m", "m", 30), None), None);
    }

    #[test]
    fn the_verdict_follows_the_shared_streak() {
        let state = |runs: i64, streak: i64, last_outcome: Option<bool>| TrustCanary {
            upstream_id: "u".into(),
            claimed_ms: 0,
            runs,
            cost_nanousd: 0,
            streak,
            last_outcome,
            last_run: Some(json!(run("m", "m", 30)).to_string()),
            reference_run: None,
        };
        assert_eq!(verdict(&state(0, 0, None)), None);
        let status = |runs, streak, last| verdict(&state(runs, streak, last)).unwrap().status;
        assert_eq!(status(1, 1, Some(true)), Status::Ok);
        assert_eq!(status(2, 2, Some(true)), Status::Suspect);
        // A failed probe after a disagreement keeps the streak.
        assert_eq!(status(3, 2, None), Status::Suspect);
        assert_eq!(status(3, 0, Some(false)), Status::Ok);
        // Failed, or cleared: nothing to judge on.
        assert_eq!(status(3, 0, None), Status::InsufficientData);
        let v = verdict(&state(2, 2, Some(true))).unwrap();
        assert_eq!(v.evidence["probe"]["inputTokens"], 30);
        assert_eq!(v.evidence["disagreeingInARow"], 2);
        let j = state_json(&state(2, 2, Some(true)));
        assert_eq!(j["runs"], 2);
        assert_eq!(j["check"]["status"], "suspect");
    }
}
