//! The `[mail]` table.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
pub use serval_core::cidr::Cidr;
pub use serval_core::config::{ByteSize, HumanDuration, Listen, Problems};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MailConfig {
    pub enabled: bool,
    /// HELO/EHLO name, Message-ID domain, Received "by"; empty: the machine's host name.
    pub hostname: String,
    /// SMTP (the port 25 role): relay for `mynetworks`, inbound mail for `local_domains`.
    pub listen: Listen,
    /// Submission (the port 587 role): AUTH against the directory, STARTTLS.
    pub submission_listen: Listen,
    /// Clients that may relay without AUTH (scripts, hooks).
    pub mynetworks: Vec<Cidr>,
    /// Domains delivered to local Maildirs (the host name always is one).
    pub local_domains: Vec<String>,
    /// The user who gets postmaster@ mail and double bounces.
    pub postmaster: String,
    /// Largest message accepted (SIZE= at MAIL and the real DATA).
    pub max_message_size: ByteSize,
    /// Most recipients of one message.
    pub max_recipients: usize,
    /// Most SMTP sessions open at once over all listeners; more get 421.
    pub max_connections: usize,
    /// DNS servers for MX, MTA-STS and address lookups ("host:port"); empty: /etc/resolv.conf.
    pub nameservers: Vec<String>,
    /// PEM CA certificates trusted besides the web PKI for verified TLS (smarthost, MTA-STS).
    pub ca_file: PathBuf,
    /// Honour MTA-STS policies (RFC 8461) when delivering direct to an MX.
    pub mta_sts: bool,
    /// Honour DANE TLSA records (RFC 7672) when delivering direct to an MX.
    pub dane: bool,
    pub inbound: InboundConfig,
    pub relay: RelayConfig,
    pub queue: QueueConfig,
    pub dkim: DkimConfig,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            enabled: true,
            hostname: String::new(),
            listen: Listen::one("127.0.0.1:2525"),
            submission_listen: Listen::one("127.0.0.1:5587"),
            mynetworks: ["127.0.0.1/32", "::1/128"]
                .into_iter()
                .filter_map(|c| Cidr::try_from(c.to_string()).ok())
                .collect(),
            local_domains: Vec::new(),
            postmaster: "admin".into(),
            // About Postfix's message_size_limit default (10240000).
            max_message_size: ByteSize(10 << 20),
            // Postfix's smtpd_recipient_limit.
            max_recipients: 1000,
            max_connections: 200,
            nameservers: Vec::new(),
            ca_file: PathBuf::new(),
            mta_sts: true,
            dane: true,
            inbound: InboundConfig::default(),
            relay: RelayConfig::default(),
            queue: QueueConfig::default(),
            dkim: DkimConfig::default(),
        }
    }
}

/// `[mail.inbound]`: checks of mail from outside (not mynetworks, not logged in).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct InboundConfig {
    /// SPF, DKIM and DMARC, recorded in an Authentication-Results header.
    pub checks: bool,
    /// 550 for a DMARC failure under p=reject; p=quarantine is marked.
    pub enforce_dmarc: bool,
    /// 550 for an SPF "fail" even without DMARC (breaks plain forwarding).
    pub reject_spf_fail: bool,
}

impl Default for InboundConfig {
    fn default() -> Self {
        InboundConfig {
            checks: true,
            enforce_dmarc: true,
            reject_spf_fail: false,
        }
    }
}

/// How the relay connection is secured.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelayTls {
    /// Plain SMTP (a relay on the same machine or a trusted LAN).
    None,
    /// STARTTLS required, certificate verified against the web PKI roots.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465), certificate verified.
    Tls,
}

/// `[mail.relay]`: the smarthost; an empty `host` means direct delivery to each domain's MX.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    /// "host:port" (port 587 when left out).
    pub host: String,
    pub tls: RelayTls,
    /// AUTH user at the smarthost; empty: no AUTH.
    pub user: String,
    /// File holding the password followed by a newline.
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// First retry after a temporary failure; each next one waits twice as long, up to `retry_max`.
    pub retry_initial: HumanDuration,
    pub retry_max: HumanDuration,
    /// A message still undelivered after this is bounced with a DSN.
    pub max_age: HumanDuration,
    /// Deliveries in flight at once.
    pub concurrency: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            retry_initial: HumanDuration(std::time::Duration::from_secs(60)),
            // About Postfix's maximal_backoff_time (4000 s).
            retry_max: HumanDuration(std::time::Duration::from_secs(3600)),
            max_age: HumanDuration(std::time::Duration::from_secs(5 * 86400)),
            concurrency: 16,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DkimConfig {
    /// Sign mail leaving for other domains (keys generated into data_dir/mail/.dkim).
    pub enabled: bool,
    /// Selector of the Ed25519 key.
    pub selector: String,
    /// Keys to sign with, one DKIM-Signature each.
    pub algorithms: Vec<DkimAlgorithm>,
    /// Selector of the RSA key; empty: SELECTOR-rsa.
    pub rsa_selector: String,
    /// An RSA private key to use instead of a generated one (PEM, PKCS#1 or PKCS#8).
    pub rsa_key_file: PathBuf,
}

impl Default for DkimConfig {
    fn default() -> Self {
        DkimConfig {
            enabled: false,
            selector: "serval".into(),
            algorithms: vec![DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa],
            rsa_selector: String::new(),
            rsa_key_file: PathBuf::new(),
        }
    }
}

impl DkimConfig {
    pub fn effective_rsa_selector(&self) -> String {
        if self.rsa_selector.trim().is_empty() {
            format!("{}-rsa", self.selector.trim())
        } else {
            self.rsa_selector.trim().to_string()
        }
    }
}

/// A DKIM signing algorithm.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DkimAlgorithm {
    /// ed25519-sha256 (RFC 8463).
    Ed25519,
    /// rsa-sha256 with a 2048-bit key.
    Rsa,
}

impl MailConfig {
    /// The EHLO name: `hostname`, else the machine's.
    pub fn effective_hostname(&self) -> String {
        if !self.hostname.trim().is_empty() {
            return self.hostname.trim().to_ascii_lowercase();
        }
        machine_hostname()
    }

    /// Local domains, lower case, with the host name.
    pub fn effective_local_domains(&self) -> Vec<String> {
        let mut domains: Vec<String> = self
            .local_domains
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect();
        domains.push(self.effective_hostname());
        domains.sort();
        domains.dedup();
        domains
    }

    pub fn validate(&self, data_dir: &Path, problems: &mut Problems) {
        if !self.enabled {
            return;
        }
        if self.listen.addrs().is_empty() && self.submission_listen.addrs().is_empty() {
            problems.error(
                "mail.listen",
                "mail is enabled but neither listen nor submission_listen has an address",
            );
        }
        if !self.hostname.is_empty() && !is_domain(&self.hostname) {
            problems.error(
                "mail.hostname",
                format!(
                    "`{}` is not a host name like mail.example.com",
                    self.hostname
                ),
            );
        }
        for (i, d) in self.local_domains.iter().enumerate() {
            if !is_domain(d) {
                problems.error(
                    format!("mail.local_domains[{i}]"),
                    format!("`{d}` is not a domain name"),
                );
            }
        }
        if self.postmaster.trim().is_empty() {
            problems.error(
                "mail.postmaster",
                "empty: bounces nobody can take need a user",
            );
        }
        if self.max_message_size.0 < 1024 {
            problems.error("mail.max_message_size", "must be at least 1KB");
        }
        if self.max_recipients == 0 {
            problems.error("mail.max_recipients", "must be at least 1");
        }
        if self.max_connections == 0 {
            problems.error("mail.max_connections", "must be at least 1");
        }
        if self.queue.retry_initial.0.is_zero() {
            problems.error("mail.queue.retry_initial", "must be more than 0 s");
        }
        if self.queue.retry_max.0 < self.queue.retry_initial.0 {
            problems.error(
                "mail.queue.retry_max",
                "must be at least mail.queue.retry_initial",
            );
        }
        if self.queue.max_age.0 < self.queue.retry_initial.0 {
            problems.error(
                "mail.queue.max_age",
                "must be at least mail.queue.retry_initial",
            );
        }
        if self.queue.concurrency == 0 {
            problems.error("mail.queue.concurrency", "must be at least 1");
        }
        if self.dkim.enabled {
            self.dkim.validate(data_dir, problems);
        }
        for (i, server) in self.nameservers.iter().enumerate() {
            if let Err(e) = parse_nameserver(server) {
                problems.error(format!("mail.nameservers[{i}]"), e);
            }
        }
        if let Some(path) = self.ca_file_path(data_dir) {
            if let Err(e) = crate::smtp::client::roots(Some(&path)) {
                problems.error("mail.ca_file", e);
            }
        }
        self.relay.validate(data_dir, problems);
        for cidr in &self.mynetworks {
            if cidr.0.prefix_len() == 0 {
                problems.warning(
                    "mail.mynetworks",
                    format!("{cidr} lets every address on the Internet relay (an open relay)"),
                );
            }
        }
    }
}

impl MailConfig {
    pub fn ca_file_path(&self, data_dir: &Path) -> Option<PathBuf> {
        if self.ca_file.as_os_str().is_empty() {
            None
        } else if self.ca_file.is_absolute() {
            Some(self.ca_file.clone())
        } else {
            Some(data_dir.join(&self.ca_file))
        }
    }
}

/// "host:port" or a bare address (port 53) of a DNS server.
pub fn parse_nameserver(text: &str) -> Result<std::net::SocketAddr, String> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| format!("`{text}` is not an address like 192.0.2.53 or 127.0.0.1:5353"))
}

impl DkimConfig {
    fn validate(&self, data_dir: &Path, problems: &mut Problems) {
        let rsa = self.algorithms.contains(&DkimAlgorithm::Rsa);
        if self.algorithms.is_empty() {
            problems.error(
                "mail.dkim.algorithms",
                "empty: name \"ed25519\", \"rsa\" or both",
            );
        }
        if self.algorithms.len() == 2 && self.algorithms[0] == self.algorithms[1] {
            problems.error("mail.dkim.algorithms", "names the same algorithm twice");
        }
        if !is_label(&self.selector) {
            problems.error(
                "mail.dkim.selector",
                format!("`{}` is not a DNS label", self.selector),
            );
        }
        if rsa && !is_label(&self.effective_rsa_selector()) {
            problems.error(
                "mail.dkim.rsa_selector",
                format!("`{}` is not a DNS label", self.effective_rsa_selector()),
            );
        }
        if rsa
            && self.algorithms.contains(&DkimAlgorithm::Ed25519)
            && self.effective_rsa_selector() == self.selector.trim()
        {
            problems.error(
                "mail.dkim.rsa_selector",
                "the same as mail.dkim.selector: two keys cannot share one DNS name",
            );
        }
        if rsa && !self.rsa_key_file.as_os_str().is_empty() {
            let path = if self.rsa_key_file.is_absolute() {
                self.rsa_key_file.clone()
            } else {
                data_dir.join(&self.rsa_key_file)
            };
            if let Err(e) = std::fs::metadata(&path) {
                problems.error("mail.dkim.rsa_key_file", format!("{}: {e}", path.display()));
            }
        }
    }
}

impl RelayConfig {
    pub fn is_set(&self) -> bool {
        !self.host.trim().is_empty()
    }

    /// The smarthost's host and port.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        let text = self.host.trim();
        let default_port = if self.tls == RelayTls::Tls { 465 } else { 587 };
        if let Some(rest) = text.strip_prefix('[') {
            let (host, tail) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{text}` has no closing ]"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("`{p}` is not a port"))?,
                None => default_port,
            };
            return Ok((host.to_string(), port));
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.contains(':') => {
                let port = port
                    .parse()
                    .map_err(|_| format!("`{port}` is not a port number"))?;
                Ok((host.to_string(), port))
            }
            _ => Ok((text.to_string(), default_port)),
        }
    }

    /// The AUTH password, read from `password_file` (relative to `data_dir`).
    pub fn password(&self, data_dir: &Path) -> Result<Option<String>, String> {
        if self.user.is_empty() {
            return Ok(None);
        }
        if self.password_file.as_os_str().is_empty() {
            return Err("mail.relay.user is set but mail.relay.password_file is not".into());
        }
        let path = if self.password_file.is_absolute() {
            self.password_file.clone()
        } else {
            data_dir.join(&self.password_file)
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("mail.relay.password_file {}: {e}", path.display()))?;
        let password = text.trim_end_matches(['\r', '\n']).to_string();
        if password.is_empty() {
            return Err(format!(
                "mail.relay.password_file {} is empty",
                path.display()
            ));
        }
        Ok(Some(password))
    }

    fn validate(&self, data_dir: &Path, problems: &mut Problems) {
        if !self.is_set() {
            if !self.user.is_empty() {
                problems.warning(
                    "mail.relay.user",
                    "set, but mail.relay.host is empty: mail goes direct to each domain's MX",
                );
            }
            return;
        }
        if let Err(e) = self.host_port() {
            problems.error("mail.relay.host", e);
        }
        if self.user.is_empty() {
            problems.warning(
                "mail.relay.user",
                "empty: the smarthost is used without AUTH (most ISPs' relays refuse that)",
            );
        } else if let Err(e) = self.password(data_dir) {
            problems.error("mail.relay.password_file", e);
        }
        if self.tls == RelayTls::None && !self.user.is_empty() {
            problems.warning(
                "mail.relay.tls",
                "\"none\": the relay password crosses the network in the clear",
            );
        }
    }
}

/// Whether `text` is a plausible host or domain name.
pub fn is_domain(text: &str) -> bool {
    let text = text.trim_end_matches('.');
    !text.is_empty() && text.len() <= 253 && text.split('.').all(is_label)
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && !label.starts_with('-')
        && !label.ends_with('-')
}

/// The machine's host name, lower case ("localhost" when it has none).
pub fn machine_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    if is_domain(&name) {
        name
    } else {
        "localhost".into()
    }
}

/// Where the mail service keeps its queue and mailboxes.
pub fn mail_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_host_port_defaults_follow_tls_mode() {
        let mut r = RelayConfig {
            host: "smtp.example.com".into(),
            ..Default::default()
        };
        assert_eq!(r.host_port().unwrap(), ("smtp.example.com".into(), 587));
        r.tls = RelayTls::Tls;
        assert_eq!(r.host_port().unwrap().1, 465);
        r.host = "127.0.0.1:2626".into();
        assert_eq!(r.host_port().unwrap(), ("127.0.0.1".into(), 2626));
        r.host = "[::1]:25".into();
        assert_eq!(r.host_port().unwrap(), ("::1".into(), 25));
        r.host = "h:x".into();
        assert!(r.host_port().is_err());
    }

    #[test]
    fn missing_password_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let c = MailConfig {
            enabled: true,
            relay: RelayConfig {
                host: "smtp.example.com:587".into(),
                user: "u".into(),
                password_file: "nope".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut p = Problems::new();
        c.validate(dir.path(), &mut p);
        let found: Vec<_> = p.iter().map(|p| p.key.clone()).collect();
        assert!(
            found.contains(&"mail.relay.password_file".to_string()),
            "{found:?}"
        );
    }
}
