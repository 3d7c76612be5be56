//! `cargo fuzz run http_tunnel`: see `serval_stream::fuzzing::http_tunnel`, whose body also runs over seeds
//! in that module's unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_stream::fuzzing::http_tunnel(data);
});
