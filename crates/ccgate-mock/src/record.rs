//! Request recording: what the upstream saw, for assertions in tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::ser::{Serialize, SerializeStruct, Serializer};

/// One request as received by the mock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// Path without the query string.
    pub path: String,
    pub query: Option<String>,
    /// Header names are lowercase; order and duplicates are kept.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl RecordedRequest {
    /// First value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All values of a header.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Body parsed as JSON (`Value::Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Body as text (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// JSON shape used by `GET /_mock/requests`:
/// `{method, path, query, headers: [[name, value], …], body, body_base64}`;
/// `body` is the UTF-8 text, or base64 with `body_base64: true` if the body is not UTF-8.
impl Serialize for RecordedRequest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RecordedRequest", 6)?;
        st.serialize_field("method", &self.method)?;
        st.serialize_field("path", &self.path)?;
        st.serialize_field("query", &self.query)?;
        st.serialize_field("headers", &self.headers)?;
        match std::str::from_utf8(&self.body) {
            Ok(text) => {
                st.serialize_field("body", text)?;
                st.serialize_field("body_base64", &false)?;
            }
            Err(_) => {
                let b64 = base64::engine::general_purpose::STANDARD.encode(&self.body);
                st.serialize_field("body", &b64)?;
                st.serialize_field("body_base64", &true)?;
            }
        }
        st.end()
    }
}

/// At most this many requests are kept (the oldest are dropped), so a long run with recording
/// left on cannot exhaust memory.
pub const MAX_RECORDED: usize = 100_000;

/// Shared store of recorded requests plus a counter of all API requests served.
#[derive(Default)]
pub struct Recorder {
    list: Mutex<VecDeque<RecordedRequest>>,
    count: AtomicU64,
}

impl Recorder {
    pub fn count_one(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn push(&self, r: RecordedRequest) {
        let mut list = self.list.lock();
        if list.len() >= MAX_RECORDED {
            list.pop_front();
        }
        list.push_back(r);
    }

    pub fn snapshot(&self) -> Vec<RecordedRequest> {
        self.list.lock().iter().cloned().collect()
    }

    pub fn last(&self) -> Option<RecordedRequest> {
        self.list.lock().back().cloned()
    }

    pub fn clear(&self) {
        self.list.lock().clear();
        self.count.store(0, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
