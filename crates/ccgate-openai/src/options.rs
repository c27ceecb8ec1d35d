//! Per-request settings supplied by the gateway.

use ccgate_meter::ModelCaps;

/// `budget_tokens` per `reasoning_effort` for models with budget thinking (docs/protocols.md §4.3).
/// Defaults are LiteLLM's; operators raise them (some set `high` near 24k), hence configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingBudgets {
    pub minimal: u32,
    pub low: u32,
    pub medium: u32,
    pub high: u32,
    pub xhigh: u32,
    pub max: u32,
}

impl Default for ThinkingBudgets {
    fn default() -> Self {
        Self {
            minimal: 1024,
            low: 1024,
            medium: 2048,
            high: 4096,
            xhigh: 8192,
            max: 16384,
        }
    }
}

/// Default for [`TranslateOptions::max_image_bytes`]: 5 MiB of **decoded** image data, the
/// Anthropic per-image limit. The check is computed from the base64 length (decoded ≈ len × 3/4),
/// so a data URL of about 7 MB of base64 is the largest accepted by default.
pub const DEFAULT_MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// Everything [`crate::translate_request`] needs besides the body.
#[derive(Debug, Clone)]
pub struct TranslateOptions<'a> {
    /// Resolved Claude model id, sent upstream as `model`.
    pub claude_model: &'a str,
    /// The name the client asked for, echoed in responses (§4.1).
    pub client_model: &'a str,
    /// Capability flags of `claude_model` (§2.9, §4.3, §4.4).
    pub caps: ModelCaps,
    /// Salt for `metadata.user_id` hashing (§4.1), so equal `user` values of two tenants differ.
    pub tenant_id: &'a str,
    pub thinking_budgets: ThinkingBudgets,
    /// Send thinking text back as `reasoning_content` (§4.3, §5.1). Default true.
    pub expose_reasoning: bool,
    /// Largest decoded size of one base64 image (see [`DEFAULT_MAX_IMAGE_BYTES`]).
    pub max_image_bytes: usize,
}

impl<'a> TranslateOptions<'a> {
    /// Options with the documented defaults for everything but the model and tenant.
    pub fn new(
        claude_model: &'a str,
        client_model: &'a str,
        caps: ModelCaps,
        tenant_id: &'a str,
    ) -> Self {
        Self {
            claude_model,
            client_model,
            caps,
            tenant_id,
            thinking_budgets: ThinkingBudgets::default(),
            expose_reasoning: true,
            max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
        }
    }
}
