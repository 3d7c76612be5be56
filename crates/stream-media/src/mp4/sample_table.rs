//! Per-track sample tables (`stsz`/`stz2`, `stco`/`co64`, `stsc`, `stts`, `ctts`, `stss`) expanded into
//! compact per-sample arrays so packetizing and seeking are O(1) / O(log n) without re-walking runs.
//!
//! Memory: 4 (size) + 8 (file offset) + 8 (decode time) + 4 (composition offset, only with `ctts`) bytes
//! per sample, at most [`MAX_SAMPLES_PER_TRACK`] samples: a 2-hour 25 fps video (180,000 samples) costs
//! about 4.3 MB, its 44.1 kHz AAC track (310,000 samples) about 6 MB. Offsets are `u64` because files over
//! 4 GiB use `co64`; decode times are `u64` because long files overflow 32 bits at 90 kHz timescales.

use super::reader::{usize_to_u64, BoxRef};
use crate::MediaError;

/// Most samples one track may have: 24 hours of 50 fps video, or of 48 kHz AAC (~46.9 frames/s).
pub const MAX_SAMPLES_PER_TRACK: u32 = 4_320_000;
/// Most samples of all tracks of one movie together. Sample counts are not bounded by the size of `moov`
/// (a constant-size `stsz` and one-entry `stts` describe millions of samples in a few bytes), so without
/// this a 1 KB file with 64 tracks could make us allocate gigabytes; at ~24 bytes per sample this caps a
/// movie's tables near 200 MB while allowing 24 hours of 50 fps video plus 48 kHz audio.
pub const MAX_SAMPLES_PER_MOVIE: u32 = 8_500_000;
/// Largest single sample we read into memory (a 4K intra frame is a few MB).
pub const MAX_SAMPLE_BYTES: u32 = 32 * 1024 * 1024;

/// The expanded tables of one track; sample index `i` is 0-based (the file's sample number is `i + 1`).
#[derive(Debug, Clone, Default)]
pub struct SampleTable {
    sizes: Vec<u32>,
    offsets: Vec<u64>,
    decode_times: Vec<u64>,
    /// Decode time at the end of the last sample.
    end_time: u64,
    /// Composition offsets from `ctts`; empty when the track has none (composition = decode time).
    composition_offsets: Vec<i32>,
    /// Sorted 0-based indices of sync samples; `None` when `stss` is absent, meaning every sample is sync.
    sync_samples: Option<Vec<u32>>,
    /// True when `stsc` assigns some samples a sample description other than the first.
    uses_other_descriptions: bool,
}

/// Samples of a track read from the fragments of a fragmented file, in decode order, to be
/// appended to the track's table in one step ([`SampleTable::append_fragments`]).
#[derive(Debug, Default)]
pub struct FragmentSamples {
    sizes: Vec<u32>,
    offsets: Vec<u64>,
    decode_times: Vec<u64>,
    composition_offsets: Vec<i32>,
    sync: Vec<bool>,
}

impl FragmentSamples {
    pub fn push(
        &mut self,
        size: u32,
        offset: u64,
        decode_time: u64,
        composition_offset: i32,
        is_sync: bool,
    ) {
        self.sizes.push(size);
        self.offsets.push(offset);
        self.decode_times.push(decode_time);
        self.composition_offsets.push(composition_offset);
        self.sync.push(is_sync);
    }

    pub(crate) fn len(&self) -> usize {
        self.sizes.len()
    }
}

/// The raw sample-table boxes of one `stbl`.
#[derive(Default)]
pub struct StblBoxes<'a> {
    pub stsz: Option<BoxRef<'a>>,
    pub stz2: Option<BoxRef<'a>>,
    pub stco: Option<BoxRef<'a>>,
    pub co64: Option<BoxRef<'a>>,
    pub stsc: Option<BoxRef<'a>>,
    pub stts: Option<BoxRef<'a>>,
    pub ctts: Option<BoxRef<'a>>,
    pub stss: Option<BoxRef<'a>>,
}

impl SampleTable {
    /// Build the table; `stbl` is the parent box, used to name errors.
    /// `max_samples` is what is left of the movie-wide budget ([`MAX_SAMPLES_PER_MOVIE`]).
    pub fn build(
        stbl: &BoxRef<'_>,
        boxes: &StblBoxes<'_>,
        max_samples: u32,
    ) -> Result<SampleTable, MediaError> {
        let sizes = read_sizes(stbl, boxes, max_samples)?;
        let n_samples = sizes.len();
        let (offsets, uses_other_descriptions) = compute_offsets(stbl, boxes, &sizes)?;
        let (decode_times, end_time) = read_decode_times(stbl, boxes, n_samples)?;
        let composition_offsets = match &boxes.ctts {
            Some(ctts) => read_composition_offsets(ctts, n_samples)?,
            None => Vec::new(),
        };
        let sync_samples = match &boxes.stss {
            Some(stss) => Some(read_sync_samples(stss, n_samples)?),
            None => None,
        };
        Ok(SampleTable {
            sizes,
            offsets,
            decode_times,
            end_time,
            composition_offsets,
            sync_samples,
            uses_other_descriptions,
        })
    }

    /// True when some samples use a sample description other than the first (e.g. a spliced file).
    pub fn uses_other_descriptions(&self) -> bool {
        self.uses_other_descriptions
    }

    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// File offset and size of sample `i`.
    pub fn location(&self, i: usize) -> Option<(u64, u32)> {
        Some((*self.offsets.get(i)?, *self.sizes.get(i)?))
    }

    /// Size in bytes of the largest sample (0 for an empty track).
    pub fn max_size(&self) -> u32 {
        self.sizes.iter().copied().max().unwrap_or(0)
    }

    pub fn decode_time(&self, i: usize) -> Option<u64> {
        self.decode_times.get(i).copied()
    }

    /// Decode time plus the `ctts` offset (which may be negative in version-1 `ctts`).
    pub fn composition_time(&self, i: usize) -> Option<i64> {
        let dts = i64::try_from(self.decode_time(i)?).ok()?;
        let offset = self.composition_offsets.get(i).copied().unwrap_or(0);
        dts.checked_add(i64::from(offset))
    }

    /// Decode time just after the last sample (the track's media duration).
    pub fn end_time(&self) -> u64 {
        self.end_time
    }

    /// Index of the last sample whose decode time is at or before `time` (0 when `time` precedes all).
    pub fn sample_at_decode_time(&self, time: u64) -> usize {
        self.decode_times
            .partition_point(|&t| t <= time)
            .saturating_sub(1)
    }

    /// The last sync sample at or before sample `i` (sample 0 when none is).
    pub fn sync_at_or_before(&self, i: usize) -> usize {
        match &self.sync_samples {
            None => i,
            Some(sync) => {
                let i = u32::try_from(i).unwrap_or(u32::MAX);
                let pos = sync.partition_point(|&s| s <= i);
                pos.checked_sub(1)
                    .and_then(|p| sync.get(p))
                    .and_then(|&s| usize::try_from(s).ok())
                    .unwrap_or(0)
            }
        }
    }

    /// Appends the samples of a fragmented file's `moof`s after those of `moov`; `end_time` is the
    /// decode time just after the last of them.
    pub fn append_fragments(&mut self, samples: FragmentSamples, end_time: u64) {
        let before = self.sizes.len();
        let all_sync = samples.sync.iter().all(|&s| s);
        if !all_sync && self.sync_samples.is_none() {
            // Every sample so far was sync (no `stss`); say so explicitly before adding others.
            self.sync_samples = Some((0..u32::try_from(before).unwrap_or(u32::MAX)).collect());
        }
        if let Some(sync) = &mut self.sync_samples {
            sync.extend(
                samples
                    .sync
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s)
                    .filter_map(|(k, _)| u32::try_from(before + k).ok()),
            );
        }
        let any_offset = samples.composition_offsets.iter().any(|&o| o != 0);
        if any_offset || !self.composition_offsets.is_empty() {
            self.composition_offsets.resize(before, 0);
            self.composition_offsets
                .extend_from_slice(&samples.composition_offsets);
        }
        self.sizes.extend_from_slice(&samples.sizes);
        self.offsets.extend_from_slice(&samples.offsets);
        self.decode_times.extend_from_slice(&samples.decode_times);
        self.end_time = self.end_time.max(end_time);
        self.sizes.shrink_to_fit();
        self.offsets.shrink_to_fit();
        self.decode_times.shrink_to_fit();
        self.composition_offsets.shrink_to_fit();
    }

    /// Bytes of heap used by the tables, for the memory figure in the docs and tests.
    pub fn heap_bytes(&self) -> usize {
        self.sizes.capacity() * 4
            + self.offsets.capacity() * 8
            + self.decode_times.capacity() * 8
            + self.composition_offsets.capacity() * 4
            + self.sync_samples.as_ref().map_or(0, |s| s.capacity() * 4)
    }
}

fn checked_count(declared: u32, limit: u32) -> Result<usize, MediaError> {
    let limit = limit.min(MAX_SAMPLES_PER_TRACK);
    let too_many = || MediaError::LimitExceeded {
        what: "samples in one track (or left in the movie's budget)",
        value: u64::from(declared),
        limit: u64::from(limit),
    };
    if declared > limit {
        return Err(too_many());
    }
    usize::try_from(declared).map_err(|_| too_many())
}

/// Allocation size for a table whose entries need `entry_bytes` each: never more than the box can hold,
/// so a lying count cannot make us reserve gigabytes.
fn capacity_for(count: usize, available: usize, entry_bytes: usize) -> usize {
    count.min(available / entry_bytes.max(1))
}

fn read_sizes(
    stbl: &BoxRef<'_>,
    boxes: &StblBoxes<'_>,
    max_samples: u32,
) -> Result<Vec<u32>, MediaError> {
    if let Some(stsz) = &boxes.stsz {
        let mut r = stsz.reader("stsz");
        r.version_flags()?;
        let constant_size = r.u32()?;
        let n = checked_count(r.u32()?, max_samples)?;
        if constant_size != 0 {
            check_sample_size(stsz, constant_size)?;
            return Ok(vec![constant_size; n]);
        }
        let mut sizes = Vec::with_capacity(capacity_for(n, r.remaining(), 4));
        for _ in 0..n {
            let size = r.u32()?;
            check_sample_size(stsz, size)?;
            sizes.push(size);
        }
        return Ok(sizes);
    }
    if let Some(stz2) = &boxes.stz2 {
        let mut r = stz2.reader("stz2");
        r.version_flags()?;
        r.skip(3)?;
        let field_size = r.u8()?;
        let n = checked_count(r.u32()?, max_samples)?;
        let mut sizes = Vec::with_capacity(capacity_for(n, r.remaining(), 1));
        let mut pending_nibble = None;
        for _ in 0..n {
            let size = match field_size {
                4 => match pending_nibble.take() {
                    Some(low) => low,
                    None => {
                        let byte = r.u8()?;
                        pending_nibble = Some(u32::from(byte & 0x0F));
                        u32::from(byte >> 4)
                    }
                },
                8 => u32::from(r.u8()?),
                16 => u32::from(r.u16()?),
                other => return Err(stz2.corrupt(format!("field size {other} is not 4, 8 or 16"))),
            };
            sizes.push(size);
        }
        return Ok(sizes);
    }
    Err(stbl.corrupt("no sample size box (`stsz` or `stz2`)"))
}

fn check_sample_size(stsz: &BoxRef<'_>, size: u32) -> Result<(), MediaError> {
    if size > MAX_SAMPLE_BYTES {
        let _ = stsz;
        return Err(MediaError::LimitExceeded {
            what: "sample size in bytes",
            value: u64::from(size),
            limit: u64::from(MAX_SAMPLE_BYTES),
        });
    }
    Ok(())
}

fn read_chunk_offsets(stbl: &BoxRef<'_>, boxes: &StblBoxes<'_>) -> Result<Vec<u64>, MediaError> {
    let (chunk_box, wide) = match (&boxes.stco, &boxes.co64) {
        (_, Some(co64)) => (co64, true),
        (Some(stco), None) => (stco, false),
        (None, None) => return Err(stbl.corrupt("no chunk offset box (`stco` or `co64`)")),
    };
    let mut r = chunk_box.reader("chunk offsets");
    r.version_flags()?;
    let n = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    let entry_bytes = if wide { 8 } else { 4 };
    if n > r.remaining() / entry_bytes {
        return Err(MediaError::Truncated {
            what: "chunk offset table",
            offset: r.offset(),
            need: usize_to_u64(n).saturating_mul(usize_to_u64(entry_bytes)),
            have: usize_to_u64(r.remaining()),
        });
    }
    let mut offsets = Vec::with_capacity(n);
    for _ in 0..n {
        offsets.push(if wide { r.u64()? } else { u64::from(r.u32()?) });
    }
    Ok(offsets)
}

/// Place every sample in its chunk (ISO 14496-12 §8.7.4): runs of `stsc` give samples per chunk.
fn compute_offsets(
    stbl: &BoxRef<'_>,
    boxes: &StblBoxes<'_>,
    sizes: &[u32],
) -> Result<(Vec<u64>, bool), MediaError> {
    let chunk_offsets = read_chunk_offsets(stbl, boxes)?;
    let stsc = boxes
        .stsc
        .as_ref()
        .ok_or_else(|| stbl.corrupt("no `stsc` box"))?;
    let mut r = stsc.reader("stsc");
    r.version_flags()?;
    let n_entries = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    let mut runs: Vec<(u32, u32)> = Vec::with_capacity(capacity_for(n_entries, r.remaining(), 12));
    let mut uses_other_descriptions = false;
    for _ in 0..n_entries {
        let first_chunk = r.u32()?;
        let samples_per_chunk = r.u32()?;
        // We packetize with the first description; the caller decides whether others are compatible.
        uses_other_descriptions |= r.u32()? != 1;
        runs.push((first_chunk, samples_per_chunk));
    }
    let mut offsets = Vec::with_capacity(sizes.len());
    let mut sample = 0usize;
    for (run_idx, &(first_chunk, samples_per_chunk)) in runs.iter().enumerate() {
        if first_chunk == 0 {
            return Err(stsc.corrupt("chunk numbers start at 1"));
        }
        // This run covers chunks up to the next run's first chunk, or to the last chunk.
        let end_chunk = match runs.get(run_idx + 1) {
            Some(&(next_first, _)) if next_first > first_chunk => u64::from(next_first),
            Some(_) => return Err(stsc.corrupt("first_chunk values must increase")),
            None => usize_to_u64(chunk_offsets.len()).saturating_add(1),
        };
        let mut chunk = u64::from(first_chunk);
        // Bounded: each iteration either places a sample or moves on to a chunk that exists.
        while chunk < end_chunk && sample < sizes.len() {
            let chunk_idx = usize::try_from(chunk - 1).ok();
            let Some(&chunk_offset) = chunk_idx.and_then(|c| chunk_offsets.get(c)) else {
                return Err(stsc.corrupt(format!(
                    "refers to chunk {chunk}, but only {} exist",
                    chunk_offsets.len()
                )));
            };
            let mut offset = chunk_offset;
            for _ in 0..samples_per_chunk {
                let Some(&size) = sizes.get(sample) else {
                    break;
                };
                offsets.push(offset);
                offset = offset
                    .checked_add(u64::from(size))
                    .ok_or_else(|| stsc.corrupt("sample offset overflows 64 bits"))?;
                sample += 1;
            }
            chunk += 1;
        }
        if sample >= sizes.len() {
            break;
        }
    }
    if offsets.len() != sizes.len() {
        return Err(stsc.corrupt(format!(
            "places {} samples in chunks, but `stsz` lists {}",
            offsets.len(),
            sizes.len()
        )));
    }
    Ok((offsets, uses_other_descriptions))
}

fn read_decode_times(
    stbl: &BoxRef<'_>,
    boxes: &StblBoxes<'_>,
    n_samples: usize,
) -> Result<(Vec<u64>, u64), MediaError> {
    let stts = boxes
        .stts
        .as_ref()
        .ok_or_else(|| stbl.corrupt("no `stts` box"))?;
    let mut r = stts.reader("stts");
    r.version_flags()?;
    let n_entries = r.u32()?;
    let mut times = Vec::with_capacity(n_samples);
    let mut time: u64 = 0;
    for _ in 0..n_entries {
        if times.len() >= n_samples {
            break;
        }
        let count = r.u32()?;
        let delta = r.u32()?;
        // Cap by the samples still missing: a huge count must not spin for billions of iterations.
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(n_samples - times.len());
        for _ in 0..count {
            times.push(time);
            time = time
                .checked_add(u64::from(delta))
                .ok_or_else(|| stts.corrupt("decode time overflows"))?;
        }
    }
    if times.len() != n_samples {
        return Err(stts.corrupt(format!(
            "gives times for {} samples, but `stsz` lists {n_samples}",
            times.len()
        )));
    }
    Ok((times, time))
}

fn read_composition_offsets(ctts: &BoxRef<'_>, n_samples: usize) -> Result<Vec<i32>, MediaError> {
    let mut r = ctts.reader("ctts");
    r.version_flags()?;
    let n_entries = r.u32()?;
    let mut offsets = Vec::with_capacity(n_samples);
    for _ in 0..n_entries {
        if offsets.len() >= n_samples {
            break;
        }
        let count = r.u32()?;
        // Version 0 says unsigned, but writers put negative offsets there too; reading the bits as signed
        // is what every demuxer does, and no real offset needs the 32nd bit.
        let offset = r.i32()?;
        let count = usize::try_from(count)
            .unwrap_or(usize::MAX)
            .min(n_samples - offsets.len());
        offsets.extend(std::iter::repeat_n(offset, count));
    }
    // A short `ctts` leaves the remaining samples at offset 0 rather than failing the whole file.
    offsets.resize(n_samples, 0);
    Ok(offsets)
}

fn read_sync_samples(stss: &BoxRef<'_>, n_samples: usize) -> Result<Vec<u32>, MediaError> {
    let mut r = stss.reader("stss");
    r.version_flags()?;
    let n = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
    let mut sync = Vec::with_capacity(capacity_for(n, r.remaining(), 4));
    for _ in 0..n {
        let number = r.u32()?;
        // Sample numbers are 1-based; out-of-range entries are ignored rather than trusted.
        if let Some(index) = number.checked_sub(1) {
            if usize::try_from(index).is_ok_and(|i| i < n_samples) {
                sync.push(index);
            }
        }
    }
    sync.sort_unstable();
    sync.dedup();
    Ok(sync)
}
