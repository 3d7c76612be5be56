//! Packet chunks: the RTP packets of a fixed run of consecutive samples of one stream, built once and
//! shared by every packet source playing that run. A thousand viewers of one movie then cost one read,
//! one allocation and one packetization per sample instead of a thousand, and hold one copy of the
//! bytes between them.
//!
//! A chunk is named by [`ChunkKey`] (stream plan, payload size, chunk number = sample index / samples per
//! chunk). The movie's [`ChunkCache`] maps keys to `Weak` pointers: a chunk lives exactly as long as some
//! packet source holds its `Arc`, so memory follows what sessions are playing right now, never what was
//! played once.
//!
//! A chunk never fails as a whole: each sample holds either its packets or the error that packetizing it
//! gave, so a source reaching a corrupt sample gets the packets before it, then that error, and a source
//! starting after it in the same chunk plays normally (exactly as when every source read for itself).

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use bytes::Bytes;

use crate::movie::{MediaKind, MovieTables, StreamPlan};
use crate::packet::RtpPacketOut;
use crate::packetize::{
    aggregates_aac, packetize_aac_run, packetize_sample, prefetch_hint_media, Prefetched,
    MAX_PREFETCH_BYTES,
};
use crate::MediaError;

/// Video samples per chunk: 8 frames are 0.32 s at 25 fps (0.27 s at 30 fps), about 80 KB of a 2 Mbit/s
/// stream. Shorter chunks mean more cache look-ups and more, smaller reads; longer ones make a session
/// that is alone at its position (after a seek, or on a rarely watched file) hold more memory, and
/// sessions must start within the same chunk's span to share it. Measured on the bench movie (60 s,
/// H.264 25 fps 2 Mbit/s + AAC, ffmpeg interleaving one audio frame between video frames): one source
/// over the video track makes 188 reads of ~75 KB instead of 1,500 per-frame reads.
pub const VIDEO_SAMPLES_PER_CHUNK: usize = 8;
/// Audio samples per chunk: 16 AAC frames of 1024 samples are 0.37 s at 44.1 kHz (0.34 s at 48 kHz),
/// the same span as a video chunk; audio frames are small (a few hundred bytes). Interleaved with video
/// frame by frame they are mostly too far apart to read together (2,814 frames of the bench movie take
/// 1,581 reads), so the gain here is sharing, not fewer reads.
pub const AUDIO_SAMPLES_PER_CHUNK: usize = 16;
/// Most sample bytes one chunk may hold: files of huge samples (4K intra-only video, crafted sizes up to
/// [`crate::MAX_SAMPLE_BYTES`]) get fewer samples per chunk, down to one, so a chunk never holds more than
/// one sample's worth beyond this.
pub const MAX_CHUNK_SAMPLE_BYTES: u64 = 8 * 1024 * 1024;
/// The cache map is pruned of dead entries when it reaches twice the live count seen at the last prune,
/// and never below this many entries (pruning a tiny map on every insert would be wasted work).
const MIN_PRUNE_AT: usize = 64;

/// Samples per chunk for a stream of `kind` whose largest sample is `largest_sample` bytes (for hint
/// tracks: of the referenced media track, which is where their payload bytes come from). At least 1.
pub(crate) fn samples_per_chunk(kind: MediaKind, largest_sample: u32) -> usize {
    let by_kind = match kind {
        MediaKind::Video => VIDEO_SAMPLES_PER_CHUNK,
        _ => AUDIO_SAMPLES_PER_CHUNK,
    };
    let by_size = MAX_CHUNK_SAMPLE_BYTES / u64::from(largest_sample.max(1));
    usize::try_from(by_size)
        .unwrap_or(usize::MAX)
        .clamp(1, by_kind)
}

/// Names one chunk of one movie.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ChunkKey {
    /// Index into `MovieTables::plans`.
    pub plan_idx: usize,
    /// Clamped maximum payload; 0 for hint tracks, whose packet sizes are in the file.
    pub max_payload: usize,
    /// First sample of the chunk / samples per chunk.
    pub chunk_no: usize,
}

/// The packets of samples `first_sample ..` of one stream, in order, shared read-only.
#[derive(Debug)]
pub(crate) struct PacketChunk {
    first_sample: usize,
    packets: Vec<RtpPacketOut>,
    /// `sample_starts[k]` is the index in `packets` of the first packet of sample `first_sample + k`;
    /// one more entry at the end (`packets.len()`), so sample `k` owns `sample_starts[k]..sample_starts[k+1]`.
    sample_starts: Vec<usize>,
    /// Samples that could not be packetized, with the error; ascending, nearly always empty.
    failures: Vec<(usize, MediaError)>,
}

impl PacketChunk {
    /// True when sample `i` belongs to this chunk.
    pub fn covers(&self, i: usize) -> bool {
        i >= self.first_sample && i - self.first_sample + 1 < self.sample_starts.len()
    }

    /// The range of `packets` holding sample `i`'s packets, or a copy of the error that sample gave;
    /// `None` when the chunk does not cover `i`.
    pub fn sample(&self, i: usize) -> Option<Result<Range<usize>, MediaError>> {
        let k = i.checked_sub(self.first_sample)?;
        let start = *self.sample_starts.get(k)?;
        let end = *self.sample_starts.get(k + 1)?;
        if let Some((_, error)) = self.failures.iter().find(|(failed, _)| *failed == i) {
            return Some(Err(error.rebuild()));
        }
        Some(Ok(start..end))
    }

    pub fn packet(&self, index: usize) -> Option<&RtpPacketOut> {
        self.packets.get(index)
    }
}

/// Read and packetize `samples` of `plan`'s track. Errors are kept per sample (see the module doc).
pub(crate) fn build_chunk(
    tables: &MovieTables,
    plan: &StreamPlan,
    max_payload: usize,
    samples: Range<usize>,
) -> PacketChunk {
    // A hint chunk reads its samples' whole span at once: in an interleaved file it holds the
    // media the hint samples name as well, which then needs no read of its own.
    let hint_span = plan
        .hinted
        .then(|| read_span(tables, plan.track_idx, samples.clone()))
        .flatten();
    let sample_bytes = match &hint_span {
        Some(span) => slice_span(tables, plan.track_idx, span, samples.clone()),
        None => read_samples(tables, plan.track_idx, samples.clone()),
    };
    if aggregates_aac(tables, plan) {
        return build_aac_chunk(tables, plan, max_payload, samples, sample_bytes);
    }
    let prefetched = if plan.hinted {
        let readable = samples
            .clone()
            .zip(&sample_bytes)
            .filter_map(|(i, bytes)| bytes.as_ref().ok().map(|b| (i, b)));
        prefetch_hint_media(tables, plan, readable, hint_span)
    } else {
        None
    };
    let mut packets = Vec::new();
    let mut sample_starts = Vec::with_capacity(samples.len() + 1);
    let mut failures = Vec::new();
    for (i, bytes) in samples.clone().zip(sample_bytes) {
        let before = packets.len();
        sample_starts.push(before);
        let outcome = bytes.and_then(|bytes| {
            packetize_sample(
                tables,
                plan,
                max_payload,
                i,
                &bytes,
                prefetched.as_ref(),
                &mut packets,
            )
        });
        if let Err(error) = outcome {
            // A hint sample may fail after some of its packets: none of them go out, the error does.
            packets.truncate(before);
            failures.push((i, error));
        }
    }
    sample_starts.push(packets.len());
    // The chunk is kept while sessions play it: give back the growth slack.
    packets.shrink_to_fit();
    PacketChunk {
        first_sample: samples.start,
        packets,
        sample_starts,
        failures,
    }
}

/// A chunk of AAC samples: runs of readable samples are aggregated several AUs to a packet, each
/// packet owned by its first AU's sample (the others own none, so a source starting on them begins
/// with the next packet). A sample that cannot be read or packetized fails alone, as elsewhere.
fn build_aac_chunk(
    tables: &MovieTables,
    plan: &StreamPlan,
    max_payload: usize,
    samples: Range<usize>,
    sample_bytes: Vec<Result<Bytes, MediaError>>,
) -> PacketChunk {
    let mut packets = Vec::new();
    let mut sample_starts = Vec::with_capacity(samples.len() + 1);
    let mut failures = Vec::new();
    let mut run: Vec<Bytes> = Vec::new();
    let mut run_first = samples.start;
    let flush = |run: &mut Vec<Bytes>,
                 run_first: usize,
                 packets: &mut Vec<RtpPacketOut>,
                 sample_starts: &mut Vec<usize>,
                 failures: &mut Vec<(usize, MediaError)>| {
        if run.is_empty() {
            return;
        }
        let (starts, failed) =
            packetize_aac_run(tables, plan, max_payload, run_first, run, packets);
        sample_starts.extend(starts);
        failures.extend(failed);
        run.clear();
    };
    for (i, bytes) in samples.clone().zip(sample_bytes) {
        match bytes {
            Ok(bytes) => {
                if run.is_empty() {
                    run_first = i;
                }
                run.push(bytes);
            }
            Err(error) => {
                flush(
                    &mut run,
                    run_first,
                    &mut packets,
                    &mut sample_starts,
                    &mut failures,
                );
                sample_starts.push(packets.len());
                failures.push((i, error));
            }
        }
    }
    flush(
        &mut run,
        run_first,
        &mut packets,
        &mut sample_starts,
        &mut failures,
    );
    sample_starts.push(packets.len());
    failures.sort_by_key(|(i, _)| *i);
    packets.shrink_to_fit();
    PacketChunk {
        first_sample: samples.start,
        packets,
        sample_starts,
        failures,
    }
}

/// One read of the file from the first to the end of the last of `samples` (in file order), when
/// that span is in the file and at most [`MAX_PREFETCH_BYTES`].
fn read_span(tables: &MovieTables, track_idx: usize, samples: Range<usize>) -> Option<Prefetched> {
    let table = &tables.tracks.get(track_idx)?.samples;
    let (mut low, mut high) = (u64::MAX, 0u64);
    for i in samples {
        let (offset, size) = table.location(i)?;
        low = low.min(offset);
        high = high.max(offset.checked_add(u64::from(size))?);
    }
    let span = high.checked_sub(low)?;
    if span == 0 || span > MAX_PREFETCH_BYTES || high > tables.source_len {
        return None;
    }
    let bytes = tables.read_bytes(low, span).ok()?;
    Some(Prefetched { offset: low, bytes })
}

/// The samples cut out of a span read by [`read_span`] (which covers each of them).
fn slice_span(
    tables: &MovieTables,
    track_idx: usize,
    span: &Prefetched,
    samples: Range<usize>,
) -> Vec<Result<Bytes, MediaError>> {
    samples
        .map(|i| {
            let sliced = tables
                .tracks
                .get(track_idx)
                .and_then(|t| t.samples.location(i))
                .and_then(|(offset, size)| {
                    let start = usize::try_from(offset.checked_sub(span.offset)?).ok()?;
                    let end = start.checked_add(usize::try_from(size).ok()?)?;
                    (end <= span.bytes.len()).then(|| span.bytes.slice(start..end))
                });
            sliced.map_or_else(|| tables.read_sample(track_idx, i), Ok)
        })
        .collect()
}

/// The bytes of `samples` of track `track_idx`, one result per sample. Samples that lie in file order
/// with little else between them are read with one `pread` and sliced (see [`coalesced_run`]); a run that
/// fails to read is read again sample by sample, so each sample gets the same bytes or the same error as
/// reading it alone.
fn read_samples(
    tables: &MovieTables,
    track_idx: usize,
    samples: Range<usize>,
) -> Vec<Result<Bytes, MediaError>> {
    let mut out = Vec::with_capacity(samples.len());
    let Some(track) = tables.tracks.get(track_idx) else {
        out.extend(samples.map(|i| tables.read_sample(track_idx, i)));
        return out;
    };
    let mut i = samples.start;
    while i < samples.end {
        let (run, run_offset, run_len) = coalesced_run(&track.samples, i, samples.end);
        let in_file = run_offset
            .checked_add(run_len)
            .is_some_and(|end| end <= tables.source_len);
        let sliced = (run.len() > 1 && in_file)
            .then(|| tables.read_bytes(run_offset, run_len).ok())
            .flatten()
            .and_then(|buf| slice_run(&track.samples, &buf, run_offset, run.clone()));
        match sliced {
            Some(parts) => out.extend(parts.into_iter().map(Ok)),
            None => out.extend(run.clone().map(|k| tables.read_sample(track_idx, k))),
        }
        i = run.end.max(i + 1);
    }
    out
}

/// The longest run of samples from `first` (before `end`) that one read can fetch: each starts at or
/// after the end of the one before, and the bytes between them (other tracks' samples: muxers interleave
/// audio and video, ffmpeg frame by frame) are at most as many as the samples' own, so a coalesced read
/// never fetches more than twice what is used. Returns the run, its file offset and its length in bytes;
/// always at least `first..first + 1`.
fn coalesced_run(
    table: &crate::mp4::sample_table::SampleTable,
    first: usize,
    end: usize,
) -> (Range<usize>, u64, u64) {
    let Some((start, size)) = table.location(first) else {
        return (first..first + 1, 0, 0);
    };
    let mut run_end = first + 1;
    let mut span_end = start.saturating_add(u64::from(size));
    let mut used = u64::from(size);
    while run_end < end {
        let Some((next_offset, next_size)) = table.location(run_end) else {
            break;
        };
        let Some(next_end) = next_offset.checked_add(u64::from(next_size)) else {
            break;
        };
        let gaps = next_end
            .saturating_sub(start)
            .saturating_sub(used.saturating_add(u64::from(next_size)));
        if next_offset < span_end || gaps > used.saturating_add(u64::from(next_size)) {
            break;
        }
        used = used.saturating_add(u64::from(next_size));
        span_end = next_end;
        run_end += 1;
    }
    (first..run_end, start, span_end.saturating_sub(start))
}

/// Cut a run read at `run_offset` into its samples; `None` if the table disagrees with the buffer.
fn slice_run(
    table: &crate::mp4::sample_table::SampleTable,
    buf: &Bytes,
    run_offset: u64,
    run: Range<usize>,
) -> Option<Vec<Bytes>> {
    run.map(|k| {
        let (offset, size) = table.location(k)?;
        let start = usize::try_from(offset.checked_sub(run_offset)?).ok()?;
        let end = start.checked_add(usize::try_from(size).ok()?)?;
        (end <= buf.len()).then(|| buf.slice(start..end))
    })
    .collect()
}

/// The movie's map from chunk keys to the chunks some source still holds.
#[derive(Debug, Default)]
pub(crate) struct ChunkCache {
    map: Mutex<ChunkMap>,
}

#[derive(Debug, Default)]
struct ChunkMap {
    chunks: HashMap<ChunkKey, Weak<PacketChunk>>,
    /// Prune dead entries when the map reaches this size.
    prune_at: usize,
}

impl ChunkCache {
    /// The live chunk for `key`, or a new one from `build`. `build` runs without the lock held, so a slow
    /// read never stalls other sessions; two sources missing the same key at the same moment may both
    /// build it, and the first to insert wins (the other copy is dropped). That costs duplicate work only
    /// in a rare race and needs no per-key waiting, so nothing here can deadlock.
    pub fn get_or_build(
        &self,
        key: ChunkKey,
        build: impl FnOnce() -> PacketChunk,
    ) -> Arc<PacketChunk> {
        let cached = self.lock().chunks.get(&key).and_then(Weak::upgrade);
        if let Some(chunk) = cached {
            return chunk;
        }
        let built = Arc::new(build());
        let mut map = self.lock();
        if let Some(chunk) = map.chunks.get(&key).and_then(Weak::upgrade) {
            return chunk;
        }
        map.chunks.insert(key, Arc::downgrade(&built));
        if map.chunks.len() >= map.prune_at.max(MIN_PRUNE_AT) {
            map.chunks.retain(|_, chunk| chunk.strong_count() > 0);
            map.prune_at = map.chunks.len().saturating_mul(2);
        }
        built
    }

    /// Chunks some source still holds.
    pub fn live(&self) -> usize {
        self.lock()
            .chunks
            .values()
            .filter(|chunk| chunk.strong_count() > 0)
            .count()
    }

    /// Entries in the map, live or dead (for the bound test).
    #[cfg(test)]
    fn entries(&self) -> usize {
        self.lock().chunks.len()
    }

    fn lock(&self) -> MutexGuard<'_, ChunkMap> {
        // The map is consistent after any panic (inserts and prunes are single calls), so a poisoned lock
        // is still usable: one failed session must not stop every other session of the movie.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first_sample: usize, n_samples: usize) -> PacketChunk {
        PacketChunk {
            first_sample,
            packets: Vec::new(),
            sample_starts: vec![0; n_samples + 1],
            failures: Vec::new(),
        }
    }

    fn key(chunk_no: usize) -> ChunkKey {
        ChunkKey {
            plan_idx: 0,
            max_payload: 1400,
            chunk_no,
        }
    }

    #[test]
    fn a_live_chunk_is_shared_and_a_dropped_one_rebuilt() {
        let cache = ChunkCache::default();
        let a = cache.get_or_build(key(0), || chunk(0, 8));
        let b = cache.get_or_build(key(0), || panic!("built twice while alive"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(cache.live(), 1);
        drop((a, b));
        assert_eq!(cache.live(), 0);
        let mut built = false;
        let _c = cache.get_or_build(key(0), || {
            built = true;
            chunk(0, 8)
        });
        assert!(built);
    }

    #[test]
    fn dead_entries_are_pruned_so_the_map_stays_bounded() {
        let cache = ChunkCache::default();
        let keep = cache.get_or_build(key(0), || chunk(0, 8));
        for n in 1..10_000 {
            drop(cache.get_or_build(key(n), || chunk(n * 8, 8)));
            assert!(
                cache.entries() <= MIN_PRUNE_AT,
                "{} entries",
                cache.entries()
            );
        }
        assert_eq!(cache.live(), 1);
        drop(keep);
    }

    #[test]
    fn coverage_and_sample_ranges() {
        let c = PacketChunk {
            first_sample: 16,
            packets: Vec::new(),
            sample_starts: vec![0, 2, 2, 5],
            failures: vec![(17, MediaError::corrupt("sample 18", 9, "bad"))],
        };
        assert!(!c.covers(15));
        assert!(c.covers(16) && c.covers(18));
        assert!(!c.covers(19));
        assert_eq!(c.sample(16).and_then(Result::ok), Some(0..2));
        assert_eq!(c.sample(18).and_then(Result::ok), Some(2..5));
        let error = c.sample(17).and_then(Result::err).map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("corrupt `sample 18` box at offset 9: bad")
        );
        assert!(c.sample(19).is_none() && c.sample(3).is_none());
    }

    #[test]
    fn chunk_sizes_follow_kind_and_shrink_for_huge_samples() {
        assert_eq!(samples_per_chunk(MediaKind::Video, 100_000), 8);
        assert_eq!(samples_per_chunk(MediaKind::Audio, 400), 16);
        assert_eq!(samples_per_chunk(MediaKind::Video, 3 * 1024 * 1024), 2);
        assert_eq!(samples_per_chunk(MediaKind::Video, 32 * 1024 * 1024), 1);
        assert_eq!(samples_per_chunk(MediaKind::Audio, 0), 16);
    }
}
