//! RTP payload format for MPEG-4 Part 2 visual (RFC 6416 `MP4V-ES`): a VOP per packet when it fits, else
//! split across packets (§5.1 allows a VOP to be fragmented); the marker ends the VOP. The decoder
//! configuration (VOS/VO/VOL headers) travels in SDP `config=`.

use bytes::Bytes;

use super::Payload;

/// `profile-level-id` from the visual_object_sequence header (`00 00 01 B0 <level>`) if the config has one;
/// RFC 6416 §7.1 says to assume 1 (Simple Profile/Level 1) when absent.
pub fn profile_level_id(config: &[u8]) -> u8 {
    config
        .windows(5)
        .find(|w| w.starts_with(&[0, 0, 1, 0xB0]))
        .and_then(|w| w.get(4).copied())
        .unwrap_or(1)
}

/// Append the payloads of one VOP (sample).
pub fn packetize_frame(frame: &Bytes, max_payload: usize, out: &mut Vec<Payload>) {
    let chunk = max_payload.max(1);
    let n_chunks = frame.len().div_ceil(chunk);
    for i in 0..n_chunks {
        let start = i * chunk;
        let end = (start + chunk).min(frame.len());
        out.push(Payload {
            marker: i + 1 == n_chunks,
            bytes: frame.slice(start..end),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_is_split_and_marker_ends_it() {
        let frame = Bytes::from(vec![7u8; 3000]);
        let mut out = Vec::new();
        packetize_frame(&frame, 1400, &mut out);
        assert_eq!(
            out.iter().map(|p| p.bytes.len()).collect::<Vec<_>>(),
            [1400, 1400, 200]
        );
        assert_eq!(
            out.iter().map(|p| p.marker).collect::<Vec<_>>(),
            [false, false, true]
        );
    }

    #[test]
    fn profile_level_from_vos_header() {
        assert_eq!(
            profile_level_id(&[0, 0, 1, 0xB0, 0xF5, 0, 0, 1, 0xB5]),
            0xF5
        );
        assert_eq!(profile_level_id(&[0, 0, 1, 0xB5]), 1);
    }
}
