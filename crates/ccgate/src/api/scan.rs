//! Reads the few top-level fields the gateway needs from a request body (`model`, `stream`, `max_tokens`, `user`,
//! `metadata.user_id`, and for the upstream trust checks `thinking` and the number of `messages`) without building
//! a JSON tree of a 100 KB Claude Code body: serde_json validates the whole body in one pass, and every top-level
//! value stays a [`RawValue`] borrowed from it, so only the interesting ones are decoded. The `messages` entries are
//! counted in that same pass (trust reads them on every request: docs/trust.md). The body itself is forwarded as the
//! original bytes.
//!
//! Duplicate top-level keys are refused, compared after unescaping: the gateway checks `model` against allow-lists
//! while the upstream reads the same body with its own parser, and `{"model":"a","\u006dodel":"b"}` must not let
//! the two see different models.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Scanned {
    pub model: Option<String>,
    /// Byte range of the `model` value (including quotes), for a surgical rewrite.
    pub model_span: Option<Range<usize>>,
    pub stream: bool,
    pub max_tokens: Option<u64>,
    /// Byte range of the `max_tokens` value, for a clamp to `limits.maxOutputTokens`.
    pub max_tokens_span: Option<Range<usize>>,
    /// `metadata.user_id`, raw (Claude Code sends a JSON string with a `session_id` inside).
    pub user_id: Option<String>,
    /// OpenAI's `user` field.
    pub user: Option<String>,
    /// `thinking` is present and neither `null` nor `{"type":"disabled"}`.
    pub thinking: bool,
    /// Entries of a `messages` array (0 when absent or not an array).
    pub messages: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub struct ScanError(pub String);

/// Scans a JSON object body.
pub fn scan(body: &[u8]) -> Result<Scanned, ScanError> {
    let top = parse_top_level(body, true)?;
    let mut out = Scanned {
        messages: top.messages,
        ..Scanned::default()
    };
    for (key, raw) in top.members {
        let text = raw.get();
        match &*key {
            "model" => {
                out.model = Some(
                    serde_json::from_str::<String>(text)
                        .map_err(|_| ScanError("model: expected a string".into()))?,
                );
                out.model_span = Some(span_in(body, raw)?);
            }
            "stream" => out.stream = serde_json::from_str::<bool>(text).unwrap_or(false),
            "max_tokens" => {
                // A number written as `64000.0` or `1e9` still asks for that many tokens: read it, rounded up and
                // saturated, so neither the budget's worst case nor `maxOutputTokens` can be slipped past.
                out.max_tokens = serde_json::from_str::<u64>(text).ok().or_else(|| {
                    serde_json::from_str::<f64>(text)
                        .ok()
                        .filter(|f| f.is_finite() && *f >= 0.0)
                        .map(|f| f.ceil() as u64)
                });
                out.max_tokens_span = Some(span_in(body, raw)?);
            }
            "user" => out.user = serde_json::from_str::<String>(text).ok(),
            "thinking" => {
                #[derive(serde::Deserialize)]
                struct Thinking<'a> {
                    #[serde(borrow, rename = "type")]
                    kind: Option<Cow<'a, str>>,
                }
                out.thinking = text != "null"
                    && serde_json::from_str::<Thinking<'_>>(text)
                        .is_ok_and(|t| t.kind.as_deref() != Some("disabled"));
            }
            "metadata" => {
                #[derive(serde::Deserialize)]
                struct Meta {
                    user_id: Option<String>,
                }
                out.user_id = serde_json::from_str::<Meta>(text)
                    .ok()
                    .and_then(|m| m.user_id);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The members of the top-level object in body order, keys unescaped, values as raw text borrowed from `body`.
/// Fails on anything that is not exactly one valid JSON object, and on a repeated key.
pub(crate) fn top_level(body: &[u8]) -> Result<Vec<(Cow<'_, str>, &RawValue)>, ScanError> {
    parse_top_level(body, false).map(|t| t.members)
}

/// [`top_level`], optionally counting the entries of `messages` instead of keeping its raw value.
fn parse_top_level(body: &[u8], count_messages: bool) -> Result<TopLevel<'_>, ScanError> {
    let malformed = |e: serde_json::Error| ScanError(format!("malformed JSON: {e}"));
    let mut de = serde_json::Deserializer::from_slice(body);
    let top = TopLevelSeed { count_messages }
        .deserialize(&mut de)
        .map_err(malformed)?;
    de.end().map_err(malformed)?;
    Ok(top)
}

/// Where `raw` lies in `body`. `raw` must have been borrowed from `body` (as [`top_level`] returns it).
pub(crate) fn span_in(body: &[u8], raw: &RawValue) -> Result<Range<usize>, ScanError> {
    let text = raw.get();
    (text.as_ptr() as usize)
        .checked_sub(body.as_ptr() as usize)
        .map(|start| start..start + text.len())
        .filter(|r| r.end <= body.len())
        .ok_or_else(|| ScanError("internal: value not borrowed from the body".into()))
}

struct TopLevel<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
    messages: u32,
}

struct TopLevelSeed {
    count_messages: bool,
}

impl<'de> DeserializeSeed<'de> for TopLevelSeed {
    type Value = TopLevel<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<TopLevel<'de>, D::Error> {
        d.deserialize_map(TopLevelVisitor {
            count_messages: self.count_messages,
        })
    }
}

struct TopLevelVisitor {
    count_messages: bool,
}

impl<'de> Visitor<'de> for TopLevelVisitor {
    type Value = TopLevel<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("the request body to be a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel<'de>, A::Error> {
        let mut members: Vec<(Cow<'de, str>, &'de RawValue)> = Vec::new();
        let mut messages = 0;
        let mut seen: HashSet<Cow<'de, str>> = HashSet::new();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            if self.count_messages && key == "messages" {
                // Counted while it is validated: a second pass over the largest value of the body would cost
                // as much as the whole scan.
                messages = map.next_value::<EntryCount>()?.0;
            } else {
                members.push((key, map.next_value()?));
            }
        }
        Ok(TopLevel { members, messages })
    }
}

/// The number of entries of a JSON array; any other value is validated and counts 0.
struct EntryCount(u32);

impl<'de> serde::Deserialize<'de> for EntryCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = EntryCount;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<EntryCount, A::Error> {
                let mut n = 0u32;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n = n.saturating_add(1);
                }
                Ok(EntryCount(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EntryCount, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(EntryCount(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
            fn visit_unit<E>(self) -> Result<EntryCount, E> {
                Ok(EntryCount(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object key, unescaped; borrowed from the body when it holds no escape.
struct Key<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
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

/// Replaces the value at `span` (a number) with `value`, keeping every other byte.
pub fn rewrite_number(body: &[u8], span: &Range<usize>, value: u64) -> Vec<u8> {
    let digits = value.to_string();
    let mut out = Vec::with_capacity(body.len() + digits.len());
    out.extend_from_slice(&body[..span.start]);
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(&body[span.end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_tokens_is_rewritten_in_place() {
        let body = br#"{"max_tokens" : 64000 ,"model":"m","x":[1,2]}"#;
        let s = scan(body).unwrap();
        let out = rewrite_number(body, &s.max_tokens_span.unwrap(), 4096);
        assert_eq!(out, br#"{"max_tokens" : 4096 ,"model":"m","x":[1,2]}"#);
        for (text, n) in [
            ("64000.0", Some(64000)),
            ("1e300", Some(u64::MAX)),
            ("99.2", Some(100)),
            ("-1", None),
            ("\"5\"", None),
        ] {
            let body = format!(r#"{{"max_tokens":{text}}}"#);
            assert_eq!(scan(body.as_bytes()).unwrap().max_tokens, n, "{text}");
        }
    }

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
        assert!(s.thinking);
        assert_eq!(s.messages, 1);
    }

    #[test]
    fn counts_messages_and_reads_thinking_for_the_trust_checks() {
        let s = scan(br#"{"messages":[{"role":"user","content":"[1,2]"},{"role":"assistant","content":[]},"x"],"thinking":{"type":"enabled","budget_tokens":1024}}"#).unwrap();
        assert_eq!((s.messages, s.thinking), (3, true));
        for (body, messages, thinking) in [
            (
                &br#"{"messages":[],"thinking":{"type":"disabled"}}"#[..],
                0,
                false,
            ),
            (br#"{"messages":"x","thinking":null}"#, 0, false),
            (br#"{"messages":{"a":[1]},"thinking":{}}"#, 0, true),
            (br#"{"model":"m"}"#, 0, false),
        ] {
            let s = scan(body).unwrap();
            assert_eq!(
                (s.messages, s.thinking),
                (messages, thinking),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        // Counting still validates every entry, and a repeated `messages` is refused like any key.
        assert!(scan(br#"{"messages":[{"a":}]}"#).is_err());
        assert!(scan(br#"{"messages":[],"messages":[1]}"#).is_err());
        // `top_level` keeps `messages` as a member for its other readers.
        let members = top_level(br#"{"messages":[1,2]}"#).unwrap();
        assert_eq!(members[0].1.get(), "[1,2]");
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
        assert!(scan(b"{\"model\":null}").is_err());
        assert!(scan(b"{\"a\":1,}").is_err());
        assert!(scan(b"{\"a\":\"\xff\"}").is_err());
        assert_eq!(scan(b" {} ").unwrap(), Scanned::default());
    }

    #[test]
    fn rejects_duplicate_keys_plain_and_escaped() {
        for (body, key) in [
            (
                &br#"{"model":"claude-sonnet-4-6","model":"claude-opus-4-6"}"#[..],
                "model",
            ),
            (
                br#"{"model":"claude-sonnet-4-6","\u006dodel":"claude-opus-4-6"}"#,
                "model",
            ),
            (
                br#"{"\u006dodel":"claude-opus-4-6","model":"claude-sonnet-4-6"}"#,
                "model",
            ),
            (
                br#"{"stream":false,"model":"m","str\u0065am":true}"#,
                "stream",
            ),
            (br#"{"x":1,"model":"m","x":{"y":2}}"#, "x"),
        ] {
            let err = scan(body).unwrap_err();
            assert!(
                err.0.contains(&format!("duplicate key `{key}`")),
                "{}: {}",
                String::from_utf8_lossy(body),
                err.0
            );
        }
        // The same name in a nested object is not a top-level duplicate.
        let s = scan(br#"{"metadata":{"model":"x"},"model":"m"}"#).unwrap();
        assert_eq!(s.model.as_deref(), Some("m"));
    }

    #[test]
    fn model_span_points_at_the_value() {
        for body in [
            &br#"{"model":"claude-sonnet-4-6"}"#[..],
            br#"{ "a" : "\"model\": \"x\"" ,  "model"  :   "claude-sonnet-4-6"  , "b":[1] }"#,
            b"{\n\t\"model\":\r\n \"claude-sonnet-4-6\"\n}",
        ] {
            let s = scan(body).unwrap();
            let span = s.model_span.unwrap();
            assert_eq!(&body[span], br#""claude-sonnet-4-6""#);
        }
        // An escaped value: the span covers the raw text, the model is decoded.
        let body = br#"{"\u006dodel":"claude-\u0073onnet"}"#;
        let s = scan(body).unwrap();
        assert_eq!(s.model.as_deref(), Some("claude-sonnet"));
        assert_eq!(&body[s.model_span.unwrap()], br#""claude-\u0073onnet""#);
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

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        fn fragment() -> impl Strategy<Value = String> {
            prop_oneof![
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just(",".to_owned()),
                Just(":".to_owned()),
                Just(" ".to_owned()),
                Just("\"model\"".to_owned()),
                Just("\"\\u006dodel\"".to_owned()),
                Just("\"stream\"".to_owned()),
                Just("\"max_tokens\"".to_owned()),
                Just("\"metadata\"".to_owned()),
                Just("\"user_id\"".to_owned()),
                Just("true".to_owned()),
                Just("null".to_owned()),
                Just("-0".to_owned()),
                Just("99999999999999999999".to_owned()),
                "\"[ -~]{0,6}\"".prop_map(|s| s),
                "[0-9]{1,5}".prop_map(|s| s),
                Just("\"\\".to_owned()),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            /// The body scanner reads every tenant body first: hostile bytes are refused or read, never a panic,
            /// and a found `model` span really holds the model.
            #[test]
            fn scanner_never_panics(
                bytes in proptest::collection::vec(any::<u8>(), 0..512),
                frags in proptest::collection::vec(fragment(), 0..48),
            ) {
                let _ = scan(&bytes);
                let text = frags.concat();
                for body in [text.clone(), format!("{{{text}}}"), format!("{{\"model\":\"m\",{text}}}")] {
                    if let Ok(s) = scan(body.as_bytes()) {
                        if let (Some(m), Some(span)) = (&s.model, &s.model_span) {
                            let raw = &body.as_bytes()[span.clone()];
                            let v: String = serde_json::from_slice(raw).unwrap();
                            prop_assert_eq!(&v, m);
                        }
                    }
                }
            }
        }
    }
}
