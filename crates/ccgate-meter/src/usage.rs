//! Anthropic usage, as reported by the upstream (protocols.md §2.5).

use serde::{Deserialize, Serialize};

/// Raw Anthropic usage of one request. `input_tokens` is the *uncached remainder* only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    /// All cache writes, every TTL.
    pub cache_creation_input_tokens: u64,
    /// Cache writes with the 5-minute TTL (includes any unattributed remainder of the total).
    pub cache_write_5m_tokens: u64,
    /// Cache writes with the 1-hour TTL.
    pub cache_write_1h_tokens: u64,
    pub cache_read_input_tokens: u64,
    /// Billed output, thinking included.
    pub output_tokens: u64,
    /// `output_tokens_details.thinking_tokens` when the upstream reports it.
    pub thinking_tokens: Option<u64>,
    pub web_search_requests: u64,
    pub web_fetch_requests: u64,
    pub service_tier: Option<String>,
    pub inference_geo: Option<String>,
    pub speed: Option<String>,
}
