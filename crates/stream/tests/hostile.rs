//! Hostile and broken clients over raw sockets. After each, a healthy client still plays (it
//! sets up a session over TCP and receives RTP). Clients vanishing mid-PLAY are covered in
//! raw.rs (`silent_sessions_time_out`, `a_tcp_client_that_stops_reading_is_dropped_...`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;
use serval_core::config::HumanDuration;
use serval_stream_media::testing;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

fn start(adjust: impl FnOnce(&mut serval_stream::StreamConfig)) -> TestServer {
    let movie = testing::H264_AAC.path();
    TestServer::start_with(&[("movie.mp4", &movie)], |config| {
        config.request_timeout = HumanDuration(REQUEST_TIMEOUT);
        adjust(config);
    })
}

fn connect(server: &TestServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent.
fn read_to_close(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "connection not closed by the server: {e}; got {:?}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Reads one response head (skipping interleaved frames is not needed before PLAY).
fn response(stream: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut byte = [0u8; 1];
    while !all.ends_with(b"\r\n\r\n") {
        let n = stream.read(&mut byte).expect("response");
        assert!(n > 0, "closed before a response");
        all.push(byte[0]);
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// A well-behaved client: SETUP over TCP, PLAY, and an RTP frame arrives.
fn healthy_client_plays(server: &TestServer) {
    let mut stream = connect(server);
    let base = format!("rtsp://{}/movie.mp4", server.addr);
    stream
        .write_all(format!("SETUP {base}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n").as_bytes())
        .unwrap();
    let setup = response(&mut stream);
    assert!(setup.starts_with("RTSP/1.0 200"), "healthy SETUP: {setup}");
    let session = setup
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    stream
        .write_all(
            format!("PLAY {base}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    assert!(response(&mut stream).starts_with("RTSP/1.0 200"));
    let mut first = [0u8; 1];
    stream.read_exact(&mut first).unwrap();
    assert_eq!(first[0], b'$', "RTP arrives interleaved");
    stream
        .write_all(
            format!("TEARDOWN {base}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
}

fn refused_and_closed(server: &TestServer, bytes: &[u8], status: &str) {
    let mut stream = connect(server);
    // The server may close before it has read everything; a reset while writing is fine.
    let _ = stream.write_all(bytes);
    let answer = read_to_close(&mut stream);
    assert!(
        answer.starts_with(status),
        "expected {status}, got {answer:?}"
    );
}

#[test]
fn oversized_and_malformed_heads_are_refused_and_closed() {
    let server = start(|_| {});
    let long_line = format!(
        "DESCRIBE rtsp://h/{} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "a".repeat(9000)
    );
    refused_and_closed(&server, long_line.as_bytes(), "RTSP/1.0 414");
    // A 1 MB request URI is answered in RTSP (414), never with an HTTP status line.
    let huge_uri = format!(
        "DESCRIBE rtsp://h/{} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        "a".repeat(1 << 20)
    );
    refused_and_closed(
        &server,
        huge_uri.as_bytes(),
        "RTSP/1.0 414 Request URI Too Long",
    );
    let long_header = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX: {}\r\n\r\n",
        "b".repeat(9000)
    );
    refused_and_closed(&server, long_header.as_bytes(), "RTSP/1.0 400");
    let many_headers = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n{}\r\n",
        "X-A: b\r\n".repeat(70)
    );
    refused_and_closed(&server, many_headers.as_bytes(), "RTSP/1.0 400");
    let big_body = "SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 1000000\r\n\r\n";
    refused_and_closed(&server, big_body.as_bytes(), "RTSP/1.0 413");
    for length in ["-5", "12abc", "99999999999999999999999"] {
        let bad =
            format!("SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {length}\r\n\r\n");
        refused_and_closed(&server, bad.as_bytes(), "RTSP/1.0 400");
    }
    // Binary garbage that ends like a head: 400, and the stream stays in step. Without any
    // line end it is closed silently once the request timeout passes.
    let mut garbage: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1)
        .collect();
    garbage.extend_from_slice(b"\r\n\r\n");
    let mut stream = connect(&server);
    stream.write_all(&garbage).unwrap();
    assert!(response(&mut stream).starts_with("RTSP/1.0 400"));
    let mut silent = connect(&server);
    silent.write_all(&garbage[..3000]).unwrap();
    let started = Instant::now();
    assert_eq!(read_to_close(&mut silent), "");
    assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(3));
    let http_junk = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    refused_and_closed(&server, http_junk, "HTTP/1.0 400");
    healthy_client_plays(&server);
}

#[test]
fn a_cseq_that_is_not_a_number_gets_400_and_the_connection_stays_usable() {
    let server = start(|_| {});
    let mut stream = connect(&server);
    for bad in ["abc", "1.5", "-3"] {
        stream
            .write_all(format!("OPTIONS * RTSP/1.0\r\nCSeq: {bad}\r\n\r\n").as_bytes())
            .unwrap();
        let answer = response(&mut stream);
        assert!(answer.starts_with("RTSP/1.0 400"), "CSeq: {bad}: {answer}");
    }
    stream
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 4\r\n\r\n")
        .unwrap();
    assert!(response(&mut stream).starts_with("RTSP/1.0 200"));
    healthy_client_plays(&server);
}

#[test]
fn requests_with_bare_lf_line_ends_are_answered() {
    let server = start(|_| {});
    let mut stream = connect(&server);
    let started = Instant::now();
    stream
        .write_all(b"OPTIONS * RTSP/1.0\nCSeq: 5\nUser-Agent: lf-only\n\n")
        .unwrap();
    let answer = response(&mut stream);
    assert!(
        answer.starts_with("RTSP/1.0 200") && answer.contains("CSeq: 5"),
        "{answer}"
    );
    assert!(started.elapsed() < REQUEST_TIMEOUT);
    let describe = format!(
        "DESCRIBE rtsp://{}/movie.mp4 RTSP/1.0\nCSeq: 6\n\n",
        server.addr
    );
    stream.write_all(describe.as_bytes()).unwrap();
    let answer = response(&mut stream);
    assert!(
        answer.starts_with("RTSP/1.0 200") && answer.contains("application/sdp"),
        "{answer}"
    );
    healthy_client_plays(&server);
}

#[test]
fn a_request_without_cseq_gets_400_and_the_connection_stays_usable() {
    let server = start(|_| {});
    let mut stream = connect(&server);
    stream.write_all(b"OPTIONS * RTSP/1.0\r\n\r\n").unwrap();
    assert!(response(&mut stream).starts_with("RTSP/1.0 400"));
    stream
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n")
        .unwrap();
    assert!(response(&mut stream).starts_with("RTSP/1.0 200"));
    healthy_client_plays(&server);
}

#[test]
fn slow_senders_and_unfinished_frames_are_cut_off_after_the_request_timeout() {
    let server = start(|_| {});
    // One byte a second: the head never completes in time.
    let mut slow = connect(&server);
    let started = Instant::now();
    let mut closed_after = None;
    for byte in b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n" {
        if slow.write_all(&[*byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 1];
        slow.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        if let Ok(0) = slow.read(&mut probe) {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("a one-byte-a-second client is closed");
    assert!(
        closed_after < REQUEST_TIMEOUT + Duration::from_secs(3),
        "{closed_after:?}"
    );
    // An interleaved frame that announces 65535 bytes and sends 10.
    let mut bogus = connect(&server);
    bogus.write_all(b"$\x00\xff\xff0123456789").unwrap();
    let started = Instant::now();
    read_to_close(&mut bogus);
    assert!(started.elapsed() < REQUEST_TIMEOUT + Duration::from_secs(3));
    healthy_client_plays(&server);
}

#[test]
fn thousands_of_idle_connections_make_room_for_new_clients() {
    let server = start(|config| {
        config.max_connections = 200;
        config.max_connections_per_ip = 100_000;
    });
    // 200 silent connections fill every slot (the attack's shape: connect, send nothing).
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // 1800 more, each answered: an answer proves the server admitted the connection, so it
    // closed one without a session first. Counting answers, not connects, keeps the kernel's
    // accept queue and its SYN-ACK retransmit timing out of the count.
    for n in 0..1800 {
        let mut stream = connect(&server);
        stream
            .write_all(format!("OPTIONS * RTSP/1.0\r\nCSeq: {n}\r\n\r\n").as_bytes())
            .unwrap();
        let answer = response(&mut stream);
        assert!(
            answer.starts_with("RTSP/1.0 200"),
            "connection {n}: {answer}"
        );
        idle.push(stream);
    }
    let evicted = server.wait_for_metric(
        "stream_idle_connections_evicted_total",
        Duration::from_secs(30),
        |v| v >= 1800,
    );
    assert!(
        evicted >= 1800,
        "evicted {evicted}:\n{}",
        server.metrics_text()
    );
    // The oldest idle connections were the ones closed.
    let mut first = idle.remove(0);
    first
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(read_to_close(&mut first), "");
    healthy_client_plays(&server);
}

/// SETUP of the movie's video track over UDP on `stream`; the status and the session id.
fn setup_udp(stream: &mut TcpStream, server: &TestServer, cseq: u32) -> (String, Option<String>) {
    let base = format!("rtsp://{}/movie.mp4", server.addr);
    stream
        .write_all(format!("SETUP {base}/trackID=1 RTSP/1.0\r\nCSeq: {cseq}\r\nTransport: RTP/AVP;unicast;client_port=40000-40001\r\n\r\n").as_bytes())
        .unwrap();
    let answer = response(stream);
    let session = answer
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .map(|v| v.split(';').next().unwrap_or_default().to_owned());
    (answer[9..12].to_owned(), session)
}

fn play(stream: &mut TcpStream, server: &TestServer, session: &str, cseq: u32) -> String {
    let base = format!("rtsp://{}/movie.mp4", server.addr);
    stream
        .write_all(
            format!("PLAY {base}/ RTSP/1.0\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n")
                .as_bytes(),
        )
        .unwrap();
    response(stream)[9..12].to_owned()
}

#[test]
fn one_address_is_capped_in_connections_and_sessions() {
    let server = start(|config| {
        config.max_connections_per_ip = 5;
        config.max_sessions_per_client = 3;
    });
    // Idle connections (no session) of the address are closed to admit a new one of it.
    let mut idle: Vec<TcpStream> = (0..5).map(|_| connect(&server)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut sixth = connect(&server);
    sixth
        .write_all(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .unwrap();
    assert!(response(&mut sixth).starts_with("RTSP/1.0 200"));
    assert_eq!(
        read_to_close(&mut idle[0]),
        "",
        "the oldest idle connection was closed"
    );
    drop((idle, sixth));
    std::thread::sleep(Duration::from_millis(300));
    // Connections that hold sessions are not closed: past the cap, 503.
    let mut with_sessions = Vec::new();
    for n in 0..3 {
        let mut stream = connect(&server);
        let (status, session) = setup_udp(&mut stream, &server, 1);
        assert_eq!(status, "200");
        assert_eq!(play(&mut stream, &server, &session.unwrap(), 2), "200");
        with_sessions.push(stream);
        let _ = n;
    }
    // The three playing sessions fill the address's session cap: a fourth SETUP gets 453.
    let mut fourth = connect(&server);
    assert_eq!(setup_udp(&mut fourth, &server, 1).0, "453");
    let _more: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&server);
            let _ = setup_udp(&mut s, &server, 1);
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let _ = fourth;
}

#[test]
fn a_setup_flood_never_locks_out_a_viewer_from_the_same_address() {
    // The old defaults' per-address cap of 8, so the flood reaches it.
    let server = start(|config| config.max_sessions_per_client = 8);
    let mut flood = connect(&server);
    let mut statuses = Vec::new();
    for cseq in 1..=50 {
        statuses.push(setup_udp(&mut flood, &server, cseq).0);
    }
    assert!(statuses.iter().all(|s| s == "200"), "{statuses:?}");
    // A viewer from the same address sets up and plays at once.
    healthy_client_plays(&server);
    let evicted = server.wait_for_metric(
        "stream_sessions_evicted_unplayed_total",
        Duration::from_secs(5),
        |v| v >= 43,
    );
    assert!(evicted >= 43, "{}", server.metrics_text());
}

#[test]
fn a_denied_address_is_refused_at_connect() {
    let server = start(|config| {
        config.deny =
            vec![serval_stream::config::Cidr::try_from("127.0.0.0/8".to_string()).unwrap()];
    });
    let mut stream = connect(&server);
    let answer = read_to_close(&mut stream);
    assert!(answer.starts_with("RTSP/1.0 403"), "{answer}");
}

#[test]
fn clients_vanishing_mid_play_free_their_sessions() {
    let server = start(|config| {
        config.session_timeout = HumanDuration(Duration::from_secs(5));
    });
    let base = format!("rtsp://{}/movie.mp4", server.addr);
    let play = |transport: &str| {
        let mut stream = connect(&server);
        stream
            .write_all(
                format!(
                    "SETUP {base}/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: {transport}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        let setup = response(&mut stream);
        let session = setup
            .lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        stream
            .write_all(
                format!("PLAY {base}/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n")
                    .as_bytes(),
            )
            .unwrap();
        assert!(response(&mut stream).starts_with("RTSP/1.0 200"));
        stream
    };
    // TCP: the connection goes away mid-PLAY and its session with it.
    drop(play("RTP/AVP/TCP;unicast;interleaved=0-1"));
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.service.connections() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.service.connections(), 0, "TCP session freed");
    // UDP: the client stops sending RTCP and keep-alives; the session times out.
    let udp = play("RTP/AVP;unicast;client_port=9-10");
    assert_eq!(server.service.connections(), 1);
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(server.service.connections(), 0, "UDP session expired");
    drop(udp);
    healthy_client_plays(&server);
}
