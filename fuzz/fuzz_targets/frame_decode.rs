//! cargo fuzz target: the `.mmz` frame parser and chunk decoders.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmz_fuzz::frame_decode(data);
});
