//! Canary probes (`upstreams[].trust.canary`, opt-in): a fixed tiny prompt sent on a schedule. Its answer's
//! model and reported input tokens are compared with the reference upstream's answer to the same prompt and
//! model (the reference is probed alongside), which catches substitution and inflation without any traffic.
//! Each probe costs a few tokens; the scorecard shows what the probes cost so far.

use super::checks::{self, Check, Status};
use crate::state::{Gateway, UpstreamRt};
use ccgate_meter::Usage;
use http_body_util::BodyExt;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CanaryState {
    pub runs: u64,
    pub cost_usd: f64,
    pub last: Option<CanaryRun>,
    pub reference: Option<CanaryRun>,
    /// Probes in a row that disagreed.
    pub streak: u32,
    #[serde(skip)]
    verdict: Option<Check>,
}

#[derive(Default)]
pub struct Canaries(Mutex<HashMap<String, CanaryState>>);

impl Canaries {
    pub fn state(&self, upstream: &str) -> Option<CanaryState> {
        self.0.lock().get(upstream).cloned()
    }

    pub fn verdict(&self, upstream: &str) -> Option<Check> {
        self.0.lock().get(upstream).and_then(|s| s.verdict.clone())
    }

    pub fn forget_verdict(&self, upstream: &str) {
        if let Some(s) = self.0.lock().get_mut(upstream) {
            s.streak = 0;
            s.verdict = None;
        }
    }

    fn record(&self, upstream: &str, run: CanaryRun, reference: Option<CanaryRun>) {
        let mut all = self.0.lock();
        let s = all.entry(upstream.to_owned()).or_default();
        s.runs += 1;
        s.cost_usd += run.cost_usd + reference.as_ref().map_or(0.0, |r| r.cost_usd);
        let disagreement = disagrees(&run, reference.as_ref());
        match disagreement {
            Some(true) => s.streak += 1,
            Some(false) => s.streak = 0,
            None => {}
        }
        let status = match disagreement {
            None if s.streak == 0 => Status::InsufficientData,
            _ if s.streak >= STREAK => Status::Suspect,
            _ => Status::Ok,
        };
        s.verdict = Some(Check {
            name: checks::CANARY,
            status,
            evidence: json!({
                "probe": run, "reference": reference, "disagreeingInARow": s.streak,
                "threshold": {"inARow": STREAK, "slackTokens": SLACK_TOKENS, "slackPercent": SLACK_PERCENT},
            }),
        });
        s.last = Some(run);
        s.reference = reference;
    }
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

/// Whether a probe is due: never run, or its interval has passed since the last start.
pub fn is_due(last_start: Option<Instant>, interval: Duration, now: Instant) -> bool {
    last_start.is_none_or(|t| now.duration_since(t) >= interval)
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

/// Runs the due probes once a second, until shutdown.
pub fn start(gw: Arc<Gateway>) {
    tokio::spawn(async move {
        let mut last: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = gw.shutdown.cancelled() => return,
            }
            let rt = gw.rt();
            let now = Instant::now();
            for u in rt.upstreams.iter().filter(|u| u.config.enabled) {
                let Some(c) = &u.config.trust.canary else {
                    continue;
                };
                if !is_due(last.get(&u.config.id).copied(), c.interval, now) {
                    continue;
                }
                last.insert(u.config.id.clone(), now);
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
                    gw.trust.canaries.record(&u.config.id, run, reference);
                });
            }
        }
    });
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
    fn the_schedule_runs_at_once_then_every_interval() {
        let t0 = Instant::now();
        let every = Duration::from_secs(60);
        assert!(is_due(None, every, t0));
        assert!(!is_due(Some(t0), every, t0 + Duration::from_secs(59)));
        assert!(is_due(Some(t0), every, t0 + Duration::from_secs(60)));
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
    fn two_disagreeing_probes_in_a_row_are_suspect() {
        let c = Canaries::default();
        let r = run("m", "m", 20);
        c.record("u", run("m", "m", 30), Some(r.clone()));
        assert_eq!(c.verdict("u").unwrap().status, Status::Ok);
        c.record("u", run("m", "m", 30), Some(r.clone()));
        assert_eq!(c.verdict("u").unwrap().status, Status::Suspect);
        c.record("u", run("m", "m", 20), Some(r));
        assert_eq!(c.verdict("u").unwrap().status, Status::Ok);
        assert_eq!(c.state("u").unwrap().runs, 3);
    }
}
