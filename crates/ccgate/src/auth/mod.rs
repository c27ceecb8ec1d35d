//! Step 2 of the request path: who is calling.
//!
//! The tenant key arrives as `x-api-key` or `Authorization: Bearer` (Claude Code sends either; OpenAI SDKs send
//! Bearer). Keys are looked up in a map whose hasher is seeded randomly per process, so the lookup time does not
//! tell a caller how much of a guessed key is right, and the final comparison is constant-time. Keys in the query
//! string are never accepted.

use crate::state::{Runtime, TenantRt};
use http::HeaderMap;
use std::sync::Arc;
use subtle::ConstantTimeEq;

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
    let tenant = rt.tenants_by_key.get(key)?;
    let equal: bool = tenant.config.key.as_bytes().ct_eq(key.as_bytes()).into();
    (equal && tenant.config.enabled).then(|| tenant.clone())
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
}
