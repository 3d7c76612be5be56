//! What the RTSP core needs from the movies folder, as traits: resolve a URL path to a
//! presentation, describe it, and open per-track packet sources at a position.
//!
//! The real implementation ([`crate::movies::MovieLibrary`]) maps paths safely under the media
//! directory and demuxes with `serval-stream-media`; unit tests of the protocol core use a fake
//! presentation, so the state machine is tested without files or ffmpeg.

use std::sync::Arc;
use std::time::Duration;

pub use serval_stream_media::RtpPacketOut as MediaPacket;

/// Finds presentations by the path part of an `rtsp://` URL.
pub trait Catalog: Send + Sync {
    /// Opens (or fetches from the cache) the presentation at `url_path` (percent-encoded, with
    /// its leading `/`, without the track control suffix).
    fn open(&self, url_path: &str) -> Result<Arc<dyn Presentation>, CatalogError>;

    /// Packet chunks the catalog's movies hold in memory now (a gauge for operators).
    fn packet_chunks_live(&self) -> usize {
        0
    }
}

/// Why a URL does not lead to something we stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    /// The path tries to leave the media directory (`..`, encoded dots, symlinks out): 403.
    #[error("path `{0}` leaves the media directory")]
    Forbidden(String),
    /// Nothing streamable there: 404.
    #[error("no movie at `{0}`")]
    NotFound(String),
    /// A file we read but do not stream (no playable track, unknown codec): 415.
    #[error("unsupported media: {0}")]
    Unsupported(String),
    /// The file is there but broken or unreadable: 500, detail in the log.
    #[error("cannot read movie: {0}")]
    Broken(String),
}

/// One movie, parsed once and shared by every session playing it.
pub trait Presentation: Send + Sync {
    /// SDP for DESCRIBE, with `a=control:trackID=<id>` per track.
    fn sdp(&self, session_name: &str, origin_addr: &str) -> String;
    /// Track IDs streamed, in SDP order.
    fn track_ids(&self) -> Vec<u32>;
    /// Length of the presentation.
    fn duration(&self) -> Duration;
    /// File size in bytes (access log `filesize`).
    fn file_size(&self) -> u64;
    /// Average bitrate of the streamed tracks, for the bandwidth budget (453).
    fn bits_per_second(&self) -> u64 {
        let secs = self.duration().as_secs_f64();
        if secs <= 0.0 {
            return 0;
        }
        (self.file_size() as f64 * 8.0 / secs) as u64
    }
    /// Audio and video codec names for the access log, `None` when absent.
    fn codecs(&self) -> (Option<String>, Option<String>);
    /// Packets of `track_id` from `start` (video: from the sync sample at or before it).
    fn packets(
        &self,
        track_id: u32,
        start: Duration,
    ) -> Result<Box<dyn TrackPackets>, CatalogError>;
}

/// A cursor over one track's RTP payloads in send order.
pub trait TrackPackets: Send {
    fn clock_rate(&self) -> u32;
    fn payload_type(&self) -> u8;
    /// Media time of the first packet: at or before the requested start.
    fn start(&self) -> Duration;
    /// RTP timestamp (random base not added) at media time `start()`.
    fn start_rtp_timestamp(&self) -> u32;
    /// The next packet, `Ok(None)` at the end; an error ends the track.
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, String>;
}
