//! `serval mail import-postfix /etc/postfix`: Postfix's `main.cf` (host name, networks,
//! destinations, smarthost, limits, queue times) and the smarthost's line of `sasl_passwd`
//! as a `[mail]` table, with every parameter that could not be taken named and why.
//!
//! main.cf is `name = value` lines with indented continuation lines and `$name` expansion
//! (postconf(5)); no kept crate reads it, so it is read here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{ByteSize, Cidr, HumanDuration, MailConfig, RelayTls};

#[derive(Debug, Default)]
pub struct Import {
    pub mail: MailConfig,
    /// "main.cf: myhostname = mail.example.test -> hostname", one per parameter taken.
    pub taken: Vec<String>,
    /// One per parameter or value left out, with the reason.
    pub skipped: Vec<String>,
    /// The smarthost password from sasl_passwd (the caller writes it to a file; it is
    /// never printed).
    pub relay_password: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Parameters of main.cf in file order (a later line replaces an earlier one, as in Postfix).
pub fn parse_main_cf(text: &str) -> BTreeMap<String, String> {
    let mut params = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if line.trim_start().starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.as_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = current.take() {
            params.insert(name, value);
        }
        if let Some((name, value)) = line.split_once('=') {
            current = Some((name.trim().to_string(), value.trim().to_string()));
        }
    }
    if let Some((name, value)) = current {
        params.insert(name, value);
    }
    params
}

/// `$name` and `${name}` replaced by their values (Postfix's defaults for myhostname and
/// mydomain), nested up to a few levels.
fn expand(value: &str, params: &BTreeMap<String, String>, depth: usize) -> String {
    if depth > 5 || !value.contains('$') {
        return value.to_string();
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], &braced[end + 1..]),
                None => (braced, ""),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        out.push_str(&expand(&lookup(name, params), params, depth + 1));
        rest = tail;
    }
    out.push_str(rest);
    out
}

fn lookup(name: &str, params: &BTreeMap<String, String>) -> String {
    if let Some(v) = params.get(name) {
        return v.clone();
    }
    match name {
        "myhostname" => crate::config::machine_hostname(),
        "mydomain" => {
            let host = params
                .get("myhostname")
                .cloned()
                .unwrap_or_else(crate::config::machine_hostname);
            host.split_once('.')
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "localdomain".into())
        }
        _ => String::new(),
    }
}

fn list(value: &str) -> Vec<String> {
    value
        .split([' ', ',', '\t'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Postfix time values: a number with an optional unit s, m, h, d or w (`default_unit`
/// when none).
fn postfix_duration(value: &str, default_unit: char) -> Option<Duration> {
    let value = value.trim();
    let (number, unit) = match value.chars().last()? {
        c if c.is_ascii_alphabetic() => (&value[..value.len() - 1], c),
        _ => (value, default_unit),
    };
    let n: u64 = number.trim().parse().ok()?;
    let secs = match unit.to_ascii_lowercase() {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86400,
        'w' => n * 7 * 86400,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

/// Postfix writes IPv6 networks as `[::1]/128`.
fn cidr(entry: &str) -> Option<Cidr> {
    let text = entry.replace(['[', ']'], "");
    let text = if text.contains('/') {
        text
    } else if text.contains(':') {
        format!("{text}/128")
    } else {
        format!("{text}/32")
    };
    Cidr::try_from(text).ok()
}

/// Why a parameter Serval does not take is left out (the common ones; the rest get a
/// generic reason).
fn reason_skipped(name: &str) -> &'static str {
    match name {
        "alias_maps" | "alias_database" | "virtual_alias_maps" => {
            "aliases are not read: give users their other addresses with `serval user add --email`"
        }
        "smtpd_tls_cert_file" | "smtpd_tls_key_file" | "smtpd_tls_chain_files" => {
            "Serval's listeners use the [tls] certificate: set [tls] cert and key"
        }
        "inet_interfaces" | "inet_protocols" => {
            "listeners are set by mail.listen and mail.submission_listen (master.cf is not read)"
        }
        "transport_maps" | "sender_dependent_relayhost_maps" | "relay_domains" => {
            "per-domain routing is not supported: all non-local mail goes to one smarthost or the MX"
        }
        "mailbox_command" | "mailbox_transport" | "home_mailbox" | "mail_spool_directory" => {
            "local mail goes to Maildirs under data_dir/mail/USER"
        }
        "smtpd_relay_restrictions" | "smtpd_recipient_restrictions" => {
            "Serval's rule is fixed: relay for mynetworks and logged-in users only"
        }
        "myorigin" | "append_dot_mydomain" => "Serval keeps sender addresses as given",
        "smtp_tls_CApath" | "smtp_tls_CAfile" => {
            "the smarthost's certificate is checked against the web PKI roots"
        }
        "smtpd_banner" | "biff" | "readme_directory" | "compatibility_level"
        | "smtpd_tls_security_level" | "smtpd_tls_session_cache_database"
        | "smtp_tls_session_cache_database" | "smtpd_use_tls" | "smtp_use_tls"
        | "recipient_delimiter" | "mailbox_size_limit" | "smtp_sasl_security_options"
        | "smtp_sasl_tls_security_options" | "smtpd_sasl_auth_enable" | "smtpd_sasl_type"
        | "smtpd_sasl_path" | "myorigin_domain" | "mydomain" => {
            "no Serval setting (Serval's own behaviour applies)"
        }
        _ => "no Serval equivalent",
    }
}

/// Reads `dir/main.cf` and, when SASL is on, the text form of `smtp_sasl_password_maps`.
pub fn import(dir: &Path) -> Result<Import, ImportError> {
    let main_cf = dir.join("main.cf");
    let text = std::fs::read_to_string(&main_cf).map_err(|source| ImportError::Read {
        path: main_cf.clone(),
        source,
    })?;
    let params = parse_main_cf(&text);
    let get = |name: &str| params.get(name).map(|v| expand(v, &params, 0));
    let mut out = Import {
        mail: MailConfig {
            enabled: true,
            ..MailConfig::default()
        },
        ..Import::default()
    };

    if let Some(host) = get("myhostname") {
        out.mail.hostname = host.clone();
        took(&mut out, "myhostname", &host, "hostname");
    }
    let hostname = out.mail.effective_hostname();
    if let Some(value) = get("mydestination") {
        for d in list(&value) {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            if d.contains(':') || d.contains('/') {
                out.skipped.push(format!(
                    "main.cf: mydestination {d}: lookup tables are not read; list the domains"
                ));
            } else if d == "localhost" || d.starts_with("localhost.") || d == hostname {
                // The host name is always local in Serval; localhost needs no mail domain.
            } else if !out.mail.local_domains.contains(&d) {
                out.mail.local_domains.push(d);
            }
        }
        took(
            &mut out,
            "mydestination",
            &value,
            "local_domains (the host name and localhost are implied)",
        );
    }
    if let Some(value) = get("mynetworks") {
        let mut networks = Vec::new();
        for entry in list(&value) {
            match cidr(&entry) {
                Some(c) => networks.push(c),
                None => out.skipped.push(format!(
                    "main.cf: mynetworks {entry}: not a network (tables and host names are not read)"
                )),
            }
        }
        out.mail.mynetworks = networks;
        took(&mut out, "mynetworks", &value, "mynetworks");
    }
    if let Some(value) = get("message_size_limit") {
        match value.parse::<u64>() {
            // 0 means no limit in Postfix; Serval keeps a limit, a large one.
            Ok(0) => {
                out.mail.max_message_size = ByteSize(1 << 30);
                out.skipped.push(
                    "main.cf: message_size_limit = 0 (no limit): Serval keeps one; set to 1 GiB"
                        .into(),
                );
            }
            Ok(n) => {
                out.mail.max_message_size = ByteSize(n);
                took(&mut out, "message_size_limit", &value, "max_message_size");
            }
            Err(_) => out.skipped.push(format!(
                "main.cf: message_size_limit = {value}: not a number of bytes"
            )),
        }
    }
    if let Some(value) = get("smtpd_recipient_limit") {
        if let Ok(n) = value.parse::<usize>() {
            out.mail.max_recipients = n;
            took(&mut out, "smtpd_recipient_limit", &value, "max_recipients");
        }
    }
    for (name, default_unit, key) in [
        ("minimal_backoff_time", 's', "queue.retry_initial"),
        ("maximal_backoff_time", 's', "queue.retry_max"),
        ("maximal_queue_lifetime", 'd', "queue.max_age"),
    ] {
        let Some(value) = get(name) else { continue };
        match postfix_duration(&value, default_unit) {
            Some(d) => {
                let d = HumanDuration(d);
                match name {
                    "minimal_backoff_time" => out.mail.queue.retry_initial = d,
                    "maximal_backoff_time" => out.mail.queue.retry_max = d,
                    _ => out.mail.queue.max_age = d,
                }
                took(&mut out, name, &value, key);
            }
            None => out.skipped.push(format!(
                "main.cf: {name} = {value}: not a Postfix time value"
            )),
        }
    }

    let relayhost = get("relayhost").unwrap_or_default();
    if !relayhost.trim().is_empty() {
        let relayhost = relayhost.trim().to_string();
        let (host, port, bracketed) = split_relayhost(&relayhost);
        if !bracketed {
            out.skipped.push(format!(
                "main.cf: relayhost = {relayhost}: without [brackets] Postfix looks up {host}'s MX; Serval connects to {host} itself"
            ));
        }
        out.mail.relay.host = format!("{host}:{}", port.unwrap_or(25));
        let wrapper = get("smtp_tls_wrappermode").is_some_and(|v| v == "yes");
        let level = get("smtp_tls_security_level").unwrap_or_default();
        out.mail.relay.tls = if wrapper {
            RelayTls::Tls
        } else {
            match level.as_str() {
                "encrypt" | "verify" | "secure" | "dane" | "dane-only" | "fingerprint" => {
                    RelayTls::Starttls
                }
                "may" => {
                    out.skipped.push("main.cf: smtp_tls_security_level = may: Serval requires STARTTLS at the smarthost (set mail.relay.tls = \"none\" for a relay without TLS)".into());
                    RelayTls::Starttls
                }
                _ => RelayTls::None,
            }
        };
        took(&mut out, "relayhost", &relayhost, "relay.host");
        if get("smtp_sasl_auth_enable").is_some_and(|v| v == "yes") {
            match get("smtp_sasl_password_maps") {
                Some(maps) => read_sasl_passwd(dir, &maps, &relayhost, &host, &mut out),
                None => out.skipped.push(
                    "main.cf: smtp_sasl_auth_enable = yes but smtp_sasl_password_maps is unset"
                        .into(),
                ),
            }
        }
    }
    const TAKEN: &[&str] = &[
        "myhostname",
        "mydestination",
        "mynetworks",
        "message_size_limit",
        "smtpd_recipient_limit",
        "minimal_backoff_time",
        "maximal_backoff_time",
        "maximal_queue_lifetime",
        "relayhost",
        "smtp_tls_security_level",
        "smtp_tls_wrappermode",
        "smtp_sasl_auth_enable",
        "smtp_sasl_password_maps",
    ];
    for (name, value) in &params {
        if TAKEN.contains(&name.as_str()) {
            continue;
        }
        // An empty value is a default that changes nothing.
        if value.trim().is_empty() {
            continue;
        }
        out.skipped.push(format!(
            "main.cf: {name} = {value}: {}",
            reason_skipped(name)
        ));
    }
    Ok(out)
}

fn took(out: &mut Import, name: &str, value: &str, key: &str) {
    out.taken
        .push(format!("main.cf: {name} = {value} -> mail.{key}"));
}

/// "[smtp.isp.test]:587" -> ("smtp.isp.test", Some(587), true).
fn split_relayhost(text: &str) -> (String, Option<u16>, bool) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (
                host.to_string(),
                tail.strip_prefix(':').and_then(|p| p.parse().ok()),
                true,
            );
        }
    }
    match text.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => {
            (host.to_string(), port.parse().ok(), false)
        }
        _ => (text.to_string(), None, false),
    }
}

/// Finds the relay's line in the text form of the password map (`hash:FILE` reads `FILE`,
/// never the compiled `.db`).
fn read_sasl_passwd(dir: &Path, maps: &str, relayhost: &str, host: &str, out: &mut Import) {
    let Some(first) = list(maps).into_iter().next() else {
        return;
    };
    let path_text = first.split_once(':').map(|(_, p)| p).unwrap_or(&first);
    let mut path = PathBuf::from(path_text);
    if !path.is_absolute() {
        path = dir.join(path);
    }
    // Tests and copies of /etc/postfix elsewhere: the map's file name within DIR.
    if !path.exists() {
        if let Some(name) = path.file_name() {
            let local = dir.join(name);
            if local.exists() {
                path = local;
            }
        }
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            out.skipped.push(format!(
                "{}: {e}: set mail.relay.user and password_file by hand",
                path.display()
            ));
            return;
        }
    };
    let keys = [relayhost.to_string(), format!("[{host}]"), host.to_string()];
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if !keys.iter().any(|k| k == key) {
            continue;
        }
        let Some((user, password)) = value.trim().split_once(':') else {
            out.skipped.push(format!(
                "{}: the line for {key} is not USER:PASSWORD",
                path.display()
            ));
            return;
        };
        out.mail.relay.user = user.to_string();
        out.relay_password = Some(password.to_string());
        out.taken.push(format!(
            "{}: {key} {user}:*** -> mail.relay.user and password_file",
            path.display()
        ));
        return;
    }
    out.skipped.push(format!(
        "{}: no line for {relayhost}: set mail.relay.user and password_file by hand",
        path.display()
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIN_CF: &str = "\
# Debian's main.cf, edited
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
myhostname = mail.example.test
mydomain = example.test
mydestination = $myhostname, $mydomain, localhost.$mydomain, localhost,
    office.example.test
relayhost = [smtp.isp.test]:587
mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128
    192.168.1.0/24
message_size_limit = 20480000
maximal_queue_lifetime = 3d
minimal_backoff_time = 300s
smtp_tls_security_level = encrypt
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd
alias_maps = hash:/etc/aliases
inet_interfaces = all
";

    #[test]
    fn main_cf_becomes_a_mail_table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("main.cf"), MAIN_CF).unwrap();
        std::fs::write(
            dir.path().join("sasl_passwd"),
            "# smarthost\n[smtp.isp.test]:587 office@isp.test:s3cret:with:colons\n",
        )
        .unwrap();
        let import = import(dir.path()).unwrap();
        let mail = &import.mail;
        assert_eq!(mail.hostname, "mail.example.test");
        assert_eq!(
            mail.local_domains,
            ["example.test", "office.example.test"],
            "{:?}",
            import.taken
        );
        assert_eq!(mail.mynetworks.len(), 4);
        assert_eq!(mail.relay.host, "smtp.isp.test:587");
        assert_eq!(mail.relay.tls, RelayTls::Starttls);
        assert_eq!(mail.relay.user, "office@isp.test");
        assert_eq!(import.relay_password.as_deref(), Some("s3cret:with:colons"));
        assert_eq!(mail.max_message_size.0, 20_480_000);
        assert_eq!(mail.queue.max_age.0, Duration::from_secs(3 * 86400));
        assert_eq!(mail.queue.retry_initial.0, Duration::from_secs(300));
        let skipped = import.skipped.join("\n");
        assert!(skipped.contains("alias_maps = hash:/etc/aliases: aliases are not read"));
        assert!(skipped.contains("inet_interfaces = all"));
        assert!(skipped.contains("smtpd_banner"));
        assert!(!skipped.contains("s3cret") && !import.taken.join(" ").contains("s3cret"));
    }

    #[test]
    fn unbracketed_relayhost_is_noted_and_missing_password_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.cf"),
            "relayhost = smtp.isp.test\nsmtp_sasl_auth_enable = yes\nsmtp_sasl_password_maps = hash:/nonexistent/sasl_passwd\n",
        )
        .unwrap();
        let import = import(dir.path()).unwrap();
        assert_eq!(import.mail.relay.host, "smtp.isp.test:25");
        assert_eq!(import.mail.relay.tls, RelayTls::None);
        let skipped = import.skipped.join("\n");
        assert!(skipped.contains("looks up smtp.isp.test's MX"), "{skipped}");
        assert!(skipped.contains("/nonexistent/sasl_passwd"), "{skipped}");
    }

    #[test]
    fn expansion_and_continuations() {
        let params = parse_main_cf("a = x\nb = $a-${a}\n  more\n# c = no\n");
        assert_eq!(expand(&params["b"], &params, 0), "x-x more");
        assert!(!params.contains_key("c"));
        assert_eq!(postfix_duration("2h", 's'), Some(Duration::from_secs(7200)));
        assert_eq!(
            postfix_duration("5", 'd'),
            Some(Duration::from_secs(432000))
        );
    }
}
