//! Shared fixtures for the integration tests.
#![allow(dead_code)]

use ccgate_meter::{ModelCaps, Usage};
use ccgate_openai::{translate_request, TranslateError, TranslateOptions, TranslatedRequest};
use serde_json::Value;

/// A 4.6-style model: adaptive thinking, structured outputs, no prefill.
pub fn caps_adaptive() -> ModelCaps {
    ModelCaps {
        max_output_tokens: 64000,
        default_max_tokens: 32000,
        adaptive_thinking: true,
        thinking: true,
        exclusive_temperature_top_p: true,
        fixed_sampling: false,
        prefill: false,
        structured_outputs: true,
        max_effort: "max",
    }
}

/// A 4.5-style model: budget thinking, prefill, no structured outputs.
pub fn caps_budget() -> ModelCaps {
    ModelCaps {
        max_output_tokens: 64000,
        default_max_tokens: 8192,
        adaptive_thinking: false,
        thinking: true,
        exclusive_temperature_top_p: true,
        fixed_sampling: false,
        prefill: true,
        structured_outputs: false,
        max_effort: "high",
    }
}

pub fn opts(caps: ModelCaps) -> TranslateOptions<'static> {
    TranslateOptions::new("claude-sonnet-4-6", "claude-sonnet-4-6", caps, "tenant-1")
}

pub fn tr(body: &Value, caps: ModelCaps) -> Result<TranslatedRequest, TranslateError> {
    translate_request(body.to_string().as_bytes(), &opts(caps))
}

/// Translates and returns the Anthropic body as JSON.
pub fn anth(body: &Value, caps: ModelCaps) -> Value {
    let t = tr(body, caps).unwrap_or_else(|e| panic!("unexpected 400: {e}"));
    serde_json::from_slice(&t.body).expect("body is JSON")
}

pub fn err(body: &Value, caps: ModelCaps) -> TranslateError {
    match tr(body, caps) {
        Ok(t) => panic!("expected a 400, got {}", String::from_utf8_lossy(&t.body)),
        Err(e) => e,
    }
}

pub fn usage(input: u64, write: u64, read: u64, output: u64) -> Usage {
    Usage {
        input_tokens: input,
        cache_creation_input_tokens: write,
        cache_write_5m_tokens: write,
        cache_read_input_tokens: read,
        output_tokens: output,
        ..Usage::default()
    }
}
