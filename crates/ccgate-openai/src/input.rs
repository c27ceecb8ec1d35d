//! The OpenAI request as the translation reads it (docs/protocols.md §3.1): typed views borrowed from the body,
//! filled by one serde_json pass.
//!
//! * Strings are borrowed from the body when they hold no escapes ([`J::Str`], [`Content::Str`]).
//! * Parts passed on unchanged (JSON schemas, `cache_control`, thinking blocks, tool-call arguments sent as
//!   objects) stay raw JSON text ([`Raw`], [`Members`]): nothing is built for them and nothing is cloned.
//! * Unknown fields are checked and skipped ([`Skip`]) without building anything.
//! * Every view is lenient: a field of an unexpected JSON type is kept (as a [`J`], or as the name of its type),
//!   so the translation refuses it with the same precise 400, in the same order, as when it read a
//!   `serde_json::Value` tree.
//! * A key repeated in a nested object keeps its last value, as in a `Value`; the top level refuses repeated
//!   keys ([`crate::request::parse_request`]).
//!
//! The body is accepted exactly when `serde_json::Value` accepts it: raw parts are checked like a `Value` parse
//! would check them (lone surrogate escapes, numbers out of range), see [`Raw`].

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Number;
use std::borrow::Cow;
use std::fmt;

/// Something whose JSON type the validation messages name.
pub(crate) trait Typed {
    /// The JSON type name as OpenAI's messages spell it.
    fn type_name(&self) -> &'static str;
}

/// An object key, borrowed when it holds no escapes (keys compare unescaped: `"\u006dodel"` is `model`).
pub(crate) struct Key<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, checked as a `serde_json::Value` parse checks it, and dropped: unknown fields, and the
/// contents of a field of the wrong type.
pub(crate) struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Skip, A::Error> {
        while s.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Skip, A::Error> {
        while m.next_key::<Skip>()?.is_some() {
            m.next_value::<Skip>()?;
        }
        Ok(Skip)
    }
}

/// A JSON value the translation inspects itself (scalars and small objects): like `serde_json::Value`, but
/// strings are borrowed when possible and objects keep their members in order (the last of a repeated key
/// wins on lookup).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum J<'a> {
    Null,
    Bool(bool),
    Num(Number),
    Str(Cow<'a, str>),
    Arr(Vec<J<'a>>),
    Obj(Obj<'a>),
}

/// The members of a [`J::Obj`], in body order.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Obj<'a>(pub Vec<(Cow<'a, str>, J<'a>)>);

impl<'a> Obj<'a> {
    /// The value of `key` (its last copy, as a `Value` would keep).
    pub(crate) fn get(&self, key: &str) -> Option<&J<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

impl<'a> J<'a> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            J::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_object(&self) -> Option<&Obj<'a>> {
        match self {
            J::Obj(o) => Some(o),
            _ => None,
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, J::Null)
    }
}

impl Typed for J<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            J::Null => "null",
            J::Bool(_) => "boolean",
            J::Num(_) => "number",
            J::Str(_) => "string",
            J::Arr(_) => "array",
            J::Obj(_) => "object",
        }
    }
}

/// `serde_json::Value`'s display of the same value, for messages that quote it.
impl fmt::Display for J<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&v)
    }
}

impl serde::Serialize for J<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            J::Null => s.serialize_unit(),
            J::Bool(b) => s.serialize_bool(*b),
            J::Num(n) => n.serialize(s),
            J::Str(v) => s.serialize_str(v),
            J::Arr(a) => s.collect_seq(a),
            // As a `Value` map: keys sorted, the last copy of a repeated key.
            J::Obj(o) => {
                let map: std::collections::BTreeMap<&str, &J<'_>> =
                    o.0.iter().map(|(k, v)| (k.as_ref(), v)).collect();
                s.collect_map(map)
            }
        }
    }
}

impl<'de> Deserialize<'de> for J<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JVisitor)
    }
}

struct JVisitor;

impl<'de> Visitor<'de> for JVisitor {
    type Value = J<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<J<'de>, E> {
        Ok(J::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<J<'de>, E> {
        Ok(J::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<J<'de>, E> {
        Ok(J::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<J<'de>, E> {
        Ok(Number::from_f64(v).map_or(J::Null, J::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<J<'de>, E> {
        Ok(J::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_none<E>(self) -> Result<J<'de>, E> {
        Ok(J::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<J<'de>, D::Error> {
        J::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<J<'de>, A::Error> {
        let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0).min(64));
        while let Some(v) = s.next_element()? {
            out.push(v);
        }
        Ok(J::Arr(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<J<'de>, A::Error> {
        let mut out = Vec::new();
        while let Some(k) = m.next_key::<Key<'de>>()? {
            out.push((k.0, m.next_value()?));
        }
        Ok(J::Obj(Obj(out)))
    }
}

/// A value passed on as the client wrote it: its raw JSON text, borrowed from the body.
///
/// serde_json's raw values are not checked as thoroughly as a `Value` parse checks (lone surrogate escapes,
/// numbers out of range), so each is checked once more here: the body is refused exactly when a `Value` parse
/// refuses it. (Only the nesting limit counts from the raw value instead of from the body.)
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw<'a>(pub &'a RawValue);

impl<'de> Deserialize<'de> for Raw<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(d)?;
        check_like_value(raw.get()).map_err(de::Error::custom)?;
        Ok(Raw(raw))
    }
}

/// Checks JSON text as a `serde_json::Value` parse would; the error's message without its position (the
/// caller's deserializer adds the position in the body).
pub(crate) fn check_like_value(text: &str) -> Result<(), String> {
    let b = text.as_bytes();
    // What serde_json's raw reader lets through and a `Value` parse refuses: an escaped lone surrogate, a
    // number out of f64's range. A string (message texts, the bulk of a body) without `\u` can hold neither and
    // needs no second look; anything else (schemas and such, small) is parsed once more.
    if !has_surrogate_escape(b) && b.first() == Some(&b'"') {
        return Ok(());
    }
    match serde_json::from_str::<Skip>(text) {
        Ok(Skip) => Ok(()),
        Err(e) => {
            let msg = e.to_string();
            Err(match msg.rsplit_once(" at line ") {
                Some((head, _)) if e.line() != 0 => head.to_owned(),
                _ => msg,
            })
        }
    }
}

/// Whether JSON text may hold an escaped surrogate (`\\uD800`–`\\uDFFF`): a `\\u` followed by `d` or `D`.
fn has_surrogate_escape(b: &[u8]) -> bool {
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"\\u"));
    // Most texts have no `\\u` at all, and many no backslash: one quick look each.
    memchr::memchr(b'\\', b).is_some()
        && FINDER
            .find_iter(b)
            .any(|i| matches!(b.get(i + 2), Some(b'd' | b'D')))
}

impl<'a> Raw<'a> {
    /// The JSON text.
    pub(crate) fn get(&self) -> &'a str {
        self.0.get()
    }

    pub(crate) fn is_null(&self) -> bool {
        self.get().as_bytes().first() == Some(&b'n')
    }

    pub(crate) fn is_object(&self) -> bool {
        self.get().as_bytes().first() == Some(&b'{')
    }

    /// The string this value holds, unescaped (borrowed when it has no escapes).
    pub(crate) fn as_str(&self) -> Option<Cow<'a, str>> {
        let text = self.get();
        if text.as_bytes().first() != Some(&b'"') {
            return None;
        }
        if !text.as_bytes().contains(&b'\\') {
            // Checked JSON: a string without escapes is the text between its quotes.
            return Some(Cow::Borrowed(&text[1..text.len() - 1]));
        }
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    }
}

/// A JSON string passed on as the client wrote it, escapes and all: read without decoding, written without
/// escaping again. Decoded only where its characters matter (blank checks that the first bytes cannot decide,
/// a trimmed prefill).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawText<'a>(Raw<'a>);

impl<'a> RawText<'a> {
    /// `r` when it is a string.
    pub(crate) fn new(r: Raw<'a>) -> Option<Self> {
        (r.get().as_bytes().first() == Some(&b'"')).then_some(RawText(r))
    }

    /// The text between the quotes, still escaped.
    fn inner(&self) -> &'a str {
        let t = self.0.get();
        &t[1..t.len() - 1]
    }

    /// The string, unescaped.
    pub(crate) fn decode(&self) -> Cow<'a, str> {
        self.0.as_str().unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.inner().is_empty()
    }

    /// Whether the string is empty or whitespace only ([`crate::json::is_blank`]); decoded only when its
    /// first significant byte is an escape or not ASCII.
    pub(crate) fn is_blank(&self) -> bool {
        match self.inner().bytes().find(|b| *b != b' ') {
            None => true,
            Some(b) if b != b'\\' && b.is_ascii() => false,
            Some(_) => crate::json::is_blank(&self.decode()),
        }
    }
}

impl serde::Serialize for RawText<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl Typed for Raw<'_> {
    fn type_name(&self) -> &'static str {
        match self.get().as_bytes().first() {
            Some(b'{') => "object",
            Some(b'[') => "array",
            Some(b'"') => "string",
            Some(b't' | b'f') => "boolean",
            Some(b'n') => "null",
            _ => "number",
        }
    }
}

impl serde::Serialize for Raw<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

/// An object read as its members with raw values (JSON schemas, thinking blocks): its top level can be
/// inspected and rewritten, everything below is passed on.
#[derive(Debug, Clone, Default)]
pub(crate) struct Members<'a>(pub Vec<(Cow<'a, str>, Raw<'a>)>);

impl<'a> Members<'a> {
    /// The value of `key` (its last copy).
    pub(crate) fn get(&self, key: &str) -> Option<Raw<'a>> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| *v)
    }
}

impl<'de> ReadMap<'de> for Members<'de> {
    fn read<A: MapAccess<'de>>(mut m: A) -> Result<Self, A::Error> {
        let mut out = Vec::with_capacity(m.size_hint().unwrap_or(0).min(16));
        while let Some(k) = m.next_key::<Key<'de>>()? {
            out.push((k.0, m.next_value()?));
        }
        Ok(Members(out))
    }
}

/// Writes `members` as one object the way a `Value` map would: keys sorted, the last copy of a repeated key;
/// `set` replaces (or adds) one member.
pub(crate) struct SortedObject<'x, 'a> {
    pub members: &'x [(Cow<'a, str>, Raw<'a>)],
    pub set: Option<(&'static str, Member<'x>)>,
}

/// A member value written by [`SortedObject`].
#[derive(Clone, Copy)]
pub(crate) enum Member<'x> {
    Str(&'x str),
    Raw(Raw<'x>),
}

impl serde::Serialize for Member<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Str(v) => s.serialize_str(v),
            Member::Raw(r) => r.serialize(s),
        }
    }
}

impl serde::Serialize for SortedObject<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let skip = self.set.map(|(k, _)| k);
        let mut entries: Vec<(&str, Member<'_>)> = Vec::with_capacity(self.members.len() + 1);
        entries.extend(
            self.members
                .iter()
                .filter(|(k, _)| Some(k.as_ref()) != skip)
                .map(|(k, v)| (k.as_ref(), Member::Raw(*v))),
        );
        if let Some(set) = self.set {
            entries.push(set);
        }
        // Stable: copies of one key stay in body order, and the last one is written.
        entries.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = s.serialize_map(None)?;
        for (i, (k, v)) in entries.iter().enumerate() {
            if entries.get(i + 1).is_some_and(|next| next.0 == *k) {
                continue;
            }
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A view read from a JSON object's members.
pub(crate) trait ReadMap<'de>: Sized {
    fn read<A: MapAccess<'de>>(m: A) -> Result<Self, A::Error>;
}

/// A field expected to be an object: its view, `null`, or the type of what it was instead.
#[derive(Debug)]
pub(crate) enum Got<T> {
    Null,
    Ok(T),
    Other(&'static str),
}

impl<T> Typed for Got<T> {
    fn type_name(&self) -> &'static str {
        match self {
            Got::Null => "null",
            Got::Ok(_) => "object",
            Got::Other(t) => t,
        }
    }
}

/// A field expected to be an array: its items, `null`, or the type of what it was instead.
#[derive(Debug)]
pub(crate) enum List<T> {
    Null,
    Ok(Vec<T>),
    Other(&'static str),
}

impl<T> Typed for List<T> {
    fn type_name(&self) -> &'static str {
        match self {
            List::Null => "null",
            List::Ok(_) => "array",
            List::Other(t) => t,
        }
    }
}

/// Visitor answers for values of an unexpected type, shared by the lenient views.
macro_rules! other_scalars {
    ($out:ty, $other:expr, $null:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<$out, E> {
            Ok($other("boolean"))
        }
        fn visit_i64<E>(self, _: i64) -> Result<$out, E> {
            Ok($other("number"))
        }
        fn visit_u64<E>(self, _: u64) -> Result<$out, E> {
            Ok($other("number"))
        }
        fn visit_f64<E>(self, _: f64) -> Result<$out, E> {
            Ok($other("number"))
        }
        fn visit_unit<E>(self) -> Result<$out, E> {
            Ok($null)
        }
        fn visit_none<E>(self) -> Result<$out, E> {
            Ok($null)
        }
    };
}

impl<'de, T: ReadMap<'de>> Deserialize<'de> for Got<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: ReadMap<'de>> Visitor<'de> for V<T> {
            type Value = Got<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_scalars!(Got<T>, Got::Other, Got::Null);
            fn visit_str<E>(self, _: &str) -> Result<Got<T>, E> {
                Ok(Got::Other("string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<Got<T>, A::Error> {
                SkipVisitor.visit_seq(s)?;
                Ok(Got::Other("array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Got<T>, A::Error> {
                T::read(m).map(Got::Ok)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = List<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            other_scalars!(List<T>, List::Other, List::Null);
            fn visit_str<E>(self, _: &str) -> Result<List<T>, E> {
                Ok(List::Other("string"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<List<T>, A::Error> {
                let mut out = Vec::with_capacity(s.size_hint().unwrap_or(0).min(1024));
                while let Some(v) = s.next_element()? {
                    out.push(v);
                }
                Ok(List::Ok(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<List<T>, A::Error> {
                SkipVisitor.visit_map(m)?;
                Ok(List::Other("object"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A message's `content`: a string (kept raw), an array of parts, `null`, or the type of something else.
#[derive(Debug)]
pub(crate) enum Content<'a> {
    Null,
    Str(RawText<'a>),
    Parts(Vec<Got<Part<'a>>>),
    Other(&'static str),
}

impl Typed for Content<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Content::Null => "null",
            Content::Str(_) => "string",
            Content::Parts(_) => "array",
            Content::Other(t) => t,
        }
    }
}

impl<'de> Deserialize<'de> for Content<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Parts are checked by their second read below; anything else now.
        let raw = Raw(<&'de RawValue>::deserialize(d)?);
        if raw.type_name() != "array" {
            check_like_value(raw.get()).map_err(de::Error::custom)?;
        }
        if let Some(text) = RawText::new(raw) {
            return Ok(Content::Str(text));
        }
        Ok(match raw.type_name() {
            // Parts are read from the raw text (checked already), their texts kept raw in turn.
            "array" => Content::Parts(serde_json::from_str(raw.get()).map_err(de::Error::custom)?),
            "null" => Content::Null,
            other => Content::Other(other),
        })
    }
}

/// A typed view of an object: each listed key fills its field (`None` when absent; the last copy of a
/// repeated key wins), other keys are checked and skipped.
macro_rules! view {
    ($(#[$doc:meta])* $name:ident<$lt:lifetime> { $($key:literal => $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub(crate) struct $name<$lt> {
            $(pub $field: Option<$ty>),*
        }

        impl<'de> ReadMap<'de> for $name<'de> {
            fn read<A: MapAccess<'de>>(mut m: A) -> Result<Self, A::Error> {
                let mut out = Self::default();
                while let Some(k) = m.next_key::<Key<'de>>()? {
                    match k.0.as_ref() {
                        $($key => out.$field = Some(m.next_value()?),)*
                        _ => {
                            m.next_value::<Skip>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
    };
}

view!(
    /// One entry of `messages`.
    Message<'a> {
        "role" => role: J<'a>,
        "content" => content: Content<'a>,
        "cache_control" => cache_control: Raw<'a>,
        "tool_calls" => tool_calls: List<Got<ToolCall<'a>>>,
        "tool_call_id" => tool_call_id: J<'a>,
        "thinking_blocks" => thinking_blocks: List<Got<Members<'a>>>,
        "function_call" => function_call: J<'a>,
    }
);

view!(
    /// One entry of an assistant message's `tool_calls`.
    ToolCall<'a> {
        "id" => id: J<'a>,
        "type" => kind: J<'a>,
        "function" => function: Got<CallFunction<'a>>,
    }
);

view!(CallFunction<'a> {
    "name" => name: J<'a>,
    "arguments" => arguments: Raw<'a>,
});

view!(
    /// One content part.
    Part<'a> {
        "type" => kind: J<'a>,
        "text" => text: Raw<'a>,
        "refusal" => refusal: Raw<'a>,
        "image_url" => image_url: J<'a>,
        "file" => file: J<'a>,
        "cache_control" => cache_control: Raw<'a>,
    }
);

view!(
    /// One entry of `tools`.
    Tool<'a> {
        "type" => kind: J<'a>,
        "function" => function: Got<Function<'a>>,
        "cache_control" => cache_control: Raw<'a>,
    }
);

view!(Function<'a> {
    "name" => name: J<'a>,
    "description" => description: Raw<'a>,
    "parameters" => parameters: Got<Members<'a>>,
    "strict" => strict: J<'a>,
    "cache_control" => cache_control: Raw<'a>,
});

view!(ResponseFormat<'a> {
    "type" => kind: J<'a>,
    "json_schema" => json_schema: Got<JsonSchema<'a>>,
});

view!(JsonSchema<'a> {
    "description" => description: J<'a>,
    "schema" => schema: Got<Members<'a>>,
});

/// Declares the top-level [`Request`] view: like [`view!`], and a repeated key (any key) is remembered
/// for [`crate::request::parse_request`] to refuse.
macro_rules! request_view {
    ($($key:literal => $field:ident : $ty:ty),* $(,)?) => {
        /// The top-level request object.
        #[derive(Debug, Default)]
        pub(crate) struct Request<'a> {
            $(pub $field: Option<$ty>,)*
            /// The first key that appeared twice.
            pub duplicate: Option<String>,
        }

        impl<'de> Deserialize<'de> for Request<'de> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = Request<'de>;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a JSON object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Request<'de>, A::Error> {
                        let mut out = Request::default();
                        let mut seen: Vec<Cow<'de, str>> = Vec::with_capacity(16);
                        let mut seen_set: Option<crate::hashing::HashSet<Cow<'de, str>>> = None;
                        while let Some(Key(k)) = m.next_key::<Key<'de>>()? {
                            match k.as_ref() {
                                $($key => out.$field = Some(m.next_value()?),)*
                                _ => {
                                    m.next_value::<Skip>()?;
                                }
                            }
                            if out.duplicate.is_none() {
                                // Few keys: a list; many (hostile bodies): a set.
                                let repeated = match &mut seen_set {
                                    Some(set) => !set.insert(k.clone()),
                                    None if seen.len() < 32 => {
                                        let r = seen.contains(&k);
                                        seen.push(k.clone());
                                        r
                                    }
                                    None => {
                                        let mut set: crate::hashing::HashSet<Cow<'de, str>> =
                                            seen.drain(..).collect();
                                        let r = !set.insert(k.clone());
                                        seen_set = Some(set);
                                        r
                                    }
                                };
                                if repeated {
                                    out.duplicate = Some(k.into_owned());
                                }
                            }
                        }
                        Ok(out)
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

request_view!(
    "model" => model: J<'a>,
    "messages" => messages: List<Got<Message<'a>>>,
    "tools" => tools: List<Got<Tool<'a>>>,
    "tool_choice" => tool_choice: J<'a>,
    "parallel_tool_calls" => parallel_tool_calls: J<'a>,
    "response_format" => response_format: Got<ResponseFormat<'a>>,
    "reasoning_effort" => reasoning_effort: J<'a>,
    "stream" => stream: J<'a>,
    "stream_options" => stream_options: J<'a>,
    "n" => n: J<'a>,
    "max_tokens" => max_tokens: J<'a>,
    "max_completion_tokens" => max_completion_tokens: J<'a>,
    "temperature" => temperature: J<'a>,
    "top_p" => top_p: J<'a>,
    "top_k" => top_k: J<'a>,
    "stop" => stop: J<'a>,
    "user" => user: J<'a>,
    "safety_identifier" => safety_identifier: J<'a>,
    "functions" => functions: J<'a>,
    "function_call" => function_call: J<'a>,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_are_checked_like_value() {
        for bad in [
            r#"{"a":"\ud800"}"#,
            r#"{"a":1e999}"#,
            r#"["\udc00x"]"#,
            r#""\ud800""#,
        ] {
            assert!(serde_json::from_str::<serde_json::Value>(bad).is_err());
            assert!(serde_json::from_str::<Raw<'_>>(bad).is_err(), "{bad}");
        }
        for good in [r#"{"a":"\ud83d\ude00"}"#, r#"{"a":1e300}"#, r#""x""#, "5"] {
            assert!(serde_json::from_str::<Raw<'_>>(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn raw_text_blank_checks() {
        for (json, blank) in [
            (r#""""#, true),
            (r#""   ""#, true),
            (r#"" \n\t \u00a0 ""#, true),
            (r#""\u2003""#, true),
            (r#""  x ""#, false),
            (r#""\nx""#, false),
            (r#""\u0041""#, false),
            (r#"" é""#, false),
            (r#""\u3000""#, true),
        ] {
            let r: Raw<'_> = serde_json::from_str(json).unwrap();
            let t = RawText::new(r).unwrap();
            assert_eq!(t.is_blank(), blank, "{json}");
            assert_eq!(t.is_blank(), crate::json::is_blank(&t.decode()), "{json}");
        }
        let r: Raw<'_> = serde_json::from_str("5").unwrap();
        assert!(RawText::new(r).is_none());
    }

    #[test]
    fn value_check_filters() {
        assert!(has_surrogate_escape(br#""\ud800""#));
        assert!(has_surrogate_escape(br#""\uDC00""#));
        assert!(!has_surrogate_escape(br#""\u00e9 \n""#));
        assert!(!has_surrogate_escape(b""));
        assert!(!has_surrogate_escape(b"\\u"));
        assert!(has_surrogate_escape(b"\\ud"));
        let short = format!("[{}]", "9".repeat(308));
        assert!(check_like_value(&short).is_ok());
        for bad in [
            format!("[{}]", "9".repeat(400)),
            "{\"a\":[1,{\"b\": 1e999}]}".to_owned(),
            "[-1E400]".to_owned(),
        ] {
            assert!(serde_json::from_str::<serde_json::Value>(&bad).is_err());
            assert!(check_like_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_strings_unescape() {
        let r: Raw<'_> = serde_json::from_str(r#""a\"b""#).unwrap();
        assert_eq!(r.as_str().unwrap(), "a\"b");
        let r: Raw<'_> = serde_json::from_str(r#""plain""#).unwrap();
        assert!(matches!(r.as_str(), Some(Cow::Borrowed("plain"))));
        let r: Raw<'_> = serde_json::from_str("{}").unwrap();
        assert!(r.as_str().is_none());
        assert_eq!(r.type_name(), "object");
    }

    #[test]
    fn sorted_object_is_written_like_a_value_map() {
        let m: Got<Members<'_>> =
            serde_json::from_str(r#"{"b":1,"type":"array","a":{"z":1,"y":2},"b":2}"#).unwrap();
        let Got::Ok(m) = m else { panic!() };
        let out = serde_json::to_string(&SortedObject {
            members: &m.0,
            set: Some(("type", Member::Str("object"))),
        })
        .unwrap();
        assert_eq!(out, r#"{"a":{"z":1,"y":2},"b":2,"type":"object"}"#);
        let out = serde_json::to_string(&SortedObject {
            members: &m.0,
            set: None,
        })
        .unwrap();
        assert_eq!(out, r#"{"a":{"z":1,"y":2},"b":2,"type":"array"}"#);
    }

    #[test]
    fn lenient_views_keep_types_and_last_copies() {
        let m: Got<Message<'_>> = serde_json::from_str(
            r#"{"role":"user","content":5,"content":"b","tool_calls":{"x":[1]},"name":{"deep":[null]}}"#,
        )
        .unwrap();
        let Got::Ok(m) = m else { panic!() };
        assert!(matches!(m.content, Some(Content::Str(t)) if t.decode() == "b"));
        assert_eq!(m.tool_calls.unwrap().type_name(), "object");
        let g: Got<Message<'_>> = serde_json::from_str("[1,2]").unwrap();
        assert_eq!(g.type_name(), "array");
        let l: List<J<'_>> = serde_json::from_str("null").unwrap();
        assert_eq!(l.type_name(), "null");
    }
}
