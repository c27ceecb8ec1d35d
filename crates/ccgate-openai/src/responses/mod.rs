//! OpenAI Responses API (`POST /v1/responses`) ⇄ Anthropic Messages, for Codex and other Responses
//! clients (docs/responses.md).
//!
//! * Request: [`parse_responses_request`] reads the Responses body into a Chat Completions body
//!   ([`request`]), which the chat translator of this crate turns into the Anthropic request: the
//!   rules for images, files, tools, schemas, thinking, sampling and names are the same on both
//!   OpenAI endpoints. Chat field names in its errors are mapped back to Responses fields.
//! * Response: [`translate_responses_response`] (non-streamed `response` object) and
//!   [`ResponsesStream`] (the Responses SSE event sequence), both from the Anthropic answer.
//!
//! Stateless: `store` is accepted and stores nothing; `previous_response_id` is refused.

mod output;
mod request;
mod stream;

pub use output::{failed_code, translate_responses_response};
pub use stream::ResponsesStream;

use crate::error::TranslateError;
use crate::options::TranslateOptions;
use crate::response::ResponseContext;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};

/// Separator of a namespace and a tool name in the flattened name Claude sees (`multi_agent_v1__spawn_agent`):
/// Anthropic tool names allow no dots (docs/responses.md §2.2).
pub(crate) const NAMESPACE_SEPARATOR: &str = "__";
/// The one property of the object a `custom` tool takes on Claude.
pub(crate) const CUSTOM_INPUT_FIELD: &str = "input";
/// Marks an `encrypted_content` that carries a `redacted_thinking` block's data rather than a thinking
/// block's signature.
pub(crate) const REDACTED_PREFIX: &str = "ccgate-redacted:";

/// What the answer's translation needs from the request.
#[derive(Debug, Clone, Default)]
pub struct ResponsesContext {
    /// Echoed as `model`.
    pub client_model: String,
    /// The chat translator's context: renamed tools and the `json_schema` tool, if used.
    pub chat: ResponseContext,
    /// Claude-side names of `custom` tools (flattened): their `{"input": …}` is unwrapped into a
    /// `custom_tool_call`.
    pub custom_tools: BTreeSet<String>,
    /// Flattened name → (namespace, name), restored on the way back (Codex rejects flattened names).
    pub namespaced: BTreeMap<String, (String, String)>,
    /// Echoed in the response object as the client wrote them (raw JSON: nothing is parsed or rebuilt for it).
    pub tools: Option<Box<RawValue>>,
    pub tool_choice: Option<Box<RawValue>>,
    pub metadata: Option<Box<RawValue>>,
    pub instructions: Option<Box<RawValue>>,
    pub parallel_tool_calls: bool,
    pub stream: bool,
    /// The request carries Codex's `client_metadata`.
    pub from_codex: bool,
}

/// How a Claude `tool_use` appears to the Responses client.
pub(crate) enum ToolKind<'a> {
    Function {
        name: &'a str,
        namespace: Option<&'a str>,
    },
    Custom {
        name: &'a str,
        namespace: Option<&'a str>,
    },
    /// The forced `json_schema` tool: its input is the answer's text.
    JsonAnswer,
}

impl ResponsesContext {
    /// What the upstream tool `upstream_name` is for the client.
    pub(crate) fn tool_kind<'a>(&'a self, upstream_name: &'a str) -> ToolKind<'a> {
        if self.chat.is_json_tool(upstream_name) {
            return ToolKind::JsonAnswer;
        }
        let flat = self.chat.client_tool_name(upstream_name);
        let (name, namespace) = match self.namespaced.get(flat) {
            Some((ns, n)) => (n.as_str(), Some(ns.as_str())),
            None => (flat, None),
        };
        if self.custom_tools.contains(flat) {
            ToolKind::Custom { name, namespace }
        } else {
            ToolKind::Function { name, namespace }
        }
    }
}

/// A Responses body read once, waiting for the model's options.
pub struct ParsedResponses<'a> {
    parsed: request::Parsed<'a>,
}

/// Reads a Responses body. Refuses (400, Responses field names) what cannot be translated whatever the
/// model: bad JSON, `previous_response_id`, unsupported built-in tools or items, a missing `model`.
pub fn parse_responses_request(body: &[u8]) -> Result<ParsedResponses<'_>, TranslateError> {
    Ok(ParsedResponses {
        parsed: request::parse(body)?,
    })
}

/// A translated Responses request.
#[derive(Debug, Clone)]
pub struct TranslatedResponses {
    /// The Anthropic JSON body.
    pub body: Vec<u8>,
    pub stream: bool,
    /// `max_tokens` as sent upstream.
    pub max_tokens: u64,
    /// `metadata.user_id` as sent upstream (the hashed `user`/`safety_identifier`).
    pub user_id: Option<String>,
    /// `prompt_cache_key`, a session hint: Codex sets its session id, the same on every turn, so requests of one
    /// session can stay on one upstream (and its prompt cache).
    pub session: Option<String>,
    pub warnings: Vec<String>,
    pub ctx: ResponsesContext,
}

impl ParsedResponses<'_> {
    /// The `model` the client asked for.
    pub fn model(&self) -> &str {
        &self.parsed.model
    }

    /// Translates with `opts` (the resolved model's options).
    pub fn translate(
        self,
        opts: &TranslateOptions<'_>,
    ) -> Result<TranslatedResponses, TranslateError> {
        let t = self.parsed.translate(opts)?;
        let request::Parsed {
            mut ctx,
            session,
            mut warnings,
            ..
        } = self.parsed;
        ctx.client_model = opts.client_model.to_owned();
        ctx.chat = t.response_ctx;
        warnings.extend(t.warnings);
        Ok(TranslatedResponses {
            body: t.body,
            stream: t.stream,
            max_tokens: t.max_tokens,
            user_id: t.user_id,
            session,
            warnings,
            ctx,
        })
    }
}

/// Usage in the Responses shape (docs/responses.md §4): `input_tokens` includes cache reads and writes.
pub(crate) fn usage_json(u: &ccgate_meter::Usage) -> serde_json::Value {
    let input = u
        .input_tokens
        .saturating_add(u.cache_creation_input_tokens)
        .saturating_add(u.cache_read_input_tokens);
    serde_json::json!({
        "input_tokens": input,
        "input_tokens_details": {
            "cached_tokens": u.cache_read_input_tokens,
            "cache_write_tokens": u.cache_creation_input_tokens,
        },
        "output_tokens": u.output_tokens,
        "output_tokens_details": {"reasoning_tokens": u.thinking_tokens.unwrap_or(0)},
        "total_tokens": input.saturating_add(u.output_tokens),
    })
}
