//! Writes the benchmark's request bodies to a folder, for profiling one path with another load generator
//! (`wrk -s` with `wrk.body` read from these files, or `curl --data-binary @file`).
//!
//!   cargo run --release -p ccgate-bench --example dump_bodies -- /tmp/bodies

#[path = "../src/bodies.rs"]
#[allow(dead_code)]
mod bodies;

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "bench-bodies".into());
    std::fs::create_dir_all(&dir)?;
    for (name, body) in [
        ("anthropic_large.json", bodies::anthropic_large()),
        ("openai_large.json", bodies::openai_large()),
        ("responses_large.json", bodies::responses_large()),
    ] {
        std::fs::write(format!("{dir}/{name}"), body)?;
    }
    println!("wrote the bodies to {dir}");
    Ok(())
}
