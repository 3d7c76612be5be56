//! Packet sources: a cursor over one track's samples, in decode order, yielding RTP payloads with their RTP
//! timestamps and send times. Sample bytes are read on demand, one sample at a time.
//!
//! Timing: presentation time = composition time (decode time + `ctts`) + the edit-list shift; the RTP
//! timestamp is presentation time in the RTP clock, modulo 2^32 (the server adds its random base), and the
//! send time is the shifted decode time (clamped at zero) so B-frames go out in decode order.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::hint::{join, parse_hint_sample, Constructor};
use crate::movie::{MediaKind, MovieTables, StreamPlan};
use crate::mp4::sample_entry::Codec;
use crate::rtp::nal::split_length_prefixed;
use crate::rtp::{
    aac, h264, h265, mp4v, mpa, Payload, DEFAULT_MAX_PAYLOAD, MAX_MAX_PAYLOAD, MIN_MAX_PAYLOAD,
};
use crate::MediaError;

/// Consecutive samples that may produce no packet (empty samples, empty hint samples) before the track is
/// treated as corrupt; real files have at most a handful.
pub const MAX_SAMPLES_WITHOUT_PACKETS: usize = 4096;

/// One RTP packet's worth of data; the server writes the 12-byte header (SSRC, seq, timestamp + base, PT, M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacketOut {
    /// Media (decode) time at which to send it, for pacing.
    pub send_time: Duration,
    /// RTP timestamp in clock-rate units (presentation time for video), random base not added.
    pub timestamp: u32,
    pub marker: bool,
    /// RTP payload only.
    pub payload: Bytes,
}

/// Options for [`crate::Movie::packets_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketOptions {
    /// Largest RTP payload in bytes (clamped to 64..=65000). Hint tracks carry their own sizes.
    pub max_payload: usize,
}

impl Default for PacketOptions {
    fn default() -> Self {
        PacketOptions {
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// Yields the RTP payloads of one track from a start position; reads sample bytes on demand.
pub struct PacketSource {
    tables: Arc<MovieTables>,
    plan: StreamPlan,
    max_payload: usize,
    next_sample: usize,
    queue: VecDeque<RtpPacketOut>,
    start: Duration,
    start_rtp_timestamp: u32,
}

impl std::fmt::Debug for PacketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSource")
            .field("track_id", &self.plan.track_id)
            .field("next_sample", &self.next_sample)
            .field("start", &self.start)
            .finish()
    }
}

impl PacketSource {
    pub(crate) fn new(
        tables: Arc<MovieTables>,
        plan_idx: usize,
        start: Duration,
        options: PacketOptions,
    ) -> Result<Self, MediaError> {
        let plan = tables
            .plans
            .get(plan_idx)
            .cloned()
            .ok_or(MediaError::NoSuchTrack { track_id: 0 })?;
        let track = tables
            .tracks
            .get(plan.track_idx)
            .ok_or(MediaError::NoSuchTrack {
                track_id: plan.track_id,
            })?;
        let samples = &track.samples;
        let wanted_pts = duration_to_media(start, track.timescale);
        let wanted_dts = wanted_pts.saturating_sub(track.edit_shift).max(0);
        let pts_of = |i: usize| {
            samples
                .composition_time(i)
                .unwrap_or(0)
                .saturating_add(track.edit_shift)
        };
        let mut first = if start.is_zero() {
            // From the top means the whole track, including samples an edit list places before zero (AAC
            // priming frames), which decoders need.
            0
        } else {
            samples.sample_at_decode_time(u64::try_from(wanted_dts).unwrap_or(0))
        };
        if plan.kind == MediaKind::Video || plan.hinted {
            first = samples.sync_at_or_before(first);
            // With B-frames a sync sample decoded before the wanted time can be presented after it: step back
            // to earlier sync samples. Bounded: `first` strictly decreases or the loop ends.
            while !plan.hinted && first > 0 && pts_of(first) > wanted_pts {
                let previous = samples.sync_at_or_before(first - 1);
                if previous >= first {
                    break;
                }
                first = previous;
            }
        }
        let past_end =
            !start.is_zero() && u64::try_from(wanted_dts).unwrap_or(0) >= samples.end_time();
        if past_end {
            // Nothing left to send; the position reported is the end of the track.
            let end = i64::try_from(samples.end_time())
                .unwrap_or(i64::MAX)
                .saturating_add(track.edit_shift);
            let actual = media_to_duration(end, track.timescale).min(start);
            let rtp = wrap_u32(i128::from(duration_to_media(actual, plan.clock_rate)));
            let max_payload = options.max_payload.clamp(MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD);
            let n_samples = samples.len();
            return Ok(PacketSource::at(
                tables,
                plan,
                max_payload,
                n_samples,
                actual,
                rtp,
            ));
        }
        let (start, start_rtp_timestamp) = if plan.hinted {
            // Hint samples are stamped in RTP units already (the hint track's timescale is its `tims` in
            // every writer we know; rescaling covers the others): the RTP time of this position is the
            // sample's own, unshifted time.
            let dts = samples
                .decode_time(first)
                .and_then(|t| i64::try_from(t).ok())
                .unwrap_or(0);
            let actual =
                media_to_duration(dts.saturating_add(track.edit_shift), track.timescale).min(start);
            (
                actual,
                rescale_wrapping(dts, track.timescale, plan.clock_rate),
            )
        } else {
            let pts = pts_of(first);
            let pts_time = media_to_duration(pts, track.timescale);
            if pts >= 0 && pts_time <= start {
                (
                    pts_time,
                    rescale_wrapping(pts, track.timescale, plan.clock_rate),
                )
            } else {
                // The first sample is presented before zero (priming) or, in odd files, after the wanted
                // time; keep the promise `start() <= requested` and give the RTP time of `start()` itself.
                let actual = pts_time.min(start);
                (
                    actual,
                    wrap_u32(i128::from(duration_to_media(actual, plan.clock_rate))),
                )
            }
        };
        let max_payload = options.max_payload.clamp(MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD);
        Ok(PacketSource::at(
            tables,
            plan,
            max_payload,
            first,
            start,
            start_rtp_timestamp,
        ))
    }

    fn at(
        tables: Arc<MovieTables>,
        plan: StreamPlan,
        max_payload: usize,
        next_sample: usize,
        start: Duration,
        start_rtp_timestamp: u32,
    ) -> Self {
        PacketSource {
            tables,
            plan,
            max_payload,
            next_sample,
            queue: VecDeque::new(),
            start,
            start_rtp_timestamp,
        }
    }

    /// RTP clock rate of this track (90000 for video, the sample rate for most audio).
    pub fn clock_rate(&self) -> u32 {
        self.plan.clock_rate
    }

    /// RTP payload type, as announced in the SDP.
    pub fn payload_type(&self) -> u8 {
        self.plan.payload_type
    }

    /// Media time of the first packet's sample; at or before the requested start.
    pub fn start(&self) -> Duration {
        self.start
    }

    /// RTP timestamp (base not added) of media time `start()`, for RTP-Info `rtptime`.
    pub fn start_rtp_timestamp(&self) -> u32 {
        self.start_rtp_timestamp
    }

    /// The next packet, or `None` at the end of the track.
    pub fn next_packet(&mut self) -> Result<Option<RtpPacketOut>, MediaError> {
        // Bounded: each turn consumes one sample, and at most MAX_SAMPLES_WITHOUT_PACKETS turns yield
        // nothing, so one call never walks a whole crafted track of empty samples.
        for _ in 0..=MAX_SAMPLES_WITHOUT_PACKETS {
            if let Some(packet) = self.queue.pop_front() {
                return Ok(Some(packet));
            }
            let n_samples = self
                .tables
                .tracks
                .get(self.plan.track_idx)
                .map_or(0, |t| t.samples.len());
            if self.next_sample >= n_samples {
                return Ok(None);
            }
            let i = self.next_sample;
            self.next_sample += 1;
            if self.plan.hinted {
                self.queue_hint_sample(i)?;
            } else {
                self.queue_media_sample(i)?;
            }
        }
        Err(MediaError::corrupt(
            format!("track {}", self.plan.track_id),
            0,
            format!(
                "{MAX_SAMPLES_WITHOUT_PACKETS} consecutive samples before sample {} carry no data",
                self.next_sample
            ),
        ))
    }

    fn queue_media_sample(&mut self, i: usize) -> Result<(), MediaError> {
        let tables = Arc::clone(&self.tables);
        let track = tables
            .tracks
            .get(self.plan.track_idx)
            .ok_or(MediaError::NoSuchTrack {
                track_id: self.plan.track_id,
            })?;
        let sample = tables.read_sample(self.plan.track_idx, i)?;
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
            self.plan.clock_rate,
        );
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
                let nals = split_length_prefixed(&sample, *length_size)
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
                    h264::packetize_nal(nal, self.max_payload, &mut pieces);
                }
                payloads.extend(mark_last(pieces));
            }
            Codec::H265 {
                length_size,
                vps,
                sps,
                pps,
            } => {
                let nals = split_length_prefixed(&sample, *length_size)
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
                    h265::packetize_nal(nal, self.max_payload, &mut pieces);
                }
                payloads.extend(mark_last(pieces));
            }
            Codec::Aac { .. } => aac::packetize_au(&sample, self.max_payload, &mut payloads)
                .map_err(|e| sample_error(e.to_string()))?,
            Codec::Mp4v { .. } => mp4v::packetize_frame(&sample, self.max_payload, &mut payloads),
            Codec::Mpa => mpa::packetize_frame(&sample, self.max_payload, &mut payloads)
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
        for p in payloads {
            self.queue.push_back(RtpPacketOut {
                send_time,
                timestamp,
                marker: p.marker,
                payload: p.bytes,
            });
        }
        Ok(())
    }

    fn queue_hint_sample(&mut self, i: usize) -> Result<(), MediaError> {
        let tables = Arc::clone(&self.tables);
        let hint_track = tables
            .tracks
            .get(self.plan.track_idx)
            .ok_or(MediaError::NoSuchTrack {
                track_id: self.plan.track_id,
            })?;
        let hint_sample = tables.read_sample(self.plan.track_idx, i)?;
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
        let packets = parse_hint_sample(&hint_sample, sample_offset)?;
        for packet in packets {
            let mut pieces = Vec::with_capacity(packet.constructors.len());
            for constructor in &packet.constructors {
                pieces.push(self.construct(
                    &tables,
                    i,
                    &hint_sample,
                    constructor,
                    sample_offset,
                )?);
            }
            let payload = join(pieces);
            if payload.is_empty() {
                continue;
            }
            let sample_rtp_time = rescale_wrapping(dts, hint_track.timescale, self.plan.clock_rate);
            // Offsets (relative_time, `rtpo`) are in RTP units; wrap as RTP timestamps do.
            let offset = u32::try_from(packet.timestamp_offset.rem_euclid(1i64 << 32)).unwrap_or(0);
            let timestamp = sample_rtp_time.wrapping_add(offset);
            self.queue.push_back(RtpPacketOut {
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
        &self,
        tables: &MovieTables,
        hint_sample_idx: usize,
        hint_sample: &Bytes,
        constructor: &Constructor,
        sample_offset: u64,
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
            .get(self.plan.track_idx)
            .ok_or(MediaError::NoSuchTrack {
                track_id: self.plan.track_id,
            })?;
        let referenced_track = |track_ref: i8| -> Result<usize, MediaError> {
            if track_ref == -1 {
                return Ok(self.plan.track_idx);
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
                if track_idx == self.plan.track_idx && idx == hint_sample_idx {
                    return slice_checked(hint_sample, *offset, *length).ok_or_else(|| {
                        corrupt(format!(
                            "bytes {offset}+{length} exceed the hint sample's {} bytes",
                            hint_sample.len()
                        ))
                    });
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

/// Media time `t` (in `timescale` units, possibly negative) as a `Duration`, negative clamped to zero.
pub(crate) fn media_to_duration(t: i64, timescale: u32) -> Duration {
    if t <= 0 || timescale == 0 {
        return Duration::ZERO;
    }
    let t = u128::from(t.unsigned_abs());
    let nanos = t * 1_000_000_000 / u128::from(timescale);
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Duration::new(secs, sub)
}

/// A `Duration` in `timescale` units, rounded down, saturating.
pub(crate) fn duration_to_media(d: Duration, timescale: u32) -> i64 {
    let units = d.as_nanos().saturating_mul(u128::from(timescale)) / 1_000_000_000;
    i64::try_from(units).unwrap_or(i64::MAX)
}

/// `t` in `from` units expressed in `to` units (floor), modulo 2^32: RTP timestamps wrap.
pub(crate) fn rescale_wrapping(t: i64, from: u32, to: u32) -> u32 {
    if from == 0 {
        return 0;
    }
    let scaled = (i128::from(t) * i128::from(to)).div_euclid(i128::from(from));
    wrap_u32(scaled)
}

fn wrap_u32(v: i128) -> u32 {
    u32::try_from(v.rem_euclid(1i128 << 32)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtp_timestamps_wrap_and_handle_negative_times() {
        assert_eq!(rescale_wrapping(12_800, 12_800, 90_000), 90_000);
        assert_eq!(rescale_wrapping(-1024, 44_100, 44_100), u32::MAX - 1023);
        assert_eq!(rescale_wrapping(1 << 40, 1, 1), 0);
    }

    #[test]
    fn media_time_conversions_round_down_and_clamp() {
        assert_eq!(media_to_duration(-5, 1000), Duration::ZERO);
        assert_eq!(media_to_duration(1500, 1000), Duration::from_millis(1500));
        assert_eq!(duration_to_media(Duration::from_millis(1999), 1), 1);
    }

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
