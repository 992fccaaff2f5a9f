//! cargo fuzz target: the range decoder, quantized-probability and adaptive paths.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mmz_fuzz::range_decode(data);
});
