//! RTSP framing and request handling over arbitrary bytes: `cargo fuzz run rtsp_request`.
//! The same body runs over seeds in `serval_stream::fuzzing`'s unit tests.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_stream::fuzzing::rtsp_request(data);
});
