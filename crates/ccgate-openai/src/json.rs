//! Small helpers for validating untyped JSON with precise 400 messages (protocols.md §3.4: the
//! message names the field and `param` is set).

use crate::error::TranslateError;
use serde_json::Value;

/// JSON type name as OpenAI's validation messages spell it.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// "Invalid type for 'x': expected …, got …".
pub(crate) fn wrong_type(param: &str, expected: &str, got: &Value) -> TranslateError {
    TranslateError::invalid(
        param,
        format!(
            "Invalid type for '{param}': expected {expected}, got {}",
            type_name(got)
        ),
    )
}

/// Field `key` of `obj` treated as absent when missing or `null` (OpenAI SDKs send explicit nulls).
pub(crate) fn field<'a>(obj: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An optional string field.
pub(crate) fn opt_str<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<&'a str>, TranslateError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(wrong_type(param, "a string", other)),
    }
}

/// An optional boolean field.
pub(crate) fn opt_bool(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<bool>, TranslateError> {
    match field(obj, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(wrong_type(param, "a boolean", other)),
    }
}

/// An optional number field, as `f64`.
pub(crate) fn opt_f64(
    obj: &serde_json::Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<Option<f64>, TranslateError> {
    match field(obj, key) {
        None => Ok(None),
        Some(v @ Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| wrong_type(param, "a number", v)),
        Some(other) => Err(wrong_type(param, "a number", other)),
    }
}

/// An optional `cache_control` extension object (§4.1), copied verbatim onto the matching block.
pub(crate) fn opt_cache_control(
    obj: &serde_json::Map<String, Value>,
    param: &str,
) -> Result<Option<Value>, TranslateError> {
    match field(obj, "cache_control") {
        None => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
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
