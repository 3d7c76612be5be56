#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_mail::fuzzing::mail_headers(data);
});
