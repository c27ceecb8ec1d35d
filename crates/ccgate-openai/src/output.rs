//! The translated Anthropic body as it is assembled and written: typed blocks that borrow the request's
//! strings and raw parts, serialised once into a buffer sized from the request. Members are written in key
//! order, as the former `serde_json::Value` maps wrote them.

use crate::input::{Member, Members, Raw, RawText, SortedObject};
use crate::messages::{Role, Turn};
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// An Anthropic content block.
#[derive(Debug, Clone)]
pub(crate) enum Block<'r> {
    Text {
        text: Text<'r>,
        cache_control: Option<Raw<'r>>,
    },
    Image {
        source: ImageSource<'r>,
        cache_control: Option<Raw<'r>>,
    },
    /// A PDF, base64.
    Document {
        data: &'r str,
        cache_control: Option<Raw<'r>>,
    },
    ToolUse {
        id: Cow<'r, str>,
        name: String,
        input: Input<'r>,
        cache_control: Option<Raw<'r>>,
    },
    ToolResult {
        tool_use_id: Cow<'r, str>,
        content: ToolContent<'r>,
        cache_control: Option<Raw<'r>>,
    },
    /// A client-supplied thinking or redacted_thinking block, passed on whole.
    Thinking {
        redacted: bool,
        members: &'r Members<'r>,
        cache_control: Option<Raw<'r>>,
    },
}

#[derive(Debug, Clone)]
pub(crate) enum ImageSource<'r> {
    Base64 {
        media_type: &'static str,
        data: &'r str,
    },
    Url(&'r str),
}

/// A `tool_use` block's `input`.
#[derive(Debug, Clone)]
pub(crate) enum Input<'r> {
    /// `{}`.
    Empty,
    /// An object given as such.
    Raw(Raw<'r>),
    /// An object given as JSON text (the usual `arguments` string), checked.
    Text(Box<RawValue>),
    /// `{"_raw_arguments": "<original>"}`.
    Wrapped(Cow<'r, str>),
}

/// A `tool_result` block's `content`.
#[derive(Debug, Clone)]
pub(crate) enum ToolContent<'r> {
    None,
    Text(RawText<'r>),
    Blocks(Vec<Block<'r>>),
}

/// The text of a block or a description: the client's JSON string as it came, or a string of CCGate's.
#[derive(Debug, Clone)]
pub(crate) enum Text<'r> {
    Raw(RawText<'r>),
    Str(Cow<'r, str>),
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Text::Raw(r) => r.serialize(s),
            Text::Str(t) => s.serialize_str(t),
        }
    }
}

impl<'r> Block<'r> {
    /// A text block of CCGate's own.
    pub(crate) fn text(text: &'r str) -> Self {
        Block::Text {
            text: Text::Str(Cow::Borrowed(text)),
            cache_control: None,
        }
    }

    /// The block's `type`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Block::Text { .. } => "text",
            Block::Image { .. } => "image",
            Block::Document { .. } => "document",
            Block::ToolUse { .. } => "tool_use",
            Block::ToolResult { .. } => "tool_result",
            Block::Thinking {
                redacted: false, ..
            } => "thinking",
            Block::Thinking { redacted: true, .. } => "redacted_thinking",
        }
    }

    /// Sets (or replaces) the block's `cache_control`.
    pub(crate) fn set_cache_control(&mut self, cc: Raw<'r>) {
        let (Block::Text { cache_control, .. }
        | Block::Image { cache_control, .. }
        | Block::Document { cache_control, .. }
        | Block::ToolUse { cache_control, .. }
        | Block::ToolResult { cache_control, .. }
        | Block::Thinking { cache_control, .. }) = self;
        *cache_control = Some(cc);
    }

    /// `id` of a `tool_use` block.
    pub(crate) fn tool_use_id(&self) -> Option<&str> {
        match self {
            Block::ToolUse { id, .. } => Some(id),
            _ => None,
        }
    }

    /// `name` of a `tool_use` block.
    pub(crate) fn tool_use_name(&self) -> Option<&str> {
        match self {
            Block::ToolUse { name, .. } => Some(name),
            _ => None,
        }
    }

    /// `tool_use_id` of a `tool_result` block.
    pub(crate) fn tool_result_id(&self) -> Option<&str> {
        match self {
            Block::ToolResult { tool_use_id, .. } => Some(tool_use_id),
            _ => None,
        }
    }

    /// The text of a block that is exactly `{"type":"text","text":"…"}`: a message holding only such a
    /// block is sent in the compact string form.
    fn plain_text(&self) -> Option<&Text<'r>> {
        match self {
            Block::Text {
                text,
                cache_control: None,
            } => Some(text),
            _ => None,
        }
    }

    /// Prefill: removes trailing whitespace from a text block (§4.2 step 11).
    pub(crate) fn trim_text_end(&mut self) {
        if let Block::Text { text, .. } = self {
            let trimmed = match text {
                Text::Raw(r) => match r.decode() {
                    Cow::Borrowed(s) => Cow::Borrowed(s.trim_end()),
                    Cow::Owned(s) => Cow::Owned(s.trim_end().to_owned()),
                },
                Text::Str(Cow::Borrowed(s)) => Cow::Borrowed(s.trim_end()),
                Text::Str(Cow::Owned(s)) => Cow::Owned(s.trim_end().to_owned()),
            };
            *text = Text::Str(trimmed);
        }
    }
}

/// `{"data":…,"media_type":…,"type":"base64"}`.
struct Base64<'x> {
    media_type: &'x str,
    data: &'x str,
}

impl Serialize for Base64<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("data", self.data)?;
        m.serialize_entry("media_type", self.media_type)?;
        m.serialize_entry("type", "base64")?;
        m.end()
    }
}

impl Serialize for ImageSource<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ImageSource::Base64 { media_type, data } => Base64 { media_type, data }.serialize(s),
            ImageSource::Url(url) => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "url")?;
                m.serialize_entry("url", url)?;
                m.end()
            }
        }
    }
}

impl Serialize for Input<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Input::Empty => s.serialize_map(Some(0))?.end(),
            Input::Raw(r) => r.serialize(s),
            Input::Text(r) => r.serialize(s),
            Input::Wrapped(text) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("_raw_arguments", text)?;
                m.end()
            }
        }
    }
}

/// Blocks as a JSON array.
struct Blocks<'x, 'r>(&'x [Block<'r>]);

impl Serialize for Blocks<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
}

impl Serialize for Block<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if let Block::Thinking {
            members,
            cache_control,
            ..
        } = self
        {
            return SortedObject {
                members: &members.0,
                set: cache_control.map(|cc| ("cache_control", Member::Raw(cc))),
            }
            .serialize(s);
        }
        let mut m = s.serialize_map(None)?;
        let cc = match self {
            Block::Text { cache_control, .. }
            | Block::Image { cache_control, .. }
            | Block::Document { cache_control, .. }
            | Block::ToolUse { cache_control, .. }
            | Block::ToolResult { cache_control, .. }
            | Block::Thinking { cache_control, .. } => cache_control,
        };
        if let Some(cc) = cc {
            m.serialize_entry("cache_control", cc)?;
        }
        match self {
            Block::Text { text, .. } => {
                m.serialize_entry("text", text)?;
            }
            Block::Image { source, .. } => {
                m.serialize_entry("source", source)?;
            }
            Block::Document { data, .. } => {
                m.serialize_entry(
                    "source",
                    &Base64 {
                        media_type: "application/pdf",
                        data,
                    },
                )?;
            }
            Block::ToolUse {
                id, name, input, ..
            } => {
                m.serialize_entry("id", id)?;
                m.serialize_entry("input", input)?;
                m.serialize_entry("name", name)?;
            }
            Block::ToolResult {
                tool_use_id,
                content,
                ..
            } => {
                match content {
                    ToolContent::None => {}
                    ToolContent::Text(t) => m.serialize_entry("content", t)?,
                    ToolContent::Blocks(b) => m.serialize_entry("content", &Blocks(b))?,
                }
                m.serialize_entry("tool_use_id", tool_use_id)?;
            }
            Block::Thinking { .. } => {}
        }
        m.serialize_entry("type", self.kind())?;
        m.end()
    }
}

/// An Anthropic message: a lone plain text block is sent as a string (the compact form of §4.2's
/// worked example); anything else as a block array.
impl Serialize for Turn<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry(
            "role",
            match self.role {
                Role::User => "user",
                Role::Assistant => "assistant",
            },
        )?;
        match self.blocks.as_slice() {
            [only] if only.plain_text().is_some() => {
                m.serialize_entry("content", &only.plain_text())?;
            }
            blocks => m.serialize_entry("content", &Blocks(blocks))?,
        }
        m.end()
    }
}

/// A JSON schema for `input_schema` or `output_config.format.schema`.
#[derive(Debug, Clone)]
pub(crate) enum Schema<'r> {
    /// `{"properties":{},"type":"object"}` (§4.1: a function without `parameters`).
    Empty,
    /// The client's schema, whole; `type` forced to `"object"` when `force_object`.
    Client {
        members: &'r Members<'r>,
        force_object: bool,
    },
}

impl Serialize for Schema<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Schema::Empty => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("properties", &serde_json::Map::new())?;
                m.serialize_entry("type", "object")?;
                m.end()
            }
            Schema::Client {
                members,
                force_object,
            } => SortedObject {
                members: &members.0,
                set: force_object.then_some(("type", Member::Str("object"))),
            }
            .serialize(s),
        }
    }
}

/// An Anthropic tool definition.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ToolDef<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<Raw<'r>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Text<'r>>,
    pub input_schema: Schema<'r>,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `output_config`.
#[derive(Debug, Default, Serialize)]
pub(crate) struct OutputConfig<'r> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effort: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat<'r>>,
}

impl OutputConfig<'_> {
    pub(crate) fn is_empty(&self) -> bool {
        self.effort.is_none() && self.format.is_none()
    }
}

/// `output_config.format`: `{"schema":…,"type":"json_schema"}`.
#[derive(Debug, Serialize)]
pub(crate) struct OutputFormat<'r> {
    pub schema: Schema<'r>,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `metadata`.
#[derive(Debug, Serialize)]
pub(crate) struct Metadata<'r> {
    pub user_id: &'r str,
}

struct Turns<'x, 'r>(&'x [Turn<'r>]);

impl Serialize for Turns<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0)
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The Anthropic request body, members in key order.
#[derive(Serialize)]
pub(crate) struct Body<'x, 'r> {
    pub max_tokens: u32,
    #[serde(serialize_with = "turns")]
    pub messages: &'x [Turn<'r>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata<'x>>,
    pub model: &'x str,
    #[serde(skip_serializing_if = "OutputConfig::is_empty")]
    pub output_config: OutputConfig<'r>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(skip_serializing_if = "is_false")]
    pub stream: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty", serialize_with = "blocks")]
    pub system: &'x [Block<'r>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub tools: &'x [ToolDef<'r>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<Value>,
}

fn turns<S: Serializer>(t: &&[Turn<'_>], s: S) -> Result<S::Ok, S::Error> {
    Turns(t).serialize(s)
}

fn blocks<S: Serializer>(b: &&[Block<'_>], s: S) -> Result<S::Ok, S::Error> {
    Blocks(b).serialize(s)
}

impl Body<'_, '_> {
    /// Serialises the body. `size_hint` is the expected length (the request body's is a good guess).
    pub(crate) fn to_vec(&self, size_hint: usize) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(size_hint + 1024);
        serde_json::to_writer(&mut out, self)?;
        Ok(out)
    }
}
