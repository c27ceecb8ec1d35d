//! The `/openai` stream translator on arbitrary events: the input is split into `name\0data` records at `\n`;
//! no panic, and the output is UTF-8.
#![no_main]

use ccgate_meter::Usage;
use ccgate_openai::{ResponseContext, StreamTranslator};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ctx = ResponseContext {
        client_model: "m".into(),
        expose_reasoning: data.first().is_some_and(|b| b & 1 == 1),
        include_usage: data.first().is_some_and(|b| b & 2 == 2),
        ..ResponseContext::default()
    };
    let mut st = StreamTranslator::new(ctx, "req", 0);
    let mut out = Vec::new();
    let usage = Usage::default();
    for record in data.split(|&b| b == b'\n') {
        let (name, payload) = match record.iter().position(|&b| b == 0) {
            Some(i) => (&record[..i], &record[i + 1..]),
            None => (&b"content_block_delta"[..], record),
        };
        let name = std::str::from_utf8(name).unwrap_or("");
        st.on_event(name, payload, &usage, &mut out);
    }
    st.on_upstream_error("broken", "server_error", &mut out);
    assert!(std::str::from_utf8(&out).is_ok());
});
