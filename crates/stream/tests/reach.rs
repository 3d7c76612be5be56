//! Reaching players behind firewalls and over TLS: RTSP tunnelled in HTTP (ffmpeg
//! `-rtsp_transport http`, GStreamer `rtsph://`) and RTSPS (ffmpeg `rtsps://`, GStreamer
//! `rtspsrc location=rtsps://... tls-validation-flags=0`). Debian packages: ffmpeg,
//! gstreamer1.0-tools, gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad.

mod common;

use std::time::Duration;

use common::{framemd5, run_client, stderr, stdout, TestServer};
use serval_stream_media::testing;

const GST_PACKAGES: &str = "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad";

fn gst_plays_to_eos(server: &TestServer, location: &str, extra: &[&str]) {
    let location = format!("location={location}");
    let mut args = vec!["rtspsrc", "name=src", location.as_str()];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
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
    ]);
    let output = run_client(
        "gst-launch-1.0",
        GST_PACKAGES,
        &args,
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

#[test]
fn ffmpeg_receives_every_frame_through_the_http_tunnel() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let frames = framemd5(
        &["-rtsp_transport", "http"],
        &server.url("movie.mp4"),
        "0:v",
    );
    let file = framemd5(&[], movie.to_str().unwrap(), "0:v");
    assert_eq!(frames.len(), 150);
    assert_eq!(
        frames.iter().map(|f| &f.1).collect::<Vec<_>>(),
        file.iter().map(|f| &f.1).collect::<Vec<_>>()
    );
}

#[test]
fn gstreamer_plays_through_the_http_tunnel() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    gst_plays_to_eos(&server, &format!("rtsph://{}/movie.mp4", server.addr), &[]);
}

#[test]
fn ffmpeg_receives_every_frame_over_rtsps() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_full(&[("movie.mp4", &movie)], |_| {}, true);
    let tls = server.tls_addr.expect("RTSPS listener");
    let frames = framemd5(&[], &format!("rtsps://{tls}/movie.mp4"), "0:v");
    assert_eq!(frames.len(), 150);
}

#[test]
fn gstreamer_plays_over_rtsps() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_full(&[("movie.mp4", &movie)], |_| {}, true);
    let tls = server.tls_addr.expect("RTSPS listener");
    gst_plays_to_eos(
        &server,
        &format!("rtsps://{tls}/movie.mp4"),
        // RTP inside the TLS connection (interleaved), not beside it over UDP.
        &["tls-validation-flags=0", "protocols=tcp"],
    );
}

#[test]
fn ffprobe_authenticates_through_the_tunnel() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(&[("private/movie.mp4", &movie)], |config| {
        config.access = vec![serval_stream::config::AccessRuleConfig {
            path: "private".into(),
            require: vec!["valid-user".into()],
            ..Default::default()
        }];
    });
    server.add_user("bob", "s3cret", &[]);
    let output = run_client(
        "ffprobe",
        "ffmpeg",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "http",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            &server.url_with_credentials("bob", "s3cret", "private/movie.mp4"),
        ],
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output).lines().collect::<Vec<_>>(), ["h264", "aac"]);
}

/// Not a check: prints how long ffprobe takes to open a stream over each path (plain, Digest,
/// HTTP tunnel, RTSPS), median of 5. Run with
/// `cargo test -p serval-stream --test reach -- --ignored --nocapture open_times`.
#[test]
#[ignore]
fn open_times() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_full(
        &[("movie.mp4", &movie), ("private/movie.mp4", &movie)],
        |config| {
            config.access = vec![serval_stream::config::AccessRuleConfig {
                path: "private".into(),
                require: vec!["valid-user".into()],
                ..Default::default()
            }];
        },
        true,
    );
    server.add_user("bob", "s3cret", &[]);
    let tls = server.tls_addr.expect("RTSPS listener");
    let cases = [
        ("plain tcp", "tcp", server.url("movie.mp4")),
        (
            "digest tcp",
            "tcp",
            server.url_with_credentials("bob", "s3cret", "private/movie.mp4"),
        ),
        ("http tunnel", "http", server.url("movie.mp4")),
        ("rtsps", "tcp", format!("rtsps://{tls}/movie.mp4")),
    ];
    for (name, transport, url) in cases {
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let started = std::time::Instant::now();
                let output = run_client(
                    "ffprobe",
                    "ffmpeg",
                    &[
                        "-v",
                        "error",
                        "-rtsp_transport",
                        transport,
                        "-show_entries",
                        "stream=codec_name",
                        &url,
                    ],
                    Duration::from_secs(30),
                );
                assert!(output.status.success(), "{name}: {}", stderr(&output));
                started.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "{name:12} median {:?} (min {:?}, max {:?})",
            times[2], times[0], times[4]
        );
    }
}
