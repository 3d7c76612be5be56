//! Serval's shared ground: config building blocks and core tables, the SQLite store, the user
//! directory, authentication helpers, logging, metrics, TLS, the HTTP listener every HTTP service
//! uses, and the admin site.
//!
//! **Architecture invariant:** core holds no protocol logic of any service and never depends on a
//! service crate; services depend on core.

pub mod admin;
pub mod auth;
pub mod cidr;
pub mod config;
pub mod directory;
pub mod html;
pub mod http_server;
pub mod logging;
pub mod metrics;
pub mod service;
pub mod store;
pub mod tls;

pub use directory::Directory;
pub use store::Store;

use std::sync::OnceLock;

static PROCESS_START: OnceLock<u64> = OnceLock::new();

/// Unix time (seconds) at which the process started serving; set by the binary at start.
pub fn process_start_unix() -> u64 {
    *PROCESS_START.get_or_init(now_unix)
}

/// Marks process start (idempotent).
pub fn mark_process_start() {
    let _ = process_start_unix();
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The Serval version, shown on the admin page and in `Server:` headers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
