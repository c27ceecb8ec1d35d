//! OpenAI `messages` → Anthropic `system` + `messages`, in the order of protocols.md §4.2.
//!
//! The result always satisfies the pairing and content rules of §2.9: it starts with a user
//! message, roles alternate, every `tool_use` is answered in the next user message (tool results
//! first) and no text block is blank. Whatever cannot be made valid is a 400 naming the message.

use crate::content::{self, text_block, PartPolicy};
use crate::error::TranslateError;
use crate::hashing::{HashMap, HashSet};
use crate::json::{field, opt_cache_control, type_name, wrong_type};
use crate::names::{IdMap, NameMap};
use crate::output::Block;
use serde_json::{json, Map, Value};

/// Text of the user turn inserted when a conversation does not start with a user message, or when
/// dropping blank user messages would leave an assistant message last although the client did not
/// end with one. OpenAI accepts conversations that open with an assistant greeting (or hold only
/// system messages, or end with an empty user message); Anthropic requires a leading user turn and
/// rejects blank text, so a minimal one is inserted instead of failing the request.
pub(crate) const PLACEHOLDER_USER_TEXT: &str = ".";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    User,
    Assistant,
}

/// One Anthropic message under construction.
#[derive(Debug, Clone)]
pub(crate) struct Turn {
    pub role: Role,
    pub blocks: Vec<Block>,
}

impl Turn {
    fn tool_use_ids(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().filter_map(Block::tool_use_id)
    }

    fn tool_result_ids(&self) -> impl Iterator<Item = &str> {
        self.blocks.iter().filter_map(Block::tool_result_id)
    }

    pub(crate) fn has_tool_use(&self) -> bool {
        self.tool_use_ids().next().is_some()
    }

    fn has_tool_result(&self) -> bool {
        self.tool_result_ids().next().is_some()
    }

    fn starts_with_thinking(&self) -> bool {
        self.blocks
            .first()
            .is_some_and(|b| matches!(b.kind(), "thinking" | "redacted_thinking"))
    }
}

/// Output of [`convert`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Conversation {
    /// Top-level `system` text blocks, all system/developer messages in order (§4.2 step 1).
    pub system: Vec<Block>,
    pub turns: Vec<Turn>,
    /// The last turn is an assistant prefill (§4.2 step 11).
    pub prefill: bool,
    /// Upstream names of tools used in history, in first-use order (for §4.2 step 12).
    pub history_tool_names: Vec<String>,
    /// Notes for the gateway's log (unparseable tool arguments, …).
    pub warnings: Vec<String>,
}

impl Conversation {
    /// Whether any message carries `tool_use`/`tool_result` blocks.
    pub(crate) fn has_tool_blocks(&self) -> bool {
        self.turns
            .iter()
            .any(|t| t.has_tool_use() || t.has_tool_result())
    }

    /// §4.2 step 13: when the current turn (everything after the last genuine user message, i.e.
    /// one without tool results) is a tool loop, Anthropic requires its first assistant message to
    /// start with a thinking block once thinking is on ("Expected `thinking`…", §2.9). Returns
    /// true when that block is missing, so thinking must stay off. Earlier turns may omit
    /// thinking: Anthropic drops prior turns' thinking anyway.
    pub(crate) fn tool_loop_lacks_thinking(&self) -> bool {
        let start = self
            .turns
            .iter()
            .rposition(|t| t.role == Role::User && !t.has_tool_result())
            .map_or(0, |i| i + 1);
        let current = &self.turns[start.min(self.turns.len())..];
        let in_tool_loop = current
            .iter()
            .any(|t| t.role == Role::Assistant && t.has_tool_use());
        let first_assistant = current.iter().find(|t| t.role == Role::Assistant);
        in_tool_loop && !first_assistant.is_some_and(Turn::starts_with_thinking)
    }
}

/// Per-request state shared by the message converters.
pub(crate) struct Ctx<'n> {
    pub names: &'n mut NameMap,
    pub max_image_bytes: usize,
    pub allow_prefill: bool,
}

/// Converts the `messages` array (§4.2 steps 1–11).
pub(crate) fn convert(messages: &Value, ctx: Ctx<'_>) -> Result<Conversation, TranslateError> {
    let list = match messages {
        Value::Array(a) => a,
        other => return Err(wrong_type("messages", "an array", other)),
    };
    if list.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "Invalid 'messages': empty array. Expected an array with at least one message",
        ));
    }
    let mut c = Converter::new(ctx, list.len());
    for (i, m) in list.iter().enumerate() {
        c.message(i, m)?;
    }
    c.finish()
}

/// The state of one `messages` conversion: messages are fed in order to [`Converter::message`];
/// [`Converter::finish`] then applies the rules that concern the whole conversation.
pub(crate) struct Converter<'n> {
    pub ctx: Ctx<'n>,
    pub conv: Conversation,
    pub ids: IdMap,
    /// upstream tool_use id → client id, for readable pairing errors.
    pub client_ids: HashMap<String, String>,
    turns: Vec<Turn>,
    seen_names: HashSet<String>,
}

impl<'n> Converter<'n> {
    pub(crate) fn new(ctx: Ctx<'n>, messages: usize) -> Self {
        Self {
            ctx,
            conv: Conversation::default(),
            ids: IdMap::default(),
            client_ids: HashMap::default(),
            turns: Vec::with_capacity(messages),
            seen_names: HashSet::default(),
        }
    }

    /// Blocks of a system or developer message.
    pub(crate) fn push_system(&mut self, blocks: impl IntoIterator<Item = Block>) {
        self.conv.system.extend(blocks);
    }

    /// A user message, or a tool message (one `tool_result` block).
    pub(crate) fn push_user(&mut self, blocks: Vec<Block>) {
        self.turns.push(Turn {
            role: Role::User,
            blocks,
        });
    }

    /// An assistant message; records the tools it uses (§4.2 step 12).
    pub(crate) fn push_assistant(&mut self, blocks: Vec<Block>) {
        for n in blocks.iter().filter_map(Block::tool_use_name) {
            if self.seen_names.insert(n.to_owned()) {
                self.conv.history_tool_names.push(n.to_owned());
            }
        }
        self.turns.push(Turn {
            role: Role::Assistant,
            blocks,
        });
    }

    /// Converts message `i` (§4.2 steps 1, 3–10).
    pub(crate) fn message(&mut self, i: usize, m: &Value) -> Result<(), TranslateError> {
        let max_image_bytes = self.ctx.max_image_bytes;
        let p = format!("messages[{i}]");
        let Some(obj) = m.as_object() else {
            return Err(wrong_type(&p, "an object", m));
        };
        let role = match obj.get("role") {
            Some(Value::String(r)) => r.as_str(),
            Some(other) => return Err(wrong_type(&format!("{p}.role"), "a string", other)),
            None => {
                return Err(TranslateError::invalid(
                    format!("{p}.role"),
                    format!("Missing required parameter: '{p}.role'"),
                ))
            }
        };
        let cache_control = opt_cache_control(obj, &p)?;
        match role {
            "system" | "developer" => {
                let c = required_content(obj, &p)?;
                let mut blocks =
                    content::convert(c, &format!("{p}.content"), PartPolicy::System, max_image_bytes)?;
                apply_cache_control(&mut blocks, cache_control);
                self.push_system(blocks.into_iter().map(Block));
            }
            "user" => {
                let c = required_content(obj, &p)?;
                let mut blocks =
                    content::convert(c, &format!("{p}.content"), PartPolicy::User, max_image_bytes)?;
                apply_cache_control(&mut blocks, cache_control);
                self.push_user(blocks.into_iter().map(Block).collect());
            }
            "assistant" => {
                let mut blocks = assistant_blocks(
                    obj,
                    &p,
                    &mut self.ctx,
                    &mut self.ids,
                    &mut self.client_ids,
                    &mut self.conv,
                )?;
                apply_cache_control(&mut blocks, cache_control);
                self.push_assistant(blocks.into_iter().map(Block).collect());
            }
            "tool" => {
                let mut block = tool_result(obj, &p, &self.ctx, &self.ids)?;
                if let (Some(cc), Some(o)) = (cache_control, block.as_object_mut()) {
                    o.insert("cache_control".into(), cc);
                }
                self.push_user(vec![Block(block)]);
            }
            "function" => {
                return Err(TranslateError::invalid(
                    format!("{p}.role"),
                    "The deprecated 'function' role is not supported; use 'tool' messages answering 'tool_calls'",
                ))
            }
            other => {
                return Err(TranslateError::invalid(
                    format!("{p}.role"),
                    format!(
                        "Invalid value for '{p}.role': '{other}'. Supported values are 'system', 'developer', 'user', 'assistant' and 'tool'"
                    ),
                ))
            }
        }
        Ok(())
    }

    /// The rules on the whole conversation (§4.2 steps 2, 3, 9, 11) and the pairing check (§2.9).
    pub(crate) fn finish(self) -> Result<Conversation, TranslateError> {
        let Self {
            ctx,
            mut conv,
            client_ids,
            mut turns,
            ..
        } = self;
        let turns_before_drop: Vec<(Role, bool)> = turns
            .iter()
            .map(|t| (t.role, !t.blocks.is_empty()))
            .collect();
        // Step 9: drop messages left without content; a message with tool blocks is never empty.
        turns.retain(|t| !t.blocks.is_empty());
        // Steps 2–3: merge runs of the same role; tool results first in user messages.
        let mut turns = merge(turns);
        check_pairing(&turns, &client_ids)?;

        // Step 11: a trailing assistant message is a prefill, but only if the client ended with
        // one. When blank user messages were dropped after an assistant message, the client still
        // meant "answer now", so a placeholder user turn keeps that meaning instead of inventing a
        // prefill. A blank trailing assistant message is no prefill either: it is dropped like any
        // blank one.
        let client_ends_with_assistant = turns_before_drop
            .last()
            .is_some_and(|(role, non_empty)| *role == Role::Assistant && *non_empty);
        if !client_ends_with_assistant && turns.last().is_some_and(|t| t.role == Role::Assistant) {
            turns.push(placeholder_user());
        }
        if let Some(last) = turns.last_mut().filter(|t| t.role == Role::Assistant) {
            strip_trailing_whitespace(last);
            if !ctx.allow_prefill {
                return Err(TranslateError::invalid(
                    "messages",
                    "This model does not support a trailing assistant message (prefill); end the conversation with a user or tool message",
                ));
            }
            conv.prefill = true;
        }
        if turns.first().is_none_or(|t| t.role != Role::User) {
            turns.insert(0, placeholder_user());
        }
        conv.turns = turns;
        Ok(conv)
    }
}

fn placeholder_user() -> Turn {
    Turn {
        role: Role::User,
        blocks: vec![Block(
            json!({"type": "text", "text": PLACEHOLDER_USER_TEXT}),
        )],
    }
}

/// User, system and tool messages must have `content` (OpenAI: "Missing required parameter").
fn required_content<'a>(obj: &'a Map<String, Value>, p: &str) -> Result<&'a Value, TranslateError> {
    field(obj, "content").ok_or_else(|| {
        TranslateError::invalid(
            format!("{p}.content"),
            format!("Missing required parameter: '{p}.content'"),
        )
    })
}

/// Message-level `cache_control` (extension, §4.1) marks the end of that message: it goes on its
/// last block.
fn apply_cache_control(blocks: &mut [Value], cache_control: Option<Value>) {
    if let (Some(cc), Some(last)) = (
        cache_control,
        blocks.last_mut().and_then(Value::as_object_mut),
    ) {
        last.insert("cache_control".into(), cc);
    }
}

/// Assistant message → thinking blocks (tenant-supplied, first and unchanged, §4.2 step 13), text,
/// then `tool_use` blocks (§4.2 step 4). `reasoning_content` is dropped: it has no signature, and
/// Anthropic rejects unsigned thinking.
fn assistant_blocks(
    obj: &Map<String, Value>,
    p: &str,
    ctx: &mut Ctx<'_>,
    ids: &mut IdMap,
    client_ids: &mut HashMap<String, String>,
    conv: &mut Conversation,
) -> Result<Vec<Value>, TranslateError> {
    if field(obj, "function_call").is_some() {
        return Err(TranslateError::invalid(
            format!("{p}.function_call"),
            "The deprecated 'function_call' is not supported; use 'tool_calls'",
        ));
    }
    let mut blocks = thinking_blocks(obj, p)?;
    if let Some(c) = field(obj, "content") {
        blocks.extend(content::convert(
            c,
            &format!("{p}.content"),
            PartPolicy::Assistant,
            ctx.max_image_bytes,
        )?);
    }
    let calls = match field(obj, "tool_calls") {
        None => return Ok(blocks),
        Some(Value::Array(a)) => a,
        Some(other) => return Err(wrong_type(&format!("{p}.tool_calls"), "an array", other)),
    };
    let mut in_message: HashSet<&str> = HashSet::default();
    for (j, call) in calls.iter().enumerate() {
        let cp = format!("{p}.tool_calls[{j}]");
        let Some(c) = call.as_object() else {
            return Err(wrong_type(&cp, "an object", call));
        };
        match field(c, "type") {
            None => {}
            Some(Value::String(t)) if t == "function" => {}
            Some(Value::String(t)) => {
                return Err(TranslateError::invalid(
                    format!("{cp}.type"),
                    format!("Unsupported tool call type '{t}': only 'function' is supported"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{cp}.type"), "a string", other)),
        }
        let id = non_empty_str(c, "id", &format!("{cp}.id"))?;
        if !in_message.insert(id) {
            return Err(TranslateError::invalid(
                format!("{cp}.id"),
                format!("Duplicate tool call id '{id}' in one assistant message"),
            ));
        }
        let func = match field(c, "function") {
            Some(Value::Object(f)) => f,
            Some(other) => return Err(wrong_type(&format!("{cp}.function"), "an object", other)),
            None => {
                return Err(TranslateError::invalid(
                    format!("{cp}.function"),
                    format!("Missing required parameter: '{cp}.function'"),
                ))
            }
        };
        let name = non_empty_str(func, "name", &format!("{cp}.function.name"))?;
        let input = arguments(
            field(func, "arguments"),
            &format!("{cp}.function.arguments"),
            conv,
        )?;
        let upstream_id = ids.new_call(id);
        client_ids.insert(upstream_id.clone(), id.to_owned());
        blocks.push(json!({
            "type": "tool_use",
            "id": upstream_id,
            "name": ctx.names.map(name),
            "input": input,
        }));
    }
    Ok(blocks)
}

fn non_empty_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    param: &str,
) -> Result<&'a str, TranslateError> {
    match field(obj, key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None => Err(TranslateError::invalid(
            param,
            format!("Missing required parameter: '{param}'"),
        )),
        Some(other) => Err(wrong_type(param, "a string", other)),
    }
}

/// `thinking_blocks` extension (§3.1): Anthropic thinking blocks echoed by the client, copied
/// byte-for-byte in meaning (any change breaks the signature, §2.3).
fn thinking_blocks(obj: &Map<String, Value>, p: &str) -> Result<Vec<Value>, TranslateError> {
    let list = match field(obj, "thinking_blocks") {
        None => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.thinking_blocks"),
                "an array",
                other,
            ))
        }
    };
    list.iter()
        .enumerate()
        .map(|(k, b)| {
            let bp = format!("{p}.thinking_blocks[{k}]");
            let ok = match b.get("type").and_then(Value::as_str) {
                Some("thinking") => {
                    b.get("thinking").is_some_and(Value::is_string)
                        && b.get("signature").is_some_and(Value::is_string)
                }
                Some("redacted_thinking") => b.get("data").is_some_and(Value::is_string),
                _ => false,
            };
            if ok {
                Ok(b.clone())
            } else {
                Err(TranslateError::invalid(
                    bp,
                    "Each thinking block must be {\"type\":\"thinking\",\"thinking\",\"signature\"} or {\"type\":\"redacted_thinking\",\"data\"}",
                ))
            }
        })
        .collect()
}

/// Tool-call `arguments` → `tool_use.input` (§4.2 step 4). Empty → `{}`. Arguments that are not a
/// JSON object (truncated by `max_tokens`, or garbage from another provider) are wrapped as
/// `{"_raw_arguments": "<original>"}`: the `tool_use` must never be dropped (its result would be
/// orphaned), and the wrapper keeps what the model produced visible to it instead of erasing it.
fn arguments(
    value: Option<&Value>,
    param: &str,
    conv: &mut Conversation,
) -> Result<Value, TranslateError> {
    match value {
        None => Ok(json!({})),
        Some(Value::Object(o)) => Ok(Value::Object(o.clone())),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(json!({})),
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            parsed => {
                let why = match parsed {
                    Ok(v) => format!("a JSON {}, not an object", type_name(&v)),
                    Err(e) => format!("invalid JSON ({e})"),
                };
                conv.warnings.push(format!(
                    "{param}: arguments are {why}; sent as {{\"_raw_arguments\": …}}"
                ));
                Ok(json!({ "_raw_arguments": s }))
            }
        },
        Some(other) => Err(wrong_type(param, "a string", other)),
    }
}

/// `tool` message → `tool_result` block (§4.2 step 3). `is_error` is never set: OpenAI has no such
/// flag. Empty content is omitted (it is optional upstream, and blank text is rejected).
fn tool_result(
    obj: &Map<String, Value>,
    p: &str,
    ctx: &Ctx<'_>,
    ids: &IdMap,
) -> Result<Value, TranslateError> {
    let id_param = format!("{p}.tool_call_id");
    let id = non_empty_str(obj, "tool_call_id", &id_param)?;
    let Some(upstream_id) = ids.lookup(id) else {
        return Err(TranslateError::invalid(
            id_param,
            format!(
                "Invalid '{p}': messages with role 'tool' must answer a preceding assistant message with 'tool_calls'; no earlier tool call has id '{id}'"
            ),
        ));
    };
    let mut block = Map::new();
    block.insert("type".into(), Value::String("tool_result".into()));
    block.insert("tool_use_id".into(), Value::String(upstream_id.to_owned()));
    match field(obj, "content") {
        None => {}
        Some(Value::String(s)) if text_block(s, None).is_some() => {
            block.insert("content".into(), Value::String(s.clone()));
        }
        Some(Value::String(_)) => {}
        Some(c) => {
            let blocks = content::convert(
                c,
                &format!("{p}.content"),
                PartPolicy::Tool,
                ctx.max_image_bytes,
            )?;
            if !blocks.is_empty() {
                block.insert("content".into(), Value::Array(blocks));
            }
        }
    }
    Ok(Value::Object(block))
}

/// Sort rank inside a merged message: user → tool results before anything else (§4.2 step 3);
/// assistant → thinking first (§2.3, §4.2 step 13), tool_use after text (§4.2 step 4).
fn rank(role: Role, b: &Block) -> u8 {
    match (role, b.kind()) {
        (Role::User, "tool_result") => 0,
        (Role::User, _) => 1,
        (Role::Assistant, "thinking" | "redacted_thinking") => 0,
        (Role::Assistant, "tool_use") => 2,
        (Role::Assistant, _) => 1,
    }
}

/// Merges runs of the same role into one message (§4.2 step 2) and orders blocks by [`rank`]
/// (stable, so relative order within a rank is kept).
fn merge(turns: Vec<Turn>) -> Vec<Turn> {
    let mut out: Vec<Turn> = Vec::with_capacity(turns.len());
    for t in turns {
        match out.last_mut() {
            Some(prev) if prev.role == t.role => prev.blocks.extend(t.blocks),
            _ => out.push(t),
        }
    }
    for t in &mut out {
        let role = t.role;
        t.blocks.sort_by_key(|b| rank(role, b));
    }
    out
}

/// Enforces §2.9 tool pairing on the merged conversation: each `tool_use` is answered in the very
/// next (user) message, and each `tool_result` answers a call of the message just before it. OpenAI
/// itself rejects transcripts breaking this, so a 400 is faithful.
fn check_pairing(
    turns: &[Turn],
    client_ids: &HashMap<String, String>,
) -> Result<(), TranslateError> {
    if pairing_is_clean(turns) {
        return Ok(());
    }
    let client = |id: &str| client_ids.get(id).cloned().unwrap_or_else(|| id.to_owned());
    for (k, t) in turns.iter().enumerate() {
        match t.role {
            Role::Assistant => {
                let answered: HashSet<&str> = turns
                    .get(k + 1)
                    .map(|n| n.tool_result_ids().collect())
                    .unwrap_or_default();
                if let Some(missing) = t.tool_use_ids().find(|id| !answered.contains(id)) {
                    return Err(TranslateError::invalid(
                        "messages",
                        format!(
                            "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. No response for tool_call_id '{}'",
                            client(missing)
                        ),
                    ));
                }
            }
            Role::User => {
                let calls: HashSet<&str> = k
                    .checked_sub(1)
                    .and_then(|j| turns.get(j))
                    .map(|prev| prev.tool_use_ids().collect())
                    .unwrap_or_default();
                let mut seen = HashSet::default();
                for id in t.tool_result_ids() {
                    if !calls.contains(id) {
                        return Err(TranslateError::invalid(
                            "messages",
                            format!(
                                "The tool message for tool_call_id '{}' must directly follow the assistant message that made that call",
                                client(id)
                            ),
                        ));
                    }
                    if !seen.insert(id) {
                        return Err(TranslateError::invalid(
                            "messages",
                            format!(
                                "More than one tool message answers tool_call_id '{}'",
                                client(id)
                            ),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

/// What [`check_pairing`] checks, for the common case where it passes, without hash sets: every call is answered
/// by the next turn, every result answers a call of the turn before, and none twice. A request is translated on
/// every turn of a conversation, with a few ids per turn, so sorted lists beat building sets. When this says no,
/// [`check_pairing`] finds which rule broke first, for its message.
fn pairing_is_clean(turns: &[Turn]) -> bool {
    for (k, t) in turns.iter().enumerate() {
        match t.role {
            Role::Assistant => {
                let calls: Vec<&str> = t.tool_use_ids().collect();
                if calls.is_empty() {
                    continue;
                }
                let mut answered: Vec<&str> = turns
                    .get(k + 1)
                    .map(|n| n.tool_result_ids().collect())
                    .unwrap_or_default();
                answered.sort_unstable();
                if calls.iter().any(|id| answered.binary_search(id).is_err()) {
                    return false;
                }
            }
            Role::User => {
                let mut results: Vec<&str> = t.tool_result_ids().collect();
                if results.is_empty() {
                    continue;
                }
                let mut calls: Vec<&str> = k
                    .checked_sub(1)
                    .and_then(|j| turns.get(j))
                    .map(|prev| prev.tool_use_ids().collect())
                    .unwrap_or_default();
                calls.sort_unstable();
                if results.iter().any(|id| calls.binary_search(id).is_err()) {
                    return false;
                }
                results.sort_unstable();
                if results.windows(2).any(|w| w[0] == w[1]) {
                    return false;
                }
            }
        }
    }
    true
}

/// Prefill: Anthropic rejects trailing whitespace in the final assistant content (§4.2 step 11).
/// Blank blocks were dropped already, so trimming never empties a block.
fn strip_trailing_whitespace(turn: &mut Turn) {
    if let Some(last) = turn.blocks.last_mut() {
        last.trim_text_end();
    }
}
