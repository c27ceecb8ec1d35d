//! Small helpers for validating the request's fields with precise 400 messages (docs/protocols.md §3.4: the
//! message names the field and `param` is set).

use crate::error::TranslateError;
use crate::input::{Raw, Typed, J};

/// "Invalid type for 'x': expected …, got …".
pub(crate) fn wrong_type(param: &str, expected: &str, got: &impl Typed) -> TranslateError {
    TranslateError::invalid(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, got {}",
            got.type_name()
        ),
    )
}

/// A field treated as absent when missing or `null` (OpenAI SDKs send explicit nulls).
pub(crate) fn field<'x, 'a>(v: Option<&'x J<'a>>) -> Option<&'x J<'a>> {
    v.filter(|v| !v.is_null())
}

/// An optional string field.
pub(crate) fn opt_str<'x>(
    v: Option<&'x J<'_>>,
    param: &str,
) -> Result<Option<&'x str>, TranslateError> {
    match field(v) {
        None => Ok(None),
        Some(J::Str(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(param, "a string", other)),
    }
}

/// An optional boolean field.
pub(crate) fn opt_bool(v: Option<&J<'_>>, param: &str) -> Result<Option<bool>, TranslateError> {
    match field(v) {
        None => Ok(None),
        Some(J::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(param, "a boolean", other)),
    }
}

/// An optional number field, as `f64`.
pub(crate) fn opt_f64(v: Option<&J<'_>>, param: &str) -> Result<Option<f64>, TranslateError> {
    match field(v) {
        None => Ok(None),
        Some(v @ J::Num(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong_type(param, "a number", v)),
        Some(other) => Err(wrong_type(param, "a number", other)),
    }
}

/// An optional `cache_control` extension object (§4.1), passed on verbatim onto the matching block.
pub(crate) fn opt_cache_control<'a>(
    v: Option<&Raw<'a>>,
    param: &str,
) -> Result<Option<Raw<'a>>, TranslateError> {
    match v {
        None => Ok(None),
        Some(r) if r.is_null() => Ok(None),
        Some(r) if r.is_object() => Ok(Some(*r)),
        Some(other) => Err(wrong_type(
            &format!("{param}.cache_control"),
            "an object",
            other,
        )),
    }
}

/// True when the string has no visible content: Anthropic rejects empty and whitespace-only text
/// blocks (§2.9).
pub(crate) fn is_blank(s: &str) -> bool {
    s.trim().is_empty()
}
