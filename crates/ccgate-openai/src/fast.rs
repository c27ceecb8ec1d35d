//! The request fast path: `tools` and `messages` read from a [`crate::rawjson`] tree instead of a
//! `serde_json::Value` tree.
//!
//! Why: a Claude-Code-sized request is mostly long strings (system prompt, messages, tool
//! descriptions and schemas). Parsing them into `Value`s, cloning them into the Anthropic body and
//! escaping them again cost about 4× the pass-through path. Here they are copied from the request
//! body as JSON text ([`Piece::Json`]).
//!
//! What: this module implements exactly the rules of [`crate::tools::parse_tools`] and
//! [`crate::messages::Converter::message`] for the common shapes:
//! * tools: function tools (name, description, parameters, strict, cache_control); a schema whose
//!   `type` is already `"object"` is copied whole, others go through `Value`;
//! * system, developer and user messages with string content or text parts, assistant messages
//!   with text and `tool_calls`, tool messages with string content.
//!
//! Every other shape of a message (images, files, `thinking_blocks`, tool content arrays, anything
//! invalid) is handed to the `Value`-based converter for that message or part, so those rules
//! exist once. Anything that would be a 400, or that this module does not handle, yields
//! [`bail`]: the caller then translates the whole request on the `Value` path, which gives the
//! exact answer or error. So the fast path never decides a 400, and a request it accepts gets the
//! same Anthropic body (same JSON value) as on the `Value` path — in debug builds
//! `translate_request` checks exactly that for every request.

use crate::content::{self, PartPolicy};
use crate::error::TranslateError;
use crate::messages::{Conversation, Converter, Ctx};
use crate::output::{Block, Piece, ToolDef};
use crate::rawjson::{self, JsonStr, Raw};
use serde_json::{json, Value};
use std::borrow::Cow;

/// "Use the `Value` path": never reaches a client (`translate_request` discards every fast-path
/// error).
pub(crate) fn bail() -> TranslateError {
    TranslateError::general("internal: request outside the fast path")
}

type Fast<T> = Result<T, TranslateError>;

/// A decoded string, or [`bail`].
fn decoded<'a>(s: &JsonStr<'a>) -> Fast<Cow<'a, str>> {
    s.decoded().ok_or_else(bail)
}

/// A non-empty string field (`non_empty_str` of the `Value` path), or `None`.
fn non_empty<'r, 'a>(v: Option<&'r Raw<'a>>) -> Option<&'r JsonStr<'a>> {
    v.and_then(Raw::as_str).filter(|s| !s.is_empty())
}

/// Schema used when a function declares no `parameters`, as [`crate::tools::empty_schema`].
const EMPTY_SCHEMA: &str = r#"{"type":"object","properties":{}}"#;

/// One client function tool, validated like [`crate::tools::parse_tools`].
#[derive(Debug)]
pub(crate) struct RawTool<'a> {
    pub name: Cow<'a, str>,
    description: Option<&'a str>,
    schema: Piece<'a>,
    strict: Option<bool>,
    cache_control: Option<&'a str>,
}

impl<'a> RawTool<'a> {
    /// The Anthropic definition, as [`crate::tools::anthropic_tool`].
    pub(crate) fn definition(self, upstream_name: String, pass_strict: bool) -> ToolDef<'a> {
        ToolDef::Pieces {
            name: upstream_name,
            description: self.description.map(|d| Piece::Json(d.into())),
            input_schema: self.schema,
            strict: self.strict.filter(|_| pass_strict),
            cache_control: self.cache_control.map(|c| Piece::Json(c.into())),
        }
    }
}

/// `tools`, as [`crate::tools::parse_tools`].
pub(crate) fn parse_tools<'a>(value: Option<&Raw<'a>>) -> Fast<Vec<RawTool<'a>>> {
    let list = match value.filter(|v| !matches!(v, Raw::Null)) {
        None => return Ok(Vec::new()),
        Some(v) => v.as_array().ok_or_else(bail)?,
    };
    let mut out: Vec<RawTool<'a>> = Vec::with_capacity(list.len());
    for t in list {
        if !t.is_object() {
            return Err(bail());
        }
        if t.field("type").is_some_and(|k| !k.is_str("function")) {
            return Err(bail());
        }
        let func = t
            .field("function")
            .filter(|f| f.is_object())
            .ok_or_else(bail)?;
        let name = decoded(non_empty(func.field("name")).ok_or_else(bail)?)?;
        let description = match func.field("description") {
            None => None,
            Some(Raw::Str(s)) => (!s.is_empty()).then_some(s.quoted),
            Some(_) => return Err(bail()),
        };
        let schema = match func.field("parameters") {
            None => Piece::Json(EMPTY_SCHEMA.into()),
            Some(p) if p.get("type").is_some_and(|t| t.is_str("object")) => {
                Piece::Json(p.span().into())
            }
            // `type` missing or not "object": set it, as `object_schema` does.
            Some(p) if p.is_object() => {
                let mut v = p.to_value().ok_or_else(bail)?;
                let o = v.as_object_mut().ok_or_else(bail)?;
                o.insert("type".into(), Value::String("object".into()));
                Piece::Value(v)
            }
            Some(_) => return Err(bail()),
        };
        let strict = match func.field("strict") {
            None => None,
            Some(Raw::Bool(b)) => Some(*b),
            Some(_) => return Err(bail()),
        };
        // On the tool, else on its function object.
        let cache_control = match t.field("cache_control") {
            Some(cc) if cc.is_object() => Some(cc.span()),
            Some(_) => return Err(bail()),
            None => match func.field("cache_control") {
                Some(cc) if cc.is_object() => Some(cc.span()),
                Some(_) => return Err(bail()),
                None => None,
            },
        };
        if out.iter().any(|o| o.name == name) {
            return Err(bail());
        }
        out.push(RawTool {
            name,
            description,
            schema,
            strict,
            cache_control,
        });
    }
    Ok(out)
}

/// Tool names used in the history's `tool_calls`, as `reserve_names` of the `Value` path reads
/// them (best effort: malformed entries are skipped).
pub(crate) fn history_tool_names<'a>(messages: Option<&Raw<'a>>) -> Fast<Vec<Cow<'a, str>>> {
    let Some(msgs) = messages.and_then(Raw::as_array) else {
        return Ok(Vec::new());
    };
    msgs.iter()
        .filter_map(|m| m.get("tool_calls").and_then(Raw::as_array))
        .flatten()
        .filter_map(|c| c.get("function")?.get("name")?.as_str())
        .map(decoded)
        .collect()
}

/// `messages`, as [`crate::messages::convert`].
pub(crate) fn convert<'a>(messages: &Raw<'a>, ctx: Ctx<'_>) -> Fast<Conversation<'a>> {
    let list = messages
        .as_array()
        .filter(|l| !l.is_empty())
        .ok_or_else(bail)?;
    let mut c = Converter::new(ctx, list.len());
    for (i, m) in list.iter().enumerate() {
        if !message(&mut c, i, m)? {
            c.message(i, &m.to_value().ok_or_else(bail)?)?;
        }
    }
    c.finish()
}

/// Converts message `i` when it has a common shape; returns false, having changed nothing, when
/// [`Converter::message`] must handle it.
fn message<'a>(c: &mut Converter<'_, 'a>, i: usize, m: &Raw<'a>) -> Fast<bool> {
    let Some(Raw::Str(role)) = m.get("role") else {
        return Ok(false);
    };
    let cache_control = match m.field("cache_control") {
        None => None,
        Some(cc) if cc.is_object() => Some(cc.span()),
        Some(_) => return Ok(false),
    };
    let max_image_bytes = c.ctx.max_image_bytes;
    match &*decoded(role)? {
        "system" | "developer" | "user" => {
            let policy = if role.is("user") {
                PartPolicy::User
            } else {
                PartPolicy::System
            };
            let Some(content) = m.field("content") else {
                return Ok(false);
            };
            let Some(mut blocks) = content_blocks(content, i, policy, max_image_bytes)? else {
                return Ok(false);
            };
            apply_cache_control(&mut blocks, cache_control)?;
            if policy == PartPolicy::User {
                c.push_user(blocks);
            } else {
                c.push_system(blocks);
            }
        }
        "assistant" => {
            if m.field("function_call").is_some() || m.field("thinking_blocks").is_some() {
                return Ok(false);
            }
            let mut blocks = match m.field("content") {
                None => Vec::new(),
                Some(content) => {
                    match content_blocks(content, i, PartPolicy::Assistant, max_image_bytes)? {
                        Some(b) => b,
                        None => return Ok(false),
                    }
                }
            };
            let Some(calls) = tool_calls(m, i)? else {
                return Ok(false);
            };
            // Everything is valid: commit, in the order of the `Value` path.
            for call in calls {
                c.conv.warnings.extend(call.warning);
                let upstream_id = c.ids.new_call(&call.id);
                c.client_ids
                    .insert(upstream_id.clone(), call.id.into_owned());
                blocks.push(Block::ToolUse {
                    id: upstream_id,
                    name: c.ctx.names.map(&call.name),
                    input: call.input,
                    cache_control: None,
                });
            }
            apply_cache_control(&mut blocks, cache_control)?;
            c.push_assistant(blocks);
        }
        "tool" => {
            let Some(id) = non_empty(m.field("tool_call_id")) else {
                return Ok(false);
            };
            let Some(upstream_id) = c.ids.lookup(&decoded(id)?) else {
                return Ok(false);
            };
            let content = match m.field("content") {
                None => None,
                Some(Raw::Str(s)) if s.is_blank().ok_or_else(bail)? => None,
                Some(Raw::Str(s)) => Some(Piece::Json(s.quoted.into())),
                Some(other) => {
                    let v = other.to_value().ok_or_else(bail)?;
                    let param = format!("messages[{i}].content");
                    match content::convert(&v, &param, PartPolicy::Tool, max_image_bytes) {
                        Ok(b) if b.is_empty() => None,
                        Ok(b) => Some(Piece::Value(Value::Array(b))),
                        Err(_) => return Ok(false),
                    }
                }
            };
            let mut block = Block::ToolResult {
                tool_use_id: upstream_id.to_owned(),
                content,
                cache_control: None,
            };
            if let Some(cc) = cache_control {
                block.set_cache_control(cc).ok_or_else(bail)?;
            }
            c.push_user(vec![block]);
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// Message-level `cache_control` goes on the last block.
fn apply_cache_control<'a>(blocks: &mut [Block<'a>], cc: Option<&'a str>) -> Fast<()> {
    if let (Some(cc), Some(last)) = (cc, blocks.last_mut()) {
        last.set_cache_control(cc).ok_or_else(bail)?;
    }
    Ok(())
}

/// `content` (string or parts) → blocks, as [`crate::content::convert`]; `None` when the content
/// must go through the `Value` path (it is then invalid, or the message is). Text is copied as
/// its JSON token; other part types are converted by [`content::convert_part`].
fn content_blocks<'a>(
    content: &Raw<'a>,
    i: usize,
    policy: PartPolicy,
    max_image_bytes: usize,
) -> Fast<Option<Vec<Block<'a>>>> {
    let text_block = |s: &JsonStr<'a>, cc: Option<&'a str>| -> Fast<Option<Block<'a>>> {
        Ok((!s.is_blank().ok_or_else(bail)?).then(|| Block::Text {
            text: Piece::Json(s.quoted.into()),
            cache_control: cc.map(|c| Piece::Json(c.into())),
        }))
    };
    let parts = match content {
        Raw::Str(s) => return Ok(Some(text_block(s, None)?.into_iter().collect())),
        Raw::Arr { items, .. } => items,
        _ => return Ok(None),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (k, part) in parts.iter().enumerate() {
        let kind = match part.get("type") {
            Some(Raw::Str(t)) if t.is("text") => "text",
            Some(Raw::Str(t)) if t.is("refusal") && policy == PartPolicy::Assistant => "refusal",
            _ => "",
        };
        let cc = match part.field("cache_control") {
            None => Some(None),
            Some(cc) if cc.is_object() => Some(Some(cc.span())),
            Some(_) => None,
        };
        if let (false, Some(cc), Some(Raw::Str(s))) = (kind.is_empty(), cc, part.get(kind)) {
            out.extend(text_block(s, cc)?);
            continue;
        }
        let v = part.to_value().ok_or_else(bail)?;
        let param = format!("messages[{i}].content[{k}]");
        match content::convert_part(&v, &param, policy, max_image_bytes) {
            Ok(b) => out.extend(b.map(Block::Value)),
            Err(_) => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// One validated tool call of an assistant message.
struct Call<'a> {
    id: Cow<'a, str>,
    name: Cow<'a, str>,
    input: Piece<'a>,
    warning: Option<String>,
}

/// The message's `tool_calls`, validated as `assistant_blocks` validates them; `None` when the
/// `Value` path must handle the message.
fn tool_calls<'a>(m: &Raw<'a>, i: usize) -> Fast<Option<Vec<Call<'a>>>> {
    let calls = match m.field("tool_calls") {
        None => return Ok(Some(Vec::new())),
        Some(Raw::Arr { items, .. }) => items,
        Some(_) => return Ok(None),
    };
    let mut out: Vec<Call<'a>> = Vec::with_capacity(calls.len());
    for (j, call) in calls.iter().enumerate() {
        if !call.is_object() || call.field("type").is_some_and(|t| !t.is_str("function")) {
            return Ok(None);
        }
        let Some(id) = non_empty(call.field("id")) else {
            return Ok(None);
        };
        let id = decoded(id)?;
        if out.iter().any(|c| c.id == id) {
            return Ok(None);
        }
        let Some(func) = call.field("function").filter(|f| f.is_object()) else {
            return Ok(None);
        };
        let Some(name) = non_empty(func.field("name")) else {
            return Ok(None);
        };
        let mut warning = None;
        let param = || format!("messages[{i}].tool_calls[{j}].function.arguments");
        let Some(input) = arguments(func.field("arguments"), param, &mut warning)? else {
            return Ok(None);
        };
        out.push(Call {
            id,
            name: decoded(name)?,
            input,
            warning,
        });
    }
    Ok(Some(out))
}

/// Tool-call `arguments` → `tool_use.input`, as `arguments` of the `Value` path: `{}` when empty,
/// the object when the string holds one (copied as text when [`rawjson::parse`] accepts it),
/// else `{"_raw_arguments": …}` with a warning. `None` for a type the `Value` path refuses.
fn arguments<'a>(
    value: Option<&Raw<'a>>,
    param: impl FnOnce() -> String,
    warning: &mut Option<String>,
) -> Fast<Option<Piece<'a>>> {
    let s = match value {
        None => return Ok(Some(Piece::Json("{}".into()))),
        Some(o) if o.is_object() => return Ok(Some(Piece::Json(o.span().into()))),
        Some(Raw::Str(s)) => decoded(s)?,
        Some(_) => return Ok(None),
    };
    if s.trim().is_empty() {
        return Ok(Some(Piece::Json("{}".into())));
    }
    if rawjson::is_object_document(&s) {
        return Ok(Some(Piece::Json(s)));
    }
    Ok(Some(match serde_json::from_str::<Value>(&s) {
        Ok(v @ Value::Object(_)) => Piece::Value(v),
        parsed => {
            let why = match parsed {
                Ok(v) => format!("a JSON {}, not an object", crate::json::type_name(&v)),
                Err(e) => format!("invalid JSON ({e})"),
            };
            *warning = Some(format!(
                "{}: arguments are {why}; sent as {{\"_raw_arguments\": …}}",
                param()
            ));
            Piece::Value(json!({ "_raw_arguments": s }))
        }
    }))
}
