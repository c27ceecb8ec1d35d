//! `response_format` (docs/protocols.md §4.1).

use crate::error::TranslateError;
use crate::input::{Got, Members, ResponseFormat as View, J};
use crate::json::{field, wrong_type};

/// Instruction appended to `system` for `json_object`, which has no native Anthropic form (§4.1).
/// An instruction rather than the forced-tool trick: `json_object` promises "some JSON object",
/// which a prompt achieves reliably without changing the answer's shape or disabling thinking.
pub(crate) const JSON_OBJECT_INSTRUCTION: &str = "Respond with a single valid JSON object and nothing else: no text before or after it and no Markdown code fences.";

/// Preferred name of the forced tool used for `json_schema` on models without structured outputs.
pub(crate) const JSON_TOOL_NAME: &str = "json_response";

/// A validated `response_format`.
#[derive(Debug, Clone)]
pub(crate) enum ResponseFormat<'r> {
    Text,
    JsonObject,
    JsonSchema {
        description: Option<&'r str>,
        /// The schema object, passed on whole.
        schema: &'r Got<Members<'r>>,
    },
}

/// Validates `response_format`. A `json_schema` without a `schema` carries no constraint beyond
/// "JSON", so it is treated as `json_object`. The root must be an object, as OpenAI requires.
pub(crate) fn parse<'r>(
    value: Option<&'r Got<View<'r>>>,
) -> Result<Option<ResponseFormat<'r>>, TranslateError> {
    let obj = match value {
        None | Some(Got::Null) => return Ok(None),
        Some(Got::Ok(o)) => o,
        Some(other) => return Err(wrong_type("response_format", "an object", other)),
    };
    let kind = match field(obj.kind.as_ref()) {
        Some(J::Str(s)) => s.as_ref(),
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
            let js = match &obj.json_schema {
                Some(Got::Ok(o)) => o,
                None | Some(Got::Null) => {
                    return Err(TranslateError::invalid(
                        "response_format.json_schema",
                        "Missing required parameter: 'response_format.json_schema'",
                    ))
                }
                Some(other) => return Err(wrong_type("response_format.json_schema", "an object", other)),
            };
            let description = field(js.description.as_ref())
                .and_then(J::as_str)
                .filter(|s| !s.is_empty());
            match &js.schema {
                None | Some(Got::Null) => Ok(Some(ResponseFormat::JsonObject)),
                Some(schema @ Got::Ok(s)) => {
                    if let Some(t) = s.get("type").filter(|t| t.as_str().as_deref() != Some("object")) {
                        // Quoted as a `Value` prints it.
                        let shown = serde_json::from_str::<serde_json::Value>(t.get())
                            .map_or_else(|_| t.get().to_owned(), |v| v.to_string());
                        return Err(TranslateError::invalid(
                            "response_format.json_schema.schema",
                            format!("Invalid schema for response_format: the root must have type 'object', got {shown}"),
                        ));
                    }
                    Ok(Some(ResponseFormat::JsonSchema {
                        description,
                        schema,
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
    use serde_json::{json, Value};

    fn parse_value(v: Value) -> Result<Option<ResponseFormat<'static>>, TranslateError> {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        parse(Some(Box::leak(Box::new(
            serde_json::from_str(text).unwrap(),
        ))))
    }

    #[test]
    fn formats() {
        assert!(matches!(
            parse_value(json!({"type":"text"})).unwrap(),
            Some(ResponseFormat::Text)
        ));
        assert!(matches!(
            parse_value(json!({"type":"json_object"})).unwrap(),
            Some(ResponseFormat::JsonObject)
        ));
        let s = json!({"type":"object","properties":{"a":{"type":"string"}}});
        match parse_value(
            json!({"type":"json_schema","json_schema":{"name":"x","schema":s,"strict":true}}),
        )
        .unwrap()
        {
            Some(ResponseFormat::JsonSchema {
                description: None,
                schema: Got::Ok(m),
            }) => {
                let out = crate::input::SortedObject {
                    members: &m.0,
                    set: None,
                };
                assert_eq!(serde_json::to_value(&out).unwrap(), s);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_value(json!({"type":"json_schema","json_schema":{"name":"x"}})).unwrap(),
            Some(ResponseFormat::JsonObject)
        ));
        let e =
            parse_value(json!({"type":"json_schema","json_schema":{"schema":{"type":"array"}}}))
                .unwrap_err();
        assert!(e.message.ends_with(r#"got "array""#), "{}", e.message);
        assert!(parse_value(json!({"type":"json_schema"})).is_err());
        assert!(parse_value(json!({"type":"yaml"})).is_err());
        assert!(parse_value(json!("json")).is_err());
    }
}
