//! Errors of starting the streaming service; each names the address, range or path involved.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::PortRange;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("cannot listen for RTSP on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no free even/odd UDP port pair for RTP/RTCP in stream.rtp_ports = \"{range}\" (last error: {last_error})")]
    NoRtpPortPair {
        range: PortRange,
        last_error: String,
    },
    #[error("media directory {path}: {source}")]
    MediaDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("access log {path}: {source}")]
    AccessLog {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid [stream] config: {0}")]
    Config(String),
}
