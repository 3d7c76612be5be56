//! Interop with ffmpeg/ffprobe (Debian package `ffmpeg`): every track arrives over UDP and TCP,
//! decoded frames match the file bit for bit, seeking starts where asked, hinted files play.

mod common;

use std::time::Duration;

use common::{framemd5, run_client, stderr, stdout, TestServer};
use serval_stream_media::testing;

#[test]
fn ffprobe_lists_every_track_over_tcp() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("sub/movie.mp4", &movie)]);
    let output = run_client(
        "ffprobe",
        "ffmpeg",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            &server.url("sub/movie.mp4"),
        ],
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output)
        .lines()
        .map(|l| l.trim_end_matches(',').to_owned())
        .collect();
    assert_eq!(lines, ["h264,320,240", "aac"]);
}

fn check_bit_exact_video_and_audio_count(transport: &str) {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let url = server.url("movie.mp4");
    let file_video = framemd5(&[], movie.to_str().unwrap(), "0:v");
    let rtsp_video = framemd5(&["-rtsp_transport", transport], &url, "0:v");
    assert_eq!(file_video.len(), 150, "the fixture is 6 s at 25 fps");
    let hashes =
        |frames: &[(i64, String)]| frames.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
    assert_eq!(
        hashes(&rtsp_video),
        hashes(&file_video),
        "decoded video over {transport} differs from the file"
    );
    let file_audio = framemd5(&[], movie.to_str().unwrap(), "0:a");
    let rtsp_audio = framemd5(&["-rtsp_transport", transport], &url, "0:a");
    let difference = file_audio.len().abs_diff(rtsp_audio.len());
    assert!(
        difference <= 2,
        "audio frames: file {} vs {transport} {}",
        file_audio.len(),
        rtsp_audio.len()
    );
}

#[test]
fn ffmpeg_over_udp_decodes_every_frame_of_the_file() {
    check_bit_exact_video_and_audio_count("udp");
}

#[test]
fn ffmpeg_over_tcp_decodes_every_frame_of_the_file() {
    check_bit_exact_video_and_audio_count("tcp");
}

#[test]
fn ffmpeg_seek_starts_where_asked() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    // `-copyts` keeps the stream's own timestamps: framemd5's time base is 1/25 s here.
    let seeked = framemd5(
        &["-ss", "4", "-copyts", "-rtsp_transport", "tcp"],
        &server.url("movie.mp4"),
        "0:v",
    );
    let file = framemd5(&[], movie.to_str().unwrap(), "0:v");
    let (first_pts, first_hash) = seeked.first().cloned().expect("frames after the seek");
    // The frame content tells where we are, whatever timestamps the client shows.
    let position = file
        .iter()
        .position(|(_, hash)| *hash == first_hash)
        .expect("first frame is a frame of the file");
    let seconds = position as f64 / 25.0;
    assert!(
        (seconds - 4.0).abs() < 0.05,
        "first frame after the seek is at {seconds} s (pts {first_pts}), asked for 4 s"
    );
    assert_eq!(
        seeked.len(),
        file.len() - position,
        "every frame from the seek point to the end arrives"
    );
    let first_seconds = first_pts as f64 / 25.0;
    assert!(
        (first_seconds - 4.0).abs() < 0.05,
        "first pts is {first_seconds} s"
    );
}

#[test]
fn hinted_file_plays_over_udp() {
    let movie = testing::H264_AAC_HINTED.path();
    let server = TestServer::start(&[("hinted.mp4", &movie)]);
    let frames = framemd5(
        &["-rtsp_transport", "udp"],
        &server.url("hinted.mp4"),
        "0:v",
    );
    let expected = framemd5(&[], movie.to_str().unwrap(), "0:v");
    assert_eq!(frames.len(), expected.len());
}

fn codec_names(input_args: &[&str], input: &str) -> Vec<String> {
    let mut args = vec!["-v", "error"];
    args.extend_from_slice(input_args);
    args.extend_from_slice(&[
        "-show_entries",
        "stream=codec_name",
        "-of",
        "csv=p=0",
        input,
    ]);
    let output = run_client("ffprobe", "ffmpeg", &args, Duration::from_secs(30));
    assert!(
        output.status.success(),
        "ffprobe {input}: {}",
        stderr(&output)
    );
    stdout(&output)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_codec_fixture_is_described_with_the_files_codecs() {
    let fixtures = [
        testing::H265_AAC,
        testing::MPEG4_AAC51,
        testing::H264_MP3_MOV,
        testing::OPUS_MP4,
        testing::H264_AAC_FASTSTART,
    ];
    let paths: Vec<_> = fixtures.iter().map(|f| (f.name, f.path())).collect();
    let movies: Vec<(&str, &std::path::Path)> = paths
        .iter()
        .map(|(name, path)| (*name, path.as_path()))
        .collect();
    let server = TestServer::start(&movies);
    for (name, path) in &paths {
        let from_file = codec_names(&[], path.to_str().unwrap());
        let over_rtsp = codec_names(&["-rtsp_transport", "tcp"], &server.url(name));
        assert_eq!(over_rtsp, from_file, "{name}");
    }
}

#[test]
fn h265_decodes_bit_exact_over_udp() {
    let movie = testing::H265_AAC.path();
    let server = TestServer::start(&[("h265.mp4", &movie)]);
    let file = framemd5(&[], movie.to_str().unwrap(), "0:v");
    let rtsp = framemd5(&["-rtsp_transport", "udp"], &server.url("h265.mp4"), "0:v");
    let hashes =
        |frames: &[(i64, String)]| frames.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
    assert_eq!(hashes(&rtsp), hashes(&file));
}

#[test]
fn ipv6_client_receives_udp_from_the_ipv6_port_pair() {
    let movie = testing::H264_AAC.path();
    let server = TestServer::start_with(&[("movie.mp4", &movie)], |config| {
        config.listen = serval_core::config::Listen(vec![
            "127.0.0.1:0".parse().unwrap(),
            "[::1]:0".parse().unwrap(),
        ]);
    });
    let v6 = server
        .service
        .listen_addrs()
        .into_iter()
        .find(std::net::SocketAddr::is_ipv6)
        .expect("an IPv6 listener");
    let url = format!("rtsp://{v6}/movie.mp4");
    let frames = framemd5(&["-rtsp_transport", "udp"], &url, "0:v");
    assert_eq!(frames.len(), 150);
    // The IPv4 side shares the same port numbers.
    let v4 = framemd5(&["-rtsp_transport", "udp"], &server.url("movie.mp4"), "0:v");
    assert_eq!(v4.len(), 150);
}
