//! Protected folders with real players: ffprobe/ffmpeg (`rtsp://user:pass@...`, Digest and
//! Basic; Debian package `ffmpeg`), GStreamer `rtspsrc user-id/user-pw` (gstreamer1.0-tools,
//! -plugins-good), accounts imported from an old `qtusers` file, and the 401/403 rules seen
//! over a raw socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{run_client, stderr, stdout, TestServer};
use serval_core::directory::{digest_ha1, DigestAlgorithm};
use serval_stream::config::{AccessRuleConfig, AuthScheme};
use serval_stream_media::testing;

/// A server whose `private/` folder admits group `staff` with `scheme`, and whose `old/`
/// folder carries an old-style `qtaccess` file for the "Streaming Server" realm.
fn protected_server(scheme: AuthScheme) -> TestServer {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(
        &[
            ("movie.mp4", &movie),
            ("private/movie.mp4", &movie),
            ("old/movie.mp4", &movie),
        ],
        |config| {
            config.access = vec![AccessRuleConfig {
                path: "private/".into(),
                require: vec!["group:staff".into()],
                scheme: Some(scheme),
                ..AccessRuleConfig::default()
            }];
        },
    );
    std::fs::write(
        server.media_dir.join("old/qtaccess"),
        "AuthName \"Streaming Server\"\nAuthScheme digest\n\
         AuthUserFile /Library/QuickTimeStreaming/Config/qtusers\nrequire valid-user\n",
    )
    .unwrap();
    server.add_user("bob", "s3cret", &["staff"]);
    server.add_user("eve", "s3cret", &[]);
    server
}

fn ffprobe_streams(url: &str) -> (bool, String, String) {
    let output = run_client(
        "ffprobe",
        "ffmpeg",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            url,
        ],
        Duration::from_secs(30),
    );
    (output.status.success(), stdout(&output), stderr(&output))
}

#[test]
fn ffprobe_plays_a_digest_protected_movie_only_with_the_right_account() {
    let server = protected_server(AuthScheme::Digest);
    let (ok, out, err) =
        ffprobe_streams(&server.url_with_credentials("bob", "s3cret", "private/movie.mp4"));
    assert!(ok, "bob over Digest: {err}");
    assert_eq!(out.lines().collect::<Vec<_>>(), ["h264", "aac"]);
    let (ok, _, err) =
        ffprobe_streams(&server.url_with_credentials("bob", "wrong", "private/movie.mp4"));
    assert!(!ok && err.contains("401"), "wrong password: {err}");
    let (ok, _, err) =
        ffprobe_streams(&server.url_with_credentials("eve", "s3cret", "private/movie.mp4"));
    assert!(!ok && err.contains("403"), "eve is not staff: {err}");
    let (ok, _, err) = ffprobe_streams(&server.url("private/movie.mp4"));
    assert!(!ok && err.contains("401"), "no credentials: {err}");
    // The open folder still plays without credentials.
    let (ok, _, err) = ffprobe_streams(&server.url("movie.mp4"));
    assert!(ok, "open movie: {err}");
}

#[test]
fn ffmpeg_receives_every_frame_of_a_basic_protected_movie() {
    let server = protected_server(AuthScheme::Basic);
    let url = server.url_with_credentials("bob", "s3cret", "private/movie.mp4");
    let frames = common::framemd5(&["-rtsp_transport", "tcp"], &url, "0:v");
    assert_eq!(frames.len(), 150);
    // The access log's c-username field names who played it.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.access_log();
    let line = log
        .lines()
        .find(|l| l.contains(" /private/movie.mp4 "))
        .unwrap_or_else(|| panic!("no line for the movie: {log}"));
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[fields.len() - 2], "bob", "{line}");
}

#[test]
fn accounts_imported_from_qtusers_play_with_their_old_passwords() {
    let server = protected_server(AuthScheme::Digest);
    let realm = "Streaming Server";
    let qtusers = server.data_dir.path().join("qtusers");
    std::fs::write(
        &qtusers,
        format!(
            "realm {realm}\ncarol:AbQ2x9mLkP0c2:{}\nbad name:xx:{}\n",
            digest_ha1(DigestAlgorithm::Md5, "carol", realm, "oldpass"),
            digest_ha1(DigestAlgorithm::Md5, "bad name", realm, "x"),
        ),
    )
    .unwrap();
    let report =
        serval_stream::access::qtusers::import_qtusers(&server.directory, &qtusers, None).unwrap();
    assert_eq!(report.imported_users, ["carol"]);
    assert_eq!(report.skipped_users.len(), 1);
    let (ok, out, err) =
        ffprobe_streams(&server.url_with_credentials("carol", "oldpass", "old/movie.mp4"));
    assert!(ok, "imported account over Digest: {err}");
    assert_eq!(out.lines().count(), 2);
    let (ok, _, err) =
        ffprobe_streams(&server.url_with_credentials("carol", "newpass", "old/movie.mp4"));
    assert!(!ok && err.contains("401"), "{err}");
}

#[test]
fn gstreamer_rtspsrc_plays_a_protected_movie_with_user_id_and_user_pw() {
    let server = protected_server(AuthScheme::Digest);
    let location = format!("location={}", server.url("private/movie.mp4"));
    let output = run_client(
        "gst-launch-1.0",
        "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad",
        &[
            "rtspsrc",
            &location,
            "user-id=bob",
            "user-pw=s3cret",
            "protocols=tcp",
            "name=src",
            "src.",
            "!",
            "queue",
            "!",
            "rtph264depay",
            "!",
            "fakesink",
            "src.",
            "!",
            "queue",
            "!",
            "fakesink",
        ],
        Duration::from_secs(40),
    );
    let out = stdout(&output);
    assert!(
        common::gst_played_to_eos(&output),
        "{}\n{out}",
        stderr(&output)
    );
    server.wait_until_no_session_is_open();
}

fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "server closed the connection");
        response.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn a_session_of_an_open_movie_cannot_play_a_protected_one() {
    let server = protected_server(AuthScheme::Digest);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let base = format!("rtsp://{}", server.addr);
    let setup = exchange(
        &mut stream,
        &format!("SETUP {base}/movie.mp4/trackID=1 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
    );
    assert!(setup.starts_with("RTSP/1.0 200"), "{setup}");
    let session = setup
        .lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let denied = exchange(
        &mut stream,
        &format!(
            "PLAY {base}/private/movie.mp4/ RTSP/1.0\r\nCSeq: 2\r\nSession: {session}\r\n\r\n"
        ),
    );
    assert!(denied.starts_with("RTSP/1.0 401"), "{denied}");
    assert!(
        denied.contains("WWW-Authenticate: Digest realm=\"Serval\""),
        "{denied}"
    );
    // An account with rights on the URL still cannot move a session to another movie.
    let options = exchange(
        &mut stream,
        &format!("OPTIONS {base}/ RTSP/1.0\r\nCSeq: 3\r\n\r\n"),
    );
    assert!(
        options.starts_with("RTSP/1.0 200"),
        "OPTIONS needs no credentials: {options}"
    );
    let basic = "Authorization: Basic Ym9iOnMzY3JldA==\r\n"; // bob:s3cret
    let other = exchange(
        &mut stream,
        &format!(
            "PLAY {base}/old/movie.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n{basic}\r\n"
        ),
    );
    assert!(
        other.starts_with("RTSP/1.0 401"),
        "Basic refused under a digest rule: {other}"
    );
    let play = exchange(
        &mut stream,
        &format!("PLAY {base}/movie.mp4/ RTSP/1.0\r\nCSeq: 5\r\nSession: {session}\r\n\r\n"),
    );
    assert!(play.starts_with("RTSP/1.0 200"), "{play}");
}

#[test]
fn a_folder_rule_can_refuse_an_address() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(
        &[("lan/movie.mp4", &movie), ("movie.mp4", &movie)],
        |config| {
            config.access = vec![AccessRuleConfig {
                path: "lan".into(),
                deny: vec![
                    serval_stream::config::Cidr::try_from("127.0.0.0/8".to_string()).unwrap(),
                ],
                ..AccessRuleConfig::default()
            }];
        },
    );
    let (ok, _, err) = ffprobe_streams(&server.url("lan/movie.mp4"));
    assert!(!ok && err.contains("403"), "{err}");
    let (ok, _, err) = ffprobe_streams(&server.url("movie.mp4"));
    assert!(ok, "{err}");
}

/// A `<Limit WRITE>` block guards ANNOUNCE/RECORD (broadcasting) while the file's own
/// `require any-user` (as in the old server's sample qtaccess) leaves playback open: anyone plays, an anonymous ANNOUNCE is challenged, a user outside the rule is refused, and a
/// listed user gets through the gate to the 501 that says broadcasting is not served.
#[test]
fn a_limit_write_block_guards_announce_but_not_playback() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("live/movie.mp4", &movie)]);
    std::fs::write(
        server.media_dir.join("live/qtaccess"),
        "AuthName \"Serval\"\nAuthScheme basic\nrequire any-user\n\
         <Limit WRITE>\nrequire user bob\n</Limit>\n",
    )
    .unwrap();
    server.add_user("bob", "s3cret", &[]);
    server.add_user("eve", "s3cret", &[]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("rtsp://{}/live/movie.mp4", server.addr);
    let describe = exchange(
        &mut stream,
        &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
    );
    assert!(describe.starts_with("RTSP/1.0 200"), "{describe}");
    let announce = |cseq: u32, authorization: &str| {
        format!(
            "ANNOUNCE {url} RTSP/1.0\r\nCSeq: {cseq}\r\n{authorization}Content-Length: 0\r\n\r\n"
        )
    };
    let anonymous = exchange(&mut stream, &announce(2, ""));
    assert!(anonymous.starts_with("RTSP/1.0 401"), "{anonymous}");
    assert!(anonymous.contains("WWW-Authenticate: Basic"), "{anonymous}");
    // eve:s3cret
    let eve = exchange(
        &mut stream,
        &announce(3, "Authorization: Basic ZXZlOnMzY3JldA==\r\n"),
    );
    assert!(eve.starts_with("RTSP/1.0 403"), "{eve}");
    // bob:s3cret
    let bob = exchange(
        &mut stream,
        &announce(4, "Authorization: Basic Ym9iOnMzY3JldA==\r\n"),
    );
    assert!(bob.starts_with("RTSP/1.0 501"), "{bob}");
}
