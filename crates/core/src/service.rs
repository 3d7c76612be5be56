//! The contract between the binary and each service crate.
//!
//! A service is started in two steps so nothing is ever half-started: `bind` (in the
//! service crate, taking a [`StartContext`]) claims sockets and files and fails with a
//! clear error; only when every enabled service has bound does the binary let them serve.
//! A running service reports its state through [`RunningService`], which the admin page,
//! `/api/v1/status` and `serval status` read.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::directory::Directory;
use crate::store::Engine;

/// What a service may use while it binds.
pub struct StartContext<'a> {
    /// Resolved data directory (absolute).
    pub data_dir: PathBuf,
    /// The node's store engine (SQLite or PostgreSQL); services open their stores over it.
    pub engine: Engine,
    pub directory: Directory,
    /// Metrics registry; register under a prefix named after the service.
    pub metrics: &'a mut Registry,
    /// TLS server config from `[tls]`, if TLS is configured.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// When the `[tls]` certificate expires, for admin pages.
    pub tls_not_after: Option<std::time::SystemTime>,
    /// Cancelled on SIGINT/SIGTERM: stop accepting, let in-flight work finish.
    pub shutdown: CancellationToken,
}

/// A service that has bound its listeners and is serving.
pub trait RunningService: Send + Sync {
    /// Config table name: "stream", "calendar", ...
    fn name(&self) -> &'static str;
    /// Addresses actually bound (port 0 resolved).
    fn listen_addrs(&self) -> Vec<SocketAddr>;
    /// When the service started serving.
    fn started_at(&self) -> SystemTime;
    /// Open client connections or sessions right now.
    fn connections(&self) -> u64;
    /// One-line human summary of the load ("12 sessions, 24.1 Mbit/s").
    fn load_summary(&self) -> String {
        format!("{} connections", self.connections())
    }
    /// The service's admin page section, if it has one.
    fn admin_panel(&self) -> Option<Arc<dyn AdminPanel>> {
        None
    }
    /// Resolves when every task of the service has ended after shutdown was requested.
    fn wait(&self) -> futures::future::BoxFuture<'static, ()>;
}

/// A service's page on the admin site (`/admin/service/<name>`).
///
/// Pages are plain server-rendered HTML fragments; the admin module wraps them in the
/// site layout, checks the admin session and the CSRF token before calling `handle_action`.
pub trait AdminPanel: Send + Sync {
    /// HTML body fragment (already escaped by the panel; use [`crate::html::escape`]).
    /// Forms must post to `action_url` and include the hidden field given as `csrf_field`.
    fn render(&self, csrf_field: &str, action_url: &str) -> String;
    /// Handles a form posted to the panel. `form` holds the decoded fields (CSRF field removed).
    /// Returns a message shown to the admin after the redirect back to the page.
    fn handle_action(&self, form: &[(String, String)]) -> Result<String, String>;
    /// JSON for `/api/v1/services/<name>`.
    fn json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
