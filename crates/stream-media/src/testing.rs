//! Test fixtures generated at test time by Debian's `ffmpeg` (lavfi test sources), shared by this crate's
//! tests and the RTSP server's tests. Files land in `target/fixtures/<name>-<hash of args>.<ext>` and are
//! never committed. Enabled by the cargo feature `testing`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A standard fixture: a file name (its extension picks the container) and the ffmpeg arguments that make it
/// (inputs and codecs; output flags `-y` and the path are added by [`fixture`]).
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

impl Fixture {
    /// Generate the file if needed and return its path. Panics when ffmpeg is missing or fails.
    pub fn path(&self) -> PathBuf {
        fixture(self.name, self.args)
    }
}

/// H.264 (with B-frames, so `ctts` and an edit list) 320x240 25 fps + AAC stereo 44.1 kHz, 6 s, moov at end.
#[rustfmt::skip]
pub const H264_AAC: Fixture = Fixture {
    name: "h264_aac.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k",
    ],
};

/// Same as [`H264_AAC`] with `-movflags +faststart` (moov before mdat).
#[rustfmt::skip]
pub const H264_AAC_FASTSTART: Fixture = Fixture {
    name: "h264_aac_faststart.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k", "-movflags", "+faststart",
    ],
};

/// Same as [`H264_AAC`] with RTP hint tracks (`-movflags +rtphint`), as Darwin Streaming Server wanted.
#[rustfmt::skip]
pub const H264_AAC_HINTED: Fixture = Fixture {
    name: "h264_aac_hinted.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "2", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k", "-movflags", "+rtphint",
    ],
};

/// H.265 (libx265) 320x240 25 fps + AAC stereo, 5 s.
#[rustfmt::skip]
pub const H265_AAC: Fixture = Fixture {
    name: "h265_aac.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=5", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=48000:duration=5", "-c:v", "libx265",
        "-preset", "veryfast", "-x265-params", "log-level=error:keyint=50", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2",
    ],
};

/// MPEG-4 Part 2 video + AAC 5.1 (6 channels) 48 kHz, 5 s.
#[rustfmt::skip]
pub const MPEG4_AAC51: Fixture = Fixture {
    name: "mpeg4_aac51.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=5", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=48000:duration=5", "-c:v", "mpeg4", "-g", "25",
        "-c:a", "aac", "-ac", "6",
    ],
};

/// H.264 + MP3 (libmp3lame) in a QuickTime MOV, 5 s.
#[rustfmt::skip]
pub const H264_MP3_MOV: Fixture = Fixture {
    name: "h264_mp3.mov",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=5", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=5", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame",
        "-ac", "2", "-b:a", "128k",
    ],
};

/// Opus (libopus) stereo 48 kHz alone in MP4, 5 s.
#[rustfmt::skip]
pub const OPUS_MP4: Fixture = Fixture {
    name: "opus.mp4",
    args: &[
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=5", "-c:a", "libopus",
        "-ac", "2", "-b:a", "64k",
    ],
};

/// Fragmented MP4 as recorders and `ffmpeg -movflags frag_keyframe+empty_moov` write it: an empty
/// `moov` with `mvex`, then one `moof`+`mdat` per GOP (1 s here), H.264 + AAC, 6 s.
#[rustfmt::skip]
pub const FRAGMENTED: Fixture = Fixture {
    name: "fragmented.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "2", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k", "-movflags", "frag_keyframe+empty_moov",
    ],
};

/// Fragmented MP4 in the DASH/CMAF style (`default_base_moof`: offsets relative to each `moof`,
/// with `tfdt` decode times), H.264 + AAC, 6 s.
#[rustfmt::skip]
pub const FRAGMENTED_MOOF_BASE: Fixture = Fixture {
    name: "fragmented_moof_base.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-bf", "0", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k", "-movflags", "frag_keyframe+empty_moov+default_base_moof",
        "-frag_duration", "500000",
    ],
};

/// H.264 with two AAC tracks (English at 440 Hz, French at 880 Hz), 6 s: a second language.
#[rustfmt::skip]
pub const TWO_AUDIO_TRACKS: Fixture = Fixture {
    name: "two_audio.mp4",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=880:sample_rate=48000:duration=6",
        "-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:v", "libx264", "-preset", "veryfast",
        "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2", "-b:a", "96k",
        "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra",
    ],
};

/// A hinted QuickTime `.mov` (`-movflags +rtphint`) with H.264 and AAC, 6 s: its AAC hint SDP
/// leaves out `streamtype`, which the server fills in.
#[rustfmt::skip]
pub const HINTED_MOV: Fixture = Fixture {
    name: "hinted.mov",
    args: &[
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=6", "-f", "lavfi",
        "-i", "sine=frequency=440:sample_rate=44100:duration=6", "-c:v", "libx264",
        "-preset", "veryfast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac", "-ac", "2",
        "-b:a", "96k", "-movflags", "+rtphint",
    ],
};

/// Motion-JPEG video in a QuickTime `.mov`, 2 s: a file with no track RTP can carry here, which the
/// server refuses with 415 and the admin page flags.
#[rustfmt::skip]
pub const MJPEG_MOV: Fixture = Fixture {
    name: "mjpeg.mov",
    args: &["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=2", "-c:v", "mjpeg"],
};

/// Every standard fixture, for tests that loop over all of them.
pub const ALL: &[Fixture] = &[
    H264_AAC,
    H264_AAC_FASTSTART,
    H264_AAC_HINTED,
    H265_AAC,
    MPEG4_AAC51,
    H264_MP3_MOV,
    OPUS_MP4,
    FRAGMENTED,
    FRAGMENTED_MOOF_BASE,
    TWO_AUDIO_TRACKS,
    HINTED_MOV,
];

/// Make (once) the file `name` from ffmpeg `args` and return its path under `target/fixtures/`.
///
/// Panics with "ffmpeg not found: install Debian package ffmpeg" when ffmpeg is missing, or with ffmpeg's
/// stderr when it fails. Safe under parallel tests: ffmpeg writes a unique temporary name that is renamed.
pub fn fixture(name: &str, args: &[&str]) -> PathBuf {
    let dir = fixtures_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create fixture directory {}: {e}", dir.display());
    }
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "mp4"));
    let key = args_hash(name, args);
    let path = dir.join(format!("{stem}-{key:016x}.{ext}"));
    if path.exists() {
        return path;
    }
    let tmp = dir.join(format!(
        "{stem}-{key:016x}.tmp{}-{}.{ext}",
        std::process::id(),
        next_temp_number()
    ));
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .arg(&tmp)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("ffmpeg not found: install Debian package ffmpeg")
        }
        Err(e) => panic!("cannot run ffmpeg: {e}"),
    };
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        panic!(
            "ffmpeg failed making {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    if let Err(e) = std::fs::rename(&tmp, &path) {
        panic!(
            "cannot rename fixture {} to {}: {e}",
            tmp.display(),
            path.display()
        );
    }
    path
}

/// `target/fixtures`, honouring `CARGO_TARGET_DIR`.
pub fn fixtures_dir() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
    };
    target.join("fixtures")
}

/// Ask ffprobe for one stream's field, e.g. `ffprobe_stream(path, "v:0", "nb_frames")`.
/// Panics naming the package when ffprobe is missing.
pub fn ffprobe_stream(path: &Path, stream: &str, field: &str) -> String {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream, "-show_entries"])
        .arg(format!("stream={field}"))
        .args(["-of", "default=noprint_wrappers=1:nokey=1"])
        .arg(path)
        .output();
    match output {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => panic!(
            "ffprobe failed on {}: {}",
            path.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("ffprobe not found: install Debian package ffmpeg")
        }
        Err(e) => panic!("cannot run ffprobe: {e}"),
    }
}

// FNV-1a by hand: a cache key needs no cryptographic hash, and std's `DefaultHasher` may change between
// Rust releases (which would only cost a regeneration, but this is shorter than pulling in a crate).
fn args_hash(name: &str, args: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in std::iter::once(name).chain(args.iter().copied()) {
        for byte in part.bytes().chain(std::iter::once(0u8)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn next_temp_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}
