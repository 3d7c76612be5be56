//! Container features checked on files built in code: 64-bit offsets past 4 GiB, missing `stss`, edit
//! lists, lying table counts. No ffmpeg needed.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::builder::*;
use common::depacketize_h264;
use serval_stream_media::{MediaError, Movie, PacketOptions};

fn gop(n: usize, gop_len: usize, frame_ticks: u32) -> Vec<Sample> {
    (0..n)
        .map(|i| {
            let sync = i % gop_len == 0;
            Sample {
                data: avcc_sample(sync, if sync { 3000 } else { 200 + i * 7 }, i as u8),
                duration: frame_ticks,
                composition_offset: 0,
                sync,
            }
        })
        .collect()
}

fn drain(movie: &Movie, track: u32, start: Duration) -> Vec<serval_stream_media::RtpPacketOut> {
    let mut source = movie
        .packets_with(track, start, PacketOptions::default())
        .unwrap();
    let mut out = Vec::new();
    while let Some(p) = source.next_packet().unwrap() {
        out.push(p);
    }
    out
}

fn nal_of(sample: &Sample) -> Vec<u8> {
    sample.data[4..].to_vec()
}

#[test]
fn samples_past_4_gib_are_read_through_co64_and_64_bit_box_sizes() {
    let track = VideoTrack::new(1, gop(10, 5, 3600));
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomavc1");
    let data_start: u64 = 5 << 30; // 5 GiB
    let mdat_header_at = data_start - 16;
    let moov = moov(&[(&track, data_start)], true, 400);
    let head_len = (ftyp.len() + moov.len()) as u64;
    let mut head = ftyp;
    head.extend(moov);
    head.extend(large_header(b"free", mdat_header_at - head_len));
    let data = track.sample_bytes();
    let mut tail = large_header(b"mdat", 16 + data.len() as u64);
    tail.extend(&data);
    let file = Sparse {
        regions: vec![(0, Bytes::from(head)), (mdat_header_at, Bytes::from(tail))],
        len: data_start + data.len() as u64,
    };
    let movie = Movie::from_source(Arc::new(file)).unwrap();
    assert_eq!(movie.tracks()[0].n_samples, 10);
    let packets = drain(&movie, 1, Duration::ZERO);
    let nals = depacketize_h264(&packets);
    let expected: Vec<Vec<u8>> = track.samples.iter().map(nal_of).collect();
    let vcl: Vec<Vec<u8>> = nals
        .into_iter()
        .filter(|n| !matches!(n[0] & 0x1F, 7 | 8))
        .collect();
    assert_eq!(
        vcl, expected,
        "bytes read from beyond 4 GiB match what was written there"
    );
}

#[test]
fn without_stss_every_sample_is_a_sync_sample() {
    let mut track = VideoTrack::new(1, gop(50, 25, 3600));
    track.write_stss = false;
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    // 25 fps at 90 kHz: 1.5 s is exactly sample 37 (0-based), which is a sync sample here.
    let source = movie.packets(1, Duration::from_millis(1500)).unwrap();
    assert_eq!(source.start(), Duration::from_millis(1480));
    assert_eq!(source.start_rtp_timestamp(), 37 * 3600);

    track.write_stss = true;
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    let source = movie.packets(1, Duration::from_millis(1500)).unwrap();
    assert_eq!(
        source.start(),
        Duration::from_secs(1),
        "with stss, back to the keyframe at sample 25"
    );
}

#[test]
fn leading_empty_edit_delays_timestamps_and_send_times() {
    let mut track = VideoTrack::new(1, gop(10, 5, 3600));
    track.edits = vec![(1000, -1), (400, 0)]; // 1 s of nothing, then the media from its start
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    let packets = drain(&movie, 1, Duration::ZERO);
    assert_eq!(packets[0].timestamp, 90_000);
    assert_eq!(packets[0].send_time, Duration::from_secs(1));
    let last = packets.last().unwrap();
    assert_eq!(last.timestamp, 90_000 + 9 * 3600);
    assert_eq!(movie.tracks()[0].duration, Duration::from_millis(1400));
}

#[test]
fn media_time_edit_and_ctts_give_presentation_timestamps_from_zero() {
    // Decode order I P B B with composition offsets as an encoder with B-frames writes them, and an edit
    // that skips the first frame's composition delay (what ffmpeg writes).
    let ticks = 3600;
    let offsets = [ticks, 4 * ticks, ticks, ticks];
    let mut samples = gop(4, 4, ticks as u32);
    for (s, o) in samples.iter_mut().zip(offsets) {
        s.composition_offset = o;
    }
    let mut track = VideoTrack::new(1, samples);
    track.write_ctts = true;
    track.edits = vec![(160, ticks)];
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    let packets = drain(&movie, 1, Duration::ZERO);
    let ends: Vec<(u32, Duration)> = packets
        .iter()
        .filter(|p| p.marker)
        .map(|p| (p.timestamp, p.send_time))
        .collect();
    let pts: Vec<u32> = ends.iter().map(|e| e.0).collect();
    assert_eq!(
        pts,
        [0, 4 * 3600, 2 * 3600, 3 * 3600],
        "I P B B in presentation time"
    );
    assert_eq!(
        ends[0].1,
        Duration::ZERO,
        "decode time before zero is sent at once"
    );
    assert_eq!(ends[1].1, Duration::ZERO);
    assert_eq!(ends[2].1, Duration::from_millis(40));
}

#[test]
fn marker_is_set_on_the_last_packet_of_each_access_unit_only() {
    let track = VideoTrack::new(1, gop(6, 3, 3600));
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    let packets = drain(&movie, 1, Duration::ZERO);
    for pair in packets.windows(2) {
        if pair[0].timestamp != pair[1].timestamp {
            assert!(
                pair[0].marker,
                "last packet before a new timestamp has the marker"
            );
        } else {
            assert!(!pair[0].marker, "no marker inside an access unit");
        }
    }
    assert!(packets.last().unwrap().marker);
    // IDR: SPS, PPS, then 3 FU-A fragments of a 3000-byte NAL.
    let first_au: Vec<u8> = packets
        .iter()
        .take_while(|p| p.timestamp == 0)
        .map(|p| p.payload[0] & 0x1F)
        .collect();
    assert_eq!(first_au, [7, 8, 28, 28, 28]);
}

#[test]
fn sample_count_over_the_limit_is_refused_before_allocating() {
    let track = VideoTrack::new(1, gop(3, 3, 3600));
    let mut file = simple_file(&track).to_vec();
    // Rewrite stsz's sample count to 4 billion.
    let at = file.windows(4).position(|w| w == b"stsz").unwrap();
    file[at + 12..at + 16].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    let err = Movie::from_source(Arc::new(Bytes::from(file))).unwrap_err();
    assert!(matches!(err, MediaError::NoPlayableTrack { .. }), "{err}");
    assert!(err.to_string().contains("over the limit"), "{err}");
}

#[test]
fn lying_stts_and_stsc_counts_are_corrupt_not_hangs() {
    let track = VideoTrack::new(1, gop(9, 3, 3600));
    let file = simple_file(&track).to_vec();
    // Offsets from the type field: +8 is the entry count, +12 the first entry.
    for (kind, field_at) in [
        (b"stts", 8),
        (b"stts", 12),
        (b"stsc", 8),
        (b"stsc", 12),
        (b"stco", 8),
        (b"stco", 12),
        (b"stss", 8),
    ] {
        let mut bad = file.clone();
        let at = bad.windows(4).position(|w| w == kind).unwrap();
        bad[at + field_at..at + field_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        match Movie::from_source(Arc::new(Bytes::from(bad))) {
            Err(e) => assert!(
                !e.is_unsupported() || matches!(e, MediaError::NoPlayableTrack { .. }),
                "{e}"
            ),
            Ok(movie) => {
                // Opening may succeed (a lying first chunk offset); reading must then fail, not panic.
                let mut source = movie.packets(1, Duration::ZERO).unwrap();
                let mut n = 0;
                while let Ok(Some(_)) = source.next_packet() {
                    n += 1;
                    assert!(n < 1000);
                }
            }
        }
    }
}

#[test]
fn not_an_mp4_is_a_corrupt_error() {
    let err = Movie::from_source(Arc::new(Bytes::from_static(
        b"this is plainly not a movie file at all",
    )))
    .unwrap_err();
    assert!(!err.is_unsupported(), "{err}");
    let err = Movie::from_source(Arc::new(Bytes::new())).unwrap_err();
    assert!(err.to_string().contains("moov"), "{err}");
}

#[test]
fn fuzz_bodies_run_over_seed_inputs() {
    let track = VideoTrack::new(1, gop(12, 4, 3600));
    let file = simple_file(&track);
    serval_stream_media::fuzzing::mp4_demux(&file);
    for cut in (0..file.len()).step_by(37) {
        serval_stream_media::fuzzing::mp4_demux(&file[..cut]);
    }
    for seed in [
        &[0x05, 0x78, 0x00, 0x65, 1, 2, 3][..],
        &[0x00, 0x40, 0x00, 0x41][..],
        &[0x00, 0x40, 0x01, 0x26, 0x01, 9, 9, 9][..],
        &[0x00, 0x40, 0x02][..],
        &[][..],
    ] {
        serval_stream_media::fuzzing::rtp_packetize(seed);
    }
    let big: Vec<u8> = [0x00, 0x40, 0x00, 0x65]
        .into_iter()
        .chain((0..5000).map(|i| i as u8))
        .collect();
    serval_stream_media::fuzzing::rtp_packetize(&big);
    let big265: Vec<u8> = [0x00, 0x40, 0x01, 0x26, 0x01]
        .into_iter()
        .chain((0..5000).map(|i| i as u8))
        .collect();
    serval_stream_media::fuzzing::rtp_packetize(&big265);
    let aac: Vec<u8> = [0x00, 0x40, 0x02]
        .into_iter()
        .chain((0..3000).map(|i| i as u8))
        .collect();
    serval_stream_media::fuzzing::rtp_packetize(&aac);
}

/// A track describing `n` samples in a few dozen bytes: constant-size `stsz`, one-entry `stts` and `stsc`.
fn compact_trak(track_id: u32, n: u32) -> Vec<u8> {
    let mut tkhd = vec![0u8; 8];
    tkhd.extend(track_id.to_be_bytes());
    tkhd.extend([0u8; 68]);
    let mut mdhd = vec![0u8; 8];
    mdhd.extend(90_000u32.to_be_bytes());
    mdhd.extend([0u8; 8]);
    let mut hdlr = vec![0u8; 4];
    hdlr.extend(b"vide");
    hdlr.extend([0u8; 13]);
    let mut stsd = 1u32.to_be_bytes().to_vec();
    stsd.extend(avc1_entry(320, 240));
    let entry = |a: u32, b: u32| [a.to_be_bytes(), b.to_be_bytes()].concat();
    let mut stbl = full(b"stsd", 0, 0, &stsd);
    stbl.extend(full(
        b"stts",
        0,
        0,
        &[1u32.to_be_bytes().to_vec(), entry(n, 3600)].concat(),
    ));
    stbl.extend(full(
        b"stsc",
        0,
        0,
        &[
            1u32.to_be_bytes().to_vec(),
            entry(1, n),
            1u32.to_be_bytes().to_vec(),
        ]
        .concat(),
    ));
    stbl.extend(full(b"stsz", 0, 0, &entry(10, n)));
    stbl.extend(full(b"stco", 0, 0, &entry(1, 0)));
    let mut mdia = full(b"mdhd", 0, 0, &mdhd);
    mdia.extend(full(b"hdlr", 0, 0, &hdlr));
    mdia.extend(bx(b"minf", &bx(b"stbl", &stbl)));
    let mut trak = full(b"tkhd", 0, 3, &tkhd);
    trak.extend(bx(b"mdia", &mdia));
    bx(b"trak", &trak)
}

#[test]
fn tiny_moov_cannot_claim_unbounded_samples() {
    let mut mvhd = vec![0u8; 8];
    mvhd.extend(1000u32.to_be_bytes());
    mvhd.extend([0u8; 84]);
    let mut moov_body = full(b"mvhd", 0, 0, &mvhd);
    for id in 1..=3 {
        moov_body.extend(compact_trak(id, 3_000_000));
    }
    let moov = bx(b"moov", &moov_body);
    assert!(moov.len() < 2000, "a {} byte moov", moov.len());
    let movie = Movie::from_source(Arc::new(Bytes::from(moov))).unwrap();
    assert_eq!(
        movie.tracks().len(),
        2,
        "the third track exceeds the movie-wide sample budget"
    );
    assert_eq!(movie.problems().len(), 1);
    assert!(
        movie.problems()[0].contains("over the limit"),
        "{:?}",
        movie.problems()
    );
    assert!(movie.sample_table_bytes() <= 2 * 3_000_000 * 24);
}

#[test]
fn tracks_whose_samples_live_in_another_file_are_not_streamed() {
    let mut track = VideoTrack::new(1, gop(6, 3, 3600));
    track.self_contained = Some(true);
    assert!(Movie::from_source(Arc::new(simple_file(&track))).is_ok());
    track.self_contained = Some(false);
    let err = Movie::from_source(Arc::new(simple_file(&track))).unwrap_err();
    assert!(err.is_unsupported(), "{err}");
    assert!(err.to_string().contains("another file"), "{err}");
}

#[test]
fn tracks_switching_sample_descriptions_are_not_streamed() {
    let mut track = VideoTrack::new(1, gop(6, 3, 3600));
    track.second_description = true;
    let err = Movie::from_source(Arc::new(simple_file(&track))).unwrap_err();
    assert!(err.is_unsupported(), "{err}");
    assert!(err.to_string().contains("sample descriptions"), "{err}");
}

#[test]
fn a_long_run_of_empty_samples_is_corrupt_not_a_stall() {
    let mut samples = gop(1, 1, 3600);
    samples.extend((0..5000).map(|_| Sample {
        data: Vec::new(),
        duration: 3600,
        composition_offset: 0,
        sync: false,
    }));
    let mut track = VideoTrack::new(1, samples);
    track.samples_per_chunk = 1000;
    let movie = Movie::from_source(Arc::new(simple_file(&track))).unwrap();
    let mut source = movie.packets(1, Duration::ZERO).unwrap();
    let mut outcome = Ok(Some(()));
    for _ in 0..100 {
        outcome = source.next_packet().map(|p| p.map(|_| ()));
        if !matches!(outcome, Ok(Some(()))) {
            break;
        }
    }
    let err = outcome.unwrap_err();
    assert!(err.to_string().contains("carry no data"), "{err}");
}
