//! Cost of translating one Responses request against the same content as a Chat Completions request, in the same
//! run: `responses_cost RESPONSES_FILE CHAT_FILE [ITERATIONS]` prints the mean CPU time of each (what the gateway
//! does per request: read the body, find the model, translate) and their ratio. Build with `--release`. The bodies:
//! `cargo run --release -p ccgate-bench --example dump_bodies -- DIR` (`responses_large.json`, `openai_large.json`).

use ccgate_meter::ModelCaps;
use ccgate_openai::responses::parse_responses_request;
use ccgate_openai::{parse_request, TranslateOptions};
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: responses_cost RESPONSES_FILE CHAT_FILE [ITERATIONS]");
        std::process::exit(2);
    }
    let read = |p: &str| {
        std::fs::read(p).unwrap_or_else(|e| {
            eprintln!("cannot read {p}: {e}");
            std::process::exit(2)
        })
    };
    let (responses, chat) = (read(&args[0]), read(&args[1]));
    let n: u32 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
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
    let opts = TranslateOptions::new("claude-sonnet-4-6", "gpt-4o", caps, "tenant");
    let mut sizes = (0, 0);
    let mut chat_us = 0.0;
    let mut resp_us = 0.0;
    // Interleaved rounds, so both see the same machine load.
    for _ in 0..4 {
        let start = Instant::now();
        for _ in 0..n / 4 {
            let p = parse_request(&chat).expect("chat body");
            sizes.0 = p.translate(&opts).expect("chat translation").body.len();
        }
        chat_us += start.elapsed().as_secs_f64();
        let start = Instant::now();
        for _ in 0..n / 4 {
            let p = parse_responses_request(&responses).expect("responses body");
            sizes.1 = p
                .translate(&opts)
                .expect("responses translation")
                .body
                .len();
        }
        resp_us += start.elapsed().as_secs_f64();
    }
    // The Responses → chat step alone.
    let start = Instant::now();
    for _ in 0..n / 4 {
        std::hint::black_box(parse_responses_request(&responses).expect("responses body"));
    }
    let read_us = start.elapsed().as_secs_f64() * 4.0;
    let per = |t: f64| t * 1e6 / f64::from(n / 4 * 4);
    println!(
        "responses → chat body alone: {:.1} µs/request",
        per(read_us)
    );
    println!(
        "chat: {} B -> {} B, {:.1} µs/request; responses: {} B -> {} B, {:.1} µs/request; ratio responses/chat {:.2}",
        chat.len(),
        sizes.0,
        per(chat_us),
        responses.len(),
        sizes.1,
        per(resp_us),
        resp_us / chat_us
    );
}
