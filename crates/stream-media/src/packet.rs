//! Packet sources: a cursor over one track's samples that yields RTP payloads in send order.

use std::time::Duration;

use bytes::Bytes;

use crate::MediaError;

/// One RTP packet's worth of data; the server writes the 12-byte header (SSRC, seq, timestamp + base, PT, M).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacketOut {
    /// Media (decode) time at which to send it, for pacing.
    pub send_time: Duration,
    /// RTP timestamp in clock-rate units (presentation time for video), random base not added.
    pub timestamp: u32,
    pub marker: bool,
    /// RTP payload only.
    pub payload: Bytes,
}

/// Yields the RTP payloads of one track from a start position; reads sample bytes on demand.
pub struct PacketSource {
    clock_rate: u32,
    payload_type: u8,
    start: Duration,
    start_rtp_timestamp: u32,
}

impl PacketSource {
    /// RTP clock rate of this track (90000 for video, the sample rate for most audio).
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// RTP payload type, as announced in the SDP.
    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    /// Media time of the first packet's sample; at or before the requested start.
    pub fn start(&self) -> Duration {
        self.start
    }

    /// RTP timestamp (base not added) of media time `start()`, for RTP-Info `rtptime`.
    pub fn start_rtp_timestamp(&self) -> u32 {
        self.start_rtp_timestamp
    }

    /// The next packet, or `None` at the end of the track.
    pub fn next_packet(&mut self) -> Result<Option<RtpPacketOut>, MediaError> {
        Ok(None)
    }
}
