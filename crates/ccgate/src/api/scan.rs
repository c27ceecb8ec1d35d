//! A lazy scan of a request body: finds the few top-level fields the gateway needs (`model`, `stream`,
//! `max_tokens`, `metadata.user_id`) without building a JSON tree of a 100 KB Claude Code body. It reads the
//! top-level object's keys and scalars itself and hands nested objects and arrays to [`skip_container`], which
//! checks that their brackets balance at SIMD speed; only the interesting values are decoded. The body itself is
//! forwarded as the original bytes.

use std::ops::Range;

use ccgate_meter::json_skip::skip_container;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scanned {
    pub model: Option<String>,
    /// Byte range of the `model` value (including quotes), for a surgical rewrite.
    pub model_span: Option<Range<usize>>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    /// `metadata.user_id`, raw (Claude Code sends a JSON string with a `session_id` inside).
    pub user_id: Option<String>,
    /// OpenAI's `user` field.
    pub user: Option<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ScanError(pub String);

/// Scans a JSON object body.
pub fn scan(body: &[u8]) -> Result<Scanned, ScanError> {
    let mut s = Scanner { b: body, i: 0 };
    s.ws();
    if s.peek() != Some(b'{') {
        return Err(ScanError("request body must be a JSON object".into()));
    }
    s.i += 1;
    let mut out = Scanned::default();
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
        return s.end(out);
    }
    loop {
        s.ws();
        let key = s.string_span()?;
        s.ws();
        if s.peek() != Some(b':') {
            return Err(s.err("expected ':' after an object key"));
        }
        s.i += 1;
        s.ws();
        let vstart = s.i;
        s.skip_value()?;
        let vspan = vstart..s.i;
        let val = &body[vspan.clone()];
        match &body[key.start + 1..key.end - 1] {
            b"model" => {
                out.model = Some(
                    decode_string(val)
                        .ok_or_else(|| ScanError("model: expected a string".into()))?,
                );
                out.model_span = Some(vspan);
            }
            b"stream" => out.stream = val == b"true",
            b"max_tokens" => {
                out.max_tokens = std::str::from_utf8(val).ok().and_then(|t| t.parse().ok())
            }
            b"user" => out.user = decode_string(val),
            b"metadata" => {
                #[derive(serde::Deserialize)]
                struct Meta {
                    user_id: Option<String>,
                }
                out.user_id = serde_json::from_slice::<Meta>(val)
                    .ok()
                    .and_then(|m| m.user_id);
            }
            _ => {}
        }
        s.ws();
        match s.peek() {
            Some(b',') => s.i += 1,
            Some(b'}') => {
                s.i += 1;
                return s.end(out);
            }
            _ => return Err(s.err("expected ',' or '}' in the top-level object")),
        }
    }
}

fn decode_string(val: &[u8]) -> Option<String> {
    if val.first() != Some(&b'"') {
        return None;
    }
    // Fast path: no escapes.
    let inner = &val[1..val.len().saturating_sub(1)];
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok().map(str::to_owned);
    }
    serde_json::from_slice::<String>(val).ok()
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn err(&self, what: &str) -> ScanError {
        ScanError(format!("malformed JSON: {what} at byte {}", self.i))
    }

    fn end(mut self, out: Scanned) -> Result<Scanned, ScanError> {
        self.ws();
        if self.i != self.b.len() {
            return Err(self.err("unexpected data after the JSON object"));
        }
        Ok(out)
    }

    fn ws(&mut self) {
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    /// Skips a string starting at a quote; returns its span including quotes.
    fn string_span(&mut self) -> Result<Range<usize>, ScanError> {
        if self.peek() != Some(b'"') {
            return Err(self.err("expected a string"));
        }
        let start = self.i;
        let mut j = self.i + 1;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[j..]) {
                None => return Err(self.err("unterminated string")),
                Some(k) => {
                    j += k;
                    if self.b[j] == b'\\' {
                        j += 2;
                        if j > self.b.len() {
                            return Err(self.err("unterminated string"));
                        }
                    } else {
                        self.i = j + 1;
                        return Ok(start..self.i);
                    }
                }
            }
        }
    }

    /// Skips any JSON value. Objects and arrays go to [`skip_container`] (brackets pair up, strings end); a
    /// top-level string or literal is checked here.
    fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.peek() {
            None => Err(self.err("unexpected end of body")),
            Some(b'"') => self.string_span().map(drop),
            Some(b'{' | b'[') => {
                self.i = skip_container(self.b, self.i)
                    .map_err(|e| ScanError(format!("malformed JSON: {e}")))?;
                Ok(())
            }
            Some(_) => {
                // number, true, false, null: run to the next delimiter.
                let start = self.i;
                while let Some(c) = self.peek() {
                    if matches!(
                        c,
                        b',' | b'}' | b']' | b':' | b' ' | b'\n' | b'\r' | b'\t' | b'"'
                    ) {
                        break;
                    }
                    self.i += 1;
                }
                let lit = &self.b[start..self.i];
                let ok = lit == b"true"
                    || lit == b"false"
                    || lit == b"null"
                    || (!lit.is_empty()
                        && lit.iter().all(|c| {
                            c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                        }));
                if ok {
                    Ok(())
                } else {
                    Err(self.err("invalid literal"))
                }
            }
        }
    }
}

/// Replaces the `model` value in `body` with `new_model`, keeping every other byte.
pub fn rewrite_model(body: &[u8], span: &Range<usize>, new_model: &str) -> Vec<u8> {
    let quoted = serde_json::to_string(new_model).unwrap_or_else(|_| format!("\"{new_model}\""));
    let mut out = Vec::with_capacity(body.len() + quoted.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(quoted.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fields_and_skips_the_rest() {
        let body = br#"{"messages":[{"role":"user","content":"hi \"model\": x {"}],"model":"claude-sonnet-4-6","stream":true,
            "metadata":{"user_id":"{\"session_id\":\"abc\"}"},"max_tokens":1024,"thinking":{"type":"adaptive"}}"#;
        let s = scan(body).unwrap();
        assert_eq!(s.model.as_deref(), Some("claude-sonnet-4-6"));
        assert!(s.stream);
        assert_eq!(s.max_tokens, Some(1024));
        assert_eq!(s.user_id.as_deref(), Some(r#"{"session_id":"abc"}"#));
        let span = s.model_span.unwrap();
        let rewritten = rewrite_model(body, &span, "other");
        let v: serde_json::Value = serde_json::from_slice(&rewritten).unwrap();
        assert_eq!(v["model"], "other");
        assert_eq!(v["thinking"]["type"], "adaptive");
    }

    #[test]
    fn finds_fields_behind_a_claude_code_sized_body() {
        // Long strings full of brackets, quotes and backslashes, nested tool schemas, and the fields the gateway
        // reads placed after all of it, so the skip has to get every block edge right to find them.
        let tricky = "}]\"\\{[ \\\\\" \\n x".repeat(40);
        let messages: Vec<serde_json::Value> = (0..120)
            .map(|i| {
                serde_json::json!({"role": if i % 2 == 0 { "user" } else { "assistant" },
                    "content": [{"type": "text", "text": format!("{i} {tricky}")},
                                {"type": "tool_result", "tool_use_id": format!("t{i}"), "content": [{"type":"text","text": tricky}]}]})
            })
            .collect();
        let tools: Vec<serde_json::Value> = (0..24)
            .map(|i| serde_json::json!({"name": format!("tool_{i}"), "description": tricky,
                "input_schema": {"type":"object","properties":{"a":{"type":"array","items":{"type":"string","enum":["]","}"]}}}}}))
            .collect();
        let body = serde_json::json!({
            "system": [{"type": "text", "text": tricky, "cache_control": {"type": "ephemeral"}}],
            "messages": messages,
            "tools": tools,
            "metadata": {"user_id": "{\"session_id\":\"s-1\"}"},
            "max_tokens": 32000,
            "stream": true,
            "model": "claude-sonnet-4-6",
        });
        for text in [
            serde_json::to_vec(&body).unwrap(),
            serde_json::to_vec_pretty(&body).unwrap(),
        ] {
            assert!(text.len() > 64 * 1024);
            let s = scan(&text).unwrap();
            assert_eq!(s.model.as_deref(), Some("claude-sonnet-4-6"));
            assert!(s.stream);
            assert_eq!(s.max_tokens, Some(32000));
            assert_eq!(s.user_id.as_deref(), Some(r#"{"session_id":"s-1"}"#));
            let rewritten = rewrite_model(&text, &s.model_span.unwrap(), "other");
            let mut want = body.clone();
            want["model"] = "other".into();
            assert_eq!(
                serde_json::from_slice::<serde_json::Value>(&rewritten).unwrap(),
                want
            );
            // One bracket too many deep inside is caught.
            let mut broken = text.clone();
            let at = broken.windows(6).position(|w| w == b"\"tool_").unwrap();
            broken.insert(at, b'[');
            assert!(scan(&broken).is_err());
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            &b"{"[..],
            b"[]",
            b"{\"model\":}",
            b"{\"a\":[1,2}",
            b"{\"a\":\"x}",
            b"{} x",
            b"{\"a\":tru}",
            b"",
        ] {
            assert!(scan(bad).is_err(), "{:?}", std::str::from_utf8(bad));
        }
        assert!(scan(b"{\"model\":5}").is_err());
        assert_eq!(scan(b" {} ").unwrap(), Scanned::default());
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_serde_on_valid_json(model in "[a-z0-9\\-\"\\\\é]{0,12}", stream: bool, n in 0u64..100000) {
            let v = serde_json::json!({"x":[{"y":"}]"}], "model": model, "stream": stream, "max_tokens": n, "z": null});
            let bytes = serde_json::to_vec(&v).unwrap();
            let s = scan(&bytes).unwrap();
            proptest::prop_assert_eq!(s.model.as_deref(), Some(model.as_str()));
            proptest::prop_assert_eq!(s.stream, stream);
            proptest::prop_assert_eq!(s.max_tokens, Some(n));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = scan(&bytes);
        }
    }
}
