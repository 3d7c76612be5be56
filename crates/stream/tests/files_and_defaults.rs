//! Files a user drops in and the shipped defaults, with real clients: fragmented MP4 plays (and
//! seeks) in ffmpeg, a second audio language is listed by ffprobe and decoded, a hinted `.mov`
//! with AAC plays in GStreamer, and 100 viewers from one address play on the default config.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{framemd5, gst_played_to_eos, run_client, stderr, stdout, TestServer};
use serval_stream_media::testing;

#[test]
fn ffmpeg_decodes_every_frame_of_a_fragmented_mp4_and_seeks_in_it() {
    for fixture in [&testing::FRAGMENTED, &testing::FRAGMENTED_MOOF_BASE] {
        let movie = fixture.path();
        let server = TestServer::start(&[("rec/camera.mp4", &movie)]);
        let url = server.url("rec/camera.mp4");
        let file_video = framemd5(&[], movie.to_str().unwrap(), "0:v");
        let rtsp_video = framemd5(&["-rtsp_transport", "tcp"], &url, "0:v");
        assert_eq!(file_video.len(), 150, "{}: 6 s at 25 fps", fixture.name);
        let hashes =
            |frames: &[(i64, String)]| frames.iter().map(|(_, h)| h.clone()).collect::<Vec<_>>();
        assert_eq!(hashes(&rtsp_video), hashes(&file_video), "{}", fixture.name);
        // The duration comes from the fragments: ffprobe reads it from the SDP range.
        let probe = run_client(
            "ffprobe",
            "ffmpeg",
            &[
                "-v",
                "error",
                "-rtsp_transport",
                "tcp",
                "-show_entries",
                "format=duration",
                "-of",
                "csv=p=0",
                &url,
            ],
            Duration::from_secs(30),
        );
        assert!(probe.status.success(), "{}", stderr(&probe));
        let duration: f64 = stdout(&probe).trim().parse().unwrap_or(0.0);
        assert!(
            (duration - 6.0).abs() < 0.1,
            "{}: duration {duration}",
            fixture.name
        );
        let seeked = framemd5(
            &["-ss", "4", "-copyts", "-rtsp_transport", "tcp"],
            &url,
            "0:v",
        );
        assert!(
            !seeked.is_empty() && seeked.len() < 100,
            "{}: {} frames after seek",
            fixture.name,
            seeked.len()
        );
    }
}

#[test]
fn both_audio_languages_are_described_and_decoded() {
    let movie = testing::TWO_AUDIO_TRACKS.path();
    let server = TestServer::start(&[("film.mp4", &movie)]);
    let url = server.url("film.mp4");
    let output = run_client(
        "ffprobe",
        "ffmpeg",
        &[
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name,sample_rate:stream_tags=language",
            "-of",
            "csv=p=0",
            &url,
        ],
        Duration::from_secs(30),
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let lines: Vec<String> = stdout(&output)
        .lines()
        .map(|l| l.trim_end_matches(',').to_owned())
        .collect();
    // ffmpeg reads each track's `a=lang:` into its language tag.
    assert_eq!(lines, ["h264", "aac,44100,eng", "aac,48000,fra"]);
    // The second language decodes as many frames as the file holds (give or take the edges).
    let file_audio = framemd5(&[], movie.to_str().unwrap(), "0:a:1");
    let rtsp_audio = framemd5(&["-rtsp_transport", "tcp"], &url, "0:a:1");
    assert!(
        file_audio.len().abs_diff(rtsp_audio.len()) <= 2,
        "second audio track: file {} vs RTSP {}",
        file_audio.len(),
        rtsp_audio.len()
    );
}

#[test]
fn gstreamer_plays_a_hinted_mov_with_aac() {
    let movie = testing::HINTED_MOV.path();
    let server = TestServer::start(&[("hinted.mov", &movie)]);
    let url = server.url("hinted.mov");
    // Decode the audio: rtpmp4gdepay refuses mpeg4-generic caps without `streamtype`.
    let output = run_client(
        "gst-launch-1.0",
        "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav",
        &[
            "-q",
            "rtspsrc",
            &format!("location={url}"),
            "protocols=tcp",
            "name=src",
            "src.",
            "!",
            "rtpmp4gdepay",
            "!",
            "avdec_aac",
            "!",
            "fakesink",
            // The video pad is taken too: left unlinked, rtspsrc stops reading the shared TCP
            // connection and the run's end depends on timing.
            "src.",
            "!",
            "fakesink",
        ],
        Duration::from_secs(60),
    );
    // Run the full playbin too, which must reach EOS with both streams.
    assert!(
        output.status.success() || gst_played_to_eos(&output),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let output = run_client(
        "gst-launch-1.0",
        "gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-libav",
        &[
            "playbin",
            &format!("uri={url}"),
            "video-sink=fakesink",
            "audio-sink=fakesink",
        ],
        Duration::from_secs(60),
    );
    assert!(
        gst_played_to_eos(&output),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
    let err = stderr(&output);
    assert!(!err.contains("streamtype"), "{err}");
}

/// One viewer over TCP interleaved: SETUP both tracks, PLAY, and count RTP frames.
fn viewer(
    addr: std::net::SocketAddr,
    url: &str,
    frames_wanted: usize,
) -> Result<TcpStream, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut session = String::new();
    for (cseq, track) in [(1, 1), (2, 2)] {
        let session_header = if session.is_empty() {
            String::new()
        } else {
            format!("Session: {session}\r\n")
        };
        let channels = format!("{}-{}", 2 * (track - 1), 2 * (track - 1) + 1);
        let request = format!(
            "SETUP {url}/trackID={track} RTSP/1.0\r\nCSeq: {cseq}\r\n{session_header}Transport: RTP/AVP/TCP;unicast;interleaved={channels}\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let head = read_head(&mut stream)?;
        if !head.starts_with("RTSP/1.0 200") {
            return Err(format!("SETUP: {head}"));
        }
        if let Some(id) = head.lines().find_map(|l| l.strip_prefix("Session: ")) {
            session = id.split(';').next().unwrap_or_default().to_owned();
        }
    }
    stream
        .write_all(
            format!("PLAY {url}/ RTSP/1.0\r\nCSeq: 3\r\nSession: {session}\r\n\r\n").as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    let head = read_head(&mut stream)?;
    if !head.starts_with("RTSP/1.0 200") {
        return Err(format!("PLAY: {head}"));
    }
    let mut frames = 0;
    while frames < frames_wanted {
        let mut header = [0u8; 4];
        stream
            .read_exact(&mut header)
            .map_err(|e| format!("after {frames} frames: {e}"))?;
        if header[0] != b'$' {
            return Err(format!("not an interleaved frame: {header:?}"));
        }
        let mut payload = vec![0u8; usize::from(u16::from_be_bytes([header[2], header[3]]))];
        stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
        frames += 1;
    }
    Ok(stream)
}

/// Reads one response head, skipping `$`-framed packets before it (a PLAY's first packets may
/// come first, as RFC 2326 §10.12 allows; real clients accept them).
fn read_head(stream: &mut TcpStream) -> Result<String, String> {
    let mut all = Vec::new();
    let mut byte = [0u8; 1];
    while !all.ends_with(b"\r\n\r\n") {
        if all.is_empty() {
            stream.read_exact(&mut byte).map_err(|e| e.to_string())?;
            if byte[0] == b'$' {
                let mut header = [0u8; 3];
                stream.read_exact(&mut header).map_err(|e| e.to_string())?;
                let mut payload =
                    vec![0u8; usize::from(u16::from_be_bytes([header[1], header[2]]))];
                stream.read_exact(&mut payload).map_err(|e| e.to_string())?;
                continue;
            }
            all.push(byte[0]);
            continue;
        }
        match stream.read(&mut byte) {
            Ok(0) => {
                return Err(format!(
                    "closed: {}",
                    String::from_utf8_lossy(&all[..all.len().min(200)])
                ))
            }
            Ok(_) => all.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(String::from_utf8_lossy(&all).into_owned())
}

#[test]
fn a_hundred_viewers_from_one_address_play_on_the_default_config() {
    // Nothing adjusted: the shipped limits (the test server only picks its ports).
    let movie = testing::H264_AAC.path();
    let server = TestServer::start(&[("movie.mp4", &movie)]);
    let url = server.url("movie.mp4");
    const VIEWERS: usize = 100;
    let barrier = Arc::new(Barrier::new(VIEWERS + 1));
    let counted = Arc::new(Barrier::new(VIEWERS + 1));
    let started = Instant::now();
    let threads: Vec<_> = (0..VIEWERS)
        .map(|_| {
            let (addr, url) = (server.addr, url.clone());
            let (barrier, counted) = (barrier.clone(), counted.clone());
            std::thread::spawn(move || {
                let outcome = viewer(addr, &url, 20);
                // Every viewer holds its session until all are playing and counted.
                barrier.wait();
                counted.wait();
                outcome.map(drop)
            })
        })
        .collect();
    barrier.wait();
    let playing = server.metric("stream_sessions_open");
    counted.wait();
    let failures: Vec<String> = threads
        .into_iter()
        .filter_map(|t| t.join().unwrap().err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {VIEWERS} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(playing, VIEWERS as i64, "all sessions open at once");
    assert!(started.elapsed() < Duration::from_secs(120));
    server.wait_until_no_session_is_open();
}
