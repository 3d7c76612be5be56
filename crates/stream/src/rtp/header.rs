//! The fixed RTP header (RFC 3550 §5.1) written in front of a payload from the media layer.
//!
//! Written by hand: twelve bytes with no options (no CSRC, no extension, no padding), into a
//! buffer the session reuses, which is shorter than a builder and allocates nothing.

use bytes::{BufMut, BytesMut};

/// Size of the header we write.
pub const RTP_HEADER_LEN: usize = 12;

/// Per-packet header fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub payload_type: u8,
    pub marker: bool,
    pub sequence_number: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// The header's twelve bytes.
    pub fn to_bytes(&self) -> [u8; RTP_HEADER_LEN] {
        let mut bytes = [0u8; RTP_HEADER_LEN];
        // V=2, P=0, X=0, CC=0.
        bytes[0] = 0x80;
        bytes[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7f);
        bytes[2..4].copy_from_slice(&self.sequence_number.to_be_bytes());
        bytes[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        bytes[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        bytes
    }

    /// Appends the header to `buf`.
    pub fn write(&self, buf: &mut BytesMut) {
        // V=2, P=0, X=0, CC=0.
        buf.put_u8(0x80);
        buf.put_u8((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        buf.put_u16(self.sequence_number);
        buf.put_u32(self.timestamp);
        buf.put_u32(self.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_rfc_3550() {
        let mut buf = BytesMut::new();
        RtpHeader {
            payload_type: 96,
            marker: true,
            sequence_number: 0x1234,
            timestamp: 0xAABBCCDD,
            ssrc: 0x01020304,
        }
        .write(&mut buf);
        assert_eq!(
            &buf[..],
            &[
                0x80,
                0x80 | 96,
                0x12,
                0x34,
                0xAA,
                0xBB,
                0xCC,
                0xDD,
                1,
                2,
                3,
                4
            ]
        );
        let mut buf = BytesMut::new();
        RtpHeader {
            payload_type: 97,
            marker: false,
            sequence_number: 1,
            timestamp: 2,
            ssrc: 3,
        }
        .write(&mut buf);
        assert_eq!(buf[1], 97);
    }
}
