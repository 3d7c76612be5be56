//! Fragmented MP4 (ISO 14496-12 §8.8): `moov/mvex` gives per-track defaults (`trex`) and maybe the
//! whole duration (`mehd`); each top-level `moof` carries track fragments (`traf`: `tfhd`, `tfdt`,
//! `trun`s) describing samples in the `mdat` after it. Recorders, cameras and
//! `ffmpeg -movflags frag_keyframe+empty_moov` write files this way.
//!
//! Fragments are read once when the movie is opened and their samples appended to each track's
//! ordinary [`SampleTable`], so seeking, packetizing and chunk sharing work exactly as for a
//! progressive file: the rest of the crate never learns that a file was fragmented.

use std::collections::HashMap;

use super::reader::{usize_to_u64, BoxRef, FourCc};
use super::sample_table::{FragmentSamples, MAX_SAMPLES_PER_TRACK, MAX_SAMPLE_BYTES};
use super::track::Track;
use crate::{MediaError, ReadAt};

/// Largest `moof` read into memory; ffmpeg's are a few KiB (one GOP's sample table).
pub const MAX_MOOF_BYTES: u64 = 16 * 1024 * 1024;
/// `trun` sample_flags bit: the sample is not a sync sample.
const SAMPLE_IS_NON_SYNC: u32 = 0x0001_0000;

/// What `moov/mvex` says.
#[derive(Debug, Default, Clone)]
pub struct MovieExtends {
    /// `mehd` fragment_duration, in the movie timescale (0 when absent).
    pub fragment_duration: u64,
    /// `trex` per track ID.
    pub defaults: HashMap<u32, TrackDefaults>,
}

/// `trex` defaults of one track.
#[derive(Debug, Default, Clone, Copy)]
pub struct TrackDefaults {
    pub sample_duration: u32,
    pub sample_size: u32,
    pub sample_flags: u32,
}

/// Reads `mvex`.
pub fn parse_mvex(mvex: &BoxRef<'_>) -> Result<MovieExtends, MediaError> {
    let mut extends = MovieExtends::default();
    for child in mvex.children() {
        let child = child?;
        match &child.kind.0 {
            b"mehd" => {
                let mut r = child.reader("mehd");
                let (version, _) = r.version_flags()?;
                extends.fragment_duration = if version == 1 {
                    r.u64()?
                } else {
                    u64::from(r.u32()?)
                };
            }
            b"trex" => {
                let mut r = child.reader("trex");
                r.version_flags()?;
                let track_id = r.u32()?;
                r.skip(4)?; // default_sample_description_index
                let defaults = TrackDefaults {
                    sample_duration: r.u32()?,
                    sample_size: r.u32()?,
                    sample_flags: r.u32()?,
                };
                extends.defaults.insert(track_id, defaults);
            }
            _ => {}
        }
    }
    Ok(extends)
}

/// Reads every `moof` at `moofs` (offset of the box header, total size) and appends its samples to
/// `tracks`. `samples_left` is the movie-wide sample budget, decreased by what is added.
///
/// A fragment whose samples lie past the end of the file (a recording still being written, or
/// cut off) ends its track there: what was fully written plays.
pub fn append_fragments(
    src: &dyn ReadAt,
    moofs: &[(u64, u64)],
    extends: &MovieExtends,
    tracks: &mut [Track],
    samples_left: &mut u32,
) -> Result<(), MediaError> {
    let file_len = src.len();
    let mut pending: HashMap<u32, FragmentSamples> = HashMap::new();
    let mut next_decode: HashMap<u32, u64> = tracks
        .iter()
        .map(|t| (t.track_id, t.samples.end_time()))
        .collect();
    let mut cut_off: Vec<u32> = Vec::new();
    for &(moof_offset, moof_size) in moofs {
        let header = if moof_size > u64::from(u32::MAX) {
            16
        } else {
            8
        };
        let body_len = moof_size.saturating_sub(header);
        if body_len > MAX_MOOF_BYTES {
            return Err(MediaError::LimitExceeded {
                what: "moof bytes",
                value: body_len,
                limit: MAX_MOOF_BYTES,
            });
        }
        let mut body = vec![0u8; usize::try_from(body_len).unwrap_or(0)];
        if src.read_exact_at(&mut body, moof_offset + header).is_err() {
            // A `moof` cut off by the end of the file: nothing after it can be trusted.
            break;
        }
        let moof = BoxRef {
            kind: FourCc::new(b"moof"),
            body: &body,
            body_offset: moof_offset + header,
        };
        let mut previous_traf_end = moof_offset;
        for traf in moof.children() {
            let traf = traf?;
            if &traf.kind.0 != b"traf" {
                continue;
            }
            let fragment = read_traf(&traf, moof_offset, previous_traf_end, extends)?;
            previous_traf_end = fragment.data_end;
            let Some(track) = tracks.iter().find(|t| t.track_id == fragment.track_id) else {
                continue; // a fragment of a track `moov` does not declare: ignored
            };
            if cut_off.contains(&track.track_id) {
                continue;
            }
            let samples = pending.entry(track.track_id).or_default();
            let decode = next_decode.entry(track.track_id).or_insert(0);
            // `tfdt` says where the fragment starts; a fragment that would overlap the one before
            // (a muxer's rounding) starts where that one ended, keeping decode times ordered.
            let mut time = fragment
                .base_decode_time
                .map_or(*decode, |t| t.max(*decode));
            for sample in fragment.samples {
                let end = sample.offset.checked_add(u64::from(sample.size));
                if end.is_none_or(|end| end > file_len) {
                    cut_off.push(track.track_id);
                    break;
                }
                if sample.size > MAX_SAMPLE_BYTES {
                    return Err(MediaError::LimitExceeded {
                        what: "sample size in bytes",
                        value: u64::from(sample.size),
                        limit: u64::from(MAX_SAMPLE_BYTES),
                    });
                }
                let in_track = track.samples.len() + samples.len();
                if *samples_left == 0 || in_track >= MAX_SAMPLES_PER_TRACK as usize {
                    return Err(MediaError::LimitExceeded {
                        what: "samples in one track (or left in the movie's budget)",
                        value: usize_to_u64(in_track + 1),
                        limit: u64::from((*samples_left).min(MAX_SAMPLES_PER_TRACK)),
                    });
                }
                *samples_left -= 1;
                samples.push(
                    sample.size,
                    sample.offset,
                    time,
                    sample.composition_offset,
                    sample.flags & SAMPLE_IS_NON_SYNC == 0,
                );
                time = time
                    .checked_add(u64::from(sample.duration))
                    .ok_or_else(|| traf.corrupt("decode time overflows"))?;
            }
            *decode = time;
        }
    }
    for track in tracks.iter_mut() {
        if let Some(samples) = pending.remove(&track.track_id) {
            let end = next_decode.get(&track.track_id).copied().unwrap_or(0);
            track.samples.append_fragments(samples, end);
        }
    }
    Ok(())
}

/// One sample of a `trun`, placed in the file.
struct RunSample {
    size: u32,
    offset: u64,
    duration: u32,
    composition_offset: i32,
    flags: u32,
}

/// The samples of one `traf`.
struct TrackFragment {
    track_id: u32,
    base_decode_time: Option<u64>,
    samples: Vec<RunSample>,
    /// File offset just past this fragment's last sample (where the next `traf`'s data starts
    /// when its `tfhd` gives no base).
    data_end: u64,
}

fn read_traf(
    traf: &BoxRef<'_>,
    moof_offset: u64,
    previous_traf_end: u64,
    extends: &MovieExtends,
) -> Result<TrackFragment, MediaError> {
    let tfhd = traf
        .child(b"tfhd")?
        .ok_or_else(|| traf.corrupt("no `tfhd` box"))?;
    let mut r = tfhd.reader("tfhd");
    let (_, flags) = r.version_flags()?;
    let track_id = r.u32()?;
    let trex = extends.defaults.get(&track_id).copied().unwrap_or_default();
    let explicit_base = if flags & 0x01 != 0 {
        Some(r.u64()?)
    } else {
        None
    };
    if flags & 0x02 != 0 {
        r.skip(4)?; // sample_description_index: samples are played with the first description
    }
    let default_duration = if flags & 0x08 != 0 {
        r.u32()?
    } else {
        trex.sample_duration
    };
    let default_size = if flags & 0x10 != 0 {
        r.u32()?
    } else {
        trex.sample_size
    };
    let default_flags = if flags & 0x20 != 0 {
        r.u32()?
    } else {
        trex.sample_flags
    };
    // §8.8.7.1: without an explicit base, offsets count from the `moof` (default-base-is-moof, and
    // the first `traf` of a `moof`) or from the end of the previous `traf`'s data.
    let base = match explicit_base {
        Some(base) => base,
        None if flags & 0x02_0000 != 0 => moof_offset,
        None => previous_traf_end,
    };
    let base_decode_time = match traf.child(b"tfdt")? {
        Some(tfdt) => {
            let mut r = tfdt.reader("tfdt");
            let (version, _) = r.version_flags()?;
            Some(if version == 1 {
                r.u64()?
            } else {
                u64::from(r.u32()?)
            })
        }
        None => None,
    };
    let mut samples = Vec::new();
    let mut data_cursor = base;
    for trun in traf.children() {
        let trun = trun?;
        if &trun.kind.0 != b"trun" {
            continue;
        }
        let mut r = trun.reader("trun");
        let (version, flags) = r.version_flags()?;
        let count = r.u32()?;
        let data_offset = if flags & 0x01 != 0 {
            Some(r.i32()?)
        } else {
            None
        };
        let first_flags = if flags & 0x04 != 0 {
            Some(r.u32()?)
        } else {
            None
        };
        let per_sample = [0x100, 0x200, 0x400, 0x800]
            .iter()
            .filter(|bit| flags & **bit != 0)
            .count()
            * 4;
        // A lying count cannot make us loop past what the box holds.
        if per_sample > 0
            && usize::try_from(count).unwrap_or(usize::MAX) > r.remaining() / per_sample
        {
            return Err(trun.corrupt(format!(
                "declares {count} samples but holds {} bytes of them",
                r.remaining()
            )));
        }
        if per_sample == 0 && count > MAX_SAMPLES_PER_TRACK {
            return Err(trun.corrupt(format!("declares {count} samples")));
        }
        let mut offset = match data_offset {
            Some(delta) => base
                .checked_add_signed(i64::from(delta))
                .ok_or_else(|| trun.corrupt("data offset leaves the file"))?,
            None => data_cursor,
        };
        for k in 0..count {
            let duration = if flags & 0x100 != 0 {
                r.u32()?
            } else {
                default_duration
            };
            let size = if flags & 0x200 != 0 {
                r.u32()?
            } else {
                default_size
            };
            let mut sample_flags = if flags & 0x400 != 0 {
                r.u32()?
            } else {
                default_flags
            };
            if k == 0 {
                if let Some(first) = first_flags {
                    sample_flags = first;
                }
            }
            // Version 0 says unsigned; writers put negative offsets there too (as with `ctts`).
            let composition_offset = if flags & 0x800 != 0 {
                let raw = r.u32()?;
                let _ = version;
                i32::from_be_bytes(raw.to_be_bytes())
            } else {
                0
            };
            samples.push(RunSample {
                size,
                offset,
                duration,
                composition_offset,
                flags: sample_flags,
            });
            offset = offset
                .checked_add(u64::from(size))
                .ok_or_else(|| trun.corrupt("sample offset overflows 64 bits"))?;
        }
        data_cursor = offset;
    }
    Ok(TrackFragment {
        track_id,
        base_decode_time,
        samples,
        data_end: data_cursor,
    })
}
