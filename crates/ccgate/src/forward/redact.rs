//! Cutting our upstream key out of what an upstream sends back.
//!
//! A mirror site is untrusted: it may echo the key it was sent, on purpose or through a debugging error page, and
//! everything it answers reaches a tenant. The key is looked for in the forms a tenant could turn back into it:
//!
//! * raw bytes, and every character `\u`-escaped (lower- and upper-case hex), which any JSON reader decodes;
//! * base64, standard and URL-safe, at each of the three alignments the key can have inside an encoded blob;
//! * in JSON documents (error bodies, `data:` lines of SSE events), after decoding: an escape mix such as
//!   `s\u006b-…` matches no fixed byte pattern, so a document that contains escapes is parsed and its decoded
//!   strings are searched. Only a document found to hold the key is re-serialised; all others pass untouched.
//!
//! Keys shorter than [`MIN_KEY_LEN`] are not redacted: their bytes turn up in ordinary text, and cutting them would
//! corrupt answers. Every searcher is built once per upstream, at config load.

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use memchr::memmem::Finder;
use serde_json::Value;
use std::borrow::Cow;

/// Shortest key that is redacted.
pub const MIN_KEY_LEN: usize = 8;

/// What replaces a found key.
pub const MASK: &str = "[redacted]";

pub struct Redactor {
    key: Box<str>,
    /// Raw, `\u`-escaped and base64 forms (deduplicated).
    finders: Vec<Finder<'static>>,
    /// The short JSON escapes that stand for a character of the key (`\/`, `\\`, `\"`, when the key has it): a
    /// document containing one may hold an escaped key that no fixed pattern matches, so it is decoded. Other
    /// escapes (`\n`, common in text) cannot, so they cost no decoding.
    escapes: Vec<Finder<'static>>,
    /// `\u`, checked for the character it stands for (see [`Redactor::has_escape`]).
    u_escape: Finder<'static>,
    /// The ASCII characters of the key; `None` when the key is not ASCII (then any `\u` escape counts).
    key_chars: Option<[bool; 128]>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("Redactor")
            .field("patterns", &self.finders.len())
            .finish()
    }
}

impl Redactor {
    /// `None` when the key is too short to be redacted safely (or empty: no key configured).
    pub fn new(key: &str) -> Option<Redactor> {
        if key.len() < MIN_KEY_LEN {
            return None;
        }
        let mut patterns: Vec<Vec<u8>> = vec![key.as_bytes().to_vec()];
        for upper in [false, true] {
            let mut esc = String::with_capacity(key.len() * 6);
            for unit in key.encode_utf16() {
                if upper {
                    esc.push_str(&format!("\\u{unit:04X}"));
                } else {
                    esc.push_str(&format!("\\u{unit:04x}"));
                }
            }
            patterns.push(esc.into_bytes());
        }
        patterns.extend(base64_forms(key.as_bytes()));
        patterns.sort();
        patterns.dedup();
        Some(Redactor {
            key: key.into(),
            finders: patterns
                .iter()
                .map(|p| Finder::new(p).into_owned())
                .collect(),
            escapes: [("\\/", '/'), ("\\\\", '\\'), ("\\\"", '"')]
                .into_iter()
                .filter(|(_, c)| key.contains(*c))
                .map(|(e, _)| Finder::new(e).into_owned())
                .collect(),
            u_escape: Finder::new(b"\\u").into_owned(),
            key_chars: key.is_ascii().then(|| {
                let mut set = [false; 128];
                for b in key.bytes() {
                    set[usize::from(b)] = true;
                }
                set
            }),
        })
    }

    /// `true` when `bytes` hold the key in a form we search for (raw, escaped or base64).
    pub fn leaks(&self, bytes: &[u8]) -> bool {
        self.finders.iter().any(|f| f.find(bytes).is_some())
            || (self.has_escape(bytes) && {
                // A header or a short value with escapes: decoded as a JSON string body it may reveal the key.
                let quoted = [&b"\""[..], bytes, &b"\""[..]].concat();
                serde_json::from_slice::<String>(&quoted).is_ok_and(|s| s.contains(&*self.key))
            })
    }

    /// A whole JSON document (an error body, a buffered 2xx answer); non-JSON bodies get the byte patterns only.
    pub fn redact_document(&self, body: Bytes) -> Bytes {
        let decoded = match self.redact_json(&body) {
            Some(v) => Bytes::from(v),
            None => body,
        };
        match self.replace_patterns(&decoded) {
            Cow::Borrowed(_) => decoded,
            Cow::Owned(v) => Bytes::from(v),
        }
    }

    /// Whole SSE events (the tee releases only complete events, so a key cannot straddle two calls: it holds no
    /// line end). `data:` lines with escapes are checked after decoding.
    pub fn redact_events(&self, events: Bytes) -> Bytes {
        let decoded = if self.has_escape(&events) {
            self.redact_data_lines(&events)
        } else {
            None
        };
        let current = decoded.map(Bytes::from).unwrap_or(events);
        match self.replace_patterns(&current) {
            Cow::Borrowed(_) => current,
            Cow::Owned(v) => Bytes::from(v),
        }
    }

    /// Whether `bytes` hold an escape that may stand for a character of the key. A `\u` escape counts only when
    /// it stands for one (for an ASCII key): `\u00e9`, or a Go encoder's `\u003c`, in an answer costs no decoding.
    fn has_escape(&self, bytes: &[u8]) -> bool {
        self.escapes.iter().any(|f| f.find(bytes).is_some())
            || self.u_escape.find_iter(bytes).any(|i| {
                let Some(set) = &self.key_chars else {
                    return true;
                };
                let code = bytes
                    .get(i + 2..i + 6)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u16::from_str_radix(h, 16).ok());
                // Cut short or not hex: not an escape a JSON reader decodes.
                code.is_some_and(|c| set.get(usize::from(c)).copied().unwrap_or(false))
            })
    }

    /// Re-serialises `doc` with the key masked in its decoded strings, if it is JSON and holds the key.
    fn redact_json(&self, doc: &[u8]) -> Option<Vec<u8>> {
        // Cheap tests first: without an escape the raw-pattern pass finds every occurrence.
        if !self.has_escape(doc) {
            return None;
        }
        let mut v: Value = serde_json::from_slice(doc).ok()?;
        if !self.redact_value(&mut v) {
            return None;
        }
        serde_json::to_vec(&v).ok()
    }

    fn redact_data_lines(&self, events: &[u8]) -> Option<Vec<u8>> {
        let mut out: Option<Vec<u8>> = None;
        let mut start = 0;
        while start < events.len() {
            let end =
                memchr::memchr2(b'\n', b'\r', &events[start..]).map_or(events.len(), |i| start + i);
            let next = match events.get(end..end + 2) {
                Some(b"\r\n") => end + 2,
                _ => (end + 1).min(events.len()),
            };
            let replaced = events[start..end]
                .strip_prefix(b"data:")
                .filter(|d| self.has_escape(d))
                .and_then(|d| self.redact_json(d.strip_prefix(b" ").unwrap_or(d)));
            if let Some(json) = replaced {
                let buf = out.get_or_insert_with(|| events[..start].to_vec());
                buf.extend_from_slice(b"data: ");
                buf.extend_from_slice(&json);
                buf.extend_from_slice(&events[end..next]);
            } else if let Some(buf) = &mut out {
                buf.extend_from_slice(&events[start..next]);
            }
            start = next;
        }
        out
    }

    /// Masks the key in every string (and object key) of `v`; `true` if anything changed.
    fn redact_value(&self, v: &mut Value) -> bool {
        match v {
            Value::String(s) if s.contains(&*self.key) => {
                *s = s.replace(&*self.key, MASK);
                true
            }
            Value::Array(items) => items
                .iter_mut()
                .fold(false, |acc, i| self.redact_value(i) | acc),
            Value::Object(map) => {
                let mut changed = false;
                if map.keys().any(|k| k.contains(&*self.key)) {
                    let old = std::mem::take(map);
                    for (k, val) in old {
                        map.insert(k.replace(&*self.key, MASK), val);
                    }
                    changed = true;
                }
                map.values_mut()
                    .fold(changed, |acc, i| self.redact_value(i) | acc)
            }
            _ => false,
        }
    }

    fn replace_patterns<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut cur = Cow::Borrowed(bytes);
        for f in &self.finders {
            if let Some(first) = f.find(&cur) {
                let mut out = Vec::with_capacity(cur.len());
                let mut at = 0;
                let mut next = Some(first);
                while let Some(i) = next {
                    out.extend_from_slice(&cur[at..i]);
                    out.extend_from_slice(MASK.as_bytes());
                    at = i + f.needle().len();
                    next = f.find(&cur[at..]).map(|j| at + j);
                }
                out.extend_from_slice(&cur[at..]);
                cur = Cow::Owned(out);
            }
        }
        cur
    }
}

/// The base64 text that any encoding of a blob containing `key` must contain, for each alignment of the key in the
/// blob (0, 1 or 2 bytes before it, modulo 3) and both alphabets: the characters whose 6 bits all come from the
/// key.
fn base64_forms(key: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for align in 0..3usize {
        let mut blob = vec![0u8; align];
        blob.extend_from_slice(key);
        let first = (8 * align).div_ceil(6);
        let end = 8 * (align + key.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = engine.encode(&blob);
            if let Some(s) = enc.as_bytes().get(first..end) {
                out.push(s.to_vec());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-api03-SECRET+/key_value-0123456789";

    fn r() -> Redactor {
        Redactor::new(KEY).unwrap()
    }

    fn escaped(s: &str, every: usize) -> String {
        s.chars()
            .enumerate()
            .map(|(i, c)| {
                if i % every == 0 {
                    format!("\\u{:04x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect()
    }

    #[test]
    fn short_keys_are_not_redacted() {
        assert!(Redactor::new("").is_none());
        assert!(Redactor::new("1234567").is_none());
        assert!(Redactor::new("12345678").is_some());
    }

    #[test]
    fn raw_escaped_and_mixed_forms_in_json() {
        for form in [
            KEY.to_string(),
            escaped(KEY, 1),
            escaped(KEY, 2),
            escaped(KEY, 5),
        ] {
            let body = format!(
                r#"{{"type":"error","error":{{"type":"x","message":"bad key {form} here"}}}}"#
            );
            let out = r().redact_document(Bytes::from(body.clone()));
            let v: Value = serde_json::from_slice(&out).unwrap();
            let msg = v["error"]["message"].as_str().unwrap();
            assert!(!msg.contains(KEY), "{form}: {msg}");
            assert!(msg.contains(MASK), "{msg}");
        }
        let upper = KEY
            .chars()
            .map(|c| format!("\\u{:04X}", c as u32))
            .collect::<String>();
        let out = r().redact_document(Bytes::from(format!("not json {upper}")));
        assert!(!String::from_utf8_lossy(&out).contains(&upper));
    }

    #[test]
    fn base64_at_every_alignment() {
        for prefix in ["", "x", "xy", "xyz"] {
            let blob = format!("{prefix}{KEY}tail");
            for enc in [
                base64::engine::general_purpose::STANDARD.encode(&blob),
                base64::engine::general_purpose::URL_SAFE.encode(&blob),
            ] {
                let out = r().redact_document(Bytes::from(format!("{{\"d\":\"{enc}\"}}")));
                assert!(!String::from_utf8_lossy(&out).contains(&enc), "{prefix:?}");
                assert!(r().leaks(enc.as_bytes()));
            }
        }
    }

    #[test]
    fn untouched_when_absent() {
        let body = Bytes::from_static(br#"{"b":"\u00e9t\u00e9","a":1}"#);
        let out = r().redact_document(body.clone());
        assert_eq!(out, body, "no key: not re-serialised, key order kept");
        let ev = Bytes::from_static(b"event: x\ndata: {\"t\":\"\\u00e9\"}\n\n");
        assert_eq!(r().redact_events(ev.clone()), ev);
    }

    #[test]
    fn sse_events_raw_and_decoded() {
        let ev = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"message\":\"{}\"}}}}\r\n\r\nevent: ping\ndata: {{\"k\":\"{KEY}\"}}\n\n",
            escaped(KEY, 3)
        );
        let out = r().redact_events(Bytes::from(ev));
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(!text.contains(KEY), "{text}");
        let datas: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(datas.len(), 2, "{text}");
        for d in datas {
            let v: Value = serde_json::from_str(d).unwrap();
            assert!(!v.to_string().contains(KEY));
        }
        assert!(text.contains("\r\n\r\nevent: ping\n"), "{text}");
    }

    #[test]
    fn header_values() {
        assert!(r().leaks(format!("Bearer {KEY}").as_bytes()));
        assert!(r().leaks(escaped(KEY, 2).as_bytes()));
        assert!(!r().leaks(b"req_0123"));
    }

    /// The cost of the stream scan on a typical answer (run with `--release -- --ignored --nocapture`): every
    /// chunk passes all the searchers, and escape-free events (most of them) are never parsed.
    #[test]
    #[ignore]
    fn stream_scan_cost() {
        let r = r();
        let mut ev = String::new();
        for i in 0..20 {
            ev.push_str(&format!(
                "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"Some ordinary words of an answer, number {i}, with a newline\\n and more.\"}}}}\n\n"
            ));
        }
        let chunk = Bytes::from(ev);
        for (label, chunk) in [
            ("plain", chunk.clone()),
            (
                "with \\u escapes",
                Bytes::from(String::from_utf8_lossy(&chunk).replace("more.", "more \\u00e9.")),
            ),
        ] {
            let n = 20_000;
            let t = std::time::Instant::now();
            for _ in 0..n {
                std::hint::black_box(r.redact_events(chunk.clone()));
            }
            let per = t.elapsed() / n;
            let mbps = chunk.len() as f64 / per.as_secs_f64() / 1e6;
            println!(
                "{label}: {} B chunk: {per:?} per chunk, {mbps:.0} MB/s",
                chunk.len()
            );
        }
    }
}
