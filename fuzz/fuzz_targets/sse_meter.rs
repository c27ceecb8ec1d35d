//! The SSE framer and the stream meter on arbitrary bytes, cut into chunks at arbitrary points: no panic, and the
//! framer never buffers more than its cap.
#![no_main]

use ccgate_meter::sse::SseFramer;
use ccgate_meter::usage::StreamMeter;
use libfuzzer_sys::fuzz_target;

const CAP: usize = 256;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the chunk size, so the fuzzer explores the chunkings too.
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut framer = SseFramer::with_max_event_bytes(CAP);
    let mut meter = StreamMeter::new();
    for chunk in rest.chunks(step) {
        framer.push(chunk, &mut |ev| meter.on_event(ev.event, ev.data));
        assert!(framer.buffered_bytes() <= 3 * CAP);
    }
    framer.finish(&mut |ev| meter.on_event(ev.event, ev.data));
    let mut own = StreamMeter::new();
    for chunk in rest.chunks(step) {
        own.push_bytes(chunk);
    }
    own.finish_bytes();
    let _ = (meter.outcome(), own.outcome(), own.framing_overflowed());
});
