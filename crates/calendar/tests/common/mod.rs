//! Test harness: the real calendar service on 127.0.0.1 port 0 with a temporary store and
//! directory (users ann, bob, carol, dana@example.test; group staff = {bob, carol}).

#![allow(dead_code)]

pub mod client;

use serval_calendar::CalendarConfig;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::directory::{NewUser, PrincipalKind};
use serval_core::{Directory, Store};
use std::net::SocketAddr;
use std::process::Command;
use tokio_util::sync::CancellationToken;

pub const PASSWORD: &str = "correct horse";
/// A user whose name is an address, as offices with email-style logins have.
pub const EMAIL_STYLE_USER: &str = "dana@example.test";

pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTPS listener when started with [`TestServer::start_with_tls`].
    pub tls_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_inner(false, &[])
    }

    /// Listens on `ip` (port 0) instead of 127.0.0.1, so a client connecting to that address
    /// is another host to the server when `ip` is not loopback.
    pub fn start_on(ip: std::net::IpAddr) -> Self {
        Self::start_with(ip, false, &[])
    }

    /// Also has the room `boardroom` (boardroom@example.com) and the resource `projector`
    /// (projector@example.com), which log in nowhere and answer invitations themselves.
    pub fn start_with_rooms() -> Self {
        Self::start_inner(
            false,
            &[
                ("boardroom", "boardroom@example.com", PrincipalKind::Room),
                (
                    "projector",
                    "projector@example.com",
                    PrincipalKind::Resource,
                ),
            ],
        )
    }

    /// Also listens with TLS (a self-signed certificate made by core).
    pub fn start_with_tls() -> Self {
        Self::start_inner(true, &[])
    }

    fn start_inner(with_tls: bool, resources: &[(&str, &str, PrincipalKind)]) -> Self {
        Self::start_with(std::net::Ipv4Addr::LOCALHOST.into(), with_tls, resources)
    }

    fn start_with(
        ip: std::net::IpAddr,
        with_tls: bool,
        resources: &[(&str, &str, PrincipalKind)],
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("serval.db")).expect("store");
        let directory = Directory::new(store.clone(), &DirectoryConfig::default());
        for (name, email) in [
            ("ann", "ann@example.com"),
            ("bob", "bob@example.com"),
            ("carol", "carol@example.com"),
            (EMAIL_STYLE_USER, EMAIL_STYLE_USER),
        ] {
            directory
                .add_user(&NewUser {
                    name,
                    password: Some(PASSWORD),
                    full_name: name,
                    email,
                    kind: None,
                })
                .expect("add user");
        }
        for (name, email, kind) in resources {
            directory
                .add_user(&NewUser {
                    name,
                    password: None,
                    full_name: name,
                    email,
                    kind: Some(*kind),
                })
                .expect("add room");
        }
        directory.add_group("staff").expect("group");
        directory.add_member("staff", "bob").expect("member");
        directory.add_member("staff", "carol").expect("member");
        let shutdown = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let data_dir = dir.path().to_path_buf();
        let token = shutdown.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let mut registry = prometheus_client::registry::Registry::default();
                let tls = if with_tls {
                    let tls_config = serval_core::config::TlsConfig {
                        cert: None,
                        key: None,
                        self_signed: true,
                    };
                    serval_core::tls::server_config(&tls_config, &data_dir)
                        .expect("self-signed TLS")
                } else {
                    None
                };
                let ctx = serval_core::service::StartContext {
                    data_dir,
                    engine: serval_core::store::Engine::Sqlite(store),
                    directory,
                    metrics: &mut registry,
                    tls,
                    tls_not_after: None,
                    shutdown: token.clone(),
                };
                let tls_listen = if with_tls {
                    vec!["127.0.0.1:0".parse().unwrap()]
                } else {
                    Vec::new()
                };
                let config = CalendarConfig {
                    listen: Listen(vec![SocketAddr::new(ip, 0)]),
                    tls_listen: Listen(tls_listen),
                    ..CalendarConfig::default()
                };
                let running = serval_calendar::bind(ctx, config).await.expect("bind");
                let addrs = running.listen_addrs();
                tx.send((addrs[0], addrs.get(1).copied()))
                    .expect("send addr");
                token.cancelled().await;
                running.wait().await;
            });
        });
        let (addr, tls_addr) = rx.recv().expect("server address");
        Self {
            addr,
            tls_addr,
            shutdown,
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// The service's data directory (holds `serval.db`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// This host's address on its default route (not loopback): connections to it from this host
/// come from a non-loopback address. Panics, naming the need, on a host with only `lo`.
pub fn lan_address() -> std::net::IpAddr {
    // Connecting a UDP socket only picks a route and source address; nothing is sent.
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("UDP socket");
    let local = socket
        .connect("198.51.100.1:9")
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip());
    match local {
        Ok(ip) if !ip.is_loopback() && !ip.is_unspecified() => ip,
        other => panic!(
            "this test needs a non-loopback IPv4 address with a default route (got {other:?})"
        ),
    }
}

/// Runs a Python script from tests/python with the server URL; fails naming the package
/// when python or the module is missing.
pub fn run_python(script: &str, server: &TestServer, user: &str, module: &str) -> String {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let check = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .output();
    match check {
        Ok(out) if out.status.success() => {}
        _ => panic!("python3 with the `{module}` module is required: pip install {module}"),
    }
    let output = Command::new("python3")
        .arg(&path)
        .env("CALDAV_URL", server.url("/"))
        .env("CALDAV_USER", user)
        .env("CALDAV_PASSWORD", PASSWORD)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}
