//! The translated Anthropic body as it is assembled and written: small members and content blocks are
//! `serde_json::Value`s, written in one buffer sized from the request.

use crate::messages::{Role, Turn};
use serde_json::{Map, Value};

/// An Anthropic content block.
#[derive(Debug, Clone)]
pub(crate) struct Block(pub Value);

impl Block {
    /// The block's `type`.
    pub(crate) fn kind(&self) -> &str {
        self.0.get("type").and_then(Value::as_str).unwrap_or("")
    }

    fn field(&self, kind: &str, key: &str) -> Option<&str> {
        if self.kind() != kind {
            return None;
        }
        self.0.get(key).and_then(Value::as_str)
    }

    /// `id` of a `tool_use` block.
    pub(crate) fn tool_use_id(&self) -> Option<&str> {
        self.field("tool_use", "id")
    }

    /// `name` of a `tool_use` block.
    pub(crate) fn tool_use_name(&self) -> Option<&str> {
        self.field("tool_use", "name")
    }

    /// `tool_use_id` of a `tool_result` block.
    pub(crate) fn tool_result_id(&self) -> Option<&str> {
        self.field("tool_result", "tool_use_id")
    }

    /// Writes the text of a block that is exactly `{"type":"text","text":"…"}` and returns true;
    /// returns false for any other block. A message holding only such a block is sent in the
    /// compact string form.
    fn write_plain_text(&self, out: &mut Vec<u8>) -> serde_json::Result<bool> {
        match &self.0 {
            Value::Object(o) if o.len() == 2 && self.kind() == "text" => match o.get("text") {
                Some(t @ Value::String(_)) => serde_json::to_writer(out, t).map(|()| true),
                _ => Ok(false),
            },
            _ => Ok(false),
        }
    }

    /// Prefill: removes trailing whitespace from a text block (§4.2 step 11).
    pub(crate) fn trim_text_end(&mut self) {
        if self.kind() != "text" {
            return;
        }
        if let Some(Value::String(s)) = self.0.get_mut("text") {
            let trimmed = s.trim_end().len();
            s.truncate(trimmed);
        }
    }

    fn write(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, &self.0)
    }
}

fn write_blocks(blocks: &[Block], out: &mut Vec<u8>) -> serde_json::Result<()> {
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
fn write_turn(turn: &Turn, out: &mut Vec<u8>) -> serde_json::Result<()> {
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

/// The parts of the body: small members as `Value`s, the large ones as blocks and definitions.
pub(crate) struct Body<'b> {
    pub small: &'b Map<String, Value>,
    /// Written only when non-empty.
    pub system: &'b [Block],
    pub messages: &'b [Turn],
    /// Written only when non-empty.
    pub tools: &'b [Value],
}

enum Member<'b> {
    Small(&'b Value),
    System,
    Messages,
    Tools,
}

impl Body<'_> {
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
                        serde_json::to_writer(&mut out, t)?;
                    }
                    out.push(b']');
                }
            }
        }
        out.push(b'}');
        Ok(out)
    }
}
