//! Criterion micro-benchmarks of the per-request work that is pure computation: the SSE usage meter, the
//! non-streamed usage read, and the `/openai` translators. `cargo bench -p ccgate-bench --bench micro`.
//!
//! They show where a change moves the cost of one piece; the end-to-end benchmark (`src/main.rs`) shows what the
//! whole request costs against nginx. Inputs are the end-to-end benchmark's own bodies and an SSE answer shaped
//! like the mock's (and Anthropic's): message_start, 20 text deltas, message_delta, message_stop.

#[path = "../src/bodies.rs"]
#[allow(dead_code, unused_imports)] // its tests module is not built here
mod bodies;

use ccgate_meter::{caps_for, usage_from_json_response, SseFramer, StreamMeter};
use ccgate_openai::{
    translate_request, translate_response, ResponseContext, StreamTranslator, TranslateOptions,
};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const ANSWER: &str = r#"{"id":"msg_01","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello from the mock upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":12}}"#;

fn sse_answer(deltas: usize) -> Vec<u8> {
    let mut s = String::from(concat!(
        "event: message_start\n",
        r#"data: {"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}"#,
        "\n\nevent: content_block_start\n",
        r#"data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        "\n\n"
    ));
    for i in 0..deltas {
        s.push_str("event: content_block_delta\ndata: ");
        s.push_str(&format!(
            r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"text_delta","text":"word {i}, \"quoted\" "}}}}"#
        ));
        s.push_str("\n\n");
    }
    s.push_str(concat!(
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\n",
        r#"data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":40}}"#,
        "\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
    ));
    s.into_bytes()
}

fn context() -> ResponseContext {
    ResponseContext {
        client_model: bodies::OPENAI_MODEL.to_owned(),
        tool_names: Default::default(),
        json_tool: None,
        expose_reasoning: false,
        include_usage: true,
    }
}

fn meter(c: &mut Criterion) {
    let sse = sse_answer(20);
    let mut g = c.benchmark_group("meter");
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("sse_stream_one_chunk", |b| {
        b.iter(|| {
            let mut m = StreamMeter::new();
            m.push_bytes(black_box(&sse));
            m.finish_bytes();
            m.outcome()
        })
    });
    g.bench_function("sse_stream_64_byte_chunks", |b| {
        b.iter(|| {
            let mut m = StreamMeter::new();
            for chunk in black_box(&sse).chunks(64) {
                m.push_bytes(chunk);
            }
            m.finish_bytes();
            m.outcome()
        })
    });
    g.throughput(Throughput::Bytes(ANSWER.len() as u64));
    g.bench_function("usage_from_json_response", |b| {
        b.iter(|| usage_from_json_response(black_box(ANSWER.as_bytes())))
    });
    g.finish();
}

fn openai(c: &mut Criterion) {
    let caps = caps_for(bodies::MODEL);
    let opts = TranslateOptions::new(bodies::OPENAI_MODEL, bodies::MODEL, caps, "bench");
    let mut g = c.benchmark_group("openai");
    for (name, body) in [
        ("translate_request_small", bodies::openai_small(false)),
        ("translate_request_75kb", bodies::openai_large()),
    ] {
        assert!(
            translate_request(&body, &opts).is_ok(),
            "{name} must translate"
        );
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| translate_request(black_box(&body), &opts))
        });
    }
    let usage = usage_from_json_response(ANSWER.as_bytes())
        .map(|(u, _)| u)
        .unwrap_or_default();
    let ctx = context();
    g.throughput(Throughput::Bytes(ANSWER.len() as u64));
    g.bench_function("translate_response", |b| {
        b.iter(|| translate_response(black_box(ANSWER.as_bytes()), &usage, &ctx, 0))
    });
    let sse = sse_answer(20);
    g.throughput(Throughput::Bytes(sse.len() as u64));
    g.bench_function("translate_stream", |b| {
        b.iter(|| {
            let mut framer = SseFramer::new();
            let mut meter = StreamMeter::new();
            let mut tr = StreamTranslator::new(context(), "req_bench", 0);
            let mut out = Vec::with_capacity(8192);
            framer.push(black_box(&sse), &mut |ev| {
                meter.on_event(ev.event, ev.data);
                tr.on_event(ev.event, ev.data, meter.usage(), &mut out);
            });
            out
        })
    });
    g.finish();
}

criterion_group!(benches, meter, openai);
criterion_main!(benches);
