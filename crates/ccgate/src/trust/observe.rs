//! What one request tells about its upstream, gathered cheaply: the request's traits once when it is read, the
//! stream's timing per chunk (a few integer stores), the answer's model and thinking blocks at its end. The
//! [`Observation`] reaches [`super::Trust::observe`] at settlement.

use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Instant;

/// The request as sent upstream (after `modelMap`), as far as the checks care.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestTraits {
    /// [`estimate_tokens`] of the whole body.
    pub estimate_tokens: u64,
    /// `thinking` present and not `{"type":"disabled"}`.
    pub thinking: bool,
    /// The body holds a `cache_control` marker.
    pub cache_control: bool,
    /// Entries of `messages`: 3 or more is a follow-up turn (user, assistant, user).
    pub messages: u32,
}

impl RequestTraits {
    /// The traits of an Anthropic Messages body already read by the gateway's scan (`api/scan.rs`), which counted
    /// its `messages` and read `thinking` in its one validating pass: only two byte scans are added here.
    pub fn of_scanned(body: &[u8], scanned: &crate::api::scan::Scanned) -> RequestTraits {
        RequestTraits {
            estimate_tokens: estimate_tokens(body),
            thinking: scanned.thinking,
            cache_control: memchr::memmem::find(body, b"\"cache_control\"").is_some(),
            messages: scanned.messages,
        }
    }

    /// The traits of a body not scanned yet (tests, tools).
    pub fn of(body: &[u8]) -> RequestTraits {
        crate::api::scan::scan(body)
            .map(|s| RequestTraits::of_scanned(body, &s))
            .unwrap_or_else(|_| RequestTraits {
                estimate_tokens: estimate_tokens(body),
                ..RequestTraits::default()
            })
    }
}

/// A local, deterministic token estimate: a quarter of the ASCII bytes (English and code run about 4 bytes a
/// token) plus one per non-ASCII character (CJK runs about one token a character). It is not a tokenizer; the
/// inflation check only compares the ratio `reported / estimate` between upstreams serving the same traffic, so
/// a constant bias cancels out.
pub fn estimate_tokens(body: &[u8]) -> u64 {
    // Counted in runs of 255 bytes into `u8`s (a run cannot overflow one), which the compiler turns into vector
    // compares: this runs on every request's body. A lead byte of a non-ASCII character is 0xC0 or above
    // (continuation bytes, 0x80..0xC0, are not counted).
    let (mut ascii, mut lead) = (0u64, 0u64);
    for run in body.chunks(255) {
        ascii += u64::from(run.iter().fold(0u8, |n, &b| n + u8::from(b < 0x80)));
        lead += u64::from(run.iter().fold(0u8, |n, &b| n + u8::from(b >= 0xC0)));
    }
    ascii.div_ceil(4) + lead
}

/// When content arrived, per chunk: first and last chunk that carried output, counted from the request's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamTiming {
    pub first_content_ms: Option<u64>,
    pub last_content_ms: u64,
    pub content_chunks: u32,
    /// Output bytes seen at the last chunk (to tell whether a chunk carried content).
    seen_output: u64,
}

impl StreamTiming {
    /// One upstream chunk was read; `output_bytes` is the meter's running count of content payload bytes.
    /// Constant time, no allocation.
    pub fn on_chunk(&mut self, started: Instant, output_bytes: u64) {
        if output_bytes == self.seen_output {
            return;
        }
        self.seen_output = output_bytes;
        let at = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.first_content_ms.get_or_insert(at);
        self.last_content_ms = at;
        self.content_chunks = self.content_chunks.saturating_add(1);
    }
}

/// What the answer said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerTraits {
    /// The answer's `model`.
    pub model: Option<String>,
    pub thinking_blocks: u32,
    /// Thinking blocks that came without a signature.
    pub unsigned_thinking_blocks: u32,
}

impl AnswerTraits {
    /// From a whole JSON answer (only read when thinking was asked for, or for the model).
    pub fn of_json(body: &[u8], want_blocks: bool) -> AnswerTraits {
        #[derive(Deserialize)]
        struct Block<'a> {
            #[serde(borrow, rename = "type", default)]
            kind: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow, default)]
            signature: Option<std::borrow::Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Answer<'a> {
            #[serde(default)]
            model: Option<String>,
            #[serde(borrow, default)]
            content: Option<&'a RawValue>,
        }
        let Ok(a) = serde_json::from_slice::<Answer<'_>>(body) else {
            return AnswerTraits::default();
        };
        let mut out = AnswerTraits {
            model: a.model,
            ..Default::default()
        };
        if want_blocks {
            let blocks: Vec<Block<'_>> = a
                .content
                .and_then(|c| serde_json::from_str(c.get()).ok())
                .unwrap_or_default();
            for b in blocks
                .iter()
                .filter(|b| b.kind.as_deref() == Some("thinking"))
            {
                out.thinking_blocks += 1;
                if b.signature.as_deref().is_none_or(str::is_empty) {
                    out.unsigned_thinking_blocks += 1;
                }
            }
        }
        out
    }
}

/// Everything one settled request contributes to its upstream's scorecard.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub request: RequestTraits,
    pub answer: AnswerTraits,
    pub timing: StreamTiming,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_ascii_by_quarters_and_other_characters_one_each() {
        assert_eq!(estimate_tokens(b""), 0);
        assert_eq!(estimate_tokens(b"abcd"), 1);
        assert_eq!(estimate_tokens(b"abcde"), 2);
        assert_eq!(estimate_tokens("你好".as_bytes()), 2);
        assert_eq!(estimate_tokens("ab你好".as_bytes()), 3);
        // Across the 255-byte runs: the same as a byte-by-byte count.
        let mixed = "Grüße, 世界! naïve café — ".repeat(20);
        let slow = |b: &[u8]| {
            let ascii = b.iter().filter(|&&c| c < 0x80).count() as u64;
            ascii.div_ceil(4) + b.iter().filter(|&&c| c >= 0xC0).count() as u64
        };
        for n in 0..mixed.len() {
            assert_eq!(
                estimate_tokens(&mixed.as_bytes()[..n]),
                slow(&mixed.as_bytes()[..n]),
                "{n}"
            );
        }
    }

    #[test]
    fn request_traits_read_thinking_cache_and_turns() {
        let t = RequestTraits::of(
            br#"{"model":"m","thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":[{"type":"text","text":"x","cache_control":{"type":"ephemeral"}}]},{"role":"assistant","content":"y"},{"role":"user","content":"z"}]}"#,
        );
        assert!(t.thinking && t.cache_control);
        assert_eq!(t.messages, 3);
        let t = RequestTraits::of(br#"{"thinking":{"type":"disabled"},"messages":[]}"#);
        assert!(!t.thinking && !t.cache_control);
        assert_eq!(t.messages, 0);
        assert!(!RequestTraits::of(br#"{"thinking":null}"#).thinking);
    }

    #[test]
    fn json_answers_tell_their_model_and_unsigned_thinking() {
        let a = AnswerTraits::of_json(
            br#"{"model":"claude-x","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"thinking","thinking":"u"},{"type":"text","text":"hi"}]}"#,
            true,
        );
        assert_eq!(a.model.as_deref(), Some("claude-x"));
        assert_eq!((a.thinking_blocks, a.unsigned_thinking_blocks), (2, 1));
    }

    #[test]
    fn stream_timing_notes_only_chunks_that_carry_content() {
        let start = Instant::now();
        let mut t = StreamTiming::default();
        t.on_chunk(start, 0);
        assert_eq!(t.first_content_ms, None);
        t.on_chunk(start, 10);
        t.on_chunk(start, 10);
        t.on_chunk(start, 25);
        assert_eq!(t.content_chunks, 2);
        assert!(t.first_content_ms.is_some());
    }
}
