//! Cost of translating one request, for profiling: `translate_cost FILE [ITERATIONS]` translates the OpenAI body
//! in FILE repeatedly and prints the mean time per request, then the same for `requested_model` (which the gateway
//! calls first). Build with `--release`.
//!
//! History, on `tests/golden/openai_large.json` (82 KB: long system prompt, 24 tools with schemas, 20 long messages
//! with escapes), 2-core shared machine: the `Value` tree path measured 270–280 µs CPU per request and a former
//! hand-written fast path 51–55 µs. The fast path (its own JSON reader, `unsafe` SIMD and a second copy of the
//! translation) was removed for one serde-based path; measure again with this example before optimising. Reading
//! the body into typed views borrowed from it (raw JSON text for what passes through) instead of a `Value` tree took
//! the 75 KB benchmark body from 6.3 M to 1.6 M instructions per iteration (callgrind, system allocator).

use ccgate_meter::ModelCaps;
use ccgate_openai::{requested_model, translate_request, TranslateOptions};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: translate_cost FILE [ITERATIONS]");
        std::process::exit(2);
    };
    let n: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let body = std::fs::read(&path).unwrap_or_else(|e| {
        eprintln!("cannot read {path}: {e}");
        std::process::exit(2)
    });
    let caps = ModelCaps {
        max_output_tokens: 64000,
        default_max_tokens: 32000,
        adaptive_thinking: true,
        thinking: true,
        exclusive_temperature_top_p: true,
        fixed_sampling: false,
        prefill: false,
        structured_outputs: true,
        max_effort: "max",
    };
    let opts = TranslateOptions::new("claude-sonnet-4-6", "claude-sonnet-4-6", caps, "tenant");
    let start = Instant::now();
    let mut out = 0;
    for _ in 0..n {
        match translate_request(&body, &opts) {
            Ok(t) => out += t.body.len(),
            Err(e) => {
                eprintln!("{}", String::from_utf8_lossy(&e.to_body()));
                std::process::exit(1);
            }
        }
    }
    let per = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    // The gateway reads the model first (to pick the capabilities): part of the cost of a request.
    let start = Instant::now();
    for _ in 0..n {
        if let Err(e) = requested_model(&body) {
            eprintln!("{}", String::from_utf8_lossy(&e.to_body()));
            std::process::exit(1);
        }
    }
    let model = start.elapsed().as_secs_f64() * 1e6 / n as f64;
    println!(
        "{} bytes in, {} bytes out, {per:.1} µs per request (requested_model: {model:.1} µs)",
        body.len(),
        out / n as usize
    );
}
