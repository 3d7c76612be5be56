//! Media formats for the streaming service, free of I/O runtimes: no tokio, no clock, no store.
//!
//! Opens MP4/MOV files ([`Movie`]), describes them in SDP ([`Movie::sdp`]) and turns their samples into RTP
//! payloads ([`PacketSource`]), following hint tracks when the file has them and packetizing itself
//! otherwise. Sample bytes are read on demand through [`ReadAt`]; only `moov` is held in memory, plus the
//! packets that sources are playing right now: a movie packetizes each run of samples (a packet chunk of
//! [`VIDEO_SAMPLES_PER_CHUNK`] or [`AUDIO_SAMPLES_PER_CHUNK`] samples) once for all of its sources at that
//! position, and frees it when the last of them moves on (`chunk`).
//!
//! Codecs (unhinted files), RTP payload formats and SDP:
//! - H.264 (`avc1`/`avc3`): RFC 6184 packetization-mode 1, single NAL + FU-A, SPS/PPS in
//!   `sprop-parameter-sets` and in-band before every IDR, `profile-level-id` from the SPS.
//! - H.265 (`hvc1`/`hev1`): RFC 7798 single NAL + FU, `sprop-vps/sps/pps`, in-band before every IRAP.
//! - AAC (`mp4a`, also inside QuickTime `wave`): RFC 3640 `mpeg4-generic` AAC-hbr, one AU per packet,
//!   large AUs fragmented, `config=` AudioSpecificConfig, clock = sample rate, 5.1 included.
//! - MPEG-4 Part 2 (`mp4v`): RFC 6416 `MP4V-ES`, `config=` from the esds DecoderSpecificInfo.
//! - MP3 / MPEG audio (`.mp3`, `ms\0U`, `mp4a` object type 0x6B/0x69): RFC 2250 `MPA`, PT 14, 90 kHz.
//! - Opus (`Opus` + `dOps`, mono/stereo): RFC 7587, 48 kHz, one packet per sample.
//!
//! Container: moov before or after mdat; `stco`/`co64` and 64-bit box sizes (files over 4 GiB);
//! `stsz`/`stz2`, `stsc`, `stts`, `ctts` (v0/v1), `stss` (absent = all sync); edit lists with leading
//! empty edits and one `media_time` offset (later edits are ignored); several tracks, with the first
//! playable video and audio selected. RTP hint tracks (`rtp ` entries, `tims`, `rtpo` offsets,
//! immediate/sample/sample-description constructors, `hnti` SDP) are preferred like Darwin Streaming
//! Server did, with a fallback to our packetizers when a hint track is unusable. Fragmented MP4
//! (`moof`/`mvex`) is refused with [`MediaError::Unsupported`]. Hint `tsro`/`snro` offsets are not
//! applied: the server randomizes timestamp and sequence bases itself.
//!
//! Limits (named constants): [`MAX_MOOV_BYTES`], [`MAX_SAMPLES_PER_TRACK`], [`MAX_SAMPLES_PER_MOVIE`],
//! [`MAX_SAMPLE_BYTES`];
//! sample tables cost about 20-24 bytes per sample (see `mp4::sample_table`).

mod chunk;
mod error;
pub mod fuzzing;
mod hint;
mod movie;
mod mp4;
mod packet;
mod packetize;
pub mod rtp;
mod sdp;
mod source;

pub use chunk::{AUDIO_SAMPLES_PER_CHUNK, MAX_CHUNK_SAMPLE_BYTES, VIDEO_SAMPLES_PER_CHUNK};
pub use error::MediaError;
pub use movie::{MediaKind, Movie, TrackInfo};
pub use mp4::sample_table::{MAX_SAMPLES_PER_MOVIE, MAX_SAMPLES_PER_TRACK, MAX_SAMPLE_BYTES};
pub use mp4::MAX_MOOV_BYTES;
pub use packet::{PacketOptions, PacketSource, RtpPacketOut};
pub use rtp::DEFAULT_MAX_PAYLOAD;
pub use source::ReadAt;

#[cfg(feature = "testing")]
pub mod testing;
