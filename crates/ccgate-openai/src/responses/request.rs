//! Responses request → the Chat Completions request the rest of this crate already translates
//! (docs/responses.md §2). The Responses body is read once into views borrowed from it (texts,
//! schemas, image data and arguments stay raw JSON text), and the chat body is written from them
//! without decoding the texts again: images, files, tools, schemas, reasoning, sampling, names
//! and the pairing rules are then those of `/openai` chat, applied by [`crate::translate_request`].
//!
//! Errors the chat translator raises name chat fields (`messages[3].content`); [`ParamMap`] turns
//! them back into the Responses field the client wrote (`input[5].content`).

use super::{ResponsesContext, CUSTOM_INPUT_FIELD, NAMESPACE_SEPARATOR, REDACTED_PREFIX};
use crate::error::TranslateError;
use crate::names::is_valid_ident;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

type R<'a> = &'a RawValue;

/// The top-level Responses body, as far as the translation reads it; other fields are ignored.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Body<'a> {
    #[serde(borrow)]
    model: Option<R<'a>>,
    #[serde(borrow)]
    input: Option<R<'a>>,
    #[serde(borrow)]
    instructions: Option<R<'a>>,
    /// Read as raw text (echoed in the answer), then as tools.
    #[serde(borrow)]
    tools: Option<R<'a>>,
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

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tool<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<R<'a>>,
    #[serde(borrow)]
    parameters: Option<R<'a>>,
    #[serde(borrow)]
    strict: Option<R<'a>>,
    #[serde(borrow)]
    format: Option<CustomFormat<'a>>,
    /// `namespace` tools.
    #[serde(borrow)]
    tools: Option<Vec<Tool<'a>>>,
    /// `web_search`: Codex sends `false` (no live web access).
    external_web_access: Option<bool>,
    #[serde(borrow)]
    cache_control: Option<R<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CustomFormat<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow)]
    syntax: Option<Cow<'a, str>>,
    #[serde(borrow)]
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
    name: Option<R<'a>>,
    #[serde(borrow)]
    schema: Option<R<'a>>,
    #[serde(borrow)]
    strict: Option<R<'a>>,
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
    summary: Option<Vec<TextPart<'a>>>,
    #[serde(borrow)]
    encrypted_content: Option<Cow<'a, str>>,
}

/// A content part (`input_text`, `input_image`, `input_file`, `output_text`, `refusal`, and the
/// `summary_text`/`reasoning_text` parts of reasoning items).
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
    detail: Option<R<'a>>,
    #[serde(borrow)]
    file_id: Option<R<'a>>,
    #[serde(borrow)]
    file_data: Option<R<'a>>,
    #[serde(borrow)]
    file_url: Option<R<'a>>,
    #[serde(borrow)]
    filename: Option<R<'a>>,
}

// ---- the chat body written from the views ----

#[derive(Serialize)]
struct ChatBody<'x, 'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<R<'a>>,
    messages: &'x [ChatMessage<'a>],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<ChatTool<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<Cow<'a, RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parallel_tool_calls: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<ChatFormat<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    top_p: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    safety_identifier: Option<R<'a>>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<ChatContent<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<ChatToolCall<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_call_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    thinking_blocks: Vec<Value>,
}

impl<'a> ChatMessage<'a> {
    fn new(role: &'static str) -> Self {
        Self {
            role,
            content: None,
            tool_calls: Vec::new(),
            tool_call_id: None,
            thinking_blocks: Vec::new(),
        }
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum ChatContent<'a> {
    /// A JSON string, as the client wrote it.
    Raw(R<'a>),
    Parts(Vec<ChatPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type")]
enum ChatPart<'a> {
    #[serde(rename = "text")]
    Text { text: R<'a> },
    #[serde(rename = "refusal")]
    Refusal { refusal: R<'a> },
    #[serde(rename = "image_url")]
    Image { image_url: ImageUrl<'a> },
    #[serde(rename = "file")]
    File { file: FileRef<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: R<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<R<'a>>,
}

#[derive(Serialize)]
struct FileRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    file_data: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file_id: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<R<'a>>,
}

#[derive(Serialize)]
struct ChatToolCall<'a> {
    id: Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'static str,
    function: ChatCallFunction<'a>,
}

#[derive(Serialize)]
struct ChatCallFunction<'a> {
    name: Cow<'a, str>,
    arguments: Cow<'a, RawValue>,
}

#[derive(Serialize)]
struct ChatTool<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    function: ChatFunction<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_control: Option<R<'a>>,
}

#[derive(Serialize)]
struct ChatFunction<'a> {
    name: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Cow<'a, RawValue>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<R<'a>>,
}

#[derive(Serialize)]
struct ChatFormat<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    json_schema: Option<ChatJsonSchema<'a>>,
}

#[derive(Serialize)]
struct ChatJsonSchema<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    strict: Option<R<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<R<'a>>,
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

/// The chat body and what the answer's translation needs.
pub(crate) struct ChatRequest {
    /// The `model` the client asked for.
    pub model: String,
    /// `prompt_cache_key` (Codex: the session id, the same on every turn).
    pub session: Option<String>,
    pub body: Vec<u8>,
    pub ctx: ResponsesContext,
    pub params: ParamMap,
    pub warnings: Vec<String>,
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
    // Serialising a &str cannot fail and always yields valid JSON.
    RawValue::from_string(serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()))
        .unwrap_or_else(|_| RawValue::from_string("\"\"".into()).expect("valid JSON"))
}

/// The Claude-side (flattened) name of a tool, `namespace` + [`NAMESPACE_SEPARATOR`] + `name`.
pub(crate) fn flat_name<'a>(namespace: Option<&str>, name: &'a str) -> Cow<'a, str> {
    match namespace {
        Some(ns) if !ns.is_empty() => Cow::Owned(format!("{ns}{NAMESPACE_SEPARATOR}{name}")),
        _ => Cow::Borrowed(name),
    }
}

/// Translates a Responses body into a Chat Completions body (see the module docs).
pub(crate) fn to_chat(body: &[u8]) -> Result<ChatRequest, TranslateError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| TranslateError::general("Request body must be UTF-8 JSON"))?;
    if !text.trim_start().starts_with('{') {
        return Err(TranslateError::general(
            "Request body must be a JSON object",
        ));
    }
    let b: Body<'_> = serde_json::from_str(text).map_err(|e| {
        TranslateError::general(format!(
            "We could not parse the JSON body of your request: {e}"
        ))
    })?;
    let model = match b.model.and_then(raw_str) {
        Some(m) if !m.is_empty() => m.into_owned(),
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
        ..Default::default()
    };
    let mut params = ParamMap::default();
    let mut warnings = Vec::new();

    ctx.from_codex = b.client_metadata.is_some_and(|m| m.get().starts_with('{'));
    // Tools.
    let tool_list: Vec<Tool<'_>> = match b.tools.filter(|t| t.get() != "null") {
        None => Vec::new(),
        Some(raw) => serde_json::from_str(raw.get())
            .map_err(|e| invalid("tools", format!("Invalid 'tools': {e}")))?,
    };
    let mut tools = Vec::new();
    for (i, t) in tool_list.iter().enumerate() {
        add_tool(
            t,
            None,
            &format!("tools[{i}]"),
            &mut tools,
            &mut params,
            &mut ctx,
            &mut warnings,
        )?;
    }
    // Echoed in the response object as the client sent them.
    ctx.tools = b
        .tools
        .filter(|t| t.get() != "null")
        .map(|t| t.get().to_owned());

    // Messages.
    let Some(input) = b.input else {
        return Err(invalid("input", "Missing required parameter: 'input'"));
    };
    let items: Vec<Item<'_>> = if input.get().starts_with('[') {
        serde_json::from_str(input.get())
            .map_err(|e| invalid("input", format!("Invalid 'input': {e}")))?
    } else {
        Vec::new()
    };
    let mut messages: Vec<ChatMessage<'_>> = Vec::with_capacity(items.len() + 1);
    if let Some(instr) = b.instructions.filter(|r| r.get() != "null") {
        if !instr.get().starts_with('"') {
            return Err(invalid(
                "instructions",
                "Invalid type for 'instructions': expected a string",
            ));
        }
        let mut m = ChatMessage::new("system");
        m.content = Some(ChatContent::Raw(instr));
        messages.push(m);
        params.messages.push("instructions".into());
        ctx.instructions = raw_str(instr).map(Cow::into_owned);
    }
    match input.get().as_bytes().first() {
        Some(b'"') => {
            let mut m = ChatMessage::new("user");
            m.content = Some(ChatContent::Raw(input));
            messages.push(m);
            params.messages.push("input".into());
        }
        Some(b'[') => {
            for (i, item) in items.iter().enumerate() {
                let p = format!("input[{i}]");
                if let Some(m) = convert_item(item, &p, &mut warnings)? {
                    messages.push(m);
                    params.messages.push(p);
                }
            }
        }
        _ => {
            return Err(invalid(
                "input",
                "Invalid type for 'input': expected a string or an array of input items",
            ))
        }
    }
    if messages.iter().all(|m| m.role == "system") {
        return Err(invalid(
            "input",
            "Invalid 'input': it holds no user message",
        ));
    }

    // tool_choice.
    let tool_choice = match b.tool_choice.filter(|r| r.get() != "null") {
        None => None,
        Some(r) if r.get().starts_with('"') => Some(Cow::Borrowed(r)),
        Some(r) => Some(Cow::Owned(named_choice(r)?)),
    };

    // Reasoning: an effort, or a summary request alone (Codex sends `{summary:"auto"}` for models it does not
    // know), which asks for reasoning at the default effort.
    let reasoning_effort = match &b.reasoning {
        Some(r) if !is_null(r.effort) => r.effort,
        Some(r)
            if r.summary
                .is_some_and(|s| s.get() != "null" && s.get() != "\"none\"") =>
        {
            Some(medium_effort())
        }
        _ => None,
    };
    let response_format = match b.text.as_ref().and_then(|t| t.format.as_ref()) {
        None => None,
        Some(f) => match f.kind.as_deref() {
            None | Some("text") => None,
            Some("json_object") => Some(ChatFormat {
                kind: "json_object",
                json_schema: None,
            }),
            Some("json_schema") => Some(ChatFormat {
                kind: "json_schema",
                json_schema: Some(ChatJsonSchema {
                    name: f.name,
                    schema: f.schema,
                    strict: f.strict,
                    description: f.description,
                }),
            }),
            Some(other) => {
                return Err(invalid(
                    "text.format.type",
                    format!("Invalid value for 'text.format.type': '{other}'. Supported values are 'text', 'json_object' and 'json_schema'"),
                ))
            }
        },
    };
    ctx.metadata = b
        .metadata
        .filter(|m| m.get().starts_with('{'))
        .map(|m| m.get().to_owned());
    ctx.parallel_tool_calls = b.parallel_tool_calls.is_none_or(|p| p.get() != "false");
    ctx.tool_choice = tool_choice.as_ref().map(|c| c.get().to_owned());
    ctx.stream = b.stream.is_some_and(|s| s.get() == "true");

    let chat = ChatBody {
        model: b.model,
        messages: &messages,
        tools,
        tool_choice,
        parallel_tool_calls: b.parallel_tool_calls,
        reasoning_effort,
        response_format,
        max_completion_tokens: b.max_output_tokens.filter(|r| r.get() != "null"),
        temperature: b.temperature,
        top_p: b.top_p,
        stream: b.stream,
        user: b.user,
        safety_identifier: b.safety_identifier,
    };
    let mut out = Vec::with_capacity(body.len() + 256);
    serde_json::to_writer(&mut out, &chat)
        .map_err(|e| TranslateError::general(format!("Could not translate the request: {e}")))?;
    Ok(ChatRequest {
        session: b
            .prompt_cache_key
            .filter(|k| !k.is_empty())
            .map(Cow::into_owned),
        model,
        body: out,
        ctx,
        params,
        warnings,
    })
}

/// `"medium"` as a raw value, for a summary-only `reasoning`.
fn medium_effort() -> R<'static> {
    static MEDIUM: std::sync::LazyLock<Box<RawValue>> =
        std::sync::LazyLock::new(|| raw_string("medium"));
    &MEDIUM
}

/// A named `tool_choice` (`{type:"function"|"custom", name, namespace?}`) in chat form.
fn named_choice(r: R<'_>) -> Result<Box<RawValue>, TranslateError> {
    #[derive(Deserialize)]
    struct Named<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
        #[serde(borrow)]
        name: Option<Cow<'a, str>>,
        #[serde(borrow)]
        namespace: Option<Cow<'a, str>>,
    }
    let n: Named<'_> = serde_json::from_str(r.get()).map_err(|_| {
        invalid(
            "tool_choice",
            "Invalid 'tool_choice': expected a string or an object",
        )
    })?;
    match (n.kind.as_deref(), n.name.as_deref()) {
        (Some("function" | "custom"), Some(name)) => {
            let flat = flat_name(n.namespace.as_deref(), name);
            let v = serde_json::json!({"type": "function", "function": {"name": flat}});
            Ok(RawValue::from_string(v.to_string()).map_err(|e| TranslateError::general(e.to_string()))?)
        }
        (Some("function" | "custom"), None) => Err(invalid(
            "tool_choice.name",
            "Missing required parameter: 'tool_choice.name'",
        )),
        (Some(other), _) => Err(invalid(
            "tool_choice.type",
            format!("Unsupported tool_choice type '{other}': use 'auto', 'none', 'required' or a named function or custom tool"),
        )),
        (None, _) => Err(invalid("tool_choice.type", "Missing required parameter: 'tool_choice.type'")),
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

#[allow(clippy::too_many_arguments)]
fn add_tool<'a>(
    t: &'a Tool<'a>,
    namespace: Option<&'a str>,
    p: &str,
    out: &mut Vec<ChatTool<'a>>,
    params: &mut ParamMap,
    ctx: &mut ResponsesContext,
    warnings: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let kind = t.kind.as_deref().unwrap_or("");
    if dropped_builtin(t, ctx.from_codex) {
        warnings.push(format!("{p}: built-in tool '{kind}' dropped"));
        return Ok(());
    }
    let name = || -> Result<&'a str, TranslateError> {
        match t.name.as_deref() {
            Some(n) if !n.is_empty() => Ok(n),
            _ => Err(invalid(
                format!("{p}.name"),
                format!("Missing required parameter: '{p}.name'"),
            )),
        }
    };
    match kind {
        "function" => {
            let name = name()?;
            let flat = flat_name(namespace, name);
            if let Some(ns) = namespace {
                ctx.namespaced.insert(flat.to_string(), (ns.to_owned(), name.to_owned()));
            }
            out.push(ChatTool {
                kind: "function",
                function: ChatFunction {
                    name: flat,
                    description: t.description.map(Cow::Borrowed),
                    parameters: t.parameters.map(Cow::Borrowed),
                    strict: t.strict,
                },
                cache_control: t.cache_control,
            });
            params.tools.push(p.to_owned());
        }
        "custom" => {
            let name = name()?;
            let flat = flat_name(namespace, name);
            if let Some(ns) = namespace {
                ctx.namespaced.insert(flat.to_string(), (ns.to_owned(), name.to_owned()));
            }
            ctx.custom_tools.insert(flat.to_string());
            out.push(ChatTool {
                kind: "function",
                function: ChatFunction {
                    name: flat,
                    description: Some(Cow::Owned(custom_description(t))),
                    parameters: Some(Cow::Borrowed(custom_schema())),
                    strict: None,
                },
                cache_control: t.cache_control,
            });
            params.tools.push(p.to_owned());
        }
        "namespace" => {
            let ns = name()?;
            if !is_valid_ident(ns, 64) {
                return Err(invalid(format!("{p}.name"), format!("Invalid namespace name '{ns}'")));
            }
            for (j, inner) in t.tools.iter().flatten().enumerate() {
                add_tool(inner, Some(ns), &format!("{p}.tools[{j}]"), out, params, ctx, warnings)?;
            }
        }
        "" => return Err(invalid(format!("{p}.type"), format!("Missing required parameter: '{p}.type'"))),
        other => {
            return Err(invalid(
                format!("{p}.type"),
                format!("Built-in tool type '{other}' is not supported: Claude cannot run it through this gateway. Remove it from 'tools', or declare a function tool your application runs"),
            ))
        }
    }
    Ok(())
}

/// The one-string schema a `custom` tool takes on Claude: `{"input": "<raw text>"}`.
fn custom_schema() -> R<'static> {
    static SCHEMA: std::sync::LazyLock<Box<RawValue>> = std::sync::LazyLock::new(|| {
        RawValue::from_string(format!(
            r#"{{"type":"object","properties":{{"{CUSTOM_INPUT_FIELD}":{{"type":"string","description":"The raw input of the tool, exactly as the tool expects it"}}}},"required":["{CUSTOM_INPUT_FIELD}"],"additionalProperties":false}}"#
        ))
        .expect("valid JSON")
    });
    &SCHEMA
}

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

/// Converts one `input` item into a chat message (`None`: dropped).
fn convert_item<'a>(
    item: &'a Item<'a>,
    p: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<ChatMessage<'a>>, TranslateError> {
    let kind = item
        .kind
        .as_deref()
        .unwrap_or(if item.role.is_some() { "message" } else { "" });
    match kind {
        "message" => {
            let role = match item.role.as_deref() {
                Some("user") => "user",
                Some("assistant") => "assistant",
                Some("system") => "system",
                Some("developer") => "developer",
                Some(other) => {
                    return Err(invalid(
                        format!("{p}.role"),
                        format!("Invalid value for '{p}.role': '{other}'. Supported values are 'user', 'assistant', 'system' and 'developer'"),
                    ))
                }
                None => return Err(invalid(format!("{p}.role"), format!("Missing required parameter: '{p}.role'"))),
            };
            let mut m = ChatMessage::new(role);
            m.content = Some(content(item.content, &format!("{p}.content"))?);
            Ok(Some(m))
        }
        "function_call" | "custom_tool_call" => {
            let call_id = call_id(item, p)?;
            let name = match item.name.as_deref() {
                Some(n) if !n.is_empty() => n,
                _ => return Err(invalid(format!("{p}.name"), format!("Missing required parameter: '{p}.name'"))),
            };
            let arguments = if kind == "function_call" {
                match item.arguments {
                    Some(a) => Cow::Borrowed(a),
                    None => Cow::Owned(raw_string("{}")),
                }
            } else {
                let input = item.input.and_then(raw_str).ok_or_else(|| {
                    invalid(format!("{p}.input"), format!("Missing required parameter: '{p}.input' (a string)"))
                })?;
                let args = serde_json::json!({ CUSTOM_INPUT_FIELD: input }).to_string();
                Cow::Owned(raw_string(&args))
            };
            let mut m = ChatMessage::new("assistant");
            m.tool_calls.push(ChatToolCall {
                id: call_id,
                kind: "function",
                function: ChatCallFunction {
                    name: flat_name(item.namespace.as_deref(), name),
                    arguments,
                },
            });
            Ok(Some(m))
        }
        "function_call_output" | "custom_tool_call_output" => {
            let mut m = ChatMessage::new("tool");
            m.tool_call_id = Some(call_id(item, p)?);
            m.content = Some(content(item.output, &format!("{p}.output"))?);
            Ok(Some(m))
        }
        "reasoning" => Ok(reasoning(item).map(|block| {
            let mut m = ChatMessage::new("assistant");
            m.thinking_blocks.push(block);
            m
        })),
        // Codex's own tool-search and web-search records: the tools behind them were dropped (see
        // `dropped_builtin`), and their results are not for the model.
        "web_search_call" | "tool_search_call" | "tool_search_output" | "compaction" => {
            warnings.push(format!("{p}: '{kind}' item dropped"));
            Ok(None)
        }
        "item_reference" => Err(invalid(
            format!("{p}.type"),
            "item_reference is not supported: this gateway is stateless and stores no items. Send the items themselves",
        )),
        "" => Err(invalid(format!("{p}.type"), format!("Missing required parameter: '{p}.type'"))),
        other => Err(invalid(
            format!("{p}.type"),
            format!("Unsupported input item type '{other}'"),
        )),
    }
}

fn call_id<'a>(item: &'a Item<'a>, p: &str) -> Result<Cow<'a, str>, TranslateError> {
    match &item.call_id {
        Some(c) if !c.is_empty() => Ok(Cow::Borrowed(c.as_ref())),
        _ => Err(invalid(
            format!("{p}.call_id"),
            format!("Missing required parameter: '{p}.call_id'"),
        )),
    }
}

/// A Claude thinking block carried back in a reasoning item (docs/responses.md §3.3): the thinking text in
/// `summary` (or `content`), its signature in `encrypted_content`. Items without one (from another provider, or
/// stripped) are dropped: Claude rejects unsigned thinking.
fn reasoning(item: &Item<'_>) -> Option<Value> {
    let enc = item
        .encrypted_content
        .as_deref()
        .filter(|e| !e.is_empty())?;
    if let Some(data) = enc.strip_prefix(REDACTED_PREFIX) {
        return Some(serde_json::json!({"type": "redacted_thinking", "data": data}));
    }
    let mut text = String::new();
    for part in item.summary.iter().flatten() {
        if let Some(t) = part.text.and_then(raw_str) {
            text.push_str(&t);
        }
    }
    Some(serde_json::json!({"type": "thinking", "thinking": text, "signature": enc}))
}

/// A message `content` or a tool `output`: a string as it is, or a list of parts.
fn content<'a>(c: Option<R<'a>>, p: &str) -> Result<ChatContent<'a>, TranslateError> {
    let Some(c) = c.filter(|c| c.get() != "null") else {
        return Err(invalid(p, format!("Missing required parameter: '{p}'")));
    };
    match c.get().as_bytes().first() {
        Some(b'"') => Ok(ChatContent::Raw(c)),
        Some(b'[') => {
            let parts: Vec<TextPart<'_>> = serde_json::from_str(c.get())
                .map_err(|e| invalid(p, format!("Invalid '{p}': {e}")))?;
            let mut out = Vec::with_capacity(parts.len());
            for (i, part) in parts.into_iter().enumerate() {
                out.push(chat_part(part, &format!("{p}[{i}]"))?);
            }
            Ok(ChatContent::Parts(out))
        }
        _ => Err(invalid(
            p,
            format!("Invalid type for '{p}': expected a string or an array of content parts"),
        )),
    }
}

fn chat_part<'a>(part: TextPart<'a>, p: &str) -> Result<ChatPart<'a>, TranslateError> {
    let missing = |field: &str| {
        invalid(
            format!("{p}.{field}"),
            format!("Missing required parameter: '{p}.{field}'"),
        )
    };
    match part.kind.as_deref() {
        Some("input_text" | "output_text" | "text" | "summary_text" | "reasoning_text") => Ok(ChatPart::Text {
            text: part.text.ok_or_else(|| missing("text"))?,
        }),
        Some("refusal") => Ok(ChatPart::Refusal {
            refusal: part.refusal.ok_or_else(|| missing("refusal"))?,
        }),
        Some("input_image") => match (part.image_url.filter(|u| u.get() != "null"), part.file_id) {
            (Some(url), _) => Ok(ChatPart::Image {
                image_url: ImageUrl {
                    url,
                    // OpenAI's `original` has no chat equivalent; Claude ignores `detail` anyway.
                    detail: part.detail.filter(|d| d.get() != "\"original\"" && d.get() != "null"),
                },
            }),
            (None, Some(_)) => Err(invalid(
                format!("{p}.file_id"),
                "File references (file_id) are not supported; send the image inline as a data URL or an http(s) URL in image_url",
            )),
            (None, None) => Err(missing("image_url")),
        },
        Some("input_file") => {
            if part.file_url.is_some() && part.file_data.is_none() {
                return Err(invalid(
                    format!("{p}.file_url"),
                    "File URLs are not supported; send the file inline as file_data",
                ));
            }
            Ok(ChatPart::File {
                file: FileRef {
                    file_data: part.file_data,
                    file_id: part.file_id,
                    filename: part.filename,
                },
            })
        }
        Some(other) => Err(invalid(
            format!("{p}.type"),
            format!("Unsupported content part type '{other}'"),
        )),
        None => Err(missing("type")),
    }
}
