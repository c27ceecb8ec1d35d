//! A fast reader for the [`crate::wire`] shapes, for the JSON upstreams actually send.
//!
//! The meter reads every non-streamed answer and two events of every stream. Through serde, with its visitor calls
//! per token, that cost ~6k instructions for a 300-byte answer and ~13k per stream (`bench/callgrind.sh`). This
//! reader walks the bytes once and only decodes the fields the shapes name.
//!
//! It accepts a **subset** of what `serde_json` accepts and gives the same result on it; for anything else it
//! answers [`Unsure`] and [`from_slice`] hands the document to `serde_json`, which gives the exact answer (value or
//! error). Left to serde: escapes in keys and in the strings that are read (`\uXXXX` anywhere), numbers with an
//! exponent or more than 18 digits, negative or fractional counts, nesting deeper than [`MAX_DEPTH`], and bytes
//! that are not valid UTF-8. Everything the reader accepts is valid JSON, so it never reads a usage out of a body
//! that `serde_json` would refuse.

use serde::de::DeserializeOwned;

/// The reader cannot vouch for this document; `serde_json` must decide.
#[derive(Debug)]
pub(crate) struct Unsure;

/// How [`Reader::string_end`] treats each byte inside a string.
const PLAIN: u8 = 0;
const QUOTE: u8 = 1;
const BACKSLASH: u8 = 2;
const CONTROL: u8 = 3;
const NON_ASCII: u8 = 4;
static STRING_BYTE: [u8; 256] = {
    let mut t = [PLAIN; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = match c {
            0..=0x1f => CONTROL,
            0x22 => QUOTE,
            0x5c => BACKSLASH,
            0x80.. => NON_ASCII,
            _ => PLAIN,
        };
        c += 1;
    }
    t
};

/// Deeper nesting is left to serde (whose limit is 128).
const MAX_DEPTH: usize = 100;

/// Reads `bytes` as `T`: by the fast reader when it is sure, otherwise by `serde_json` (same result or error).
pub(crate) fn from_slice<T: FastRead + DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    match read_document(bytes) {
        Some(v) => Ok(v),
        None => serde_json::from_slice(bytes),
    }
}

/// The fast reader alone: `None` when it is unsure.
pub(crate) fn read_document<T: FastRead>(bytes: &[u8]) -> Option<T> {
    let mut r = Reader {
        b: bytes,
        i: 0,
        depth: 0,
        non_ascii: false,
    };
    r.ws();
    let v = T::fast_read(&mut r).ok()?;
    r.ws();
    if r.i != bytes.len() {
        return None;
    }
    // Strings were only checked for bytes below 0x20; non-ASCII text must also be valid UTF-8, as serde requires.
    if r.non_ascii && std::str::from_utf8(bytes).is_err() {
        return None;
    }
    Some(v)
}

/// A type the fast reader can read in place of its `Deserialize` impl.
pub(crate) trait FastRead: Sized {
    fn fast_read(r: &mut Reader<'_>) -> Result<Self, Unsure>;
}

pub(crate) struct Reader<'a> {
    b: &'a [u8],
    i: usize,
    depth: usize,
    /// A string held a byte ≥ 0x80: the document's UTF-8 is checked at the end.
    non_ascii: bool,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), Unsure> {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// Reads an object, calling `member` with each key (no escapes) while the reader sits on its value, which
    /// `member` must consume.
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, &[u8]) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.expect(b'{')?;
        self.items(b'}', |r| {
            let key = r.plain_string()?;
            r.expect(b':')?;
            r.ws();
            member(r, key)
        })
    }

    /// The items of the container just opened, up to and including `close`: `item` reads one (the reader sits on
    /// it), this reads the separators and keeps the nesting depth.
    fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), Unsure>,
    ) -> Result<(), Unsure> {
        self.enter()?;
        self.ws();
        if self.peek() != Some(close) {
            loop {
                self.ws();
                item(self)?;
                self.ws();
                match self.peek() {
                    Some(b',') => self.i += 1,
                    Some(c) if c == close => break,
                    _ => return Err(Unsure),
                }
            }
        }
        self.i += 1;
        self.depth -= 1;
        Ok(())
    }

    fn enter(&mut self) -> Result<(), Unsure> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(Unsure)
        } else {
            Ok(())
        }
    }

    /// A string without escapes, returned without its quotes; escapes make the reader unsure.
    fn plain_string(&mut self) -> Result<&'a [u8], Unsure> {
        let start = self.i + 1;
        if self.peek() != Some(b'"') {
            return Err(Unsure);
        }
        let end = self.string_end(false)?;
        Ok(&self.b[start..end - 1])
    }

    /// From the opening quote to just past the closing one. Escapes other than `\u` are stepped over when
    /// `escapes` is set; control characters, `\u` and (without `escapes`) any backslash make the reader unsure.
    fn string_end(&mut self, escapes: bool) -> Result<usize, Unsure> {
        let mut i = self.i + 1;
        loop {
            // The strings the meter meets are short: a table lookup per byte beats setting up a SIMD search.
            while self
                .b
                .get(i)
                .is_some_and(|&c| STRING_BYTE[usize::from(c)] == PLAIN)
            {
                i += 1;
            }
            match self.b.get(i).map(|&c| STRING_BYTE[usize::from(c)]) {
                Some(QUOTE) => {
                    self.i = i + 1;
                    return Ok(self.i);
                }
                Some(NON_ASCII) => {
                    self.non_ascii = true;
                    i += 1;
                }
                Some(BACKSLASH) if escapes => match self.b.get(i + 1) {
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                    _ => return Err(Unsure),
                },
                _ => return Err(Unsure),
            }
        }
    }

    /// Steps over any value.
    pub(crate) fn skip_value(&mut self) -> Result<(), Unsure> {
        match self.peek() {
            Some(b'"') => self.string_end(true).map(drop),
            Some(b'{') => self.object(|r, _| r.skip_value()),
            Some(b'[') => self.skip_array(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.skip_number(),
            _ => Err(Unsure),
        }
    }

    fn skip_array(&mut self) -> Result<(), Unsure> {
        self.i += 1;
        self.items(b']', Self::skip_value)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Unsure> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most 18 digits in all; exponents are left to serde.
    fn skip_number(&mut self) -> Result<(), Unsure> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let int = self.digits();
        if int == 0 || (int > 1 && self.b[self.i - int] == b'0') {
            return Err(Unsure);
        }
        let mut total = int;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let frac = self.digits();
            if frac == 0 {
                return Err(Unsure);
            }
            total += frac;
        }
        if total > 18 || matches!(self.peek(), Some(b'e' | b'E')) {
            return Err(Unsure);
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        self.i - start
    }

    /// A plain non-negative integer of at most 18 digits: `Ok(Some(n))`. `Ok(None)` after stepping over a value
    /// that is not a number (a count of another type reads as absent). Other numbers make the reader unsure.
    pub(crate) fn count(&mut self) -> Result<Option<u64>, Unsure> {
        match self.peek() {
            Some(b'0'..=b'9') => {
                let start = self.i;
                let n = self.digits();
                let leading_zero = n > 1 && self.b[start] == b'0';
                if n > 18 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                    return Err(Unsure);
                }
                let v = self.b[start..self.i]
                    .iter()
                    .fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
                Ok(Some(v))
            }
            Some(b'-') => Err(Unsure),
            _ => self.skip_value().map(|()| None),
        }
    }

    /// A string without escapes: `Ok(Some(text))`. `Ok(None)` after stepping over a value that is not a string.
    pub(crate) fn text(&mut self) -> Result<Option<&'a str>, Unsure> {
        if self.peek() != Some(b'"') {
            return self.skip_value().map(|()| None);
        }
        let s = self.plain_string()?;
        // Checked here rather than at the end: the text is handed out now.
        std::str::from_utf8(s).map(Some).map_err(|_| Unsure)
    }

    /// Whether the value is an object (the reader stays on it) or something else (stepped over).
    pub(crate) fn at_object(&mut self) -> Result<bool, Unsure> {
        if self.peek() == Some(b'{') {
            Ok(true)
        } else {
            self.skip_value().map(|()| false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{EventWire, MessageWire};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    /// Whenever the fast reader answers, serde must give the same value, for both shapes; returns whether it
    /// answered for [`MessageWire`] (the shapes read different fields, so they may differ in that).
    fn agrees(doc: &[u8]) -> bool {
        let check = |fast: Option<String>, slow: Result<String, serde_json::Error>| match fast {
            Some(f) => {
                let s = slow.unwrap_or_else(|e| {
                    panic!("fast reader accepted what serde refuses ({e}): {doc:?}")
                });
                assert_eq!(f, s, "{}", String::from_utf8_lossy(doc));
                true
            }
            None => false,
        };
        check(
            read_document::<EventWire>(doc).map(|v| format!("{v:?}")),
            serde_json::from_slice::<EventWire>(doc).map(|v| format!("{v:?}")),
        );
        check(
            read_document::<MessageWire>(doc).map(|v| format!("{v:?}")),
            serde_json::from_slice::<MessageWire>(doc).map(|v| format!("{v:?}")),
        )
    }

    #[test]
    fn what_anthropic_sends_takes_the_fast_path() {
        let docs = [
            r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello \"there\"\n— ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":0},"output_tokens":12,"service_tier":"standard","server_tool_use":{"web_search_requests":1}}}"#,
            r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":472,"cache_creation_input_tokens":0,"cache_read_input_tokens":9000,"output_tokens":2}}}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}"#,
            "{ \"type\" : \"message_delta\" ,\n \"usage\" : { \"output_tokens\" : 0 , \"x\" : [ 1.5 , -2 , true , false , null , { } , [ ] ] } }\n",
        ];
        for d in docs {
            assert!(agrees(d.as_bytes()), "not taken: {d}");
            assert!(
                read_document::<EventWire>(d.as_bytes()).is_some(),
                "not taken: {d}"
            );
        }
        let ev: EventWire = from_slice(docs[2].as_bytes()).unwrap();
        assert_eq!(ev.usage.0.unwrap().output_tokens.0, Some(89));
        assert_eq!(
            ev.delta.0.unwrap().stop_reason.0.as_deref(),
            Some("tool_use")
        );
    }

    #[test]
    fn what_it_cannot_vouch_for_goes_to_serde() {
        let unsure = [
            r#"{"usage":{"output_tokens":12.0}}"#,
            r#"{"usage":{"output_tokens":-1}}"#,
            r#"{"usage":{"output_tokens":1e3}}"#,
            r#"{"usage":{"output_tokens":0012}}"#,
            r#"{"usage":{"output_tokens":1234567890123456789}}"#,
            r#"{"\u0075sage":{"output_tokens":3}}"#,
            r#"{"id":"a\nb"}"#,
            r#"{"x":"\ud83d\ude00"}"#,
            r#"{"x":1e999}"#,
            "{\"x\":\"tab\there\"}",
            "{\"x\":\"\u{1}\"}",
            r#"{"x":[1,]}"#,
            r#"{"x":01}"#,
            r#"{"x":1.}"#,
            r#"{"x":tru}"#,
            r#"{"x":1}x"#,
            r#"{"x":1"#,
            r#"[1]"#,
            "",
        ];
        for d in unsure {
            assert!(!agrees(d.as_bytes()), "should be left to serde: {d}");
        }
        // Invalid UTF-8 inside a skipped string: serde refuses, so must the fast reader.
        assert!(!agrees(b"{\"x\":\"\xff\",\"usage\":{\"output_tokens\":1}}"));
        assert!(agrees(
            "{\"x\":\"é😀\",\"usage\":{\"output_tokens\":1}}".as_bytes()
        ));
        // The answer through the fallback is serde's.
        let m: MessageWire =
            from_slice(br#"{"id":"a\nb","usage":{"output_tokens":12.0}}"#).unwrap();
        assert_eq!(m.id.0.as_deref(), Some("a\nb"));
        assert_eq!(m.usage.0.unwrap().output_tokens.0, Some(12));
        let deep = format!("{}{}", "[".repeat(150), "]".repeat(150));
        assert!(!agrees(format!("{{\"x\":{deep}}}").as_bytes()));
    }

    const KEYS: &[&str] = &[
        "type",
        "id",
        "model",
        "stop_reason",
        "usage",
        "message",
        "delta",
        "content",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "cache_creation",
        "ephemeral_5m_input_tokens",
        "ephemeral_1h_input_tokens",
        "output_tokens_details",
        "thinking_tokens",
        "server_tool_use",
        "web_search_requests",
        "web_fetch_requests",
        "service_tier",
        "inference_geo",
        "speed",
        "x",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(|n| json!(n)),
            (0u64..100_000).prop_map(|n| json!(n)),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            "[a-z \"\\\\/\\n\\t\u{1}é😀]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(5, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((prop::sample::select(KEYS), inner), 0..7).prop_map(|kv| {
                    Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
                }),
            ]
        })
    }

    /// An edit that may break the document: a byte dropped, or a byte JSON cares about put in.
    fn edit() -> impl Strategy<Value = (usize, Option<u8>)> {
        (
            any::<usize>(),
            prop::option::of(prop::sample::select(&b"\"\\{}[],:0-e.5 \x01\x80\xffu"[..])),
        )
    }

    proptest! {
        #[test]
        fn agrees_with_serde_on_generated_documents(v in json_value(), pretty in any::<bool>()) {
            let doc = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.unwrap();
            agrees(&doc);
            // Documents wrapped the way the meter sees them.
            let wrapped = serde_json::to_vec(&json!({"type": "message_start", "message": v, "usage": v})).unwrap();
            agrees(&wrapped);
        }

        #[test]
        fn never_accepts_what_serde_refuses(v in json_value(), edits in prop::collection::vec(edit(), 1..4)) {
            let mut doc = serde_json::to_vec(&json!({"message": v, "usage": {"output_tokens": 3}})).unwrap();
            for (at, byte) in edits {
                let at = at % (doc.len() + 1);
                match byte {
                    Some(b) => doc.insert(at, b),
                    None if at < doc.len() => { doc.remove(at); }
                    None => {}
                }
            }
            agrees(&doc);
        }
    }
}
