//! Pure metering logic for CCGate, free of I/O so it can be tested and fuzzed alone.
//!
//! * [`sse`]: incremental byte-level SSE framing (events split across chunks, `\r\n`, multi-line `data:`).
//! * [`usage`]: Anthropic usage extraction with the field-wise override rule (docs/protocols.md §2.5–2.6) and the
//!   [`StreamMeter`] that applies it to a live stream.
//! * [`pricing`]: the embedded price table, `config/pricing.json` overrides, exact integer cost arithmetic.
//! * [`catalog`]: the model catalog (display names, limits, capability flags) used by `/v1/models` and translation.
//! * [`wildcard`]: the case-insensitive `*` matcher shared by allow-lists, price keys and upstream `models`.
//!
//! Typical flow on the gateway: tee upstream bytes into [`StreamMeter::push_bytes`] (or feed
//! [`StreamMeter::on_event`] from a framer the translator already runs), call [`StreamMeter::finish_bytes`] at end of
//! stream, take [`StreamMeter::outcome`], then price `outcome.usage` with [`PriceTable::cost`] and record
//! [`PriceTable::version`] on the row. Non-streaming bodies go through [`usage::usage_from_json_response`].

pub mod catalog;
pub mod pricing;
pub mod sse;
pub mod usage;
pub mod wildcard;
pub mod wire;

pub use catalog::{caps_for, catalog, find_model, ModelCaps, ModelInfo};
pub use pricing::{
    CostBreakdown, CostOptions, MatchKind, NanoUsd, PriceEntry, PriceTable, PricingError, Rates,
};
pub use sse::{SseEvent, SseFramer};
pub use usage::{
    usage_from_json_response, ResponseMeta, StreamError, StreamMeter, StreamOutcome, StreamStatus,
    Usage,
};
