//! On-demand RTSP/RTP streaming of MP4/MOV files: Serval's successor to QuickTime/Darwin
//! Streaming Server.
//!
//! Start reading at [`rtsp::handler`] (requests against the session table), then
//! [`rtsp::session`] (state machine and pacing), then `net` (the tokio driver: connections,
//! UDP sockets, expiry) and `pacer` (one task per core sending every session's due packets).
//! Who may play what is [`access`] (`qtaccess` files, `[[stream.access]]` rules, Basic/Digest
//! against the directory), checked by the handler on every request; `edge` sits between
//! `accept` and the RTSP loop (address caps, idle eviction, RTSPS handshake, HTTP [`tunnel`]s).
//!
//! **Architecture invariants:** the protocol modules ([`rtsp`], [`rtp`]) never import tokio and
//! never read the clock: time and the wall clock come in as arguments, randomness from a seeded
//! generator. The media layer is `serval-stream-media`, reached only through the traits of
//! [`library`] (implemented in [`movies`]), so protocol tests run against a fake movie. All UDP
//! sessions share one server RTP/RTCP port pair (one per address family, same numbers);
//! incoming RTCP is routed by client address.
//! Deliberately absent: multicast and RECORD (playback only).
//!
//! **API boundary:** [`bind`], [`StreamConfig`], [`StreamError`] (and [`StreamService`], the
//! `RunningService` it returns), and [`import_qtusers`] for `serval stream import-qtusers`. The
//! binary uses nothing else.

pub mod access;
pub mod access_log;
pub mod admin;
pub mod config;
mod edge;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod library;
pub mod metrics;
pub mod movies;
mod net;
mod pacer;
pub mod paths;
pub mod rtp;
pub mod rtsp;
mod service;
pub mod tunnel;
mod udp_batch;
mod wire;

pub use access::qtusers::{import_qtusers, ImportReport, QtUsersError};
pub use config::StreamConfig;
pub use error::StreamError;
pub use service::{bind, StreamService};
