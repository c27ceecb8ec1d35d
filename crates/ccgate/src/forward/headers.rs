//! Header hygiene in both directions (docs/protocols.md §2.1, §7).

use crate::config::{AuthHeader, UpstreamConfig};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Request headers never sent upstream: the tenant's credentials, hop-by-hop headers, headers the outbound
/// client sets itself, and CDN/forwarding headers that would leak the tenant's address.
fn drop_request_header(name: &HeaderName) -> bool {
    let n = name.as_str();
    matches!(
        n,
        "x-api-key"
            | "authorization"
            | "host"
            | "content-length"
            | "connection"
            | "keep-alive"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "accept-encoding"
            | "cookie"
            | "forwarded"
            | "x-real-ip"
            | "origin"
            | "referer"
    ) || n.starts_with("proxy-")
        || n.starts_with("cf-")
        || n.starts_with("x-forwarded-")
        || n.starts_with("sec-")
}

const ANTHROPIC_VERSION: HeaderName = HeaderName::from_static("anthropic-version");
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The headers that carry an upstream's credential, built once per upstream at config load (per request
/// they would cost a `format!` and two header-value checks).
pub fn credential_headers(upstream: &UpstreamConfig) -> Vec<(HeaderName, HeaderValue)> {
    if upstream.key.is_empty() {
        return Vec::new();
    }
    let key = HeaderValue::from_str(&upstream.key).ok();
    let bearer = HeaderValue::from_str(&format!("Bearer {}", upstream.key)).ok();
    let (Some(mut key), Some(mut bearer)) = (key, bearer) else {
        return Vec::new();
    };
    key.set_sensitive(true);
    bearer.set_sensitive(true);
    match upstream.auth_header {
        AuthHeader::XApiKey => vec![(X_API_KEY, key)],
        AuthHeader::Bearer => vec![(header::AUTHORIZATION, bearer)],
        AuthHeader::Both => vec![(X_API_KEY, key), (header::AUTHORIZATION, bearer)],
    }
}

/// Builds the upstream request headers: the client's headers minus the dropped ones, `anthropic-version`
/// defaulted, `accept-encoding: identity` (the client's own must not reach the upstream: a compressing upstream may
/// hold SSE events back to fill its compressor; one that compresses anyway is decoded by the HTTP client), the
/// upstream's own
/// configured headers (which override), then the upstream credential (from [`credential_headers`]).
pub fn upstream_request_headers(
    client: &HeaderMap,
    upstream: &UpstreamConfig,
    credentials: &[(HeaderName, HeaderValue)],
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(client.len() + 4);
    for (name, value) in client {
        if !drop_request_header(name) {
            out.append(name.clone(), value.clone());
        }
    }
    if !out.contains_key(&ANTHROPIC_VERSION) {
        out.insert(ANTHROPIC_VERSION, HeaderValue::from_static("2023-06-01"));
    }
    out.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    for (name, value) in &upstream.headers {
        if name.as_str() == "anthropic-beta" {
            merge_beta(&mut out, value);
        } else {
            out.insert(name.clone(), value.clone());
        }
    }
    for (name, value) in credentials {
        out.insert(name.clone(), value.clone());
    }
    out
}

/// Appends configured beta flags to the client's, keeping the client's order and dropping duplicates: a client
/// flag must never be lost (a body field without its beta is a hard 400).
fn merge_beta(out: &mut HeaderMap, extra: &HeaderValue) {
    let mut flags: Vec<String> = out
        .get_all("anthropic-beta")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for f in extra
        .to_str()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !flags.iter().any(|x| x == f) {
            flags.push(f.to_string());
        }
    }
    out.remove("anthropic-beta");
    if let Ok(v) = HeaderValue::from_str(&flags.join(",")) {
        out.insert("anthropic-beta", v);
    }
}

/// Response headers passed to the tenant: an allow-list, not a deny-list. A mirror site is untrusted and its
/// answer reaches tenants (and browsers, on the console's origin): `set-cookie`, `access-control-*`,
/// `content-security-policy`, `refresh`, `strict-transport-security` or a `content-type` of `text/html` would act
/// there with CCGate's authority, and any header we do not know of may be the next one. What is kept, and why:
///
/// * `request-id`, `x-request-id`: what Anthropic's support (and the tenant's logs) need to find an exchange;
/// * `retry-after`, `retry-after-ms`, `x-should-retry`: the SDKs and Claude Code back off and retry by them.
///
/// Dropped on purpose: `content-type` (CCGate sets the protocol's own, [`response_content_type`]); `content-length`
/// (set by the caller, and only where the body is passed on unchanged); `cache-control` (SSE answers get CCGate's own
/// `no-cache`); `anthropic-organization-id` and the `anthropic-ratelimit-*` family (they describe *our* account and
/// key, not the tenant's; routing reads the rate-limit ones before they are dropped); hop-by-hop and framing headers.
const PASSED_RESPONSE_HEADERS: [&str; 5] = [
    "request-id",
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
];

pub fn keep_response_header(name: &HeaderName) -> bool {
    PASSED_RESPONSE_HEADERS.contains(&name.as_str())
}

/// The content type of an answer in CCGate's protocols: never the upstream's (which may be `text/html`).
pub fn response_content_type(is_sse: bool) -> HeaderValue {
    if is_sse {
        HeaderValue::from_static("text/event-stream; charset=utf-8")
    } else {
        HeaderValue::from_static("application/json")
    }
}

/// Copies the allowed upstream headers (see [`keep_response_header`]) and sets the protocol's content type.
pub fn copy_response_headers(from: &HeaderMap, to: &mut HeaderMap, is_sse: bool) {
    for (name, value) in from {
        if keep_response_header(name) {
            to.append(name.clone(), value.clone());
        }
    }
    to.insert(header::CONTENT_TYPE, response_content_type(is_sse));
}

/// Drops every header whose value carries our upstream key in a form we recognise (some upstreams echo the
/// credential they were sent). Done before anything reads the headers, so no path can pass the key on.
pub fn drop_key_bearing_headers(headers: &mut HeaderMap, redactor: &super::redact::Redactor) {
    if !headers.values().any(|v| redactor.leaks(v.as_bytes())) {
        return;
    }
    let old = std::mem::take(headers);
    let mut name = None;
    for (n, v) in old {
        // `into_iter` names only the first value of a multi-valued header.
        if let Some(n) = n {
            name = Some(n);
        }
        if let Some(n) = &name {
            if !redactor.leaks(v.as_bytes()) {
                headers.append(n.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(auth: AuthHeader) -> UpstreamConfig {
        let l = crate::config::load::tests_support::upstream();
        UpstreamConfig {
            auth_header: auth,
            ..l
        }
    }

    #[test]
    fn swaps_credentials_and_keeps_the_rest() {
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "tenant".parse().unwrap());
        h.insert("authorization", "Bearer tenant".parse().unwrap());
        h.insert("anthropic-beta", "a,b".parse().unwrap());
        h.insert("x-stainless-lang", "js".parse().unwrap());
        h.insert("accept-encoding", "gzip, br".parse().unwrap());
        h.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        let u = upstream(AuthHeader::XApiKey);
        let out = upstream_request_headers(&h, &u, &credential_headers(&u));
        assert_eq!(out["x-api-key"], "upstream-secret");
        assert!(out.get("authorization").is_none());
        assert_eq!(out["anthropic-beta"], "a,b");
        assert_eq!(out["anthropic-version"], "2023-06-01");
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["x-stainless-lang"], "js");
        assert!(out.get("x-forwarded-for").is_none());
        let u = upstream(AuthHeader::Bearer);
        let out = upstream_request_headers(&h, &u, &credential_headers(&u));
        assert_eq!(out["authorization"], "Bearer upstream-secret");
        assert!(out.get("x-api-key").is_none());
    }

    #[test]
    fn beta_merge_keeps_order_and_dedupes() {
        let mut h = HeaderMap::new();
        h.insert("anthropic-beta", "a, b".parse().unwrap());
        merge_beta(&mut h, &HeaderValue::from_static("b,c"));
        assert_eq!(h["anthropic-beta"], "a,b,c");
    }

    #[test]
    fn response_headers_are_allow_listed() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("anthropic-ratelimit-requests-remaining", "1"),
            ("anthropic-organization-id", "org"),
            ("set-cookie", "a=b"),
            ("access-control-allow-origin", "*"),
            ("content-security-policy", "default-src *"),
            ("refresh", "0; url=https://evil"),
            ("strict-transport-security", "max-age=1"),
            ("content-type", "text/html"),
            ("content-length", "5"),
            ("x-unknown", "1"),
            ("request-id", "req_1"),
            ("retry-after", "3"),
            ("x-should-retry", "true"),
        ] {
            from.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let mut to = HeaderMap::new();
        copy_response_headers(&from, &mut to, false);
        let mut names: Vec<&str> = to.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "content-type",
                "request-id",
                "retry-after",
                "x-should-retry"
            ]
        );
        assert_eq!(to["content-type"], "application/json");
        let mut to = HeaderMap::new();
        copy_response_headers(&from, &mut to, true);
        assert_eq!(to["content-type"], "text/event-stream; charset=utf-8");
    }

    #[test]
    fn key_bearing_headers_are_dropped() {
        let r = crate::forward::redact::Redactor::new("upstream-secret-key").unwrap();
        let mut h = HeaderMap::new();
        h.append(
            "x-echo",
            HeaderValue::from_static("Bearer upstream-secret-key"),
        );
        h.append("x-multi", HeaderValue::from_static("fine"));
        h.append("x-multi", HeaderValue::from_static("upstream-secret-key"));
        h.append("request-id", HeaderValue::from_static("req_1"));
        drop_key_bearing_headers(&mut h, &r);
        assert!(h.get("x-echo").is_none());
        assert_eq!(h.get_all("x-multi").iter().count(), 1);
        assert_eq!(h["x-multi"], "fine");
        assert_eq!(h["request-id"], "req_1");
    }
}
