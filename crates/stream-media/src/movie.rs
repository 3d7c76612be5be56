//! The public face of a demuxed movie: track list, default track selection, SDP and packet sources.
//!
//! Selection follows Darwin Streaming Server where it can: a usable RTP hint track is preferred for its
//! media kind; otherwise the first playable video and the first playable audio track are packetized here.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::chunk::{samples_per_chunk, ChunkCache};
use crate::hint::parse_hint_sample;
use crate::mp4::reader::FourCc;
use crate::mp4::sample_entry::Codec;
use crate::mp4::track::Track;
use crate::mp4::{parse_movie, ParsedMovie};
use crate::packet::{media_to_duration, PacketOptions};
use crate::{MediaError, PacketSource, ReadAt};

/// What a track carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Video,
    Audio,
    Hint,
    Other,
}

/// One track of the file, as listed for logs and for choosing what to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    pub track_id: u32,
    pub kind: MediaKind,
    /// "h264", "h265", "aac", "mp4v", "mp3", "opus", "rtp hint", or the sample entry's four-cc.
    pub codec: String,
    pub duration: Duration,
    pub n_samples: u32,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    /// ISO 639-2/T language (`eng`, `fra`), when the file names one.
    pub language: Option<String>,
    /// `Err(reason)` when this track cannot be streamed.
    pub playable: Result<(), String>,
}

/// How one selected track is streamed.
#[derive(Debug, Clone)]
pub(crate) struct StreamPlan {
    /// The track ID announced in SDP (`a=control:trackID=`): the hint track's for hinted streams.
    pub track_id: u32,
    /// Index into `MovieTables::tracks` of the track whose samples drive the stream (hint or media track).
    pub track_idx: usize,
    /// The media kind the stream carries (a hint track's referenced media).
    pub kind: MediaKind,
    pub payload_type: u8,
    pub clock_rate: u32,
    pub hinted: bool,
    /// Samples per shared packet chunk (at least 1), see `crate::chunk::samples_per_chunk`.
    pub samples_per_chunk: usize,
}

/// Parsed tables shared by the movie and all its packet sources.
pub(crate) struct MovieTables {
    pub source: Arc<dyn ReadAt>,
    /// The source's length when the movie was opened: coalesced chunk reads past it are not tried (a
    /// crafted table would make them allocate for nothing), each sample is then read alone.
    pub source_len: u64,
    pub tracks: Vec<Track>,
    pub movie_hint_sdp: Option<String>,
    pub plans: Vec<StreamPlan>,
    /// Packet chunks that some source of this movie is playing, shared by all of them.
    pub chunks: ChunkCache,
}

impl MovieTables {
    pub fn track_by_id(&self, track_id: u32) -> Option<(usize, &Track)> {
        self.tracks
            .iter()
            .enumerate()
            .find(|(_, t)| t.track_id == track_id)
    }

    /// Read `length` bytes at `offset` within sample `i` of track `track_idx`, checked against the sample.
    pub fn read_sample_range(
        &self,
        track_idx: usize,
        i: usize,
        offset: u32,
        length: u16,
    ) -> Result<Bytes, MediaError> {
        let track = self
            .tracks
            .get(track_idx)
            .ok_or(MediaError::NoSuchTrack { track_id: 0 })?;
        let (sample_offset, size) = track.samples.location(i).ok_or_else(|| {
            MediaError::corrupt(
                "hint",
                0,
                format!("track {} has no sample {}", track.track_id, i + 1),
            )
        })?;
        let end = u64::from(offset) + u64::from(length);
        if end > u64::from(size) {
            return Err(MediaError::corrupt(
                "hint",
                sample_offset,
                format!(
                    "bytes {offset}+{length} of sample {} exceed its {size} bytes",
                    i + 1
                ),
            ));
        }
        let at = sample_offset
            .checked_add(u64::from(offset))
            .ok_or_else(|| {
                MediaError::corrupt("hint", sample_offset, "sample range offset overflows")
            })?;
        self.read_bytes(at, u64::from(length))
    }

    /// Read `length` bytes at `offset`; callers bound `length` (a sample, a hint range, a chunk's run).
    pub fn read_bytes(&self, offset: u64, length: u64) -> Result<Bytes, MediaError> {
        let len = usize::try_from(length).map_err(|_| MediaError::LimitExceeded {
            what: "read length in bytes",
            value: length,
            limit: u64::try_from(usize::MAX).unwrap_or(u64::MAX),
        })?;
        let mut buf = vec![0u8; len];
        self.read_into(&mut buf, offset)?;
        Ok(Bytes::from(buf))
    }

    fn read_into(&self, buf: &mut [u8], offset: u64) -> Result<(), MediaError> {
        if buf.is_empty() {
            return Ok(());
        }
        self.source
            .read_exact_at(buf, offset)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => MediaError::Truncated {
                    what: "sample data",
                    offset,
                    need: crate::mp4::reader::usize_to_u64(buf.len()),
                    have: self.source.len().saturating_sub(offset),
                },
                _ => MediaError::Io(e),
            })
    }

    /// Read the whole sample `i` of track `track_idx` (size already checked against `MAX_SAMPLE_BYTES`).
    pub fn read_sample(&self, track_idx: usize, i: usize) -> Result<Bytes, MediaError> {
        let track = self
            .tracks
            .get(track_idx)
            .ok_or(MediaError::NoSuchTrack { track_id: 0 })?;
        let (offset, size) = track.samples.location(i).ok_or_else(|| {
            MediaError::corrupt(
                "stbl",
                0,
                format!("track {} has no sample {}", track.track_id, i + 1),
            )
        })?;
        self.read_bytes(offset, u64::from(size))
    }
}

/// A parsed MP4/MOV file: box tree and sample tables in memory, sample bytes left in the source.
/// Cheap to share behind an `Arc`.
pub struct Movie {
    tables: Arc<MovieTables>,
    duration: Duration,
    infos: Vec<TrackInfo>,
    selected: Vec<u32>,
    sdp_session_id: u64,
    problems: Vec<String>,
}

impl std::fmt::Debug for Movie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Movie")
            .field("duration", &self.duration)
            .field("tracks", &self.infos)
            .finish()
    }
}

impl Movie {
    /// Open and parse the file at `path`.
    pub fn open(path: &Path) -> Result<Movie, MediaError> {
        let file = std::fs::File::open(path)?;
        Movie::from_source(Arc::new(file))
    }

    /// Parse a movie held by any random-access source.
    pub fn from_source(src: Arc<dyn ReadAt>) -> Result<Movie, MediaError> {
        let ParsedMovie {
            timescale,
            duration,
            tracks,
            hint_sdp,
            broken_tracks,
        } = parse_movie(src.as_ref())?;
        let mut tables = MovieTables {
            source_len: src.len(),
            source: src,
            tracks,
            movie_hint_sdp: hint_sdp,
            plans: Vec::new(),
            chunks: ChunkCache::default(),
        };
        let infos: Vec<TrackInfo> = tables
            .tracks
            .iter()
            .enumerate()
            .map(|(idx, t)| track_info(idx, t, &tables))
            .collect();
        tables.plans = select(&tables, &infos);
        if tables.plans.is_empty() {
            let mut reasons: Vec<String> = infos
                .iter()
                .filter_map(|i| {
                    i.playable
                        .as_ref()
                        .err()
                        .map(|why| format!("track {}: {why}", i.track_id))
                })
                .collect();
            reasons.extend(broken_tracks.iter().cloned());
            if reasons.is_empty() {
                reasons.push("the movie has no audio or video track".into());
            }
            return Err(MediaError::NoPlayableTrack { reasons });
        }
        let movie_duration =
            media_to_duration(i64::try_from(duration).unwrap_or(i64::MAX), timescale);
        let longest_track = infos.iter().map(|i| i.duration).max().unwrap_or_default();
        let duration = if movie_duration.is_zero() {
            longest_track
        } else {
            movie_duration
        };
        let selected = tables.plans.iter().map(|p| p.track_id).collect();
        let sdp_session_id = session_id(&tables);
        Ok(Movie {
            tables: Arc::new(tables),
            duration,
            infos,
            selected,
            sdp_session_id,
            problems: broken_tracks,
        })
    }

    /// Duration of the presentation (`mvhd`, else the longest track).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Every track in the file.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.infos
    }

    /// Tracks that could not be parsed at all and are missing from [`Movie::tracks`], one line each;
    /// worth a warning in the server log (the rest of the movie still plays).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Heap bytes held by the sample tables of all tracks (for memory accounting in a movie cache).
    pub fn sample_table_bytes(&self) -> usize {
        self.tables
            .tracks
            .iter()
            .map(|t| t.samples.heap_bytes())
            .sum()
    }

    /// Track IDs streamed, in SDP order; never empty (opening fails with `NoPlayableTrack` instead).
    pub fn selected_tracks(&self) -> &[u32] {
        &self.selected
    }

    /// The SDP (RFC 4566) for DESCRIBE: `v=0`, `o=- <id> <id> IN IP4 <origin_addr>`, `s=<session_name>`,
    /// `c=IN IP4 0.0.0.0`, `t=0 0`, `a=control:*`, `a=range:npt=0-<duration>`, then per selected track an
    /// `m=` section with `a=rtpmap`, `a=fmtp` and `a=control:trackID=<id>` (hint tracks: their own text).
    pub fn sdp(&self, session_name: &str, origin_addr: &str) -> String {
        crate::sdp::write_sdp(
            &self.tables,
            self.duration,
            self.sdp_session_id,
            session_name,
            origin_addr,
        )
    }

    /// Packets of one selected track starting at `start` (video: from the sync sample at or before `start`),
    /// with payloads of at most [`crate::DEFAULT_MAX_PAYLOAD`] bytes.
    pub fn packets(&self, track_id: u32, start: Duration) -> Result<PacketSource, MediaError> {
        self.packets_with(track_id, start, PacketOptions::default())
    }

    /// As [`Movie::packets`] with explicit options (maximum payload size).
    pub fn packets_with(
        &self,
        track_id: u32,
        start: Duration,
        options: PacketOptions,
    ) -> Result<PacketSource, MediaError> {
        let plan_idx = self.plan_index(track_id)?;
        PacketSource::new(Arc::clone(&self.tables), plan_idx, start, options, true)
    }

    /// As [`Movie::packets_with`], but every sample is read and packetized by this source alone, as before
    /// packet chunks were shared: the reference the chunk tests compare with.
    #[doc(hidden)]
    pub fn packets_unshared(
        &self,
        track_id: u32,
        start: Duration,
        options: PacketOptions,
    ) -> Result<PacketSource, MediaError> {
        let plan_idx = self.plan_index(track_id)?;
        PacketSource::new(Arc::clone(&self.tables), plan_idx, start, options, false)
    }

    /// Index of the stream plan of a selected track.
    fn plan_index(&self, track_id: u32) -> Result<usize, MediaError> {
        self.tables
            .plans
            .iter()
            .position(|p| p.track_id == track_id)
            .ok_or(MediaError::NoSuchTrack { track_id })
    }

    /// Packet chunks some source of this movie still holds (they are freed with the last source playing
    /// them); for tests and memory figures.
    #[doc(hidden)]
    pub fn live_packet_chunks(&self) -> usize {
        self.tables.chunks.live()
    }
}

fn kind_of(handler: FourCc) -> MediaKind {
    match &handler.0 {
        b"vide" => MediaKind::Video,
        b"soun" => MediaKind::Audio,
        b"hint" => MediaKind::Hint,
        _ => MediaKind::Other,
    }
}

fn track_info(idx: usize, track: &Track, tables: &MovieTables) -> TrackInfo {
    let kind = kind_of(track.handler);
    let end = match track.edit_duration {
        Some(d) => i64::try_from(d).unwrap_or(i64::MAX),
        None => i64::try_from(track.samples.end_time())
            .unwrap_or(i64::MAX)
            .saturating_add(track.edit_shift),
    };
    TrackInfo {
        track_id: track.track_id,
        kind,
        codec: track.entry.codec.name(track.entry.fourcc),
        duration: media_to_duration(end, track.timescale),
        n_samples: u32::try_from(track.samples.len()).unwrap_or(u32::MAX),
        width: track.entry.width,
        height: track.entry.height,
        sample_rate: track.entry.sample_rate,
        channels: track.entry.channels,
        language: track.language.clone(),
        playable: playable(idx, track, kind, tables),
    }
}

/// `idx` is the track's index in `tables.tracks`.
fn playable(
    idx: usize,
    track: &Track,
    kind: MediaKind,
    tables: &MovieTables,
) -> Result<(), String> {
    if track.samples.is_empty() {
        return Err("track has no samples".into());
    }
    match (&track.entry.codec, kind) {
        (Codec::Unknown(why), _) => Err(why.clone()),
        (Codec::RtpHint { .. }, MediaKind::Hint) => hint_usable(idx, track, tables),
        (
            Codec::Opus {
                channels,
                mapping_family,
            },
            MediaKind::Audio,
        ) => {
            if *mapping_family == 0 && *channels <= 2 {
                Ok(())
            } else {
                Err(format!("Opus with {channels} channels (mapping family {mapping_family}) has no RTP format"))
            }
        }
        (Codec::Aac { config }, MediaKind::Audio) if config.is_empty() => {
            Err("AAC without AudioSpecificConfig".into())
        }
        (Codec::H264 { .. } | Codec::H265 { .. } | Codec::Mp4v { .. }, MediaKind::Video) => Ok(()),
        (Codec::Aac { .. } | Codec::Mpa, MediaKind::Audio) => Ok(()),
        (_, kind) => Err(format!(
            "codec `{}` in a {kind:?} track",
            track.entry.fourcc
        )),
    }
}

/// A hint track is usable when it references a media track, carries its SDP fragment, and its first
/// sample parses; otherwise we fall back to our own packetizer for that media.
fn hint_usable(idx: usize, track: &Track, tables: &MovieTables) -> Result<(), String> {
    let media_id = *track
        .hint_references
        .first()
        .ok_or("hint track without `tref/hint` reference")?;
    let (_, media) = tables
        .track_by_id(media_id)
        .ok_or(format!("hint track references missing track {media_id}"))?;
    if !matches!(kind_of(media.handler), MediaKind::Video | MediaKind::Audio) {
        return Err(format!(
            "hint track references track {media_id}, which is not audio or video"
        ));
    }
    let sdp = track
        .hint_sdp
        .as_deref()
        .ok_or("hint track without `udta/hnti/sdp ` text")?;
    if hint_payload_type(sdp).is_none() {
        return Err("hint track SDP has no `m=` line with a payload type".into());
    }
    let first = tables
        .read_sample(idx, 0)
        .map_err(|e| format!("first hint sample unreadable: {e}"))?;
    parse_hint_sample(&first, 0).map_err(|e| format!("first hint sample malformed: {e}"))?;
    Ok(())
}

/// The payload type on the `m=` line of a hint track's SDP fragment.
pub(crate) fn hint_payload_type(sdp: &str) -> Option<u8> {
    let m_line = sdp.lines().find(|l| l.starts_with("m="))?;
    m_line.split_whitespace().nth(3)?.parse().ok()
}

/// Choose what to stream: every playable video track, then every playable audio track (a second
/// language is a track a client may select, so it belongs in the SDP), each in file order. A media
/// track with a usable hint track streams through the hint track, as DSS did; otherwise through our
/// packetizer.
fn select(tables: &MovieTables, infos: &[TrackInfo]) -> Vec<StreamPlan> {
    let mut plans: Vec<StreamPlan> = Vec::new();
    for wanted in [MediaKind::Video, MediaKind::Audio] {
        for (media_idx, media) in tables.tracks.iter().enumerate() {
            if kind_of(media.handler) != wanted {
                continue;
            }
            let hinted = tables.tracks.iter().enumerate().find(|(i, t)| {
                infos
                    .get(*i)
                    .is_some_and(|info| info.kind == MediaKind::Hint && info.playable.is_ok())
                    && t.hint_references.first() == Some(&media.track_id)
            });
            if let Some((idx, track)) = hinted {
                if let Some(plan) = hint_plan(idx, track, media, wanted) {
                    plans.push(plan);
                    continue;
                }
            }
            let playable = infos
                .get(media_idx)
                .is_some_and(|info| info.kind == wanted && info.playable.is_ok());
            if playable {
                plans.push(own_plan(media_idx, media, wanted));
            }
        }
    }
    let mut next_dynamic: u8 = 96;
    for i in 0..plans.len() {
        if plans
            .get(i)
            .is_some_and(|p| !p.hinted && p.payload_type == 0)
        {
            while plans.iter().any(|p| p.payload_type == next_dynamic) && next_dynamic < 127 {
                next_dynamic += 1;
            }
            if let Some(p) = plans.get_mut(i) {
                p.payload_type = next_dynamic;
            }
            next_dynamic = next_dynamic.saturating_add(1).min(127);
        }
    }
    plans
}

/// Streaming `media` through its hint track `track` (index `idx`).
fn hint_plan(idx: usize, track: &Track, media: &Track, kind: MediaKind) -> Option<StreamPlan> {
    let (payload_type, clock_rate) = match (&track.entry.codec, track.hint_sdp.as_deref()) {
        (Codec::RtpHint { timescale, .. }, Some(sdp)) => {
            (hint_payload_type(sdp).unwrap_or(96), *timescale)
        }
        _ => return None,
    };
    // A hint track's packets carry the referenced media's bytes: size its chunks by that media.
    let largest_sample = track.samples.max_size().max(media.samples.max_size());
    Some(StreamPlan {
        track_id: track.track_id,
        track_idx: idx,
        kind,
        payload_type,
        clock_rate,
        hinted: true,
        samples_per_chunk: samples_per_chunk(kind, largest_sample),
    })
}

/// Streaming the media track `track` (index `idx`) through our packetizer.
fn own_plan(idx: usize, track: &Track, kind: MediaKind) -> StreamPlan {
    let clock_rate = match &track.entry.codec {
        Codec::H264 { .. } | Codec::H265 { .. } | Codec::Mp4v { .. } | Codec::Mpa => 90_000,
        Codec::Opus { .. } => 48_000,
        _ => track
            .entry
            .sample_rate
            .filter(|&r| r > 0)
            .unwrap_or(track.timescale),
    };
    let payload_type = match track.entry.codec {
        Codec::Mpa => crate::rtp::mpa::PAYLOAD_TYPE,
        _ => 0, // assigned by `select`, avoiding the hint tracks' numbers
    };
    StreamPlan {
        track_id: track.track_id,
        track_idx: idx,
        kind,
        payload_type,
        clock_rate,
        hinted: false,
        samples_per_chunk: samples_per_chunk(kind, track.samples.max_size()),
    }
}

/// A stable SDP session id for the file: FNV-1a over track ids and sample counts and durations, so the
/// same file gives the same `o=` line (SDP only needs it unique per session description).
fn session_id(tables: &MovieTables) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for t in &tables.tracks {
        for word in [
            u64::from(t.track_id),
            t.samples.end_time(),
            crate::mp4::reader::usize_to_u64(t.samples.len()),
        ] {
            for byte in word.to_be_bytes() {
                hash ^= u64::from(byte);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        }
    }
    // Keep it within the 63 bits some SDP parsers store in a signed integer.
    hash >> 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}

    #[test]
    fn movie_is_shareable_and_packet_sources_move_between_threads() {
        assert_send_sync::<Movie>();
        assert_send::<PacketSource>();
    }

    #[test]
    fn hint_sdp_payload_type_comes_from_the_m_line() {
        assert_eq!(
            hint_payload_type("m=video 0 RTP/AVP 96\r\nb=AS:100\r\n"),
            Some(96)
        );
        assert_eq!(hint_payload_type("m=audio 0 RTP/AVP\r\n"), None);
        assert_eq!(hint_payload_type("a=rtpmap:96 H264/90000"), None);
    }
}
