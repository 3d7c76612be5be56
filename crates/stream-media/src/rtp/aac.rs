//! RTP payload format for AAC: RFC 3640 `mpeg4-generic`, mode AAC-hbr (sizelength=13, indexlength=3,
//! indexdeltalength=3). Consecutive access units share a packet up to the payload limit (§3.2.2: one
//! AU header each, AU-Index-delta 0 as they follow each other), which for 96 kbit/s stereo puts four
//! or five in each; an AU larger than a packet goes alone, fragmented (§3.2.3), every fragment
//! carrying the AU header with the full AU size.

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

/// Most AUs one packet carries: at 44.1 kHz, 8 frames are 186 ms of sound, so a lost packet costs
/// at most that much.
pub const MAX_AUS_PER_PACKET: usize = 8;

/// Payloads, each with the index of its first AU, and the AUs that failed, with theirs.
pub type Aggregated = (Vec<(usize, Payload)>, Vec<(usize, AuTooLarge)>);

/// Payloads for consecutive AUs, each with the index in `aus` of its first AU (a fragmented AU gives
/// several payloads with the same index). Empty AUs are skipped; an AU over [`MAX_AU_BYTES`] fails
/// alone and is reported with its index, the others are still packetized.
pub fn aggregate(aus: &[Bytes], max_payload: usize) -> Aggregated {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    let mut group_bytes = 2usize; // AU-headers-length
    let flush =
        |group: &mut Vec<usize>, group_bytes: &mut usize, out: &mut Vec<(usize, Payload)>| {
            let Some(&first) = group.first() else {
                return;
            };
            let mut payload = BytesMut::with_capacity(*group_bytes);
            payload.put_u16(u16::try_from(16 * group.len()).unwrap_or(u16::MAX));
            for &k in group.iter() {
                let size = aus.get(k).map_or(0, Bytes::len);
                payload.put_u16(u16::try_from(size << 3).unwrap_or(0));
            }
            for &k in group.iter() {
                if let Some(au) = aus.get(k) {
                    payload.put_slice(au);
                }
            }
            out.push((
                first,
                Payload {
                    marker: true,
                    bytes: payload.freeze(),
                },
            ));
            group.clear();
            *group_bytes = 2;
        };
    for (k, au) in aus.iter().enumerate() {
        if au.is_empty() {
            continue;
        }
        if au.len() > MAX_AU_BYTES {
            failed.push((k, AuTooLarge(au.len())));
            flush(&mut group, &mut group_bytes, &mut out);
            continue;
        }
        let fits_alone = 2 + 2 + au.len() <= max_payload;
        if !fits_alone {
            flush(&mut group, &mut group_bytes, &mut out);
            let mut pieces = Vec::new();
            // Cannot fail: the size was checked above.
            let _ = packetize_au(au, max_payload, &mut pieces);
            out.extend(pieces.into_iter().map(|p| (k, p)));
            continue;
        }
        if !joins_group(group.len(), group_bytes, au.len(), max_payload) {
            flush(&mut group, &mut group_bytes, &mut out);
        }
        group.push(k);
        group_bytes += 2 + au.len();
    }
    flush(&mut group, &mut group_bytes, &mut out);
    (out, failed)
}

/// Whether an AU of `au_len` bytes joins a group of `group_len` AUs taking `group_bytes` so far.
fn joins_group(group_len: usize, group_bytes: usize, au_len: usize, max_payload: usize) -> bool {
    group_len < MAX_AUS_PER_PACKET && group_bytes + 2 + au_len <= max_payload
}

/// The index of the AU whose packet carries AU `k`, for AUs of `sizes` grouped by [`aggregate`]
/// from index 0 (a seek into a group starts with the group's packet). Needs only the sizes, so
/// a source can find it from the sample table before any byte is read.
pub fn group_start(sizes: &[usize], k: usize, max_payload: usize) -> usize {
    let mut start = None;
    let mut group_len = 0;
    let mut group_bytes = 2;
    for (i, &size) in sizes.iter().enumerate().take(k.saturating_add(1)) {
        if size == 0 {
            continue;
        }
        let alone = size > MAX_AU_BYTES || 2 + 2 + size > max_payload;
        if alone || !joins_group(group_len, group_bytes, size, max_payload) {
            start = Some(i);
            group_len = 0;
            group_bytes = 2;
        }
        if start.is_none() {
            start = Some(i);
        }
        if alone {
            // Ends its own group: the next AU starts a new one.
            group_len = MAX_AUS_PER_PACKET;
        } else {
            group_len += 1;
            group_bytes += 2 + size;
        }
    }
    start.unwrap_or(k).min(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_aus_share_a_packet_up_to_the_limit() {
        let aus: Vec<Bytes> = (0..10u8).map(|k| Bytes::from(vec![k; 300])).collect();
        let (out, failed) = aggregate(&aus, 1400);
        assert!(failed.is_empty());
        // 2 + 4 * (2 + 300) = 1210 fits, a fifth would make 1512.
        let firsts: Vec<usize> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(firsts, [0, 4, 8]);
        let mut rebuilt = Vec::new();
        for (_, p) in &out {
            let b = &p.bytes;
            assert!(b.len() <= 1400 && p.marker);
            let n = usize::from(u16::from_be_bytes([b[0], b[1]])) / 16;
            let mut at = 2 + 2 * n;
            for h in 0..n {
                let header = u16::from_be_bytes([b[2 + 2 * h], b[3 + 2 * h]]);
                assert_eq!(header & 7, 0, "index and index-delta 0");
                let size = usize::from(header >> 3);
                rebuilt.push(b[at..at + size].to_vec());
                at += size;
            }
            assert_eq!(at, b.len());
        }
        assert_eq!(rebuilt, aus.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
    }

    #[test]
    fn group_start_agrees_with_aggregate() {
        let sizes = [
            300, 300, 0, 300, 300, 300, 3000, 100, 100, 9000, 50, 50, 50, 50, 50, 50, 50, 50, 50,
            50,
        ];
        let aus: Vec<Bytes> = sizes.iter().map(|&n| Bytes::from(vec![7; n])).collect();
        let (out, _) = aggregate(&aus, 1400);
        let firsts: Vec<usize> = out.iter().map(|(k, _)| *k).collect();
        for k in 0..sizes.len() {
            let start = group_start(&sizes, k, 1400);
            if sizes[k] > 0 && sizes[k] <= MAX_AU_BYTES {
                assert!(
                    firsts.contains(&start),
                    "AU {k}: group start {start} not in {firsts:?}"
                );
                let next = firsts
                    .iter()
                    .find(|&&f| f > start)
                    .copied()
                    .unwrap_or(usize::MAX);
                assert!(start <= k && k < next, "AU {k} in group {start}..{next}");
            }
        }
    }

    #[test]
    fn a_large_au_goes_alone_and_an_oversized_one_fails_alone() {
        let aus = vec![
            Bytes::from(vec![1; 100]),
            Bytes::from(vec![2; 3000]),
            Bytes::from(vec![3; 9000]),
            Bytes::new(),
            Bytes::from(vec![4; 100]),
            Bytes::from(vec![5; 100]),
        ];
        let (out, failed) = aggregate(&aus, 1400);
        assert_eq!(failed, vec![(2, AuTooLarge(9000))]);
        let firsts: Vec<usize> = out.iter().map(|(k, _)| *k).collect();
        assert_eq!(firsts, [0, 1, 1, 1, 4]);
        let markers: Vec<bool> = out.iter().map(|(_, p)| p.marker).collect();
        assert_eq!(markers, [true, false, false, true, true]);
    }

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
