//! The translated Anthropic body as it is assembled and written.
//!
//! Content blocks and tool definitions are either `serde_json::Value`s (built by the Value-based
//! converters) or hold [`Piece`]s of JSON text copied verbatim from the request body (built by the
//! fast path, [`crate::fast`]): long texts, tool schemas and tool arguments are then written with
//! one copy instead of being unescaped, cloned and escaped again.

use crate::messages::{Role, Turn};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// A JSON value of the output.
#[derive(Debug, Clone)]
pub(crate) enum Piece<'a> {
    /// Valid JSON text, written as it is: a token or subtree of the request body, or the text of
    /// tool-call arguments that [`crate::rawjson::parse`] accepted.
    Json(Cow<'a, str>),
    Value(Value),
}

impl Piece<'_> {
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Piece::Json(s) => {
                out.extend_from_slice(s.as_bytes());
                Ok(())
            }
            Piece::Value(v) => serde_json::to_writer(out, v),
        }
    }
}

/// An Anthropic content block.
#[derive(Debug, Clone)]
pub(crate) enum Block<'a> {
    /// `{"type":"text","text":…}`; `text` is a JSON string.
    Text {
        text: Piece<'a>,
        cache_control: Option<Piece<'a>>,
    },
    /// `{"type":"tool_use",…}`; `input` is a JSON object.
    ToolUse {
        id: String,
        name: String,
        input: Piece<'a>,
        cache_control: Option<Piece<'a>>,
    },
    /// `{"type":"tool_result",…}`; `content` is a JSON string or block array.
    ToolResult {
        tool_use_id: String,
        content: Option<Piece<'a>>,
        cache_control: Option<Piece<'a>>,
    },
    /// Any block as a `Value`.
    Value(Value),
}

impl<'a> Block<'a> {
    /// The block's `type`.
    pub(crate) fn kind(&self) -> &str {
        match self {
            Block::Text { .. } => "text",
            Block::ToolUse { .. } => "tool_use",
            Block::ToolResult { .. } => "tool_result",
            Block::Value(v) => v.get("type").and_then(Value::as_str).unwrap_or(""),
        }
    }

    /// `id` of a `tool_use` block.
    pub(crate) fn tool_use_id(&self) -> Option<&str> {
        match self {
            Block::ToolUse { id, .. } => Some(id),
            Block::Value(v) if self.kind() == "tool_use" => v.get("id").and_then(Value::as_str),
            _ => None,
        }
    }

    /// `name` of a `tool_use` block.
    pub(crate) fn tool_use_name(&self) -> Option<&str> {
        match self {
            Block::ToolUse { name, .. } => Some(name),
            Block::Value(v) if self.kind() == "tool_use" => v.get("name").and_then(Value::as_str),
            _ => None,
        }
    }

    /// `tool_use_id` of a `tool_result` block.
    pub(crate) fn tool_result_id(&self) -> Option<&str> {
        match self {
            Block::ToolResult { tool_use_id, .. } => Some(tool_use_id),
            Block::Value(v) if self.kind() == "tool_result" => {
                v.get("tool_use_id").and_then(Value::as_str)
            }
            _ => None,
        }
    }

    /// Writes the text of a block that is exactly `{"type":"text","text":"…"}` and returns true;
    /// returns false for any other block. A message holding only such a block is sent in the
    /// compact string form.
    fn write_plain_text(&self, out: &mut Vec<u8>) -> serde_json::Result<bool> {
        match self {
            Block::Text {
                text,
                cache_control: None,
            } => text.write(out)?,
            Block::Value(Value::Object(o))
                if o.len() == 2 && o.get("type").and_then(Value::as_str) == Some("text") =>
            {
                match o.get("text") {
                    Some(t @ Value::String(_)) => serde_json::to_writer(out, t)?,
                    _ => return Ok(false),
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sets `cache_control` (a JSON object copied from the request), replacing any. `None` when the
    /// object cannot be read back, which cannot happen for text from [`crate::rawjson::parse`].
    pub(crate) fn set_cache_control(&mut self, cc: &'a str) -> Option<()> {
        let piece = Some(Piece::Json(Cow::Borrowed(cc)));
        match self {
            Block::Text { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. } => *cache_control = piece,
            Block::Value(Value::Object(o)) => {
                o.insert("cache_control".into(), serde_json::from_str(cc).ok()?);
            }
            Block::Value(_) => return None,
        }
        Some(())
    }

    /// Prefill: removes trailing whitespace from a text block (§4.2 step 11).
    pub(crate) fn trim_text_end(&mut self) {
        match self {
            Block::Text { text, .. } => {
                let decoded = match text {
                    Piece::Json(s) => serde_json::from_str::<String>(s).ok(),
                    Piece::Value(Value::String(s)) => Some(std::mem::take(s)),
                    Piece::Value(_) => None,
                };
                if let Some(mut s) = decoded {
                    let trimmed = s.trim_end().len();
                    s.truncate(trimmed);
                    *text = Piece::Value(Value::String(s));
                }
            }
            Block::Value(Value::Object(last))
                if last.get("type").and_then(Value::as_str) == Some("text") =>
            {
                if let Some(Value::String(s)) = last.get_mut("text") {
                    let trimmed = s.trim_end().len();
                    s.truncate(trimmed);
                }
            }
            _ => {}
        }
    }

    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let cc = match self {
            Block::Text {
                text,
                cache_control,
            } => {
                out.extend_from_slice(br#"{"type":"text","text":"#);
                text.write(out)?;
                cache_control
            }
            Block::ToolUse {
                id,
                name,
                input,
                cache_control,
            } => {
                out.extend_from_slice(br#"{"type":"tool_use","id":"#);
                serde_json::to_writer(&mut *out, id)?;
                out.extend_from_slice(br#","name":"#);
                serde_json::to_writer(&mut *out, name)?;
                out.extend_from_slice(br#","input":"#);
                input.write(out)?;
                cache_control
            }
            Block::ToolResult {
                tool_use_id,
                content,
                cache_control,
            } => {
                out.extend_from_slice(br#"{"type":"tool_result","tool_use_id":"#);
                serde_json::to_writer(&mut *out, tool_use_id)?;
                if let Some(c) = content {
                    out.extend_from_slice(br#","content":"#);
                    c.write(out)?;
                }
                cache_control
            }
            Block::Value(v) => return serde_json::to_writer(out, v),
        };
        if let Some(cc) = cc {
            out.extend_from_slice(br#","cache_control":"#);
            cc.write(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

fn write_blocks(blocks: &[Block<'_>], out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, b) in blocks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        b.write(out)?;
    }
    out.push(b']');
    Ok(())
}

/// An Anthropic message: a lone plain text block is sent as a string (the compact form of §4.2's
/// worked example); anything else as a block array.
fn write_turn(turn: &Turn<'_>, out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.extend_from_slice(match turn.role {
        Role::User => br#"{"role":"user","content":"#,
        Role::Assistant => br#"{"role":"assistant","content":"#,
    });
    let compact = match turn.blocks.as_slice() {
        [only] => only.write_plain_text(out)?,
        _ => false,
    };
    if !compact {
        write_blocks(&turn.blocks, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// An Anthropic tool definition.
#[derive(Debug, Clone)]
pub(crate) enum ToolDef<'a> {
    Value(Value),
    /// A client tool read by the fast path; `description` is a JSON string, `input_schema` an
    /// object with `"type":"object"`.
    Pieces {
        name: String,
        description: Option<Piece<'a>>,
        input_schema: Piece<'a>,
        strict: Option<bool>,
        cache_control: Option<Piece<'a>>,
    },
}

impl ToolDef<'_> {
    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let (name, description, input_schema, strict, cache_control) = match self {
            ToolDef::Value(v) => return serde_json::to_writer(out, v),
            ToolDef::Pieces {
                name,
                description,
                input_schema,
                strict,
                cache_control,
            } => (name, description, input_schema, strict, cache_control),
        };
        out.extend_from_slice(br#"{"name":"#);
        serde_json::to_writer(&mut *out, name)?;
        if let Some(d) = description {
            out.extend_from_slice(br#","description":"#);
            d.write(out)?;
        }
        out.extend_from_slice(br#","input_schema":"#);
        input_schema.write(out)?;
        if let Some(s) = strict {
            out.extend_from_slice(if *s {
                br#","strict":true"#
            } else {
                br#","strict":false"#
            });
        }
        if let Some(cc) = cache_control {
            out.extend_from_slice(br#","cache_control":"#);
            cc.write(out)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// The parts of the body: small members as `Value`s, the large ones as blocks and definitions.
pub(crate) struct Body<'b, 'a> {
    pub small: &'b Map<String, Value>,
    /// Written only when non-empty.
    pub system: &'b [Block<'a>],
    pub messages: &'b [Turn<'a>],
    /// Written only when non-empty.
    pub tools: &'b [ToolDef<'a>],
}

enum Member<'b> {
    Small(&'b Value),
    System,
    Messages,
    Tools,
}

impl Body<'_, '_> {
    /// Serialises the body, members in key order (as the former `Value` map did). `size_hint` is
    /// the expected length (the request body's is a good guess).
    pub(crate) fn to_vec(&self, size_hint: usize) -> serde_json::Result<Vec<u8>> {
        let mut members: Vec<(&str, Member<'_>)> = self
            .small
            .iter()
            .map(|(k, v)| (k.as_str(), Member::Small(v)))
            .collect();
        members.push(("messages", Member::Messages));
        if !self.system.is_empty() {
            members.push(("system", Member::System));
        }
        if !self.tools.is_empty() {
            members.push(("tools", Member::Tools));
        }
        members.sort_by(|a, b| a.0.cmp(b.0));

        let mut out = Vec::with_capacity(size_hint + 1024);
        out.push(b'{');
        for (i, (key, member)) in members.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, key)?;
            out.push(b':');
            match member {
                Member::Small(v) => serde_json::to_writer(&mut out, v)?,
                Member::System => write_blocks(self.system, &mut out)?,
                Member::Messages => {
                    out.push(b'[');
                    for (j, t) in self.messages.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        write_turn(t, &mut out)?;
                    }
                    out.push(b']');
                }
                Member::Tools => {
                    out.push(b'[');
                    for (j, t) in self.tools.iter().enumerate() {
                        if j > 0 {
                            out.push(b',');
                        }
                        t.write(&mut out)?;
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
        Ok(out)
    }
}
