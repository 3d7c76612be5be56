//! Config building blocks shared by every service, and the core tables (`[admin]`, `[log]`, `[tls]`,
//! `[directory]`).
//!
//! The top-level `Config` that composes these with each service's table lives in the binary crate,
//! because core must not depend on service crates. What lives here: value types that several tables
//! use (`Listen`, `HumanDuration`), the `Problems` collector that validation fills with every problem
//! at once, and [`locate`], which turns a dotted key path into a line number of the source file.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One listen address or a list of them (`listen = "127.0.0.1:1220"` or `listen = ["[::1]:1220", ...]`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Listen(pub Vec<SocketAddr>);

impl Listen {
    pub fn one(addr: &str) -> Listen {
        // Only called with literals in Default impls; a typo there is a programming error caught by tests.
        Listen(vec![addr.parse().expect("default listen address parses")])
    }
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.0
    }
}

impl Serialize for Listen {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_str(&one.to_string()),
            many => s.collect_seq(many.iter().map(|a| a.to_string())),
        }
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let raw = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected an address like \"127.0.0.1:1220\" or a list of them",
            )
        })? {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        };
        let mut addrs = Vec::with_capacity(raw.len());
        for s in raw {
            let addr = s.parse::<SocketAddr>().map_err(|_| {
                serde::de::Error::custom(format!(
                    "`{s}` is not an address: write IP:PORT, e.g. \"0.0.0.0:8554\" or \"[::]:8554\""
                ))
            })?;
            addrs.push(addr);
        }
        Ok(Listen(addrs))
    }
}

/// A size in bytes, written `"10MB"`, `"512KiB"`, `"1GB"` or a plain number of bytes.
/// KB/MB/GB (and k/m/g) are powers of 1000, KiB/MiB/GiB powers of 1024.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let n: u64 = digits
            .parse()
            .map_err(|_| format!("`{text}` is not a size such as \"10MB\" or \"512KiB\""))?;
        let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1024,
            "m" | "mb" => 1_000_000,
            "mib" => 1024 * 1024,
            "g" | "gb" => 1_000_000_000,
            "gib" => 1024 * 1024 * 1024,
            other => {
                return Err(format!(
                    "unknown size unit `{other}` (B, KB, KiB, MB, MiB, GB, GiB)"
                ))
            }
        };
        n.checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("`{text}` is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (factor, unit) in [
            (1024 * 1024 * 1024, "GiB"),
            (1_000_000_000, "GB"),
            (1024 * 1024, "MiB"),
            (1_000_000, "MB"),
            (1024, "KiB"),
            (1000, "KB"),
        ] {
            if n >= factor && (n / factor) * factor == n {
                return write!(f, "{}{unit}", n / factor);
            }
        }
        write!(f, "{n}")
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(ByteSize(n)),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// A duration written the human way: "60s", "5m", "1h 30m", "250ms".
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    pub const fn secs(n: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(n))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s)
            .map(HumanDuration)
            .map_err(|e| {
                format!("`{s}` is not a duration ({e}); write e.g. \"60s\", \"5m\", \"1h\"")
            })
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// How bad a config problem is: errors stop `serve` and make `check` exit 1; warnings are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// One thing wrong with a config, located by dotted key path (`stream.rtp_ports`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub key: String,
    pub message: String,
    /// 1-based line in the source file, filled in by [`Problems::locate_in`].
    pub line: Option<usize>,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match self.line {
            Some(line) => write!(f, "line {line}: {what}: `{}`: {}", self.key, self.message),
            None => write!(f, "{what}: `{}`: {}", self.key, self.message),
        }
    }
}

/// Every problem found in a config, collected so `serval check` can name them all at once.
#[derive(Clone, Debug, Default)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn new() -> Problems {
        Problems::default()
    }
    pub fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, key.into(), message.into());
    }
    pub fn warning(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, key.into(), message.into());
    }
    fn push(&mut self, severity: Severity, key: String, message: String) {
        self.list.push(Problem {
            severity,
            key,
            message,
            line: None,
        });
    }
    pub fn has_errors(&self) -> bool {
        self.list.iter().any(|p| p.severity == Severity::Error)
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn iter(&self) -> impl Iterator<Item = &Problem> {
        self.list.iter()
    }
    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
    /// Fills in line numbers for problems whose key appears in `source` (a TOML text).
    pub fn locate_in(&mut self, source: &str) {
        let index = KeyIndex::build(source);
        for p in &mut self.list {
            if p.line.is_none() {
                p.line = index.line_of(&p.key);
            }
        }
    }
    pub fn extend(&mut self, other: Problems) {
        self.list.extend(other.list);
    }
}

/// Dotted key paths of a TOML text with the byte span of each key and its value.
pub struct KeyIndex {
    source_line_starts: Vec<usize>,
    entries: Vec<(String, std::ops::Range<usize>)>,
}

impl KeyIndex {
    pub fn build(source: &str) -> KeyIndex {
        let mut entries = Vec::new();
        if let Ok(doc) = toml_edit::ImDocument::parse(source) {
            collect_spans(doc.as_table(), "", &mut entries);
        }
        let mut source_line_starts = vec![0];
        source_line_starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        KeyIndex {
            source_line_starts,
            entries,
        }
    }
    /// 1-based line of the key at `path`, or of its nearest ancestor present in the file.
    pub fn line_of(&self, path: &str) -> Option<usize> {
        let mut path = path;
        loop {
            if let Some((_, span)) = self.entries.iter().find(|(p, _)| p == path) {
                return Some(self.line_at(span.start));
            }
            path = path.rsplit_once('.')?.0;
        }
    }
    /// The deepest key whose span contains `offset`.
    pub fn path_at(&self, offset: usize) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(_, span)| span.start <= offset && offset < span.end.max(span.start + 1))
            .max_by_key(|(p, _)| p.matches('.').count())
            .map(|(p, _)| p.as_str())
    }
    pub fn line_at(&self, offset: usize) -> usize {
        self.source_line_starts
            .partition_point(|&start| start <= offset)
    }
}

fn collect_spans(
    table: &toml_edit::Table,
    prefix: &str,
    out: &mut Vec<(String, std::ops::Range<usize>)>,
) {
    for (key, item) in table.iter() {
        let path = if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        };
        let key_span = table.key(key).and_then(|k| k.span());
        let item_span = item.span();
        let span = match (key_span, item_span) {
            (Some(k), Some(v)) => k.start.min(v.start)..k.end.max(v.end),
            (Some(k), None) => k,
            (None, Some(v)) => v,
            (None, None) => continue,
        };
        out.push((path.clone(), span));
        match item {
            toml_edit::Item::Table(t) => collect_spans(t, &path, out),
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                collect_spans_inline(t, &path, out)
            }
            toml_edit::Item::ArrayOfTables(arr) => {
                for (i, t) in arr.iter().enumerate() {
                    collect_spans(t, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
}

fn collect_spans_inline(
    table: &toml_edit::InlineTable,
    prefix: &str,
    out: &mut Vec<(String, std::ops::Range<usize>)>,
) {
    for (key, value) in table.iter() {
        let path = format!("{prefix}.{key}");
        if let Some(span) = value.span() {
            out.push((path.clone(), span));
        }
        if let toml_edit::Value::InlineTable(t) = value {
            collect_spans_inline(t, &path, out);
        }
    }
}

/// Deserializes `source` into `T`, collecting every key that fails instead of stopping at the first.
///
/// serde stops at the first error, so after each failure the offending key is removed from the
/// document and parsing is retried; the removed keys fall back to their defaults. The result is the
/// config with every good key applied, plus one problem per bad key with its line.
pub fn parse_collecting<T: serde::de::DeserializeOwned + Default>(source: &str) -> (T, Problems) {
    // Bound retries: each round removes one key, so a file with more bad keys than this is
    // reported in part, which is plenty for a human to start fixing.
    const MAX_ROUNDS: usize = 64;
    let mut problems = Problems::new();
    let original = KeyIndex::build(source);
    let mut doc = match source.parse::<toml_edit::DocumentMut>() {
        Ok(doc) => doc,
        Err(e) => {
            let line = e.span().map(|s| original.line_at(s.start));
            problems.list.push(Problem {
                severity: Severity::Error,
                key: "(syntax)".into(),
                message: e.message().trim().to_string(),
                line,
            });
            return (T::default(), problems);
        }
    };
    for _ in 0..MAX_ROUNDS {
        let text = doc.to_string();
        match toml::from_str::<T>(&text) {
            Ok(value) => return (value, problems),
            Err(e) => {
                let current = KeyIndex::build(&text);
                let path = e
                    .span()
                    .and_then(|s| current.path_at(s.start))
                    .map(str::to_string);
                let message = e.message().trim().to_string();
                let Some(path) = path else {
                    problems.list.push(Problem {
                        severity: Severity::Error,
                        key: "(document)".into(),
                        message,
                        line: None,
                    });
                    return (T::default(), problems);
                };
                // An unknown field's span covers the table when serde reports it at table level; the
                // message names the field, so point at that key when it exists under the path.
                let key_path = unknown_field_name(&message)
                    .map(|field| format!("{path}.{field}"))
                    .filter(|p| current.entries.iter().any(|(q, _)| q == p))
                    .unwrap_or(path);
                problems.list.push(Problem {
                    severity: Severity::Error,
                    key: key_path.clone(),
                    message,
                    line: original.line_of(&key_path),
                });
                if !remove_path(&mut doc, &key_path) {
                    return (T::default(), problems);
                }
            }
        }
    }
    (T::default(), problems)
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn remove_path(doc: &mut toml_edit::DocumentMut, path: &str) -> bool {
    let mut parts: Vec<&str> = path.split('.').collect();
    let Some(last) = parts.pop() else {
        return false;
    };
    let mut table: &mut dyn toml_edit::TableLike = doc.as_table_mut();
    for part in parts {
        match table
            .get_mut(part)
            .and_then(|item| item.as_table_like_mut())
        {
            Some(t) => table = t,
            None => return false,
        }
    }
    table.remove(last).is_some()
}

// ---------------------------------------------------------------------------------------------
// Core tables

/// `[admin]`: the web admin page, JSON API, `/metrics` and `/healthz`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub enabled: bool,
    pub listen: Listen,
    /// Serve the admin site over TLS with the `[tls]` certificate.
    pub tls: bool,
    pub max_connections: usize,
    /// How long a login lasts without use.
    pub session_idle_timeout: HumanDuration,
    /// Allow `/metrics` without a login (Prometheus scrapers rarely log in). Keep the admin
    /// listener on loopback or a management network when this is on.
    pub public_metrics: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            // The old QuickTime Streaming Server admin port.
            listen: Listen::one("127.0.0.1:1220"),
            tls: false,
            max_connections: 256,
            session_idle_timeout: HumanDuration::secs(8 * 3600),
            public_metrics: true,
        }
    }
}

/// A log level name as written in the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Off => "off",
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// `[log]`: levels overall and per service, and the output format.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
    /// Per-service levels, e.g. `stream = "debug"`; a service not listed uses `level`.
    pub services: BTreeMap<String, LogLevel>,
    /// Directory of access logs (one file per protocol); relative paths are under `data_dir`.
    pub access_log_dir: PathBuf,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
            services: BTreeMap::new(),
            access_log_dir: PathBuf::from("logs"),
        }
    }
}

/// `[tls]`: the certificate every TLS listener uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain. Relative paths are under `data_dir`.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// Generate a self-signed certificate in `data_dir/tls/` (kept across restarts) when no
    /// cert/key are given.
    pub self_signed: bool,
}

impl TlsConfig {
    pub fn is_configured(&self) -> bool {
        self.self_signed || (self.cert.is_some() && self.key.is_some())
    }
}

/// Which engine keeps the node's data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreEngineKind {
    /// The embedded SQLite file `data_dir/serval.db`.
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several Serval nodes may share.
    Postgres,
}

/// `[store]`: where the directory, calendars and every service's data live.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub engine: StoreEngineKind,
    /// `postgres://user@host:port/database` (PostgreSQL only).
    pub url: String,
    /// File holding the PostgreSQL password (first line); empty: `PGPASSWORD`, else none.
    pub password_file: String,
    /// Connections per node to PostgreSQL.
    pub pool_size: usize,
    /// Longest a single PostgreSQL statement may run.
    pub statement_timeout: HumanDuration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            engine: StoreEngineKind::Sqlite,
            url: String::new(),
            password_file: String::new(),
            pool_size: 16,
            statement_timeout: HumanDuration::secs(30),
        }
    }
}

impl StoreConfig {
    pub fn validate(&self, problems: &mut Problems) {
        match self.engine {
            StoreEngineKind::Sqlite => {
                if !self.url.is_empty() {
                    problems.warning(
                        "store.url",
                        "ignored: store.engine is \"sqlite\"; set engine = \"postgres\" to use it",
                    );
                }
            }
            StoreEngineKind::Postgres => {
                if self.url.is_empty() {
                    problems.error(
                        "store.url",
                        "store.engine is \"postgres\" but no url is given, e.g. \"postgres://serval@db.example.test/serval\"",
                    );
                } else if !(self.url.starts_with("postgres://")
                    || self.url.starts_with("postgresql://"))
                {
                    problems.error(
                        "store.url",
                        "must start with postgres:// (e.g. \"postgres://serval@db.example.test:5432/serval\")",
                    );
                } else if crate::store::postgres::redact(&self.url) != self.url {
                    problems.warning(
                        "store.url",
                        "holds a password; put it in store.password_file instead, so the config can be shared",
                    );
                }
                if self.pool_size == 0 {
                    problems.error("store.pool_size", "must be at least 1");
                }
                if self.statement_timeout.0.is_zero() {
                    problems.error("store.statement_timeout", "must be more than 0 s");
                }
            }
        }
    }
}

/// `[directory]`: the user directory every service shares.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// Realm for HTTP/RTSP Digest authentication. Digest keeps a hash per realm, computed when a
    /// password is set, so changing this requires users to set their passwords again.
    pub realm: String,
    /// Failed logins from one address within `failed_login_window` before it is refused.
    pub max_failed_logins: u32,
    pub failed_login_window: HumanDuration,
}

impl Default for DirectoryConfig {
    fn default() -> Self {
        DirectoryConfig {
            realm: "Serval".into(),
            max_failed_logins: 10,
            failed_login_window: HumanDuration::secs(300),
        }
    }
}

impl AdminConfig {
    pub fn validate(&self, tls: &TlsConfig, problems: &mut Problems) {
        if self.enabled && self.listen.0.is_empty() {
            problems.error(
                "admin.listen",
                "no address given; add one or set admin.enabled = false",
            );
        }
        if self.max_connections == 0 {
            problems.error("admin.max_connections", "must be at least 1");
        }
        if self.tls && !tls.is_configured() {
            problems.error(
                "admin.tls",
                "needs [tls] cert and key, or tls.self_signed = true",
            );
        }
        if self.enabled && !self.tls {
            warn_plain_public("admin.listen", &self.listen, "the admin page", problems);
        }
        check_privileged_ports("admin.listen", &self.listen, problems);
    }
}

impl LogConfig {
    pub fn validate(&self, known_services: &[&str], problems: &mut Problems) {
        if self.level < LogLevel::Warn {
            problems.warning(
                "log.level",
                format!(
                    "`{}` hides errors and warnings; use \"warn\" or \"info\"",
                    self.level.as_str()
                ),
            );
        }
        for (service, level) in &self.services {
            let key = format!("log.services.{service}");
            if !known_services.contains(&service.as_str()) {
                problems.error(
                    key.clone(),
                    format!(
                        "no service named `{service}`; known: {}",
                        known_services.join(", ")
                    ),
                );
            }
            if *level < LogLevel::Warn {
                problems.warning(
                    key,
                    format!("`{}` hides this service's failures", level.as_str()),
                );
            }
        }
    }
}

impl TlsConfig {
    pub fn validate(&self, data_dir: &std::path::Path, problems: &mut Problems) {
        match (&self.cert, &self.key) {
            (Some(_), None) => problems.error("tls.key", "tls.cert is set but tls.key is missing"),
            (None, Some(_)) => problems.error("tls.cert", "tls.key is set but tls.cert is missing"),
            (Some(cert), Some(key)) => {
                for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
                    let path = data_dir.join(path);
                    if !path.is_file() {
                        problems.error(
                            name,
                            format!("{} does not exist or is not a file", path.display()),
                        );
                    }
                }
            }
            (None, None) => {}
        }
    }
}

impl DirectoryConfig {
    pub fn validate(&self, problems: &mut Problems) {
        if self.realm.trim().is_empty() || self.realm.contains('"') {
            problems.error(
                "directory.realm",
                "must be non-empty and contain no double quote",
            );
        }
        if self.max_failed_logins == 0 {
            problems.error("directory.max_failed_logins", "must be at least 1");
        }
    }
}

/// Warns when a listener of a password-protected service is reachable from other hosts in clear text.
pub fn warn_plain_public(key: &str, listen: &Listen, what: &str, problems: &mut Problems) {
    for addr in listen.addrs() {
        if !addr.ip().is_loopback() {
            problems.warning(
                key,
                format!("{addr} is reachable from other hosts without TLS: passwords for {what} would cross the network in clear text"),
            );
        }
    }
}

/// Warns about ports below 1024 when this process could not bind them.
pub fn check_privileged_ports(key: &str, listen: &Listen, problems: &mut Problems) {
    for addr in listen.addrs() {
        if addr.port() != 0 && addr.port() < 1024 && !can_bind_privileged_ports() {
            problems.warning(
                key,
                format!(
                    "port {} is below 1024: run as root or grant CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' serval)",
                    addr.port()
                ),
            );
        }
    }
}

/// Whether this process may bind ports below 1024: root, the capability, or a lowered
/// `ip_unprivileged_port_start`.
pub fn can_bind_privileged_ports() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if let Ok(start) = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start") {
        if start.trim().parse::<u32>().is_ok_and(|p| p < 1024) {
            return true;
        }
    }
    // CAP_NET_BIND_SERVICE is bit 10 of the effective capability set.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        if let Some(hex) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) {
            if let Ok(bits) = u64::from_str_radix(hex.trim(), 16) {
                return bits & (1 << 10) != 0;
            }
        }
    }
    false
}

/// Checks that `dir` exists and is writable, or can be created.
pub fn check_writable_dir(key: &str, dir: &std::path::Path, problems: &mut Problems) {
    if dir.exists() {
        if !dir.is_dir() {
            problems.error(
                key,
                format!("{} exists but is not a directory", dir.display()),
            );
        } else if !is_writable(dir) {
            problems.error(
                key,
                format!("{} is not writable by this user", dir.display()),
            );
        }
        return;
    }
    let mut ancestor = dir.parent();
    while let Some(a) = ancestor {
        if a.as_os_str().is_empty() {
            ancestor = Some(std::path::Path::new("."));
            continue;
        }
        if a.exists() {
            if !is_writable(a) {
                problems.error(
                    key,
                    format!(
                        "{} does not exist and {} is not writable to create it",
                        dir.display(),
                        a.display()
                    ),
                );
            }
            return;
        }
        ancestor = a.parent();
    }
}

fn is_writable(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_in_both_unit_systems_and_print_back() {
        assert_eq!("10MB".parse::<ByteSize>(), Ok(ByteSize(10_000_000)));
        assert_eq!("512KiB".parse::<ByteSize>(), Ok(ByteSize(512 * 1024)));
        assert_eq!("2048".parse::<ByteSize>(), Ok(ByteSize(2048)));
        assert!("10 parsecs"
            .parse::<ByteSize>()
            .unwrap_err()
            .contains("parsecs"));
        assert!("MB".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(10_000_000).to_string(), "10MB");
        assert_eq!(ByteSize(1024 * 1024).to_string(), "1MiB");
    }

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Top {
        name: String,
        admin: AdminConfig,
        log: LogConfig,
    }

    #[test]
    fn listen_accepts_one_or_many() {
        let one: Listen = toml::from_str::<toml::Value>("x = \"127.0.0.1:1\"").unwrap()["x"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(one.0.len(), 1);
        let many: Listen = toml::from_str::<toml::Value>("x = [\"127.0.0.1:1\", \"[::1]:2\"]")
            .unwrap()["x"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(many.0.len(), 2);
    }

    #[test]
    fn every_bad_key_is_reported_with_its_line() {
        let src = "name = \"x\"\n[admin]\nlisten = \"nope\"\nbogus = 1\n[log]\nlevel = \"loud\"\n";
        let (cfg, problems): (Top, _) = parse_collecting(src);
        let got: Vec<(String, Option<usize>)> =
            problems.iter().map(|p| (p.key.clone(), p.line)).collect();
        assert!(got.contains(&("admin.listen".into(), Some(3))), "{got:?}");
        assert!(got.contains(&("admin.bogus".into(), Some(4))), "{got:?}");
        assert!(got.contains(&("log.level".into(), Some(6))), "{got:?}");
        assert_eq!(cfg.name, "x", "good keys still apply");
        let listen_problem = problems.iter().find(|p| p.key == "admin.listen").unwrap();
        assert!(
            listen_problem.message.contains("`nope` is not an address"),
            "{}",
            listen_problem.message
        );
    }

    #[test]
    fn syntax_error_names_its_line() {
        let (_, problems): (Top, _) = parse_collecting("name = \"x\"\n[admin\n");
        let p = problems.iter().next().unwrap();
        assert_eq!(p.line, Some(2));
    }

    #[test]
    fn durations_parse_the_human_way() {
        assert_eq!(
            "90s".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(90)
        );
        assert_eq!(
            "1h 30m".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(5400)
        );
        assert!("soon"
            .parse::<HumanDuration>()
            .unwrap_err()
            .contains("`soon` is not a duration"));
    }
}
