//! Translates an OpenAI request read from stdin and prints the Anthropic body.
//! `cargo run -p ccgate-openai --example translate < request.json`

use ccgate_meter::ModelCaps;
use ccgate_openai::{translate_request, TranslateOptions};
use std::io::Read;

fn main() {
    let mut body = Vec::new();
    if std::io::stdin().read_to_end(&mut body).is_err() {
        eprintln!("cannot read stdin");
        std::process::exit(2);
    }
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
    match translate_request(&body, &opts) {
        Ok(t) => {
            println!("{}", String::from_utf8_lossy(&t.body));
            for w in t.warnings {
                eprintln!("warning: {w}");
            }
        }
        Err(e) => {
            println!("{}", String::from_utf8_lossy(&e.to_body()));
            std::process::exit(1);
        }
    }
}
