//! One sample in, its RTP packets out: our packetizers for media tracks (NAL splitting, in-band parameter
//! sets, AAC/MP3/MPEG-4/Opus payload formats) and the recipe of a hint track's sample. Pure over the bytes
//! it is given, except that hint constructors read the media bytes they reference from the movie's source.
//! Packet chunks (`crate::chunk`) call this once per sample for every session sharing the chunk.

use bytes::Bytes;

use crate::hint::{join, parse_hint_sample, Constructor};
use crate::movie::{MovieTables, StreamPlan};
use crate::mp4::sample_entry::Codec;
use crate::packet::{media_to_duration, rescale_wrapping, RtpPacketOut};
use crate::rtp::nal::split_length_prefixed;
use crate::rtp::{aac, h264, h265, mp4v, mpa, Payload};
use crate::MediaError;

/// Append the packets of sample `i` (whose bytes are `sample`) of `plan`'s track to `out`. On error `out`
/// may hold some of the sample's packets; the caller discards them.
pub(crate) fn packetize_sample(
    tables: &MovieTables,
    plan: &StreamPlan,
    max_payload: usize,
    i: usize,
    sample: &Bytes,
    prefetched: Option<&Prefetched>,
    out: &mut Vec<RtpPacketOut>,
) -> Result<(), MediaError> {
    if plan.hinted {
        packetize_hint_sample(tables, plan, i, sample, prefetched, out)
    } else {
        packetize_media_sample(tables, plan, max_payload, i, sample, out)
    }
}

fn packetize_media_sample(
    tables: &MovieTables,
    plan: &StreamPlan,
    max_payload: usize,
    i: usize,
    sample: &Bytes,
    out: &mut Vec<RtpPacketOut>,
) -> Result<(), MediaError> {
    let track = tables
        .tracks
        .get(plan.track_idx)
        .ok_or(MediaError::NoSuchTrack {
            track_id: plan.track_id,
        })?;
    let (send_time, timestamp) = sample_timing(track, plan, i);
    let sample_error = |why: String| {
        let offset = track.samples.location(i).map_or(0, |(o, _)| o);
        MediaError::corrupt(
            format!("sample {} of track {}", i + 1, track.track_id),
            offset,
            why,
        )
    };
    let mut payloads: Vec<Payload> = Vec::new();
    match &track.entry.codec {
        Codec::H264 {
            length_size,
            sps,
            pps,
        } => {
            let nals = split_length_prefixed(sample, *length_size)
                .map_err(|e| sample_error(e.to_string()))?;
            let mut pieces = Vec::new();
            // In-band parameter sets before each IDR (as well as in SDP), so a client joining or seeking
            // mid-file decodes even if it ignored sprop-parameter-sets.
            let has_idr = nals
                .iter()
                .any(|n| h264::nal_type(n) == Some(h264::NAL_IDR));
            let has_sps = nals
                .iter()
                .any(|n| h264::nal_type(n) == Some(h264::NAL_SPS));
            let sets: Vec<&Bytes> = if has_idr && !has_sps {
                sps.iter().chain(pps.iter()).collect()
            } else {
                Vec::new()
            };
            let is_aud = |n: &Bytes| h264::nal_type(n) == Some(h264::NAL_AUD);
            for nal in with_parameter_sets(&nals, sets, is_aud) {
                h264::packetize_nal(nal, max_payload, &mut pieces);
            }
            payloads.extend(mark_last(pieces));
        }
        Codec::H265 {
            length_size,
            vps,
            sps,
            pps,
        } => {
            let nals = split_length_prefixed(sample, *length_size)
                .map_err(|e| sample_error(e.to_string()))?;
            let mut pieces = Vec::new();
            let has_irap = nals
                .iter()
                .any(|n| h265::nal_type(n).is_some_and(h265::is_irap));
            let has_vps = nals
                .iter()
                .any(|n| h265::nal_type(n) == Some(h265::NAL_VPS));
            let sets: Vec<&Bytes> = if has_irap && !has_vps {
                vps.iter().chain(sps.iter()).chain(pps.iter()).collect()
            } else {
                Vec::new()
            };
            let is_aud = |n: &Bytes| h265::nal_type(n) == Some(h265::NAL_AUD);
            for nal in with_parameter_sets(&nals, sets, is_aud) {
                h265::packetize_nal(nal, max_payload, &mut pieces);
            }
            payloads.extend(mark_last(pieces));
        }
        Codec::Aac { .. } => aac::packetize_au(sample, max_payload, &mut payloads)
            .map_err(|e| sample_error(e.to_string()))?,
        Codec::Mp4v { .. } => mp4v::packetize_frame(sample, max_payload, &mut payloads),
        Codec::Mpa => mpa::packetize_frame(sample, max_payload, &mut payloads)
            .map_err(|e| sample_error(e.to_string()))?,
        Codec::Opus { .. } => {
            // RFC 7587 §4.2: one Opus packet per RTP packet, never fragmented; Opus packets are at most
            // 1275 bytes per frame, so a larger one goes out whole (and IP fragments it).
            if !sample.is_empty() {
                payloads.push(Payload {
                    marker: false,
                    bytes: sample.clone(),
                });
            }
        }
        Codec::RtpHint { .. } | Codec::Unknown(_) => {
            return Err(MediaError::unsupported(format!(
                "track {} has no packetizer",
                track.track_id
            )))
        }
    }
    out.extend(payloads.into_iter().map(|p| RtpPacketOut {
        send_time,
        timestamp,
        marker: p.marker,
        payload: p.bytes,
    }));
    Ok(())
}

/// Send time (decode time) and RTP timestamp (presentation time, clock-rate units) of sample `i`.
fn sample_timing(
    track: &crate::mp4::track::Track,
    plan: &StreamPlan,
    i: usize,
) -> (std::time::Duration, u32) {
    let dts = track
        .samples
        .decode_time(i)
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(0);
    let pts = track.samples.composition_time(i).unwrap_or(dts);
    let send_time = media_to_duration(dts.saturating_add(track.edit_shift), track.timescale);
    let timestamp = rescale_wrapping(
        pts.saturating_add(track.edit_shift),
        track.timescale,
        plan.clock_rate,
    );
    (send_time, timestamp)
}

/// True when `plan` streams AAC through our packetizer, whose access units are aggregated
/// several to a packet ([`packetize_aac_run`]) rather than one sample at a time.
pub(crate) fn aggregates_aac(tables: &MovieTables, plan: &StreamPlan) -> bool {
    !plan.hinted
        && tables
            .tracks
            .get(plan.track_idx)
            .is_some_and(|t| matches!(t.entry.codec, Codec::Aac { .. }))
}

/// Packets of consecutive AAC samples `first..first + aus.len()`: for each sample, the index in
/// `out` of its first packet (samples whose AU rides in an earlier sample's packet own none), and
/// the samples that failed.
pub(crate) fn packetize_aac_run(
    tables: &MovieTables,
    plan: &StreamPlan,
    max_payload: usize,
    first: usize,
    aus: &[Bytes],
    out: &mut Vec<RtpPacketOut>,
) -> (Vec<usize>, Vec<(usize, MediaError)>) {
    let Some(track) = tables.tracks.get(plan.track_idx) else {
        return (vec![out.len(); aus.len()], Vec::new());
    };
    let (payloads, too_large) = aac::aggregate(aus, max_payload);
    let mut starts = Vec::with_capacity(aus.len());
    let mut payloads = payloads.into_iter().peekable();
    for k in 0..aus.len() {
        starts.push(out.len());
        while let Some((_, payload)) = payloads.next_if(|(owner, _)| *owner == k) {
            let (send_time, timestamp) = sample_timing(track, plan, first + k);
            out.push(RtpPacketOut {
                send_time,
                timestamp,
                marker: payload.marker,
                payload: payload.bytes,
            });
        }
    }
    let failures = too_large
        .into_iter()
        .map(|(k, error)| {
            let i = first + k;
            let offset = track.samples.location(i).map_or(0, |(o, _)| o);
            let error = MediaError::corrupt(
                format!("sample {} of track {}", i + 1, track.track_id),
                offset,
                error.to_string(),
            );
            (i, error)
        })
        .collect();
    (starts, failures)
}

fn packetize_hint_sample(
    tables: &MovieTables,
    plan: &StreamPlan,
    i: usize,
    hint_sample: &Bytes,
    prefetched: Option<&Prefetched>,
    out: &mut Vec<RtpPacketOut>,
) -> Result<(), MediaError> {
    let hint_track = tables
        .tracks
        .get(plan.track_idx)
        .ok_or(MediaError::NoSuchTrack {
            track_id: plan.track_id,
        })?;
    let sample_offset = hint_track.samples.location(i).map_or(0, |(o, _)| o);
    let dts = hint_track
        .samples
        .decode_time(i)
        .and_then(|t| i64::try_from(t).ok())
        .unwrap_or(0);
    let send_time = media_to_duration(
        dts.saturating_add(hint_track.edit_shift),
        hint_track.timescale,
    );
    let packets = parse_hint_sample(hint_sample, sample_offset)?;
    for packet in packets {
        let mut pieces = Vec::with_capacity(packet.constructors.len());
        for constructor in &packet.constructors {
            pieces.push(construct(
                tables,
                plan,
                (i, hint_sample),
                constructor,
                sample_offset,
                prefetched,
            )?);
        }
        let payload = join(pieces);
        if payload.is_empty() {
            continue;
        }
        let sample_rtp_time = rescale_wrapping(dts, hint_track.timescale, plan.clock_rate);
        // Offsets (relative_time, `rtpo`) are in RTP units; wrap as RTP timestamps do.
        let offset = u32::try_from(packet.timestamp_offset.rem_euclid(1i64 << 32)).unwrap_or(0);
        let timestamp = sample_rtp_time.wrapping_add(offset);
        out.push(RtpPacketOut {
            send_time,
            timestamp,
            marker: packet.marker,
            payload,
        });
    }
    Ok(())
}

/// The bytes one hint data constructor stands for.
fn construct(
    tables: &MovieTables,
    plan: &StreamPlan,
    (hint_sample_idx, hint_sample): (usize, &Bytes),
    constructor: &Constructor,
    sample_offset: u64,
    prefetched: Option<&Prefetched>,
) -> Result<Bytes, MediaError> {
    let corrupt = |why: String| {
        MediaError::corrupt(
            format!("hint sample {}", hint_sample_idx + 1),
            sample_offset,
            why,
        )
    };
    let hint_track = tables
        .tracks
        .get(plan.track_idx)
        .ok_or(MediaError::NoSuchTrack {
            track_id: plan.track_id,
        })?;
    let referenced_track = |track_ref: i8| -> Result<usize, MediaError> {
        if track_ref == -1 {
            return Ok(plan.track_idx);
        }
        let k = usize::try_from(track_ref)
            .map_err(|_| corrupt(format!("track reference {track_ref}")))?;
        let id = hint_track
            .hint_references
            .get(k)
            .ok_or_else(|| corrupt(format!("no track reference {k}")))?;
        tables
            .track_by_id(*id)
            .map(|(idx, _)| idx)
            .ok_or_else(|| corrupt(format!("referenced track {id} is missing")))
    };
    match constructor {
        Constructor::Immediate(bytes) => Ok(bytes.clone()),
        Constructor::Sample {
            track_ref,
            sample_number,
            offset,
            length,
        } => {
            let track_idx = referenced_track(*track_ref)?;
            let idx = sample_number
                .checked_sub(1)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| corrupt("sample number 0".into()))?;
            if track_idx == plan.track_idx && idx == hint_sample_idx {
                return slice_checked(hint_sample, *offset, *length).ok_or_else(|| {
                    corrupt(format!(
                        "bytes {offset}+{length} exceed the hint sample's {} bytes",
                        hint_sample.len()
                    ))
                });
            }
            if let Some(bytes) = prefetched.and_then(|p| {
                let (at, len) = media_range(tables, track_idx, idx, *offset, *length)?;
                p.slice(at, len)
            }) {
                return Ok(bytes);
            }
            // Only the referenced range is read (at most 64 KiB), never the whole sample: a crafted
            // hint track pointing many packets at big samples then costs little.
            tables.read_sample_range(track_idx, idx, *offset, *length)
        }
        Constructor::SampleDescription {
            track_ref,
            description_index,
            offset,
            length,
        } => {
            let track_idx = referenced_track(*track_ref)?;
            let track = tables
                .tracks
                .get(track_idx)
                .ok_or_else(|| corrupt("missing track".into()))?;
            let description = description_index
                .checked_sub(1)
                .and_then(|n| usize::try_from(n).ok())
                .and_then(|n| track.sample_descriptions.get(n))
                .ok_or_else(|| corrupt(format!("no sample description {description_index}")))?;
            slice_checked(description, *offset, *length).ok_or_else(|| {
                corrupt(format!(
                    "bytes {offset}+{length} exceed sample description {description_index}"
                ))
            })
        }
    }
}

/// Media bytes that a chunk's hint samples reference, read with one `pread` before they are
/// packetized: a chunk of 8 video hint samples makes ~100 constructors, each otherwise a read.
pub(crate) struct Prefetched {
    pub(crate) offset: u64,
    pub(crate) bytes: Bytes,
}

impl Prefetched {
    fn slice(&self, at: u64, len: u64) -> Option<Bytes> {
        let start = usize::try_from(at.checked_sub(self.offset)?).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= self.bytes.len()).then(|| self.bytes.slice(start..end))
    }
}

/// Largest span one prefetch reads.
pub(crate) const MAX_PREFETCH_BYTES: u64 = 16 * 1024 * 1024;

/// File offset and length of bytes `offset..offset + length` of sample `idx` of track
/// `track_idx`, when they lie inside the sample.
fn media_range(
    tables: &MovieTables,
    track_idx: usize,
    idx: usize,
    offset: u32,
    length: u16,
) -> Option<(u64, u64)> {
    let (sample_offset, size) = tables.tracks.get(track_idx)?.samples.location(idx)?;
    let end = u64::from(offset) + u64::from(length);
    (end <= u64::from(size)).then(|| (sample_offset + u64::from(offset), u64::from(length)))
}

/// Reads at once the media bytes the hint samples `hint_samples` (sample index, bytes) refer to,
/// when they lie close together (the span at most twice what is used, plus 64 KiB, as
/// interleaved files have them); `None` otherwise, and each constructor reads for itself.
/// `already_read` is a span of the file the caller holds (the hint samples' own span, which in an
/// interleaved file surrounds the media they name): when it covers every range, it is used as is.
pub(crate) fn prefetch_hint_media<'a>(
    tables: &MovieTables,
    plan: &StreamPlan,
    hint_samples: impl Iterator<Item = (usize, &'a Bytes)>,
    already_read: Option<Prefetched>,
) -> Option<Prefetched> {
    let hint_track = tables.tracks.get(plan.track_idx)?;
    let (mut low, mut high, mut used) = (u64::MAX, 0u64, 0u64);
    for (i, bytes) in hint_samples {
        let sample_offset = hint_track.samples.location(i).map_or(0, |(o, _)| o);
        let Ok(packets) = parse_hint_sample(bytes, sample_offset) else {
            continue;
        };
        for constructor in packets.iter().flat_map(|p| p.constructors.iter()) {
            let Constructor::Sample {
                track_ref,
                sample_number,
                offset,
                length,
            } = constructor
            else {
                continue;
            };
            let Some(id) = usize::try_from(*track_ref)
                .ok()
                .and_then(|k| hint_track.hint_references.get(k))
            else {
                continue;
            };
            let Some((track_idx, _)) = tables.track_by_id(*id) else {
                continue;
            };
            let Some(idx) = sample_number
                .checked_sub(1)
                .and_then(|n| usize::try_from(n).ok())
            else {
                continue;
            };
            if let Some((at, len)) = media_range(tables, track_idx, idx, *offset, *length) {
                low = low.min(at);
                high = high.max(at + len);
                used += len;
            }
        }
    }
    let span = high.checked_sub(low)?;
    if let Some(held) = already_read {
        let held_end = held
            .offset
            .saturating_add(crate::mp4::reader::usize_to_u64(held.bytes.len()));
        if low >= held.offset && high <= held_end {
            return Some(held);
        }
    }
    let in_file = high <= tables.source_len;
    if span == 0 || !in_file || span > MAX_PREFETCH_BYTES || span > 2 * used + 64 * 1024 {
        return None;
    }
    let bytes = tables.read_bytes(low, span).ok()?;
    Some(Prefetched { offset: low, bytes })
}

/// The NAL units of an access unit with `sets` inserted after a leading access unit delimiter, if any
/// (an AUD must stay first in its access unit).
fn with_parameter_sets<'a>(
    nals: &'a [Bytes],
    sets: Vec<&'a Bytes>,
    is_delimiter: impl Fn(&Bytes) -> bool,
) -> impl Iterator<Item = &'a Bytes> {
    let n_leading = usize::from(nals.first().is_some_and(is_delimiter));
    let (leading, rest) = nals.split_at(n_leading.min(nals.len()));
    leading.iter().chain(sets).chain(rest.iter())
}

fn slice_checked(bytes: &Bytes, offset: u32, length: u16) -> Option<Bytes> {
    let start = usize::try_from(offset).ok()?;
    let end = start.checked_add(usize::from(length))?;
    (end <= bytes.len()).then(|| bytes.slice(start..end))
}

/// Video payloads of one access unit: the marker goes on the last one (RFC 6184 §5.1, RFC 7798 §4.1).
fn mark_last(pieces: Vec<Bytes>) -> impl Iterator<Item = Payload> {
    let n = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(move |(i, bytes)| Payload {
            marker: i + 1 == n,
            bytes,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_sets_go_after_a_leading_access_unit_delimiter() {
        let aud = Bytes::from_static(&[0x09, 0xF0]);
        let idr = Bytes::from_static(&[0x65, 1]);
        let sps = Bytes::from_static(&[0x67, 2]);
        let is_aud = |n: &Bytes| h264::nal_type(n) == Some(h264::NAL_AUD);
        let nals = [aud.clone(), idr.clone()];
        let order: Vec<&Bytes> = with_parameter_sets(&nals, vec![&sps], is_aud).collect();
        assert_eq!(order, [&aud, &sps, &idr]);
        let nals = [idr.clone()];
        let order: Vec<&Bytes> = with_parameter_sets(&nals, vec![&sps], is_aud).collect();
        assert_eq!(order, [&sps, &idr]);
    }
}
