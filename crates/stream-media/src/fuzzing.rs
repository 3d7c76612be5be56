//! Bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`), public so the targets and this crate's unit tests
//! run the same code. Each must return normally on any input; a panic is a bug.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::rtp::h264;
use crate::Movie;

/// Packets drained per track at most, so one fuzz input stays fast.
pub const MAX_PACKETS_PER_TRACK: usize = 10_000;

/// Demux arbitrary bytes as a movie, write its SDP, and drain packets of every selected track from the
/// start and from a mid-point.
pub fn mp4_demux(data: &[u8]) {
    let Ok(movie) = Movie::from_source(Arc::new(Bytes::copy_from_slice(data))) else {
        return;
    };
    let sdp = movie.sdp("fuzz", "127.0.0.1");
    assert!(sdp.starts_with("v=0\r\n"));
    for &track_id in movie.selected_tracks() {
        for start in [Duration::ZERO, movie.duration() / 2] {
            let Ok(mut source) = movie.packets(track_id, start) else {
                continue;
            };
            assert!(source.start() <= start);
            for _ in 0..MAX_PACKETS_PER_TRACK {
                match source.next_packet() {
                    Ok(Some(packet)) => assert!(packet.payload.len() <= 65_000),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}

/// Packetize arbitrary bytes as one H.264 NAL unit with a maximum payload taken from the first two bytes,
/// and check every payload fits and FU-A fragments reassemble to the input.
pub fn rtp_packetize(data: &[u8]) {
    let [a, b, nal @ ..] = data else { return };
    let max_payload =
        usize::from(u16::from_be_bytes([*a, *b])).clamp(crate::rtp::MIN_MAX_PAYLOAD, 65_000);
    let nal = Bytes::copy_from_slice(nal);
    let mut out = Vec::new();
    h264::packetize_nal(&nal, max_payload, &mut out);
    if nal.is_empty() {
        assert!(out.is_empty());
        return;
    }
    assert!(out.iter().all(|p| p.len() <= max_payload && !p.is_empty()));
    if nal.len() > max_payload {
        match h264::reassemble_nal(&out) {
            Ok(rebuilt) => assert_eq!(rebuilt, nal),
            Err(e) => panic!("FU-A fragments do not reassemble: {e}"),
        }
    } else {
        assert_eq!(out, vec![nal]);
    }
}
