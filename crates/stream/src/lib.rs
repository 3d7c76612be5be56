//! On-demand RTSP/RTP streaming of MP4/MOV files: Serval's successor to QuickTime/Darwin
//! Streaming Server.
//!
//! Start reading at [`rtsp::handler`] (requests against the session table), then
//! [`rtsp::session`] (state machine and pacing) and `net` (the tokio driver). The protocol
//! modules ([`rtsp`], [`rtp`]) never import tokio and never read the clock; the media layer
//! is `serval-stream-media`, reached through the traits of [`library`].

pub mod config;
pub mod library;
pub mod movies;
pub mod paths;
pub mod rtp;
pub mod rtsp;

pub use config::StreamConfig;
