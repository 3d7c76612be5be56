//! Media formats for the streaming service, free of I/O runtimes: no tokio, no clock, no store.
//!
//! Opens MP4/MOV files ([`Movie`]), describes them in SDP ([`Movie::sdp`]) and turns their samples into RTP
//! payloads ([`PacketSource`]), following hint tracks when the file has them and packetizing H.264, H.265,
//! AAC, MPEG-4 Part 2, MP3 and Opus itself otherwise. Sample bytes are read on demand through [`ReadAt`].

mod error;
pub mod fuzzing;
mod hint;
mod movie;
mod mp4;
mod packet;
pub mod rtp;
mod sdp;
mod source;

pub use error::MediaError;
pub use movie::{MediaKind, Movie, TrackInfo};
pub use mp4::sample_table::{MAX_SAMPLES_PER_TRACK, MAX_SAMPLE_BYTES};
pub use mp4::MAX_MOOV_BYTES;
pub use packet::{PacketOptions, PacketSource, RtpPacketOut};
pub use rtp::DEFAULT_MAX_PAYLOAD;
pub use source::ReadAt;

#[cfg(feature = "testing")]
pub mod testing;
