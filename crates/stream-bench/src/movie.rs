//! The benchmark movie: a 60 s, ~2 Mbit/s H.264 + AAC MP4 made once with Debian's ffmpeg and
//! cached (under `target/bench-fixtures` when running from a cargo target folder, else the
//! system temp folder), so every peer streams the same bytes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Length of the generated movie; a step's ramp plus hold must fit inside it.
pub const MOVIE_DURATION: Duration = Duration::from_secs(60);

/// ffmpeg inputs and codecs. Noise on the test pattern keeps x264 from compressing far below
/// the 2 Mbit/s target (a clean pattern would stream at a fraction of it).
const FFMPEG_ARGS: &[&str] = &[
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=640x360:rate=25:duration=60",
    "-f",
    "lavfi",
    "-i",
    "sine=frequency=440:sample_rate=48000:duration=60",
    "-vf",
    "noise=alls=25:allf=t",
    "-c:v",
    "libx264",
    "-preset",
    "veryfast",
    "-b:v",
    "1850k",
    "-maxrate",
    "2000k",
    "-bufsize",
    "2000k",
    "-g",
    "50",
    "-bf",
    "2",
    "-pix_fmt",
    "yuv420p",
    "-c:a",
    "aac",
    "-b:a",
    "128k",
    "-ac",
    "2",
    "-movflags",
    "+faststart",
];

#[derive(Debug, thiserror::Error)]
pub enum MovieError {
    #[error("ffmpeg not found: install Debian package ffmpeg, or pass --movie FILE")]
    FfmpegMissing,
    #[error("cannot create {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ffmpeg failed making the benchmark movie: {0}")]
    Ffmpeg(String),
}

/// The cached movie, generated on first use.
pub fn benchmark_movie() -> Result<PathBuf, MovieError> {
    let dir = cache_dir();
    std::fs::create_dir_all(&dir).map_err(|source| MovieError::Folder {
        path: dir.clone(),
        source,
    })?;
    let path = dir.join(format!(
        "h264_aac_2mbit_60s-{:016x}.mp4",
        args_hash(FFMPEG_ARGS)
    ));
    if path.is_file() {
        return Ok(path);
    }
    let tmp = path.with_extension(format!("tmp{}.mp4", std::process::id()));
    eprintln!(
        "generating the benchmark movie with ffmpeg (once): {}",
        path.display()
    );
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(FFMPEG_ARGS)
        .arg(&tmp)
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MovieError::FfmpegMissing)
        }
        Err(e) => return Err(MovieError::Ffmpeg(e.to_string())),
    };
    if !output.status.success() {
        let _ = std::fs::remove_file(&tmp);
        return Err(MovieError::Ffmpeg(
            String::from_utf8_lossy(&output.stderr).into_owned(),
        ));
    }
    std::fs::rename(&tmp, &path).map_err(|source| MovieError::Folder {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// `<target>/bench-fixtures` when the executable lives in `<target>/<profile>/`, else a folder
/// in the system temp dir.
fn cache_dir() -> PathBuf {
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(target).join("bench-fixtures");
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let target = exe
        .ancestors()
        .find(|p| p.file_name().is_some_and(|n| n == "target"))
        .map(Path::to_path_buf);
    match target {
        Some(t) => t.join("bench-fixtures"),
        None => std::env::temp_dir().join("serval-bench-fixtures"),
    }
}

// FNV-1a: a cache key, not a security boundary; std's hasher is not stable across releases.
fn args_hash(args: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in args
        .iter()
        .flat_map(|a| a.bytes().chain(std::iter::once(0)))
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The movie's overall bitrate in bit/s as ffprobe reports it (`format=bit_rate`), if it can.
pub fn bitrate(movie: &Path) -> Option<f64> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=bit_rate",
            "-of",
            "default=nw=1:nk=1",
        ])
        .arg(movie)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim().parse::<f64>().ok().filter(|b| *b > 0.0)
}
