//! Servers under test, started on loopback with free ports and stopped on drop: Serval (the
//! `serval serve` binary with a temporary config) and gst-rtsp-server (the Python launcher in
//! `peers/gst_rtsp_server.py`, embedded in this crate so an installed `serval` can run it).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::args::PeerKind;
use crate::procfs;
use crate::step::Target;

/// The launcher, written next to the temporary files of each run.
const GST_LAUNCHER: &str = include_str!("../peers/gst_rtsp_server.py");
/// Debian's interpreter, which is the one with `python3-gi`; a pyenv or venv `python3` first on
/// PATH usually lacks it.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";
/// Name of the movie inside the server's folder and in the URL.
pub const MOVIE_NAME: &str = "bench.mp4";
/// Time a server may take to print its ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines kept to explain a failure.
const LOG_TAIL_LINES: usize = 40;
/// Serval's RTP port range for the run: a firewall range, not a session limit (sessions share it).
const RTP_RANGE_PORTS: u16 = 30;

/// Why a peer could not be started.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{program} not found ({hint})")]
    Missing { program: String, hint: String },
    #[error("cannot prepare {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{peer} did not become ready: {reason}; last log lines:\n{log}")]
    NotReady {
        peer: &'static str,
        reason: String,
        log: String,
    },
}

/// A started server; killed (SIGTERM, then SIGKILL) on drop.
pub struct RunningPeer {
    pub kind: PeerKind,
    pub target: Target,
    child: Child,
    log: Arc<Mutex<VecDeque<String>>>,
    _dir: tempfile::TempDir,
}

impl RunningPeer {
    /// How the server exited, if it has.
    pub fn exited(&mut self) -> Option<String> {
        self.child
            .try_wait()
            .ok()
            .flatten()
            .map(|status| status.to_string())
    }

    /// The last lines the server printed.
    pub fn log_tail(&self) -> String {
        self.log
            .lock()
            .map(|l| l.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signalling a child we spawned and have not reaped.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `serval serve` serving `movie`.
pub fn start_serval(
    serval_bin: &Path,
    movie: &Path,
    log_file: Option<&Path>,
) -> Result<RunningPeer, PeerError> {
    // Absolute, because the server runs in its temporary folder and a relative program path
    // would be looked up from there.
    let serval_bin = &std::path::absolute(serval_bin).map_err(io("serval path"))?;
    if !serval_bin.is_file() {
        return Err(PeerError::Missing {
            program: serval_bin.display().to_string(),
            hint: "build it with `cargo build --release -p serval` or pass --serval-bin".into(),
        });
    }
    let dir = temp_dir()?;
    let media_dir = dir.path().join("media");
    std::fs::create_dir_all(&media_dir).map_err(io("media folder"))?;
    place_movie(movie, &media_dir.join(MOVIE_NAME))?;
    let port = free_tcp_port()?;
    let rtp_first = free_udp_range(RTP_RANGE_PORTS)?;
    // Serval runs on its shipped limits (max_bandwidth, per-address caps): 1,000 sessions from
    // one address must work on the defaults, so the benchmark measures what a user gets.
    let config = format!(
        "data_dir = {data:?}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n[calendar]\nenabled = false\n\n[web]\nenabled = false\n\n[mail]\nenabled = false\n\n\
         [stream]\nlisten = \"127.0.0.1:{port}\"\nmedia_dir = {media:?}\nrtp_ports = \"{rtp_first}-{rtp_last}\"\n",
        data = dir.path().join("data").display().to_string(),
        media = media_dir.display().to_string(),
        rtp_last = rtp_first + RTP_RANGE_PORTS - 1,
    );
    let config_path = dir.path().join("serval.toml");
    std::fs::write(&config_path, config).map_err(io("serval.toml"))?;
    let mut command = Command::new(serval_bin);
    command
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    spawn_until_ready(
        PeerKind::Serval,
        command,
        "serval ready",
        server,
        dir,
        log_file,
    )
}

/// Starts gst-rtsp-server serving `movie`.
pub fn start_gst(movie: &Path, log_file: Option<&Path>) -> Result<RunningPeer, PeerError> {
    let python = if Path::new(SYSTEM_PYTHON).is_file() {
        SYSTEM_PYTHON
    } else {
        "python3"
    };
    let probe = Command::new(python)
        .args(["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"])
        .output();
    match probe {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(PeerError::Missing {
                program: "gst-rtsp-server for Python".into(),
                hint: format!(
                    "install Debian packages gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-good gstreamer1.0-plugins-bad; {}",
                    String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
                ),
            })
        }
        Err(e) => {
            return Err(PeerError::Missing {
                program: python.into(),
                hint: format!("install Debian package python3-gi: {e}"),
            })
        }
    }
    let dir = temp_dir()?;
    let launcher = dir.path().join("gst_rtsp_server.py");
    std::fs::write(&launcher, GST_LAUNCHER).map_err(io("gst launcher"))?;
    let movie = std::path::absolute(movie).map_err(io("movie path"))?;
    let port = free_tcp_port()?;
    let mut command = Command::new(python);
    command
        .arg(&launcher)
        .arg("--file")
        .arg(&movie)
        .arg("--port")
        .arg(port.to_string())
        .arg("--mount")
        .arg(format!("/{MOVIE_NAME}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let server = SocketAddr::from(([127, 0, 0, 1], port));
    spawn_until_ready(
        PeerKind::Gst,
        command,
        "gst-rtsp-server ready",
        server,
        dir,
        log_file,
    )
}

fn spawn_until_ready(
    kind: PeerKind,
    mut command: Command,
    ready_line: &'static str,
    server: SocketAddr,
    dir: tempfile::TempDir,
    log_file: Option<&Path>,
) -> Result<RunningPeer, PeerError> {
    let log_file = match log_file {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::File::create(path).map_err(io(&path.display().to_string()))?,
        ))),
        None => None,
    };
    let mut child = command.spawn().map_err(|e| PeerError::Missing {
        program: format!("{:?}", command.get_program()),
        hint: e.to_string(),
    })?;
    let log = Arc::new(Mutex::new(VecDeque::new()));
    let (lines_tx, lines_rx) = mpsc::channel();
    if let Some(stdout) = child.stdout.take() {
        forward_lines(stdout, log.clone(), log_file.clone(), lines_tx.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        forward_lines(stderr, log.clone(), log_file, lines_tx);
    }
    let mut peer = RunningPeer {
        kind,
        target: Target {
            peer: kind.as_str().to_string(),
            url: format!("rtsp://{server}/{MOVIE_NAME}"),
            server,
            pid: Some(child.id()),
            idle_rss: None,
        },
        child,
        log,
        _dir: dir,
    };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        match lines_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains(ready_line) => break,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: the process is gone; let try_wait below report it.
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        if let Ok(Some(status)) = peer.child.try_wait() {
            return Err(PeerError::NotReady {
                peer: kind.as_str(),
                reason: format!("exited with {status}"),
                log: peer.log_tail(),
            });
        }
        if Instant::now() > deadline {
            return Err(PeerError::NotReady {
                peer: kind.as_str(),
                reason: format!("no \"{ready_line}\" line within {READY_TIMEOUT:?}"),
                log: peer.log_tail(),
            });
        }
    }
    // Let start-up allocations settle before taking the idle footprint.
    std::thread::sleep(Duration::from_millis(500));
    peer.target.idle_rss = peer.target.pid.and_then(procfs::rss_bytes);
    Ok(peer)
}

/// Keeps reading so the server never blocks on a full pipe; keeps the tail for error reports
/// and, when asked, the whole log in a file.
fn forward_lines(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    file: Option<Arc<Mutex<std::fs::File>>>,
    lines: mpsc::Sender<String>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if let Some(file) = &file {
                if let Ok(mut file) = file.lock() {
                    let _ = writeln!(file, "{line}");
                }
            }
            if let Ok(mut tail) = log.lock() {
                if tail.len() == LOG_TAIL_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.clone());
            }
            let _ = lines.send(line);
        }
    });
}

fn temp_dir() -> Result<tempfile::TempDir, PeerError> {
    tempfile::Builder::new()
        .prefix("serval-bench-")
        .tempdir()
        .map_err(io("temporary folder"))
}

/// A hard link when the movie is on the same file system (instant, no copy), else a copy.
/// Not a symlink: Serval refuses links that leave its movies folder.
fn place_movie(movie: &Path, target: &Path) -> Result<(), PeerError> {
    if std::fs::hard_link(movie, target).is_ok() {
        return Ok(());
    }
    std::fs::copy(movie, target)
        .map(|_| ())
        .map_err(io(&format!("copy of {}", movie.display())))
}

fn free_tcp_port() -> Result<u16, PeerError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("a free TCP port"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(io("a free TCP port"))
}

/// First port of `len` consecutive free UDP ports starting on an even number.
fn free_udp_range(len: u16) -> Result<u16, PeerError> {
    const FIRST: u16 = 30_000;
    const LAST: u16 = 60_000;
    let start = FIRST + 2 * u16::try_from(std::process::id() % 10_000).unwrap_or(0);
    let mut base = start;
    for _ in 0..200 {
        let sockets: Vec<UdpSocket> = (base..base + len)
            .map_while(|p| UdpSocket::bind(("0.0.0.0", p)).ok())
            .collect();
        if sockets.len() == usize::from(len) {
            return Ok(base);
        }
        base = if base + 2 * len > LAST {
            FIRST
        } else {
            base + 2 * len
        };
    }
    Err(PeerError::Io {
        what: "a free UDP port range".into(),
        source: std::io::Error::new(std::io::ErrorKind::AddrInUse, "no free range found"),
    })
}

fn io(what: &str) -> impl FnOnce(std::io::Error) -> PeerError + '_ {
    move |source| PeerError::Io {
        what: what.to_string(),
        source,
    }
}

/// The `serval` binary next to the running executable (`target/release/serval` when run from
/// `target/release/serval-stream-bench`, or the running `serval` itself).
pub fn default_serval_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.with_file_name(format!("serval{}", std::env::consts::EXE_SUFFIX))
}
