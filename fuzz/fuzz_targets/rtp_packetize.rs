//! Fuzz the RTP packetizers: arbitrary NAL units and access units must packetize within the size limit,
//! and FU-A fragments must reassemble to the input. The body lives in `serval_stream_media::fuzzing`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    serval_stream_media::fuzzing::rtp_packetize(data);
});
