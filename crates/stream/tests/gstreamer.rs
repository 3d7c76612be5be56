//! Interop with GStreamer's `rtspsrc` (Debian packages gstreamer1.0-tools,
//! gstreamer1.0-plugins-good, gstreamer1.0-plugins-bad, gstreamer1.0-libav): plays to EOS over
//! TCP and UDP and decodes every video frame.

mod common;

use std::time::Duration;

use common::{run_client, stderr, stdout, TestServer};
use serval_stream_media::testing;

const PACKAGES: &str =
    "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-libav";

fn play_to_eos(protocols: &str) {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let location = format!("location={}", server.url("movie.mp4"));
    let protocols = format!("protocols={protocols}");
    let output = run_client(
        "gst-launch-1.0",
        PACKAGES,
        &[
            "-v",
            "rtspsrc",
            "name=src",
            &location,
            &protocols,
            "src.",
            "!",
            "queue",
            "!",
            "rtph264depay",
            "!",
            "h264parse",
            "!",
            "avdec_h264",
            "!",
            "identity",
            "name=count",
            "silent=false",
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
        output.status.success(),
        "gst-launch failed: {}\n{}",
        stderr(&output),
        out.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(out.contains("Got EOS from element"), "no EOS: {out}");
    let frames = out.matches("count: last-message = chain").count();
    assert_eq!(frames, 150, "decoded video frames over {protocols}");
    // The session ended with the pipeline: a DSS-format access log line was written.
    std::thread::sleep(Duration::from_millis(300));
    let log = server.access_log();
    assert!(
        log.lines().any(|l| l.contains(" /movie.mp4 ")),
        "access log: {log}"
    );
}

#[test]
fn gstreamer_rtspsrc_plays_to_eos_over_tcp() {
    play_to_eos("tcp");
}

#[test]
fn gstreamer_rtspsrc_plays_to_eos_over_udp() {
    play_to_eos("udp");
}
