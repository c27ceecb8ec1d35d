//! Tenant-facing endpoints. [`proxy`] is the request path itself; the protocol modules only add what differs.

pub mod admin_session;
pub mod admin_tenants;
pub mod admin_trust;
pub mod admin_upstreams;
pub mod admin_usage;
pub mod anthropic;
pub mod models;
pub mod openai;
pub mod probes;
pub mod proxy;
pub mod request_log;
pub mod responses;
pub mod scan;
pub mod tenant_status;
pub mod translated;
pub mod usage;

use crate::error::ApiError;
use axum::body::Body;
use bytes::Bytes;
use std::time::Duration;

/// Reads the request body within the size limit and the read deadline: a slow or half-open client is cut off,
/// not kept forever.
pub async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Bytes, ApiError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(ApiError::RequestTimeout),
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => {
            let too_large = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
                || e.to_string().contains("length limit");
            if too_large {
                Err(ApiError::PayloadTooLarge {
                    limit_mb: limit >> 20,
                })
            } else {
                Err(ApiError::BadRequest(format!(
                    "could not read the request body: {e}"
                )))
            }
        }
    }
}
