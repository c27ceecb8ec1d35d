//! `response_format` (protocols.md §4.1).

use crate::error::TranslateError;
use crate::json::{field, wrong_type};
use serde_json::Value;

/// Instruction appended to `system` for `json_object`, which has no native Anthropic form (§4.1).
/// An instruction rather than the forced-tool trick: `json_object` promises "some JSON object",
/// which a prompt achieves reliably without changing the answer's shape or disabling thinking.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str = "Respond with a single valid JSON object and nothing else: no text before or after it and no Markdown code fences.";

/// Preferred name of the forced tool used for `json_schema` on models without structured outputs.
pub(crate) const JSON_TOOL_NAME: &str = "json_response";

/// A validated `response_format`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        description: Option<String>,
        schema: Value,
    },
}

/// Validates `response_format`. A `json_schema` without a `schema` carries no constraint beyond
/// "JSON", so it is treated as `json_object`. The root must be an object, as OpenAI requires.
pub(crate) fn parse(value: Option<&Value>) -> Result<Option<ResponseFormat>, TranslateError> {
    let Some(v) = value else {
        return Ok(None);
    };
    let Some(obj) = v.as_object() else {
        return Err(wrong_type("response_format", "an object", v));
    };
    let kind = match field(obj, "type") {
        Some(Value::String(s)) => s.as_str(),
        Some(other) => return Err(wrong_type("response_format.type", "a string", other)),
        None => {
            return Err(TranslateError::invalid(
                "response_format.type",
                "Missing required parameter: 'response_format.type'",
            ))
        }
    };
    match kind {
        "text" => Ok(Some(ResponseFormat::Text)),
        "json_object" => Ok(Some(ResponseFormat::JsonObject)),
        "json_schema" => {
            let js = match field(obj, "json_schema") {
                Some(Value::Object(o)) => o,
                Some(other) => return Err(wrong_type("response_format.json_schema", "an object", other)),
                None => {
                    return Err(TranslateError::invalid(
                        "response_format.json_schema",
                        "Missing required parameter: 'response_format.json_schema'",
                    ))
                }
            };
            let description = field(js, "description")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            match field(js, "schema") {
                None => Ok(Some(ResponseFormat::JsonObject)),
                Some(Value::Object(s)) => {
                    if let Some(t) = s.get("type").filter(|t| t.as_str() != Some("object")) {
                        return Err(TranslateError::invalid(
                            "response_format.json_schema.schema",
                            format!("Invalid schema for response_format: the root must have type 'object', got {t}"),
                        ));
                    }
                    Ok(Some(ResponseFormat::JsonSchema {
                        description,
                        schema: Value::Object(s.clone()),
                    }))
                }
                Some(other) => Err(wrong_type("response_format.json_schema.schema", "an object", other)),
            }
        }
        other => Err(TranslateError::invalid(
            "response_format.type",
            format!(
                "Invalid value for 'response_format.type': '{other}'. Supported values are 'text', 'json_object' and 'json_schema'"
            ),
        )),
    }
}

/// Description of the forced tool: tells the model that calling it *is* the answer.
pub(crate) fn json_tool_description(description: Option<&str>) -> String {
    let base = "Give your final answer by calling this tool exactly once; its input is the answer and must match the schema.";
    match description {
        Some(d) => format!("{base} The answer: {d}"),
        None => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn formats() {
        assert_eq!(
            parse(Some(&json!({"type":"text"}))).unwrap(),
            Some(ResponseFormat::Text)
        );
        assert_eq!(
            parse(Some(&json!({"type":"json_object"}))).unwrap(),
            Some(ResponseFormat::JsonObject)
        );
        let s = json!({"type":"object","properties":{"a":{"type":"string"}}});
        assert_eq!(
            parse(Some(
                &json!({"type":"json_schema","json_schema":{"name":"x","schema":s,"strict":true}})
            ))
            .unwrap(),
            Some(ResponseFormat::JsonSchema {
                description: None,
                schema: s
            })
        );
        assert_eq!(
            parse(Some(
                &json!({"type":"json_schema","json_schema":{"name":"x"}})
            ))
            .unwrap(),
            Some(ResponseFormat::JsonObject)
        );
        assert!(parse(Some(
            &json!({"type":"json_schema","json_schema":{"schema":{"type":"array"}}})
        ))
        .is_err());
        assert!(parse(Some(&json!({"type":"json_schema"}))).is_err());
        assert!(parse(Some(&json!({"type":"yaml"}))).is_err());
        assert!(parse(Some(&json!("json"))).is_err());
    }
}
