//! OpenAI Chat Completions request → Anthropic Messages request (docs/protocols.md §4).
//!
//! This module orchestrates; each rule lives in its own module ([`crate::messages`],
//! [`crate::tools`], [`crate::params`], [`crate::reasoning`], [`crate::format`]).

use crate::error::TranslateError;
use crate::format::{self, ResponseFormat};
use crate::input::{Got, List, Request, J};
use crate::json::{field, opt_bool, wrong_type};
use crate::messages::{self, Conversation};
use crate::models::model_field;
use crate::names::NameMap;
use crate::options::TranslateOptions;
use crate::output::{Block, Body, Metadata, OutputConfig, OutputFormat, Schema, Text, ToolDef};
use crate::params;
use crate::reasoning::{self, Thinking};
use crate::response::ResponseContext;
use crate::tools::{self, Choice};
use serde_json::{json, Value};
use std::borrow::Cow;

/// A translated request, ready to send upstream.
#[derive(Debug, Clone)]
pub struct TranslatedRequest {
    /// The Anthropic JSON body, serialised once.
    pub body: Vec<u8>,
    /// The client asked for SSE.
    pub stream: bool,
    /// `stream_options.include_usage` (only meaningful when streaming): emit the usage chunk.
    pub include_usage: bool,
    /// What the response side needs.
    pub response_ctx: ResponseContext,
    /// `max_tokens` as sent upstream (the gateway's budget reservation reads it; no need to scan `body` again).
    pub max_tokens: u64,
    /// `metadata.user_id` as sent upstream: the hashed OpenAI `user` (a session key for affinity).
    pub user_id: Option<String>,
    /// Lossy decisions worth a log line (wrapped tool arguments, thinking turned off, …).
    pub warnings: Vec<String>,
}

/// Translates an OpenAI Chat Completions body (§4). Every refusal is a 400
/// `invalid_request_error` naming the field ([`TranslateError`]). OpenAI fields without an
/// Anthropic meaning (`seed`, `logprobs`, penalties, `store`, `service_tier`, `metadata`, …) are
/// dropped silently (§4.1).
pub fn translate_request(
    body: &[u8],
    opts: &TranslateOptions<'_>,
) -> Result<TranslatedRequest, TranslateError> {
    parse_request(body)?.translate(opts)
}

/// A request body read once into typed views borrowed from it ([`crate::input`]): the model it asks
/// for, then its translation once the caller has resolved that model into [`TranslateOptions`]. Same
/// answers as [`requested_model`](crate::requested_model) followed by [`translate_request`], with one
/// read of the body instead of two.
pub struct ParsedRequest<'a> {
    body_len: usize,
    req: Request<'a>,
}

/// Reads `body` as a JSON object and finds its `model`. Refuses (400) what is not one JSON object,
/// a repeated top-level key, and a missing or empty `model`.
pub fn parse_request(body: &[u8]) -> Result<ParsedRequest<'_>, TranslateError> {
    let req = read_request(body)?;
    model_field(req.model.as_ref())?;
    Ok(ParsedRequest {
        body_len: body.len(),
        req,
    })
}

impl ParsedRequest<'_> {
    /// The `model` the client asked for.
    pub fn model(&self) -> &str {
        model_field(self.req.model.as_ref()).unwrap_or_default()
    }

    /// Translates with `opts` (see [`translate_request`]).
    pub fn translate(
        &self,
        opts: &TranslateOptions<'_>,
    ) -> Result<TranslatedRequest, TranslateError> {
        Translation::new(&self.req, opts, self.body_len).run()
    }
}

/// Translates a request view built by another reader (the Responses API, `crate::responses`); `body_len` sizes
/// the output buffer.
pub(crate) fn translate_view(
    req: &Request<'_>,
    body_len: usize,
    opts: &TranslateOptions<'_>,
) -> Result<TranslatedRequest, TranslateError> {
    Translation::new(req, opts, body_len).run()
}

/// The top-level object of `body`, read into its view. A repeated key is refused rather than
/// resolved: which copy wins differs between parsers (`serde_json::Value` keeps the last), and the
/// gateway must act on the same `model` the client meant. Keys are compared unescaped, so
/// `"\u006dodel"` is `model`. The whole body is read first: a body that is not JSON is refused as
/// such even when it repeats a key.
pub(crate) fn read_request(body: &[u8]) -> Result<Request<'_>, TranslateError> {
    // UTF-8 checked once for the whole body, not string by string; a body that is not UTF-8 is read from
    // bytes, for serde_json's error naming the place.
    let read = match std::str::from_utf8(body) {
        Ok(text) => serde_json::from_str::<Request<'_>>(text),
        Err(_) => serde_json::from_slice::<Request<'_>>(body),
    };
    let req = match read {
        Ok(r) => r,
        // A data error at the top is the visitor refusing a non-object; inside an object it is a
        // raw part that a `Value` parse would have refused (see `input::Raw`): bad JSON.
        Err(e) if e.is_data() && !starts_with_object(body) => {
            return Err(TranslateError::general(
                "Request body must be a JSON object",
            ))
        }
        Err(e) => {
            return Err(TranslateError::general(format!(
                "We could not parse the JSON body of your request: {e}"
            )))
        }
    };
    if let Some(key) = &req.duplicate {
        return Err(TranslateError::invalid(
            key.clone(),
            format!("Invalid request body: duplicate key `{key}`"),
        ));
    }
    Ok(req)
}

/// Whether the first JSON token of `body` opens an object.
fn starts_with_object(body: &[u8]) -> bool {
    body.iter()
        .find(|b| !matches!(b, b' ' | b'\n' | b'\r' | b'\t'))
        == Some(&b'{')
}

/// State of one translation.
struct Translation<'r, 'o> {
    obj: &'r Request<'r>,
    opts: &'r TranslateOptions<'o>,
    names: NameMap,
    warnings: Vec<String>,
    /// Length of the request body, to size the output buffer.
    body_len: usize,
}

impl<'r, 'o> Translation<'r, 'o> {
    fn new(obj: &'r Request<'r>, opts: &'r TranslateOptions<'o>, body_len: usize) -> Self {
        Self {
            obj,
            opts,
            names: NameMap::default(),
            warnings: Vec::new(),
            body_len,
        }
    }

    fn run(mut self) -> Result<TranslatedRequest, TranslateError> {
        let obj = self.obj;
        let caps = self.opts.caps;
        reject_legacy_functions(obj)?;
        params::check_n(obj)?;
        let stream = opt_bool(obj.stream.as_ref(), "stream")?.unwrap_or(false);
        let include_usage = stream && include_usage(obj)?;

        let client_tools = tools::parse_tools(obj.tools.as_ref())?;
        let tool_names: Vec<&str> = client_tools.iter().map(|t| t.name).collect();
        let has_client_tools = !tool_names.is_empty();
        self.reserve_names(&tool_names)?;
        let choice = tools::parse_tool_choice_for(field(obj.tool_choice.as_ref()), &tool_names)?;
        let parallel = opt_bool(obj.parallel_tool_calls.as_ref(), "parallel_tool_calls")?;
        let response_format = format::parse(obj.response_format.as_ref())?;
        let effort = reasoning::parse_effort(field(obj.reasoning_effort.as_ref()))?;

        let ctx = messages::Ctx {
            names: &mut self.names,
            max_image_bytes: self.opts.max_image_bytes,
            allow_prefill: caps.prefill,
        };
        let Some(messages) = &obj.messages else {
            return Err(missing_messages());
        };
        let mut conv: Conversation<'r> = messages::convert(messages, ctx)?;
        self.warnings.append(&mut conv.warnings);

        // Anthropic definitions, names mapped in declaration order.
        let mut tool_defs: Vec<ToolDef<'r>> = client_tools
            .iter()
            .map(|t| tools::anthropic_tool(t, self.names.map(t.name), caps.structured_outputs))
            .collect();

        // response_format (§4.1).
        let mut output_format = None;
        let mut json_tool = None;
        match response_format {
            None | Some(ResponseFormat::Text) => {}
            Some(ResponseFormat::JsonObject) => conv
                .system
                .push(Block::text(format::JSON_OBJECT_INSTRUCTION)),
            Some(ResponseFormat::JsonSchema { schema, .. }) if caps.structured_outputs => {
                if let Got::Ok(members) = schema {
                    output_format = Some(OutputFormat {
                        schema: Schema::Client {
                            members,
                            force_object: false,
                        },
                        kind: "json_schema",
                    });
                }
            }
            Some(ResponseFormat::JsonSchema {
                schema,
                description,
            }) => {
                let name = self.names.allocate_internal(format::JSON_TOOL_NAME);
                tool_defs.push(ToolDef {
                    cache_control: None,
                    description: Some(Text::Str(Cow::Owned(format::json_tool_description(
                        description,
                    )))),
                    input_schema: tools::object_schema(Some(schema), || {
                        "response_format.json_schema.schema".to_owned()
                    })?,
                    name: name.clone(),
                    strict: None,
                });
                json_tool = Some(name);
            }
        }

        let mut tool_choice = match &json_tool {
            Some(jt) => {
                Some(self.json_tool_choice(choice.as_ref(), has_client_tools, jt, parallel))
            }
            None if !has_client_tools => None,
            None => tools::anthropic_tool_choice(choice.as_ref(), parallel, &mut self.names),
        };

        // §4.2 step 12: tool blocks in history but no tools. Anthropic rejects the request, while
        // OpenAI accepts it (chat UIs drop `tools` when plugins are switched off). CCGate declares
        // placeholder tools named after the history's tools and sets tool_choice "none", so the
        // history stays valid and the model cannot call a tool the client no longer offers.
        if tool_defs.is_empty() && conv.has_tool_blocks() {
            tool_defs = conv
                .history_tool_names
                .iter()
                .map(|n| ToolDef {
                    cache_control: None,
                    description: Some(Text::Str(Cow::Borrowed(
                        "A tool used earlier in this conversation. It is no longer available.",
                    ))),
                    input_schema: Schema::Empty,
                    name: n.clone(),
                    strict: None,
                })
                .collect();
            tool_choice = Some(json!({"type": "none"}));
            self.warnings.push(
                "history holds tool calls but the request has no tools: placeholder tools declared with tool_choice none".to_owned(),
            );
        }

        let planned = self.thinking(effort, &conv, json_tool.is_some());
        let (thinking, max_tokens) = reasoning::fit_budget(
            planned,
            params::max_tokens(obj, &caps)?,
            caps.max_output_tokens,
        );
        if thinking == Thinking::Off && matches!(planned, Thinking::Budget { .. }) {
            self.warnings.push(
                "reasoning_effort ignored: the model's output limit leaves no room for a thinking budget".to_owned(),
            );
        }
        let thinking_on = thinking != Thinking::Off;
        if thinking_on {
            downgrade_forced_choice(&mut tool_choice);
        }
        let sampling = params::sampling(obj, thinking_on, &caps)?;
        let stop = params::stop_sequences(obj)?;
        let user_id = params::user_id(obj, self.opts.tenant_id)?;

        // Assemble.
        let mut output_config = OutputConfig {
            effort: None,
            format: output_format,
        };
        let thinking_value = match thinking {
            Thinking::Off => None,
            Thinking::Adaptive { effort } => {
                output_config.effort = Some(effort);
                Some(json!({"type": "adaptive"}))
            }
            Thinking::Budget { budget } => {
                Some(json!({"type": "enabled", "budget_tokens": budget}))
            }
        };
        let mut body = Body {
            max_tokens,
            messages: &conv.turns,
            metadata: user_id.as_deref().map(|u| Metadata { user_id: u }),
            model: self.opts.claude_model,
            output_config,
            stop_sequences: stop,
            stream,
            system: &conv.system,
            temperature: None,
            thinking: thinking_value,
            tool_choice,
            tools: &tool_defs,
            top_k: None,
            top_p: None,
        };
        for (k, v) in sampling {
            match k {
                "temperature" => body.temperature = Some(v),
                "top_p" => body.top_p = Some(v),
                _ => body.top_k = Some(v),
            }
        }
        let body = body.to_vec(self.body_len).map_err(|e| {
            TranslateError::general(format!("Could not serialise the translated request: {e}"))
        })?;
        Ok(TranslatedRequest {
            body,
            stream,
            include_usage,
            max_tokens: u64::from(max_tokens),
            user_id,
            response_ctx: ResponseContext {
                client_model: self.opts.client_model.to_owned(),
                tool_names: self.names.renamed(),
                json_tool,
                expose_reasoning: self.opts.expose_reasoning,
                include_usage,
            },
            warnings: self.warnings,
        })
    }

    /// Reserves every valid tool name of the request before any rewriting (§4.2 step 6), so
    /// rewritten names can never take a name the client actually uses. Best effort: malformed
    /// entries are reported later by the validating passes.
    fn reserve_names(&mut self, tool_names: &[&str]) -> Result<(), TranslateError> {
        self.names.expect(tool_names.len());
        for t in tool_names {
            self.names.reserve(t);
        }
        let Some(List::Ok(msgs)) = &self.obj.messages else {
            return Ok(());
        };
        let history = msgs
            .iter()
            .filter_map(|m| match m {
                Got::Ok(m) => match &m.tool_calls {
                    Some(List::Ok(calls)) => Some(calls),
                    _ => None,
                },
                _ => None,
            })
            .flatten()
            .filter_map(|c| match c {
                Got::Ok(c) => match &c.function {
                    Some(Got::Ok(f)) => f.name.as_ref().and_then(J::as_str),
                    _ => None,
                },
                _ => None,
            });
        for n in history {
            self.names.reserve(n);
        }
        Ok(())
    }

    /// §4.3 plus the cases where thinking must stay off even though it was asked for:
    /// * the current tool loop's assistant message has no thinking block (§4.2 step 13, option (a):
    ///   CCGate keeps no thinking cache, and plain OpenAI clients never echo thinking);
    /// * a prefill ends the conversation (Anthropic does not allow prefill with thinking);
    /// * the `json_schema` forced-tool trick is used (a forced tool is not allowed with thinking,
    ///   §4.1, and the requested format matters more than reasoning).
    fn thinking(
        &mut self,
        effort: Option<reasoning::Effort>,
        conv: &Conversation,
        json_tool: bool,
    ) -> Thinking {
        let plan = reasoning::plan(effort, &self.opts.caps, &self.opts.thinking_budgets);
        if plan == Thinking::Off {
            if effort.is_some_and(|e| e != reasoning::Effort::None) {
                self.warnings.push(
                    "reasoning_effort ignored: the model does not support thinking".to_owned(),
                );
            }
            return plan;
        }
        let reason = if conv.tool_loop_lacks_thinking() {
            "the current tool loop's assistant message carries no thinking block"
        } else if conv.prefill {
            "the conversation ends with an assistant prefill"
        } else if json_tool {
            "json_schema output uses a forced tool on this model"
        } else {
            return plan;
        };
        self.warnings
            .push(format!("reasoning_effort ignored: {reason}"));
        Thinking::Off
    }

    /// `tool_choice` when the `json_schema` tool trick is active. The answer must come through the
    /// format tool, so plain text is never allowed: with client tools the model must call *some*
    /// tool (`any`), unless the client named one; without them (or with `none`) the format tool
    /// is forced.
    fn json_tool_choice(
        &mut self,
        choice: Option<&Choice>,
        has_client_tools: bool,
        json_tool: &str,
        parallel: Option<bool>,
    ) -> Value {
        let mut v = match choice {
            Some(Choice::Named(n)) => json!({"type": "tool", "name": self.names.map(n)}),
            Some(Choice::Auto) | Some(Choice::Required) | None if has_client_tools => {
                json!({"type": "any"})
            }
            _ => json!({"type": "tool", "name": json_tool}),
        };
        if parallel == Some(false) {
            if let Some(o) = v.as_object_mut() {
                o.insert("disable_parallel_tool_use".into(), Value::Bool(true));
            }
        }
        v
    }
}

/// With thinking on, `tool_choice` may not force a tool (§2.9): `any`/`tool` become `auto`,
/// keeping `disable_parallel_tool_use` (§4.3).
fn downgrade_forced_choice(choice: &mut Option<Value>) {
    if let Some(Value::Object(o)) = choice {
        if matches!(o.get("type").and_then(Value::as_str), Some("any" | "tool")) {
            o.insert("type".into(), Value::String("auto".into()));
            o.remove("name");
        }
    }
}

/// `stream_options.include_usage` (§3.3); CCGate-side only.
fn include_usage(obj: &Request<'_>) -> Result<bool, TranslateError> {
    match field(obj.stream_options.as_ref()) {
        None => Ok(false),
        Some(J::Obj(o)) => {
            Ok(opt_bool(o.get("include_usage"), "stream_options.include_usage")?.unwrap_or(false))
        }
        Some(other) => Err(wrong_type("stream_options", "an object", other)),
    }
}

/// The legacy `functions`/`function_call` API is not translated; silently dropping it would
/// leave the model without the functions the client relies on.
fn reject_legacy_functions(obj: &Request<'_>) -> Result<(), TranslateError> {
    for (key, v) in [
        ("functions", &obj.functions),
        ("function_call", &obj.function_call),
    ] {
        if field(v.as_ref()).is_some() {
            return Err(TranslateError::invalid(
                key,
                format!("The deprecated '{key}' parameter is not supported; use 'tools' and 'tool_choice'"),
            ));
        }
    }
    Ok(())
}

fn missing_messages() -> TranslateError {
    TranslateError::invalid("messages", "Missing required parameter: 'messages'")
}
