//! Step 2 of the request path: who is calling.
//!
//! The tenant key arrives as `x-api-key` or `Authorization: Bearer` (Claude Code sends either; OpenAI SDKs send
//! Bearer). Keys are looked up in a map whose hasher is seeded randomly per process, so the lookup time does not
//! tell a caller how much of a guessed key is right, and the final comparison is constant-time. Keys in the query
//! string are never accepted.
//!
//! Every check of a credential a client presented (tenant key, admin password) goes through the per-address
//! [`throttle`]: a locked-out address is refused before its credentials are looked at, and each failure is logged
//! with the address and endpoint (never the secret).

pub mod throttle;

use crate::error::ApiError;
use crate::state::{Gateway, Runtime, TenantRt};
use axum::extract::ConnectInfo;
use http::HeaderMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use throttle::Failed;

/// The credential the client presented, if any.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if !v.is_empty() {
            return Some(v);
        }
    }
    let auth = headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = auth.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let token = token.trim();
        (!token.is_empty()).then_some(token)
    } else {
        None
    }
}

/// `Authorization: Basic` credentials (user, password), if the request carries them.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    use base64::Engine;
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = auth.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

/// Resolves the presented key to an enabled tenant. Disabled tenants are indistinguishable from unknown keys.
pub fn authenticate(rt: &Runtime, headers: &HeaderMap) -> Option<Arc<TenantRt>> {
    let key = presented_key(headers)?;
    tenant_for_key(rt, key)
}

pub fn tenant_for_key(rt: &Runtime, key: &str) -> Option<Arc<TenantRt>> {
    if let Some(tenant) = rt.tenants_by_key.get(key) {
        let equal: bool = tenant.config.key.as_bytes().ct_eq(key.as_bytes()).into();
        return (equal && tenant.config.enabled).then(|| tenant.clone());
    }
    if rt.tenants_by_key_hash.is_empty() {
        return None;
    }
    // Console tenants: the store keeps only the key's hash. A lookup by hash tells a caller nothing about how close
    // a guessed key is.
    let tenant = rt
        .tenants_by_key_hash
        .get(&crate::tenants::key_sha256(key))?;
    tenant.config.enabled.then(|| tenant.clone())
}

/// The client's address: the TCP peer (put in the request's extensions by the listener), or with
/// `server.trustProxyHeaders` the last hop of `X-Forwarded-For`, the one the proxy in front appended (earlier hops
/// are whatever the client sent). `None` when neither is known.
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &http::Extensions,
    trust_proxy_headers: bool,
) -> Option<IpAddr> {
    if trust_proxy_headers {
        let last_hop = headers
            .get_all("x-forwarded-for")
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .map(str::trim)
            .and_then(|hop| {
                hop.parse::<IpAddr>()
                    .ok()
                    .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
            });
        if last_hop.is_some() {
            return last_hop;
        }
    }
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip())
}

/// Refuses a locked-out client before any credential of it is checked.
pub fn check_lockout(gw: &Gateway, client: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(ip) = client else {
        return Ok(());
    };
    gw.throttle
        .check(ip, Instant::now())
        .map_err(|left| lockout_error(ip, left))
}

fn lockout_error(ip: IpAddr, left: Duration) -> ApiError {
    let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
    tracing::debug!(client = %ip, retry_after = secs, "request refused: address locked out after failed logins");
    ApiError::RateLimited(
        format!("too many failed authentication attempts from your address; try again in {secs} seconds"),
        secs.max(1),
    )
}

/// Logs a failed login (address and endpoint, never the secret) and counts it against the address.
pub fn note_failure(gw: &Gateway, client: Option<IpAddr>, endpoint: &str) {
    gw.failed_logins
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(ip) = client else {
        tracing::warn!(endpoint, "authentication failed (client address unknown)");
        return;
    };
    match gw.throttle.failure(ip, Instant::now()) {
        Failed::Counted { failures } => {
            tracing::warn!(client = %ip, endpoint, failures_this_minute = failures, "authentication failed")
        }
        Failed::LockedOut(d) => tracing::warn!(
            client = %ip,
            endpoint,
            lockout_seconds = d.as_secs(),
            "authentication failed; too many failures from this address, locked out"
        ),
    }
}

/// The tenant of a request to a tenant endpoint, throttled per client address: a locked-out address gets
/// `RateLimited`, a wrong key `Unauthorized` and a failure on its count. A request with no key at all is not a
/// guess and is not counted.
pub fn tenant_throttled(
    gw: &Gateway,
    rt: &Runtime,
    headers: &HeaderMap,
    extensions: &http::Extensions,
    endpoint: &str,
) -> Result<Arc<TenantRt>, ApiError> {
    let client = client_ip(headers, extensions, rt.config.server.trust_proxy_headers);
    check_lockout(gw, client)?;
    let key = presented_key(headers).ok_or(ApiError::Unauthorized)?;
    let tenant = tenant_for_key(rt, key).ok_or_else(|| {
        note_failure(gw, client, endpoint);
        ApiError::Unauthorized
    })?;
    // The right key, past its time: not a guess, so not counted against the address.
    if let Some(at) = tenant
        .config
        .expires_at
        .filter(|at| *at <= chrono::Utc::now())
    {
        return Err(ApiError::KeyExpired(at.to_rfc3339()));
    }
    Ok(tenant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_header_styles() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(presented_key(&h), Some("abc"));
        h.insert("x-api-key", "xyz".parse().unwrap());
        assert_eq!(presented_key(&h), Some("xyz"));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), None);
    }

    #[test]
    fn client_ip_is_the_peer_unless_proxy_headers_are_trusted() {
        let mut ext = http::Extensions::new();
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", "6.6.6.6, 10.1.1.1".parse().unwrap());
        h.append("x-forwarded-for", "192.0.2.7".parse().unwrap());
        assert_eq!(
            client_ip(&h, &ext, true),
            Some("192.0.2.7".parse().unwrap())
        );
        assert_eq!(client_ip(&h, &ext, false), None);
        ext.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 2], 5000))));
        assert_eq!(
            client_ip(&h, &ext, false),
            Some("127.0.0.2".parse().unwrap())
        );
        let mut bad = HeaderMap::new();
        bad.insert("x-forwarded-for", "unknown".parse().unwrap());
        assert_eq!(
            client_ip(&bad, &ext, true),
            Some("127.0.0.2".parse().unwrap())
        );
    }
}
