//! What an upstream's non-2xx answer means for this request and for the upstream's health
//! (docs/protocols.md §2.7 and its 429 caveats).

use crate::routing::health::{FailureKind, Outcome};
use chrono::{DateTime, Utc};
use http::{HeaderMap, StatusCode};
use std::time::Duration;

#[derive(Debug, PartialEq)]
pub enum Disposition {
    /// The tenant's own request is at fault (400, 404, 413, 422…): answer verbatim, never retry.
    PassThrough,
    /// Try another upstream; `health` is what this answer says about the upstream (None: nothing, e.g. a
    /// request-specific refusal that must not cool the whole upstream down).
    RetryElsewhere { health: Option<Outcome> },
}

pub fn classify_failure(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Disposition {
    let code = status.as_u16();
    let reason = || format!("HTTP {code}: {}", error_message(body).unwrap_or_default());
    match code {
        401 | 403 => Disposition::RetryElsewhere {
            health: Some(Outcome::Failure {
                reason: reason(),
                retry_after: None,
                kind: FailureKind::Credentials,
            }),
        },
        429 => {
            let text = String::from_utf8_lossy(body).to_ascii_lowercase();
            if text.contains("long context")
                || text.contains("long-context")
                || text.contains("extra usage")
            {
                // The request needs a capability this account lacks; the upstream is fine for everything else.
                Disposition::RetryElsewhere { health: None }
            } else if text.contains("enforced_spend_limit_reached") || text.contains("spend limit")
            {
                Disposition::RetryElsewhere {
                    health: Some(Outcome::Failure {
                        reason: reason(),
                        retry_after: Some(Duration::from_secs(3600)),
                        kind: FailureKind::RateLimited,
                    }),
                }
            } else {
                Disposition::RetryElsewhere {
                    health: Some(Outcome::Failure {
                        reason: reason(),
                        retry_after: Some(retry_after(headers).unwrap_or(Duration::from_secs(5))),
                        kind: FailureKind::RateLimited,
                    }),
                }
            }
        }
        529 => Disposition::RetryElsewhere {
            health: Some(Outcome::Failure {
                reason: reason(),
                retry_after: retry_after(headers),
                kind: FailureKind::Overloaded,
            }),
        },
        // 408/409 are transient and say nothing about the upstream's health.
        408 | 409 => Disposition::RetryElsewhere { health: None },
        500..=599 => Disposition::RetryElsewhere {
            health: Some(Outcome::Failure {
                reason: reason(),
                retry_after: retry_after(headers),
                kind: FailureKind::ServerError,
            }),
        },
        _ => Disposition::PassThrough,
    }
}

/// `retry-after-ms`, `retry-after` (seconds or HTTP date), or the latest `anthropic-ratelimit-*-reset` that is
/// exhausted.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.trim().parse::<f64>().ok()) {
        return Some(Duration::from_millis(ms.max(0.0) as u64));
    }
    if let Some(v) = get("retry-after") {
        if let Ok(secs) = v.trim().parse::<f64>() {
            return Some(Duration::from_millis((secs.max(0.0) * 1000.0) as u64));
        }
        if let Ok(at) = DateTime::parse_from_rfc2822(v.trim()) {
            return Some(
                (at.with_timezone(&Utc) - Utc::now())
                    .to_std()
                    .unwrap_or_default(),
            );
        }
    }
    let now = Utc::now();
    headers
        .iter()
        .filter(|(n, _)| {
            n.as_str().starts_with("anthropic-ratelimit-") && n.as_str().ends_with("-reset")
        })
        .filter(|(n, _)| {
            // Only the limits that are actually exhausted tell us when to come back.
            let remaining = n.as_str().trim_end_matches("-reset").to_string() + "-remaining";
            get(&remaining).and_then(|v| v.trim().parse::<u64>().ok()) == Some(0)
        })
        .filter_map(|(_, v)| DateTime::parse_from_rfc3339(v.to_str().ok()?.trim()).ok())
        .filter_map(|t| (t.with_timezone(&Utc) - now).to_std().ok())
        .max()
}

/// `error.message` of an Anthropic error body, for logs and health views.
pub fn error_message(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: Option<String>,
    }
    let m = serde_json::from_slice::<E>(body).ok()?.error.message?;
    Some(m.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let h = HeaderMap::new();
        assert_eq!(
            classify_failure(StatusCode::BAD_REQUEST, &h, b"{}"),
            Disposition::PassThrough
        );
        assert_eq!(
            classify_failure(StatusCode::NOT_FOUND, &h, b"{}"),
            Disposition::PassThrough
        );
        let long = br#"{"type":"error","error":{"type":"rate_limit_error","message":"Extra usage is required for long context requests."}}"#;
        assert_eq!(
            classify_failure(StatusCode::TOO_MANY_REQUESTS, &h, long),
            Disposition::RetryElsewhere { health: None }
        );
        let mut h = HeaderMap::new();
        h.insert("retry-after", "12".parse().unwrap());
        match classify_failure(StatusCode::TOO_MANY_REQUESTS, &h, b"{}") {
            Disposition::RetryElsewhere {
                health: Some(Outcome::Failure { retry_after, .. }),
            } => {
                assert_eq!(retry_after, Some(Duration::from_secs(12)))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn ratelimit_reset_headers() {
        let mut h = HeaderMap::new();
        let at = (Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        h.insert("anthropic-ratelimit-requests-reset", at.parse().unwrap());
        h.insert(
            "anthropic-ratelimit-requests-remaining",
            "0".parse().unwrap(),
        );
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
    }
}
