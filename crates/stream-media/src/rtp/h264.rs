//! RTP payload format for H.264 (RFC 6184), packetization-mode 1: single NAL unit packets (§5.6) for NALs
//! that fit, FU-A fragments (§5.8) for those that do not. STAP-A is not emitted: in-band SPS/PPS are sent
//! as their own small packets, which every receiver accepts.

use bytes::{BufMut, Bytes, BytesMut};

/// NAL unit type of a FU-A packet.
pub const FU_A: u8 = 28;
pub const NAL_IDR: u8 = 5;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// Type of a NAL unit (low five bits of its header byte).
pub fn nal_type(nal: &[u8]) -> Option<u8> {
    nal.first().map(|h| h & 0x1F)
}

/// Append the payloads of one NAL unit to `out`: the NAL itself when it fits in `max_payload`, else FU-A
/// fragments of at most `max_payload` bytes each. Empty NALs produce nothing.
pub fn packetize_nal(nal: &Bytes, max_payload: usize, out: &mut Vec<Bytes>) {
    let Some((&header, body)) = nal.split_first() else {
        return;
    };
    if nal.len() <= max_payload {
        out.push(nal.clone());
        return;
    }
    // FU indicator keeps F and NRI of the NAL header; the FU header carries its type (RFC 6184 §5.8).
    let indicator = (header & 0xE0) | FU_A;
    let nal_type = header & 0x1F;
    let chunk = max_payload.saturating_sub(2).max(1);
    let n_chunks = body.len().div_ceil(chunk);
    // One allocation for all fragments, split off in turn: they share one buffer and one reference count
    // instead of a heap block each.
    let mut fragments =
        BytesMut::with_capacity(body.len().saturating_add(n_chunks.saturating_mul(2)));
    for (i, piece) in body.chunks(chunk).enumerate() {
        let start = if i == 0 { 0x80 } else { 0 };
        let end = if i + 1 == n_chunks { 0x40 } else { 0 };
        fragments.put_u8(indicator);
        fragments.put_u8(start | end | nal_type);
        fragments.put_slice(piece);
        out.push(fragments.split().freeze());
    }
}

/// Why a sequence of FU-A payloads does not rebuild one NAL unit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassemblyError {
    #[error("no payloads")]
    Empty,
    #[error("payload {0} is not a FU-A packet")]
    NotFuA(usize),
    #[error("payload {0} has wrong start/end bits")]
    BadBoundary(usize),
}

/// Rebuild a NAL unit from either one single-NAL payload or a complete run of FU-A payloads
/// (the inverse of [`packetize_nal`]; used by tests and the fuzz target to check round trips).
pub fn reassemble_nal(payloads: &[Bytes]) -> Result<Bytes, ReassemblyError> {
    let (first, rest) = payloads.split_first().ok_or(ReassemblyError::Empty)?;
    if nal_type(first) != Some(FU_A) {
        return if rest.is_empty() {
            Ok(first.clone())
        } else {
            Err(ReassemblyError::NotFuA(1))
        };
    }
    let mut nal = BytesMut::new();
    for (i, p) in payloads.iter().enumerate() {
        let [indicator, fu_header, body @ ..] = p.as_ref() else {
            return Err(ReassemblyError::NotFuA(i));
        };
        if indicator & 0x1F != FU_A {
            return Err(ReassemblyError::NotFuA(i));
        }
        let is_start = fu_header & 0x80 != 0;
        let is_end = fu_header & 0x40 != 0;
        if is_start != (i == 0) || is_end != (i + 1 == payloads.len()) {
            return Err(ReassemblyError::BadBoundary(i));
        }
        if i == 0 {
            nal.put_u8((indicator & 0xE0) | (fu_header & 0x1F));
        }
        nal.put_slice(body);
    }
    Ok(nal.freeze())
}

/// `profile-level-id` for SDP (RFC 6184 §8.1): profile_idc, constraint flags and level_idc from the SPS.
pub fn profile_level_id(sps: &[u8]) -> Option<String> {
    let [_, profile, constraints, level, ..] = sps else {
        return None;
    };
    Some(format!("{profile:02x}{constraints:02x}{level:02x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nal(len: usize, header: u8) -> Bytes {
        let mut v = vec![header];
        v.extend((1..len).map(|i| (i % 251) as u8));
        Bytes::from(v)
    }

    #[test]
    fn small_nal_is_sent_whole_as_a_single_nal_unit_packet() {
        let n = nal(100, 0x65);
        let mut out = Vec::new();
        packetize_nal(&n, 1400, &mut out);
        assert_eq!(out, vec![n]);
    }

    #[test]
    fn nal_of_exactly_max_payload_is_not_fragmented() {
        let n = nal(1400, 0x41);
        let mut out = Vec::new();
        packetize_nal(&n, 1400, &mut out);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn large_idr_is_split_into_fu_a_with_start_and_end_bits() {
        let n = nal(5000, 0x65); // NRI 3, type 5 (IDR)
        let mut out = Vec::new();
        packetize_nal(&n, 1400, &mut out);
        // 4999 body bytes in chunks of 1398.
        assert_eq!(out.len(), 4);
        for (i, p) in out.iter().enumerate() {
            assert!(p.len() <= 1400);
            assert_eq!(p[0], 0x60 | FU_A, "FU indicator keeps NRI and has type 28");
            assert_eq!(p[1] & 0x1F, 5, "FU header carries the NAL type");
            assert_eq!(p[1] & 0x80 != 0, i == 0, "S bit only on the first fragment");
            assert_eq!(p[1] & 0x40 != 0, i == 3, "E bit only on the last fragment");
            assert_eq!(p[1] & 0x20, 0, "R bit is zero");
        }
        assert_eq!(out[0].len(), 1400);
        assert_eq!(out[3].len(), 2 + 4999 - 3 * 1398);
        assert_eq!(reassemble_nal(&out).unwrap(), n);
    }

    #[test]
    fn fragment_boundaries_cover_the_body_once() {
        let n = nal(1401, 0x41);
        let mut out = Vec::new();
        packetize_nal(&n, 1400, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].len() - 2 + out[1].len() - 2, 1400);
    }

    #[test]
    fn profile_level_id_comes_from_sps_bytes() {
        assert_eq!(
            profile_level_id(&[0x67, 0x64, 0x00, 0x1e, 0xac]).as_deref(),
            Some("64001e")
        );
        assert_eq!(profile_level_id(&[0x67, 0x64]), None);
    }
}
