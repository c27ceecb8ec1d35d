//! `tools`, `tool_choice` and `parallel_tool_calls` (docs/protocols.md §4.1, §2.9).

use crate::error::TranslateError;
use crate::input::{Function, Got, List, Members, Raw, RawText, Tool, J};
use crate::json::{field, opt_cache_control, wrong_type};
use crate::names::NameMap;
use crate::output::{Schema, Text, ToolDef};
use serde_json::{json, Value};

/// One client function tool, validated.
#[derive(Debug, Clone)]
pub(crate) struct ClientTool<'r> {
    /// The client's spelling; the upstream name comes from the [`NameMap`].
    pub name: &'r str,
    pub description: Option<RawText<'r>>,
    /// The whole JSON schema, `type` forced to `"object"`.
    pub schema: Schema<'r>,
    pub strict: Option<bool>,
    pub cache_control: Option<Raw<'r>>,
}

/// The whole JSON schema (`$defs`, `additionalProperties`, … matter to the model) with `type: "object"`
/// forced, which Anthropic requires of `input_schema` (§2.9, §4.1); no `parameters` → an empty object schema.
pub(crate) fn object_schema<'r>(
    parameters: Option<&'r Got<Members<'_>>>,
    param: impl FnOnce() -> String,
) -> Result<Schema<'r>, TranslateError> {
    match parameters {
        None | Some(Got::Null) => Ok(Schema::Empty),
        Some(Got::Ok(members)) => Ok(Schema::Client {
            members,
            force_object: true,
        }),
        Some(other) => Err(wrong_type(&param(), "an object (a JSON schema)", other)),
    }
}

/// Validates `tools`: only `function` tools exist on the OpenAI side of CCGate; names must be
/// non-empty and unique (Anthropic rejects duplicates).
pub(crate) fn parse_tools<'r>(
    value: Option<&'r List<Got<Tool<'_>>>>,
) -> Result<Vec<ClientTool<'r>>, TranslateError> {
    let list = match value {
        None | Some(List::Null) => return Ok(Vec::new()),
        Some(List::Ok(a)) => a,
        Some(other) => return Err(wrong_type("tools", "an array", other)),
    };
    let mut out: Vec<ClientTool<'r>> = Vec::with_capacity(list.len());
    let mut names: crate::hashing::HashSet<&str> = crate::hashing::HashSet::default();
    for (i, t) in list.iter().enumerate() {
        let p = ToolParam(i);
        let Got::Ok(obj) = t else {
            return Err(wrong_type(&p.to_string(), "an object", t));
        };
        match field(obj.kind.as_ref()) {
            None => {}
            Some(J::Str(k)) if k == "function" => {}
            Some(J::Str(k)) => {
                return Err(TranslateError::invalid(
                    format!("{p}.type"),
                    format!("Unsupported tool type '{k}': only 'function' tools are supported"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{p}.type"), "a string", other)),
        }
        let func = match &obj.function {
            Some(Got::Ok(f)) => f,
            None | Some(Got::Null) => {
                return Err(TranslateError::invalid(
                    format!("{p}.function"),
                    format!("Missing required parameter: '{p}.function'"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{p}.function"), "an object", other)),
        };
        let tool = parse_function(func, obj, &p)?;
        if !names.insert(tool.name) {
            return Err(TranslateError::invalid(
                format!("{p}.function.name"),
                format!("Duplicate tool name '{}'", tool.name),
            ));
        }
        out.push(tool);
    }
    Ok(out)
}

/// `tools[i]`, formatted only for a message.
struct ToolParam(usize);

impl std::fmt::Display for ToolParam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tools[{}]", self.0)
    }
}

fn parse_function<'r>(
    func: &'r Function<'_>,
    tool: &'r Tool<'_>,
    p: &ToolParam,
) -> Result<ClientTool<'r>, TranslateError> {
    let name_param = || format!("{p}.function.name");
    let name = match field(func.name.as_ref()) {
        Some(J::Str(s)) if !s.is_empty() => s.as_ref(),
        Some(J::Str(_)) | None => {
            let name_param = name_param();
            return Err(TranslateError::invalid(
                &name_param,
                format!("Missing required parameter: '{name_param}'"),
            ));
        }
        Some(other) => return Err(wrong_type(&name_param(), "a string", other)),
    };
    let description = match func.description.as_ref() {
        None => None,
        Some(d) if d.is_null() => None,
        Some(d) if RawText::new(*d).is_some() => RawText::new(*d).filter(|s| !s.is_empty()),
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.function.description"),
                "a string",
                other,
            ))
        }
    };
    let schema = object_schema(func.parameters.as_ref(), || {
        format!("{p}.function.parameters")
    })?;
    let strict = match field(func.strict.as_ref()) {
        None => None,
        Some(J::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.function.strict"),
                "a boolean",
                other,
            ))
        }
    };
    // `cache_control` extension: accepted on the tool or on its function object.
    let cache_control = match (&tool.cache_control, &func.cache_control) {
        (None, None) => None,
        _ => match opt_cache_control(tool.cache_control.as_ref(), &p.to_string())? {
            Some(cc) => Some(cc),
            None => opt_cache_control(func.cache_control.as_ref(), &format!("{p}.function"))?,
        },
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
pub(crate) fn anthropic_tool<'r>(
    t: &ClientTool<'r>,
    upstream_name: String,
    pass_strict: bool,
) -> ToolDef<'r> {
    ToolDef {
        cache_control: t.cache_control,
        description: t.description.map(Text::Raw),
        input_schema: t.schema.clone(),
        name: upstream_name,
        strict: t.strict.filter(|_| pass_strict),
    }
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
    value: Option<&J<'_>>,
    tools: &[ClientTool<'_>],
) -> Result<Option<Choice>, TranslateError> {
    let names: Vec<&str> = tools.iter().map(|t| t.name).collect();
    parse_tool_choice_for(value, &names)
}

/// Validates `tool_choice` against the declared tools, given by their client names (OpenAI
/// rejects forcing an undeclared function, and `required`/named choices without tools).
/// `auto`/`none` without tools are harmless and dropped.
pub(crate) fn parse_tool_choice_for(
    value: Option<&J<'_>>,
    tools: &[&str],
) -> Result<Option<Choice>, TranslateError> {
    let choice = match value {
        None => return Ok(None),
        Some(J::Str(s)) => match s.as_ref() {
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
        Some(J::Obj(o)) => {
            match field(o.get("type")) {
                Some(J::Str(t)) if t == "function" => {}
                Some(J::Str(t)) => {
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
            let name = field(o.get("function"))
                .and_then(J::as_object)
                .and_then(|f| field(f.get("name")))
                .and_then(J::as_str);
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

    /// A view of `v` (leaked: test only).
    fn view<T: serde::Deserialize<'static>>(v: &Value) -> &'static T {
        let text: &'static str = Box::leak(v.to_string().into_boxed_str());
        Box::leak(Box::new(serde_json::from_str(text).unwrap()))
    }

    fn tools(v: Value) -> Result<Vec<ClientTool<'static>>, TranslateError> {
        parse_tools(Some(view(&v)))
    }

    fn value(t: &ToolDef<'_>) -> Value {
        serde_json::to_value(t).unwrap()
    }

    fn choice(v: Value, ts: &[ClientTool<'_>]) -> Result<Option<Choice>, TranslateError> {
        parse_tool_choice(Some(view::<J<'static>>(&v)), ts)
    }

    #[test]
    fn schema_copied_whole_and_forced_object() {
        let t = tools(json!([{"type":"function","function":{"name":"f","description":"d","strict":true,
            "parameters":{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"string"}},"additionalProperties":false}}}]))
        .unwrap();
        let v = value(&anthropic_tool(&t[0], "f".into(), true));
        assert_eq!(
            v,
            json!({"name":"f","description":"d","strict":true,"input_schema":{"type":"object","properties":{"a":{"$ref":"#/$defs/A"}},"$defs":{"A":{"type":"string"}},"additionalProperties":false}})
        );
        assert!(value(&anthropic_tool(&t[0], "f".into(), false))
            .get("strict")
            .is_none());
        let t = tools(json!([{"type":"function","function":{"name":"g"}}])).unwrap();
        assert_eq!(
            serde_json::to_value(&t[0].schema).unwrap(),
            json!({"type":"object","properties":{}})
        );
        let t = tools(
            json!([{"type":"function","function":{"name":"g","parameters":{"properties":{}}}}]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&t[0].schema).unwrap()["type"],
            "object"
        );
        let t = tools(
            json!([{"type":"function","function":{"name":"g","parameters":{"type":"array","items":{}}}}]),
        )
        .unwrap();
        assert_eq!(
            serde_json::to_string(&t[0].schema).unwrap(),
            r#"{"items":{},"type":"object"}"#
        );
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
        let c = choice(json!("required"), &ts).unwrap();
        assert_eq!(
            anthropic_tool_choice(c.as_ref(), None, &mut names),
            Some(json!({"type":"any"}))
        );
        let c = choice(json!("none"), &ts).unwrap();
        assert_eq!(
            anthropic_tool_choice(c.as_ref(), Some(false), &mut names),
            Some(json!({"type":"none"}))
        );
        assert_eq!(
            anthropic_tool_choice(None, Some(false), &mut names),
            Some(json!({"type":"auto","disable_parallel_tool_use":true}))
        );
        assert_eq!(anthropic_tool_choice(None, Some(true), &mut names), None);
        let c = choice(json!({"type":"function","function":{"name":"f.x"}}), &ts).unwrap();
        let v = anthropic_tool_choice(c.as_ref(), Some(false), &mut names).unwrap();
        assert_eq!(v["type"], "tool");
        assert_eq!(v["name"], "f_x");
        assert_eq!(v["disable_parallel_tool_use"], true);
        assert!(choice(json!({"type":"function","function":{"name":"nope"}}), &ts).is_err());
        assert!(choice(json!("sometimes"), &ts).is_err());
        assert!(choice(json!("required"), &[]).is_err());
        assert_eq!(choice(json!("auto"), &[]).unwrap(), None);
    }
}
