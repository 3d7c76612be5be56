//! On-demand RTSP/RTP streaming of MP4/MOV files: Serval's successor to QuickTime/Darwin
//! Streaming Server.
//!
//! Start reading at [`rtsp::handler`] (requests against the session table), then
//! [`rtsp::session`] (state machine and pacing) and `net` (the tokio driver). The protocol
//! modules ([`rtsp`], [`rtp`]) never import tokio and never read the clock; the media layer
//! is `serval-stream-media`, reached through the traits of [`library`].

pub mod access_log;
pub mod admin;
pub mod config;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod library;
pub mod metrics;
pub mod movies;
mod net;
pub mod paths;
pub mod rtp;
pub mod rtsp;
mod service;

pub use config::StreamConfig;
pub use error::StreamError;
pub use service::{bind, StreamService};
