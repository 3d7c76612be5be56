//! RTP payload format for MPEG audio (RFC 2250 §3.5, static payload type 14, 90 kHz clock): a 4-byte
//! header (16 bits must-be-zero, 16-bit fragment offset) before each frame or frame fragment.

use bytes::{BufMut, Bytes, BytesMut};

use super::Payload;

/// Static payload type of MPEG audio (RFC 3551 §6).
pub const PAYLOAD_TYPE: u8 = 14;
pub const CLOCK_RATE: u32 = 90_000;
const HEADER_BYTES: usize = 4;

/// A frame whose fragment offsets would not fit 16 bits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("MPEG audio frame of {0} bytes is too large for 16-bit fragment offsets")]
pub struct FrameTooLarge(pub usize);

/// Append the payloads of one MPEG audio frame (one sample).
pub fn packetize_frame(
    frame: &Bytes,
    max_payload: usize,
    out: &mut Vec<Payload>,
) -> Result<(), FrameTooLarge> {
    if frame.len() > usize::from(u16::MAX) {
        return Err(FrameTooLarge(frame.len()));
    }
    let chunk = max_payload.saturating_sub(HEADER_BYTES).max(1);
    let mut offset = 0usize;
    for piece in frame.chunks(chunk) {
        let frag_offset = u16::try_from(offset).map_err(|_| FrameTooLarge(frame.len()))?;
        let mut payload = BytesMut::with_capacity(HEADER_BYTES + piece.len());
        payload.put_u16(0);
        payload.put_u16(frag_offset);
        payload.put_slice(piece);
        // The marker of RFC 2250 audio flags a talkspurt start; a continuous file stream never sets it.
        out.push(Payload {
            marker: false,
            bytes: payload.freeze(),
        });
        offset += piece.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_gets_four_byte_header_with_zero_offset() {
        let frame = Bytes::from(vec![0xFF; 417]);
        let mut out = Vec::new();
        packetize_frame(&frame, 1400, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&out[0].bytes[..4], &[0, 0, 0, 0]);
        assert_eq!(out[0].bytes.len(), 421);
    }

    #[test]
    fn fragments_carry_byte_offsets() {
        let frame = Bytes::from(vec![1; 300]);
        let mut out = Vec::new();
        packetize_frame(&frame, 104, &mut out).unwrap();
        let offsets: Vec<u16> = out
            .iter()
            .map(|p| u16::from_be_bytes([p.bytes[2], p.bytes[3]]))
            .collect();
        assert_eq!(offsets, [0, 100, 200]);
    }
}
