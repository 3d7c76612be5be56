//! Media formats for the streaming service, free of I/O runtimes: no tokio, no clock, no store.
//!
//! Opens MP4/MOV files ([`Movie`]), describes them in SDP ([`Movie::sdp`]) and turns their samples into RTP
//! payloads ([`PacketSource`]), following hint tracks when the file has them and packetizing H.264, H.265,
//! AAC, MPEG-4 Part 2, MP3 and Opus itself otherwise. Sample bytes are read on demand through [`ReadAt`].

mod error;
mod movie;
mod packet;
mod source;

pub use error::MediaError;
pub use movie::{MediaKind, Movie, TrackInfo};
pub use packet::{PacketSource, RtpPacketOut};
pub use source::ReadAt;

#[cfg(feature = "testing")]
pub mod testing;
