//! Runs the real `serval` binary in a temporary directory for integration tests.
#![allow(dead_code)]

pub mod mail;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// 127.A.B, a /24 of loopback for one test's fake Internet (nsd, MX hosts on their own
/// addresses), random so tests and runs never share one.
pub fn loopback_network() -> String {
    format!(
        "127.{}.{}",
        1 + rand::random::<u8>() % 250,
        rand::random::<u8>()
    )
}

pub fn serval_bin() -> &'static str {
    env!("CARGO_BIN_EXE_serval")
}

/// A temp folder with a serval.toml whose listeners use port 0.
pub struct TestDir {
    pub dir: tempfile::TempDir,
}

impl TestDir {
    pub fn new(extra: &str) -> TestDir {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n{}\n{}\n{}\n{extra}\n",
            calendar_off(),
            web_off(),
            mail_off(extra)
        );
        std::fs::write(dir.path().join("serval.toml"), config).unwrap();
        TestDir { dir }
    }
    pub fn config(&self) -> PathBuf {
        self.dir.path().join("serval.toml")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
    /// Runs `serval ARGS --config <this config>`, feeding `stdin`.
    pub fn run(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(serval_bin())
            .args(args)
            .arg("--config")
            .arg(self.config())
            .current_dir(self.dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
    pub fn add_user(&self, name: &str, password: &str, admin: bool) {
        let out = self.run(
            &["user", "add", name, "--password-stdin"],
            &format!("{password}\n"),
        );
        assert_eq!(out.code, Some(0), "{out:?}");
        if admin {
            let out = self.run(&["group", "add-member", "admin", name], "");
            assert_eq!(out.code, Some(0), "{out:?}");
        }
    }
    pub fn serve(&self) -> Server {
        Server::start(self.config(), self.dir.path())
    }
}

/// The calendar table, when the binary has one, disabled so tests of other parts don't bind it.
fn calendar_off() -> &'static str {
    let out = Command::new(serval_bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout).contains("[calendar]") {
        "[calendar]\nenabled = false"
    } else {
        ""
    }
}

/// The mail table disabled unless the test brings its own, so tests of other parts don't
/// bind ports 2525 and 5587.
fn mail_off(extra: &str) -> &'static str {
    if extra.contains("[mail]") {
        ""
    } else {
        "[mail]\nenabled = false"
    }
}

/// The web table disabled, so tests of other parts don't bind its port 8080.
fn web_off() -> &'static str {
    "[web]\nenabled = false"
}

#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A running `serval serve`; killed on drop.
pub struct Server {
    pub child: Child,
    pub admin_url: String,
    pub lines: mpsc::Receiver<String>,
    pub log: Vec<String>,
    pub ready_after: Duration,
}

impl Server {
    pub fn start(config: PathBuf, cwd: &Path) -> Server {
        let started = Instant::now();
        let mut child = Command::new(serval_bin())
            .arg("serve")
            .arg("--config")
            .arg(config)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            admin_url: String::new(),
            lines: rx,
            log: Vec::new(),
            ready_after: Duration::ZERO,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let line = server
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!(
                        "serval did not become ready; log so far:\n{}",
                        server.log.join("\n")
                    )
                });
            if let Some(url) = field(&line, "url=") {
                if server.admin_url.is_empty() {
                    server.admin_url = url.trim_end_matches('/').to_string();
                }
            }
            let ready = line.contains("serval ready");
            server.log.push(line);
            if ready {
                server.ready_after = started.elapsed();
                break;
            }
        }
        server
    }

    /// Reads log lines until one contains `needle` (or panics after `timeout`).
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| {
                    panic!("no log line with {needle:?}; log:\n{}", self.log.join("\n"))
                });
            self.log.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill with a pid we own.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("serval did not exit within {timeout:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Value of `key=` in a log line (up to the next space), quotes removed.
pub fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(key)? + key.len();
    let rest = &line[start..];
    let end = rest.find(' ').unwrap_or(rest.len());
    Some(rest[..end].trim_matches('"'))
}
