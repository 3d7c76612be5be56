//! RTP payload format for AAC: RFC 3640 `mpeg4-generic`, mode AAC-hbr (sizelength=13, indexlength=3,
//! indexdeltalength=3). One access unit per packet; an AU larger than a packet is fragmented (§3.2.3),
//! every fragment carrying the AU header with the full AU size.

use bytes::{BufMut, Bytes, BytesMut};

use super::Payload;

/// Largest AU the 13-bit AU-size field can describe.
pub const MAX_AU_BYTES: usize = (1 << 13) - 1;
/// AU-headers-length (2 bytes) plus one 16-bit AU header.
pub const HEADER_BYTES: usize = 4;

/// The `a=fmtp` parameters after the payload type, for an AudioSpecificConfig.
pub fn fmtp(config: &[u8]) -> String {
    format!(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={}",
        hex::encode(config)
    )
}

/// An AU too big for AAC-hbr's size field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("AAC access unit of {0} bytes exceeds the {MAX_AU_BYTES}-byte limit of AAC-hbr")]
pub struct AuTooLarge(pub usize);

/// Append the payloads carrying one AAC access unit. The marker is set on the packet that completes the AU
/// (RFC 3640 §3.2.3: M=1 on the last fragment or on a packet of whole AUs). Empty AUs produce nothing.
pub fn packetize_au(
    au: &Bytes,
    max_payload: usize,
    out: &mut Vec<Payload>,
) -> Result<(), AuTooLarge> {
    if au.is_empty() {
        return Ok(());
    }
    if au.len() > MAX_AU_BYTES {
        return Err(AuTooLarge(au.len()));
    }
    let size_field = u16::try_from(au.len() << 3).map_err(|_| AuTooLarge(au.len()))?; // index 0 in low 3 bits
    let chunk = max_payload.saturating_sub(HEADER_BYTES).max(1);
    let n_chunks = au.len().div_ceil(chunk);
    for (i, piece) in au.chunks(chunk).enumerate() {
        let mut payload = BytesMut::with_capacity(HEADER_BYTES + piece.len());
        payload.put_u16(16); // AU-headers-length in bits: one 16-bit header
        payload.put_u16(size_field);
        payload.put_slice(piece);
        out.push(Payload {
            marker: i + 1 == n_chunks,
            bytes: payload.freeze(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_au_per_packet_with_au_header_and_marker() {
        let au = Bytes::from(vec![0xAB; 371]);
        let mut out = Vec::new();
        packetize_au(&au, 1400, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        let p = &out[0].bytes;
        assert_eq!(&p[..2], &[0x00, 0x10], "AU-headers-length = 16 bits");
        assert_eq!(u16::from_be_bytes([p[2], p[3]]) >> 3, 371, "AU-size");
        assert_eq!(p[3] & 0x07, 0, "AU-Index 0");
        assert_eq!(&p[4..], &au[..]);
        assert!(out[0].marker);
    }

    #[test]
    fn large_au_is_fragmented_with_full_size_in_every_header() {
        let au = Bytes::from((0..3000).map(|i| (i % 256) as u8).collect::<Vec<u8>>());
        let mut out = Vec::new();
        packetize_au(&au, 1400, &mut out).unwrap();
        assert_eq!(out.len(), 3);
        let mut rebuilt = Vec::new();
        for (i, p) in out.iter().enumerate() {
            assert!(p.bytes.len() <= 1400);
            assert_eq!(u16::from_be_bytes([p.bytes[2], p.bytes[3]]) >> 3, 3000);
            assert_eq!(p.marker, i == 2, "marker only on the last fragment");
            rebuilt.extend_from_slice(&p.bytes[4..]);
        }
        assert_eq!(rebuilt, au.to_vec());
    }

    #[test]
    fn au_over_13_bits_is_refused() {
        let mut out = Vec::new();
        assert_eq!(
            packetize_au(&Bytes::from(vec![0; 8192]), 1400, &mut out),
            Err(AuTooLarge(8192))
        );
        assert!(out.is_empty());
    }

    #[test]
    fn fmtp_lists_aac_hbr_parameters_and_config_hex() {
        assert_eq!(
            fmtp(&[0x12, 0x10]),
            "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210"
        );
    }
}
