//! Responses request → the Chat Completions request view the rest of this crate already translates
//! (docs/responses.md §1, §2). The Responses body is read once into views borrowed from it (texts,
//! schemas, image data and arguments stay raw JSON text), and those are rearranged into the chat
//! translator's own view of a request ([`crate::input::Request`]): no chat body is written or read
//! again. Images, files, tools, schemas, reasoning, sampling, names and the pairing rules are then
//! those of `/openai` chat.
//!
//! Errors the chat translator raises name chat fields (`messages[3].content`); [`ParamMap`] turns
//! them back into the Responses field the client wrote (`input[5].content`).

use super::{ResponsesContext, CUSTOM_INPUT_FIELD, NAMESPACE_SEPARATOR, REDACTED_PREFIX};
use crate::error::TranslateError;
use crate::input::{
    CallFunction, Content, Function, Got, JsonSchema, List, Members, Message, Obj, Part, Raw,
    RawText, Request, ResponseFormat, SortedObject, Tool as ChatTool, ToolCall, J,
};
use crate::names::is_valid_ident;
use crate::options::TranslateOptions;
use crate::request::TranslatedRequest;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

type R<'a> = &'a RawValue;

/// The top-level Responses body, as far as the translation reads it; other fields are ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    input: Option<Input<'a>>,
    #[serde(borrow)]
    instructions: Option<R<'a>>,
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
    #[serde(borrow)]
    tool_choice: Option<R<'a>>,
    #[serde(borrow)]
    parallel_tool_calls: Option<R<'a>>,
    #[serde(borrow)]
    reasoning: Option<Reasoning<'a>>,
    #[serde(borrow)]
    text: Option<TextOptions<'a>>,
    #[serde(borrow)]
    max_output_tokens: Option<R<'a>>,
    #[serde(borrow)]
    temperature: Option<R<'a>>,
    #[serde(borrow)]
    top_p: Option<R<'a>>,
    #[serde(borrow)]
    stream: Option<R<'a>>,
    #[serde(borrow)]
    user: Option<R<'a>>,
    #[serde(borrow)]
    safety_identifier: Option<R<'a>>,
    #[serde(borrow)]
    metadata: Option<R<'a>>,
    #[serde(borrow)]
    previous_response_id: Option<R<'a>>,
    #[serde(borrow)]
    conversation: Option<R<'a>>,
    #[serde(borrow)]
    background: Option<R<'a>>,
    #[serde(borrow)]
    prompt_cache_key: Option<Cow<'a, str>>,
    /// Codex's own field (turn and session ids): marks a request from Codex.
    #[serde(borrow)]
    client_metadata: Option<R<'a>>,
}

/// `input`: a string, or the list of items, read in the same pass as the body.
enum Input<'a> {
    Text(Cow<'a, str>),
    Items(Vec<Item<'a>>),
    Other(&'static str),
}

impl<'de: 'a, 'a> Deserialize<'de> for Input<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Input<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or an array of input items")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Input<'a>, E> {
                Ok(Input::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Input<'a>, E> {
                Ok(Input::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Input<'a>, A::Error> {
                let mut items = Vec::with_capacity(s.size_hint().unwrap_or(0).min(4096));
                while let Some(item) = s.next_element()? {
                    items.push(item);
                }
                Ok(Input::Items(items))
            }
            fn visit_map<A: de::MapAccess<'de>>(self, m: A) -> Result<Input<'a>, A::Error> {
                IgnoredAny.visit_map(m)?;
                Ok(Input::Other("object"))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Input<'a>, E> {
                Ok(Input::Other("boolean"))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Input<'a>, E> {
                Ok(Input::Other("number"))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Input<'a>, E> {
                Ok(Input::Other("number"))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Input<'a>, E> {
                Ok(Input::Other("number"))
            }
            fn visit_unit<E>(self) -> Result<Input<'a>, E> {
                Ok(Input::Other("null"))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A tool as the client declared it; written back (the fields read) in the response object's `tools`.
#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<R<'a>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Schema<'a>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<R<'a>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<CustomFormat<'a>>,
    /// `namespace` tools.
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    tools: Option<Vec<Tool<'a>>>,
    /// `web_search`: Codex sends `false` (no live web access) in a sandbox.
    #[serde(skip_serializing_if = "Option::is_none")]
    external_web_access: Option<bool>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<R<'a>>,
}

/// A JSON schema read as the chat translator reads `parameters` (its members, raw), in the same pass as the tool.
struct Schema<'a>(Got<Members<'a>>);

impl<'de: 'a, 'a> Deserialize<'de> for Schema<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Got::<Members<'de>>::deserialize(d).map(Schema)
    }
}

impl Serialize for Schema<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Got::Ok(m) => SortedObject {
                members: &m.0,
                set: None,
            }
            .serialize(s),
            Got::Null | Got::Other(_) => s.serialize_unit(),
        }
    }
}

impl<'a> Schema<'a> {
    fn view(&self) -> Got<Members<'a>> {
        match &self.0 {
            Got::Ok(m) => Got::Ok(m.clone()),
            Got::Null => Got::Null,
            Got::Other(t) => Got::Other(t),
        }
    }
}

#[derive(Deserialize, Serialize, Default)]
#[serde(default)]
struct CustomFormat<'a> {
    #[serde(rename = "type", borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    syntax: Option<Cow<'a, str>>,
    #[serde(borrow)]
    #[serde(skip_serializing_if = "Option::is_none")]
    definition: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Reasoning<'a> {
    #[serde(borrow)]
    effort: Option<R<'a>>,
    #[serde(borrow)]
    summary: Option<R<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct TextOptions<'a> {
    #[serde(borrow)]
    format: Option<Format<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Format<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    schema: Option<R<'a>>,
    #[serde(borrow)]
    description: Option<R<'a>>,
}

/// One `input` item. Messages may omit `type` (the "easy" form `{role, content}`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Item<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    role: Option<Cow<'a, str>>,
    #[serde(borrow)]
    content: Option<R<'a>>,
    #[serde(borrow)]
    call_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    namespace: Option<Cow<'a, str>>,
    #[serde(borrow)]
    arguments: Option<R<'a>>,
    #[serde(borrow)]
    input: Option<R<'a>>,
    #[serde(borrow)]
    output: Option<R<'a>>,
    #[serde(borrow)]
    summary: Option<Vec<SummaryPart<'a>>>,
    #[serde(borrow)]
    encrypted_content: Option<R<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SummaryPart<'a> {
    #[serde(borrow)]
    text: Option<R<'a>>,
}

/// A content part (`input_text`, `input_image`, `input_file`, `output_text`, `refusal`).
#[derive(Deserialize, Default)]
#[serde(default)]
struct TextPart<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    text: Option<R<'a>>,
    #[serde(borrow)]
    refusal: Option<R<'a>>,
    #[serde(borrow)]
    image_url: Option<R<'a>>,
    #[serde(borrow)]
    file_id: Option<R<'a>>,
    #[serde(borrow)]
    file_data: Option<R<'a>>,
    #[serde(borrow)]
    file_url: Option<R<'a>>,
    #[serde(borrow)]
    filename: Option<R<'a>>,
    #[serde(borrow)]
    cache_control: Option<R<'a>>,
}
/// Chat field names → the Responses field the client wrote, for error messages.
#[derive(Debug, Default, Clone)]
pub(crate) struct ParamMap {
    /// For each chat message, the Responses item it came from (`input[3]`, `instructions`, `input`).
    messages: Vec<String>,
    /// For each chat tool, the Responses tool (`tools[2]`, `tools[4].tools[1]`).
    tools: Vec<String>,
}

impl ParamMap {
    /// Rewrites a chat translator error into Responses terms.
    pub(crate) fn rewrite(&self, mut e: TranslateError) -> TranslateError {
        let Some(param) = e.param.clone() else {
            return e;
        };
        let mapped = self.map(&param);
        if mapped != param {
            e.message = e.message.replace(&param, &mapped);
            e.param = Some(mapped);
        }
        e
    }

    fn map(&self, param: &str) -> String {
        for (prefix, list) in [("messages[", &self.messages), ("tools[", &self.tools)] {
            if let Some(rest) = param.strip_prefix(prefix) {
                if let Some((i, tail)) = rest.split_once(']') {
                    if let Some(to) = i.parse::<usize>().ok().and_then(|i| list.get(i)) {
                        let tail = tail.strip_prefix(".function").unwrap_or(tail);
                        return format!("{to}{tail}");
                    }
                }
            }
        }
        for (from, to) in [
            ("max_completion_tokens", "max_output_tokens"),
            ("reasoning_effort", "reasoning.effort"),
            ("response_format.json_schema", "text.format"),
            ("response_format", "text.format"),
        ] {
            if let Some(tail) = param.strip_prefix(from) {
                return format!("{to}{tail}");
            }
        }
        param.to_owned()
    }
}

/// A Responses body read once, with what its translation needs besides the model's options.
pub(crate) struct Parsed<'a> {
    body: Body<'a>,
    tools: Vec<Tool<'a>>,
    /// The tools Claude sees, in order: (index in `tools`, index inside a namespace, owned description).
    planned: Vec<(usize, Option<usize>, Option<Box<RawValue>>)>,
    /// Per input item, a raw value built for it (custom tool arguments, redacted thinking data, a joined
    /// summary), borrowed by the views.
    item_raw: Vec<Option<Box<RawValue>>>,
    /// The `input` string as a JSON string.
    input_raw: Option<Box<RawValue>>,
    body_len: usize,
    /// The `model` the client asked for.
    pub model: String,
    /// `prompt_cache_key` (Codex: the session id, the same on every turn).
    pub session: Option<String>,
    pub ctx: ResponsesContext,
    pub params: ParamMap,
    pub warnings: Vec<String>,
}

/// A small raw value (a scalar, a short object) as the chat translator's value type.
fn j(r: Option<R<'_>>) -> Option<J<'_>> {
    r.and_then(|r| serde_json::from_str(r.get()).ok())
}

/// An object read as its members (a JSON schema), as the chat translator reads `parameters` and `schema`.
fn members(r: Option<R<'_>>) -> Option<Got<Members<'_>>> {
    r.and_then(|r| serde_json::from_str(r.get()).ok())
}

fn invalid(param: impl Into<String>, message: impl Into<String>) -> TranslateError {
    TranslateError::invalid(param, message)
}

fn raw_str(r: R<'_>) -> Option<Cow<'_, str>> {
    let t = r.get();
    if !t.starts_with('"') {
        return None;
    }
    serde_json::from_str::<Cow<'_, str>>(t).ok()
}

fn is_null(r: Option<R<'_>>) -> bool {
    r.is_none_or(|r| r.get() == "null")
}

/// A JSON string literal as a raw value.
fn raw_string(s: &str) -> Box<RawValue> {
    // A serialised string is valid JSON; the fallbacks cannot be reached.
    let json = serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned());
    RawValue::from_string(json).unwrap_or_else(|_| static_raw(&EMPTY_STRING).to_owned())
}

fn static_raw(v: &'static LazyLock<Box<RawValue>>) -> &'static RawValue {
    v
}

static EMPTY_STRING: LazyLock<Box<RawValue>> = LazyLock::new(|| json_raw("\"\""));
static THINKING: LazyLock<Box<RawValue>> = LazyLock::new(|| json_raw("\"thinking\""));
static REDACTED: LazyLock<Box<RawValue>> = LazyLock::new(|| json_raw("\"redacted_thinking\""));
static EMPTY_OBJECT: LazyLock<Box<RawValue>> = LazyLock::new(|| json_raw("{}"));

fn json_raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("valid JSON constant")
}

/// The Claude-side (flattened) name of a tool, `namespace` + [`NAMESPACE_SEPARATOR`] + `name`.
pub(crate) fn flat_name<'a>(namespace: Option<&str>, name: &'a str) -> Cow<'a, str> {
    match namespace {
        Some(ns) if !ns.is_empty() => Cow::Owned(format!("{ns}{NAMESPACE_SEPARATOR}{name}")),
        _ => Cow::Borrowed(name),
    }
}

/// Reads a Responses body (see the module docs); refuses what no model could serve.
pub(crate) fn parse(body: &[u8]) -> Result<Parsed<'_>, TranslateError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| TranslateError::general("Request body must be UTF-8 JSON"))?;
    if !text.trim_start().starts_with('{') {
        return Err(TranslateError::general(
            "Request body must be a JSON object",
        ));
    }
    let mut b: Body<'_> = serde_json::from_str(text).map_err(|e| {
        TranslateError::general(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    let model = match &b.model {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            return Err(invalid(
                "model",
                "You must provide a model parameter (a string)",
            ))
        }
    };
    if !is_null(b.previous_response_id) {
        return Err(invalid(
            "previous_response_id",
            "previous_response_id is not supported: this gateway is stateless and stores no responses. Send the whole conversation in 'input' (Codex does this already)",
        ));
    }
    if !is_null(b.conversation) {
        return Err(invalid(
            "conversation",
            "conversation is not supported: this gateway is stateless and stores no conversations. Send the whole conversation in 'input'",
        ));
    }
    if b.background.is_some_and(|v| v.get() == "true") {
        return Err(invalid(
            "background",
            "background mode is not supported: this gateway is stateless and cannot store a response to fetch later",
        ));
    }
    let mut ctx = ResponsesContext {
        from_codex: b.client_metadata.is_some_and(|m| m.get().starts_with('{')),
        metadata: b
            .metadata
            .filter(|m| m.get().starts_with('{'))
            .map(ToOwned::to_owned),
        parallel_tool_calls: b.parallel_tool_calls.is_none_or(|p| p.get() != "false"),
        stream: b.stream.is_some_and(|s| s.get() == "true"),
        ..Default::default()
    };
    let mut params = ParamMap::default();
    let mut warnings = Vec::new();

    // Tools.
    let tools: Vec<Tool<'_>> = b.tools.take().unwrap_or_default();
    // Echoed in the response object (written once, here; the answer copies the text).
    ctx.tools = serde_json::value::to_raw_value(&tools).ok();
    let mut planned = Vec::new();
    for (i, t) in tools.iter().enumerate() {
        let p = format!("tools[{i}]");
        if t.kind.as_deref() == Some("namespace") {
            let ns = tool_name(t, &p)?;
            if !is_valid_ident(ns, 64) {
                return Err(invalid(
                    format!("{p}.name"),
                    format!("Invalid namespace name '{ns}'"),
                ));
            }
            for (j, inner) in t.tools.iter().flatten().enumerate() {
                let p = format!("{p}.tools[{j}]");
                if let Some(desc) = plan_tool(inner, Some(ns), &p, &mut ctx, &mut warnings)? {
                    planned.push((i, Some(j), desc));
                    params.tools.push(p);
                }
            }
        } else if let Some(desc) = plan_tool(t, None, &p, &mut ctx, &mut warnings)? {
            planned.push((i, None, desc));
            params.tools.push(p);
        }
    }

    // Raw values the items need.
    let mut item_raw = Vec::new();
    let mut input_raw = None;
    match &b.input {
        None => return Err(invalid("input", "Missing required parameter: 'input'")),
        Some(Input::Text(t)) => input_raw = Some(raw_string(t)),
        Some(Input::Items(items)) => {
            item_raw.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                item_raw.push(item_value(item, &format!("input[{i}]"))?);
            }
        }
        Some(Input::Other(t)) => {
            return Err(invalid(
                "input",
                format!(
                "Invalid type for 'input': expected a string or an array of input items, got {t}"
            ),
            ))
        }
    }
    ctx.instructions = b
        .instructions
        .filter(|i| i.get().starts_with('"'))
        .map(ToOwned::to_owned);
    ctx.tool_choice = b
        .tool_choice
        .filter(|c| c.get() != "null")
        .map(ToOwned::to_owned);
    Ok(Parsed {
        session: b
            .prompt_cache_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(str::to_owned),
        body: b,
        tools,
        planned,
        item_raw,
        input_raw,
        body_len: body.len(),
        model,
        ctx,
        params,
        warnings,
    })
}

fn tool_name<'t>(t: &'t Tool<'_>, p: &str) -> Result<&'t str, TranslateError> {
    match t.name.as_deref() {
        Some(n) if !n.is_empty() => Ok(n),
        _ => Err(invalid(
            format!("{p}.name"),
            format!("Missing required parameter: '{p}.name'"),
        )),
    }
}

/// Checks one tool and records what the answer needs about it. `Ok(None)`: dropped; `Ok(Some(desc))`: declared,
/// with the description CCGate writes for it (custom tools) or `None` (the client's own).
fn plan_tool(
    t: &Tool<'_>,
    namespace: Option<&str>,
    p: &str,
    ctx: &mut ResponsesContext,
    warnings: &mut Vec<String>,
) -> Result<Option<Option<Box<RawValue>>>, TranslateError> {
    let kind = t.kind.as_deref().unwrap_or("");
    if dropped_builtin(t, ctx.from_codex) {
        warnings.push(format!("{p}: built-in tool '{kind}' dropped"));
        return Ok(None);
    }
    match kind {
        "function" | "custom" => {
            let name = tool_name(t, p)?;
            let flat = flat_name(namespace, name);
            if let Some(ns) = namespace {
                ctx.namespaced
                    .insert(flat.to_string(), (ns.to_owned(), name.to_owned()));
            }
            if kind == "function" {
                return Ok(Some(None));
            }
            ctx.custom_tools.insert(flat.into_owned());
            Ok(Some(Some(custom_description(t))))
        }
        "" => Err(invalid(format!("{p}.type"), format!("Missing required parameter: '{p}.type'"))),
        "namespace" => Err(invalid(format!("{p}.type"), "Namespaces cannot be nested")),
        other => Err(invalid(
            format!("{p}.type"),
            format!("Built-in tool type '{other}' is not supported: Claude cannot run it through this gateway. Remove it from 'tools', or declare a function tool your application runs"),
        )),
    }
}

/// The raw value an item needs built (or `None`), and the checks that do not depend on the model.
fn item_value(item: &Item<'_>, p: &str) -> Result<Option<Box<RawValue>>, TranslateError> {
    match item_kind(item) {
        "custom_tool_call" => {
            let input = item.input.filter(|i| i.get().starts_with('"')).ok_or_else(|| {
                invalid(format!("{p}.input"), format!("Missing required parameter: '{p}.input' (a string)"))
            })?;
            // `{"input": <the raw string, as written>}`: checked JSON around a checked JSON string.
            let args = format!("{{\"{CUSTOM_INPUT_FIELD}\":{}}}", input.get());
            RawValue::from_string(args)
                .map(Some)
                .map_err(|e| invalid(format!("{p}.input"), format!("Invalid '{p}.input': {e}")))
        }
        "reasoning" => {
            let Some(enc) = item.encrypted_content.and_then(raw_str) else {
                return Ok(None);
            };
            if let Some(data) = enc.strip_prefix(REDACTED_PREFIX) {
                return Ok(Some(raw_string(data)));
            }
            let parts = item.summary.as_deref().unwrap_or_default();
            if parts.len() <= 1 {
                return Ok(None);
            }
            let text: String = parts
                .iter()
                .filter_map(|s| s.text.and_then(raw_str))
                .collect::<Vec<_>>()
                .concat();
            Ok(Some(raw_string(&text)))
        }
        "item_reference" => Err(invalid(
            format!("{p}.type"),
            "item_reference is not supported: this gateway is stateless and stores no items. Send the items themselves",
        )),
        _ => Ok(None),
    }
}

fn item_kind<'x>(item: &'x Item<'_>) -> &'x str {
    item.kind
        .as_deref()
        .unwrap_or(if item.role.is_some() { "message" } else { "" })
}

impl<'a> Parsed<'a> {
    /// The chat translation of this request with `opts`.
    pub(crate) fn translate(
        &self,
        opts: &TranslateOptions<'_>,
    ) -> Result<TranslatedRequest, TranslateError> {
        let (req, sources) = self.chat_view()?;
        crate::request::translate_view(&req, self.body_len, opts).map_err(|e| {
            let map = ParamMap {
                messages: sources,
                tools: self.params.tools.clone(),
            };
            map.rewrite(e)
        })
    }

    /// The request as the chat translator's view of a Chat Completions request, and for each chat message the
    /// Responses field it came from (for error messages).
    fn chat_view(&self) -> Result<(Request<'_>, Vec<String>), TranslateError> {
        let b = &self.body;
        let mut messages: Vec<Got<Message<'_>>> = Vec::new();
        let mut sources: Vec<String> = Vec::new();
        if let Some(instr) = b.instructions.filter(|r| r.get() != "null") {
            let Some(text) = RawText::new(Raw(instr)) else {
                return Err(invalid(
                    "instructions",
                    "Invalid type for 'instructions': expected a string",
                ));
            };
            messages.push(Got::Ok(message("system", Content::Str(text))));
            sources.push("instructions".to_owned());
        }
        match &b.input {
            Some(Input::Items(items)) => {
                messages.reserve(items.len());
                for (i, item) in items.iter().enumerate() {
                    let own = self.item_raw[i].as_deref();
                    let p = format!("input[{i}]");
                    if let Some(m) = self.item_message(item, own, &p)? {
                        messages.push(Got::Ok(m));
                        sources.push(p);
                    }
                }
            }
            _ => {
                let text = self.input_raw.as_deref().and_then(|r| RawText::new(Raw(r)));
                let text =
                    text.ok_or_else(|| invalid("input", "Missing required parameter: 'input'"))?;
                messages.push(Got::Ok(message("user", Content::Str(text))));
                sources.push("input".to_owned());
            }
        }
        if !messages.iter().any(|m| match m {
            Got::Ok(m) => !matches!(&m.role, Some(J::Str(r)) if r == "system" || r == "developer"),
            _ => false,
        }) {
            return Err(invalid(
                "input",
                "Invalid 'input': it holds no user message",
            ));
        }

        let tools: Vec<Got<ChatTool<'_>>> = self
            .planned
            .iter()
            .map(|(i, inner, desc)| {
                let outer = &self.tools[*i];
                let (t, ns) = match inner {
                    Some(k) => (
                        &outer.tools.as_deref().unwrap_or_default()[*k],
                        outer.name.as_deref(),
                    ),
                    None => (outer, None),
                };
                let name = t.name.as_deref().unwrap_or_default();
                let (description, parameters) = match desc {
                    Some(d) => (
                        Some(Raw(d)),
                        Some(Got::Ok(Members(CUSTOM_SCHEMA.0.clone()))),
                    ),
                    None => (
                        t.description.map(Raw),
                        t.parameters.as_ref().map(Schema::view),
                    ),
                };
                Got::Ok(ChatTool {
                    kind: Some(J::Str(Cow::Borrowed("function"))),
                    function: Some(Got::Ok(Function {
                        name: Some(J::Str(flat_name(ns, name))),
                        description,
                        parameters,
                        strict: if desc.is_some() { None } else { j(t.strict) },
                        cache_control: None,
                    })),
                    cache_control: t.cache_control.map(Raw),
                })
            })
            .collect();

        let tool_choice = match b.tool_choice.filter(|r| r.get() != "null") {
            None => None,
            Some(r) => Some(named_choice(r)?),
        };
        // Reasoning: an effort, or a summary request alone (Codex sends `{summary:"auto"}` for models it does
        // not know), which asks for reasoning at the default effort.
        let reasoning_effort = match &b.reasoning {
            Some(Reasoning {
                effort: Some(e), ..
            }) if e.get() != "null" => j(Some(e)),
            Some(Reasoning {
                summary: Some(s), ..
            }) if s.get().starts_with('"') && s.get() != "\"none\"" => {
                Some(J::Str(Cow::Borrowed("medium")))
            }
            _ => None,
        };
        let response_format = match b.text.as_ref().and_then(|t| t.format.as_ref()) {
            None => None,
            Some(f) => match f.kind.as_deref() {
                Some("json_schema") => Some(Got::Ok(ResponseFormat {
                    kind: Some(J::Str(Cow::Borrowed("json_schema"))),
                    json_schema: Some(Got::Ok(JsonSchema {
                        description: j(f.description),
                        schema: members(f.schema),
                    })),
                })),
                Some(k @ ("json_object" | "text")) => Some(Got::Ok(ResponseFormat {
                    kind: Some(J::Str(Cow::Borrowed(k))),
                    json_schema: None,
                })),
                None => None,
                Some(other) => {
                    return Err(invalid(
                        "text.format.type",
                        format!("Invalid value for 'text.format.type': '{other}'. Supported values are 'text', 'json_object' and 'json_schema'"),
                    ))
                }
            },
        };
        let req = Request {
            model: b.model.as_deref().map(|m| J::Str(Cow::Borrowed(m))),
            messages: Some(List::Ok(messages)),
            tools: (!tools.is_empty()).then_some(List::Ok(tools)),
            tool_choice,
            parallel_tool_calls: j(b.parallel_tool_calls),
            response_format,
            reasoning_effort,
            stream: j(b.stream),
            max_completion_tokens: j(b.max_output_tokens).filter(|m| !m.is_null()),
            temperature: j(b.temperature),
            top_p: j(b.top_p),
            user: j(b.user),
            safety_identifier: j(b.safety_identifier),
            ..Default::default()
        };
        Ok((req, sources))
    }

    /// One input item as a chat message (`None`: dropped).
    fn item_message<'s>(
        &'s self,
        item: &'s Item<'a>,
        own: Option<&'s RawValue>,
        p: &str,
    ) -> Result<Option<Message<'s>>, TranslateError> {
        let kind = item_kind(item);
        match kind {
            "message" => {
                let role = match item.role.as_deref() {
                    Some(r @ ("user" | "assistant" | "system" | "developer")) => r,
                    Some(other) => {
                        return Err(invalid(
                            format!("{p}.role"),
                            format!("Invalid value for '{p}.role': '{other}'. Supported values are 'user', 'assistant', 'system' and 'developer'"),
                        ))
                    }
                    None => return Err(invalid(format!("{p}.role"), format!("Missing required parameter: '{p}.role'"))),
                };
                let content = content(item.content, &format!("{p}.content"))?;
                Ok(Some(message(role, content)))
            }
            "function_call" | "custom_tool_call" => {
                let call_id = call_id(item, p)?;
                let name = match item.name.as_deref() {
                    Some(n) if !n.is_empty() => n,
                    _ => {
                        return Err(invalid(
                            format!("{p}.name"),
                            format!("Missing required parameter: '{p}.name'"),
                        ))
                    }
                };
                let arguments = match (kind, own) {
                    ("custom_tool_call", Some(args)) => args,
                    _ => item.arguments.unwrap_or(static_raw(&EMPTY_OBJECT)),
                };
                let mut m = message("assistant", Content::Null);
                m.content = None;
                m.tool_calls = Some(List::Ok(vec![Got::Ok(ToolCall {
                    id: Some(J::Str(Cow::Borrowed(call_id))),
                    kind: Some(J::Str(Cow::Borrowed("function"))),
                    function: Some(Got::Ok(CallFunction {
                        name: Some(J::Str(flat_name(item.namespace.as_deref(), name))),
                        arguments: Some(Raw(arguments)),
                    })),
                })]));
                Ok(Some(m))
            }
            "function_call_output" | "custom_tool_call_output" => {
                let mut m = message("tool", content(item.output, &format!("{p}.output"))?);
                m.tool_call_id = Some(J::Str(Cow::Borrowed(call_id(item, p)?)));
                Ok(Some(m))
            }
            "reasoning" => Ok(thinking_block(item, own).map(|block| {
                let mut m = message("assistant", Content::Null);
                m.content = None;
                m.thinking_blocks = Some(List::Ok(vec![Got::Ok(block)]));
                m
            })),
            // Codex's own tool-search and web-search records: the tools behind them were dropped (see
            // `dropped_builtin`), and their results are not for the model.
            "web_search_call" | "tool_search_call" | "tool_search_output" | "compaction" => {
                Ok(None)
            }
            "" => Err(invalid(
                format!("{p}.type"),
                format!("Missing required parameter: '{p}.type'"),
            )),
            other => Err(invalid(
                format!("{p}.type"),
                format!("Unsupported input item type '{other}'"),
            )),
        }
    }
}

fn message<'x>(role: &'x str, content: Content<'x>) -> Message<'x> {
    Message {
        role: Some(J::Str(Cow::Borrowed(role))),
        content: Some(content),
        ..Default::default()
    }
}

fn call_id<'x>(item: &'x Item<'_>, p: &str) -> Result<&'x str, TranslateError> {
    match item.call_id.as_deref() {
        Some(c) if !c.is_empty() => Ok(c),
        _ => Err(invalid(
            format!("{p}.call_id"),
            format!("Missing required parameter: '{p}.call_id'"),
        )),
    }
}

/// A Claude thinking block carried back in a reasoning item (docs/responses.md §3.3): the thinking text in
/// `summary`, its signature in `encrypted_content`. Items without one (from another provider, or stripped) are
/// dropped: Claude rejects unsigned thinking.
fn thinking_block<'x>(item: &'x Item<'_>, own: Option<&'x RawValue>) -> Option<Members<'x>> {
    let enc = item
        .encrypted_content
        .filter(|e| e.get().starts_with('"') && e.get() != "\"\"")?;
    let key = |k: &'static str| Cow::Borrowed(k);
    if raw_str(enc).is_some_and(|e| e.starts_with(REDACTED_PREFIX)) {
        let data = own?;
        return Some(Members(vec![
            (key("type"), Raw(static_raw(&REDACTED))),
            (key("data"), Raw(data)),
        ]));
    }
    let text = match (own, item.summary.as_deref().unwrap_or_default()) {
        (Some(joined), _) => joined,
        (None, [one]) => one.text.unwrap_or(static_raw(&EMPTY_STRING)),
        (None, _) => static_raw(&EMPTY_STRING),
    };
    Some(Members(vec![
        (key("type"), Raw(static_raw(&THINKING))),
        (key("thinking"), Raw(text)),
        (key("signature"), Raw(enc)),
    ]))
}

/// A message `content` or a tool `output`: a string as it is, or a list of parts.
fn content<'x>(c: Option<R<'x>>, p: &str) -> Result<Content<'x>, TranslateError> {
    let Some(c) = c.filter(|c| c.get() != "null") else {
        return Err(invalid(p, format!("Missing required parameter: '{p}'")));
    };
    if let Some(text) = RawText::new(Raw(c)) {
        return Ok(Content::Str(text));
    }
    if !c.get().starts_with('[') {
        return Err(invalid(
            p,
            format!("Invalid type for '{p}': expected a string or an array of content parts"),
        ));
    }
    let parts: Vec<TextPart<'x>> =
        serde_json::from_str(c.get()).map_err(|e| invalid(p, format!("Invalid '{p}': {e}")))?;
    // One text part is the plain string (the chat translator's cheapest form, and the same blocks).
    if let [TextPart {
        kind: Some(k),
        text: Some(t),
        cache_control: None,
        ..
    }] = parts.as_slice()
    {
        if matches!(k.as_ref(), "input_text" | "output_text") {
            if let Some(text) = RawText::new(Raw(t)) {
                return Ok(Content::Str(text));
            }
        }
    }
    let mut out = Vec::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        out.push(Got::Ok(chat_part(part, &format!("{p}[{i}]"))?));
    }
    Ok(Content::Parts(out))
}

fn chat_part<'x>(part: TextPart<'x>, p: &str) -> Result<Part<'x>, TranslateError> {
    let missing = |field: &str| {
        invalid(
            format!("{p}.{field}"),
            format!("Missing required parameter: '{p}.{field}'"),
        )
    };
    let kind = |k: &'static str| Some(J::Str(Cow::Borrowed(k)));
    let cache_control = part.cache_control.map(Raw);
    match part.kind.as_deref() {
        Some("input_text" | "output_text" | "text") => Ok(Part {
            kind: kind("text"),
            text: Some(Raw(part.text.ok_or_else(|| missing("text"))?)),
            cache_control,
            ..Default::default()
        }),
        Some("refusal") => Ok(Part {
            kind: kind("refusal"),
            refusal: Some(Raw(part.refusal.ok_or_else(|| missing("refusal"))?)),
            cache_control,
            ..Default::default()
        }),
        // The chat translator reads `image_url` as a URL string (or `{url}`); OpenAI's `detail` has no Claude
        // equivalent.
        Some("input_image") => match (j(part.image_url).filter(|u| !u.is_null()), part.file_id) {
            (Some(url), _) => Ok(Part {
                kind: kind("image_url"),
                image_url: Some(url),
                cache_control,
                ..Default::default()
            }),
            (None, Some(_)) => Err(invalid(
                format!("{p}.file_id"),
                "File references (file_id) are not supported; send the image inline as a data URL or an http(s) URL in image_url",
            )),
            (None, None) => Err(missing("image_url")),
        },
        Some("input_file") => {
            if part.file_id.is_some() && part.file_data.is_none() {
                return Err(invalid(
                    format!("{p}.file_id"),
                    "File references (file_id) are not supported; send the file inline as file_data",
                ));
            }
            if part.file_url.is_some() && part.file_data.is_none() {
                return Err(invalid(
                    format!("{p}.file_url"),
                    "File URLs are not supported; send the file inline as file_data",
                ));
            }
            let data = j(part.file_data).ok_or_else(|| missing("file_data"))?;
            let mut file = vec![(Cow::Borrowed("file_data"), data)];
            if let Some(f) = j(part.filename) {
                file.push((Cow::Borrowed("filename"), f));
            }
            Ok(Part {
                kind: kind("file"),
                file: Some(J::Obj(Obj(file))),
                cache_control,
                ..Default::default()
            })
        }
        Some(other) => Err(invalid(format!("{p}.type"), format!("Unsupported content part type '{other}'"))),
        None => Err(missing("type")),
    }
}

/// `tool_choice` in chat form: the strings as they are; a named `function`/`custom` tool
/// (`{type, name, namespace?}`) as `{type: "function", function: {name}}` with the flattened name.
fn named_choice(r: R<'_>) -> Result<J<'_>, TranslateError> {
    let v: J<'_> = serde_json::from_str(r.get())
        .map_err(|e| invalid("tool_choice", format!("Invalid 'tool_choice': {e}")))?;
    let J::Obj(o) = &v else {
        return Ok(v);
    };
    let name = o.get("name").and_then(J::as_str);
    match o.get("type").and_then(J::as_str) {
        Some("function" | "custom") => {
            let Some(name) = name.filter(|n| !n.is_empty()) else {
                return Err(invalid("tool_choice.name", "Missing required parameter: 'tool_choice.name'"));
            };
            let flat = flat_name(o.get("namespace").and_then(J::as_str), name).into_owned();
            Ok(J::Obj(Obj(vec![
                (Cow::Borrowed("type"), J::Str(Cow::Borrowed("function"))),
                (Cow::Borrowed("function"), J::Obj(Obj(vec![(Cow::Borrowed("name"), J::Str(Cow::Owned(flat)))]))),
            ])))
        }
        Some(other) => Err(invalid(
            "tool_choice.type",
            format!("Unsupported tool_choice type '{other}': use 'auto', 'none', 'required' or a named function or custom tool"),
        )),
        None => Err(invalid("tool_choice.type", "Missing required parameter: 'tool_choice.type'")),
    }
}

/// Built-in tools Codex sends whatever the model; Claude cannot run them, and Codex works without them:
/// `web_search` (a cached search, `external_web_access: false`; live, `true`, when Codex runs without a sandbox)
/// and `tool_search` (finds deferred tools Codex also lists in full). A live `web_search` from another client is
/// refused instead: it asked for search results it would not get. See docs/responses.md §2.2.
fn dropped_builtin(t: &Tool<'_>, from_codex: bool) -> bool {
    match t.kind.as_deref() {
        Some("web_search" | "web_search_preview") => {
            from_codex || t.external_web_access == Some(false)
        }
        Some("tool_search") => true,
        _ => false,
    }
}

/// The one-string schema a `custom` tool takes on Claude: `{"input": "<raw text>"}`.
static CUSTOM_SCHEMA_TEXT: LazyLock<Box<RawValue>> = LazyLock::new(|| {
    json_raw(&format!(
        r#"{{"type":"object","properties":{{"{CUSTOM_INPUT_FIELD}":{{"type":"string","description":"The raw input of the tool, exactly as the tool expects it"}}}},"required":["{CUSTOM_INPUT_FIELD}"],"additionalProperties":false}}"#
    ))
});
static CUSTOM_SCHEMA: LazyLock<Members<'static>> = LazyLock::new(|| {
    let text: &'static RawValue = &CUSTOM_SCHEMA_TEXT;
    match serde_json::from_str::<Got<Members<'static>>>(text.get()) {
        Ok(Got::Ok(m)) => m,
        _ => Members::default(),
    }
});

/// A custom tool's description, with its grammar (if any) so Claude writes input the tool accepts.
fn custom_description(t: &Tool<'_>) -> Box<RawValue> {
    let mut d = t
        .description
        .and_then(raw_str)
        .map(Cow::into_owned)
        .unwrap_or_default();
    if let Some(f) = &t.format {
        if f.kind.as_deref() == Some("grammar") {
            if let Some(def) = &f.definition {
                let syntax = f.syntax.as_deref().unwrap_or("lark");
                d.push_str(&format!(
                    "\n\nPut the whole tool input in the `{CUSTOM_INPUT_FIELD}` string. It must match this {syntax} grammar:\n{def}"
                ));
            }
        }
    }
    raw_string(&d)
}
