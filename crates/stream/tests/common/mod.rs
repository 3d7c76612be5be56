//! A real Serval streaming service on 127.0.0.1 for interop tests, and helpers to run
//! third-party clients against it (a missing client fails the test naming its Debian package).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::service::{RunningService, StartContext};
use serval_core::{Directory, Store};
use serval_stream::config::PortRange;
use serval_stream::StreamConfig;
use tokio_util::sync::CancellationToken;

pub struct TestServer {
    pub addr: SocketAddr,
    /// The RTSPS address, when the server was started with TLS.
    pub tls_addr: Option<SocketAddr>,
    /// The user directory the server authenticates against.
    pub directory: Directory,
    pub service: Arc<dyn RunningService>,
    pub media_dir: PathBuf,
    pub data_dir: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub runtime: tokio::runtime::Runtime,
    pub registry: Registry,
}

impl TestServer {
    /// Starts a server whose media folder holds `movies` (name in the folder, source path).
    pub fn start(movies: &[(&str, &Path)]) -> TestServer {
        TestServer::start_with(movies, |_| {})
    }

    pub fn start_with(
        movies: &[(&str, &Path)],
        adjust: impl FnOnce(&mut StreamConfig),
    ) -> TestServer {
        TestServer::start_full(movies, adjust, false)
    }

    /// Like [`TestServer::start_with`]; `tls` adds an RTSPS listener on 127.0.0.1 with a
    /// self-signed certificate.
    pub fn start_full(
        movies: &[(&str, &Path)],
        adjust: impl FnOnce(&mut StreamConfig),
        tls: bool,
    ) -> TestServer {
        if let Ok(filter) = std::env::var("SERVAL_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .try_init();
        }
        let data_dir = tempfile::tempdir().expect("temp dir");
        let media_dir = data_dir.path().join("media");
        std::fs::create_dir_all(&media_dir).unwrap();
        for (name, source) in movies {
            let target = media_dir.join(name);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::copy(source, &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", source.display()));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let store = Store::open(&data_dir.path().join("serval.db")).expect("store");
        let directory = Directory::new(store.clone(), &DirectoryConfig::default());
        // Parallel tests each need a free RTP pair: pick a random even base in a high range;
        // bind() walks the 64-port range past ports in use.
        let base = 20_000 + 2 * (rand::random::<u16>() % 10_000);
        let mut config = StreamConfig {
            listen: Listen(vec!["127.0.0.1:0".parse().unwrap()]),
            rtp_ports: PortRange {
                first: base,
                last: base + 63,
            },
            ..StreamConfig::default()
        };
        if tls {
            config.tls_listen = Listen(vec!["127.0.0.1:0".parse().unwrap()]);
        }
        adjust(&mut config);
        let tls_config = tls.then(|| {
            let settings = serval_core::config::TlsConfig {
                self_signed: true,
                ..Default::default()
            };
            serval_core::tls::server_config(&settings, data_dir.path())
                .expect("self-signed TLS config")
                .expect("TLS configured")
        });
        let ctx = StartContext {
            data_dir: data_dir.path().to_path_buf(),
            engine: serval_core::store::Engine::Sqlite(store),
            directory: directory.clone(),
            metrics: &mut registry,
            tls: tls_config,
            tls_not_after: None,
            shutdown: shutdown.clone(),
        };
        let service = runtime
            .block_on(serval_stream::bind(ctx, config))
            .expect("bind stream service");
        let addr = service.listen_addrs()[0];
        let tls_addr = service.listen_addrs().get(1).copied();
        TestServer {
            addr,
            tls_addr,
            directory,
            service,
            media_dir,
            data_dir,
            shutdown,
            runtime,
            registry,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Adds a directory user with a password, in `groups` (created as needed).
    pub fn add_user(&self, name: &str, password: &str, groups: &[&str]) {
        self.directory
            .add_user(&serval_core::directory::NewUser {
                name,
                password: Some(password),
                ..Default::default()
            })
            .expect("add user");
        for group in groups {
            let _ = self.directory.add_group(group);
            self.directory.add_member(group, name).expect("add member");
        }
    }

    /// `rtsp://user:password@addr/path`.
    pub fn url_with_credentials(&self, user: &str, password: &str, path: &str) -> String {
        format!(
            "rtsp://{user}:{password}@{}/{}",
            self.addr,
            path.trim_start_matches('/')
        )
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("logs/stream-access.log"))
            .unwrap_or_default()
    }

    /// Waits (up to 5 s) until the server holds no open session, and fails the test otherwise:
    /// a client that finished or went away must not leave its session behind.
    pub fn wait_until_no_session_is_open(&self) {
        let open = self.wait_for_metric("stream_sessions_open", Duration::from_secs(5), |v| v == 0);
        assert_eq!(
            open,
            0,
            "sessions still open 5 s after the client ended:\n{}",
            self.metrics_text()
        );
    }

    /// The value of the metric line `name value`, 0 when absent.
    pub fn metric(&self, name: &str) -> i64 {
        self.metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    }

    /// Polls metric `name` until `wanted` holds or `timeout` passes; returns its last value.
    pub fn wait_for_metric(
        &self,
        name: &str,
        timeout: Duration,
        wanted: impl Fn(i64) -> bool,
    ) -> i64 {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let value = self.metric(name);
            if wanted(value) || std::time::Instant::now() >= deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn metrics_text(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).unwrap();
        text
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let wait = self.service.wait();
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), wait).await });
    }
}

/// Runs a client program with a deadline; panics naming the Debian package when it is missing.
pub fn run_client(program: &str, package: &str, args: &[&str], deadline: Duration) -> Output {
    let mut command = Command::new("timeout");
    command
        .arg("--kill-after=5")
        .arg(format!("{}", deadline.as_secs()))
        .arg(program)
        .args(args);
    // GStreamer's RTSP elements explain a failure only in their debug log (stderr, shown when
    // a test fails); rare failures under a loaded machine need it.
    if program == "gst-launch-1.0" && std::env::var_os("GST_DEBUG").is_none() {
        command.env("GST_DEBUG", "rtspsrc:4,rtspconnection:4");
    }
    match Command::new(program).arg("--version").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("{program} not found: install Debian package {package}")
        }
        _ => {}
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `ffmpeg -f framemd5` lines of one stream: (pts, hash) per frame.
pub fn framemd5(input_args: &[&str], input: &str, map: &str) -> Vec<(i64, String)> {
    let mut args: Vec<&str> = vec!["-nostdin", "-hide_banner", "-loglevel", "error"];
    args.extend_from_slice(input_args);
    args.extend_from_slice(&["-i", input, "-map", map, "-f", "framemd5", "-"]);
    let output = run_client("ffmpeg", "ffmpeg", &args, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "ffmpeg {args:?} failed: {}",
        stderr(&output)
    );
    stdout(&output)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(',').map(str::trim).collect();
            Some((fields.get(2)?.parse().ok()?, fields.get(5)?.to_string()))
        })
        .collect()
}

/// Whether a `gst-launch-1.0` run played to EOS.
///
/// GStreamer 1.22's rtspsrc races itself when gst-launch stops the pipeline at EOS over TLS: its
/// PAUSE (sent from the streaming thread on PLAYING→PAUSED) and its TEARDOWN-and-close (from the
/// state-change thread on PAUSED→READY) overlap, so one of them reads the connection its own
/// other half just closed and gst-launch exits 1 with "Could not write to resource ... Received
/// end-of-file". The server's log shows the client closing the connection after answering the
/// request it did receive. The same failure reproduces against GStreamer's own gst-rtsp-server
/// over RTSPS (1 run in 50 here; 1 in 15–25 against Serval, never over plain TCP in 40 runs
/// against either server), so it is the client's. Playback itself completed; these tests accept
/// exactly that failure after EOS and no other, and check on the server side that the session
/// was freed ([`TestServer::wait_until_no_session_is_open`]).
pub fn gst_played_to_eos(output: &Output) -> bool {
    let out = stdout(output);
    let err = stderr(output);
    if !out.contains("Got EOS from element") {
        return false;
    }
    if output.status.success() {
        return true;
    }
    let errors: Vec<&str> = out
        .lines()
        .chain(err.lines())
        .filter(|l| l.starts_with("ERROR: from element"))
        .collect();
    !errors.is_empty()
        && errors
            .iter()
            .all(|l| l.ends_with("Could not write to resource."))
        && (out.contains("Received end-of-file") || err.contains("Received end-of-file"))
}
