//! Request paths and Host headers as the web service decodes them: decoding and
//! normalisation must never panic, and a normalised path never climbs or holds NUL.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        serval_web::fuzzing::request_path(text);
    }
});
