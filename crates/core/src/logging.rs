//! Structured logging (`tracing`) with one level per service that can change live (SIGHUP), text or
//! JSON output on stderr, and an in-memory tail of recent lines for the admin page.
//!
//! A service's events are those under its crate's targets: service `stream` is `serval_stream`,
//! so `[log.services] stream = "debug"` becomes the filter directive `serval_stream=debug`.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, reload, EnvFilter, Registry};

use crate::config::{LogConfig, LogFormat};

/// Lines kept for the admin page's live tail.
const TAIL_LINES: usize = 1000;

/// Recent log lines, newest last.
#[derive(Clone, Default)]
pub struct LogTail {
    lines: Arc<Mutex<VecDeque<String>>>,
}

impl LogTail {
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
    fn push(&self, text: &str) {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        for line in text.lines().filter(|l| !l.is_empty()) {
            if lines.len() == TAIL_LINES {
                lines.pop_front();
            }
            lines.push_back(line.to_string());
        }
    }
}

/// Writes each event to stderr and to the tail (one per event, flushed on drop).
pub struct TeeWriter {
    tail: LogTail,
    buf: Vec<u8>,
}

impl Write for TeeWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TeeWriter {
    fn drop(&mut self) {
        let _ = std::io::stderr().write_all(&self.buf);
        // The tail is shown in a browser: drop ANSI colour codes.
        let text = String::from_utf8_lossy(&self.buf);
        self.tail.push(&strip_ansi(&text));
    }
}

impl<'a> fmt::MakeWriter<'a> for LogTail {
    type Writer = TeeWriter;
    fn make_writer(&'a self) -> TeeWriter {
        TeeWriter {
            tail: self.clone(),
            buf: Vec::with_capacity(256),
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Handle to change levels after start.
#[derive(Clone)]
pub struct LogHandle {
    filter: reload::Handle<EnvFilter, Registry>,
    pub tail: LogTail,
}

impl LogHandle {
    /// Applies new levels; the format cannot change without a restart.
    pub fn apply(&self, config: &LogConfig) -> Result<(), String> {
        let filter = build_filter(config)?;
        self.filter.reload(filter).map_err(|e| e.to_string())
    }
}

/// The filter directives for a config: the default level, then one directive per service.
pub fn directives(config: &LogConfig) -> String {
    let mut d = config.level.as_str().to_string();
    for (service, level) in &config.services {
        d.push_str(&format!(
            ",serval_{}={}",
            service.replace('-', "_"),
            level.as_str()
        ));
    }
    d
}

fn build_filter(config: &LogConfig) -> Result<EnvFilter, String> {
    EnvFilter::try_new(directives(config)).map_err(|e| e.to_string())
}

/// Whether events of `target` are access-log lines (`serval_<service>::access`).
fn is_access(target: &str) -> bool {
    target.starts_with("serval_") && target.ends_with("::access")
}

/// Installs the global subscriber. Call once, early in `serve`.
///
/// Access-log events (target `serval_<service>::access`, message = the finished line) skip the
/// level filter and stderr and are appended to `<access_log_dir>/<service>-access.log`, so a
/// quiet log level never loses access lines and log analysers read plain files.
pub fn init(config: &LogConfig, access_log_dir: &std::path::Path) -> Result<LogHandle, String> {
    use tracing_subscriber::filter::filter_fn;
    use tracing_subscriber::Layer as _;
    let (filter, handle) = reload::Layer::new(build_filter(config)?);
    let tail = LogTail::default();
    let not_access = filter_fn(|m| !is_access(m.target()));
    let result = match config.format {
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .with_writer(tail.clone())
                    .with_ansi(false)
                    .with_target(true)
                    .with_filter(filter)
                    .with_filter(not_access),
            )
            .with(access_layer(access_log_dir))
            .try_init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(
                fmt::layer()
                    .json()
                    .with_writer(tail.clone())
                    .with_current_span(true)
                    .with_filter(filter)
                    .with_filter(not_access),
            )
            .with(access_layer(access_log_dir))
            .try_init(),
    };
    result.map_err(|e| e.to_string())?;
    Ok(LogHandle {
        filter: handle,
        tail,
    })
}

fn access_layer<S>(dir: &std::path::Path) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    use tracing_subscriber::Layer as _;
    AccessFiles::new(dir).with_filter(tracing_subscriber::filter::filter_fn(|m| {
        is_access(m.target())
    }))
}

/// Appends access-log events to one file per service.
struct AccessFiles {
    dir: std::path::PathBuf,
    files: Mutex<std::collections::HashMap<String, std::fs::File>>,
}

impl AccessFiles {
    fn new(dir: &std::path::Path) -> AccessFiles {
        AccessFiles {
            dir: dir.to_path_buf(),
            files: Mutex::default(),
        }
    }
}

/// Collects the `message` field of an event.
struct MessageField(String);

impl tracing::field::Visit for MessageField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write as _;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for AccessFiles {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let target = event.metadata().target();
        let service = target
            .trim_start_matches("serval_")
            .split("::")
            .next()
            .unwrap_or("serval");
        let mut line = MessageField(String::with_capacity(256));
        event.record(&mut line);
        line.0.push('\n');
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if !files.contains_key(service) {
            let _ = std::fs::create_dir_all(&self.dir);
            let path = self.dir.join(format!("{service}-access.log"));
            match std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
            {
                Ok(f) => {
                    files.insert(service.to_string(), f);
                }
                Err(e) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "cannot open access log {}: {e}",
                        path.display()
                    );
                    return;
                }
            }
        }
        if let Some(f) = files.get_mut(service) {
            let _ = f.write_all(line.0.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogLevel;

    #[test]
    fn per_service_levels_become_target_directives() {
        let mut c = LogConfig::default();
        c.services.insert("stream".into(), LogLevel::Debug);
        assert_eq!(directives(&c), "info,serval_stream=debug");
        assert!(build_filter(&c).is_ok());
        c.level = LogLevel::Debug;
        assert_eq!(directives(&c), "debug,serval_stream=debug");
    }

    #[test]
    fn access_targets_are_recognised() {
        assert!(is_access("serval_calendar::access"));
        assert!(!is_access("serval_calendar::http"));
        assert!(!is_access("other::access"));
    }

    #[test]
    fn ansi_codes_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[32mINFO\u{1b}[0m x"), "INFO x");
    }
}
