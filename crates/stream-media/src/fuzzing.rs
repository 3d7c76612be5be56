//! Bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs`), public so the targets and this crate's unit tests
//! run the same code. Each must return normally on any input; a panic is a bug.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::rtp::{aac, h264, h265, MAX_MAX_PAYLOAD, MIN_MAX_PAYLOAD};
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

/// Packetize arbitrary bytes. Input: two bytes of maximum payload, one byte choosing the format (H.264 NAL,
/// H.265 NAL, AAC access unit), then the unit itself. Checks every payload fits and that fragments
/// reassemble to the input.
pub fn rtp_packetize(data: &[u8]) {
    let [a, b, format, unit @ ..] = data else {
        return;
    };
    let max_payload =
        usize::from(u16::from_be_bytes([*a, *b])).clamp(MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD);
    let unit = Bytes::copy_from_slice(unit);
    match format % 3 {
        0 => {
            let mut out = Vec::new();
            h264::packetize_nal(&unit, max_payload, &mut out);
            check_sizes(&out, max_payload);
            if unit.is_empty() {
                assert!(out.is_empty());
            } else if unit.len() > max_payload {
                match h264::reassemble_nal(&out) {
                    Ok(rebuilt) => assert_eq!(rebuilt, unit),
                    Err(e) => panic!("FU-A fragments do not reassemble: {e}"),
                }
            } else {
                assert_eq!(out, vec![unit]);
            }
        }
        1 => {
            let mut out = Vec::new();
            h265::packetize_nal(&unit, max_payload, &mut out);
            check_sizes(&out, max_payload);
            if unit.len() < 2 {
                assert!(out.is_empty());
            } else if unit.len() <= max_payload {
                assert_eq!(out, vec![unit]);
            } else {
                assert_eq!(reassemble_h265(&out).as_deref(), Some(&unit[..]));
            }
        }
        _ => {
            let mut out = Vec::new();
            match aac::packetize_au(&unit, max_payload, &mut out) {
                Err(_) => assert!(unit.len() > aac::MAX_AU_BYTES),
                Ok(()) => {
                    let payloads: Vec<Bytes> = out.iter().map(|p| p.bytes.clone()).collect();
                    check_sizes(&payloads, max_payload);
                    let mut rebuilt = Vec::new();
                    for (i, p) in out.iter().enumerate() {
                        assert_eq!(p.marker, i + 1 == out.len());
                        let [0, 16, hi, lo, rest @ ..] = p.bytes.as_ref() else {
                            panic!("bad AU header")
                        };
                        assert_eq!(usize::from(u16::from_be_bytes([*hi, *lo]) >> 3), unit.len());
                        rebuilt.extend_from_slice(rest);
                    }
                    assert_eq!(rebuilt, unit.to_vec());
                }
            }
        }
    }
}

fn check_sizes(payloads: &[Bytes], max_payload: usize) {
    assert!(
        payloads
            .iter()
            .all(|p| p.len() <= max_payload && !p.is_empty()),
        "payload over {max_payload}"
    );
}

/// Rebuild one H.265 NAL from FU payloads (RFC 7798 §4.4.3), or `None` if they are not a clean run.
fn reassemble_h265(payloads: &[Bytes]) -> Option<Vec<u8>> {
    let mut nal = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let [h0, h1, fu, body @ ..] = p.as_ref() else {
            return None;
        };
        if (h0 >> 1) & 0x3F != h265::FU
            || (fu & 0x80 != 0) != (i == 0)
            || (fu & 0x40 != 0) != (i + 1 == payloads.len())
        {
            return None;
        }
        if i == 0 {
            nal.push((h0 & 0x81) | ((fu & 0x3F) << 1));
            nal.push(*h1);
        }
        nal.extend_from_slice(body);
    }
    Some(nal)
}
