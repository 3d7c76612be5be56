//! A minimal MP4 writer for tests: builds exactly the boxes a case needs (co64 past 4 GiB, no `stss`,
//! edit lists, lying counts), backed by a sparse source so a "5 GiB" file costs a few kilobytes.
#![allow(dead_code)]

use std::io;

use bytes::Bytes;
use serval_stream_media::ReadAt;

pub fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

pub fn full(kind: &[u8; 4], version: u8, flags: u32, body: &[u8]) -> Vec<u8> {
    let mut b = vec![version];
    b.extend_from_slice(&flags.to_be_bytes()[1..]);
    b.extend_from_slice(body);
    bx(kind, &b)
}

/// Box with a 64-bit "largesize" header.
pub fn large_header(kind: &[u8; 4], total_size: u64) -> Vec<u8> {
    let mut v = 1u32.to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(&total_size.to_be_bytes());
    v
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

pub const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40];
pub const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb];

pub fn avc1_entry(width: u16, height: u16) -> Vec<u8> {
    let mut avcc = vec![1, 0x64, 0x00, 0x1e, 0xFF, 0xE1];
    avcc.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
    avcc.extend_from_slice(SPS);
    avcc.push(1);
    avcc.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
    avcc.extend_from_slice(PPS);
    let mut body = vec![0u8; 6];
    body.extend_from_slice(&1u16.to_be_bytes());
    body.extend_from_slice(&[0u8; 16]);
    body.extend_from_slice(&width.to_be_bytes());
    body.extend_from_slice(&height.to_be_bytes());
    body.extend_from_slice(&[0u8; 50]);
    body.extend(bx(b"avcC", &avcc));
    bx(b"avc1", &body)
}

/// An H.264 access unit in AVCC layout: one NAL of type 5 (IDR) or 1, `len` bytes long.
pub fn avcc_sample(idr: bool, len: usize, seed: u8) -> Vec<u8> {
    let mut nal = vec![if idr { 0x65 } else { 0x41 }];
    nal.extend((1..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    let mut v = (nal.len() as u32).to_be_bytes().to_vec();
    v.extend(nal);
    v
}

pub struct Sample {
    pub data: Vec<u8>,
    pub duration: u32,
    pub composition_offset: i32,
    pub sync: bool,
}

pub struct VideoTrack {
    pub track_id: u32,
    pub timescale: u32,
    pub samples: Vec<Sample>,
    pub write_stss: bool,
    pub write_ctts: bool,
    /// (segment_duration in movie timescale, media_time)
    pub edits: Vec<(u32, i32)>,
    pub samples_per_chunk: u32,
    /// Write `dinf/dref` with a `url ` entry; `Some(false)` marks the data as living in another file.
    pub self_contained: Option<bool>,
    /// Add a second, different sample description and point `stsc` at it (as a spliced file would).
    pub second_description: bool,
}

pub const MOVIE_TIMESCALE: u32 = 1000;

/// A sparse in-memory file: mapped regions, zeros elsewhere, any length.
pub struct Sparse {
    pub regions: Vec<(u64, Bytes)>,
    pub len: u64,
}

impl ReadAt for Sparse {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        if end > self.len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        buf.fill(0);
        for (start, bytes) in &self.regions {
            let r_end = start + bytes.len() as u64;
            let lo = offset.max(*start);
            let hi = end.min(r_end);
            if lo < hi {
                let dst = &mut buf[(lo - offset) as usize..(hi - offset) as usize];
                dst.copy_from_slice(&bytes[(lo - start) as usize..(hi - start) as usize]);
            }
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl VideoTrack {
    pub fn new(track_id: u32, samples: Vec<Sample>) -> Self {
        VideoTrack {
            track_id,
            timescale: 90_000,
            samples,
            write_stss: true,
            write_ctts: false,
            edits: Vec::new(),
            samples_per_chunk: 3,
            self_contained: None,
            second_description: false,
        }
    }

    fn trak(&self, data_offset: u64, use_co64: bool) -> Vec<u8> {
        let mut tkhd = vec![0u8; 8];
        tkhd.extend(be32(self.track_id));
        tkhd.extend([0u8; 68]);
        let total: u64 = self.samples.iter().map(|s| u64::from(s.duration)).sum();
        let mut mdhd = vec![0u8; 8];
        mdhd.extend(be32(self.timescale));
        mdhd.extend(be32(total as u32));
        mdhd.extend([0u8; 4]);
        let mut hdlr = vec![0u8; 4];
        hdlr.extend(b"vide");
        hdlr.extend([0u8; 13]);

        let mut stsd = be32(1 + u32::from(self.second_description)).to_vec();
        stsd.extend(avc1_entry(320, 240));
        if self.second_description {
            stsd.extend(avc1_entry(640, 480));
        }
        let mut stts = be32(self.samples.len() as u32).to_vec();
        for s in &self.samples {
            stts.extend(be32(1));
            stts.extend(be32(s.duration));
        }
        let mut stsz = be32(0).to_vec();
        stsz.extend(be32(self.samples.len() as u32));
        for s in &self.samples {
            stsz.extend(be32(s.data.len() as u32));
        }
        let n_chunks = self.samples.len().div_ceil(self.samples_per_chunk as usize);
        let mut stsc = be32(1).to_vec();
        stsc.extend(be32(1));
        stsc.extend(be32(self.samples_per_chunk));
        stsc.extend(be32(1 + u32::from(self.second_description)));
        let mut offsets = Vec::new();
        let mut off = data_offset;
        for chunk in self.samples.chunks(self.samples_per_chunk as usize) {
            offsets.push(off);
            off += chunk.iter().map(|s| s.data.len() as u64).sum::<u64>();
        }
        assert_eq!(offsets.len(), n_chunks);
        let mut co = be32(n_chunks as u32).to_vec();
        for o in &offsets {
            if use_co64 {
                co.extend(o.to_be_bytes());
            } else {
                co.extend(be32(*o as u32));
            }
        }
        let mut stbl = full(b"stsd", 0, 0, &stsd);
        stbl.extend(full(b"stts", 0, 0, &stts));
        if self.write_ctts {
            let mut ctts = be32(self.samples.len() as u32).to_vec();
            for s in &self.samples {
                ctts.extend(be32(1));
                ctts.extend(s.composition_offset.to_be_bytes());
            }
            stbl.extend(full(b"ctts", 1, 0, &ctts));
        }
        if self.write_stss {
            let sync: Vec<u32> = self
                .samples
                .iter()
                .enumerate()
                .filter(|(_, s)| s.sync)
                .map(|(i, _)| i as u32 + 1)
                .collect();
            let mut stss = be32(sync.len() as u32).to_vec();
            for n in sync {
                stss.extend(be32(n));
            }
            stbl.extend(full(b"stss", 0, 0, &stss));
        }
        stbl.extend(full(b"stsc", 0, 0, &stsc));
        stbl.extend(full(b"stsz", 0, 0, &stsz));
        stbl.extend(full(if use_co64 { b"co64" } else { b"stco" }, 0, 0, &co));

        let mut minf_body = Vec::new();
        if let Some(self_contained) = self.self_contained {
            let url = full(
                b"url ",
                0,
                u32::from(self_contained),
                if self_contained { b"" } else { b"other.mov\0" },
            );
            let mut dref = be32(1).to_vec();
            dref.extend(url);
            minf_body.extend(bx(b"dinf", &full(b"dref", 0, 0, &dref)));
        }
        minf_body.extend(bx(b"stbl", &stbl));
        let minf = bx(b"minf", &minf_body);
        let mut mdia = full(b"mdhd", 0, 0, &mdhd);
        mdia.extend(full(b"hdlr", 0, 0, &hdlr));
        mdia.extend(minf);
        let mut trak = full(b"tkhd", 0, 3, &tkhd);
        if !self.edits.is_empty() {
            let mut elst = be32(self.edits.len() as u32).to_vec();
            for (dur, media_time) in &self.edits {
                elst.extend(be32(*dur));
                elst.extend(media_time.to_be_bytes());
                elst.extend([0, 1, 0, 0]);
            }
            trak.extend(bx(b"edts", &full(b"elst", 0, 0, &elst)));
        }
        trak.extend(bx(b"mdia", &mdia));
        bx(b"trak", &trak)
    }

    pub fn sample_bytes(&self) -> Vec<u8> {
        self.samples
            .iter()
            .flat_map(|s| s.data.iter().copied())
            .collect()
    }
}

pub fn moov(tracks: &[(&VideoTrack, u64)], use_co64: bool, duration_ms: u32) -> Vec<u8> {
    let mut mvhd = vec![0u8; 8];
    mvhd.extend(be32(MOVIE_TIMESCALE));
    mvhd.extend(be32(duration_ms));
    mvhd.extend([0u8; 80]);
    let mut body = full(b"mvhd", 0, 0, &mvhd);
    for (t, data_offset) in tracks {
        body.extend(t.trak(*data_offset, use_co64));
    }
    bx(b"moov", &body)
}

/// ftyp, moov, mdat with the track's samples right after the mdat header: a small ordinary file.
pub fn simple_file(track: &VideoTrack) -> Bytes {
    let ftyp = bx(b"ftyp", b"isom\0\0\x02\0isomavc1");
    // moov size does not depend on offsets (stco entries are fixed width), so build it twice.
    let probe = moov(&[(track, 0)], false, 0);
    let data_offset = (ftyp.len() + probe.len() + 8) as u64;
    let duration_ms = (track
        .samples
        .iter()
        .map(|s| u64::from(s.duration))
        .sum::<u64>()
        * 1000
        / u64::from(track.timescale)) as u32;
    let moov = moov(&[(track, data_offset)], false, duration_ms);
    let mut file = ftyp;
    file.extend(moov);
    file.extend(bx(b"mdat", &track.sample_bytes()));
    Bytes::from(file)
}
