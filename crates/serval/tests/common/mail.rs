//! Helpers of the mail tests: free ports, the fake smarthost (tests/python/smarthost.py on
//! aiosmtpd), Maildirs, python snippets.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A port free now and never handed out before in this test binary (the tests run in
/// parallel, and the kernel may give a just-closed port to the next bind).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn python_has(module: &str, package: &str) {
    let ok = Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "python {module} is missing: pip install {package} (scripts/install-test-deps)"
    );
}

/// `[mail]` on fixed free ports, example.test local, retries every `retry`.
pub fn mail_config(smtp: u16, submission: u16, retry: &str, extra: &str) -> String {
    format!(
        "[mail]\nenabled = true\nhostname = \"mail.example.test\"\nlocal_domains = [\"example.test\"]\n\
listen = \"127.0.0.1:{smtp}\"\nsubmission_listen = \"127.0.0.1:{submission}\"\n{extra}\n\
[mail.queue]\nretry_initial = \"{retry}\"\nretry_max = \"{retry}\"\n"
    )
}

/// tests/python/smarthost.py: messages land in `out` as N.eml.
pub struct Smarthost {
    child: Child,
    out: PathBuf,
}

impl Smarthost {
    pub fn start(port: u16, out: &Path, extra: &[&str]) -> Smarthost {
        Smarthost::start_on("127.0.0.1", port, out, extra)
    }

    /// On `address`:`port` (an MX on port 25 of its own loopback address, say).
    pub fn start_on(address: &str, port: u16, out: &Path, extra: &[&str]) -> Smarthost {
        python_has("aiosmtpd", "aiosmtpd");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/smarthost.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(out)
            .args(["--address", address])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("the smarthost to listen", Duration::from_secs(10), || {
            TcpStream::connect((address, port)).is_ok()
        });
        Smarthost {
            child,
            out: out.to_path_buf(),
        }
    }

    /// Every message received so far, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        let mut files: Vec<(u64, String)> = std::fs::read_dir(&self.out)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_suffix(".eml")?.parse().ok()?;
                Some((n, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, m)| m).collect()
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn maildir(data: &Path, user: &str) -> Vec<String> {
    let dir = data.join("mail").join(user).join("new");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

/// Runs a python snippet; returns its stdout (panics with stderr on failure).
pub fn python(code: &str) -> String {
    let out = Command::new("python3").args(["-c", code]).output().unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
