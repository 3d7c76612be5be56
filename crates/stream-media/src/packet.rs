//! Packet sources: a cursor over one track's samples, in decode order, yielding RTP payloads with their RTP
//! timestamps and send times. The packets come from the movie's shared packet chunks (`crate::chunk`): a
//! source holds the chunk it is playing and an index into it, never its own copy of sample bytes.
//!
//! Timing: presentation time = composition time (decode time + `ctts`) + the edit-list shift; the RTP
//! timestamp is presentation time in the RTP clock, modulo 2^32 (the server adds its random base), and the
//! send time is the shifted decode time (clamped at zero) so B-frames go out in decode order.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::chunk::{build_chunk, ChunkKey, PacketChunk};
use crate::movie::{MediaKind, MovieTables, StreamPlan};
use crate::rtp::{DEFAULT_MAX_PAYLOAD, MAX_MAX_PAYLOAD, MIN_MAX_PAYLOAD};
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
    /// RTP payload only; shares memory with every other session's copy of this packet.
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

/// Yields the RTP payloads of one track from a start position, from the movie's shared packet chunks.
pub struct PacketSource {
    tables: Arc<MovieTables>,
    plan_idx: usize,
    plan: StreamPlan,
    max_payload: usize,
    /// Chunks come from the movie's cache; `false` builds a private one-sample chunk per sample (the
    /// unshared reference path, [`crate::Movie::packets_unshared`]).
    shared: bool,
    /// The next sample to enter once the current one's packets are out.
    next_sample: usize,
    /// The chunk holding the current sample; dropped on leaving it, at the end and after an error.
    chunk: Option<Arc<PacketChunk>>,
    /// Index in `chunk` of the next packet to yield, and the end of the current sample's packets.
    next_in_chunk: usize,
    sample_end_in_chunk: usize,
    /// Set at the end of the track and after an error: later calls yield `Ok(None)`.
    finished: bool,
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
        shared: bool,
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
        if crate::packetize::aggregates_aac(&tables, &plan) && first > 0 {
            // AUs travel several to a packet, grouped within each chunk: start with the packet
            // that carries the wanted one (as video starts at the keyframe before).
            let chunk_start = first - first % plan.samples_per_chunk.max(1);
            let sizes: Vec<usize> = (chunk_start..=first)
                .map(|i| samples.location(i).map_or(0, |(_, size)| size as usize))
                .collect();
            let max_payload = options.max_payload.clamp(MIN_MAX_PAYLOAD, MAX_MAX_PAYLOAD);
            first = chunk_start
                + crate::rtp::aac::group_start(&sizes, first - chunk_start, max_payload);
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
                (plan_idx, plan),
                max_payload,
                shared,
                n_samples,
                (actual, rtp),
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
            (plan_idx, plan),
            max_payload,
            shared,
            first,
            (start, start_rtp_timestamp),
        ))
    }

    fn at(
        tables: Arc<MovieTables>,
        (plan_idx, plan): (usize, StreamPlan),
        max_payload: usize,
        shared: bool,
        next_sample: usize,
        (start, start_rtp_timestamp): (Duration, u32),
    ) -> Self {
        PacketSource {
            tables,
            plan_idx,
            plan,
            max_payload,
            shared,
            next_sample,
            chunk: None,
            next_in_chunk: 0,
            sample_end_in_chunk: 0,
            finished: false,
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

    /// The next packet, or `None` at the end of the track. An error (a corrupt or unreadable sample) comes
    /// after the packets of the samples before it and ends the track: later calls return `Ok(None)`.
    pub fn next_packet(&mut self) -> Result<Option<RtpPacketOut>, MediaError> {
        if self.finished {
            return Ok(None);
        }
        let n_samples = self
            .tables
            .tracks
            .get(self.plan.track_idx)
            .map_or(0, |t| t.samples.len());
        // Bounded: each turn consumes one sample, and at most MAX_SAMPLES_WITHOUT_PACKETS turns yield
        // nothing, so one call never walks a whole crafted track of empty samples.
        for _ in 0..=MAX_SAMPLES_WITHOUT_PACKETS {
            if self.next_in_chunk < self.sample_end_in_chunk {
                let packet = self
                    .chunk
                    .as_ref()
                    .and_then(|chunk| chunk.packet(self.next_in_chunk));
                if let Some(packet) = packet {
                    self.next_in_chunk += 1;
                    return Ok(Some(packet.clone()));
                }
            }
            if self.next_sample >= n_samples {
                self.finish();
                return Ok(None);
            }
            let i = self.next_sample;
            self.next_sample += 1;
            if let Err(error) = self.enter_sample(i) {
                self.finish();
                return Err(error);
            }
        }
        self.finish();
        Err(MediaError::corrupt(
            format!("track {}", self.plan.track_id),
            0,
            format!(
                "{MAX_SAMPLES_WITHOUT_PACKETS} consecutive samples before sample {} carry no data",
                self.next_sample
            ),
        ))
    }

    /// Point the cursor at sample `i`'s packets, fetching (or building) its chunk when the current one
    /// does not hold it; the sample's error if it had one.
    fn enter_sample(&mut self, i: usize) -> Result<(), MediaError> {
        let chunk = match self.chunk.take() {
            Some(chunk) if chunk.covers(i) => chunk,
            left_behind => {
                // Let go of the old chunk first: if we were its last reader, its memory is freed now.
                drop(left_behind);
                self.fetch_chunk(i)
            }
        };
        let packets = chunk.sample(i);
        self.chunk = Some(chunk);
        match packets {
            Some(Ok(range)) => {
                self.next_in_chunk = range.start;
                self.sample_end_in_chunk = range.end;
                Ok(())
            }
            Some(Err(error)) => Err(error),
            // A chunk built for `i` always covers it; were it not so, the sample counts as empty.
            None => {
                self.next_in_chunk = 0;
                self.sample_end_in_chunk = 0;
                Ok(())
            }
        }
    }

    /// The chunk holding sample `i`: from the movie's cache when shared, else a private one of `i` alone
    /// (for AAC, of its chunk's span, within which AUs are grouped).
    fn fetch_chunk(&self, i: usize) -> Arc<PacketChunk> {
        let n_samples = self
            .tables
            .tracks
            .get(self.plan.track_idx)
            .map_or(0, |t| t.samples.len());
        let aggregated = crate::packetize::aggregates_aac(&self.tables, &self.plan);
        if !self.shared && !aggregated {
            return Arc::new(build_chunk(
                &self.tables,
                &self.plan,
                self.max_payload,
                i..i + 1,
            ));
        }
        let per_chunk = self.plan.samples_per_chunk.max(1);
        let chunk_no = i / per_chunk;
        let first = chunk_no * per_chunk;
        let samples = first..first.saturating_add(per_chunk).min(n_samples).max(i + 1);
        if !self.shared {
            // AAC groups AUs within a chunk's span: a private chunk covers the same span.
            return Arc::new(build_chunk(
                &self.tables,
                &self.plan,
                self.max_payload,
                samples,
            ));
        }
        let key = ChunkKey {
            plan_idx: self.plan_idx,
            // Hint tracks ignore the payload size: sessions asking for different sizes share their chunks.
            max_payload: if self.plan.hinted {
                0
            } else {
                self.max_payload
            },
            chunk_no,
        };
        self.tables.chunks.get_or_build(key, || {
            build_chunk(&self.tables, &self.plan, self.max_payload, samples)
        })
    }

    fn finish(&mut self) {
        self.finished = true;
        self.chunk = None;
        self.next_in_chunk = 0;
        self.sample_end_in_chunk = 0;
    }
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
}
