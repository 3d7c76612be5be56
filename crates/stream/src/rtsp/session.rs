//! One RTSP session (RFC 2326 §A.1 server state machine) and its playback: which tracks are
//! set up over which transport, where in the movie we are, and which packets are due.
//!
//! Pure: the caller passes `now` (monotonic) and, for RTCP, the wall clock; the session hands
//! back packets in a buffer the caller sends. A session exists from its first SETUP (Ready)
//! and moves to Playing on PLAY and back to Ready on PAUSE; TEARDOWN and timeouts remove it
//! from the table (see `handler`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};

use crate::library::{CatalogError, MediaPacket, Presentation, TrackPackets};
use crate::rtp::header::{RtpHeader, RTP_HEADER_LEN};
use crate::rtp::rtcp::{self, ReportBlock, SenderInfo};
use crate::rtsp::range::NptRange;
use crate::rtsp::transport::ChosenTransport;

/// How far ahead of its media time a packet may leave: enough to ride out scheduler jitter
/// and a 20 ms tick, small enough that PAUSE stops the picture almost at once.
pub const SEND_AHEAD: Duration = Duration::from_millis(250);
/// Packets one session may emit per poll, so one session cannot starve others on a tick.
pub const MAX_PACKETS_PER_POLL: usize = 512;
/// Interval between Sender Reports per track (RFC 3550 suggests about 5 s at our rates).
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);
/// How long after the last packet's media time BYE leaves. Clients read RTP and RTCP on
/// separate sockets: a BYE sent with the last (early) packet can be read first, and ffmpeg
/// then drops that packet, which with aggregated AAC is up to eight audio frames.
pub const BYE_AFTER_LAST_PACKET: Duration = Duration::from_millis(300);
/// Longest a PLAY's packets wait for its response to be queued (the driver releases them
/// as soon as it is); a bound, so a driver path that forgets cannot stall a session.
pub const PLAY_RESPONSE_HOLD: Duration = Duration::from_secs(1);

/// The session's place in RFC 2326's state table (Init is "no session").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Ready,
    Playing,
}

/// Random values chosen per track at SETUP (RFC 3550 §5.1: random initial seq and timestamp).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrackSeed {
    pub ssrc: u32,
    pub initial_seq: u16,
    pub timestamp_base: u32,
}

/// What the client said in its last receiver report about one track.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    pub reports: u64,
    pub fraction_lost: u8,
    pub cumulative_lost: i32,
    pub jitter: u32,
}

/// One set-up track.
pub struct TrackStream {
    pub track_id: u32,
    /// The URL the client used in SETUP, echoed in RTP-Info.
    pub control_url: String,
    pub transport: ChosenTransport,
    pub ssrc: u32,
    pub next_seq: u16,
    pub timestamp_base: u32,
    source: Option<OpenSource>,
    pending: Option<MediaPacket>,
    ended: bool,
    bye_sent: bool,
    last_sender_report: Option<Instant>,
    pub packets_sent: u64,
    pub octets_sent: u64,
    pub receiver: ReceiverStats,
    pub error: Option<String>,
}

struct OpenSource {
    packets: Box<dyn TrackPackets>,
    clock_rate: u32,
    payload_type: u8,
    start: Duration,
    start_rtp_timestamp: u32,
}

/// Where a packet in the caller's batch goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketKind {
    Rtp,
    Rtcp,
}

/// A packet ready to send on track `track_index`'s transport, in two parts so the payload,
/// shared by every session playing the movie, is never copied per session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPacket {
    pub track_index: usize,
    pub kind: PacketKind,
    /// This session's RTP header for `payload`; `None` for RTCP, which is all in `payload`.
    pub rtp_header: Option<[u8; RTP_HEADER_LEN]>,
    /// The RTP payload or the whole RTCP compound packet.
    pub payload: Bytes,
}

impl OutgoingPacket {
    fn rtcp(track_index: usize, compound: Bytes) -> OutgoingPacket {
        OutgoingPacket {
            track_index,
            kind: PacketKind::Rtcp,
            rtp_header: None,
            payload: compound,
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        self.rtp_header.map_or(0, |h| h.len()) + self.payload.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole packet in one buffer (tests and diagnostics; the send path gathers the parts).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut whole = Vec::with_capacity(self.len());
        if let Some(header) = &self.rtp_header {
            whole.extend_from_slice(header);
        }
        whole.extend_from_slice(&self.payload);
        whole
    }
}

/// The answer to a successful PLAY: the range actually played and, per track, the first
/// sequence number and the RTP time of the range start (RTP-Info).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayStarted {
    pub range: NptRange,
    pub rtp_info: Vec<RtpInfoEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpInfoEntry {
    pub url: String,
    pub seq: u16,
    pub rtptime: u32,
}

/// Why PLAY failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    #[error("range start {start:?} is beyond the end of the movie ({duration:?})")]
    RangeBeyondEnd { start: Duration, duration: Duration },
    #[error(transparent)]
    Media(#[from] CatalogError),
}

/// Wall-clock origin of playback: media time `media` is due at `instant`.
#[derive(Debug, Clone, Copy)]
struct PlayClock {
    instant: Instant,
    media: Duration,
    end: Option<Duration>,
}

/// One RTSP session.
pub struct Session {
    pub id: String,
    /// Path of the movie in the URL (`/sub/x.mp4`).
    pub movie_path: String,
    pub presentation: Arc<dyn Presentation>,
    pub client: SocketAddr,
    /// Our address on the client's RTSP connection (access log `s-ip`).
    pub server_ip: Option<std::net::IpAddr>,
    /// The directory user who set the session up, when its folder required one.
    pub user: Option<String>,
    pub user_agent: Option<String>,
    pub tracks: Vec<TrackStream>,
    pub created_at: Instant,
    pub created_wallclock: SystemTime,
    /// First requested play position (access log `c-starttime`).
    pub first_play_start: Option<Duration>,
    state: SessionState,
    timeout: Duration,
    last_seen: Instant,
    clock: Option<PlayClock>,
    finished: bool,
    /// When the latest packet sent in this play was due (its media time on the wall clock).
    last_packet_due: Option<Instant>,
    /// Until the PLAY response is queued: RTP on an interleaved connection must not overtake
    /// it (RFC 2326 §10.11 clients read the response first).
    held_until: Option<Instant>,
    scratch: BytesMut,
    cname: String,
}

impl Session {
    pub fn new(
        id: String,
        now: Instant,
        wallclock: SystemTime,
        timeout: Duration,
        client: SocketAddr,
        movie_path: String,
        presentation: Arc<dyn Presentation>,
    ) -> Session {
        let cname = format!("serval-{id}");
        Session {
            id,
            movie_path,
            presentation,
            client,
            server_ip: None,
            user: None,
            user_agent: None,
            tracks: Vec::new(),
            created_at: now,
            created_wallclock: wallclock,
            first_play_start: None,
            state: SessionState::Ready,
            timeout,
            last_seen: now,
            clock: None,
            finished: false,
            last_packet_due: None,
            held_until: None,
            scratch: BytesMut::new(),
            cname,
        }
    }

    pub fn state(&self) -> SessionState {
        self.state
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// True once every track reached its end and BYE went out.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Any request or RTCP packet from the client keeps the session alive.
    pub fn touch(&mut self, now: Instant) {
        self.last_seen = now;
    }

    /// When the session expires unless the client shows signs of life.
    pub fn expires_at(&self) -> Instant {
        self.last_seen + self.timeout
    }

    /// True once a PLAY started the session (a flood of SETUPs never does).
    pub fn ever_played(&self) -> bool {
        self.first_play_start.is_some()
    }

    pub fn is_expired(&self, now: Instant) -> bool {
        now >= self.expires_at()
    }

    /// Index of the track with this id, if set up.
    pub fn track_index(&self, track_id: u32) -> Option<usize> {
        self.tracks.iter().position(|t| t.track_id == track_id)
    }

    /// Adds a track (SETUP). Re-SETUP of a known track replaces its transport.
    pub fn set_up_track(
        &mut self,
        track_id: u32,
        control_url: String,
        transport: ChosenTransport,
        seed: TrackSeed,
    ) {
        if let Some(index) = self.track_index(track_id) {
            if let Some(track) = self.tracks.get_mut(index) {
                track.transport = transport;
                track.control_url = control_url;
            }
            return;
        }
        self.tracks.push(TrackStream {
            track_id,
            control_url,
            transport,
            ssrc: seed.ssrc,
            next_seq: seed.initial_seq,
            timestamp_base: seed.timestamp_base,
            source: None,
            pending: None,
            ended: false,
            bye_sent: false,
            last_sender_report: None,
            packets_sent: 0,
            octets_sent: 0,
            receiver: ReceiverStats::default(),
            error: None,
        });
    }

    /// Current media position (what the viewer sees now), for PAUSE and the admin page.
    pub fn position(&self, now: Instant) -> Duration {
        match (self.state, self.clock) {
            (SessionState::Playing, Some(clock)) => {
                let position = clock.media + now.saturating_duration_since(clock.instant);
                position.min(self.presentation.duration())
            }
            (_, Some(clock)) => clock.media,
            (_, None) => Duration::ZERO,
        }
    }

    /// PLAY: from `range.start` (a seek, also while playing), or, without a start, from where
    /// the session paused (or the beginning).
    pub fn play(
        &mut self,
        now: Instant,
        range: Option<NptRange>,
    ) -> Result<PlayStarted, PlayError> {
        let requested_start = range.and_then(|r| r.start);
        let end = range.and_then(|r| r.end);
        let duration = self.presentation.duration();
        let needs_open =
            requested_start.is_some() || self.tracks.iter().any(|t| t.source.is_none() && !t.ended);
        let start = if needs_open {
            let start = requested_start
                .or(self.clock.map(|c| c.media))
                .unwrap_or_default();
            if start > duration && !duration.is_zero() {
                return Err(PlayError::RangeBeyondEnd { start, duration });
            }
            self.open_sources(start)?;
            self.first_play_start.get_or_insert(start);
            // Range start: the earliest track start, so every track's rtptime maps to it.
            self.tracks
                .iter()
                .filter_map(|t| t.source.as_ref().map(|s| s.start))
                .min()
                .unwrap_or(start)
        } else {
            // Resume where we stopped: the earliest packet not yet sent.
            self.resume_position()
        };
        self.clock = Some(PlayClock {
            instant: now,
            media: start,
            end,
        });
        self.state = SessionState::Playing;
        self.finished = false;
        self.last_packet_due = None;
        self.held_until = Some(now + PLAY_RESPONSE_HOLD);
        let rtp_info = self
            .tracks
            .iter()
            .map(|t| RtpInfoEntry {
                url: t.control_url.clone(),
                seq: t.next_seq,
                rtptime: t.rtptime_at(start),
            })
            .collect();
        Ok(PlayStarted {
            range: NptRange {
                start: Some(start),
                end,
            },
            rtp_info,
        })
    }

    /// PAUSE: stop sending, keep the position; returns it.
    pub fn pause(&mut self, now: Instant) -> Duration {
        if self.state == SessionState::Playing {
            let position = self.resume_position().min(self.position(now));
            if let Some(clock) = self.clock.as_mut() {
                clock.media = position;
            }
            self.state = SessionState::Ready;
        }
        self.clock.map(|c| c.media).unwrap_or_default()
    }

    /// Reads one receiver report datagram (or interleaved frame) about `track_index`'s
    /// stream, or about any of ours when the index is unknown.
    pub fn handle_rtcp(&mut self, now: Instant, datagram: &[u8]) -> Result<(), rtcp::RtcpError> {
        self.touch(now);
        for block in rtcp::report_blocks(datagram)? {
            if let Some(track) = self.tracks.iter_mut().find(|t| t.ssrc == block.ssrc) {
                track.receiver = receiver_stats(track.receiver, block);
            }
        }
        Ok(())
    }

    /// The PLAY response is on its way: packets may follow it.
    pub fn release(&mut self) {
        self.held_until = None;
    }

    /// Appends every packet due by `now + SEND_AHEAD` to `out`, and RTCP that is due.
    pub fn poll_packets(
        &mut self,
        now: Instant,
        wallclock: SystemTime,
        out: &mut Vec<OutgoingPacket>,
    ) {
        let (Some(clock), SessionState::Playing) = (self.clock, self.state) else {
            return;
        };
        if self.held_until.is_some_and(|until| now < until) {
            return;
        }
        let horizon = now + SEND_AHEAD;
        let mut budget = MAX_PACKETS_PER_POLL;
        for (track_index, track) in self.tracks.iter_mut().enumerate() {
            let due_sender_report = track
                .last_sender_report
                .is_none_or(|last| now >= last + SENDER_REPORT_INTERVAL);
            while budget > 0 && !track.ended {
                let Some(packet) = track.peek() else { break };
                if clock.end.is_some_and(|end| packet.send_time >= end) {
                    track.ended = true;
                    break;
                }
                let due = clock.instant + packet.send_time.saturating_sub(clock.media);
                if due > horizon {
                    break;
                }
                let Some(packet) = track.pending.take() else {
                    break;
                };
                out.push(OutgoingPacket {
                    track_index,
                    kind: PacketKind::Rtp,
                    rtp_header: Some(track.rtp_header(&packet)),
                    payload: packet.payload,
                });
                self.last_packet_due = Some(self.last_packet_due.map_or(due, |d| d.max(due)));
                budget -= 1;
            }
            if track.packets_sent > 0 && due_sender_report && !track.bye_sent {
                let position = clock.media + now.saturating_duration_since(clock.instant);
                self.scratch.clear();
                rtcp::write_sender_report(
                    &mut self.scratch,
                    &track.sender_info(position, wallclock),
                );
                rtcp::write_sdes_cname(&mut self.scratch, track.ssrc, &self.cname);
                out.push(OutgoingPacket::rtcp(
                    track_index,
                    self.scratch.split().freeze(),
                ));
                track.last_sender_report = Some(now);
            }
        }
        if !self.finished
            && self.tracks.iter().all(|t| t.ended)
            && now >= self.bye_due(clock.instant)
        {
            self.finish(now, wallclock, out);
        }
    }

    /// When BYE may leave once every track has ended.
    fn bye_due(&self, play_started: Instant) -> Instant {
        self.last_packet_due
            .map_or(play_started, |due| due + BYE_AFTER_LAST_PACKET)
    }

    /// When `poll_packets` next has something to do, if ever.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let (Some(clock), SessionState::Playing) = (self.clock, self.state) else {
            return None;
        };
        if self.finished {
            return None;
        }
        if let Some(until) = self.held_until {
            return Some(until);
        }
        let mut wakeup: Option<Instant> = None;
        for track in self.tracks.iter().filter(|t| !t.ended) {
            let at = match &track.pending {
                Some(packet) => (clock.instant + packet.send_time.saturating_sub(clock.media))
                    .checked_sub(SEND_AHEAD),
                // Nothing read yet: the next poll reads it.
                None => Some(clock.instant),
            };
            let report_at = track
                .last_sender_report
                .map(|last| last + SENDER_REPORT_INTERVAL);
            for candidate in [at, report_at].into_iter().flatten() {
                wakeup = Some(wakeup.map_or(candidate, |w| w.min(candidate)));
            }
        }
        wakeup.or(Some(self.bye_due(clock.instant)))
    }

    /// BYE on every track (RFC 3550 §6.6) after a last SR; the session stays until TEARDOWN.
    fn finish(&mut self, now: Instant, wallclock: SystemTime, out: &mut Vec<OutgoingPacket>) {
        let position = self.position(now);
        for (track_index, track) in self.tracks.iter_mut().enumerate() {
            if track.bye_sent {
                continue;
            }
            self.scratch.clear();
            rtcp::write_sender_report(&mut self.scratch, &track.sender_info(position, wallclock));
            rtcp::write_sdes_cname(&mut self.scratch, track.ssrc, &self.cname);
            rtcp::write_bye(&mut self.scratch, track.ssrc);
            out.push(OutgoingPacket::rtcp(
                track_index,
                self.scratch.split().freeze(),
            ));
            track.bye_sent = true;
        }
        self.finished = true;
    }

    fn open_sources(&mut self, start: Duration) -> Result<(), PlayError> {
        for track in &mut self.tracks {
            let packets = self.presentation.packets(track.track_id, start)?;
            track.source = Some(OpenSource {
                clock_rate: packets.clock_rate().max(1),
                payload_type: packets.payload_type(),
                start: packets.start(),
                start_rtp_timestamp: packets.start_rtp_timestamp(),
                packets,
            });
            track.pending = None;
            track.ended = false;
            track.bye_sent = false;
            track.error = None;
        }
        Ok(())
    }

    fn resume_position(&mut self) -> Duration {
        let fallback = self.clock.map(|c| c.media).unwrap_or_default();
        self.tracks
            .iter_mut()
            .filter(|t| !t.ended)
            .filter_map(|t| t.peek().map(|p| p.send_time))
            .min()
            .unwrap_or(fallback)
    }

    /// Bytes and packets sent over all tracks.
    pub fn totals(&self) -> (u64, u64) {
        self.tracks.iter().fold((0, 0), |(bytes, packets), t| {
            (bytes + t.octets_sent, packets + t.packets_sent)
        })
    }
}

impl TrackStream {
    /// The next packet of the source, read if needed; `None` (and `ended`) at its end.
    fn peek(&mut self) -> Option<&MediaPacket> {
        if self.pending.is_none() && !self.ended {
            let source = self.source.as_mut()?;
            match source.packets.next_packet() {
                Ok(Some(packet)) => self.pending = Some(packet),
                Ok(None) => self.ended = true,
                Err(error) => {
                    self.error = Some(error);
                    self.ended = true;
                }
            }
        }
        self.pending.as_ref()
    }

    /// The header of `packet`'s RTP packet, counting it as sent.
    fn rtp_header(&mut self, packet: &MediaPacket) -> [u8; RTP_HEADER_LEN] {
        let payload_type = self.source.as_ref().map_or(96, |s| s.payload_type);
        let header = RtpHeader {
            payload_type,
            marker: packet.marker,
            sequence_number: self.next_seq,
            timestamp: self.timestamp_base.wrapping_add(packet.timestamp),
            ssrc: self.ssrc,
        }
        .to_bytes();
        self.next_seq = self.next_seq.wrapping_add(1);
        self.packets_sent += 1;
        self.octets_sent += u64::try_from(packet.payload.len()).unwrap_or(u64::MAX);
        header
    }

    /// RTP timestamp (with our random base) of media time `at`, by the source's linear clock.
    fn rtptime_at(&self, at: Duration) -> u32 {
        let Some(source) = &self.source else {
            return self.timestamp_base;
        };
        let units = |d: Duration| -> u32 {
            let ticks = d.as_nanos().saturating_mul(u128::from(source.clock_rate)) / 1_000_000_000;
            // RTP time wraps modulo 2^32 by design.
            (ticks % (1u128 << 32)) as u32
        };
        let at_source = if at >= source.start {
            source
                .start_rtp_timestamp
                .wrapping_add(units(at - source.start))
        } else {
            source
                .start_rtp_timestamp
                .wrapping_sub(units(source.start - at))
        };
        self.timestamp_base.wrapping_add(at_source)
    }

    fn sender_info(&self, position: Duration, wallclock: SystemTime) -> SenderInfo {
        SenderInfo {
            ssrc: self.ssrc,
            ntp_timestamp: rtcp::ntp_timestamp(wallclock),
            rtp_timestamp: self.rtptime_at(position),
            // RFC 3550 counters wrap modulo 2^32.
            packet_count: (self.packets_sent % (1 << 32)) as u32,
            octet_count: (self.octets_sent % (1 << 32)) as u32,
        }
    }
}

fn receiver_stats(previous: ReceiverStats, block: ReportBlock) -> ReceiverStats {
    ReceiverStats {
        reports: previous.reports + 1,
        fraction_lost: block.fraction_lost,
        cumulative_lost: block.cumulative_lost,
        jitter: block.jitter,
    }
}
