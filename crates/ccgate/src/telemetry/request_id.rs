//! Request ids: every request gets one, answered in `x-request-id` on every response (errors and `/openai`
//! included), written into its ledger row and its access-log line, and carried by the log events of its span.
//!
//! A client may send its own `x-request-id` (a trace id from its side). A sane one (1 to [`MAX_CLIENT_ID`]
//! characters of `A-Z a-z 0-9 - _ . : / + = @`) is reused: it is what `x-request-id` answers and what the logs
//! show. It is never the ledger's row key, though: a client can send the same id twice (a retry, a bug, or on
//! purpose), and `requests.request_id` must stay unique, since the crash-journal replay decides by it whether a
//! request in flight at a crash was stored after all. So the gateway always makes its own id (a UUIDv7: unique and
//! time-ordered) for `request_id`, and keeps the client's beside it in `client_request_id`. Without a client id,
//! the two are one: `x-request-id` is the row's `request_id`.
//!
//! The upstream's own id (Anthropic's `request-id` header) is stored as `upstream_request_id` and passed on to the
//! client in `request-id`.

use http::{HeaderMap, HeaderValue};

/// `x-request-id`, as a constant so inserting it does not allocate.
pub const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Longest client id reused; a longer one is replaced (it would be stored and logged with every row).
pub const MAX_CLIENT_ID: usize = 128;

/// The ids of one request, put into the request's extensions by the listener (`server/mod.rs`).
#[derive(Debug, Clone)]
pub struct RequestId {
    /// Made by the gateway: the ledger's unique row key.
    pub gateway: String,
    /// The client's `x-request-id`, when it sent a sane one.
    pub client: Option<String>,
}

impl RequestId {
    /// A fresh id, reusing the client's `x-request-id` if it is sane.
    pub fn for_request(headers: &HeaderMap) -> RequestId {
        RequestId {
            gateway: uuid::Uuid::now_v7().to_string(),
            client: headers
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .filter(|v| is_sane(v))
                .map(str::to_owned),
        }
    }

    /// The id the client is answered with and the logs show: its own if it sent one, else the gateway's.
    pub fn shown(&self) -> &str {
        self.client.as_deref().unwrap_or(&self.gateway)
    }

    pub fn header_value(&self) -> Option<HeaderValue> {
        // Both kinds are checked ASCII, so this cannot fail; a failure would only drop the header.
        HeaderValue::from_str(self.shown()).ok()
    }
}

/// Printable, bounded, and from a charset that cannot forge a log line, a header or a JSON field.
pub fn is_sane(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CLIENT_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(id: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_str(id).unwrap());
        h
    }

    #[test]
    fn a_sane_client_id_is_reused_and_the_row_key_stays_the_gateways() {
        let id = RequestId::for_request(&with("trace-42:abc/DEF=="));
        assert_eq!(id.client.as_deref(), Some("trace-42:abc/DEF=="));
        assert_eq!(id.shown(), "trace-42:abc/DEF==");
        assert!(uuid::Uuid::parse_str(&id.gateway).is_ok());
        let again = RequestId::for_request(&with("trace-42:abc/DEF=="));
        assert_ne!(id.gateway, again.gateway, "row keys never repeat");
    }

    #[test]
    fn insane_client_ids_are_replaced() {
        for bad in [
            "",
            "has space",
            "quote\"",
            "json}{",
            "tab\there",
            &"a".repeat(MAX_CLIENT_ID + 1),
            "caf\u{e9}",
        ] {
            let Ok(v) = HeaderValue::from_str(bad) else {
                continue;
            };
            let mut h = HeaderMap::new();
            h.insert(X_REQUEST_ID, v);
            let id = RequestId::for_request(&h);
            assert_eq!(id.client, None, "{bad:?}");
            assert_eq!(id.shown(), id.gateway);
        }
        assert!(is_sane(&"a".repeat(MAX_CLIENT_ID)));
    }

    #[test]
    fn without_a_client_id_the_gateways_is_shown() {
        let id = RequestId::for_request(&HeaderMap::new());
        assert_eq!(id.shown(), id.gateway);
        assert_eq!(id.header_value().unwrap(), id.gateway.as_str());
    }
}
