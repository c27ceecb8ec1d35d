//! Step 5 of the request path: send the request upstream, failing over before the first byte.
//!
//! Each attempt goes to an upstream the balancer picks, never one already tried by this request. A connection
//! error, a timeout before the response headers, 429, 5xx, 529 or an upstream 401/403 moves on to the next
//! upstream (up to `loadBalancer.maxAttempts`, when `failoverEnabled`). Tenant-caused 4xx (400, 404, 413, 422…)
//! are answered verbatim. A redirect (3xx) is never followed nor passed on: it is a failed attempt like a 5xx,
//! and the tenant gets a 502 if no other upstream answers. Once response headers of a 2xx are in hand the attempt is final: everything after
//! that belongs to the tee.

pub mod classify;
pub mod client;
pub mod headers;
pub mod redact;

use crate::routing::health::{FailureKind, Outcome};
use crate::state::{Runtime, UpstreamRt};
use bytes::Bytes;
use classify::{classify_failure, Disposition};
use client::{UpstreamBody, UpstreamResponse};
use http::{HeaderMap, StatusCode};
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

/// What to send: the same for every attempt, except for the per-upstream model rename.
pub struct Plan<'a> {
    /// `/v1/messages` or `/v1/messages/count_tokens`.
    pub path: &'static str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    /// The Claude model id (what pricing and `models` filters use).
    pub model: &'a str,
    /// Where `model` sits in `body`, for `modelMap` renames.
    pub model_span: Option<Range<usize>>,
    pub session: Option<&'a str>,
}

/// Holds one unit of an upstream's in-flight count; released on drop.
pub struct InFlight(Arc<UpstreamRt>);

impl InFlight {
    fn new(u: Arc<UpstreamRt>) -> InFlight {
        u.state.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(u)
    }

    pub fn upstream(&self) -> &Arc<UpstreamRt> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A successful (2xx) exchange whose body has not been read yet.
pub struct Streaming {
    pub response: UpstreamResponse,
    pub in_flight: InFlight,
    pub upstream_model: String,
}

/// The result of forwarding.
pub enum Forwarded {
    Streaming(Streaming),
    /// A final non-2xx answer, body fully read: a tenant-caused 4xx, or the last failure once failover ran out.
    Reply {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        upstream: Arc<UpstreamRt>,
        upstream_model: String,
    },
    /// No HTTP answer at all from the last upstream tried.
    Failed {
        error: AttemptError,
        upstream: Option<Arc<UpstreamRt>>,
    },
}

#[derive(Debug, Clone)]
pub enum AttemptError {
    /// No eligible upstream (none configured for the model, or all disabled).
    NoUpstream,
    Connect(String),
    Timeout(String),
    /// Our upstream key was rejected (401/403) by every upstream tried.
    Credentials,
    /// The upstream answered with a redirect (this status), which the gateway never follows.
    Redirect(StatusCode),
    /// The upstream's error body decoded to more than [`MAX_ERROR_BODY`] (a decompression bomb, or garbage).
    BodyTooLarge,
}

/// Largest error body read into memory, decoded. Real error bodies are a few hundred bytes; one past this is not an
/// error message, and passing a truncated one on would hand the tenant broken JSON.
pub const MAX_ERROR_BODY: usize = 1 << 20;

pub async fn forward(rt: &Runtime, plan: &Plan<'_>) -> Forwarded {
    let lb = &rt.config.load_balancer;
    let max_attempts = if lb.failover_enabled {
        lb.max_attempts as usize
    } else {
        1
    };
    let mut tried: Vec<usize> = Vec::with_capacity(max_attempts);
    let mut last: Option<Forwarded> = None;
    let pinned = plan.session.and_then(|s| rt.pins.get(s));
    let session = plan.session.map(|s| (s, pinned.as_deref()));
    while tried.len() < max_attempts {
        let Some(idx) = rt.balancer.pick(&rt.upstreams, plan.model, &tried, session) else {
            break;
        };
        tried.push(idx);
        if let [.., left, _] = tried[..] {
            crate::telemetry::metrics::failover(&rt.upstreams[left].config.id);
        }
        let upstream = rt.upstreams[idx].clone();
        let more_left = tried.len() < max_attempts;
        let result = if more_left {
            attempt_or_move(rt, &upstream, plan, &tried, session).await
        } else {
            attempt(&upstream, plan).await
        };
        match result {
            AttemptResult::Moved => {
                tracing::warn!(upstream = %upstream.config.id, "upstream went down while this request waited for its response headers; moving the request to another upstream");
                last = Some(Forwarded::Failed {
                    error: AttemptError::Timeout(
                        "the upstream went down before it answered".into(),
                    ),
                    upstream: Some(upstream),
                });
            }
            AttemptResult::Streaming(s) => {
                if let Some(key) = plan.session {
                    remember_session(rt, key, plan.model, idx, &tried, pinned.as_deref());
                }
                return Forwarded::Streaming(s);
            }
            AttemptResult::Http {
                status,
                headers,
                body,
                upstream_model,
            } => {
                let disposition = classify_failure(status, &headers, &body);
                match disposition {
                    Disposition::PassThrough => {
                        return Forwarded::Reply {
                            status,
                            headers,
                            body,
                            upstream,
                            upstream_model,
                        };
                    }
                    Disposition::RetryElsewhere { health } => {
                        if let Some(outcome) = health {
                            upstream.state.record(&outcome);
                        }
                        tracing::warn!(upstream = %upstream.config.id, %status, "upstream failed; trying another");
                        if matches!(status.as_u16(), 401 | 403) {
                            last = Some(Forwarded::Failed {
                                error: AttemptError::Credentials,
                                upstream: Some(upstream),
                            });
                        } else {
                            last = Some(Forwarded::Reply {
                                status,
                                headers,
                                body,
                                upstream,
                                upstream_model,
                            });
                        }
                    }
                }
            }
            AttemptResult::NoAnswer(error, kind) => {
                let reason = match &error {
                    AttemptError::Connect(m) | AttemptError::Timeout(m) => m.clone(),
                    AttemptError::Redirect(status) => {
                        format!("answered with a redirect (HTTP {})", status.as_u16())
                    }
                    _ => "failed".into(),
                };
                upstream.state.record(&Outcome::Failure {
                    reason: reason.clone(),
                    retry_after: None,
                    kind,
                });
                tracing::warn!(upstream = %upstream.config.id, error = %reason, more_left, "upstream attempt failed");
                last = Some(Forwarded::Failed {
                    error,
                    upstream: Some(upstream),
                });
            }
        }
    }
    last.unwrap_or(Forwarded::Failed {
        error: AttemptError::NoUpstream,
        upstream: None,
    })
}

enum AttemptResult {
    Streaming(Streaming),
    /// A non-2xx answer, body read.
    Http {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        upstream_model: String,
    },
    /// No HTTP answer at all.
    NoAnswer(AttemptError, FailureKind),
    /// Abandoned before its response headers: the upstream went down and another one can take the request.
    Moved,
}

/// [`attempt`], abandoned when the upstream goes down (fails its health probe, or enters a cooldown because other
/// requests to it could not connect, timed out or got 5xx) before its response headers arrived, if another
/// upstream can take the request.
/// Nothing has reached the client yet, so moving is safe; without this, every request waiting on an upstream that
/// accepts connections and never answers waits out the whole first-byte timeout, although the probe noticed
/// within one interval. With nowhere to go, the attempt keeps waiting: a late answer beats none.
async fn attempt_or_move(
    rt: &Runtime,
    upstream: &Arc<UpstreamRt>,
    plan: &Plan<'_>,
    tried: &[usize],
    session: Option<(&str, Option<&str>)>,
) -> AttemptResult {
    let attempt = attempt(upstream, plan);
    tokio::pin!(attempt);
    loop {
        let woken = upstream.state.became_unavailable.notified();
        tokio::pin!(woken);
        // Registered before the state is read: a notification sent after the check is not missed.
        woken.as_mut().enable();
        if upstream.state.is_down(crate::routing::health::now_ms())
            && rt
                .balancer
                .pick(&rt.upstreams, plan.model, tried, session)
                .is_some()
        {
            return AttemptResult::Moved;
        }
        tokio::select! {
            r = &mut attempt => return r,
            () = &mut woken => {}
        }
    }
}

/// Pins a session to the upstream that served it when a *failure* moved it off its rendezvous choice (the
/// choice failed in this request, or is cooling down or unhealthy), so the session does not bounce back and
/// rebuild its prompt cache twice. A spill past `maxConcurrency` is not a failure and pins nothing; serving from
/// the rendezvous choice clears any pin.
fn remember_session(
    rt: &Runtime,
    key: &str,
    model: &str,
    served: usize,
    tried: &[usize],
    pinned: Option<&str>,
) {
    let served_id = rt.upstreams[served].config.id.as_str();
    let choice = rt.balancer.rendezvous_choice(&rt.upstreams, model, key);
    let choice_idx = choice.and_then(|id| rt.upstreams.iter().position(|u| u.config.id == id));
    let moved_by_failure = choice_idx.is_some_and(|c| {
        let st = &rt.upstreams[c].state;
        let now = crate::routing::health::now_ms();
        (c != served && tried.contains(&c)) || st.is_down(now) || st.traffic_share(now) < 100
    });
    if moved_by_failure || pinned == Some(served_id) || choice == Some(served_id) {
        rt.pins.record(key, served_id, choice);
    }
}

/// One attempt against one upstream.
async fn attempt(upstream: &Arc<UpstreamRt>, plan: &Plan<'_>) -> AttemptResult {
    let cfg = &upstream.config;
    let url = match upstream.url_for(plan.path, plan.query) {
        Ok(u) => u,
        Err(e) => {
            return AttemptResult::NoAnswer(
                AttemptError::Connect(format!("bad upstream URL: {e}")),
                FailureKind::Connect,
            )
        }
    };
    let (body, upstream_model) = match (cfg.model_map.get(plan.model), &plan.model_span) {
        (Some(mapped), Some(span)) => (
            Bytes::from(crate::api::scan::rewrite_model(&plan.body, span, mapped)),
            mapped.clone(),
        ),
        _ => (plan.body.clone(), plan.model.to_string()),
    };
    let headers = upstream.request_headers(plan.headers);
    upstream.state.note_attempt();
    let in_flight = InFlight::new(upstream.clone());
    let started = Instant::now();
    let send = upstream.client.send(http::Method::POST, url, headers, body);
    let mut response = match tokio::time::timeout(cfg.timeouts.first_byte, send).await {
        Err(_) => {
            return AttemptResult::NoAnswer(
                AttemptError::Timeout(format!(
                    "no response headers within {} ms",
                    cfg.timeouts.first_byte.as_millis()
                )),
                FailureKind::Connect,
            )
        }
        Ok(Err(e)) => {
            let err = if e.is_timeout() {
                AttemptError::Timeout(e.to_string())
            } else {
                AttemptError::Connect(e.to_string())
            };
            return AttemptResult::NoAnswer(err, FailureKind::Connect);
        }
        Ok(Ok(r)) => r,
    };
    let headers_after = started.elapsed();
    if let Some(r) = &upstream.redactor {
        headers::drop_key_bearing_headers(response.headers_mut(), r);
    }
    let status = response.status();
    if status.is_redirection() {
        // Following it could send our key to another host; passing it on would send the tenant around the
        // gateway. The answer (its `Location` included) is dropped unread: the upstream is misconfigured.
        return AttemptResult::NoAnswer(AttemptError::Redirect(status), FailureKind::ServerError);
    }
    if status.is_success() {
        upstream.state.record(&Outcome::Success {
            latency: headers_after,
        });
        return AttemptResult::Streaming(Streaming {
            response,
            in_flight,
            upstream_model,
        });
    }
    let headers = response.headers().clone();
    let body = match tokio::time::timeout(
        cfg.timeouts.first_byte,
        read_bounded(response.into_body(), MAX_ERROR_BODY),
    )
    .await
    {
        Ok(Ok(b)) => match &upstream.redactor {
            Some(r) => r.redact_document(b),
            None => b,
        },
        Ok(Err(BodyError::Broken(e))) => {
            return AttemptResult::NoAnswer(AttemptError::Connect(e), FailureKind::Connect)
        }
        Ok(Err(BodyError::TooLarge)) => {
            return AttemptResult::NoAnswer(AttemptError::BodyTooLarge, FailureKind::ServerError)
        }
        Err(_) => {
            return AttemptResult::NoAnswer(
                AttemptError::Timeout("error body did not arrive in time".into()),
                FailureKind::Connect,
            )
        }
    };
    drop(in_flight);
    AttemptResult::Http {
        status,
        headers,
        body,
        upstream_model,
    }
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// Reads a body of at most `max` decoded bytes (a small compressed answer cannot blow up in memory).
async fn read_bounded(mut body: UpstreamBody, max: usize) -> Result<Bytes, BodyError> {
    let mut buf = Vec::new();
    while let Some(chunk) = client::next_chunk(&mut body).await {
        let chunk = chunk.map_err(|e| BodyError::Broken(e.to_string()))?;
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
        // A decoder with buffered input is always ready, so the timeout around this read would never get to run:
        // spend the task's budget, which yields to the scheduler (and the timer) when it runs out.
        tokio::task::consume_budget().await;
    }
    Ok(Bytes::from(buf))
}
