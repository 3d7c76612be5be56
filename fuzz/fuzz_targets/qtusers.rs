//! `cargo fuzz run qtusers`: see `serval_stream::fuzzing::qtusers`, whose body also runs over seeds
//! in that module's unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_stream::fuzzing::qtusers(data);
});
