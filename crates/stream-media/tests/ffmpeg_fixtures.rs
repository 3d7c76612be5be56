//! Demux and packetize files made by Debian's ffmpeg, checking what we produce against what ffprobe and
//! ffmpeg themselves see in the same files.

mod common;

use std::time::Duration;

use common::*;
use serval_stream_media::testing::{self, Fixture};
use serval_stream_media::{MediaKind, Movie, PacketOptions};

fn open(f: &Fixture) -> (std::path::PathBuf, Movie) {
    let path = f.path();
    let movie = Movie::open(&path).unwrap_or_else(|e| panic!("{}: {e}", f.name));
    (path, movie)
}

fn track_of(movie: &Movie, kind: MediaKind) -> u32 {
    movie
        .tracks()
        .iter()
        .find(|t| t.kind == kind)
        .map(|t| t.track_id)
        .unwrap()
}

#[test]
fn sample_counts_and_durations_match_ffprobe_for_every_fixture() {
    for f in testing::ALL {
        let (path, movie) = open(f);
        let media: Vec<_> = movie
            .tracks()
            .iter()
            .filter(|t| matches!(t.kind, MediaKind::Video | MediaKind::Audio))
            .collect();
        for (kind, sel) in [(MediaKind::Video, "v"), (MediaKind::Audio, "a")] {
            let ours: Vec<_> = media.iter().filter(|t| t.kind == kind).collect();
            for (i, track) in ours.iter().enumerate() {
                let stream = format!("{sel}:{i}");
                // Counted by reading (fragmented files declare no frame count in `moov`).
                let nb_frames: u32 = ffprobe(
                    &[
                        "-count_packets",
                        "-select_streams",
                        &stream,
                        "-show_entries",
                        "stream=nb_read_packets",
                        "-of",
                        "csv=p=0",
                    ],
                    &path,
                )
                .trim()
                .parse()
                .unwrap();
                let duration: f64 = probe_stream(&path, &stream, "duration")[0].parse().unwrap();
                assert_eq!(
                    track.n_samples, nb_frames,
                    "{} track {} sample count",
                    f.name, track.track_id
                );
                let diff = (track.duration.as_secs_f64() - duration).abs();
                assert!(
                    diff < 0.05,
                    "{} track {}: duration {:?} vs ffprobe {duration}",
                    f.name,
                    track.track_id,
                    track.duration
                );
            }
        }
        assert!(
            (movie.duration().as_secs_f64() - 6.0).abs() < 1.01,
            "{}: {:?}",
            f.name,
            movie.duration()
        );
    }
}

#[test]
fn codecs_and_parameters_are_recognised() {
    type Expected<'a> = &'a [(&'a str, Option<u32>, Option<u16>)];
    let expect: &[(&Fixture, Expected)] = &[
        (
            &testing::H264_AAC,
            &[("h264", None, None), ("aac", Some(44_100), Some(2))],
        ),
        (
            &testing::H265_AAC,
            &[("h265", None, None), ("aac", Some(48_000), Some(2))],
        ),
        (
            &testing::MPEG4_AAC51,
            &[("mp4v", None, None), ("aac", Some(48_000), Some(6))],
        ),
        (
            &testing::H264_MP3_MOV,
            &[("h264", None, None), ("mp3", Some(44_100), Some(2))],
        ),
        (&testing::OPUS_MP4, &[("opus", Some(48_000), Some(2))]),
    ];
    for (f, tracks) in expect {
        let (_, movie) = open(f);
        let got: Vec<_> = movie
            .tracks()
            .iter()
            .map(|t| (t.codec.as_str(), t.sample_rate, t.channels))
            .collect();
        assert_eq!(&got, tracks, "{}", f.name);
        assert_eq!(movie.selected_tracks().len(), tracks.len(), "{}", f.name);
        for t in movie.tracks() {
            assert_eq!(t.playable, Ok(()));
            if t.kind == MediaKind::Video {
                assert_eq!((t.width, t.height), (Some(320), Some(240)));
            }
        }
    }
}

#[test]
fn h264_sdp_has_parameter_sets_profile_and_controls() {
    let (_, movie) = open(&testing::H264_AAC);
    let sdp = movie.sdp("Test \r\nInjected", "192.0.2.1");
    let lines: Vec<&str> = sdp.split("\r\n").collect();
    assert_eq!(lines[0], "v=0");
    assert!(
        lines[1].starts_with("o=- ") && lines[1].ends_with(" IN IP4 192.0.2.1"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2], "s=Test   Injected",
        "control characters cannot inject SDP lines"
    );
    assert_eq!(
        &lines[3..7],
        [
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=0-6.000"
        ]
    );
    assert_eq!(lines[7], "m=video 0 RTP/AVP 96");
    assert_eq!(lines[8], "a=rtpmap:96 H264/90000");
    assert!(
        lines[9].starts_with(
            "a=fmtp:96 packetization-mode=1;profile-level-id=64000d;sprop-parameter-sets=Z2QAD"
        ),
        "{}",
        lines[9]
    );
    assert!(sdp.contains(
        "a=control:trackID=1\r\nm=audio 0 RTP/AVP 97\r\na=rtpmap:97 mpeg4-generic/44100/2\r\n"
    ));
    assert!(sdp.contains("a=fmtp:97 streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config=1210"));
    assert!(sdp.ends_with("a=control:trackID=2\r\n"));
}

#[test]
fn other_codecs_sdp() {
    let (_, movie) = open(&testing::H265_AAC);
    let sdp = movie.sdp("s", "127.0.0.1");
    assert!(
        sdp.contains("a=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps=QAEMAf"),
        "{sdp}"
    );
    assert!(
        sdp.contains(";sprop-sps=QgEB") && sdp.contains(";sprop-pps=RA"),
        "{sdp}"
    );

    let (_, movie) = open(&testing::MPEG4_AAC51);
    let sdp = movie.sdp("s", "127.0.0.1");
    assert!(
        sdp.contains("a=rtpmap:96 MP4V-ES/90000\r\na=fmtp:96 profile-level-id=1;config=000001B0"),
        "{sdp}"
    );
    assert!(
        sdp.contains("a=rtpmap:97 mpeg4-generic/48000/6\r\n"),
        "{sdp}"
    );

    let (_, movie) = open(&testing::H264_MP3_MOV);
    let sdp = movie.sdp("s", "127.0.0.1");
    assert!(
        sdp.contains("m=audio 0 RTP/AVP 14\r\na=rtpmap:14 MPA/90000\r\n"),
        "{sdp}"
    );

    let (_, movie) = open(&testing::OPUS_MP4);
    let sdp = movie.sdp("s", "127.0.0.1");
    assert!(
        sdp.contains(
            "m=audio 0 RTP/AVP 96\r\na=rtpmap:96 opus/48000/2\r\na=fmtp:96 sprop-stereo=1\r\n"
        ),
        "{sdp}"
    );
}

#[test]
fn h264_rtp_timestamps_are_presentation_times_and_send_times_decode_times() {
    let (path, movie) = open(&testing::H264_AAC);
    let probe = probe_packets(&path, "v:0");
    let (num, den) = probe_time_base(&path, "v:0");
    let packets = drain(
        &movie,
        track_of(&movie, MediaKind::Video),
        Duration::ZERO,
        PacketOptions::default(),
    );
    // One access unit ends at each marker.
    let ends: Vec<_> = packets.iter().filter(|p| p.marker).collect();
    assert_eq!(ends.len(), probe.len());
    let mut has_b_frames = false;
    for (ours, theirs) in ends.iter().zip(&probe) {
        let pts_90k = theirs.pts * num * 90_000 / den;
        assert_eq!(i64::from(ours.timestamp), pts_90k);
        let dts_s = (theirs.dts * num) as f64 / den as f64;
        assert!(
            (ours.send_time.as_secs_f64() - dts_s.max(0.0)).abs() < 1e-6,
            "send {:?} vs dts {dts_s}",
            ours.send_time
        );
        has_b_frames |= theirs.pts != theirs.dts + 1024;
    }
    assert!(has_b_frames, "fixture should exercise ctts");
    assert!(
        packets.windows(2).all(|w| w[0].send_time <= w[1].send_time),
        "send times never go back"
    );
}

#[test]
fn h264_payloads_rebuild_the_nal_units_ffmpeg_extracts() {
    let (path, movie) = open(&testing::H264_AAC);
    let packets = drain(
        &movie,
        track_of(&movie, MediaKind::Video),
        Duration::ZERO,
        PacketOptions::default(),
    );
    assert!(packets.iter().all(|p| p.payload.len() <= 1400));
    assert!(
        packets.iter().any(|p| p.payload[0] & 0x1F == 28),
        "fixture should exercise FU-A"
    );
    let ours = depacketize_h264(&packets);
    let theirs = split_annexb(&ffmpeg_annexb(&path, "h264_mp4toannexb", "h264"));
    // ffmpeg and we both repeat SPS/PPS before IDRs, possibly in different places; compare the rest.
    let not_ps = |n: &Vec<u8>| !matches!(n[0] & 0x1F, 7..=9);
    let ours_vcl: Vec<_> = ours.iter().filter(|n| not_ps(n)).collect();
    let theirs_vcl: Vec<_> = theirs.iter().filter(|n| not_ps(n)).collect();
    assert_eq!(ours_vcl.len(), theirs_vcl.len());
    assert!(ours_vcl == theirs_vcl, "NAL units differ from ffmpeg's");
    // In-band SPS and PPS precede every IDR.
    for (i, n) in ours.iter().enumerate() {
        if n[0] & 0x1F == 5 && (i == 0 || ours[i - 1][0] & 0x1F != 5) {
            let before: Vec<u8> = ours[..i]
                .iter()
                .rev()
                .take(3)
                .map(|n| n[0] & 0x1F)
                .collect();
            assert!(
                before.contains(&7) && before.contains(&8),
                "IDR at NAL {i} lacks SPS/PPS before it: {before:?}"
            );
        }
    }
}

#[test]
fn h265_payloads_rebuild_the_nal_units_ffmpeg_extracts() {
    let (path, movie) = open(&testing::H265_AAC);
    let packets = drain(
        &movie,
        track_of(&movie, MediaKind::Video),
        Duration::ZERO,
        PacketOptions { max_payload: 600 },
    );
    assert!(packets.iter().all(|p| p.payload.len() <= 600));
    assert!(
        packets.iter().any(|p| (p.payload[0] >> 1) & 0x3F == 49),
        "fixture should exercise FUs"
    );
    let ours = depacketize_h265(&packets);
    let theirs = split_annexb(&ffmpeg_annexb(&path, "hevc_mp4toannexb", "hevc"));
    let not_ps = |n: &&Vec<u8>| !matches!((n[0] >> 1) & 0x3F, 32..=35 | 39);
    let ours_vcl: Vec<_> = ours.iter().filter(not_ps).collect();
    let theirs_vcl: Vec<_> = theirs.iter().filter(not_ps).collect();
    assert_eq!(ours_vcl.len(), theirs_vcl.len());
    assert!(ours_vcl == theirs_vcl, "NAL units differ from ffmpeg's");
    assert_eq!(
        packets.iter().filter(|p| p.marker).count(),
        probe_packets(&path, "v:0").len()
    );
}

#[test]
fn aac_payloads_carry_every_frame_with_its_size_and_sample_rate_timestamps() {
    for f in [&testing::H264_AAC, &testing::MPEG4_AAC51] {
        let (path, movie) = open(f);
        let probe = probe_packets(&path, "a:0");
        let track = track_of(&movie, MediaKind::Audio);
        let packets = drain(&movie, track, Duration::ZERO, PacketOptions::default());
        let source = movie.packets(track, Duration::ZERO).unwrap();
        assert_eq!(source.clock_rate(), movie.tracks()[1].sample_rate.unwrap());
        // Several AUs per packet (RFC 3640 §3.2.2): walk each packet's AU headers.
        assert!(
            packets.len() * 2 <= probe.len(),
            "{}: AUs are aggregated ({} packets for {} AUs)",
            f.name,
            packets.len(),
            probe.len()
        );
        let mut theirs = probe.iter();
        for p in &packets {
            let b = &p.payload;
            assert!(b.len() <= 1400 && p.marker);
            let n = usize::from(u16::from_be_bytes([b[0], b[1]])) / 16;
            assert!(n >= 1);
            let mut at = 2 + 2 * n;
            for h in 0..n {
                let header = u16::from_be_bytes([b[2 + 2 * h], b[3 + 2 * h]]);
                assert_eq!(header & 7, 0, "AU-Index and AU-Index-delta 0");
                let au = theirs.next().expect("more AUs than ffprobe sees");
                assert_eq!(u32::from(header >> 3), au.size);
                if h == 0 {
                    // Time base is 1/sample_rate here, so pts is the RTP timestamp (wrapping for
                    // the priming frame); the packet is stamped with its first AU's.
                    assert_eq!(p.timestamp, au.pts as u32, "{}", f.name);
                }
                at += au.size as usize;
            }
            assert_eq!(at, b.len());
        }
        assert!(theirs.next().is_none(), "{}: every AU is sent", f.name);
    }
}

#[test]
fn mp4v_mp3_and_opus_payloads_cover_every_sample() {
    let (path, movie) = open(&testing::MPEG4_AAC51);
    let packets = drain(
        &movie,
        track_of(&movie, MediaKind::Video),
        Duration::ZERO,
        PacketOptions::default(),
    );
    let probe = probe_packets(&path, "v:0");
    assert_eq!(packets.iter().filter(|p| p.marker).count(), probe.len());
    let total: usize = packets.iter().map(|p| p.payload.len()).sum();
    assert_eq!(
        total as u64,
        probe.iter().map(|p| u64::from(p.size)).sum::<u64>()
    );
    assert_eq!(
        &packets[0].payload[..4],
        &[0, 0, 1, 0xB3],
        "first VOP packet starts with a GOV start code"
    );

    let (path, movie) = open(&testing::H264_MP3_MOV);
    let audio = track_of(&movie, MediaKind::Audio);
    let source = movie.packets(audio, Duration::ZERO).unwrap();
    assert_eq!((source.payload_type(), source.clock_rate()), (14, 90_000));
    let packets = drain(&movie, audio, Duration::ZERO, PacketOptions::default());
    let probe = probe_packets(&path, "a:0");
    assert_eq!(packets.len(), probe.len());
    for (p, theirs) in packets.iter().zip(&probe) {
        assert_eq!(&p.payload[..4], &[0, 0, 0, 0]);
        assert_eq!(p.payload.len() - 4, theirs.size as usize);
        assert_eq!(p.payload[4], 0xFF, "MPEG audio frame sync");
    }

    let (path, movie) = open(&testing::OPUS_MP4);
    let packets = drain(
        &movie,
        movie.selected_tracks()[0],
        Duration::ZERO,
        PacketOptions::default(),
    );
    let probe = probe_packets(&path, "a:0");
    assert_eq!(
        packets
            .iter()
            .map(|p| p.payload.len() as u32)
            .collect::<Vec<_>>(),
        probe.iter().map(|p| p.size).collect::<Vec<_>>()
    );
    assert_eq!(
        packets[2].timestamp.wrapping_sub(packets[1].timestamp),
        960,
        "20 ms frames at 48 kHz"
    );
}

#[test]
fn video_seek_starts_at_the_previous_sync_sample() {
    let (path, movie) = open(&testing::H264_AAC);
    let (num, den) = probe_time_base(&path, "v:0");
    let keyframes: Vec<f64> = probe_packets(&path, "v:0")
        .iter()
        .filter(|p| p.key)
        .map(|p| (p.pts * num) as f64 / den as f64)
        .collect();
    assert!(keyframes.len() >= 3, "keyframes {keyframes:?}");
    let video = track_of(&movie, MediaKind::Video);
    for wanted in [0.0, 0.5, 1.99, 2.0, 2.01, 3.1, 4.5, 5.9] {
        let expected = keyframes
            .iter()
            .copied()
            .filter(|&k| k <= wanted + 1e-9)
            .fold(0.0, f64::max);
        let mut source = movie
            .packets(video, Duration::from_secs_f64(wanted))
            .unwrap();
        assert!(
            (source.start().as_secs_f64() - expected).abs() < 1e-6,
            "seek {wanted}: start {:?}, expected {expected}",
            source.start()
        );
        assert_eq!(
            source.start_rtp_timestamp(),
            (expected * 90_000.0).round() as u32
        );
        let first = source.next_packet().unwrap().unwrap();
        // The first access unit is the sync sample: parameter sets, then its IDR slices.
        assert_eq!(first.payload[0] & 0x1F, 7, "seek {wanted} starts with SPS");
        assert_eq!(first.timestamp, source.start_rtp_timestamp());
    }
}

#[test]
fn audio_seek_starts_at_the_frame_containing_the_position() {
    let (_, movie) = open(&testing::H264_AAC);
    let audio = track_of(&movie, MediaKind::Audio);
    let mut source = movie.packets(audio, Duration::from_millis(2500)).unwrap();
    let start = source.start();
    // The packet carrying the frame at 2.5 s holds at most 8 frames (23 ms each at 44.1 kHz).
    assert!(
        start <= Duration::from_millis(2500) && start > Duration::from_millis(2500 - 8 * 24),
        "{start:?}"
    );
    let first = source.next_packet().unwrap().unwrap();
    assert_eq!(first.timestamp, source.start_rtp_timestamp());
    let past_end = drain(
        &movie,
        audio,
        Duration::from_secs(60),
        PacketOptions::default(),
    );
    assert!(past_end.is_empty());
}

#[test]
fn moov_at_start_or_end_gives_the_same_stream() {
    let (_, end) = open(&testing::H264_AAC);
    let (_, start) = open(&testing::H264_AAC_FASTSTART);
    assert_eq!(end.tracks(), start.tracks());
    for &track in end.selected_tracks() {
        let a = drain(&end, track, Duration::ZERO, PacketOptions::default());
        let b = drain(&start, track, Duration::ZERO, PacketOptions::default());
        assert!(
            a == b,
            "track {track} differs between moov-at-end and faststart"
        );
    }
}

#[test]
fn max_payload_is_honoured() {
    let (_, movie) = open(&testing::H264_AAC);
    for &track in movie.selected_tracks() {
        let packets = drain(
            &movie,
            track,
            Duration::ZERO,
            PacketOptions { max_payload: 300 },
        );
        assert!(
            packets.iter().all(|p| p.payload.len() <= 300),
            "track {track}"
        );
    }
}

#[test]
fn hinted_file_streams_its_hint_tracks_with_their_sdp() {
    let (_, movie) = open(&testing::H264_AAC_HINTED);
    let hints: Vec<_> = movie
        .tracks()
        .iter()
        .filter(|t| t.kind == MediaKind::Hint)
        .map(|t| t.track_id)
        .collect();
    assert_eq!(hints.len(), 2);
    assert_eq!(
        movie.selected_tracks(),
        &hints[..],
        "hint tracks preferred, as DSS did"
    );
    let sdp = movie.sdp("s", "127.0.0.1");
    assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"), "{sdp}");
    assert!(
        sdp.contains("a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"),
        "ffmpeg's own rtpmap is kept: {sdp}"
    );
    assert!(sdp.contains(&format!("a=control:trackID={}\r\n", hints[0])));
    assert!(sdp.contains(&format!("a=control:trackID={}\r\n", hints[1])));
    assert_eq!(
        sdp.matches("a=control:").count(),
        3,
        "one session-level and one per track: {sdp}"
    );
}

#[test]
fn hint_track_packets_carry_the_same_video_as_our_packetizer() {
    let (_, hinted) = open(&testing::H264_AAC_HINTED);
    let (_, plain) = open(&testing::H264_AAC);
    let hint_video = hinted.selected_tracks()[0];
    let hint_packets = drain(
        &hinted,
        hint_video,
        Duration::ZERO,
        PacketOptions::default(),
    );
    let own_packets = drain(&plain, 1, Duration::ZERO, PacketOptions::default());
    let not_ps = |n: &Vec<u8>| !matches!(n[0] & 0x1F, 7 | 8);
    let hint_nals: Vec<_> = depacketize_h264(&hint_packets)
        .into_iter()
        .filter(not_ps)
        .collect();
    let own_nals: Vec<_> = depacketize_h264(&own_packets)
        .into_iter()
        .filter(not_ps)
        .collect();
    assert_eq!(hint_nals.len(), own_nals.len());
    assert!(
        hint_nals == own_nals,
        "hint track payloads rebuild different NAL units"
    );
    // Same presentation timestamps per access unit (the hint track stamps them relative to the first).
    let hint_ts: Vec<u32> = hint_packets
        .iter()
        .filter(|p| p.marker)
        .map(|p| p.timestamp)
        .collect();
    let own_ts: Vec<u32> = own_packets
        .iter()
        .filter(|p| p.marker)
        .map(|p| p.timestamp)
        .collect();
    assert_eq!(hint_ts, own_ts);
    assert!(hint_packets.iter().all(|p| p.payload.len() <= 1438));
}

#[test]
fn hint_track_seek_starts_at_a_sync_hint_sample() {
    let (_, movie) = open(&testing::H264_AAC_HINTED);
    let video = movie.selected_tracks()[0];
    let mut source = movie.packets(video, Duration::from_millis(3100)).unwrap();
    assert_eq!(source.start(), Duration::from_secs(2));
    assert_eq!(source.start_rtp_timestamp(), 180_000);
    let first = source.next_packet().unwrap().unwrap();
    assert_eq!(first.timestamp, 180_000);
}

#[test]
fn fragmented_mp4_plays_the_same_frames_as_ffmpeg_reads_and_seeks() {
    for f in [&testing::FRAGMENTED, &testing::FRAGMENTED_MOOF_BASE] {
        let (path, movie) = open(f);
        assert!(
            (movie.duration().as_secs_f64() - 6.0).abs() < 0.1,
            "{}: {:?}",
            f.name,
            movie.duration()
        );
        assert_eq!(movie.selected_tracks().len(), 2, "{}", f.name);
        let video = track_of(&movie, MediaKind::Video);
        let packets = drain(&movie, video, Duration::ZERO, PacketOptions::default());
        let ours: Vec<Vec<u8>> = depacketize_h264(&packets)
            .into_iter()
            .filter(|n| !matches!(n[0] & 0x1F, 7..=9))
            .collect();
        let theirs: Vec<Vec<u8>> = split_annexb(&ffmpeg_annexb(&path, "h264_mp4toannexb", "h264"))
            .into_iter()
            .filter(|n| !matches!(n[0] & 0x1F, 7..=9))
            .collect();
        assert_eq!(ours.len(), theirs.len(), "{}", f.name);
        assert!(ours == theirs, "{}: NAL units differ from ffmpeg's", f.name);
        // Seeking lands on the keyframe at or before the position, as in a progressive file.
        let keys: Vec<i64> = probe_packets(&path, "v:0")
            .iter()
            .filter(|p| p.key)
            .map(|p| p.pts)
            .collect();
        assert!(keys.len() >= 2, "{}: {keys:?}", f.name);
        let source = movie.packets(video, Duration::from_millis(4500)).unwrap();
        assert!(
            source.start() <= Duration::from_millis(4500)
                && source.start() >= Duration::from_millis(2000),
            "{}: {:?}",
            f.name,
            source.start()
        );
        let audio = track_of(&movie, MediaKind::Audio);
        let audio_packets = drain(&movie, audio, Duration::ZERO, PacketOptions::default());
        assert!(!audio_packets.is_empty());
    }
}

#[test]
fn every_audio_track_is_described_and_streamed() {
    let (path, movie) = open(&testing::TWO_AUDIO_TRACKS);
    let audio: Vec<u32> = movie
        .tracks()
        .iter()
        .filter(|t| t.kind == MediaKind::Audio)
        .map(|t| t.track_id)
        .collect();
    assert_eq!(audio.len(), 2);
    let selected = movie.selected_tracks();
    assert_eq!(
        selected.len(),
        3,
        "video and both audio tracks: {selected:?}"
    );
    let sdp = movie.sdp("s", "127.0.0.1");
    assert_eq!(sdp.matches("m=audio").count(), 2, "{sdp}");
    let languages: Vec<Option<&str>> = movie
        .tracks()
        .iter()
        .filter(|t| t.kind == MediaKind::Audio)
        .map(|t| t.language.as_deref())
        .collect();
    assert_eq!(languages, [Some("eng"), Some("fra")]);
    let english = sdp
        .find("a=lang:eng\r\n")
        .expect("English named in the SDP");
    let french = sdp.find("a=lang:fra\r\n").expect("French named in the SDP");
    assert!(english < french, "{sdp}");
    assert!(
        sdp.contains("mpeg4-generic/44100/2") && sdp.contains("mpeg4-generic/48000/2"),
        "{sdp}"
    );
    for id in &audio {
        assert!(
            sdp.contains(&format!("a=control:trackID={id}\r\n")),
            "{sdp}"
        );
        let packets = drain(&movie, *id, Duration::ZERO, PacketOptions::default());
        let frames = probe_stream(
            &path,
            if *id == audio[0] { "a:0" } else { "a:1" },
            "nb_frames",
        )[0]
        .parse::<usize>()
        .unwrap();
        // Each packet's AU-headers-length (bits, 16 per AU header) counts the frames it carries.
        let aus: usize = packets
            .iter()
            .map(|p| usize::from(u16::from_be_bytes([p.payload[0], p.payload[1]])) / 16)
            .sum();
        assert_eq!(aus, frames, "track {id}");
    }
}

#[test]
fn a_hinted_mov_with_aac_announces_every_mpeg4_generic_parameter() {
    let (_, movie) = open(&testing::HINTED_MOV);
    let sdp = movie.sdp("s", "127.0.0.1");
    let fmtp = sdp
        .lines()
        .find(|l| l.starts_with("a=fmtp:97 "))
        .unwrap_or_else(|| panic!("{sdp}"));
    for param in [
        "streamtype=5",
        "profile-level-id=",
        "mode=AAC-hbr",
        "sizelength=13",
        "indexlength=3",
        "indexdeltalength=3",
        "config=",
    ] {
        assert!(
            fmtp.to_ascii_lowercase()
                .contains(&param.to_ascii_lowercase()),
            "{param} missing: {fmtp}"
        );
    }
}

#[test]
fn truncated_files_are_errors_not_panics() {
    for f in [
        &testing::H264_AAC,
        &testing::H264_AAC_FASTSTART,
        &testing::H264_AAC_HINTED,
    ] {
        let bytes = std::fs::read(f.path()).unwrap();
        for cut in (0..bytes.len())
            .step_by(bytes.len() / 97 + 1)
            .chain([bytes.len() - 1, 8, 16])
        {
            let data = bytes::Bytes::copy_from_slice(&bytes[..cut]);
            match Movie::from_source(std::sync::Arc::new(data)) {
                Err(e) => assert!(!e.to_string().is_empty()),
                Ok(movie) => {
                    // Faststart files keep their moov; reading cut-off samples must then fail cleanly.
                    for &t in movie.selected_tracks() {
                        let mut source = movie.packets(t, Duration::ZERO).unwrap();
                        let mut n = 0;
                        while let Ok(Some(_)) = source.next_packet() {
                            n += 1;
                            assert!(n < 100_000);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn corrupted_movies_never_panic() {
    // Deterministic mutations of real files, run through the same body as the `mp4_demux` fuzz target.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for f in [
        &testing::H264_AAC_FASTSTART,
        &testing::H264_AAC_HINTED,
        &testing::H265_AAC,
        &testing::H264_MP3_MOV,
    ] {
        let original = std::fs::read(f.path()).unwrap();
        let moov = original.windows(4).position(|w| w == b"moov").unwrap();
        let moov_len = u32::from_be_bytes(original[moov - 4..moov].try_into().unwrap()) as usize;
        for _ in 0..150 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = moov + (next() as usize % moov_len.min(bytes.len() - moov));
                bytes[at] = match next() % 3 {
                    0 => 0xFF,
                    1 => 0,
                    _ => next() as u8,
                };
            }
            serval_stream_media::fuzzing::mp4_demux(&bytes);
        }
    }
}

#[test]
fn corrupted_and_cut_movie_fragments_never_panic() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for f in [&testing::FRAGMENTED, &testing::FRAGMENTED_MOOF_BASE] {
        let original = std::fs::read(f.path()).unwrap();
        let moofs: Vec<usize> = original
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"moof" || *w == b"traf" || *w == b"trun" || *w == b"mvex")
            .map(|(i, _)| i)
            .collect();
        assert!(moofs.len() > 4, "{}", f.name);
        for _ in 0..200 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let near = moofs[next() as usize % moofs.len()];
                let at = (near + next() as usize % 64).min(bytes.len() - 1);
                bytes[at] = match next() % 3 {
                    0 => 0xFF,
                    1 => 0,
                    _ => next() as u8,
                };
            }
            serval_stream_media::fuzzing::mp4_demux(&bytes);
        }
        // A recording cut off mid-fragment plays what was fully written.
        let cut = &original[..original.len() * 2 / 3];
        let movie = Movie::from_source(std::sync::Arc::new(bytes::Bytes::copy_from_slice(cut)))
            .unwrap_or_else(|e| panic!("{}: {e}", f.name));
        assert!(
            movie.duration() > Duration::from_secs(2) && movie.duration() < Duration::from_secs(6),
            "{}: {:?}",
            f.name,
            movie.duration()
        );
        for &t in movie.selected_tracks() {
            let mut source = movie.packets(t, Duration::ZERO).unwrap();
            while source.next_packet().unwrap().is_some() {}
        }
    }
}

#[test]
fn unusable_hint_tracks_fall_back_to_our_packetizers() {
    let mut bytes = std::fs::read(testing::H264_AAC_HINTED.path()).unwrap();
    // Rename every track-level `sdp ` box so the hint tracks lose their SDP fragments.
    let mut renamed = 0;
    let mut i = 0;
    while let Some(pos) = bytes[i..].windows(4).position(|w| w == b"sdp ") {
        let at = i + pos;
        // The movie-level box is `rtp ` followed by the format `sdp `; leave that one alone.
        if &bytes[at - 4..at] != b"rtp " {
            bytes[at..at + 4].copy_from_slice(b"xdp ");
            renamed += 1;
        }
        i = at + 4;
    }
    assert!(renamed >= 2, "renamed {renamed}");
    let movie = Movie::from_source(std::sync::Arc::new(bytes::Bytes::from(bytes))).unwrap();
    let hints: Vec<_> = movie
        .tracks()
        .iter()
        .filter(|t| t.kind == MediaKind::Hint)
        .collect();
    assert!(
        hints
            .iter()
            .all(|t| t.playable.as_ref().is_err_and(|why| why.contains("sdp"))),
        "{hints:?}"
    );
    assert_eq!(movie.selected_tracks(), &[1, 2]);
    assert!(movie
        .sdp("s", "127.0.0.1")
        .contains("a=rtpmap:97 mpeg4-generic/44100/2\r\n"));
}
