//! Pure metering logic for CCGate, free of I/O so it can be tested and fuzzed alone.
//!
//! * [`sse`]: incremental byte-level SSE framing (events split across chunks, `\r\n`, multi-line `data:`).
//! * [`usage`]: Anthropic usage extraction with the field-wise override rule (protocols.md §2.5–2.6).
//! * [`pricing`]: the embedded price table, `config/pricing.json` overrides, exact integer cost arithmetic.
//! * [`catalog`]: the model catalog (display names, limits, capability flags) used by `/v1/models` and translation.
//! * [`wildcard`]: the case-insensitive `*` matcher shared by allow-lists, price keys and upstream `models`.

pub mod catalog;
pub mod pricing;
pub mod sse;
pub mod usage;
pub mod wildcard;

pub use catalog::ModelCaps;
pub use usage::Usage;
