//! RTP payload format for H.265 (RFC 7798): single NAL unit packets (§4.4.1) and fragmentation units
//! (§4.4.3); aggregation packets are not emitted (parameter sets go as single NAL packets).

use bytes::{BufMut, Bytes, BytesMut};

/// NAL unit type of a fragmentation unit.
pub const FU: u8 = 49;
pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;

/// Type of an H.265 NAL unit (six bits after the forbidden bit of its 2-byte header).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| (h >> 1) & 0x3F)
}

/// True for IRAP pictures (BLA, IDR, CRA: types 16..=23), where in-band parameter sets are repeated.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// Append the payloads of one NAL unit to `out`: whole when it fits, else FUs of at most `max_payload`.
/// NALs shorter than the 2-byte header are dropped as malformed.
pub fn packetize_nal(nal: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let [h0, h1, body @ ..] = nal.as_ref() else {
        return;
    };
    if nal.len() <= max_payload {
        out.push(nal.clone());
        return;
    }
    // PayloadHdr copies F, LayerId and TID from the NAL header with Type = 49 (RFC 7798 §4.4.3).
    let payload_hdr0 = (h0 & 0x81) | (FU << 1);
    let nal_type = (h0 >> 1) & 0x3F;
    let chunk = max_payload.saturating_sub(3).max(1);
    let n_chunks = body.len().div_ceil(chunk);
    // One allocation for all fragments, as in `h264::packetize_nal`.
    let mut fragments =
        BytesMut::with_capacity(body.len().saturating_add(n_chunks.saturating_mul(3)));
    for (i, piece) in body.chunks(chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == n_chunks { 0x40 } else { 0 };
        fragments.put_u8(payload_hdr0);
        fragments.put_u8(*h1);
        fragments.put_u8(start | end | nal_type);
        fragments.put_slice(piece);
        out.push(fragments.split().freeze());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_idr_is_split_into_fus_with_type_49_and_original_type_in_fu_header() {
        let mut v = vec![19 << 1, 0x01]; // IDR_W_RADL, TID 1
        v.extend((0..4000).map(|i| (i % 253) as u8));
        let nal = Bytes::from(v);
        let mut out = Vec::new();
        packetize_nal(&nal, 1400, &mut out);
        assert_eq!(out.len(), 3);
        let mut rebuilt = vec![nal[0], nal[1]];
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 1400);
            assert_eq!(nal_type(p), Some(FU));
            assert_eq!(p[1], 0x01, "LayerId/TID copied");
            assert_eq!(p[2] & 0x3F, 19);
            assert_eq!(p[2] & 0x80 != 0, i == 0);
            assert_eq!(p[2] & 0x40 != 0, i == 2);
            rebuilt.extend_from_slice(&p[3..]);
        }
        assert_eq!(Bytes::from(rebuilt), nal);
    }

    #[test]
    fn small_nal_is_single_packet() {
        let nal = Bytes::from_static(&[0x40, 0x01, 1, 2, 3]);
        let mut out = Vec::new();
        packetize_nal(&nal, 1400, &mut out);
        assert_eq!(out, vec![nal]);
        assert_eq!(nal_type(&out[0]), Some(NAL_VPS));
    }
}
