//! Shared packet chunks: sources of one movie share packets and payload memory, give exactly what an
//! unshared source (every sample read and packetized alone, as before chunks) gives from every start
//! position, free their chunks when dropped, and keep errors where they were.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::builder::*;
use serval_stream_media::testing::{self, Fixture};
use serval_stream_media::{
    MediaError, Movie, PacketOptions, PacketSource, RtpPacketOut, VIDEO_SAMPLES_PER_CHUNK,
};

/// Everything a source yields: its packets, then the error that ended it, if any.
#[derive(Debug, PartialEq, Eq)]
struct Drained {
    start: Duration,
    start_rtp_timestamp: u32,
    packets: Vec<RtpPacketOut>,
    error: Option<String>,
}

fn drain(mut source: PacketSource) -> Drained {
    let mut drained = Drained {
        start: source.start(),
        start_rtp_timestamp: source.start_rtp_timestamp(),
        packets: Vec::new(),
        error: None,
    };
    loop {
        match source.next_packet() {
            Ok(Some(packet)) => drained.packets.push(packet),
            Ok(None) => break,
            Err(e) => {
                drained.error = Some(e.to_string());
                assert!(
                    matches!(source.next_packet(), Ok(None)),
                    "an error ends the track"
                );
                break;
            }
        }
        assert!(drained.packets.len() < 1_000_000, "runaway packet source");
    }
    drained
}

/// Drain many sources one packet each in turn, so chunks built by one are read by the others mid-way.
fn drain_round_robin(sources: Vec<PacketSource>) -> Vec<Drained> {
    let mut states: Vec<(PacketSource, Drained, bool)> = sources
        .into_iter()
        .map(|s| {
            let d = Drained {
                start: s.start(),
                start_rtp_timestamp: s.start_rtp_timestamp(),
                packets: Vec::new(),
                error: None,
            };
            (s, d, false)
        })
        .collect();
    while states.iter().any(|(_, _, done)| !done) {
        for (source, drained, done) in states.iter_mut().filter(|(_, _, done)| !done) {
            match source.next_packet() {
                Ok(Some(packet)) => drained.packets.push(packet),
                Ok(None) => *done = true,
                Err(e) => {
                    drained.error = Some(e.to_string());
                    *done = true;
                }
            }
        }
    }
    states.into_iter().map(|(_, d, _)| d).collect()
}

fn open(f: &Fixture) -> Movie {
    Movie::open(&f.path()).unwrap_or_else(|e| panic!("{}: {e}", f.name))
}

#[test]
fn sources_at_the_same_start_share_packets_and_payload_memory() {
    let movie = open(&testing::H264_AAC);
    for &track_id in movie.selected_tracks() {
        for start in [Duration::ZERO, Duration::from_millis(2500)] {
            let a = drain(movie.packets(track_id, start).unwrap());
            let b = drain(movie.packets(track_id, start).unwrap());
            // Drained one after the other, the first source's chunks are gone before the second starts:
            // equal packets, not shared memory. Side by side they share.
            assert_eq!(a, b);
            let pair = drain_round_robin(vec![
                movie.packets(track_id, start).unwrap(),
                movie.packets(track_id, start).unwrap(),
            ]);
            let [a, b] = <[Drained; 2]>::try_from(pair).unwrap();
            assert_eq!(a, b);
            assert!(!a.packets.is_empty());
            for (pa, pb) in a.packets.iter().zip(&b.packets) {
                assert_eq!(
                    pa.payload.as_ptr(),
                    pb.payload.as_ptr(),
                    "track {track_id}: payloads copied per source"
                );
            }
        }
    }
    assert_eq!(movie.live_packet_chunks(), 0);
}

/// Every selected track of `f`, from a start every 40 ms (every video frame, so every sync sample, and most
/// audio frames, so starts in the middle of chunks) and past the end, with `options`.
fn check_every_start_against_unshared(f: &Fixture, options: PacketOptions) {
    let movie = open(f);
    let step = Duration::from_millis(40);
    let n_starts = movie.duration().as_millis() / step.as_millis() + 2;
    for &track_id in movie.selected_tracks() {
        let starts: Vec<Duration> = (0..n_starts)
            .map(|k| step * u32::try_from(k).unwrap())
            .collect();
        let shared: Vec<PacketSource> = starts
            .iter()
            .map(|&s| movie.packets_with(track_id, s, options).unwrap())
            .collect();
        assert!(movie.live_packet_chunks() == 0, "chunks are built lazily");
        let shared = drain_round_robin(shared);
        for (start, got) in starts.iter().zip(&shared) {
            let want = drain(movie.packets_unshared(track_id, *start, options).unwrap());
            assert!(
                got == &want,
                "{} track {track_id} from {start:?}: {} packets shared vs {} unshared, first difference at {:?}",
                f.name,
                got.packets.len(),
                want.packets.len(),
                got.packets
                    .iter()
                    .zip(&want.packets)
                    .position(|(a, b)| a != b)
            );
            assert_eq!(got.error, None);
        }
        assert_eq!(
            movie.live_packet_chunks(),
            0,
            "drained sources hold no chunk"
        );
    }
}

#[test]
fn every_start_gives_the_unshared_packets_h264_aac() {
    check_every_start_against_unshared(&testing::H264_AAC, PacketOptions::default());
    check_every_start_against_unshared(&testing::H264_AAC, PacketOptions { max_payload: 300 });
}

#[test]
fn every_start_gives_the_unshared_packets_hint_tracks() {
    check_every_start_against_unshared(&testing::H264_AAC_HINTED, PacketOptions::default());
}

#[test]
fn every_start_gives_the_unshared_packets_other_codecs() {
    for f in [
        testing::H265_AAC,
        testing::MPEG4_AAC51,
        testing::H264_MP3_MOV,
        testing::OPUS_MP4,
    ] {
        check_every_start_against_unshared(&f, PacketOptions::default());
    }
}

#[test]
fn sources_with_different_payload_sizes_do_not_share_chunks() {
    let movie = open(&testing::H264_AAC);
    let video = movie.selected_tracks()[0];
    let small = PacketOptions { max_payload: 200 };
    let both = drain_round_robin(vec![
        movie.packets(video, Duration::ZERO).unwrap(),
        movie.packets_with(video, Duration::ZERO, small).unwrap(),
    ]);
    assert_eq!(
        both[0],
        drain(
            movie
                .packets_unshared(video, Duration::ZERO, PacketOptions::default())
                .unwrap()
        )
    );
    assert_eq!(
        both[1],
        drain(
            movie
                .packets_unshared(video, Duration::ZERO, small)
                .unwrap()
        )
    );
    assert!(both[1].packets.len() > both[0].packets.len());
}

#[test]
fn dropping_every_source_frees_every_chunk() {
    let movie = open(&testing::H264_AAC);
    let mut sources = Vec::new();
    for &track_id in movie.selected_tracks() {
        for ms in [0, 1000, 2000, 4000] {
            let mut source = movie.packets(track_id, Duration::from_millis(ms)).unwrap();
            assert!(source.next_packet().unwrap().is_some());
            sources.push(source);
        }
    }
    assert!(movie.live_packet_chunks() >= 2);
    // A second source at a position already held reuses its chunk rather than adding one.
    let live = movie.live_packet_chunks();
    let mut again = movie
        .packets(movie.selected_tracks()[0], Duration::ZERO)
        .unwrap();
    assert!(again.next_packet().unwrap().is_some());
    assert_eq!(movie.live_packet_chunks(), live);
    drop(again);
    drop(sources);
    assert_eq!(movie.live_packet_chunks(), 0);
}

const FRAME_TICKS: u32 = 3600; // 40 ms at 90 kHz

/// Twelve frames, sync at 0 and 6; frame `corrupt` gets a NAL length prefix that overruns it.
fn movie_with_corrupt_frame(corrupt: usize) -> Movie {
    let samples = (0..12)
        .map(|i| {
            let sync = i % 6 == 0;
            let mut data = avcc_sample(sync, 500 + i * 11, i as u8);
            if i == corrupt {
                data[..4].copy_from_slice(&100_000u32.to_be_bytes());
            }
            Sample {
                data,
                duration: FRAME_TICKS,
                composition_offset: 0,
                sync,
            }
        })
        .collect();
    let mut track = VideoTrack::new(1, samples);
    track.samples_per_chunk = 12; // all contiguous: one read per packet chunk
    Movie::from_source(Arc::new(simple_file(&track))).unwrap()
}

#[test]
fn a_corrupt_sample_mid_chunk_ends_the_track_after_the_packets_before_it() {
    const {
        assert!(
            VIDEO_SAMPLES_PER_CHUNK > 6,
            "frame 5 and sync frame 6 share chunk 0"
        )
    };
    let movie = movie_with_corrupt_frame(5);
    let after = Duration::from_millis(6 * 40);
    // The source from frame 6 builds chunk 0 (which holds the failure at frame 5) while the source from
    // the top still waits, then the source from the top reads the same chunk and meets the error.
    let late = movie.packets(1, after).unwrap();
    let top = movie.packets(1, Duration::ZERO).unwrap();
    let late = drain(late);
    let from_top = drain(top);
    let unshared = drain(
        movie
            .packets_unshared(1, Duration::ZERO, PacketOptions::default())
            .unwrap(),
    );
    assert_eq!(from_top, unshared);
    let error = from_top.error.as_deref().unwrap();
    assert!(error.contains("sample 6 of track 1"), "{error}");
    // Frames 0-4, each a 500-544 byte NAL: one packet per frame, plus SPS and PPS before the IDR.
    assert_eq!(from_top.packets.len(), 2 + 5);
    assert_eq!(from_top.packets.last().unwrap().timestamp, 4 * FRAME_TICKS);
    assert_eq!(late.error, None);
    assert_eq!(late.packets.len(), 2 + 6);
    assert_eq!(late.packets[0].timestamp, 6 * FRAME_TICKS);
    assert_eq!(
        late,
        drain(
            movie
                .packets_unshared(1, after, PacketOptions::default())
                .unwrap()
        )
    );
    assert_eq!(movie.live_packet_chunks(), 0);
}

#[test]
fn a_file_cut_mid_chunk_gives_the_packets_before_the_cut_then_the_truncation() {
    let samples = (0..12)
        .map(|i| Sample {
            data: avcc_sample(i % 6 == 0, 700, i as u8),
            duration: FRAME_TICKS,
            composition_offset: 0,
            sync: i % 6 == 0,
        })
        .collect();
    let mut track = VideoTrack::new(1, samples);
    track.samples_per_chunk = 12;
    let file = simple_file(&track);
    // Cut inside frame 3 (each frame is 704 bytes; the samples are the last bytes of the file).
    let cut = file.len() - 12 * 704 + 3 * 704 + 100;
    let movie = Movie::from_source(Arc::new(Bytes::copy_from_slice(&file[..cut]))).unwrap();
    let shared = drain(movie.packets(1, Duration::ZERO).unwrap());
    let unshared = drain(
        movie
            .packets_unshared(1, Duration::ZERO, PacketOptions::default())
            .unwrap(),
    );
    assert_eq!(shared, unshared);
    assert_eq!(shared.packets.len(), 2 + 3, "SPS, PPS and frames 0-2");
    let error = shared.error.unwrap();
    assert!(error.contains("truncated media"), "{error}");
    assert!(
        error.contains("needs 704 bytes but only 100 remain"),
        "{error}"
    );
}

#[test]
fn errors_from_chunks_keep_their_variant() {
    let movie = movie_with_corrupt_frame(2);
    let mut source = movie.packets(1, Duration::ZERO).unwrap();
    let mut n = 0;
    let error = loop {
        match source.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => panic!("no error"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 2 + 2, "SPS, PPS and frames 0-1");
    assert!(matches!(error, MediaError::Corrupt { .. }), "{error:?}");
}

/// A movie source that counts `pread`s.
struct CountingReads {
    bytes: Bytes,
    reads: std::sync::atomic::AtomicUsize,
}

impl serval_stream_media::ReadAt for CountingReads {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.bytes.read_exact_at(buf, offset)
    }

    fn len(&self) -> u64 {
        serval_stream_media::ReadAt::len(&self.bytes)
    }
}

#[test]
fn back_to_back_samples_of_a_chunk_are_read_at_once() {
    let samples = (0..20)
        .map(|i| Sample {
            data: avcc_sample(i % 10 == 0, 900 + i, i as u8),
            duration: FRAME_TICKS,
            composition_offset: 0,
            sync: i % 10 == 0,
        })
        .collect();
    let mut track = VideoTrack::new(1, samples);
    track.samples_per_chunk = 20;
    let source = Arc::new(CountingReads {
        bytes: simple_file(&track),
        reads: Default::default(),
    });
    let movie = Movie::from_source(source.clone()).unwrap();
    let reads = || source.reads.load(std::sync::atomic::Ordering::Relaxed);
    let before = reads();
    let unshared = drain(
        movie
            .packets_unshared(1, Duration::ZERO, PacketOptions::default())
            .unwrap(),
    );
    assert_eq!(reads() - before, 20, "one read per sample without chunks");
    let before = reads();
    let shared = drain(movie.packets(1, Duration::ZERO).unwrap());
    assert_eq!(shared, unshared);
    assert_eq!(
        reads() - before,
        20usize.div_ceil(VIDEO_SAMPLES_PER_CHUNK),
        "one read per chunk"
    );
}

#[test]
fn sources_on_many_threads_race_for_chunks_and_all_get_the_unshared_packets() {
    let movie = Arc::new(open(&testing::H264_AAC));
    let starts: Vec<Duration> = (0..8).map(|k| Duration::from_millis(k * 500)).collect();
    let mut want = Vec::new();
    for &track_id in movie.selected_tracks() {
        for &start in &starts {
            let source = movie
                .packets_unshared(track_id, start, PacketOptions::default())
                .unwrap();
            want.push(((track_id, start), drain(source)));
        }
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let movie = Arc::clone(&movie);
            let starts = starts.clone();
            std::thread::spawn(move || {
                let mut sources = Vec::new();
                for &track_id in movie.selected_tracks() {
                    for &start in &starts {
                        sources.push(movie.packets(track_id, start).unwrap());
                    }
                }
                drain_round_robin(sources)
            })
        })
        .collect();
    for thread in threads {
        let got = thread.join().unwrap();
        assert_eq!(got.len(), want.len());
        for (got, ((track_id, start), want)) in got.iter().zip(&want) {
            assert!(got == want, "track {track_id} from {start:?} differs");
        }
    }
    assert_eq!(movie.live_packet_chunks(), 0);
}

#[test]
fn a_hint_chunk_reads_the_media_its_constructors_name_at_once() {
    let bytes = Bytes::from(std::fs::read(testing::H264_AAC_HINTED.path()).unwrap());
    let source = Arc::new(CountingReads {
        bytes,
        reads: Default::default(),
    });
    let movie = Movie::from_source(source.clone()).unwrap();
    let video = movie.selected_tracks()[0];
    let reads = || source.reads.load(std::sync::atomic::Ordering::Relaxed);
    let before = reads();
    let unshared = drain(
        movie
            .packets_unshared(video, Duration::ZERO, PacketOptions::default())
            .unwrap(),
    );
    let unshared_reads = reads() - before;
    let before = reads();
    let shared = drain(movie.packets(video, Duration::ZERO).unwrap());
    let shared_reads = reads() - before;
    assert_eq!(shared, unshared);
    // 150 hint samples in chunks of 8: a read of the hint samples and one of their media per chunk.
    let chunks = 150usize.div_ceil(VIDEO_SAMPLES_PER_CHUNK);
    assert!(
        shared_reads <= 2 * chunks + 2,
        "{shared_reads} reads for {chunks} chunks (one constructor at a time: {unshared_reads})"
    );
    assert!(
        unshared_reads > 4 * shared_reads,
        "{unshared_reads} vs {shared_reads}"
    );
}
