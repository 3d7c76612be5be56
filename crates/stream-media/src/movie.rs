//! The public face of a demuxed movie: track list, default track selection, SDP and packet sources.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

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
#[derive(Debug, Clone)]
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
    /// `Err(reason)` when this track cannot be streamed.
    pub playable: Result<(), String>,
}

/// A parsed MP4/MOV file: box tree and sample tables in memory, sample bytes left in the source.
/// Cheap to share behind an `Arc`.
pub struct Movie {
    _source: Arc<dyn ReadAt>,
    duration: Duration,
    tracks: Vec<TrackInfo>,
    selected: Vec<u32>,
}

impl Movie {
    /// Open and parse the file at `path`.
    pub fn open(path: &Path) -> Result<Movie, MediaError> {
        let file = std::fs::File::open(path)?;
        Movie::from_source(Arc::new(file))
    }

    /// Parse a movie held by any random-access source.
    pub fn from_source(src: Arc<dyn ReadAt>) -> Result<Movie, MediaError> {
        let _ = (&src, Duration::ZERO);
        Err(MediaError::unsupported("demuxer not implemented yet"))
    }

    /// Duration of the presentation (the longest track).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Every track in the file.
    pub fn tracks(&self) -> &[TrackInfo] {
        &self.tracks
    }

    /// Track IDs streamed, in SDP order; never empty (opening fails with `NoPlayableTrack` instead).
    pub fn selected_tracks(&self) -> &[u32] {
        &self.selected
    }

    /// The SDP (RFC 4566) for DESCRIBE.
    pub fn sdp(&self, session_name: &str, origin_addr: &str) -> String {
        format!("v=0\r\no=- 0 0 IN IP4 {origin_addr}\r\ns={session_name}\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\na=control:*\r\n")
    }

    /// Packets of one selected track starting at `start` (video: from the sync sample at or before `start`).
    pub fn packets(&self, track_id: u32, start: Duration) -> Result<PacketSource, MediaError> {
        let _ = start;
        Err(MediaError::NoSuchTrack { track_id })
    }
}
