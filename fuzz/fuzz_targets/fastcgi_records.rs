//! FastCGI answer records from an app: decoding must never panic, always consumes what it
//! returns, and never asks for less than a record header.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_web::fuzzing::fastcgi_records(data);
});
