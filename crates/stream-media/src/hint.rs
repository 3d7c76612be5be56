//! RTP hint tracks (ISO 14496-12 §9.1, QuickTime "RTP hint"): each hint sample is a recipe for RTP packets
//! that the server follows instead of packetizing media itself, as Darwin Streaming Server did.
//!
//! Hint sample layout: `u16 packet_count, u16 reserved`, then per packet `i32 relative_time`, two RTP header
//! bytes (V/P/X/CC, M/PT), `u16 sequence seed`, `u16 flags` (bit 2 = extra TLVs follow, as written by
//! ffmpeg for `rtpo` timestamp offsets), `u16 entry_count`, optional TLVs, then `entry_count` 16-byte data
//! constructors: 0 no-op, 1 immediate (up to 14 bytes inline), 2 a byte range of a sample of this or a
//! referenced track, 3 a byte range of a sample description. No Rust crate parses these, hence this file.

use bytes::{Bytes, BytesMut};

use crate::mp4::reader::Reader;
use crate::MediaError;

/// Largest payload one hint packet may assemble (an RTP packet must fit a UDP datagram).
pub const MAX_HINT_PAYLOAD_BYTES: usize = 65_000;
/// Most data constructors in one hint packet; ffmpeg writes a handful.
pub const MAX_CONSTRUCTORS_PER_PACKET: u16 = 4096;

/// One RTP packet as a hint sample describes it, before its data is fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HintPacket {
    /// Added to the hint sample's time to get this packet's RTP timestamp (relative_time plus `rtpo`).
    pub timestamp_offset: i64,
    pub marker: bool,
    pub payload_type: u8,
    pub constructors: Vec<Constructor>,
}

/// Where a piece of packet payload comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constructor {
    Immediate(Bytes),
    /// `track_ref`: -1 = the hint track itself, k >= 0 = the k-th entry of `tref/hint` (0-based).
    /// `sample_number` is 1-based as in the file.
    Sample {
        track_ref: i8,
        sample_number: u32,
        offset: u32,
        length: u16,
    },
    SampleDescription {
        track_ref: i8,
        description_index: u32,
        offset: u32,
        length: u16,
    },
}

impl Constructor {
    pub fn len(&self) -> usize {
        match self {
            Constructor::Immediate(b) => b.len(),
            Constructor::Sample { length, .. } | Constructor::SampleDescription { length, .. } => {
                usize::from(*length)
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Parse one hint sample into its packets. `sample_offset` is its file offset, for error messages.
pub fn parse_hint_sample(sample: &[u8], sample_offset: u64) -> Result<Vec<HintPacket>, MediaError> {
    let mut r = Reader::new(sample, sample_offset, "RTP hint sample");
    let packet_count = r.u16()?;
    r.skip(2)?;
    // Each packet takes at least 12 bytes, so a lying count cannot make us allocate much.
    let mut packets = Vec::with_capacity(usize::from(packet_count).min(r.remaining() / 12));
    for _ in 0..packet_count {
        let relative_time = r.i32()?;
        let _vpxcc = r.u8()?;
        let m_pt = r.u8()?;
        let _sequence_seed = r.u16()?;
        let flags = r.u16()?;
        let entry_count = r.u16()?;
        if entry_count > MAX_CONSTRUCTORS_PER_PACKET {
            return Err(MediaError::LimitExceeded {
                what: "constructors in one hint packet",
                value: u64::from(entry_count),
                limit: u64::from(MAX_CONSTRUCTORS_PER_PACKET),
            });
        }
        let mut rtp_offset: i64 = 0;
        if flags & 0x0004 != 0 {
            rtp_offset = read_extra_tlvs(&mut r)?;
        }
        let mut constructors = Vec::with_capacity(usize::from(entry_count).min(r.remaining() / 16));
        let mut total = 0usize;
        for _ in 0..entry_count {
            let entry = r.array::<16>()?;
            let constructor = parse_constructor(&entry, r.offset())?;
            total = total.saturating_add(constructor.as_ref().map_or(0, Constructor::len));
            if total > MAX_HINT_PAYLOAD_BYTES {
                return Err(MediaError::LimitExceeded {
                    what: "hint packet payload bytes",
                    value: super::mp4::reader::usize_to_u64(total),
                    limit: super::mp4::reader::usize_to_u64(MAX_HINT_PAYLOAD_BYTES),
                });
            }
            if let Some(c) = constructor.filter(|c| !c.is_empty()) {
                constructors.push(c);
            }
        }
        packets.push(HintPacket {
            timestamp_offset: i64::from(relative_time) + rtp_offset,
            marker: m_pt & 0x80 != 0,
            payload_type: m_pt & 0x7F,
            constructors,
        });
    }
    Ok(packets)
}

/// The extra-information TLVs after a packet header: a total length, then boxes; we use `rtpo`.
fn read_extra_tlvs(r: &mut Reader<'_>) -> Result<i64, MediaError> {
    let at = r.offset();
    let total = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    let body_len = total
        .checked_sub(4)
        .ok_or_else(|| MediaError::corrupt("hint extra TLV", at, "length below 4"))?;
    let body = r.bytes(body_len)?;
    let mut offset = 0;
    for tlv in crate::mp4::reader::Boxes::new(body, at + 4) {
        let tlv = tlv?;
        if &tlv.kind.0 == b"rtpo" {
            offset = i64::from(tlv.reader("rtpo").i32()?);
        }
    }
    Ok(offset)
}

fn parse_constructor(entry: &[u8; 16], offset: u64) -> Result<Option<Constructor>, MediaError> {
    let mut r = Reader::new(entry, offset, "hint data constructor");
    let source = r.u8()?;
    Ok(match source {
        0 => None,
        1 => {
            let count = usize::from(r.u8()?);
            let data = r.bytes(count.min(14))?;
            if count > 14 {
                return Err(MediaError::corrupt(
                    "hint immediate",
                    offset,
                    format!("{count} bytes do not fit in 14"),
                ));
            }
            Some(Constructor::Immediate(Bytes::copy_from_slice(data)))
        }
        2 => {
            let track_ref = i8::from_be_bytes([r.u8()?]);
            let length = r.u16()?;
            let sample_number = r.u32()?;
            let sample_offset = r.u32()?;
            // bytes_per_block / samples_per_block: only 1/1 (or unset) is used by writers since QuickTime 4.
            Some(Constructor::Sample {
                track_ref,
                sample_number,
                offset: sample_offset,
                length,
            })
        }
        3 => {
            let track_ref = i8::from_be_bytes([r.u8()?]);
            let length = r.u16()?;
            let description_index = r.u32()?;
            let description_offset = r.u32()?;
            Some(Constructor::SampleDescription {
                track_ref,
                description_index,
                offset: description_offset,
                length,
            })
        }
        other => {
            return Err(MediaError::corrupt(
                "hint constructor",
                offset,
                format!("unknown source {other}"),
            ))
        }
    })
}

/// Concatenate pieces into one payload without copying when there is a single piece.
pub fn join(pieces: Vec<Bytes>) -> Bytes {
    match <[Bytes; 1]>::try_from(pieces) {
        Ok([one]) => one,
        Err(pieces) => {
            let mut out = BytesMut::with_capacity(pieces.iter().map(Bytes::len).sum());
            for p in pieces {
                out.extend_from_slice(&p);
            }
            out.freeze()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet_header(relative_time: i32, m_pt: u8, flags: u16, entries: u16) -> Vec<u8> {
        let mut v = relative_time.to_be_bytes().to_vec();
        v.extend([0x80, m_pt]);
        v.extend(7u16.to_be_bytes());
        v.extend(flags.to_be_bytes());
        v.extend(entries.to_be_bytes());
        v
    }

    #[test]
    fn parses_immediate_and_sample_constructors_with_rtpo() {
        let mut s = vec![0, 1, 0, 0];
        s.extend(packet_header(0, 0x80 | 96, 4, 2));
        s.extend(16u32.to_be_bytes());
        s.extend(12u32.to_be_bytes());
        s.extend(b"rtpo");
        s.extend((-3600i32).to_be_bytes());
        let mut imm = vec![1, 2, 0x7C, 0x85];
        imm.resize(16, 0);
        s.extend(imm);
        let mut sample = vec![2, 0];
        sample.extend(1000u16.to_be_bytes());
        sample.extend(5u32.to_be_bytes());
        sample.extend(27u32.to_be_bytes());
        sample.extend([0, 1, 0, 1]);
        s.extend(sample);
        let packets = parse_hint_sample(&s, 0).unwrap();
        assert_eq!(
            packets,
            vec![HintPacket {
                timestamp_offset: -3600,
                marker: true,
                payload_type: 96,
                constructors: vec![
                    Constructor::Immediate(Bytes::from_static(&[0x7C, 0x85])),
                    Constructor::Sample {
                        track_ref: 0,
                        sample_number: 5,
                        offset: 27,
                        length: 1000
                    },
                ],
            }]
        );
    }

    #[test]
    fn lying_packet_count_is_an_error_not_a_hang() {
        let s = [0xFF, 0xFF, 0, 0, 1, 2, 3];
        assert!(matches!(
            parse_hint_sample(&s, 0),
            Err(MediaError::Truncated { .. })
        ));
    }

    #[test]
    fn oversized_immediate_count_is_corrupt() {
        let mut s = vec![0, 1, 0, 0];
        s.extend(packet_header(0, 96, 0, 1));
        let mut imm = vec![1, 15];
        imm.resize(16, 0);
        s.extend(imm);
        assert!(matches!(
            parse_hint_sample(&s, 0),
            Err(MediaError::Corrupt { .. })
        ));
    }
}
