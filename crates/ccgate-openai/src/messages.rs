//! OpenAI `messages` → Anthropic `system` + `messages`, in the order of docs/protocols.md §4.2.
//!
//! The result always satisfies the pairing and content rules of §2.9: it starts with a user
//! message, roles alternate, every `tool_use` is answered in the next user message (tool results
//! first) and no text block is blank. Whatever cannot be made valid is a 400 naming the message.

use crate::content::{self, text_block, PartPolicy};
use crate::error::TranslateError;
use crate::hashing::HashSet;
use crate::input::{Content, Got, List, Members, Message, Raw, Typed, J};
use crate::json::{field, opt_cache_control, wrong_type};
use crate::names::{IdMap, NameMap};
use crate::output::{Block, Input, ToolContent};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

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
pub(crate) struct Turn<'r> {
    pub role: Role,
    pub blocks: Vec<Block<'r>>,
}

impl Turn<'_> {
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
pub(crate) struct Conversation<'r> {
    /// Top-level `system` text blocks, all system/developer messages in order (§4.2 step 1).
    pub system: Vec<Block<'r>>,
    pub turns: Vec<Turn<'r>>,
    /// The last turn is an assistant prefill (§4.2 step 11).
    pub prefill: bool,
    /// Upstream names of tools used in history, in first-use order (for §4.2 step 12).
    pub history_tool_names: Vec<String>,
    /// Notes for the gateway's log (unparseable tool arguments, …).
    pub warnings: Vec<String>,
}

impl Conversation<'_> {
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
pub(crate) fn convert<'r>(
    messages: &'r List<Got<Message<'_>>>,
    ctx: Ctx<'_>,
) -> Result<Conversation<'r>, TranslateError> {
    let list = match messages {
        List::Ok(a) => a,
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
pub(crate) struct Converter<'n, 'r> {
    pub ctx: Ctx<'n>,
    pub conv: Conversation<'r>,
    pub ids: IdMap<'r>,
    /// (upstream tool_use id, client id), for readable pairing errors.
    pub client_ids: Vec<(Cow<'r, str>, &'r str)>,
    turns: Vec<Turn<'r>>,
    seen_names: HashSet<String>,
}

/// `messages[i]`, built when a message needs it (errors, nested parameters).
struct MessageParam(usize);

impl fmt::Display for MessageParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "messages[{}]", self.0)
    }
}

impl<'n, 'r> Converter<'n, 'r> {
    pub(crate) fn new(ctx: Ctx<'n>, messages: usize) -> Self {
        Self {
            ctx,
            conv: Conversation::default(),
            ids: IdMap::default(),
            client_ids: Vec::new(),
            turns: Vec::with_capacity(messages),
            seen_names: HashSet::default(),
        }
    }

    /// Blocks of a system or developer message.
    pub(crate) fn push_system(&mut self, blocks: impl IntoIterator<Item = Block<'r>>) {
        self.conv.system.extend(blocks);
    }

    /// A user message, or a tool message (one `tool_result` block).
    pub(crate) fn push_user(&mut self, blocks: Vec<Block<'r>>) {
        self.turns.push(Turn {
            role: Role::User,
            blocks,
        });
    }

    /// An assistant message; records the tools it uses (§4.2 step 12).
    pub(crate) fn push_assistant(&mut self, blocks: Vec<Block<'r>>) {
        for n in blocks.iter().filter_map(Block::tool_use_name) {
            if !self.seen_names.contains(n) {
                self.seen_names.insert(n.to_owned());
                self.conv.history_tool_names.push(n.to_owned());
            }
        }
        self.turns.push(Turn {
            role: Role::Assistant,
            blocks,
        });
    }

    /// Converts message `i` (§4.2 steps 1, 3–10).
    pub(crate) fn message(
        &mut self,
        i: usize,
        m: &'r Got<Message<'_>>,
    ) -> Result<(), TranslateError> {
        let max_image_bytes = self.ctx.max_image_bytes;
        let p = MessageParam(i);
        let Got::Ok(obj) = m else {
            return Err(wrong_type(&p.to_string(), "an object", m));
        };
        let role = match &obj.role {
            Some(J::Str(r)) => r.as_ref(),
            Some(other) => return Err(wrong_type(&format!("{p}.role"), "a string", other)),
            None => {
                return Err(TranslateError::invalid(
                    format!("{p}.role"),
                    format!("Missing required parameter: '{p}.role'"),
                ))
            }
        };
        let cache_control = match &obj.cache_control {
            None => None,
            cc => opt_cache_control(cc.as_ref(), &p.to_string())?,
        };
        match role {
            "system" | "developer" => {
                let c = required_content(obj, &p)?;
                let mut blocks = match c {
                    Content::Str(s) => text_block(*s, None).into_iter().collect(),
                    _ => content::convert(
                        c,
                        &format!("{p}.content"),
                        PartPolicy::System,
                        max_image_bytes,
                    )?,
                };
                apply_cache_control(&mut blocks, cache_control);
                self.push_system(blocks);
            }
            "user" => {
                let c = required_content(obj, &p)?;
                let mut blocks = match c {
                    Content::Str(s) => text_block(*s, None).into_iter().collect(),
                    _ => content::convert(
                        c,
                        &format!("{p}.content"),
                        PartPolicy::User,
                        max_image_bytes,
                    )?,
                };
                apply_cache_control(&mut blocks, cache_control);
                self.push_user(blocks);
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
                self.push_assistant(blocks);
            }
            "tool" => {
                let mut block = tool_result(obj, &p, &self.ctx, &self.ids)?;
                if let Some(cc) = cache_control {
                    block.set_cache_control(cc);
                }
                self.push_user(vec![block]);
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
    pub(crate) fn finish(self) -> Result<Conversation<'r>, TranslateError> {
        let Self {
            ctx,
            mut conv,
            client_ids,
            turns,
            ..
        } = self;
        // Step 11 needs to know whether the client itself ended with a non-empty assistant message.
        let client_ends_with_assistant = turns
            .last()
            .is_some_and(|t| t.role == Role::Assistant && !t.blocks.is_empty());
        let mut turns = turns;
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

fn placeholder_user() -> Turn<'static> {
    Turn {
        role: Role::User,
        blocks: vec![Block::text(PLACEHOLDER_USER_TEXT)],
    }
}

/// User, system and tool messages must have `content` (OpenAI: "Missing required parameter").
fn required_content<'x>(
    obj: &'x Message<'_>,
    p: &MessageParam,
) -> Result<&'x Content<'x>, TranslateError> {
    match &obj.content {
        Some(c) if !matches!(c, Content::Null) => Ok(c),
        _ => Err(TranslateError::invalid(
            format!("{p}.content"),
            format!("Missing required parameter: '{p}.content'"),
        )),
    }
}

/// Message-level `cache_control` (extension, §4.1) marks the end of that message: it goes on its
/// last block.
fn apply_cache_control<'r>(blocks: &mut [Block<'r>], cache_control: Option<Raw<'r>>) {
    if let (Some(cc), Some(last)) = (cache_control, blocks.last_mut()) {
        last.set_cache_control(cc);
    }
}

/// Assistant message → thinking blocks (tenant-supplied, first and unchanged, §4.2 step 13), text,
/// then `tool_use` blocks (§4.2 step 4). `reasoning_content` is dropped: it has no signature, and
/// Anthropic rejects unsigned thinking.
fn assistant_blocks<'r>(
    obj: &'r Message<'_>,
    p: &MessageParam,
    ctx: &mut Ctx<'_>,
    ids: &mut IdMap<'r>,
    client_ids: &mut Vec<(Cow<'r, str>, &'r str)>,
    conv: &mut Conversation<'r>,
) -> Result<Vec<Block<'r>>, TranslateError> {
    if field(obj.function_call.as_ref()).is_some() {
        return Err(TranslateError::invalid(
            format!("{p}.function_call"),
            "The deprecated 'function_call' is not supported; use 'tool_calls'",
        ));
    }
    let mut blocks = thinking_blocks(obj, p)?;
    match &obj.content {
        None | Some(Content::Null) => {}
        Some(Content::Str(s)) => blocks.extend(text_block(*s, None)),
        Some(c) => blocks.extend(content::convert(
            c,
            &format!("{p}.content"),
            PartPolicy::Assistant,
            ctx.max_image_bytes,
        )?),
    }
    let calls = match &obj.tool_calls {
        None | Some(List::Null) => return Ok(blocks),
        Some(List::Ok(a)) => a,
        Some(other) => return Err(wrong_type(&format!("{p}.tool_calls"), "an array", other)),
    };
    blocks.reserve(calls.len());
    let mut in_message: HashSet<&str> = HashSet::default();
    for (j, call) in calls.iter().enumerate() {
        let cp = ToolCallParam(p, j);
        let Got::Ok(c) = call else {
            return Err(wrong_type(&cp.to_string(), "an object", call));
        };
        match field(c.kind.as_ref()) {
            None => {}
            Some(J::Str(t)) if t == "function" => {}
            Some(J::Str(t)) => {
                return Err(TranslateError::invalid(
                    format!("{cp}.type"),
                    format!("Unsupported tool call type '{t}': only 'function' is supported"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{cp}.type"), "a string", other)),
        }
        let id = non_empty_str(c.id.as_ref(), || format!("{cp}.id"))?;
        if !in_message.insert(id) {
            return Err(TranslateError::invalid(
                format!("{cp}.id"),
                format!("Duplicate tool call id '{id}' in one assistant message"),
            ));
        }
        let func = match &c.function {
            Some(Got::Ok(f)) => f,
            None | Some(Got::Null) => {
                return Err(TranslateError::invalid(
                    format!("{cp}.function"),
                    format!("Missing required parameter: '{cp}.function'"),
                ))
            }
            Some(other) => return Err(wrong_type(&format!("{cp}.function"), "an object", other)),
        };
        let name = non_empty_str(func.name.as_ref(), || format!("{cp}.function.name"))?;
        let input = arguments(
            func.arguments.as_ref(),
            || format!("{cp}.function.arguments"),
            conv,
        )?;
        let upstream_id = ids.new_call(id);
        client_ids.push((upstream_id.clone(), id));
        blocks.push(Block::ToolUse {
            id: upstream_id,
            name: ctx.names.map(name),
            input,
            cache_control: None,
        });
    }
    Ok(blocks)
}

/// `messages[i].tool_calls[j]`.
struct ToolCallParam<'p>(&'p MessageParam, usize);

impl fmt::Display for ToolCallParam<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.tool_calls[{}]", self.0, self.1)
    }
}

fn non_empty_str<'x>(
    v: Option<&'x J<'_>>,
    param: impl FnOnce() -> String,
) -> Result<&'x str, TranslateError> {
    match field(v) {
        Some(J::Str(s)) if !s.is_empty() => Ok(s),
        Some(J::Str(_)) | None => {
            let param = param();
            Err(TranslateError::invalid(
                &param,
                format!("Missing required parameter: '{param}'"),
            ))
        }
        Some(other) => Err(wrong_type(&param(), "a string", other)),
    }
}

/// `thinking_blocks` extension (§3.1): Anthropic thinking blocks echoed by the client, passed on as
/// they came (any change breaks the signature, §2.3).
fn thinking_blocks<'r>(
    obj: &'r Message<'_>,
    p: &MessageParam,
) -> Result<Vec<Block<'r>>, TranslateError> {
    let list = match &obj.thinking_blocks {
        None | Some(List::Null) => return Ok(Vec::new()),
        Some(List::Ok(a)) => a,
        Some(other) => {
            return Err(wrong_type(
                &format!("{p}.thinking_blocks"),
                "an array",
                other,
            ))
        }
    };
    let is_string =
        |m: &Members<'_>, key: &str| m.get(key).is_some_and(|v| v.type_name() == "string");
    list.iter()
        .enumerate()
        .map(|(k, b)| {
            let block = match b {
                Got::Ok(m) => match m.get("type").and_then(|t| t.as_str()).as_deref() {
                    Some("thinking") if is_string(m, "thinking") && is_string(m, "signature") => {
                        Some(Block::Thinking {
                            redacted: false,
                            members: m,
                            cache_control: None,
                        })
                    }
                    Some("redacted_thinking") if is_string(m, "data") => Some(Block::Thinking {
                        redacted: true,
                        members: m,
                        cache_control: None,
                    }),
                    _ => None,
                },
                _ => None,
            };
            block.ok_or_else(|| {
                TranslateError::invalid(
                    format!("{p}.thinking_blocks[{k}]"),
                    "Each thinking block must be {\"type\":\"thinking\",\"thinking\",\"signature\"} or {\"type\":\"redacted_thinking\",\"data\"}",
                )
            })
        })
        .collect()
}

/// Tool-call `arguments` → `tool_use.input` (§4.2 step 4). Empty → `{}`. Arguments that are not a
/// JSON object (truncated by `max_tokens`, or garbage from another provider) are wrapped as
/// `{"_raw_arguments": "<original>"}`: the `tool_use` must never be dropped (its result would be
/// orphaned), and the wrapper keeps what the model produced visible to it instead of erasing it.
/// An object is passed on as the client wrote it.
fn arguments<'r>(
    value: Option<&Raw<'r>>,
    param: impl FnOnce() -> String,
    conv: &mut Conversation<'r>,
) -> Result<Input<'r>, TranslateError> {
    let Some(raw) = value.filter(|r| !r.is_null()) else {
        return Ok(Input::Empty);
    };
    if raw.is_object() {
        return Ok(Input::Raw(*raw));
    }
    let Some(s) = raw.as_str() else {
        return Err(wrong_type(&param(), "a string", raw));
    };
    if s.trim().is_empty() {
        return Ok(Input::Empty);
    }
    // Read once as raw JSON (nothing is built), checked as a `Value` parse checks.
    let why = match serde_json::from_str::<Box<RawValue>>(&s) {
        Ok(raw) => match crate::input::check_like_value(raw.get()) {
            Ok(()) if raw.get().starts_with('{') => return Ok(Input::Text(raw)),
            Ok(()) => format!("a JSON {}, not an object", Raw(&raw).type_name()),
            Err(e) => format!("invalid JSON ({e})"),
        },
        Err(e) => format!("invalid JSON ({e})"),
    };
    conv.warnings.push(format!(
        "{}: arguments are {why}; sent as {{\"_raw_arguments\": …}}",
        param()
    ));
    Ok(Input::Wrapped(s))
}

/// `tool` message → `tool_result` block (§4.2 step 3). `is_error` is never set: OpenAI has no such
/// flag. Empty content is omitted (it is optional upstream, and blank text is rejected).
fn tool_result<'r>(
    obj: &'r Message<'_>,
    p: &MessageParam,
    ctx: &Ctx<'_>,
    ids: &IdMap<'r>,
) -> Result<Block<'r>, TranslateError> {
    let id_param = || format!("{p}.tool_call_id");
    let id = non_empty_str(obj.tool_call_id.as_ref(), id_param)?;
    let Some(upstream_id) = ids.lookup(id) else {
        return Err(TranslateError::invalid(
            id_param(),
            format!(
                "Invalid '{p}': messages with role 'tool' must answer a preceding assistant message with 'tool_calls'; no earlier tool call has id '{id}'"
            ),
        ));
    };
    let content = match &obj.content {
        None | Some(Content::Null) => ToolContent::None,
        Some(Content::Str(s)) if !s.is_blank() => ToolContent::Text(*s),
        Some(Content::Str(_)) => ToolContent::None,
        Some(c) => {
            let blocks = content::convert(
                c,
                &format!("{p}.content"),
                PartPolicy::Tool,
                ctx.max_image_bytes,
            )?;
            if blocks.is_empty() {
                ToolContent::None
            } else {
                ToolContent::Blocks(blocks)
            }
        }
    };
    Ok(Block::ToolResult {
        tool_use_id: upstream_id.clone(),
        content,
        cache_control: None,
    })
}

/// Sort rank inside a merged message: user → tool results before anything else (§4.2 step 3);
/// assistant → thinking first (§2.3, §4.2 step 13), tool_use after text (§4.2 step 4).
fn rank(role: Role, b: &Block<'_>) -> u8 {
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
fn merge(turns: Vec<Turn<'_>>) -> Vec<Turn<'_>> {
    let mut out: Vec<Turn<'_>> = Vec::with_capacity(turns.len());
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
    turns: &[Turn<'_>],
    client_ids: &[(Cow<'_, str>, &str)],
) -> Result<(), TranslateError> {
    if pairing_is_clean(turns) {
        return Ok(());
    }
    let client = |id: &str| {
        client_ids
            .iter()
            .find(|(upstream, _)| upstream == id)
            .map_or_else(|| id.to_owned(), |(_, c)| (*c).to_owned())
    };
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
fn pairing_is_clean(turns: &[Turn<'_>]) -> bool {
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
fn strip_trailing_whitespace(turn: &mut Turn<'_>) {
    if let Some(last) = turn.blocks.last_mut() {
        last.trim_text_end();
    }
}
