//! A throwaway PostgreSQL server for tests: `initdb` in a temporary folder, `postgres` on a
//! free loopback port, stopped and deleted on drop. Uses Debian's `postgresql` package (no
//! Docker). PostgreSQL refuses to run as root, so under root the server runs as the
//! package's `postgres` user. Fails naming the package when the binaries are missing.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{PgSettings, PgStore};

pub struct TestPostgres {
    pub port: u16,
    child: Child,
    bin: PathBuf,
    identity: Option<(u32, u32)>,
    _dir: tempfile::TempDir,
}

/// Where `initdb` and `postgres` live: `SERVAL_PG_BINDIR`, then `pg_config --bindir`, then the
/// newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SERVAL_PG_BINDIR") {
        return dir.into();
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("postgres").is_file())
        .collect();
    candidates.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(newest) = candidates.pop() {
        return newest;
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("postgres").is_file() {
            return dir;
        }
    }
    panic!(
        "PostgreSQL server binaries are required for the PostgreSQL store tests: \
         apt-get install postgresql (or set SERVAL_PG_BINDIR)"
    )
}

/// The uid/gid to run the server as: ours, or the `postgres` user's when we are root.
fn server_identity() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: a valid C string; the returned record is read at once, before any other call.
    let record = unsafe { libc::getpwnam(name.as_ptr()) };
    if record.is_null() {
        panic!("running as root, PostgreSQL needs its `postgres` user: apt-get install postgresql");
    }
    // SAFETY: non-null record from getpwnam.
    Some(unsafe { ((*record).pw_uid, (*record).pw_gid) })
}

fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a valid C string path.
    unsafe { libc::chown(c.as_ptr(), uid, gid) };
    if path.is_dir() {
        for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
            chown_tree(&entry.path(), uid, gid);
        }
    }
}

fn as_server_user(command: &mut Command, identity: Option<(u32, u32)>) -> &mut Command {
    if let Some((uid, gid)) = identity {
        command.uid(uid).gid(gid);
    }
    command
}

fn spawn_server(bin: &Path, dir: &Path, port: u16, identity: Option<(u32, u32)>) -> Child {
    as_server_user(
        Command::new(bin.join("postgres"))
            .arg("-D")
            .arg(dir.join("data"))
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
        identity,
    )
    .spawn()
    .expect("start postgres")
}

impl TestPostgres {
    /// Stops the server (fast shutdown: clients are cut off, as in a restart under load).
    pub fn stop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: signalling our own child. SIGINT is postgres's fast shutdown.
        unsafe { libc::kill(pid, libc::SIGINT) };
        let _ = self.child.wait();
    }

    /// Starts the stopped server again on the same port and data, and waits until it answers.
    pub fn start_again(&mut self) {
        self.child = spawn_server(&self.bin, self._dir.path(), self.port, self.identity);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .status();
            if ready.is_ok_and(|s| s.success()) {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not come back");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Starts a fresh server with a `serval` superuser (trust auth on loopback) and an empty
    /// `serval` database.
    pub fn start() -> TestPostgres {
        let bin = bin_dir();
        let identity = server_identity();
        let dir = tempfile::Builder::new()
            .prefix("serval-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        if let Some((uid, gid)) = identity {
            chown_tree(dir.path(), uid, gid);
        }
        let initdb = as_server_user(
            Command::new(bin.join("initdb"))
                .args([
                    "-U",
                    "serval",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data)
                .stdout(Stdio::null()),
            identity,
        )
        .output()
        .expect("run initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = spawn_server(&bin, dir.path(), port, identity);
        let server = TestPostgres {
            port,
            child,
            bin: bin.clone(),
            identity,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let created = Command::new(bin.join("createdb"))
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                    "-U",
                    "serval",
                    "serval",
                ])
                .stderr(Stdio::null())
                .status();
            if created.is_ok_and(|s| s.success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    pub fn url(&self) -> String {
        format!("postgres://serval@127.0.0.1:{}/serval", self.port)
    }

    pub fn settings(&self) -> PgSettings {
        PgSettings {
            url: self.url(),
            password: None,
            pool_size: 8,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// A store on this server, migrated.
    pub fn store(&self) -> PgStore {
        PgStore::connect(&self.settings()).expect("connect to the test PostgreSQL")
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        // SAFETY: signalling our own child. SIGQUIT is postgres's immediate shutdown.
        unsafe { libc::kill(pid, libc::SIGQUIT) };
        let _ = self.child.wait();
    }
}
