//! Anthropic usage → OpenAI `usage` (docs/protocols.md §5.4).

use ccgate_meter::Usage;
use serde::Serialize;

/// The OpenAI `usage` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenAiUsage {
    /// In OpenAI semantics the prompt **includes** cached tokens (§3.2), whereas Anthropic's
    /// `input_tokens` is only the uncached remainder (§2.5): all three parts are added.
    pub prompt_tokens: u64,
    /// Thinking included: Anthropic bills it as output.
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptDetails,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PromptDetails {
    /// Cache reads.
    pub cached_tokens: u64,
    /// Cache writes (newer, optional OpenAI field).
    pub cache_write_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CompletionDetails {
    /// From `output_tokens_details.thinking_tokens`, only when the upstream reports it: never
    /// estimated (§4.3).
    pub reasoning_tokens: u64,
}

/// Maps the metered usage (the caller's parse of the upstream answer) to OpenAI's view. The 5m/1h
/// write split is lost here; the usage row keeps the raw Anthropic fields.
pub fn openai_usage(u: &Usage) -> OpenAiUsage {
    let prompt = u
        .input_tokens
        .saturating_add(u.cache_creation_input_tokens)
        .saturating_add(u.cache_read_input_tokens);
    OpenAiUsage {
        prompt_tokens: prompt,
        completion_tokens: u.output_tokens,
        total_tokens: prompt.saturating_add(u.output_tokens),
        prompt_tokens_details: PromptDetails {
            cached_tokens: u.cache_read_input_tokens,
            cache_write_tokens: u.cache_creation_input_tokens,
        },
        completion_tokens_details: u.thinking_tokens.map(|t| CompletionDetails {
            reasoning_tokens: t,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_example() {
        let u = Usage {
            input_tokens: 21,
            cache_creation_input_tokens: 1890,
            cache_write_1h_tokens: 1890,
            cache_read_input_tokens: 10240,
            output_tokens: 412,
            thinking_tokens: Some(300),
            ..Usage::default()
        };
        let v = serde_json::to_value(openai_usage(&u)).unwrap();
        assert_eq!(
            v,
            json!({"prompt_tokens":12151,"completion_tokens":412,"total_tokens":12563,
                "prompt_tokens_details":{"cached_tokens":10240,"cache_write_tokens":1890},
                "completion_tokens_details":{"reasoning_tokens":300}})
        );
        let v = serde_json::to_value(openai_usage(&Usage::default())).unwrap();
        assert!(v.get("completion_tokens_details").is_none());
    }
}
