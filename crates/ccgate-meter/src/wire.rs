//! Typed, lenient views of the few Anthropic JSON shapes metering reads, deserialised straight from bytes.
//!
//! Parsing into these instead of a `serde_json::Value` tree avoids allocating every key and string of an event:
//! the meter runs on every answer, so this is on the hot path. They are lenient like the `Value` code they
//! replace: a field of an unexpected type reads as absent instead of failing the whole parse (third-party
//! upstreams send `12.0` for counts, `null` for objects, and so on), and unknown fields are skipped.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// The largest token count believed for one field of one request: 1,000,000,000 tokens is far beyond any
/// context window, and a sum of billions of such rows still fits an `i64`. A larger count is clamped to it and
/// the row is flagged (see [`Count`]).
pub const MAX_TOKENS: u64 = 1_000_000_000;

/// A token count as the upstream sent it. Upstreams are untrusted: a value that is not a non-negative integer
/// (an integral float such as `12.0` is fine) is [`Count::Invalid`], kept apart from an absent or `null` field so
/// the row can say the upstream reported nonsense instead of silently counting 0.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// Absent or `null`: the field keeps its earlier value (the override rule).
    #[default]
    Absent,
    Value(u64),
    /// Negative, fractional, a string, or any other non-count.
    Invalid,
}

impl Count {
    /// The count within [`MAX_TOKENS`], if one was sent; sets `out_of_range` for a count past it (clamped) or an
    /// invalid one (ignored).
    pub fn checked(self, out_of_range: &mut bool) -> Option<u64> {
        match self {
            Count::Absent => None,
            Count::Value(n) if n <= MAX_TOKENS => Some(n),
            Count::Value(_) => {
                *out_of_range = true;
                Some(MAX_TOKENS)
            }
            Count::Invalid => {
                *out_of_range = true;
                None
            }
        }
    }

    /// The count as sent, without the range check (tests and diagnostics).
    pub fn value(self) -> Option<u64> {
        match self {
            Count::Value(n) => Some(n),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Count, E> {
                Ok(Count::Value(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Count, E> {
                Ok(u64::try_from(v).map_or(Count::Invalid, Count::Value))
            }
            fn visit_f64<E>(self, f: f64) -> Result<Count, E> {
                // `as` saturates: 1e30 becomes u64::MAX, which the range check then clamps and flags.
                let integral = f.is_finite() && f >= 0.0 && f.fract() == 0.0;
                Ok(if integral {
                    Count::Value(f as u64)
                } else {
                    Count::Invalid
                })
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count::Invalid)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count::Invalid)
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count::Absent)
            }
            fn visit_none<E>(self) -> Result<Count, E> {
                Ok(Count::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Count, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Count::Invalid)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Count, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count::Invalid)
            }
        }
        d.deserialize_any(V)
    }
}

/// A string field; anything that is not a string is absent.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Text(pub Option<String>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_str<E>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text, E> {
                Ok(Text(Some(v)))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_unit<E>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_none<E>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Text, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Text, A::Error> {
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A nested object; anything that is not an object is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Obj<T>(pub Option<T>);

impl<T> Default for Obj<T> {
    fn default() -> Self {
        Obj(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Obj<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Obj<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(m)).map(|t| Obj(Some(t)))
            }
            fn visit_str<E>(self, _: &str) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_unit<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_none<E>(self) -> Result<Obj<T>, E> {
                Ok(Obj(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Obj<T>, A::Error> {
                while s.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Obj(None))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A struct read from a JSON object: known keys fill their fields, unknown keys are skipped, and a repeated key
/// keeps its last value (as a `Value` parse would; serde's derive rejects duplicates and would lose the usage).
macro_rules! lenient_struct {
    ($(#[$doc:meta])* $name:ident { $($key:literal => $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Default)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a JSON object")
                    }
                    #[allow(clippy::single_match)]
                    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<$name, A::Error> {
                        let mut out = $name::default();
                        while let Some(k) = m.next_key::<Key<'de>>()? {
                            match k.0.as_ref() {
                                $($key => out.$field = m.next_value()?,)*
                                _ => {
                                    m.next_value::<IgnoredAny>()?;
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

lenient_struct!(CacheCreationWire {
    "ephemeral_5m_input_tokens" => ephemeral_5m_input_tokens: Count,
    "ephemeral_1h_input_tokens" => ephemeral_1h_input_tokens: Count,
});

lenient_struct!(OutputDetailsWire {
    "thinking_tokens" => thinking_tokens: Count,
});

lenient_struct!(ServerToolWire {
    "web_search_requests" => web_search_requests: Count,
    "web_fetch_requests" => web_fetch_requests: Count,
});

lenient_struct!(
    /// An Anthropic `usage` object.
    UsageWire {
        "input_tokens" => input_tokens: Count,
        "cache_creation_input_tokens" => cache_creation_input_tokens: Count,
        "cache_read_input_tokens" => cache_read_input_tokens: Count,
        "output_tokens" => output_tokens: Count,
        "cache_creation" => cache_creation: Obj<CacheCreationWire>,
        "output_tokens_details" => output_tokens_details: Obj<OutputDetailsWire>,
        "server_tool_use" => server_tool_use: Obj<ServerToolWire>,
        "service_tier" => service_tier: Text,
        "inference_geo" => inference_geo: Text,
        "speed" => speed: Text,
    }
);

lenient_struct!(
    /// A non-streaming answer, or `message_start.message`.
    MessageWire {
        "id" => id: Text,
        "model" => model: Text,
        "stop_reason" => stop_reason: Text,
        "usage" => usage: Obj<UsageWire>,
    }
);

lenient_struct!(DeltaWire {
    "stop_reason" => stop_reason: Text,
});

lenient_struct!(
    /// Any SSE event's data that metering reads: `message_start` (`message`), `message_delta` (`delta`, `usage`).
    EventWire {
        "type" => kind: Text,
        "message" => message: Obj<MessageWire>,
        "delta" => delta: Obj<DeltaWire>,
        "usage" => usage: Obj<UsageWire>,
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_fields() {
        let u: UsageWire = serde_json::from_str(
            r#"{"input_tokens":12.0,"output_tokens":"7","cache_read_input_tokens":-1,"cache_creation":null,
                "server_tool_use":{"web_search_requests":2},"service_tier":5,"speed":"fast","extra":[1,{"a":2}]}"#,
        )
        .unwrap();
        assert_eq!(u.input_tokens, Count::Value(12));
        assert_eq!(u.output_tokens, Count::Invalid);
        assert_eq!(u.cache_read_input_tokens, Count::Invalid);
        assert!(u.cache_creation.0.is_none());
        assert_eq!(
            u.server_tool_use.0.unwrap().web_search_requests,
            Count::Value(2)
        );
        assert_eq!(u.service_tier.0, None);
        assert_eq!(u.speed.0.as_deref(), Some("fast"));
    }

    #[test]
    fn duplicate_keys_keep_the_last_and_escaped_keys_match() {
        let m: MessageWire =
            serde_json::from_str(r#"{"id":"a","id":"b","\u0075sage":{"output_tokens":3}}"#)
                .unwrap();
        assert_eq!(m.id.0.as_deref(), Some("b"));
        assert_eq!(m.usage.0.unwrap().output_tokens, Count::Value(3));
        assert!(serde_json::from_str::<MessageWire>("[1]").is_err());
    }
}
