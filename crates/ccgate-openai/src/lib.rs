//! OpenAI Chat Completions ⇄ Anthropic Messages translation for CCGate's `/openai` prefix.
//!
//! Pure: no I/O, no async, no clock (the caller passes `now_unix`). The rules come from
//! `docs/protocols.md` §3–§6; each module cites the section it implements.
//!
//! * Request: [`resolve_model`] → [`translate_request`] (→ [`TranslatedRequest`] with the
//!   Anthropic body and a [`ResponseContext`]).
//! * Response: [`translate_response`] (non-streaming), [`StreamTranslator`] (SSE),
//!   [`translate_error`] (upstream error statuses), [`error_body`] (the gateway's own errors).
//! * [`models_list`] for `GET /v1/models`.
//!
//! Requests are read once, by serde_json, into typed views borrowed from the body (top-level keys
//! must be unique, see [`parse_request`]): strings are not copied, parts passed on unchanged (JSON
//! schemas, `cache_control`, thinking blocks) stay raw JSON text, and the Anthropic body is written
//! from typed blocks that borrow them.
//!
//! Usage numbers are never computed here: the gateway meters the upstream answer with
//! `ccgate-meter` and passes the resulting [`ccgate_meter::Usage`].
//!
//! Documented choices (details on the items):
//! * unparseable tool-call arguments → `{"_raw_arguments": "<original>"}` (never dropped);
//! * tool blocks in history without `tools` → placeholder tools + `tool_choice: none`;
//! * `json_object` → a system instruction; `json_schema` → `output_config.format`, or a forced
//!   tool unwrapped into `content` on models without structured outputs;
//! * thinking round trip: option (a), thinking is turned off when the current tool loop lacks a
//!   thinking block (tenant-supplied `thinking_blocks` are put first, unchanged);
//! * a conversation not starting with a user message gets a `"."` user turn prepended;
//! * no `data: [DONE]` after a stream error.

mod content;
mod error;
mod format;
mod hashing;
mod input;
mod json;
mod messages;
mod models;
mod names;
mod options;
mod output;
mod params;
mod reasoning;
mod request;
mod response;
pub mod responses;
mod stream;
mod tools;
mod usage;

pub use error::{error_body, translate_error, TranslateError, UpstreamFormatError};
pub use models::{model_object, models_list, requested_model, resolve_model, Resolved};
pub use options::{ThinkingBudgets, TranslateOptions, DEFAULT_MAX_IMAGE_BYTES};
pub use request::{parse_request, translate_request, ParsedRequest, TranslatedRequest};
pub use response::{finish_reason, translate_response, ResponseContext};
pub use stream::StreamTranslator;
pub use usage::{openai_usage, CompletionDetails, OpenAiUsage, PromptDetails};
