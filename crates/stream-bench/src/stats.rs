//! What the client learns from each RTP packet of one track: counts, sequence-number gaps
//! (loss) and lateness against the RTP timestamp schedule; plus the latency histogram type
//! shared by the receivers.
//!
//! Lateness of a packet is `arrival - (first_arrival + (rtptime - first_rtptime) / clock)`:
//! how far behind the media clock, started by the track's first packet, it arrived. Packets that
//! arrive early (servers send ahead) count as 0. Pure: arrival times come from the caller.

use std::time::Instant;

use hdrhistogram::Histogram;

/// Fixed RTP header (RFC 3550 §5.1).
pub const RTP_HEADER_BYTES: usize = 12;
/// Lateness above this is recorded as this (a histogram needs a bound); a minute late is
/// already a stalled stream.
pub const MAX_LATENESS_US: u64 = 60_000_000;

/// Histogram of microseconds, 2 significant digits (1 % resolution is plenty for p99s).
pub type MicrosHistogram = Histogram<u64>;

/// A new, empty microseconds histogram.
pub fn micros_histogram() -> MicrosHistogram {
    // Bounds are constants that satisfy the crate's preconditions (low >= 1, high >= 2 * low).
    Histogram::new_with_bounds(1, MAX_LATENESS_US, 2)
        .unwrap_or_else(|_| unreachable!("constant histogram bounds are valid"))
}

/// State of one track of one session.
#[derive(Debug, Clone)]
pub struct TrackStats {
    clock_rate: u32,
    pub packets: u64,
    pub bytes: u64,
    /// Packets shorter than an RTP header or not version 2.
    pub malformed: u64,
    pub first_arrival: Option<Instant>,
    pub last_arrival: Option<Instant>,
    anchor: Option<Anchor>,
    last_seq: u16,
    last_rtptime: u32,
    /// Extended (unwrapped) sequence numbers, relative to the first packet.
    ext_seq: i64,
    min_ext_seq: i64,
    max_ext_seq: i64,
    /// Extended RTP time relative to the first packet.
    ext_rtptime: i64,
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    arrival_us: u64,
}

impl TrackStats {
    pub fn new(clock_rate: u32) -> TrackStats {
        TrackStats {
            clock_rate: clock_rate.max(1),
            packets: 0,
            bytes: 0,
            malformed: 0,
            first_arrival: None,
            last_arrival: None,
            anchor: None,
            last_seq: 0,
            last_rtptime: 0,
            ext_seq: 0,
            min_ext_seq: 0,
            max_ext_seq: 0,
            ext_rtptime: 0,
        }
    }

    /// Accounts one RTP packet that arrived at `arrival` (`arrival_us` on the step's clock).
    pub fn on_packet(
        &mut self,
        packet: &[u8],
        arrival: Instant,
        arrival_us: u64,
        lateness: &mut MicrosHistogram,
    ) {
        let Some(header) = packet.first_chunk::<RTP_HEADER_BYTES>() else {
            self.malformed += 1;
            return;
        };
        if header[0] >> 6 != 2 {
            self.malformed += 1;
            return;
        }
        let seq = u16::from_be_bytes([header[2], header[3]]);
        let rtptime = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        self.packets += 1;
        self.bytes += u64::try_from(packet.len()).unwrap_or(u64::MAX);
        self.last_arrival = Some(arrival);
        let Some(anchor) = self.anchor else {
            self.anchor = Some(Anchor { arrival_us });
            self.first_arrival = Some(arrival);
            self.last_seq = seq;
            self.last_rtptime = rtptime;
            let _ = lateness.record(1);
            return;
        };
        self.ext_seq += i64::from(signed_u16_delta(self.last_seq, seq));
        self.last_seq = seq;
        self.min_ext_seq = self.min_ext_seq.min(self.ext_seq);
        self.max_ext_seq = self.max_ext_seq.max(self.ext_seq);
        self.ext_rtptime += signed_u32_delta(self.last_rtptime, rtptime);
        self.last_rtptime = rtptime;

        let media_us = self.ext_rtptime.saturating_mul(1_000_000) / i64::from(self.clock_rate);
        let elapsed_us =
            i64::try_from(arrival_us.saturating_sub(anchor.arrival_us)).unwrap_or(i64::MAX);
        let late_us = elapsed_us.saturating_sub(media_us).max(1);
        let late_us = u64::try_from(late_us).unwrap_or(1).min(MAX_LATENESS_US);
        let _ = lateness.record(late_us);
    }

    /// Packets the sequence numbers say were sent between the first and last seen.
    pub fn expected(&self) -> u64 {
        if self.packets == 0 {
            return 0;
        }
        u64::try_from(self.max_ext_seq - self.min_ext_seq + 1).unwrap_or(0)
    }

    /// Expected minus received (duplicates can make received exceed expected: then 0).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.packets)
    }
}

/// `b - a` for 16-bit sequence numbers, the short way round the circle.
fn signed_u16_delta(a: u16, b: u16) -> i32 {
    let forward = b.wrapping_sub(a);
    if forward < 0x8000 {
        i32::from(forward)
    } else {
        i32::from(forward) - 0x1_0000
    }
}

/// `b - a` for 32-bit RTP times, the short way round the circle.
fn signed_u32_delta(a: u32, b: u32) -> i64 {
    let forward = b.wrapping_sub(a);
    if forward < 0x8000_0000 {
        i64::from(forward)
    } else {
        i64::from(forward) - 0x1_0000_0000
    }
}

/// Milliseconds at a quantile of a microseconds histogram (0 when empty).
pub fn quantile_ms(histogram: &MicrosHistogram, quantile: f64) -> f64 {
    if histogram.is_empty() {
        return 0.0;
    }
    histogram.value_at_quantile(quantile) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn rtp(seq: u16, rtptime: u32) -> Vec<u8> {
        let mut p = vec![0x80, 96];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&rtptime.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 1]);
        p.extend_from_slice(&[0u8; 100]);
        p
    }

    #[test]
    fn gaps_count_as_loss_across_wraparound() {
        let t0 = Instant::now();
        let mut h = micros_histogram();
        let mut track = TrackStats::new(90_000);
        for (i, seq) in [65_534u16, 65_535, 1, 2].into_iter().enumerate() {
            let us = u64::try_from(i).unwrap() * 1000;
            track.on_packet(&rtp(seq, 0), t0 + Duration::from_micros(us), us, &mut h);
        }
        assert_eq!(track.packets, 4);
        assert_eq!(track.expected(), 5);
        assert_eq!(track.lost(), 1);
        assert_eq!(track.bytes, 4 * 112);
    }

    #[test]
    fn lateness_follows_the_media_clock() {
        let t0 = Instant::now();
        let mut h = micros_histogram();
        let mut track = TrackStats::new(90_000);
        // Packet 0 at t=0 with rtptime near the wrap; packet 1 is 1 s of media later and
        // arrives 1.030 s later (30 ms late); packet 2 is 2 s of media later and arrives
        // early (counted as not late).
        let base = u32::MAX - 10_000;
        track.on_packet(&rtp(1, base), t0, 0, &mut h);
        track.on_packet(&rtp(2, base.wrapping_add(90_000)), t0, 1_030_000, &mut h);
        track.on_packet(&rtp(3, base.wrapping_add(180_000)), t0, 1_500_000, &mut h);
        assert_eq!(h.len(), 3);
        let max_ms = h.max() as f64 / 1000.0;
        assert!((29.0..31.0).contains(&max_ms), "max {max_ms}");
        assert!(quantile_ms(&h, 0.5) < 0.01);
    }

    #[test]
    fn short_or_wrong_version_packets_are_malformed() {
        let t0 = Instant::now();
        let mut h = micros_histogram();
        let mut track = TrackStats::new(48_000);
        track.on_packet(&[0x80, 96, 0], t0, 0, &mut h);
        let mut v1 = rtp(1, 1);
        v1[0] = 0x40;
        track.on_packet(&v1, t0, 0, &mut h);
        assert_eq!(
            (track.packets, track.malformed, track.expected()),
            (0, 2, 0)
        );
    }
}
