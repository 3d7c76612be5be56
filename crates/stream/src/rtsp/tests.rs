//! Tests of the protocol core with literal request bytes, a fake movie and a hand-cranked clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rtsp_types::Response;

use crate::library::{Catalog, CatalogError, MediaPacket, Presentation, TrackPackets};
use crate::rtsp::framing::{decode, Decoded, FramingError, RejectStatus, MAX_HEAD_BYTES};
use crate::rtsp::handler::{CloseReason, Connection, Effect, RtspServer, ServerSettings};
use crate::rtsp::session::{OutgoingPacket, PacketKind, SEND_AHEAD};

const VIDEO: u32 = 1;
const AUDIO: u32 = 2;
const GOP: Duration = Duration::from_secs(2);

/// Ten seconds of "video" (one 1000-byte packet per 40 ms frame, keyframes every 2 s, 90 kHz)
/// and "audio" (one 200-byte packet per 20 ms, 48 kHz).
struct FakeMovie;

struct FakeTrack {
    frame: Duration,
    clock_rate: u32,
    payload_type: u8,
    size: usize,
    start: Duration,
    next: Duration,
}

impl TrackPackets for FakeTrack {
    fn clock_rate(&self) -> u32 {
        self.clock_rate
    }
    fn payload_type(&self) -> u8 {
        self.payload_type
    }
    fn start(&self) -> Duration {
        self.start
    }
    fn start_rtp_timestamp(&self) -> u32 {
        (self.start.as_secs_f64() * f64::from(self.clock_rate)).round() as u32
    }
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, String> {
        if self.next >= FakeMovie.duration() {
            return Ok(None);
        }
        let at = self.next;
        self.next += self.frame;
        Ok(Some(MediaPacket {
            send_time: at,
            timestamp: (at.as_secs_f64() * f64::from(self.clock_rate)).round() as u32,
            marker: true,
            payload: Bytes::from(vec![0xAB; self.size]),
        }))
    }
}

impl Presentation for FakeMovie {
    fn sdp(&self, session_name: &str, origin_addr: &str) -> String {
        format!(
            "v=0\r\no=- 0 0 IN IP4 {origin_addr}\r\ns={session_name}\r\nt=0 0\r\na=range:npt=0-10\r\n\
             m=video 0 RTP/AVP 96\r\na=control:trackID=1\r\nm=audio 0 RTP/AVP 97\r\na=control:trackID=2\r\n"
        )
    }
    fn track_ids(&self) -> Vec<u32> {
        vec![VIDEO, AUDIO]
    }
    fn duration(&self) -> Duration {
        Duration::from_secs(10)
    }
    fn file_size(&self) -> u64 {
        1_250_000
    }
    fn codecs(&self) -> (Option<String>, Option<String>) {
        (Some("aac".into()), Some("h264".into()))
    }
    fn packets(
        &self,
        track_id: u32,
        start: Duration,
    ) -> Result<Box<dyn TrackPackets>, CatalogError> {
        let track = match track_id {
            VIDEO => {
                let gop_start = GOP * u32::try_from(start.as_millis() / GOP.as_millis()).unwrap();
                FakeTrack {
                    frame: Duration::from_millis(40),
                    clock_rate: 90_000,
                    payload_type: 96,
                    size: 1000,
                    start: gop_start,
                    next: gop_start,
                }
            }
            AUDIO => {
                let start = Duration::from_millis(start.as_millis() as u64 / 20 * 20);
                FakeTrack {
                    frame: Duration::from_millis(20),
                    clock_rate: 48_000,
                    payload_type: 97,
                    size: 200,
                    start,
                    next: start,
                }
            }
            _ => return Err(CatalogError::NotFound(format!("track {track_id}"))),
        };
        Ok(Box::new(track))
    }
}

struct FakeCatalog;

impl Catalog for FakeCatalog {
    fn open(&self, url_path: &str) -> Result<Arc<dyn Presentation>, CatalogError> {
        match url_path {
            "/movie.mp4" => Ok(Arc::new(FakeMovie)),
            "/audio-only.aiff" => Err(CatalogError::Unsupported("no playable track".into())),
            path if path.contains("..") => Err(CatalogError::Forbidden(path.into())),
            path => Err(CatalogError::NotFound(path.into())),
        }
    }
}

struct Harness {
    server: RtspServer,
    connection: Connection,
    t0: Instant,
    wallclock: SystemTime,
    effects: Vec<Effect>,
}

impl Harness {
    fn new() -> Harness {
        Harness::with_bandwidth(100_000_000)
    }

    fn with_bandwidth(max_bandwidth_bps: u64) -> Harness {
        let settings = ServerSettings {
            session_timeout: Duration::from_secs(60),
            unplayed_session_timeout: Duration::from_secs(20),
            max_bandwidth_bps,
            udp_ports: Some((6970, 6971)),
        };
        let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:8554".parse().unwrap();
        Harness {
            server: RtspServer::new(settings, Arc::new(FakeCatalog), 7),
            connection: Connection::new(1, peer, local),
            t0: Instant::now(),
            wallclock: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            effects: Vec::new(),
        }
    }

    fn max_sessions(self, limit: usize) -> Harness {
        Harness {
            server: self.server.with_max_sessions_per_client(limit),
            ..self
        }
    }

    /// Sends raw bytes at `at` after t0; returns the response text.
    fn send(&mut self, at: Duration, bytes: &str) -> String {
        let mut responses = self.feed(at, bytes.as_bytes());
        assert_eq!(
            responses.len(),
            1,
            "one request, one response: {responses:?}"
        );
        responses.remove(0)
    }

    /// Feeds bytes as a connection would, returning every response.
    fn feed(&mut self, at: Duration, mut buf: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match decode(buf).unwrap() {
                Decoded::Request { request, consumed } => {
                    let (response, effects) = self.server.handle_request(
                        &mut self.connection,
                        self.t0 + at,
                        self.wallclock + at,
                        &request,
                    );
                    // As the driver does once the response is queued.
                    for effect in &effects {
                        if let Effect::Wake { session_id } = effect {
                            for session in self.server.sessions() {
                                let mut guard = crate::rtsp::handler::lock(&session);
                                if guard.id == *session_id {
                                    guard.release();
                                }
                            }
                        }
                    }
                    self.effects.extend(effects);
                    out.push(text(&response));
                    buf = &buf[consumed..];
                }
                Decoded::Rejected {
                    status,
                    cseq,
                    consumed,
                } => {
                    out.push(format!("rejected {status:?} {cseq:?}"));
                    buf = &buf[consumed..];
                }
                Decoded::Interleaved { consumed, .. } | Decoded::Skip { consumed } => {
                    buf = &buf[consumed..]
                }
                Decoded::NeedMore => break,
            }
        }
        out
    }

    fn setup_both(&mut self, transport: &str) -> String {
        let first = self.send(
            Duration::ZERO,
            &format!("SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: {transport}\r\n\r\n"),
        );
        let id = header(&first, "Session")
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let transport = transport
            .replace("5000-5001", "5002-5003")
            .replace("interleaved=0-1", "interleaved=2-3");
        let second = self.send(
            Duration::ZERO,
            &format!("SETUP rtsp://h/movie.mp4/trackID=2 RTSP/1.0\r\nCSeq: 3\r\nSession: {id}\r\nTransport: {transport}\r\n\r\n"),
        );
        assert_eq!(status(&second), 200, "{second}");
        id
    }

    fn play(&mut self, id: &str) {
        let play = self.send(
            Duration::ZERO,
            &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\n\r\n"),
        );
        assert_eq!(status(&play), 200, "{play}");
    }

    /// A new connection from `peer` (another viewer, maybe behind the same address).
    fn connect(&mut self, id: u64, peer: &str) {
        self.connection =
            Connection::new(id, peer.parse().unwrap(), "127.0.0.1:8554".parse().unwrap());
    }

    fn session(&self) -> crate::rtsp::handler::SharedSession {
        self.server.sessions().pop().expect("a session")
    }

    fn poll(&self, at: Duration) -> Vec<OutgoingPacket> {
        let mut out = Vec::new();
        crate::rtsp::handler::lock(&self.session()).poll_packets(
            self.t0 + at,
            self.wallclock + at,
            &mut out,
        );
        out
    }
}

fn text(response: &Response<Vec<u8>>) -> String {
    String::from_utf8(crate::rtsp::handler::response_bytes(response)).unwrap()
}

fn status(response: &str) -> u16 {
    response.split(' ').nth(1).unwrap().parse().unwrap()
}

fn header<'a>(response: &'a str, name: &str) -> &'a str {
    response
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {response}"))
}

const UDP: &str = "RTP/AVP;unicast;client_port=5000-5001";
const TCP: &str = "RTP/AVP/TCP;unicast;interleaved=0-1";

#[test]
fn options_lists_what_is_served() {
    let mut h = Harness::new();
    let response = h.send(Duration::ZERO, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n");
    assert_eq!(status(&response), 200);
    assert_eq!(header(&response, "CSeq"), "1");
    assert_eq!(
        header(&response, "Public"),
        "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
    );
}

#[test]
fn describe_returns_sdp_with_content_base() {
    let mut h = Harness::new();
    let response = h.send(
        Duration::ZERO,
        "DESCRIBE rtsp://h:8554/movie.mp4 RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\n\r\n",
    );
    assert_eq!(status(&response), 200);
    assert_eq!(
        header(&response, "Content-Base"),
        "rtsp://h:8554/movie.mp4/"
    );
    assert_eq!(header(&response, "Content-Type"), "application/sdp");
    assert!(response.contains("a=control:trackID=1"));
    assert!(response.contains("o=- 0 0 IN IP4 127.0.0.1"));
    assert!(response.contains("s=movie.mp4"));
}

#[test]
fn status_codes_for_each_refusal() {
    let mut h = Harness::new();
    let cases: &[(&str, u16)] = &[
        ("DESCRIBE rtsp://h/missing.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 404),
        ("DESCRIBE rtsp://h/audio-only.aiff RTSP/1.0\r\nCSeq: 1\r\n\r\n", 415),
        ("PLAY rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\nSession: NOSUCH\r\n\r\n", 454),
        ("PLAY rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 454),
        ("TEARDOWN rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\nSession: NOSUCH\r\n\r\n", 454),
        ("SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;multicast\r\n\r\n", 461),
        ("SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 461),
        ("SETUP rtsp://h/movie.mp4/trackID=9 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n", 404),
        ("SETUP rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n", 459),
        ("RECORD rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 501),
        ("FROB rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n", 501),
        ("OPTIONS * RTSP/1.0\r\nUser-Agent: no-cseq\r\n\r\n", 400),
        ("SET_PARAMETER rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 5\r\n\r\nx: 1\n", 451),
    ];
    for (request, expected) in cases {
        let response = h.send(Duration::ZERO, request);
        assert_eq!(status(&response), *expected, "{request}\n{response}");
    }
    assert_eq!(
        h.feed(Duration::ZERO, b"OPTIONS * RTSP/2.0\r\nCSeq: 4\r\n\r\n"),
        ["rejected VersionNotSupported Some(\"4\")"]
    );
    assert_eq!(
        h.feed(Duration::ZERO, b"OPTIONS * RTSP/1.1\r\nCSeq: 5\r\n\r\n"),
        ["rejected VersionNotSupported Some(\"5\")"]
    );
    assert_eq!(
        h.feed(Duration::ZERO, b"GARBAGE\r\n\r\n"),
        ["rejected BadRequest None"]
    );
}

#[test]
fn setup_play_pause_resume_teardown_over_udp() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    assert_eq!(h.server.session_count(), 1);
    assert!(matches!(
        h.effects.as_slice(),
        [Effect::Created {
            connection: None,
            ..
        }]
    ));

    let play = h.send(Duration::ZERO, &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\nRange: npt=0.000-\r\n\r\n"));
    assert_eq!(status(&play), 200, "{play}");
    assert_eq!(header(&play, "Range"), "npt=0.000-");
    let rtp_info = header(&play, "RTP-Info");
    assert!(
        rtp_info.starts_with("url=rtsp://h/movie.mp4/trackID=1;seq="),
        "{rtp_info}"
    );
    assert!(
        rtp_info.contains(",url=rtsp://h/movie.mp4/trackID=2;seq="),
        "{rtp_info}"
    );

    // At t0 the first SEND_AHEAD of media leaves at once, plus one SR per track.
    let burst = h.poll(Duration::ZERO);
    let video = burst
        .iter()
        .filter(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
        .count();
    let audio = burst
        .iter()
        .filter(|p| p.track_index == 1 && p.kind == PacketKind::Rtp)
        .count();
    assert_eq!(video, 7, "0..=240 ms of 40 ms frames");
    assert_eq!(audio, 13, "0..=240 ms of 20 ms frames");
    assert_eq!(
        burst.iter().filter(|p| p.kind == PacketKind::Rtcp).count(),
        2
    );
    // Nothing more is due until time moves.
    assert!(h.poll(Duration::ZERO).is_empty());
    // The RTP seq of the first packet matches RTP-Info.
    let first_seq = u16::from_be_bytes([burst[0].to_vec()[2], burst[0].to_vec()[3]]);
    assert!(rtp_info.contains(&format!("seq={first_seq};")));
    let one_second = h.poll(Duration::from_secs(1));
    assert_eq!(
        one_second
            .iter()
            .filter(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
            .count(),
        25
    );

    // PAUSE at 1.5 s; nothing flows while paused.
    let pause = h.send(
        Duration::from_millis(1500),
        &format!("PAUSE rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 5\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&pause), 200, "{pause}");
    assert_eq!(
        header(&pause, "Range"),
        "npt=1.260-",
        "first unsent packet after 1 s + SEND_AHEAD"
    );
    assert!(h.poll(Duration::from_secs(5)).is_empty());
    let again = h.send(
        Duration::from_secs(5),
        &format!("PAUSE rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 6\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&again), 455);

    // Resume without Range continues from the pause point with the next sequence numbers.
    let resume = h.send(
        Duration::from_secs(6),
        &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 7\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&resume), 200);
    assert_eq!(header(&resume, "Range"), "npt=1.260-");
    let resumed = h.poll(Duration::from_secs(6));
    let next_seq = u16::from_be_bytes([resumed[0].to_vec()[2], resumed[0].to_vec()[3]]);
    assert!(header(&resume, "RTP-Info").contains(&format!("seq={next_seq};")));

    let teardown = h.send(
        Duration::from_secs(7),
        &format!("TEARDOWN rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 8\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&teardown), 200);
    assert_eq!(h.server.session_count(), 0);
    assert!(matches!(h.effects.last(), Some(Effect::Closed(_))));
}

#[test]
fn play_with_range_seeks_to_the_keyframe_and_maps_rtptime() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    let play = h.send(Duration::ZERO, &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\nRange: npt=5-\r\n\r\n"));
    // Video restarts at the 4 s keyframe; the range reports it.
    assert_eq!(header(&play, "Range"), "npt=4.000-");
    let packets = h.poll(Duration::ZERO);
    let ts_of = |p: &OutgoingPacket| {
        u32::from_be_bytes([p.to_vec()[4], p.to_vec()[5], p.to_vec()[6], p.to_vec()[7]])
    };
    let first_video = packets
        .iter()
        .find(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
        .unwrap();
    assert!(header(&play, "RTP-Info").contains(&format!("rtptime={}", ts_of(first_video))));
    // Seek while playing: a new Range moves at once, sequence numbers continue.
    let last_seq = u16::from_be_bytes([
        packets.last().unwrap().to_vec()[2],
        packets.last().unwrap().to_vec()[3],
    ]);
    let seek = h.send(Duration::from_millis(100), &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 5\r\nSession: {id}\r\nRange: npt=8.5-\r\n\r\n"));
    assert_eq!(status(&seek), 200);
    assert_eq!(header(&seek, "Range"), "npt=8.000-");
    let _ = last_seq;
    let beyond = h.send(Duration::from_millis(200), &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 6\r\nSession: {id}\r\nRange: npt=30-\r\n\r\n"));
    assert_eq!(status(&beyond), 457);
    let scaled = h.send(
        Duration::from_millis(200),
        &format!(
            "PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 7\r\nSession: {id}\r\nScale: 2.0\r\n\r\n"
        ),
    );
    assert_eq!(status(&scaled), 456);
    let track_only = h.send(
        Duration::from_millis(200),
        &format!("PLAY rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 8\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&track_only), 460);
    let new_track_while_playing = h.send(Duration::from_millis(200), &format!("SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 9\r\nSession: {id}\r\nTransport: {UDP}\r\n\r\n"));
    assert_eq!(
        status(&new_track_while_playing),
        200,
        "re-SETUP of a known track is allowed"
    );
}

#[test]
fn end_of_movie_sends_bye_once_and_keeps_the_session() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    h.send(Duration::ZERO, &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\nRange: npt=9-\r\n\r\n"));
    let mut all = h.poll(Duration::ZERO);
    all.extend(h.poll(Duration::from_secs(2)));
    let rtp_video = all
        .iter()
        .filter(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
        .count();
    assert_eq!(rtp_video, 50, "from the 8 s keyframe: 8.00..=9.96");
    let is_bye = |p: &&OutgoingPacket| {
        p.kind == PacketKind::Rtcp && p.to_vec().windows(2).any(|w| w == [0x81, 203])
    };
    assert_eq!(
        all.iter().filter(is_bye).count(),
        0,
        "BYE waits until the last packet's media time has passed"
    );
    let later = h.poll(Duration::from_secs(3));
    assert_eq!(later.iter().filter(is_bye).count(), 2);
    assert!(h.poll(Duration::from_secs(4)).is_empty());
    assert!(crate::rtsp::handler::lock(&h.session()).is_finished());
    assert_eq!(h.server.session_count(), 1);
}

#[test]
fn silence_times_out_and_keepalives_and_rtcp_extend() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    h.play(&id);
    assert!(h.server.expire(h.t0 + Duration::from_secs(59)).is_empty());
    let keepalive = h.send(
        Duration::from_secs(50),
        &format!("GET_PARAMETER rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 9\r\nSession: {id}\r\n\r\n"),
    );
    assert_eq!(status(&keepalive), 200);
    assert!(h.server.expire(h.t0 + Duration::from_secs(100)).is_empty());
    // A receiver report on the shared RTCP port, from the client's RTCP address, counts too.
    let ssrc = crate::rtsp::handler::lock(&h.session()).tracks[0].ssrc;
    let mut rr = vec![0x81, 201, 0, 7, 0x11, 0x11, 0x11, 0x11];
    rr.extend_from_slice(&ssrc.to_be_bytes());
    rr.extend_from_slice(&[
        25, 0, 0, 3, 0, 0, 0x10, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0,
    ]);
    assert_eq!(
        h.server.udp_rtcp(
            "127.0.0.1:5001".parse().unwrap(),
            h.t0 + Duration::from_secs(105),
            &rr
        ),
        Some(id.clone())
    );
    assert_eq!(
        h.server
            .udp_rtcp("127.0.0.1:9999".parse().unwrap(), h.t0, &rr),
        None
    );
    let receiver = crate::rtsp::handler::lock(&h.session()).tracks[0].receiver;
    assert_eq!(
        (
            receiver.cumulative_lost,
            receiver.jitter,
            receiver.fraction_lost
        ),
        (3, 9, 25)
    );
    assert!(h.server.expire(h.t0 + Duration::from_secs(164)).is_empty());
    let expired = h.server.expire(h.t0 + Duration::from_secs(166));
    assert_eq!(expired.len(), 1);
    assert_eq!(h.server.session_count(), 0);
    // Its RTCP route is gone with it.
    assert_eq!(
        h.server
            .udp_rtcp("127.0.0.1:5001".parse().unwrap(), h.t0, &rr),
        None
    );
}

#[test]
fn tcp_interleaved_sessions_end_with_their_connection() {
    let mut h = Harness::new();
    let id = h.setup_both("RTP/AVP/TCP;unicast;interleaved=0-1");
    assert!(matches!(
        h.effects.as_slice(),
        [Effect::Created {
            connection: Some(1),
            ..
        }]
    ));
    let mixed = h.send(Duration::ZERO, &format!("SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 9\r\nSession: {id}\r\nTransport: {UDP}\r\n\r\n"));
    assert_eq!(status(&mixed), 461);
    let closed = h.server.connection_closed(h.connection.id, h.t0);
    assert_eq!(closed.len(), 1);
    assert_eq!(h.server.session_count(), 0);
}

#[test]
fn bandwidth_budget_refuses_with_453() {
    // The fake movie is 1 Mbit/s; allow one session's worth.
    let mut h = Harness::with_bandwidth(1_500_000);
    let id = h.setup_both(UDP);
    h.play(&id);
    let second = h.send(
        Duration::ZERO,
        &format!(
            "SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 9\r\nTransport: {UDP}\r\n\r\n"
        ),
    );
    assert_eq!(status(&second), 453);
}

#[test]
fn a_never_played_session_expires_after_the_unplayed_timeout() {
    let mut h = Harness::new();
    let unplayed = h.setup_both(UDP);
    h.connect(2, "127.0.0.1:40002");
    let played = h.setup_both(UDP);
    h.play(&played);
    assert!(h.server.expire(h.t0 + Duration::from_secs(19)).is_empty());
    // Keep-alives do not save a session that never plays.
    let keepalive = h.send(
        Duration::from_secs(15),
        &format!(
            "GET_PARAMETER rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 9\r\nSession: {unplayed}\r\n\r\n"
        ),
    );
    assert_eq!(status(&keepalive), 200);
    let closed = h.server.expire(h.t0 + Duration::from_secs(20));
    assert_eq!(closed.len(), 1);
    assert_eq!(crate::rtsp::handler::lock(&closed[0].session).id, unplayed);
    assert_eq!(closed[0].reason, CloseReason::NeverPlayed);
    assert_eq!(h.server.session_count(), 1, "the playing session stays");
}

#[test]
fn a_setup_flood_never_refuses_a_viewer_from_the_same_or_another_address() {
    // Room for 10 sessions of the 1 Mbit/s fake movie, 10 per address.
    let mut h = Harness::with_bandwidth(10_500_000).max_sessions(10);
    // Two neighbours behind the flooder's NAT address play first.
    let mut playing = Vec::new();
    for n in 0..2 {
        h.connect(100 + n, &format!("192.0.2.7:{}", 41000 + n));
        let id = h.setup_both(UDP);
        h.play(&id);
        playing.push(id);
    }
    // 50 SETUPs that never PLAY, from that address.
    for n in 0..50 {
        h.connect(200 + n, &format!("192.0.2.7:{}", 42000 + n));
        h.setup_both(UDP);
    }
    assert_eq!(h.server.session_count(), 10);
    // A viewer from the same address, and one from elsewhere, still get in and play.
    for (n, peer) in ["192.0.2.7:43000", "198.51.100.1:43001"]
        .into_iter()
        .enumerate()
    {
        h.connect(300 + n as u64, peer);
        let id = h.setup_both(UDP);
        h.play(&id);
        playing.push(id);
    }
    let open: Vec<String> = h
        .server
        .sessions()
        .iter()
        .map(|s| crate::rtsp::handler::lock(s).id.clone())
        .collect();
    for id in &playing {
        assert!(open.contains(id), "playing session {id} was closed");
    }
    let evicted = h
        .effects
        .iter()
        .filter(|e| matches!(e, Effect::Closed(c) if c.reason == CloseReason::EvictedUnplayed))
        .count();
    assert_eq!(evicted, 44, "52 set up + 2 newcomers - 10 places");
    // When every place plays, a newcomer is refused: playing sessions are never closed.
    for n in 0..6 {
        h.connect(400 + n, &format!("203.0.113.{n}:44000"));
        let id = h.setup_both(UDP);
        h.play(&id);
    }
    h.connect(500, "203.0.113.99:44000");
    let refused = h.send(
        Duration::ZERO,
        &format!(
            "SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: {UDP}\r\n\r\n"
        ),
    );
    assert_eq!(status(&refused), 453);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let mut h = Harness::new();
    let responses = h.feed(
        Duration::ZERO,
        b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nDESCRIBE rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n$\x01\x00\x02hi\r\nOPTIONS * RTSP/1.0\r\nCSeq: 3\r\n\r\n",
    );
    let cseqs: Vec<_> = responses
        .iter()
        .map(|r| header(r, "CSeq").to_owned())
        .collect();
    assert_eq!(cseqs, ["1", "2", "3"]);
}

#[test]
fn every_split_point_of_a_request_decodes_the_same() {
    let request = b"SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n$\x01\x00\x03abcSET_PARAMETER rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 3\r\nContent-Length: 4\r\n\r\nab\r\n";
    for split in 0..request.len() {
        let mut buffer = Vec::new();
        let mut units = Vec::new();
        for chunk in [&request[..split], &request[split..]] {
            buffer.extend_from_slice(chunk);
            loop {
                let decoded = decode(&buffer).unwrap();
                let consumed = decoded.consumed();
                match decoded {
                    Decoded::NeedMore => break,
                    Decoded::Request { request, .. } => {
                        units.push(format!("{:?}", request.method()))
                    }
                    Decoded::Interleaved {
                        channel, payload, ..
                    } => units.push(format!("${channel}:{payload:?}")),
                    other => units.push(format!("{other:?}")),
                }
                buffer.drain(..consumed);
            }
        }
        assert_eq!(
            units,
            ["Setup", "$1:[97, 98, 99]", "SetParameter"],
            "split at {split}"
        );
        assert!(buffer.is_empty());
    }
}

#[test]
fn framing_limits_are_enforced() {
    let huge = format!(
        "OPTIONS * RTSP/1.0\r\nX: {}\r\n",
        "a".repeat(MAX_HEAD_BYTES)
    );
    assert_eq!(
        decode(huge.as_bytes()).unwrap_err(),
        FramingError::HeadTooLarge {
            limit: MAX_HEAD_BYTES
        }
    );
    let many = format!("OPTIONS * RTSP/1.0\r\n{}\r\n", "X: 1\r\n".repeat(65));
    assert!(matches!(
        decode(many.as_bytes()),
        Err(FramingError::TooManyHeaders { .. })
    ));
    let big_body = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n";
    assert!(matches!(
        decode(big_body),
        Err(FramingError::BodyTooLarge { .. })
    ));
    let negative = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: -1\r\n\r\n";
    assert!(matches!(
        decode(negative),
        Err(FramingError::BadContentLength { .. })
    ));
    assert!(matches!(
        decode(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n"),
        Err(FramingError::UnexpectedResponse)
    ));
    // A partial interleaved frame waits for its bytes.
    assert!(matches!(
        decode(b"$\x00\xff\xff abc"),
        Ok(Decoded::NeedMore)
    ));
    assert!(matches!(
        decode(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n"),
        Ok(Decoded::NeedMore)
    ));
    assert!(matches!(decode(b"\r\n"), Ok(Decoded::Skip { consumed: 2 })));
    assert!(matches!(
        decode(b"OPTIONS * HTTP/1.1\r\n\r\n"),
        Ok(Decoded::Rejected {
            status: RejectStatus::BadRequest,
            ..
        })
    ));
}

#[test]
fn an_over_long_request_line_is_414_in_rtsp() {
    let uri = format!(
        "DESCRIBE rtsp://h/{} RTSP/1.0",
        "a".repeat(MAX_HEAD_BYTES + 10)
    );
    let error = decode(uri.as_bytes()).unwrap_err();
    assert_eq!(
        error,
        FramingError::UriTooLong {
            limit: MAX_HEAD_BYTES
        }
    );
    assert_eq!(error.status(), rtsp_types::StatusCode::RequestURITooLong);
    let header_flood = format!("OPTIONS * RTSP/1.0\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
    assert_eq!(
        decode(header_flood.as_bytes()).unwrap_err().status(),
        rtsp_types::StatusCode::BadRequest
    );
}

#[test]
fn a_cseq_that_is_not_a_number_is_400() {
    for bad in ["abc", "1x", "-1", "99999999999"] {
        let request = format!("OPTIONS * RTSP/1.0\r\nCSeq: {bad}\r\n\r\n");
        match decode(request.as_bytes()) {
            Ok(Decoded::Rejected { status, .. }) => {
                assert_eq!(status, RejectStatus::BadRequest, "CSeq: {bad}")
            }
            Ok(Decoded::Request { request, .. }) => {
                let mut h = Harness::new();
                let (response, _) = h.server.handle_request(
                    &mut h.connection,
                    h.t0,
                    std::time::SystemTime::now(),
                    &request,
                );
                assert_eq!(u16::from(response.status()), 400, "CSeq: {bad}");
            }
            other => panic!("CSeq: {bad}: {other:?}"),
        }
    }
}

#[test]
fn bare_lf_line_ends_are_answered() {
    let request = b"OPTIONS * RTSP/1.0\nCSeq: 7\nUser-Agent: lf\n\nOPTIONS * RTSP/1.0\r\n";
    match decode(request) {
        Ok(Decoded::Request { request, consumed }) => {
            assert_eq!(consumed, 43);
            assert_eq!(
                request.header(&rtsp_types::headers::CSEQ).unwrap().as_str(),
                "7"
            );
        }
        other => panic!("{other:?}"),
    }
    let mixed = b"DESCRIBE rtsp://h/movie.mp4 RTSP/1.0\r\nCSeq: 2\n\r\n";
    assert!(
        matches!(decode(mixed), Ok(Decoded::Request { consumed, .. }) if consumed == mixed.len())
    );
    assert!(matches!(
        decode(b"OPTIONS * RTSP/1.0\nCSeq: 7\n"),
        Ok(Decoded::NeedMore)
    ));
}

#[test]
fn pacing_never_runs_ahead_of_the_send_window() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    h.send(
        Duration::ZERO,
        &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\n\r\n"),
    );
    let mut sent_video = 0usize;
    let mut now = Duration::ZERO;
    while now < Duration::from_secs(3) {
        sent_video += h
            .poll(now)
            .iter()
            .filter(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
            .count();
        // Frames with send_time <= now + SEND_AHEAD, and no more.
        let allowed = ((now + SEND_AHEAD).as_millis() / 40 + 1) as usize;
        assert_eq!(sent_video, allowed, "at {now:?}");
        let wakeup = crate::rtsp::handler::lock(&h.session())
            .next_wakeup()
            .unwrap();
        assert!(wakeup > h.t0 + now || sent_video == allowed);
        now += Duration::from_millis(20);
    }
}

#[test]
fn range_end_stops_the_streams_and_sends_bye() {
    let mut h = Harness::new();
    let id = h.setup_both(UDP);
    let play = h.send(
        Duration::ZERO,
        &format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\nRange: npt=2-3\r\n\r\n"),
    );
    assert_eq!(header(&play, "Range"), "npt=2.000-3.000");
    let mut all = h.poll(Duration::ZERO);
    all.extend(h.poll(Duration::from_secs(2)));
    let video = all
        .iter()
        .filter(|p| p.track_index == 0 && p.kind == PacketKind::Rtp)
        .count();
    assert_eq!(video, 25, "2.00..=2.96 s");
    assert!(crate::rtsp::handler::lock(&h.session()).is_finished());
}

#[test]
fn receiver_reports_over_the_interleaved_channel_are_read() {
    let mut h = Harness::new();
    h.setup_both("RTP/AVP/TCP;unicast;interleaved=0-1");
    let ssrc = crate::rtsp::handler::lock(&h.session()).tracks[1].ssrc;
    let mut frame = vec![b'$', 3, 0, 32, 0x81, 201, 0, 7, 0, 0, 0, 1];
    frame.extend_from_slice(&ssrc.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]);
    match decode(&frame).unwrap() {
        Decoded::Interleaved {
            channel, payload, ..
        } => h.server.interleaved(
            &h.connection,
            h.t0 + Duration::from_secs(70),
            channel,
            payload,
        ),
        other => panic!("{other:?}"),
    }
    let session = h.session();
    let guard = crate::rtsp::handler::lock(&session);
    assert_eq!(guard.tracks[1].receiver.cumulative_lost, 5);
    assert_eq!(guard.tracks[1].receiver.jitter, 4);
    // It also counted as a sign of life.
    assert!(!guard.is_expired(h.t0 + Duration::from_secs(100)));
}

#[test]
fn play_packets_wait_for_the_response_to_be_queued() {
    let mut h = Harness::new();
    let id = h.setup_both(TCP);
    let play = format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\n\r\n");
    let Decoded::Request { request, .. } = decode(play.as_bytes()).unwrap() else {
        panic!("a request");
    };
    // Straight to the handler, without the release the driver gives once the response is out.
    let (response, _) = h
        .server
        .handle_request(&mut h.connection, h.t0, h.wallclock, &request);
    assert_eq!(response.status(), rtsp_types::StatusCode::Ok);
    assert!(
        h.poll(Duration::from_millis(10)).is_empty(),
        "held until released"
    );
    crate::rtsp::handler::lock(&h.session()).release();
    assert!(!h.poll(Duration::from_millis(20)).is_empty());
    // A driver that never releases still plays, after the bound.
    let mut h = Harness::new();
    let id = h.setup_both(TCP);
    let play = format!("PLAY rtsp://h/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {id}\r\n\r\n");
    let Decoded::Request { request, .. } = decode(play.as_bytes()).unwrap() else {
        panic!("a request");
    };
    h.server
        .handle_request(&mut h.connection, h.t0, h.wallclock, &request);
    assert!(!h.poll(crate::rtsp::session::PLAY_RESPONSE_HOLD).is_empty());
}
