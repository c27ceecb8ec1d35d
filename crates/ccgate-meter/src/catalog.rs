//! The model catalog: one entry per known Claude model.

/// Capability flags that drive request translation (protocols.md §2.9, §4.3, §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelCaps {
    /// Largest `max_tokens` the model accepts.
    pub max_output_tokens: u32,
    /// `max_tokens` used when an OpenAI client sends none.
    pub default_max_tokens: u32,
    /// Thinking is `{"type":"adaptive"}` + `output_config.effort` (Opus 4.6+, Sonnet 4.6+, newer);
    /// otherwise `{"type":"enabled","budget_tokens":N}`.
    pub adaptive_thinking: bool,
    /// Model supports thinking at all.
    pub thinking: bool,
    /// Rejects `temperature` and `top_p` sent together (Opus 4.1+, Sonnet 4.5+).
    pub exclusive_temperature_top_p: bool,
    /// Rejects any non-default `temperature`/`top_p`/`top_k` (Opus 4.7+, 5.x family).
    pub fixed_sampling: bool,
    /// Accepts a trailing assistant message (prefill).
    pub prefill: bool,
    /// Supports native structured output (`output_config.format`).
    pub structured_outputs: bool,
    /// Highest `output_config.effort` supported: "high", "xhigh" or "max".
    pub max_effort: &'static str,
}
