//! Helpers shared by the integration tests: ffprobe queries and RTP depacketizing for comparisons.
#![allow(dead_code)]

pub mod builder;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serval_stream_media::{Movie, PacketOptions, RtpPacketOut};

/// One demuxed packet as ffprobe reports it, in the stream's time base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePacket {
    pub pts: i64,
    pub dts: i64,
    pub size: u32,
    pub key: bool,
}

pub fn ffprobe(args: &[&str], path: &Path) -> String {
    let out = Command::new("ffprobe")
        .args(["-v", "error"])
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("ffprobe not found ({e}): install Debian package ffmpeg"));
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Packets of stream `sel` (e.g. "v:0") in file order (decode order).
pub fn probe_packets(path: &Path, sel: &str) -> Vec<ProbePacket> {
    let text = ffprobe(
        &[
            "-select_streams",
            sel,
            "-show_entries",
            "packet=pts,dts,size,flags",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            ProbePacket {
                pts: f[0].parse().unwrap(),
                dts: f[1].parse().unwrap(),
                size: f[2].parse().unwrap(),
                key: f[3].starts_with('K'),
            }
        })
        .collect()
}

/// (numerator, denominator) of stream `sel`'s time base.
pub fn probe_time_base(path: &Path, sel: &str) -> (i64, i64) {
    let text = ffprobe(
        &[
            "-select_streams",
            sel,
            "-show_entries",
            "stream=time_base",
            "-of",
            "csv=p=0",
        ],
        path,
    );
    let (n, d) = text.trim().split_once('/').unwrap();
    (n.parse().unwrap(), d.parse().unwrap())
}

/// Stream fields by name, e.g. `probe_stream(path, "a:0", "nb_frames,duration")`.
pub fn probe_stream(path: &Path, sel: &str, fields: &str) -> Vec<String> {
    let text = ffprobe(
        &[
            "-select_streams",
            sel,
            "-show_entries",
            &format!("stream={fields}"),
            "-of",
            "csv=p=0",
        ],
        path,
    );
    text.trim().split(',').map(str::to_string).collect()
}

pub fn drain(
    movie: &Movie,
    track_id: u32,
    start: Duration,
    options: PacketOptions,
) -> Vec<RtpPacketOut> {
    let mut source = movie.packets_with(track_id, start, options).unwrap();
    let mut out = Vec::new();
    while let Some(p) = source.next_packet().unwrap() {
        out.push(p);
        assert!(out.len() < 1_000_000, "runaway packet source");
    }
    out
}

/// Rebuild H.264 NAL units from RTP payloads (single NAL and FU-A only), checking S/E bits as we go.
pub fn depacketize_h264(packets: &[RtpPacketOut]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for p in packets {
        let b = &p.payload;
        match b[0] & 0x1F {
            28 => {
                let (ind, hdr) = (b[0], b[1]);
                if hdr & 0x80 != 0 {
                    assert!(partial.is_none(), "FU-A start inside another FU-A");
                    partial = Some(vec![(ind & 0xE0) | (hdr & 0x1F)]);
                }
                let nal = partial.as_mut().expect("FU-A continuation without start");
                nal.extend_from_slice(&b[2..]);
                if hdr & 0x40 != 0 {
                    nals.push(partial.take().unwrap());
                }
            }
            24..=27 | 29..=31 => panic!("unexpected aggregation/other packet type {}", b[0] & 0x1F),
            _ => {
                assert!(partial.is_none(), "single NAL inside FU-A");
                nals.push(b.to_vec());
            }
        }
    }
    assert!(partial.is_none(), "unterminated FU-A");
    nals
}

/// Rebuild H.265 NAL units from single-NAL and FU payloads.
pub fn depacketize_h265(packets: &[RtpPacketOut]) -> Vec<Vec<u8>> {
    let mut nals = Vec::new();
    let mut partial: Option<Vec<u8>> = None;
    for p in packets {
        let b = &p.payload;
        let t = (b[0] >> 1) & 0x3F;
        if t == 49 {
            let fu = b[2];
            if fu & 0x80 != 0 {
                partial = Some(vec![(b[0] & 0x81) | ((fu & 0x3F) << 1), b[1]]);
            }
            partial
                .as_mut()
                .expect("FU without start")
                .extend_from_slice(&b[3..]);
            if fu & 0x40 != 0 {
                nals.push(partial.take().unwrap());
            }
        } else {
            assert!(t != 48 && t != 50, "unexpected packet type {t}");
            nals.push(b.to_vec());
        }
    }
    nals
}

/// Split an Annex B byte stream into NAL units.
pub fn split_annexb(data: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(data.len(), |&n| n - 3);
        // A 4-byte start code leaves a zero before the next 00 00 01.
        while end > s && data[end - 1] == 0 && starts.get(k + 1).is_some() {
            end -= 1;
        }
        nals.push(data[s..end].to_vec());
    }
    nals
}

/// The elementary stream ffmpeg extracts (`-c copy` with the Annex B bitstream filter).
pub fn ffmpeg_annexb(path: &Path, bsf: &str, format: &str) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(path)
        .args([
            "-map", "0:v:0", "-c", "copy", "-bsf:v", bsf, "-f", format, "-",
        ])
        .output()
        .unwrap_or_else(|e| panic!("ffmpeg not found ({e}): install Debian package ffmpeg"));
    assert!(
        out.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
