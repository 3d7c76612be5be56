//! The data directory: creating it, the store inside it, and the lock that marks a running server.
//!
//! `serve` holds an exclusive `flock` on `data_dir/serval.lock` (with its pid written inside) for
//! its whole life. `restore` takes the same lock, so it cannot replace the store under a running
//! server; the kernel drops the lock when the process dies, even by `kill -9`, so no stale lock
//! files need cleaning.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

pub const STORE_FILE: &str = "serval.db";
pub const LOCK_FILE: &str = "serval.lock";
pub const TOKEN_FILE: &str = "admin.token";
/// The admin site's actual address (port 0 resolved), for `serval status`.
pub const ADMIN_URL_FILE: &str = "admin.url";

pub fn store_path(data_dir: &Path) -> PathBuf {
    data_dir.join(STORE_FILE)
}

/// Creates the data directory (mode 0700: it holds the store and secrets).
pub fn ensure(data_dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if data_dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))
}

/// An exclusive lock on the data directory, released on drop or process exit.
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock or explains who holds it.
pub fn lock(data_dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot open {} (is the data directory writable?)",
                path.display()
            )
        })?;
    // SAFETY: flock on a valid, owned descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let mut pid = String::new();
        let _ = file.read_to_string(&mut pid);
        let pid = pid.trim();
        let who = if pid.is_empty() {
            String::from("another serval process")
        } else {
            format!("serval (pid {pid})")
        };
        bail!(
            "{who} is running on the data directory {}; stop it first",
            data_dir.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    file.flush()?;
    Ok(DataDirLock { _file: file })
}

/// Writes the admin API token readable only by this user.
pub fn write_token(data_dir: &Path, token: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = data_dir.join(TOKEN_FILE);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    f.write_all(token.as_bytes())?;
    Ok(())
}

pub fn read_token(data_dir: &Path) -> anyhow::Result<String> {
    let path = data_dir.join(TOKEN_FILE);
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_string())
        .with_context(|| {
            format!(
                "cannot read {} (is the server running, and are you its user?)",
                path.display()
            )
        })
}

/// Records (or clears) the admin site's URL for `serval status`.
pub fn write_admin_url(data_dir: &Path, url: Option<String>) -> anyhow::Result<()> {
    let path = data_dir.join(ADMIN_URL_FILE);
    match url {
        Some(url) => {
            std::fs::write(&path, url).with_context(|| format!("cannot write {}", path.display()))
        }
        None => {
            let _ = std::fs::remove_file(&path);
            Ok(())
        }
    }
}

pub fn read_admin_url(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join(ADMIN_URL_FILE))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}
