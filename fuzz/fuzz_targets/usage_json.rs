//! The usage reader of non-streamed answers on arbitrary bytes: `None` or a usage, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ccgate_meter::usage::usage_from_json_response(data);
});
