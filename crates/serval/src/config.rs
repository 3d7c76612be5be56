//! The whole `serval.toml`: core tables plus one table per service, loaded, validated with every
//! problem named, and printed with comments for `serval config default`.
//!
//! Defaults live only in the `Default` impls of the tables; `config default` serializes them and
//! adds the comments of [`crate::config_docs`], and a test checks that every key has one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serval_core::config::{
    check_writable_dir, AdminConfig, DirectoryConfig, LogConfig, Problems, Severity, TlsConfig,
};

/// Services this binary knows, in start order.
pub const SERVICES: &[&str] = &["stream", "calendar", "web", "dns", "mail"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Store, TLS material, logs; relative paths in other tables resolve under it.
    pub data_dir: PathBuf,
    pub admin: AdminConfig,
    pub log: LogConfig,
    pub tls: TlsConfig,
    pub store: serval_core::config::StoreConfig,
    pub directory: DirectoryConfig,
    pub stream: serval_stream::StreamConfig,
    pub calendar: serval_calendar::CalendarConfig,
    pub web: serval_web::WebConfig,
    pub dns: serval_dns::DnsConfig,
    pub mail: serval_mail::MailConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("serval-data"),
            admin: AdminConfig::default(),
            log: LogConfig::default(),
            tls: TlsConfig::default(),
            store: serval_core::config::StoreConfig::default(),
            directory: DirectoryConfig::default(),
            stream: serval_stream::StreamConfig::default(),
            calendar: serval_calendar::CalendarConfig::default(),
            web: serval_web::WebConfig::default(),
            dns: serval_dns::DnsConfig::default(),
            mail: serval_mail::MailConfig::default(),
        }
    }
}

/// Where a config came from, for messages and for resolving relative paths.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub config: Config,
    /// The file read, or `None` for the built-in defaults.
    pub path: Option<PathBuf>,
    /// Absolute data directory.
    pub data_dir: PathBuf,
    pub problems: Problems,
}

impl Loaded {
    pub fn describe_source(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => "built-in defaults".into(),
        }
    }
}

/// Reads the config named on the command line, else `./serval.toml` if present, else defaults.
/// Never fails: unreadable files and bad keys become problems.
pub fn load(explicit: Option<&Path>) -> Loaded {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => Some(PathBuf::from("serval.toml")).filter(|p| p.is_file()),
    };
    let mut problems = Problems::new();
    let config = match &path {
        None => Config::default(),
        Some(p) => match std::fs::read_to_string(p) {
            Ok(text) => {
                let (config, parse_problems) =
                    serval_core::config::parse_collecting::<Config>(&text);
                problems.extend(parse_problems);
                let mut semantic = validate(&config, &resolve_data_dir(&config, Some(p)));
                semantic.locate_in(&text);
                problems.extend(semantic);
                let data_dir = resolve_data_dir(&config, Some(p));
                return Loaded {
                    config,
                    path,
                    data_dir,
                    problems,
                };
            }
            Err(e) => {
                problems.error("(file)", format!("cannot read {}: {e}", p.display()));
                Config::default()
            }
        },
    };
    let data_dir = resolve_data_dir(&config, path.as_deref());
    problems.extend(validate(&config, &data_dir));
    Loaded {
        config,
        path,
        data_dir,
        problems,
    }
}

/// `data_dir` relative to the config file's folder (or the working directory without a file).
pub fn resolve_data_dir(config: &Config, file: Option<&Path>) -> PathBuf {
    let base = file
        .and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = if config.data_dir.is_absolute() {
        config.data_dir.clone()
    } else {
        base.join(&config.data_dir)
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// Checks that go beyond types: conflicts, missing files, risky settings.
pub fn validate(config: &Config, data_dir: &Path) -> Problems {
    let mut problems = Problems::new();
    check_writable_dir("data_dir", data_dir, &mut problems);
    config.admin.validate(&config.tls, &mut problems);
    config.log.validate(SERVICES, &mut problems);
    config.tls.validate(data_dir, &mut problems);
    config.store.validate(&mut problems);
    config.directory.validate(&mut problems);
    validate_stream(config, data_dir, &mut problems);
    config.calendar.validate(&mut problems);
    validate_web(config, data_dir, &mut problems);
    config.dns.validate(&mut problems);
    config.mail.validate(data_dir, &mut problems);
    if config.mail.enabled {
        for (key, listen) in [
            ("mail.listen", &config.mail.listen),
            ("mail.submission_listen", &config.mail.submission_listen),
        ] {
            serval_core::config::check_privileged_ports(key, listen, &mut problems);
        }
    }
    if config.dns.enabled {
        serval_core::config::check_privileged_ports(
            "dns.listen",
            &config.dns.listen,
            &mut problems,
        );
    }
    for (enabled, key, listen) in [
        (
            config.stream.enabled,
            "stream.tls_listen",
            &config.stream.tls_listen,
        ),
        (
            config.calendar.enabled,
            "calendar.tls_listen",
            &config.calendar.tls_listen,
        ),
        (
            config.web.enabled && !config.web.acme.enabled,
            "web.tls_listen",
            &config.web.tls_listen,
        ),
    ] {
        if enabled && !listen.0.is_empty() && !config.tls.is_configured() {
            problems.error(
                key,
                "needs a certificate: set [tls] cert and key, or tls.self_signed = true",
            );
        }
    }
    check_listen_conflicts(config, &mut problems);
    problems
}

fn validate_stream(config: &Config, data_dir: &Path, problems: &mut Problems) {
    config.stream.validate(problems);
    if config.stream.enabled {
        let media = if config.stream.media_dir.as_os_str().is_empty() {
            data_dir.join("media")
        } else {
            data_dir.join(&config.stream.media_dir)
        };
        if !config.stream.media_dir.as_os_str().is_empty() && !media.is_dir() {
            problems.error(
                "stream.media_dir",
                format!("{} does not exist or is not a directory", media.display()),
            );
        }
        serval_core::config::check_privileged_ports(
            "stream.listen",
            &config.stream.listen,
            problems,
        );
        if media.is_dir() {
            serval_stream::movies::check_caps_against_movies(&config.stream, &media, problems);
        }
    }
}

fn validate_web(config: &Config, data_dir: &Path, problems: &mut Problems) {
    config.web.validate(problems);
    if !config.web.enabled {
        return;
    }
    serval_core::config::check_privileged_ports("web.listen", &config.web.listen, problems);
    serval_core::config::check_privileged_ports("web.tls_listen", &config.web.tls_listen, problems);
    for (i, site) in config.web.sites.iter().enumerate() {
        if !site.root.is_empty() {
            let root = data_dir.join(&site.root);
            if root.exists() && !root.is_dir() {
                problems.error(
                    format!("web.site[{i}].root"),
                    format!("{} is not a directory", root.display()),
                );
            } else if !root.exists() {
                problems.warning(
                    format!("web.site[{i}].root"),
                    format!(
                        "{} does not exist; it will be created empty",
                        root.display()
                    ),
                );
            }
        }
        if let Ok(serval_web::config::FastCgiAddr::Unix(socket)) =
            serval_web::config::parse_fastcgi_addr(&site.php)
        {
            if !socket.exists() {
                problems.warning(
                    format!("web.site[{i}].php"),
                    format!("{} does not exist: is php-fpm running? (Debian: apt-get install php-fpm) PHP pages answer 502 until it is", socket.display()),
                );
            }
        }
    }
}

/// Two enabled listeners on the same address would make one fail at start.
fn check_listen_conflicts(config: &Config, problems: &mut Problems) {
    let mut seen: Vec<(std::net::SocketAddr, &str)> = Vec::new();
    let mut tables: Vec<(&str, Vec<std::net::SocketAddr>)> = Vec::new();
    if config.admin.enabled {
        tables.push(("admin.listen", config.admin.listen.0.clone()));
    }
    if config.stream.enabled {
        tables.push(("stream.listen", config.stream.listen.0.clone()));
        tables.push(("stream.tls_listen", config.stream.tls_listen.0.clone()));
    }
    if config.calendar.enabled {
        tables.push(("calendar.listen", config.calendar.listen.0.clone()));
        tables.push(("calendar.tls_listen", config.calendar.tls_listen.0.clone()));
    }
    if config.web.enabled {
        tables.push(("web.listen", config.web.listen.0.clone()));
        tables.push(("web.tls_listen", config.web.tls_listen.0.clone()));
    }
    // DNS listens on UDP too, but its TCP port is what can clash with the others.
    if config.dns.enabled {
        tables.push(("dns.listen", config.dns.listen.0.clone()));
    }
    if config.mail.enabled {
        tables.push(("mail.listen", config.mail.listen.0.clone()));
        tables.push((
            "mail.submission_listen",
            config.mail.submission_listen.0.clone(),
        ));
    }
    for (key, addrs) in &tables {
        for addr in addrs {
            if addr.port() == 0 {
                continue;
            }
            let clash = seen.iter().find(|(a, _)| {
                a.port() == addr.port()
                    && (a.ip() == addr.ip()
                        || a.ip().is_unspecified()
                        || addr.ip().is_unspecified())
            });
            if let Some((_, other)) = clash {
                problems.error(*key, format!("{addr} is also used by {other}"));
            } else {
                seen.push((*addr, key));
            }
        }
    }
}

/// Prints problems as `file:line: error: key: message`, errors first. Returns whether any is an error.
pub fn report(loaded: &Loaded, out: &mut impl std::io::Write) -> bool {
    let mut list: Vec<_> = loaded.problems.iter().cloned().collect();
    list.sort_by_key(|p| (std::cmp::Reverse(p.severity), p.line));
    let source = loaded.describe_source();
    for p in &list {
        let what = if p.severity == Severity::Error {
            "error"
        } else {
            "warning"
        };
        let location = match p.line {
            Some(line) => format!("{source}:{line}"),
            None => source.clone(),
        };
        let _ = writeln!(out, "{location}: {what}: {}: {}", p.key, p.message);
    }
    loaded.problems.has_errors()
}

/// The default config as commented TOML.
pub fn default_toml() -> String {
    let mut doc: toml_edit::DocumentMut = toml::to_string(&Config::default())
        .expect("the default config serializes")
        .parse()
        .expect("serialized TOML parses");
    crate::config_docs::annotate(&mut doc);
    let mut text = String::from(crate::config_docs::HEADER);
    text.push_str(doc.to_string().trim_start());
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_defaults_parse_back_to_the_defaults() {
        let text = default_toml();
        let (parsed, problems) = serval_core::config::parse_collecting::<Config>(&text);
        assert!(problems.is_empty(), "{:?}", problems.into_vec());
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn a_stray_key_in_any_table_is_an_error_naming_it() {
        let text = default_toml();
        let doc: toml_edit::DocumentMut = text.parse().unwrap();
        let tables: Vec<String> = doc
            .iter()
            .filter(|(_, i)| i.is_table())
            .map(|(k, _)| k.to_string())
            .collect();
        assert!(tables.len() >= 6, "{tables:?}");
        for table in tables {
            let mut doc = doc.clone();
            doc[&table]["no_such_key"] = toml_edit::value(1);
            let (_, problems) = serval_core::config::parse_collecting::<Config>(&doc.to_string());
            let keys: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
            assert!(
                keys.contains(&format!("{table}.no_such_key")),
                "{table}: {keys:?}"
            );
        }
    }
}
