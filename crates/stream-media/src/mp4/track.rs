//! One `trak` box: identity (`tkhd`), timing (`mdhd`, `elst`), kind (`hdlr`), codec (`stsd`), sample
//! tables (`stbl`), hint references (`tref/hint`) and the hint SDP fragment (`udta/hnti/sdp `).

use bytes::Bytes;

use super::reader::{BoxRef, FourCc};
use super::sample_entry::{parse_stsd, Codec, SampleEntry};
use super::sample_table::{SampleTable, StblBoxes};
use crate::MediaError;

/// Longest hint-track SDP fragment we keep; DSS-era fragments are a few hundred bytes.
pub const MAX_SDP_TEXT_BYTES: usize = 64 * 1024;

/// A parsed track, with everything the packet sources need.
#[derive(Debug, Clone)]
pub struct Track {
    pub track_id: u32,
    pub handler: FourCc,
    /// Media timescale (`mdhd`), units per second of every time in `samples`.
    pub timescale: u32,
    /// Added to decode and composition times to get presentation times (media timescale); from `elst`.
    pub edit_shift: i64,
    /// Presentation duration the edit list gives (media timescale), when it has one.
    pub edit_duration: Option<u64>,
    pub entry: SampleEntry,
    /// Raw bytes of every sample description (hint packets may copy from them).
    pub sample_descriptions: Vec<Bytes>,
    pub samples: SampleTable,
    /// Track IDs named by `tref/hint`: what a hint track's sample references point into.
    pub hint_references: Vec<u32>,
    /// `udta/hnti/sdp ` text of a hint track.
    pub hint_sdp: Option<String>,
    /// ISO 639-2/T language of the track (`mdhd`), `None` when undetermined.
    pub language: Option<String>,
}

/// Parse one `trak`; `movie_timescale` converts the edit list's durations.
/// `max_samples` is what is left of the movie-wide sample budget.
pub fn parse_trak(
    trak: &BoxRef<'_>,
    movie_timescale: u32,
    max_samples: u32,
) -> Result<Track, MediaError> {
    let tkhd = trak
        .child(b"tkhd")?
        .ok_or_else(|| trak.corrupt("no `tkhd` box"))?;
    let mut r = tkhd.reader("tkhd");
    let (version, _flags) = r.version_flags()?;
    r.skip(if version == 1 { 16 } else { 8 })?; // creation and modification times
    let track_id = r.u32()?;

    let mdia = trak
        .child(b"mdia")?
        .ok_or_else(|| trak.corrupt("no `mdia` box"))?;
    let mdhd = mdia
        .child(b"mdhd")?
        .ok_or_else(|| mdia.corrupt("no `mdhd` box"))?;
    let mut r = mdhd.reader("mdhd");
    let (version, _flags) = r.version_flags()?;
    r.skip(if version == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(mdhd.corrupt("media timescale is 0"));
    }
    r.skip(if version == 1 { 8 } else { 4 })?;
    // Optional for playing: a short `mdhd` only loses the language.
    let language = r.u16().ok().and_then(language_code);

    let hdlr = mdia
        .child(b"hdlr")?
        .ok_or_else(|| mdia.corrupt("no `hdlr` box"))?;
    let mut r = hdlr.reader("hdlr");
    r.version_flags()?;
    r.skip(4)?; // pre_defined (QuickTime: component type)
    let handler = r.fourcc()?;

    let minf = mdia
        .child(b"minf")?
        .ok_or_else(|| mdia.corrupt("no `minf` box"))?;
    let stbl = minf
        .child(b"stbl")?
        .ok_or_else(|| minf.corrupt("no `stbl` box"))?;
    let mut tables = StblBoxes::default();
    let mut stsd = None;
    for child in stbl.children() {
        let child = child?;
        let slot = match &child.kind.0 {
            b"stsd" => &mut stsd,
            b"stsz" => &mut tables.stsz,
            b"stz2" => &mut tables.stz2,
            b"stco" => &mut tables.stco,
            b"co64" => &mut tables.co64,
            b"stsc" => &mut tables.stsc,
            b"stts" => &mut tables.stts,
            b"ctts" => &mut tables.ctts,
            b"stss" => &mut tables.stss,
            _ => continue,
        };
        slot.get_or_insert(child);
    }
    let stsd = stsd.ok_or_else(|| stbl.corrupt("no `stsd` box"))?;
    let (mut entry, sample_descriptions) = parse_stsd(&stsd, handler)?;
    if let Some(why) = external_data_reference(&minf)? {
        entry.codec = Codec::Unknown(why);
    }
    let samples = SampleTable::build(&stbl, &tables, max_samples)?;
    let first_description = sample_descriptions.first();
    if samples.uses_other_descriptions()
        && sample_descriptions
            .iter()
            .any(|d| Some(d) != first_description)
    {
        // Parameter sets and codec configs come from the first description; samples described by a different
        // one (a spliced file) would be announced wrongly, so such tracks are not streamed.
        entry.codec = Codec::Unknown(format!(
            "track switches between {} different sample descriptions",
            sample_descriptions.len()
        ));
    }

    let (edit_shift, edit_duration) = match trak.child(b"edts")? {
        Some(edts) => match edts.child(b"elst")? {
            Some(elst) => read_edit_list(&elst, movie_timescale, timescale)?,
            None => (0, None),
        },
        None => (0, None),
    };

    let mut hint_references = Vec::new();
    if let Some(tref) = trak.child(b"tref")? {
        if let Some(hint) = tref.child(b"hint")? {
            let mut r = hint.reader("tref hint");
            while r.remaining() >= 4 && hint_references.len() < 16 {
                hint_references.push(r.u32()?);
            }
        }
    }

    // Optional metadata: a malformed `udta` costs a hint track its SDP (so it is not used), never the
    // media track that carries it.
    let hint_sdp = track_hint_sdp(trak).ok().flatten();

    Ok(Track {
        language,
        track_id,
        handler,
        timescale,
        edit_shift,
        edit_duration,
        entry,
        sample_descriptions,
        samples,
        hint_references,
        hint_sdp,
    })
}

/// `udta/hnti/sdp `: the SDP fragment of a hint track.
fn track_hint_sdp(trak: &BoxRef<'_>) -> Result<Option<String>, MediaError> {
    let Some(udta) = trak.child(b"udta")? else {
        return Ok(None);
    };
    let Some(hnti) = udta.child(b"hnti")? else {
        return Ok(None);
    };
    let Some(sdp) = hnti.child(b"sdp ")? else {
        return Ok(None);
    };
    sdp_text(&sdp).map(Some)
}

/// QuickTime reference movies keep samples in other files (`dref` entries without the "self-contained"
/// flag); offsets then point into a file we do not have, so such tracks are not streamed.
fn external_data_reference(minf: &BoxRef<'_>) -> Result<Option<String>, MediaError> {
    let Some(dinf) = minf.child(b"dinf")? else {
        return Ok(None);
    };
    let Some(dref) = dinf.child(b"dref")? else {
        return Ok(None);
    };
    let mut r = dref.reader("dref");
    r.version_flags()?;
    let _count = r.u32()?;
    let entries = super::reader::Boxes::new(r.rest(), r.offset());
    for entry in entries.take(1) {
        let entry = entry?;
        let (_, flags) = entry.reader("dref entry").version_flags()?;
        if flags & 1 == 0 {
            return Ok(Some(format!(
                "samples are in another file (data reference `{}`)",
                entry.kind
            )));
        }
    }
    Ok(None)
}

/// Text of an SDP-carrying box, bounded and required to be UTF-8 (SDP is text; RFC 8866 says UTF-8).
pub fn sdp_text(b: &BoxRef<'_>) -> Result<String, MediaError> {
    if b.body.len() > MAX_SDP_TEXT_BYTES {
        return Err(MediaError::LimitExceeded {
            what: "hint SDP bytes",
            value: super::reader::usize_to_u64(b.body.len()),
            limit: super::reader::usize_to_u64(MAX_SDP_TEXT_BYTES),
        });
    }
    let text =
        std::str::from_utf8(b.body).map_err(|e| b.corrupt(format!("SDP is not UTF-8: {e}")))?;
    // Some writers NUL-terminate the text.
    Ok(text.trim_end_matches('\0').to_string())
}

/// The shift from media time to presentation time given by an edit list (ISO 14496-12 §8.6.6), and the
/// presentation duration it covers (media timescale).
///
/// Handles the cases writers produce: leading empty edits (a delay), then one edit starting at
/// `media_time` (ffmpeg's B-frame and AAC-priming offsets). Later edits are ignored, so files that cut
/// and splice with several edits play straight through their media.
fn read_edit_list(
    elst: &BoxRef<'_>,
    movie_timescale: u32,
    media_timescale: u32,
) -> Result<(i64, Option<u64>), MediaError> {
    let mut r = elst.reader("elst");
    let (version, _) = r.version_flags()?;
    let n_entries = r.u32()?;
    let mut empty_duration: u64 = 0; // movie timescale
    for _ in 0..n_entries.min(1024) {
        let (segment_duration, media_time) = if version == 1 {
            (r.u64()?, r.i64()?)
        } else {
            (u64::from(r.u32()?), i64::from(r.i32()?))
        };
        r.skip(4)?; // media_rate
        if media_time == -1 {
            empty_duration = empty_duration.saturating_add(segment_duration);
            continue;
        }
        if media_time < 0 {
            return Err(elst.corrupt(format!("media_time {media_time} is negative")));
        }
        let delay = rescale(empty_duration, movie_timescale, media_timescale)
            .ok_or_else(|| elst.corrupt("empty edit duration overflows"))?;
        let shift = delay
            .checked_sub(media_time)
            .ok_or_else(|| elst.corrupt("edit offset overflows"))?;
        let total = empty_duration.saturating_add(segment_duration);
        let duration =
            rescale(total, movie_timescale, media_timescale).and_then(|d| u64::try_from(d).ok());
        // A zero segment duration means "to the end of the media" in files written by some tools.
        return Ok((shift, duration.filter(|&d| d > 0)));
    }
    let delay = rescale(empty_duration, movie_timescale, media_timescale)
        .ok_or_else(|| elst.corrupt("empty edit overflows"))?;
    Ok((delay, None))
}

/// `value` in timescale `from` expressed in timescale `to`, rounded down; `None` on overflow or zero scale.
pub fn rescale(value: u64, from: u32, to: u32) -> Option<i64> {
    if from == 0 {
        return None;
    }
    let scaled = u128::from(value).checked_mul(u128::from(to))? / u128::from(from);
    i64::try_from(scaled).ok()
}

/// ISO 639-2/T from `mdhd`'s packed form (three 5-bit letters, each offset from 0x60).
/// Values below 0x400 are QuickTime's Macintosh language codes, and `und` is undetermined:
/// neither names a language a client could show.
fn language_code(packed: u16) -> Option<String> {
    if packed < 0x400 {
        return None;
    }
    let letters: String = [10u16, 5, 0]
        .iter()
        .map(|shift| char::from(((packed >> shift) & 0x1F) as u8 + 0x60))
        .collect();
    (letters.chars().all(|c| c.is_ascii_lowercase()) && letters != "und").then_some(letters)
}

#[cfg(test)]
mod language_tests {
    use super::language_code;

    #[test]
    fn packed_languages_decode_and_undetermined_is_none() {
        // 'e' 'n' 'g' = 5, 14, 7
        assert_eq!(
            language_code((5 << 10) | (14 << 5) | 7).as_deref(),
            Some("eng")
        );
        assert_eq!(language_code(0x55C4), None, "und");
        assert_eq!(language_code(0), None, "Macintosh code 0");
        assert_eq!(language_code(0x7FFF), None, "not letters");
    }
}
