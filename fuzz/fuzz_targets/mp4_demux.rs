//! Fuzz the MP4/MOV demuxer: open arbitrary bytes as a movie, write its SDP and drain packets of every
//! selected track (capped). The body lives in `serval_stream_media::fuzzing` so unit tests run it too.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_stream_media::fuzzing::mp4_demux(data);
});
