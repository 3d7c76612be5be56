//! Our RTP payloads fed to GStreamer's depayloaders and decoders (a third-party receiver), through an
//! RFC 4571 framed file (`rtpstreamdepay`), with caps taken from our own SDP. Video must decode to the
//! same frames as ffmpeg decodes from the file; audio to the file's duration.
//!
//! Needs Debian packages gstreamer1.0-tools, gstreamer1.0-plugins-good, gstreamer1.0-libav and
//! gstreamer1.0-plugins-base (listed in .ci/packages/apt-media.txt); missing ones fail the test.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::drain;
use serval_stream_media::testing::{self, Fixture};
use serval_stream_media::{MediaKind, Movie, PacketOptions, RtpPacketOut};

/// Full RTP packets (12-byte header written here, as the server does) framed per RFC 4571.
fn rfc4571(packets: &[RtpPacketOut], payload_type: u8) -> Vec<u8> {
    let mut out = Vec::new();
    for (seq, p) in packets.iter().enumerate() {
        let len = (12 + p.payload.len()) as u16;
        out.extend(len.to_be_bytes());
        out.push(0x80);
        out.push(payload_type | if p.marker { 0x80 } else { 0 });
        out.extend((seq as u16).to_be_bytes());
        out.extend(p.timestamp.wrapping_add(0x1234_5678).to_be_bytes());
        out.extend(0xDEAD_BEEFu32.to_be_bytes());
        out.extend_from_slice(&p.payload);
    }
    out
}

/// GStreamer caps for one media section of our SDP: rtpmap gives encoding and clock, fmtp the rest.
fn caps_for(sdp: &str, track_id: u32) -> String {
    let section = sdp
        .split("m=")
        .skip(1)
        .find(|s| s.contains(&format!("a=control:trackID={track_id}\r\n")))
        .unwrap_or_else(|| panic!("no section for track {track_id} in {sdp}"));
    let media = section.split_whitespace().next().unwrap();
    let pt = section
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap();
    let rtpmap = section
        .lines()
        .find_map(|l| l.strip_prefix(&format!("a=rtpmap:{pt} ")))
        .unwrap();
    let mut parts = rtpmap.split('/');
    let encoding = parts.next().unwrap().to_uppercase();
    let clock = parts.next().unwrap();
    let mut caps = format!("application/x-rtp-stream,media={media},payload={pt},clock-rate={clock},encoding-name={encoding}");
    if let Some(channels) = parts.next() {
        caps.push_str(&format!(",encoding-params=(string){channels}"));
    }
    if let Some(fmtp) = section
        .lines()
        .find_map(|l| l.strip_prefix(&format!("a=fmtp:{pt} ")))
    {
        for param in fmtp.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = param.split_once('=').unwrap();
            caps.push_str(&format!(",{}=(string)\"{}\"", k.to_lowercase(), v));
        }
    }
    caps
}

fn gst_launch(pipeline: &str) {
    let out = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split(' '))
        .output()
        .unwrap_or_else(|e| {
            panic!("gst-launch-1.0 not found ({e}): install Debian package gstreamer1.0-tools")
        });
    assert!(
        out.status.success(),
        "gst-launch-1.0 {pipeline} failed (needs gstreamer1.0-plugins-good, gstreamer1.0-libav): {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Decoded {
    bytes: Vec<u8>,
}

/// Depayload and decode our packets of one track with GStreamer into raw video (I420) or audio (S16LE).
fn gst_decode(dir: &Path, movie: &Movie, track_id: u32, chain: &str, raw_caps: &str) -> Decoded {
    let source = movie.packets(track_id, Duration::ZERO).unwrap();
    let pt = source.payload_type();
    let packets = drain(movie, track_id, Duration::ZERO, PacketOptions::default());
    let input = dir.join(format!("track{track_id}.rtp"));
    let output = dir.join(format!("track{track_id}.raw"));
    std::fs::write(&input, rfc4571(&packets, pt)).unwrap();
    let caps = caps_for(&movie.sdp("t", "127.0.0.1"), track_id).replace(' ', "");
    let convert = if raw_caps.starts_with("video") {
        "videoconvert"
    } else {
        "audioconvert"
    };
    gst_launch(&format!(
        "filesrc location={} ! {caps} ! rtpstreamdepay ! {chain} ! {convert} ! {raw_caps} ! filesink location={}",
        input.display(),
        output.display()
    ));
    Decoded {
        bytes: std::fs::read(&output).unwrap(),
    }
}

fn ffmpeg_raw_video(path: &Path) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:v:0", "-f", "rawvideo", "-pix_fmt", "yuv420p", "-",
        ])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg not found ({e}): install Debian package ffmpeg"));
    assert!(out.status.success());
    out.stdout
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    // Unique per call: tests run in parallel and several use the same fixture.
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = testing::fixtures_dir().join(format!("gst-{name}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Video is selected first, audio last (hint tracks included).
fn video_track(movie: &Movie) -> u32 {
    movie.selected_tracks()[0]
}

fn audio_track(movie: &Movie) -> u32 {
    *movie.selected_tracks().last().unwrap()
}

fn check_video_bit_exact(f: &Fixture, chain: &str) {
    let dir = temp_dir(f.name);
    let movie = Movie::open(&f.path()).unwrap();
    let ours = gst_decode(
        &dir,
        &movie,
        video_track(&movie),
        chain,
        "video/x-raw,format=I420",
    );
    let reference = ffmpeg_raw_video(&f.path());
    let frame = 320 * 240 * 3 / 2;
    assert_eq!(
        ours.bytes.len() / frame,
        reference.len() / frame,
        "{}: decoded frame count",
        f.name
    );
    assert!(
        ours.bytes == reference,
        "{}: frames decoded from our RTP differ from ffmpeg's decode of the file",
        f.name
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn check_audio_duration(f: &Fixture, chain: &str, expected: Duration) {
    let dir = temp_dir(f.name);
    let movie = Movie::open(&f.path()).unwrap();
    let track = audio_track(&movie);
    let info = movie
        .tracks()
        .iter()
        .find(|t| t.kind == MediaKind::Audio)
        .unwrap()
        .clone();
    let rate = info.sample_rate.unwrap();
    let channels = info.channels.unwrap();
    let raw = format!("audio/x-raw,format=S16LE,rate={rate},channels={channels}");
    let ours = gst_decode(&dir, &movie, track, chain, &raw);
    let seconds = ours.bytes.len() as f64 / (2.0 * f64::from(channels) * f64::from(rate));
    assert!(
        (seconds - expected.as_secs_f64()).abs() < 0.1,
        "{}: GStreamer decoded {seconds:.3} s of audio from our RTP, expected {expected:?}",
        f.name
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn h264_rtp_decodes_bit_exact_in_gstreamer() {
    check_video_bit_exact(&testing::H264_AAC, "rtph264depay ! avdec_h264");
}

#[test]
fn h265_rtp_decodes_bit_exact_in_gstreamer() {
    check_video_bit_exact(&testing::H265_AAC, "rtph265depay ! avdec_h265");
}

#[test]
fn mpeg4_part2_rtp_decodes_bit_exact_in_gstreamer() {
    check_video_bit_exact(&testing::MPEG4_AAC51, "rtpmp4vdepay ! avdec_mpeg4");
}

#[test]
fn aac_rtp_decodes_in_gstreamer() {
    check_audio_duration(
        &testing::H264_AAC,
        "rtpmp4gdepay ! avdec_aac",
        Duration::from_secs(6),
    );
    check_audio_duration(
        &testing::MPEG4_AAC51,
        "rtpmp4gdepay ! avdec_aac",
        Duration::from_secs(5),
    );
}

#[test]
fn mp3_rtp_decodes_in_gstreamer() {
    check_audio_duration(
        &testing::H264_MP3_MOV,
        "rtpmpadepay ! mpegaudioparse ! avdec_mp3",
        Duration::from_secs(5),
    );
}

#[test]
fn opus_rtp_decodes_in_gstreamer() {
    check_audio_duration(
        &testing::OPUS_MP4,
        "rtpopusdepay ! opusdec",
        Duration::from_secs(5),
    );
}

#[test]
fn hint_track_rtp_decodes_in_gstreamer() {
    check_video_bit_exact(&testing::H264_AAC_HINTED, "rtph264depay ! avdec_h264");
    check_audio_duration(
        &testing::H264_AAC_HINTED,
        "rtpmp4gdepay ! avdec_aac",
        Duration::from_secs(6),
    );
}
