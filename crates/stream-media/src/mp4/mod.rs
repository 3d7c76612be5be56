//! MP4/MOV (ISO 14496-12 / QuickTime) demuxing: find `moov` anywhere at top level, read it (bounded) into
//! memory and parse its tracks. Sample bytes stay in the file and are read on demand by the packet sources.

pub mod fragment;
pub mod reader;
pub mod sample_entry;
pub mod sample_table;
pub mod track;

use reader::{BoxRef, FourCc, Reader};
use track::{parse_trak, sdp_text, Track};

use crate::{MediaError, ReadAt};

/// Largest `moov` we read into memory. Sample tables of a day-long file fit well below this.
pub const MAX_MOOV_BYTES: u64 = 64 * 1024 * 1024;
/// Top-level boxes we look at: progressive files have fewer than ten; a fragmented recording has two
/// (`moof`, `mdat`) per fragment, so this allows a day of one-second fragments.
pub const MAX_TOP_LEVEL_BOXES: usize = 200_000;
/// Tracks we parse from one movie.
pub const MAX_TRACKS: usize = 64;

/// What the demuxer learned from `moov`.
pub struct ParsedMovie {
    pub timescale: u32,
    /// Movie duration in `timescale` units (`mvhd`).
    pub duration: u64,
    pub tracks: Vec<Track>,
    /// Session-level SDP lines of a hinted movie (`moov/udta/hnti/rtp `).
    pub hint_sdp: Option<String>,
    /// Errors of tracks that could not be parsed at all (the rest of the movie can still play).
    pub broken_tracks: Vec<String>,
}

/// Locate and parse `moov`.
pub fn parse_movie(src: &dyn ReadAt) -> Result<ParsedMovie, MediaError> {
    let TopLevel {
        moov: (moov_offset, moov_len),
        moofs,
    } = find_moov(src)?;
    let len = usize::try_from(moov_len).map_err(|_| MediaError::LimitExceeded {
        what: "moov bytes",
        value: moov_len,
        limit: MAX_MOOV_BYTES,
    })?;
    let mut moov = vec![0u8; len];
    src.read_exact_at(&mut moov, moov_offset)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => MediaError::Truncated {
                what: "moov",
                offset: moov_offset,
                need: moov_len,
                have: src.len().saturating_sub(moov_offset),
            },
            _ => MediaError::Io(e),
        })?;
    let moov = BoxRef {
        kind: FourCc::new(b"moov"),
        body: &moov,
        body_offset: moov_offset,
    };
    let (mut movie, extends) = parse_moov(&moov)?;
    if let Some(extends) = extends {
        let used: u32 = movie
            .tracks
            .iter()
            .map(|t| u32::try_from(t.samples.len()).unwrap_or(u32::MAX))
            .fold(0, u32::saturating_add);
        let mut samples_left = sample_table::MAX_SAMPLES_PER_MOVIE.saturating_sub(used);
        fragment::append_fragments(src, &moofs, &extends, &mut movie.tracks, &mut samples_left)?;
        // The fragments read are the truth: `mvhd` covers only what `moov` itself holds, and
        // `mehd` is what the writer planned (a cut-off recording has less). Zero makes the movie
        // take its longest track's end, counted over every fragment.
        let _planned = extends.fragment_duration;
        movie.duration = 0;
    } else if let Some(&(offset, _)) = moofs.first() {
        return Err(MediaError::corrupt(
            "moof",
            offset,
            "movie fragment in a file whose `moov` has no `mvex` (not a fragmented MP4)",
        ));
    }
    Ok(movie)
}

/// Where the top-level boxes that matter are.
struct TopLevel {
    /// Offset and length of the body of `moov`.
    moov: (u64, u64),
    /// Offset and total size of each `moof`, in file order.
    moofs: Vec<(u64, u64)>,
}

/// The top-level `moov` and the `moof`s of a fragmented file.
fn find_moov(src: &dyn ReadAt) -> Result<TopLevel, MediaError> {
    let file_len = src.len();
    let mut offset: u64 = 0;
    let mut moov = None;
    let mut moofs = Vec::new();
    for _ in 0..MAX_TOP_LEVEL_BOXES {
        if file_len.saturating_sub(offset) < 8 {
            break;
        }
        let mut header = [0u8; 16];
        let header_len = if file_len - offset >= 16 { 16 } else { 8 };
        let header_buf = header.get_mut(..header_len).unwrap_or(&mut []);
        src.read_exact_at(header_buf, offset)?;
        let mut r = Reader::new(&header, offset, "top-level box header");
        let size32 = r.u32()?;
        let kind = r.fourcc()?;
        let (header_size, size) = match size32 {
            0 => (8, file_len - offset),
            1 if header_len == 16 => (16, r.u64()?),
            1 => {
                return Err(MediaError::Truncated {
                    what: "64-bit box size",
                    offset,
                    need: 16,
                    have: file_len - offset,
                })
            }
            n => (8, u64::from(n)),
        };
        if size < header_size {
            return Err(MediaError::corrupt(
                kind.to_string(),
                offset,
                format!("declared size {size} is below its header"),
            ));
        }
        match &kind.0 {
            b"moof" => moofs.push((offset, size)),
            b"moov" => {
                let body_len = size - header_size;
                if body_len > MAX_MOOV_BYTES {
                    return Err(MediaError::LimitExceeded {
                        what: "moov bytes",
                        value: body_len,
                        limit: MAX_MOOV_BYTES,
                    });
                }
                if moov.is_none() {
                    moov = Some((offset + header_size, body_len));
                }
            }
            _ => {}
        }
        // A box running past the end of the file is only tolerated for the last box (e.g. a cut-off mdat);
        // `moov` itself is checked when it is read.
        offset = match offset.checked_add(size) {
            Some(next) => next,
            None => break,
        };
    }
    let moov = moov.ok_or_else(|| {
        MediaError::corrupt(
            "moov",
            0,
            "no `moov` box found at the top level (not an MP4/MOV file?)",
        )
    })?;
    Ok(TopLevel { moov, moofs })
}

fn parse_moov(
    moov: &BoxRef<'_>,
) -> Result<(ParsedMovie, Option<fragment::MovieExtends>), MediaError> {
    let mvhd = moov
        .child(b"mvhd")?
        .ok_or_else(|| moov.corrupt("no `mvhd` box"))?;
    let mut r = mvhd.reader("mvhd");
    let (version, _) = r.version_flags()?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    let duration = if version == 1 {
        r.u64()?
    } else {
        u64::from(r.u32()?)
    };
    if timescale == 0 {
        return Err(mvhd.corrupt("movie timescale is 0"));
    }
    let extends = match moov.child(b"mvex")? {
        Some(mvex) => Some(fragment::parse_mvex(&mvex)?),
        None => None,
    };
    let mut tracks = Vec::new();
    let mut broken_tracks = Vec::new();
    let mut hint_sdp = None;
    let mut samples_left = sample_table::MAX_SAMPLES_PER_MOVIE;
    for child in moov.children() {
        let child = child?;
        match &child.kind.0 {
            b"trak" if tracks.len() + broken_tracks.len() < MAX_TRACKS => {
                match parse_trak(&child, timescale, samples_left) {
                    Ok(track) => {
                        let used = u32::try_from(track.samples.len()).unwrap_or(u32::MAX);
                        samples_left = samples_left.saturating_sub(used);
                        tracks.push(track);
                    }
                    // One broken track (say, a timecode track we cannot read) must not hide the others.
                    Err(e) => broken_tracks.push(format!(
                        "track at offset {}: {e}",
                        child.body_offset.saturating_sub(8)
                    )),
                }
            }
            // Optional metadata: a malformed `udta` loses the hint SDP, not the movie.
            b"udta" => hint_sdp = movie_hint_sdp(&child).ok().flatten().or(hint_sdp),
            _ => {}
        }
    }
    Ok((
        ParsedMovie {
            timescale,
            duration,
            tracks,
            hint_sdp,
            broken_tracks,
        },
        extends,
    ))
}

/// `udta/hnti/rtp `: a 4-byte description format (`sdp `) followed by SDP text.
fn movie_hint_sdp(udta: &BoxRef<'_>) -> Result<Option<String>, MediaError> {
    let Some(hnti) = udta.child(b"hnti")? else {
        return Ok(None);
    };
    let Some(rtp) = hnti.child(b"rtp ")? else {
        return Ok(None);
    };
    let mut r = rtp.reader("hnti rtp");
    let format = r.fourcc()?;
    if &format.0 != b"sdp " {
        return Ok(None);
    }
    let text = BoxRef {
        kind: rtp.kind,
        body: r.rest(),
        body_offset: r.offset(),
    };
    Ok(Some(sdp_text(&text)?))
}
