//! RTP payload formats for unhinted tracks. Each packetizer turns one sample (access unit) into payloads no
//! larger than a maximum size; the packet source adds timing and the marker bit.

pub mod aac;
pub mod h264;
pub mod h265;
pub mod mp4v;
pub mod mpa;
pub mod nal;

/// Default largest RTP payload: 1400 bytes plus RTP/UDP/IPv4 headers (40) stays under a 1500-byte MTU
/// with room for tunnels.
pub const DEFAULT_MAX_PAYLOAD: usize = 1400;
/// Smallest maximum payload we accept: FU headers and AU headers need a few bytes, and tiny packets are a
/// misconfiguration rather than a useful setting.
pub const MIN_MAX_PAYLOAD: usize = 64;
/// Largest maximum payload: an RTP packet must fit a UDP datagram (65,507 bytes) with its 12-byte header.
pub const MAX_MAX_PAYLOAD: usize = 65_000;

/// Payload-format-level marker: true on the payload that ends an access unit (video) or a complete AU
/// group (AAC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub marker: bool,
    pub bytes: bytes::Bytes,
}
