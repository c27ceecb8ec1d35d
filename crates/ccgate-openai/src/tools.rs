//! `tools`, `tool_choice` and `parallel_tool_calls` (protocols.md §4.1, §2.9).

use crate::error::TranslateError;
use crate::json::{field, opt_cache_control, wrong_type};
use crate::names::NameMap;
use serde_json::{json, Map, Value};

/// One client function tool, validated.
#[derive(Debug, Clone)]
pub(crate) struct ClientTool {
    /// The client's spelling; the upstream name comes from the [`NameMap`].
    pub name: String,
    pub description: Option<String>,
    /// The whole JSON schema, `type` forced to `"object"`.
    pub schema: Value,
    pub strict: Option<bool>,
    pub cache_control: Option<Value>,
}

/// Schema used when a function declares no `parameters` (§4.1).
pub(crate) fn empty_schema() -> Value {
    json!({"type": "object", "properties": {}})
}

/// Copies a JSON schema whole (`$defs`, `additionalProperties`, … matter to the model) and forces
/// `type: "object"`, which Anthropic requires of `input_schema` (§2.9, §4.1).
pub(crate) fn object_schema(
    parameters: Option<&Value>,
    param: &str,
) -> Result<Value, TranslateError> {
    match parameters {
        None => Ok(empty_schema()),
        Some(Value::Object(o)) => {
            let mut o = o.clone();
            o.insert("type".into(), Value::String("object".into()));
            Ok(Value::Object(o))
        }
        Some(other) => Err(wrong_type(param, "an object (a JSON schema)", other)),
    }
}

/// Validates `tools`: only `function` tools exist on the OpenAI side of CCGate; names must be
/// non-empty and unique (Anthropic rejects duplicates).
pub(crate) fn parse_tools(value: Option<&Value>) -> Result<Vec<ClientTool>, TranslateError> {
    let list = match value {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    };
    let mut out: Vec<ClientTool> = Vec::with_capacity(list.len());
    for (i, t) in list.iter().enumerate() {
        let p = format!("tools[{i}]");
        let Some(obj) = t.as_object() else {
            return Err(wrong_type(&p, "an object", t));
        };
        match field(obj, "type") {
            None => {}
            Some(Value::String(k)) if k == "function" => {}
            Some(Value::String(k)) => {
                return Err(TranslateError::invalid(
                    format!("{p}.type"),
                    format!("Unsupported tool type '{k}': only 'function' tools are supported"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{p}.type"), "a string", other)),
        }
        let func = match field(obj, "function") {
            Some(Value::Object(f)) => f,
            Some(other) => return Err(wrong_type(&format!("{p}.function"), "an object", other)),
            None => {
                return Err(TranslateError::invalid(
                    format!("{p}.function"),
                    format!("Missing required parameter: '{p}.function'"),
                ))
            }
        };
        let tool = parse_function(func, obj, &p)?;
        if out.iter().any(|t| t.name == tool.name) {
            return Err(TranslateError::invalid(
                format!("{p}.function.name"),
                format!("Duplicate tool name '{}'", tool.name),
            ));
        }
        out.push(tool);
    }
    Ok(out)
}

fn parse_function(
    func: &Map<String, Value>,
    tool: &Map<String, Value>,
    p: &str,
) -> Result<ClientTool, TranslateError> {
    let name_param = format!("{p}.function.name");
    let name = match field(func, "name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) | None => {
            return Err(TranslateError::invalid(
                &name_param,
                format!("Missing required parameter: '{name_param}'"),
            ))
        }
        Some(other) => return Err(wrong_type(&name_param, "a string", other)),
    };
    let description = match field(func, "description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.function.description"),
                "a string",
                other,
            ))
        }
    };
    let schema = object_schema(
        field(func, "parameters"),
        &format!("{p}.function.parameters"),
    )?;
    let strict = match field(func, "strict") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.function.strict"),
                "a boolean",
                other,
            ))
        }
    };
    // `cache_control` extension: accepted on the tool or on its function object.
    let cache_control = match opt_cache_control(tool, p)? {
        Some(cc) => Some(cc),
        None => opt_cache_control(func, &format!("{p}.function"))?,
    };
    Ok(ClientTool {
        name,
        description,
        schema,
        strict,
        cache_control,
    })
}

/// Anthropic tool definition. `strict` is passed only to models with structured outputs
/// (`caps.structured_outputs`): strict tool use belongs to that feature and other models reject it.
pub(crate) fn anthropic_tool(t: &ClientTool, upstream_name: String, pass_strict: bool) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), Value::String(upstream_name));
    if let Some(d) = &t.description {
        o.insert("description".into(), Value::String(d.clone()));
    }
    o.insert("input_schema".into(), t.schema.clone());
    if let (Some(s), true) = (t.strict, pass_strict) {
        o.insert("strict".into(), Value::Bool(s));
    }
    if let Some(cc) = &t.cache_control {
        o.insert("cache_control".into(), cc.clone());
    }
    Value::Object(o)
}

/// A client `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    Auto,
    None,
    Required,
    /// Client name of the forced function.
    Named(String),
}

/// [`parse_tool_choice_for`] with the tools' names.
#[cfg(test)]
pub(crate) fn parse_tool_choice(
    value: Option<&Value>,
    tools: &[ClientTool],
) -> Result<Option<Choice>, TranslateError> {
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    parse_tool_choice_for(value, &names)
}

/// Validates `tool_choice` against the declared tools, given by their client names (OpenAI
/// rejects forcing an undeclared function, and `required`/named choices without tools).
/// `auto`/`none` without tools are harmless and dropped.
pub(crate) fn parse_tool_choice_for(
    value: Option<&Value>,
    tools: &[&str],
) -> Result<Option<Choice>, TranslateError> {
    let choice = match value {
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Choice::Auto,
            "none" => Choice::None,
            "required" => Choice::Required,
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!(
                        "Invalid value for 'tool_choice': '{other}'. Supported values are 'none', 'auto', 'required' or a function object"
                    ),
                ))
            }
        },
        Some(Value::Object(o)) => {
            match field(o, "type") {
                Some(Value::String(t)) if t == "function" => {}
                Some(Value::String(t)) => {
                    return Err(TranslateError::invalid(
                        "tool_choice.type",
                        format!("Unsupported tool_choice type '{t}'"),
                    ))
                }
                Some(other) => return Err(wrong_type("tool_choice.type", "a string", other)),
                None => {
                    return Err(TranslateError::invalid(
                        "tool_choice.type",
                        "Missing required parameter: 'tool_choice.type'",
                    ))
                }
            }
            let name = field(o, "function")
                .and_then(Value::as_object)
                .and_then(|f| field(f, "name"))
                .and_then(Value::as_str);
            match name {
                Some(n) => Choice::Named(n.to_owned()),
                None => {
                    return Err(TranslateError::invalid(
                        "tool_choice.function.name",
                        "Missing required parameter: 'tool_choice.function.name'",
                    ))
                }
            }
        }
        Some(other) => return Err(wrong_type("tool_choice", "a string or an object", other)),
    };
    match &choice {
        Choice::Auto | Choice::None if tools.is_empty() => Ok(None),
        Choice::Required | Choice::Named(_) if tools.is_empty() => Err(TranslateError::invalid(
            "tool_choice",
            "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified",
        )),
        Choice::Named(n) if !tools.contains(&n.as_str()) => Err(TranslateError::invalid(
            "tool_choice.function.name",
            format!("Invalid value for 'tool_choice': no function named '{n}' was specified in 'tools'"),
        )),
        _ => Ok(Some(choice)),
    }
}

/// Anthropic `tool_choice` (§4.1): auto → auto, none → none, required → any, named → tool.
/// `parallel_tool_calls: false` adds `disable_parallel_tool_use: true`, creating `{"type":"auto"}`
/// when the client sent no choice, but never on `none` (Anthropic rejects it there, §2.2).
pub(crate) fn anthropic_tool_choice(
    choice: Option<&Choice>,
    parallel_tool_calls: Option<bool>,
    names: &mut NameMap,
) -> Option<Value> {
    let disable_parallel = parallel_tool_calls == Some(false);
    let mut v = match choice {
        None if disable_parallel => json!({"type": "auto"}),
        None => return None,
        Some(Choice::Auto) => json!({"type": "auto"}),
        Some(Choice::None) => return Some(json!({"type": "none"})),
        Some(Choice::Required) => json!({"type": "any"}),
        Some(Choice::Named(n)) => json!({"type": "tool", "name": names.map(n)}),
    };
    if disable_parallel {
        if let Some(o) = v.as_object_mut() {
            o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(v: Value) -> Result<Vec<ClientTool>, TranslateError> {
        parse_tools(Some(&v))
    }

    #[test]
    fn schema_copied_whole_and_forced_object() {
        let t = tools(json!([{"type":"function","function":{"name":"f","description":"d","strict":true,
            "parameters":{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"string"}},"additionalProperties":false}}}]))
        .unwrap();
        let v = anthropic_tool(&t[0], "f".into(), true);
        assert_eq!(
            v,
            json!({"name":"f","description":"d","strict":true,"input_schema":{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"string"}},"additionalProperties":false}})
        );
        assert!(anthropic_tool(&t[0], "f".into(), false)
            .get("strict")
            .is_none());
        let t = tools(json!([{"type":"function","function":{"name":"g"}}])).unwrap();
        assert_eq!(t[0].schema, json!({"type":"object","properties":{}}));
        let t = tools(
            json!([{"type":"function","function":{"name":"g","parameters":{"properties":{}}}}]),
        )
        .unwrap();
        assert_eq!(t[0].schema["type"], "object");
    }

    #[test]
    fn tool_validation() {
        assert!(tools(json!({})).is_err());
        assert!(tools(json!([{"type":"custom","custom":{"name":"x"}}])).is_err());
        assert!(tools(json!([{"type":"function","function":{"name":""}}])).is_err());
        assert!(
            tools(json!([{"type":"function","function":{"name":"a","parameters":"x"}}])).is_err()
        );
        let e = tools(json!([{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"a"}}]))
            .unwrap_err();
        assert!(e.message.contains("Duplicate"));
    }

    #[test]
    fn choices() {
        let ts = tools(json!([{"type":"function","function":{"name":"f.x"}}])).unwrap();
        let mut names = NameMap::default();
        let c = parse_tool_choice(Some(&json!("required")), &ts).unwrap();
        assert_eq!(
            anthropic_tool_choice(c.as_ref(), None, &mut names),
            Some(json!({"type":"any"}))
        );
        let c = parse_tool_choice(Some(&json!("none")), &ts).unwrap();
        assert_eq!(
            anthropic_tool_choice(c.as_ref(), Some(false), &mut names),
            Some(json!({"type":"none"}))
        );
        assert_eq!(
            anthropic_tool_choice(None, Some(false), &mut names),
            Some(json!({"type":"auto","disable_parallel_tool_use":true}))
        );
        assert_eq!(anthropic_tool_choice(None, Some(true), &mut names), None);
        let c = parse_tool_choice(
            Some(&json!({"type":"function","function":{"name":"f.x"}})),
            &ts,
        )
        .unwrap();
        let v = anthropic_tool_choice(c.as_ref(), Some(false), &mut names).unwrap();
        assert_eq!(v["type"], "tool");
        assert_eq!(v["name"], "f_x");
        assert_eq!(v["disable_parallel_tool_use"], true);
        assert!(parse_tool_choice(
            Some(&json!({"type":"function","function":{"name":"nope"}})),
            &ts
        )
        .is_err());
        assert!(parse_tool_choice(Some(&json!("sometimes")), &ts).is_err());
        assert!(parse_tool_choice(Some(&json!("required")), &[]).is_err());
        assert_eq!(parse_tool_choice(Some(&json!("auto")), &[]).unwrap(), None);
    }
}
