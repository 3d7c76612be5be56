//! The server driven over raw sockets: every refusal's status, pipelined requests, PAUSE and
//! resume with real RTP over UDP, session timeout, connection limit, admin page and metrics.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::TestServer;
use serval_stream_media::testing;

/// A blocking RTSP client over one TCP connection.
struct RawClient {
    stream: TcpStream,
    buffer: Vec<u8>,
}

struct RawResponse {
    status: u16,
    head: String,
    body: String,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    /// The session id of a SETUP answer (the `Session` header before `;timeout=`).
    fn session_id(&self) -> String {
        let session = self.header("Session").expect("a Session header");
        session.split(';').next().unwrap_or(session).to_owned()
    }
}

impl RawClient {
    fn connect(server: &TestServer) -> RawClient {
        let stream = TcpStream::connect(server.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawClient {
            stream,
            buffer: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &str) {
        self.stream.write_all(bytes.as_bytes()).unwrap();
    }

    /// Reads the next response, skipping interleaved frames.
    fn response(&mut self) -> RawResponse {
        loop {
            if self.buffer.first() == Some(&b'$') && self.buffer.len() >= 4 {
                let len = 4 + usize::from(u16::from_be_bytes([self.buffer[2], self.buffer[3]]));
                if self.buffer.len() >= len {
                    self.buffer.drain(..len);
                    continue;
                }
            } else if let Some(end) = self.buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.buffer[..end]).into_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .map_or(0, |v| v.trim().parse().unwrap());
                if self.buffer.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&self.buffer[end + 4..end + 4 + length])
                        .into_owned();
                    self.buffer.drain(..end + 4 + length);
                    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
                    return RawResponse { status, head, body };
                }
            }
            let mut chunk = [0u8; 65536];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("response before timeout");
            assert!(n > 0, "server closed the connection");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn request(&mut self, bytes: &str) -> RawResponse {
        self.send(bytes);
        self.response()
    }
}

fn start_h264() -> TestServer {
    let movie = testing::H264_AAC.path();
    let unplayable = testing::MJPEG_MOV.path();
    TestServer::start(&[("movie.mp4", &movie), ("sub/mjpeg.mov", &unplayable)])
}

#[test]
fn each_refusal_has_its_status() {
    let server = start_h264();
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let host = server.addr;
    let cases: Vec<(String, u16)> = vec![
        (
            format!("DESCRIBE rtsp://{host}/missing.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            404,
        ),
        (
            format!("DESCRIBE rtsp://{host}/sub/mjpeg.mov RTSP/1.0\r\nCSeq: 2\r\n\r\n"),
            415,
        ),
        // The URL parser already folds `%2e%2e` segments, leaving /etc/passwd under the root: 404.
        (
            format!("DESCRIBE rtsp://{host}/%2e%2e/%2e%2e/etc/passwd RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
            404,
        ),
        (
            format!("DESCRIBE rtsp://{host}/sub/..%252fmovie.mp4 RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
            404,
        ),
        (
            format!("DESCRIBE rtsp://{host}/sub%2f..%2f..%2fmovie.mp4 RTSP/1.0\r\nCSeq: 4\r\n\r\n"),
            403,
        ),
        (
            format!("PLAY {url} RTSP/1.0\r\nCSeq: 5\r\nSession: 0123456789\r\n\r\n"),
            454,
        ),
        (
            format!(
                "SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 6\r\nTransport: RTP/AVP;multicast\r\n\r\n"
            ),
            461,
        ),
        (
            format!("SETUP {url} RTSP/1.0\r\nCSeq: 7\r\nTransport: RTP/AVP/TCP;unicast\r\n\r\n"),
            459,
        ),
        (format!("ANNOUNCE {url} RTSP/1.0\r\nCSeq: 8\r\n\r\n"), 501),
        ("OPTIONS * RTSP/2.0\r\nCSeq: 9\r\n\r\n".to_owned(), 505),
        ("OPTIONS * RTSP/1.0\r\n\r\n".to_owned(), 400),
    ];
    for (request, expected) in cases {
        let response = client.request(&request);
        assert_eq!(response.status, expected, "{request}{}", response.head);
    }
    // The connection still works after all that.
    assert_eq!(
        client
            .request("OPTIONS * RTSP/1.0\r\nCSeq: 10\r\n\r\n")
            .status,
        200
    );
    // 455: PAUSE of a session that is not playing.
    let setup = client.request(&format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 11\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"));
    assert_eq!(setup.status, 200, "{}", setup.head);
    let session = setup.session_id();
    let pause = client.request(&format!(
        "PAUSE {url} RTSP/1.0\r\nCSeq: 12\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(pause.status, 455);
    // A malformed stream closes the connection with 400 and nothing else.
    let mut bad = RawClient::connect(&server);
    bad.send(&format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: {}\r\n",
        "a".repeat(10_000)
    ));
    assert_eq!(bad.response().status, 400);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = start_h264();
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    client.send(&format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\nDESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\n\r\nGET_PARAMETER {url} RTSP/1.0\r\nCSeq: 3\r\n\r\n"
    ));
    let first = client.response();
    let second = client.response();
    let third = client.response();
    assert_eq!(
        [
            first.header("CSeq"),
            second.header("CSeq"),
            third.header("CSeq")
        ],
        [Some("1"), Some("2"), Some("3")]
    );
    assert!(second.body.contains("m=video"), "{}", second.body);
    assert_eq!(
        second.header("Content-Base"),
        Some(format!("{url}/").as_str())
    );
}

fn rtp_seq(datagram: &[u8]) -> u16 {
    u16::from_be_bytes([datagram[2], datagram[3]])
}

#[test]
fn pause_stops_packets_and_play_resumes_where_it_paused() {
    let server = start_h264();
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = rtp.local_addr().unwrap().port();
    let setup = client.request(&format!(
        "SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={port}-{}\r\n\r\n",
        port + 1
    ));
    assert_eq!(setup.status, 200, "{}", setup.head);
    assert!(setup.header("Transport").unwrap().contains("server_port="));
    let session = setup.session_id();
    assert!(setup.header("Session").unwrap().contains(";timeout=60"));

    let started = Instant::now();
    let play = client.request(&format!(
        "PLAY {url}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\nRange: npt=0-\r\n\r\n"
    ));
    assert_eq!(play.status, 200);
    let rtp_info = play.header("RTP-Info").unwrap().to_owned();
    let mut datagram = [0u8; 2048];
    let (n, _) = rtp.recv_from(&mut datagram).expect("first packet");
    let first_packet_after = started.elapsed();
    assert!(
        rtp_info.contains(&format!("seq={}", rtp_seq(&datagram[..n]))),
        "{rtp_info}"
    );
    assert!(
        first_packet_after < Duration::from_millis(500),
        "PLAY to first packet took {first_packet_after:?}"
    );
    let mut last_seq = rtp_seq(&datagram[..n]);
    let until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < until {
        if let Ok((n, _)) = rtp.recv_from(&mut datagram) {
            last_seq = rtp_seq(&datagram[..n]);
        }
    }
    let pause = client.request(&format!(
        "PAUSE {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(pause.status, 200);
    let paused_at: f64 = pause
        .header("Range")
        .unwrap()
        .trim_start_matches("npt=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(paused_at > 0.5 && paused_at < 1.5, "paused at {paused_at}");
    // Drain what was in flight, then silence.
    while let Ok((n, _)) = rtp.recv_from(&mut datagram) {
        last_seq = rtp_seq(&datagram[..n]);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        rtp.recv_from(&mut datagram).is_err(),
        "packets flowed while paused"
    );

    let resume = client.request(&format!(
        "PLAY {url}/ RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(resume.status, 200);
    let resumed_at: f64 = resume
        .header("Range")
        .unwrap()
        .trim_start_matches("npt=")
        .trim_end_matches('-')
        .parse()
        .unwrap();
    assert!(
        (resumed_at - paused_at).abs() < 0.3,
        "resumed at {resumed_at}, paused at {paused_at}"
    );
    let (n, _) = rtp.recv_from(&mut datagram).expect("packets after resume");
    assert_eq!(
        rtp_seq(&datagram[..n]),
        last_seq.wrapping_add(1),
        "sequence continues across the pause"
    );

    let teardown = client.request(&format!(
        "TEARDOWN {url}/ RTSP/1.0\r\nCSeq: 5\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(teardown.status, 200);
    assert_eq!(server.service.connections(), 0);
    let log = server.access_log();
    let line = log
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("an access log line");
    assert!(line.starts_with("127.0.0.1 "), "{line}");
    assert!(line.contains(" /movie.mp4 0 "), "{line}");
    assert!(line.contains(" RTP UDP aac h264 "), "{line}");
    let metrics = server.metrics_text();
    assert!(metrics.contains("stream_sessions_total 1"), "{metrics}");
    assert!(metrics.contains("stream_sessions_open 0"), "{metrics}");
}

#[test]
fn silent_sessions_time_out() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(&[("movie.mp4", &movie)], |config| {
        config.session_timeout = serval_core::config::HumanDuration(Duration::from_secs(5));
    });
    let mut idle = RawClient::connect(&server);
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let setup = client.request(&format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=9-10\r\n\r\n"));
    assert_eq!(
        setup.header("Session").unwrap().split(';').nth(1),
        Some("timeout=5")
    );
    let session = setup.session_id();
    assert_eq!(server.service.connections(), 1);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(server.service.connections(), 0);
    let late = client.request(&format!(
        "GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(late.status, 454);
    // The connection that never set up a session and stayed silent was closed.
    let mut byte = [0u8; 1];
    assert_eq!(
        idle.stream.read(&mut byte).expect("closed, not timed out"),
        0
    );
}

#[test]
fn connections_over_the_limit_get_503() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(&[("movie.mp4", &movie)], |config| {
        config.max_connections = 1
    });
    // The first client holds a session, so it is not an idle connection the server may close
    // to make room (see hostile.rs for that).
    let mut first = RawClient::connect(&server);
    let setup = format!(
        "SETUP {}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        server.url("movie.mp4")
    );
    assert_eq!(first.request(&setup).status, 200);
    let mut second = RawClient::connect(&server);
    assert_eq!(second.response().status, 503);
    drop(first);
    std::thread::sleep(Duration::from_millis(200));
    let mut third = RawClient::connect(&server);
    assert_eq!(
        third
            .request("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn admin_page_lists_sessions_and_movies_and_ends_a_session() {
    let server = start_h264();
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let setup = client.request(&format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"));
    let session = setup.session_id();
    let panel = server.service.admin_panel().expect("an admin panel");
    let html = panel.render(
        "<input type=hidden name=csrf value=x>",
        "/admin/service/stream",
    );
    assert!(
        html.contains("/movie.mp4") && html.contains("TCP") && html.contains(&session),
        "{html}"
    );
    assert!(html.contains("h264") && html.contains("aac"), "{html}");
    assert!(
        html.contains("sub/mjpeg.mov") && html.contains("cannot be streamed"),
        "{html}"
    );
    let json = panel.json();
    assert_eq!(json["sessions"][0]["id"], session.as_str());
    let ended = panel.handle_action(&[
        ("action".into(), "end".into()),
        ("session".into(), session.clone()),
    ]);
    assert!(ended.is_ok(), "{ended:?}");
    assert_eq!(server.service.connections(), 0);
    let play = client.request(&format!(
        "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(play.status, 454);
}

#[test]
fn a_tcp_client_that_stops_reading_is_dropped_and_others_still_served() {
    // Lossless H.264 makes a high-bitrate file quickly, so the bounded queue fills in seconds.
    let movie = testing::fixture(
        "h264_lossless_720p.mp4",
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25:duration=8",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-qp",
            "0",
            "-pix_fmt",
            "yuv420p",
        ],
    );
    let server = TestServer::start(&[("big.mp4", &movie)]);
    let url = server.url("big.mp4");
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // A small receive window: the server's queue, not the kernel, must absorb the backlog.
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stalled = RawClient {
        stream: socket.into(),
        buffer: Vec::new(),
    };
    stalled
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let setup = stalled.request(&format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"));
    let session = setup.session_id();
    stalled.send(&format!(
        "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    // Never read again. The server drops the connection and its session.
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.service.connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        server.service.connections(),
        0,
        "the stalled session is still open"
    );
    assert!(
        server
            .metrics_text()
            .contains("stream_slow_readers_dropped_total 1"),
        "{}",
        server.metrics_text()
    );
    let mut healthy = RawClient::connect(&server);
    assert_eq!(
        healthy
            .request("OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn a_symlink_out_of_the_media_folder_is_refused() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret.mp4");
    std::fs::copy(testing::H264_AAC.path(), &secret).unwrap();
    let server = start_h264();
    std::os::unix::fs::symlink(&secret, server.media_dir.join("link.mp4")).unwrap();
    let mut client = RawClient::connect(&server);
    let response = client.request(&format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        server.url("link.mp4")
    ));
    assert_eq!(response.status, 403);
    assert!(response.body.is_empty());
}

#[test]
fn max_payload_bounds_every_rtp_packet() {
    let movie = testing::H264_AAC.path();
    let server =
        TestServer::start_with(&[("movie.mp4", &movie)], |config| config.max_payload = 600);
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    rtp.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = rtp.local_addr().unwrap().port();
    let setup = client.request(&format!(
        "SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={port}-{}\r\n\r\n",
        port + 1
    ));
    let session = setup.session_id();
    assert_eq!(
        client
            .request(&format!(
                "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
            ))
            .status,
        200
    );
    let mut datagram = [0u8; 2048];
    let mut largest = 0;
    for _ in 0..100 {
        let (n, _) = rtp.recv_from(&mut datagram).expect("RTP");
        largest = largest.max(n);
    }
    assert_eq!(
        largest,
        12 + 600,
        "the I-frame is fragmented to exactly the limit"
    );
}

/// Packet chunks show in `/metrics` while a session plays and are freed once it ends: the
/// shared packet cache holds nothing nobody plays.
#[test]
fn packet_chunks_are_counted_while_playing_and_freed_after_teardown() {
    let server = start_h264();
    let mut client = RawClient::connect(&server);
    let url = server.url("movie.mp4");
    let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = rtp.local_addr().unwrap().port();
    let setup = client.request(&format!(
        "SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port={port}-{}\r\n\r\n",
        port + 1
    ));
    assert_eq!(setup.status, 200, "{}", setup.head);
    let session = setup.session_id();
    let play = client.request(&format!(
        "PLAY {url}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(play.status, 200);
    let playing =
        server.wait_for_metric("stream_packet_chunks_live", Duration::from_secs(5), |v| {
            v > 0
        });
    assert!(playing > 0, "no packet chunk counted while playing");
    let teardown = client.request(&format!(
        "TEARDOWN {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n"
    ));
    assert_eq!(teardown.status, 200);
    let after = server.wait_for_metric("stream_packet_chunks_live", Duration::from_secs(5), |v| {
        v == 0
    });
    assert_eq!(after, 0, "chunks still alive after TEARDOWN");
}

/// RFC 2326 §10.12: on an interleaved connection the PLAY response comes before the first RTP
/// frame it starts (a strict client reads a response first). Twenty PLAYs, so a race between
/// the pacer and the response would show.
#[test]
fn play_response_precedes_interleaved_frames() {
    let server = start_h264();
    let url = server.url("movie.mp4");
    for round in 0..20 {
        let mut client = RawClient::connect(&server);
        let setup = client.request(&format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"));
        assert_eq!(setup.status, 200, "{}", setup.head);
        let id = setup.session_id();
        client.send(&format!(
            "PLAY {url} RTSP/1.0\r\nCSeq: 2\r\nSession: {id}\r\n\r\n"
        ));
        let mut first = [0u8; 1];
        client.stream.read_exact(&mut first).unwrap();
        assert_eq!(
            first[0], b'R',
            "round {round}: the first byte after PLAY starts `RTSP/1.0 200`, not a `$` frame"
        );
        client.buffer.push(first[0]);
        assert_eq!(client.response().status, 200);
        client.request(&format!(
            "TEARDOWN {url} RTSP/1.0\r\nCSeq: 3\r\nSession: {id}\r\n\r\n"
        ));
    }
}
