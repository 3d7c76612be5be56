//! RTCP we send and read (RFC 3550 §6): Sender Reports tying RTP time to wall-clock (NTP)
//! time, an SDES CNAME (a compound packet must carry one, §6.1), BYE at the end of a stream,
//! and the report blocks of clients' Receiver Reports (loss and jitter).
//!
//! Written by hand: the four layouts are fixed, we need only these, and writing them into
//! the session's reused buffer keeps RTCP off the allocator.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

const PT_SR: u8 = 200;
const PT_RR: u8 = 201;
const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
/// Seconds from the NTP era (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;
/// Packets we look at in one compound RTCP datagram; real ones hold two or three.
const MAX_PACKETS_PER_COMPOUND: usize = 16;

/// 64-bit NTP timestamp (RFC 3550 §4) of a wall-clock time.
pub fn ntp_timestamp(wallclock: SystemTime) -> u64 {
    let since_unix = wallclock.duration_since(UNIX_EPOCH).unwrap_or_default();
    let seconds = since_unix.as_secs().wrapping_add(NTP_UNIX_OFFSET_SECS);
    let fraction = (u64::from(since_unix.subsec_nanos()) << 32) / 1_000_000_000;
    (seconds << 32) | fraction
}

/// What one Sender Report says about a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ssrc: u32,
    pub ntp_timestamp: u64,
    pub rtp_timestamp: u32,
    pub packet_count: u32,
    pub octet_count: u32,
}

/// Appends an SR with no report blocks (we receive no RTP).
pub fn write_sender_report(buf: &mut BytesMut, info: &SenderInfo) {
    buf.put_u8(0x80);
    buf.put_u8(PT_SR);
    buf.put_u16(6); // 28 bytes = 7 words, minus one.
    buf.put_u32(info.ssrc);
    buf.put_u64(info.ntp_timestamp);
    buf.put_u32(info.rtp_timestamp);
    buf.put_u32(info.packet_count);
    buf.put_u32(info.octet_count);
}

/// Appends an SDES packet with one chunk holding a CNAME item.
pub fn write_sdes_cname(buf: &mut BytesMut, ssrc: u32, cname: &str) {
    // An SDES item holds at most 255 bytes.
    let cname = cname.as_bytes().get(..255).unwrap_or(cname.as_bytes());
    let item_len = u8::try_from(cname.len()).unwrap_or(u8::MAX);
    // ssrc + type + length + text + at least one zero byte, padded to 32 bits.
    let chunk_len = (4 + 2 + cname.len() + 1).next_multiple_of(4);
    buf.put_u8(0x81);
    buf.put_u8(PT_SDES);
    buf.put_u16((chunk_len / 4) as u16); // chunk_len <= 264, so this fits.
    buf.put_u32(ssrc);
    buf.put_u8(1); // CNAME
    buf.put_u8(item_len);
    buf.put_slice(cname);
    buf.put_bytes(0, chunk_len - 4 - 2 - cname.len());
}

/// Appends a BYE for one source.
pub fn write_bye(buf: &mut BytesMut, ssrc: u32) {
    buf.put_u8(0x81);
    buf.put_u8(PT_BYE);
    buf.put_u16(1);
    buf.put_u32(ssrc);
}

/// One reception report block (from a client's RR or SR) about one of our sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source reported on (ours).
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative packets lost (24-bit signed; negative with duplicates).
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in RTP timestamp units.
    pub jitter: u32,
}

/// Why an incoming datagram is not RTCP we can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    #[error("RTCP packet at offset {offset} is truncated")]
    Truncated { offset: usize },
    #[error("RTCP version {version} at offset {offset}, expected 2")]
    BadVersion { offset: usize, version: u8 },
}

/// Reads the report blocks of every SR/RR in a compound packet; other packet types are skipped.
pub fn report_blocks(datagram: &[u8]) -> Result<Vec<ReportBlock>, RtcpError> {
    let mut blocks = Vec::new();
    let mut offset = 0usize;
    for _ in 0..MAX_PACKETS_PER_COMPOUND {
        let Some(rest) = datagram.get(offset..) else {
            break;
        };
        if rest.is_empty() {
            break;
        }
        let Some([first, packet_type, len_hi, len_lo]) = rest.first_chunk::<4>().copied() else {
            return Err(RtcpError::Truncated { offset });
        };
        let version = first >> 6;
        if version != 2 {
            return Err(RtcpError::BadVersion { offset, version });
        }
        let report_count = usize::from(first & 0x1f);
        let packet_len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
        let packet = rest
            .get(..packet_len)
            .ok_or(RtcpError::Truncated { offset })?;
        let blocks_at = match packet_type {
            PT_RR => Some(8),
            PT_SR => Some(28),
            _ => None,
        };
        if let Some(blocks_at) = blocks_at {
            for index in 0..report_count {
                let at = blocks_at + index * 24;
                let block = packet.get(at..at + 24).ok_or(RtcpError::Truncated {
                    offset: offset + at,
                })?;
                blocks.push(parse_block(block));
            }
        }
        offset += packet_len;
    }
    Ok(blocks)
}

fn parse_block(block: &[u8]) -> ReportBlock {
    let byte = |at: usize| block.get(at).copied().unwrap_or(0);
    let word = |at: usize| u32::from_be_bytes([byte(at), byte(at + 1), byte(at + 2), byte(at + 3)]);
    // The cumulative count is 24-bit signed: place it in the top three bytes of an i32 and
    // shift back, which sign-extends.
    let cumulative_lost = i32::from_be_bytes([byte(5), byte(6), byte(7), 0]) >> 8;
    ReportBlock {
        ssrc: word(0),
        fraction_lost: byte(4),
        cumulative_lost,
        highest_seq: word(8),
        jitter: word(12),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ntp_of_unix_epoch_is_the_1900_offset() {
        assert_eq!(ntp_timestamp(UNIX_EPOCH), NTP_UNIX_OFFSET_SECS << 32);
        let half = ntp_timestamp(UNIX_EPOCH + Duration::from_millis(500));
        assert_eq!(half & 0xffff_ffff, 1 << 31);
    }

    #[test]
    fn sender_report_sdes_and_bye_have_consistent_lengths() {
        let mut buf = BytesMut::new();
        write_sender_report(
            &mut buf,
            &SenderInfo {
                ssrc: 7,
                ntp_timestamp: 1,
                rtp_timestamp: 2,
                packet_count: 3,
                octet_count: 4,
            },
        );
        assert_eq!(buf.len(), 28);
        write_sdes_cname(&mut buf, 7, "serval");
        write_bye(&mut buf, 7);
        // Walk the compound with the reader: every length field must land on the next header.
        assert_eq!(report_blocks(&buf), Ok(vec![]));
        assert_eq!(buf.len() % 4, 0);
        assert_eq!(&buf[28..30], &[0x81, PT_SDES]);
    }

    #[test]
    fn receiver_report_blocks_are_read() {
        // RR from SSRC 0x11111111 with one block about 0xDEADBEEF: 10% lost (25/256), cumulative -2.
        let mut rr = vec![0x81, PT_RR, 0, 7, 0x11, 0x11, 0x11, 0x11];
        rr.extend_from_slice(&[0xDE, 0xAD, 0xBE, 0xEF, 25, 0xFF, 0xFF, 0xFE]);
        rr.extend_from_slice(&[0, 0, 0x10, 0x00, 0, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0, 0]);
        let blocks = report_blocks(&rr).unwrap();
        assert_eq!(
            blocks,
            [ReportBlock {
                ssrc: 0xDEADBEEF,
                fraction_lost: 25,
                cumulative_lost: -2,
                highest_seq: 0x1000,
                jitter: 42
            }]
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(report_blocks(&[0x81, PT_RR, 0, 7, 1]).is_err());
        assert!(report_blocks(&[0x40, 0, 0, 0]).is_err());
        assert!(report_blocks(&[0x9f, PT_RR, 0, 1, 0, 0, 0, 0]).is_err());
        assert_eq!(report_blocks(&[]), Ok(vec![]));
    }
}
