//! Sample descriptions (`stsd` entries): which codec a track holds and the configuration an RTP client needs
//! (H.264/H.265 parameter sets, AAC AudioSpecificConfig, MPEG-4 visual config, Opus header, hint `rtp `).
//!
//! Written by hand rather than with `mp4-atom`: that crate needs Rust 1.88 (the workspace promises 1.85)
//! and has no RTP hint sample entry, and we want every length checked against our own limits.

use bytes::Bytes;

use super::reader::{find, BoxRef, Boxes, FourCc, Reader};
use crate::MediaError;

/// Largest parameter set (SPS/PPS/VPS) or decoder config we keep; real ones are tens of bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
/// Most parameter sets of one kind we keep from one configuration record.
pub const MAX_PARAMETER_SETS: usize = 32;

/// The codec of a track and what its RTP payload format needs.
#[derive(Debug, Clone)]
pub enum Codec {
    H264 {
        length_size: u8,
        sps: Vec<Bytes>,
        pps: Vec<Bytes>,
    },
    H265 {
        length_size: u8,
        vps: Vec<Bytes>,
        sps: Vec<Bytes>,
        pps: Vec<Bytes>,
    },
    /// AAC in MPEG-4 audio; `config` is the AudioSpecificConfig.
    Aac {
        config: Bytes,
    },
    /// MPEG-4 Part 2 visual; `config` is the DecoderSpecificInfo (VOS/VO/VOL headers).
    Mp4v {
        config: Bytes,
    },
    /// MPEG-1/2 audio (layer III, or I/II).
    Mpa,
    Opus {
        channels: u8,
        mapping_family: u8,
    },
    /// RTP hint track sample entry (`rtp `).
    RtpHint {
        timescale: u32,
    },
    /// Anything else; the string says what and why we cannot stream it.
    Unknown(String),
}

impl Codec {
    /// Short name for logs and `TrackInfo::codec`.
    pub fn name(&self, fourcc: FourCc) -> String {
        match self {
            Codec::H264 { .. } => "h264".into(),
            Codec::H265 { .. } => "h265".into(),
            Codec::Aac { .. } => "aac".into(),
            Codec::Mp4v { .. } => "mp4v".into(),
            Codec::Mpa => "mp3".into(),
            Codec::Opus { .. } => "opus".into(),
            Codec::RtpHint { .. } => "rtp hint".into(),
            Codec::Unknown(_) => fourcc.to_string(),
        }
    }
}

/// The first sample description of a track, parsed.
#[derive(Debug, Clone)]
pub struct SampleEntry {
    pub fourcc: FourCc,
    pub codec: Codec,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
}

/// Parse the first entry of an `stsd` box; `handler` is the track's `hdlr` type.
/// Also returns every entry's raw bytes (header included), which hint tracks may reference.
pub fn parse_stsd(
    stsd: &BoxRef<'_>,
    handler: FourCc,
) -> Result<(SampleEntry, Vec<Bytes>), MediaError> {
    let mut r = stsd.reader("stsd");
    r.version_flags()?;
    let n_entries = r.u32()?;
    let mut raw_entries = Vec::new();
    let mut first = None;
    for (i, entry) in Boxes::new(r.rest(), r.offset()).enumerate() {
        let entry = entry?;
        if usize_to_u32(i) >= n_entries {
            break;
        }
        let mut raw = Vec::with_capacity(entry.body.len().saturating_add(8));
        let size = u32::try_from(entry.body.len().saturating_add(8)).unwrap_or(u32::MAX);
        raw.extend_from_slice(&size.to_be_bytes());
        raw.extend_from_slice(&entry.kind.0);
        raw.extend_from_slice(entry.body);
        raw_entries.push(Bytes::from(raw));
        if first.is_none() {
            first = Some(parse_entry(&entry, handler)?);
        }
        if raw_entries.len() >= MAX_PARAMETER_SETS {
            break;
        }
    }
    let first = first.ok_or_else(|| stsd.corrupt("no sample description"))?;
    Ok((first, raw_entries))
}

fn parse_entry(entry: &BoxRef<'_>, handler: FourCc) -> Result<SampleEntry, MediaError> {
    let mut out = SampleEntry {
        fourcc: entry.kind,
        codec: Codec::Unknown(format!("codec `{}` has no RTP packetizer here", entry.kind)),
        width: None,
        height: None,
        sample_rate: None,
        channels: None,
    };
    match &handler.0 {
        b"vide" => parse_visual(entry, &mut out)?,
        b"soun" => parse_audio(entry, &mut out)?,
        b"hint" => parse_hint(entry, &mut out)?,
        _ => {}
    }
    Ok(out)
}

fn parse_visual(entry: &BoxRef<'_>, out: &mut SampleEntry) -> Result<(), MediaError> {
    let mut r = entry.reader("visual sample entry");
    // reserved(6) data_reference_index(2) pre_defined/reserved(16)
    r.skip(24)?;
    out.width = Some(r.u16()?);
    out.height = Some(r.u16()?);
    // resolutions(8) reserved(4) frame_count(2) compressorname(32) depth(2) pre_defined(2)
    r.skip(50)?;
    let children = Boxes::new(r.rest(), r.offset());
    match &entry.kind.0 {
        b"avc1" | b"avc3" => {
            let avcc =
                find(children, b"avcC")?.ok_or_else(|| entry.corrupt("no `avcC` configuration"))?;
            out.codec = parse_avcc(&avcc)?;
        }
        b"hvc1" | b"hev1" => {
            let hvcc =
                find(children, b"hvcC")?.ok_or_else(|| entry.corrupt("no `hvcC` configuration"))?;
            out.codec = parse_hvcc(&hvcc)?;
        }
        b"mp4v" => {
            let esds =
                find(children, b"esds")?.ok_or_else(|| entry.corrupt("no `esds` descriptor"))?;
            let (object_type, config) = parse_esds(&esds)?;
            out.codec = match object_type {
                0x20 => Codec::Mp4v { config },
                other => Codec::Unknown(format!(
                    "`mp4v` with object type 0x{other:02x} is not MPEG-4 Part 2"
                )),
            };
        }
        _ => {}
    }
    Ok(())
}

fn parse_audio(entry: &BoxRef<'_>, out: &mut SampleEntry) -> Result<(), MediaError> {
    let mut r = entry.reader("audio sample entry");
    r.skip(8)?; // reserved(6) data_reference_index(2)
    let version = r.u16()?; // QuickTime sound description version; 0 in ISO files
    r.skip(6)?; // revision(2) vendor(4)
    let channels = r.u16()?;
    r.skip(6)?; // sample size(2) compression id(2) packet size(2)
    let rate_fixed = r.u32()?; // 16.16
    out.channels = Some(channels);
    out.sample_rate = Some(rate_fixed >> 16);
    match version {
        0 => {}
        1 => r.skip(16)?,
        2 => {
            r.skip(36)?;
            // Version 2 keeps the real rate as a float; the codec configuration below is authoritative.
            out.sample_rate = None;
            out.channels = None;
        }
        v => return Err(entry.corrupt(format!("unknown sound description version {v}"))),
    }
    let children = Boxes::new(r.rest(), r.offset());
    match &entry.kind.0 {
        b"mp4a" => {
            // QuickTime nests `esds` inside a `wave` box; ISO files put it directly in the entry.
            let esds = match find(children.clone(), b"esds")? {
                Some(esds) => Some(esds),
                None => match find(children, b"wave")? {
                    Some(wave) => wave.child(b"esds")?,
                    None => None,
                },
            };
            let esds = esds.ok_or_else(|| entry.corrupt("no `esds` descriptor"))?;
            let (object_type, config) = parse_esds(&esds)?;
            out.codec = match object_type {
                0x40 | 0x66 | 0x67 | 0x68 => {
                    let asc = AudioSpecificConfig::parse(&config, esds.body_offset)?;
                    out.sample_rate = Some(asc.sample_rate);
                    if asc.channels > 0 {
                        out.channels = Some(asc.channels);
                    }
                    Codec::Aac { config }
                }
                0x69 | 0x6B => Codec::Mpa,
                other => Codec::Unknown(format!(
                    "`mp4a` object type 0x{other:02x} has no RTP packetizer here"
                )),
            };
        }
        b".mp3" | [b'm', b's', 0, 0x55] => out.codec = Codec::Mpa,
        b"Opus" => {
            let dops =
                find(children, b"dOps")?.ok_or_else(|| entry.corrupt("no `dOps` configuration"))?;
            let mut d = dops.reader("dOps");
            let _version = d.u8()?;
            let channels = d.u8()?;
            d.skip(8)?; // pre-skip(2) input sample rate(4) output gain(2)
            let mapping_family = d.u8()?;
            out.channels = Some(u16::from(channels));
            // RFC 7587: the RTP clock of Opus is always 48 kHz whatever the input rate was.
            out.sample_rate = Some(48_000);
            out.codec = Codec::Opus {
                channels,
                mapping_family,
            };
        }
        _ => {}
    }
    Ok(())
}

fn parse_hint(entry: &BoxRef<'_>, out: &mut SampleEntry) -> Result<(), MediaError> {
    if &entry.kind.0 != b"rtp " {
        out.codec = Codec::Unknown(format!("hint format `{}` is not RTP", entry.kind));
        return Ok(());
    }
    let mut r = entry.reader("rtp hint sample entry");
    r.skip(8)?; // reserved(6) data_reference_index(2)
    r.skip(4)?; // hinttrackversion(2) highestcompatibleversion(2)
    r.skip(4)?; // maxpacketsize: advisory; each hint packet's size is checked as it is built
    let tims = find(Boxes::new(r.rest(), r.offset()), b"tims")?
        .ok_or_else(|| entry.corrupt("no `tims` box"))?;
    let timescale = tims.reader("tims").u32()?;
    if timescale == 0 {
        return Err(tims.corrupt("RTP timescale is 0"));
    }
    out.codec = Codec::RtpHint { timescale };
    Ok(())
}

/// avcC (ISO 14496-15 §5.3.3): NAL length size and the SPS/PPS to put in SDP and before each IDR.
fn parse_avcc(avcc: &BoxRef<'_>) -> Result<Codec, MediaError> {
    let mut r = avcc.reader("avcC");
    let version = r.u8()?;
    if version != 1 {
        return Err(avcc.corrupt(format!("configurationVersion {version}, expected 1")));
    }
    r.skip(3)?; // profile, compatibility, level: we take them from the SPS itself
    let length_size = (r.u8()? & 0b11) + 1;
    if length_size == 3 {
        return Err(avcc.corrupt("NAL length size 3 is not allowed"));
    }
    let n_sps = usize::from(r.u8()? & 0x1F);
    let sps = read_parameter_sets(&mut r, n_sps)?;
    let n_pps = usize::from(r.u8()?);
    let pps = read_parameter_sets(&mut r, n_pps)?;
    if sps.is_empty() || pps.is_empty() {
        return Err(avcc.corrupt("no SPS or no PPS"));
    }
    if sps.iter().any(|s| s.len() < 4) {
        return Err(avcc.corrupt("SPS shorter than 4 bytes"));
    }
    Ok(Codec::H264 {
        length_size,
        sps,
        pps,
    })
}

/// hvcC (ISO 14496-15 §8.3.3): NAL length size and the VPS/SPS/PPS arrays.
fn parse_hvcc(hvcc: &BoxRef<'_>) -> Result<Codec, MediaError> {
    let mut r = hvcc.reader("hvcC");
    r.skip(21)?; // version, profile tier level, chroma, bit depths, frame rate fields
    let length_size = (r.u8()? & 0b11) + 1;
    if length_size == 3 {
        return Err(hvcc.corrupt("NAL length size 3 is not allowed"));
    }
    let n_arrays = r.u8()?;
    let (mut vps, mut sps, mut pps) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n_arrays {
        let nal_type = r.u8()? & 0x3F;
        let n_nalus = usize::from(r.u16()?);
        let sets = read_parameter_sets(&mut r, n_nalus)?;
        match nal_type {
            32 => vps.extend(sets),
            33 => sps.extend(sets),
            34 => pps.extend(sets),
            _ => {}
        }
    }
    if vps.is_empty() || sps.is_empty() || pps.is_empty() {
        return Err(hvcc.corrupt("missing VPS, SPS or PPS"));
    }
    Ok(Codec::H265 {
        length_size,
        vps,
        sps,
        pps,
    })
}

fn read_parameter_sets(r: &mut Reader<'_>, count: usize) -> Result<Vec<Bytes>, MediaError> {
    let mut sets = Vec::new();
    for _ in 0..count {
        let len = usize::from(r.u16()?);
        let bytes = r.bytes(len)?;
        if !bytes.is_empty() && sets.len() < MAX_PARAMETER_SETS {
            sets.push(Bytes::copy_from_slice(bytes));
        }
    }
    Ok(sets)
}

/// esds (ISO 14496-1 §7.2.6.5): objectTypeIndication and DecoderSpecificInfo.
fn parse_esds(esds: &BoxRef<'_>) -> Result<(u8, Bytes), MediaError> {
    let mut r = esds.reader("esds");
    r.version_flags()?;
    let (tag, body) = read_descriptor(&mut r)?;
    if tag != 0x03 {
        return Err(esds.corrupt(format!("expected ES_Descriptor (tag 3), found tag {tag}")));
    }
    let mut es = Reader::new(body, r.offset(), "ES_Descriptor");
    es.skip(2)?; // ES_ID
    let flags = es.u8()?;
    if flags & 0x80 != 0 {
        es.skip(2)?; // dependsOn_ES_ID
    }
    if flags & 0x40 != 0 {
        let url_len = usize::from(es.u8()?);
        es.skip(url_len)?;
    }
    if flags & 0x20 != 0 {
        es.skip(2)?; // OCR_ES_Id
    }
    // Walk the sub-descriptors for DecoderConfigDescriptor (tag 4); each step consumes bytes, so it ends.
    while es.remaining() > 0 {
        let (tag, body) = read_descriptor(&mut es)?;
        if tag != 0x04 {
            continue;
        }
        let mut dc = Reader::new(body, es.offset(), "DecoderConfigDescriptor");
        let object_type = dc.u8()?;
        dc.skip(12)?; // streamType etc.(1) bufferSizeDB(3) maxBitrate(4) avgBitrate(4)
        while dc.remaining() > 0 {
            let (tag, body) = read_descriptor(&mut dc)?;
            if tag == 0x05 {
                if body.len() > MAX_CONFIG_BYTES {
                    return Err(MediaError::LimitExceeded {
                        what: "DecoderSpecificInfo bytes",
                        value: super::reader::usize_to_u64(body.len()),
                        limit: super::reader::usize_to_u64(MAX_CONFIG_BYTES),
                    });
                }
                return Ok((object_type, Bytes::copy_from_slice(body)));
            }
        }
        return Ok((object_type, Bytes::new()));
    }
    Err(esds.corrupt("no DecoderConfigDescriptor"))
}

/// One MPEG-4 descriptor: tag, then a length in 1-4 bytes of 7 bits each.
fn read_descriptor<'a>(r: &mut Reader<'a>) -> Result<(u8, &'a [u8]), MediaError> {
    let tag = r.u8()?;
    let mut len: usize = 0;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7F);
        if b & 0x80 == 0 {
            break;
        }
    }
    // A descriptor claiming more than its parent holds is clamped: some muxers round lengths up.
    let len = len.min(r.remaining());
    Ok((tag, r.bytes(len)?))
}

/// The fields of an AAC AudioSpecificConfig (ISO 14496-3 §1.6.2.1) that SDP and the RTP clock need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioSpecificConfig {
    pub object_type: u8,
    pub sample_rate: u32,
    pub channels: u16,
}

const AAC_SAMPLE_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

impl AudioSpecificConfig {
    pub fn parse(bytes: &[u8], offset: u64) -> Result<Self, MediaError> {
        let corrupt = |why: &str| MediaError::corrupt("AudioSpecificConfig", offset, why);
        let mut bits = BitReader::new(bytes);
        let mut object_type = bits.read(5).ok_or_else(|| corrupt("too short"))?;
        if object_type == 31 {
            object_type = 32 + bits.read(6).ok_or_else(|| corrupt("too short"))?;
        }
        let index = bits.read(4).ok_or_else(|| corrupt("too short"))?;
        let sample_rate = if index == 15 {
            bits.read(24).ok_or_else(|| corrupt("too short"))?
        } else {
            usize::try_from(index)
                .ok()
                .and_then(|i| AAC_SAMPLE_RATES.get(i).copied())
                .ok_or_else(|| corrupt("reserved sampling frequency index"))?
        };
        if sample_rate == 0 {
            return Err(corrupt("sample rate 0"));
        }
        let channel_config = bits.read(4).ok_or_else(|| corrupt("too short"))?;
        let channels = match channel_config {
            0 => 0, // defined by a program config element; the sample entry's count is used
            1..=6 => u16::try_from(channel_config).unwrap_or(0),
            7 => 8,
            _ => 0,
        };
        Ok(AudioSpecificConfig {
            object_type: u8::try_from(object_type).unwrap_or(0),
            sample_rate,
            channels,
        })
    }
}

/// Most-significant-bit-first reader for the few bit-packed headers we look into.
pub struct BitReader<'a> {
    bytes: &'a [u8],
    bit_pos: usize,
}

impl<'a> BitReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, bit_pos: 0 }
    }

    /// Read `n` <= 32 bits, or `None` past the end.
    pub fn read(&mut self, n: u32) -> Option<u32> {
        let mut value: u32 = 0;
        for _ in 0..n.min(32) {
            let byte = *self.bytes.get(self.bit_pos / 8)?;
            let bit = (byte >> (7 - (self.bit_pos % 8))) & 1;
            value = (value << 1) | u32::from(bit);
            self.bit_pos += 1;
        }
        Some(value)
    }
}

fn usize_to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
