//! MTA-STS (RFC 8461): a domain publishes, over HTTPS, which MX hosts are its own and that
//! they must be reached over verified TLS. Serval looks the policy up before direct MX
//! delivery, keeps it for its max_age (in `data_dir/mail/mta-sts.json`, so a restart does
//! not open a downgrade window), and in "enforce" mode delivers only to matching MX hosts
//! whose certificate verifies; otherwise the message is deferred with the reason.
//!
//! The policy grammar is a handful of "key: value" lines, parsed here (mail-auth parses
//! only the TXT record's sibling, TLS-RPT). The fetch is one HTTP/1.1 GET through hyper.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// RFC 8461 3.3: policies larger than 64 KiB are refused.
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// RFC 8461 3.3 suggests a fetch timeout of a minute at most; 10 s keeps the queue moving.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest max_age honoured (RFC 8461 3.2: up to 31557600 s, a year).
const MAX_AGE_CAP: u64 = 31_557_600;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    pub mode: Mode,
    /// MX patterns: a host name, or "*.example.com" for one more label.
    pub mx: Vec<String>,
    pub max_age: u64,
}

/// The policy file's text (RFC 8461 3.2); errors name the line or key.
pub fn parse_policy(text: &str) -> Result<Policy, String> {
    let (mut version, mut mode, mut max_age) = (None, None, None);
    let mut mx = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!("line {}: `{line}` is not `key: value`", n + 1));
        };
        let value = value.trim();
        match key.trim() {
            "version" => version = Some(value.to_string()),
            "mode" => {
                mode = Some(match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    other => return Err(format!("mode `{other}` is not enforce, testing or none")),
                })
            }
            "max_age" => {
                max_age = Some(
                    value
                        .parse::<u64>()
                        .map_err(|_| format!("max_age `{value}` is not a number of seconds"))?
                        .min(MAX_AGE_CAP),
                )
            }
            "mx" => mx.push(value.trim_end_matches('.').to_ascii_lowercase()),
            // Unknown keys are ignored for extensibility (RFC 8461 3.2).
            _ => {}
        }
    }
    if version.as_deref() != Some("STSv1") {
        return Err("no `version: STSv1` line".into());
    }
    let mode = mode.ok_or("no `mode:` line")?;
    let max_age = max_age.ok_or("no `max_age:` line")?;
    if mode != Mode::None && mx.is_empty() {
        return Err("no `mx:` line".into());
    }
    Ok(Policy { mode, mx, max_age })
}

impl Policy {
    /// Whether MX host `host` matches one of the policy's patterns (RFC 8461 4.1).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.mx
            .iter()
            .any(|pattern| match pattern.strip_prefix("*.") {
                Some(parent) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
                None => *pattern == host,
            })
    }
}

/// The policy id of the `_mta-sts` TXT records: exactly one must start with v=STSv1.
pub fn parse_txt(records: &[String]) -> Result<String, String> {
    let ours: Vec<&String> = records
        .iter()
        .filter(|r| r.trim_start().starts_with("v=STSv1"))
        .collect();
    let [record] = ours.as_slice() else {
        return Err(format!(
            "{} v=STSv1 records (exactly one is needed)",
            ours.len()
        ));
    };
    record
        .split(';')
        .filter_map(|field| field.trim().split_once('='))
        .find(|(k, _)| k.trim() == "id")
        .map(|(_, v)| v.trim().to_string())
        .filter(|id| {
            !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_alphanumeric())
        })
        .ok_or_else(|| format!("`{record}` has no valid id= (1 to 32 letters and digits)"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Cached {
    id: String,
    policy: Policy,
    /// Unix seconds after which the policy is no longer used.
    expires: u64,
}

/// Looks policies up and keeps them.
pub struct MtaSts {
    cache: Mutex<HashMap<String, Cached>>,
    path: PathBuf,
    roots: Arc<rustls::RootCertStore>,
    /// 443; other values only in tests.
    pub https_port: u16,
}

/// What a lookup found, for the delivery and its log line.
pub enum Lookup {
    /// No policy (none published, or none could be fetched and none is cached).
    NoPolicy,
    Found(Policy),
}

impl MtaSts {
    pub fn open(path: PathBuf, roots: Arc<rustls::RootCertStore>) -> MtaSts {
        let cache = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        MtaSts {
            cache: Mutex::new(cache),
            path,
            roots,
            https_port: 443,
        }
    }

    /// The policy for `domain`: a fresh one when its TXT id changed, else the cached one.
    pub async fn lookup(&self, resolver: &hickory_resolver::TokioResolver, domain: &str) -> Lookup {
        let now = crate::queue::now_micros() / 1_000_000;
        let cached = self
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(domain).cloned())
            .filter(|c| c.expires > now);
        let id = match txt_records(resolver, &format!("_mta-sts.{domain}.")).await {
            Ok(records) if records.is_empty() => None,
            Ok(records) => match parse_txt(&records) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::warn!(target: "serval_mail::mta_sts", domain, error = %e, "MTA-STS record of {domain} is malformed");
                    None
                }
            },
            Err(e) => {
                tracing::debug!(target: "serval_mail::mta_sts", domain, error = %e, "no MTA-STS record");
                None
            }
        };
        // RFC 8461 3.3/5.1: a cached policy stays in force until it expires, even when the
        // TXT record disappears or the fetch fails (that is what defeats a downgrade).
        let Some(id) = id else {
            return cached.map_or(Lookup::NoPolicy, |c| Lookup::Found(c.policy));
        };
        if let Some(c) = &cached {
            if c.id == id {
                return Lookup::Found(c.policy.clone());
            }
        }
        match self.fetch(resolver, domain).await {
            Ok(policy) => {
                tracing::info!(target: "serval_mail::mta_sts", domain, id, mode = ?policy.mode, mx = ?policy.mx, "fetched the MTA-STS policy of {domain}");
                self.store(
                    domain,
                    Cached {
                        id,
                        policy: policy.clone(),
                        expires: now + policy.max_age,
                    },
                );
                Lookup::Found(policy)
            }
            Err(e) => {
                tracing::warn!(target: "serval_mail::mta_sts", domain, error = %e, "MTA-STS policy of {domain} could not be fetched{}", if cached.is_some() { "; using the cached one" } else { "; delivering as if none were published" });
                cached.map_or(Lookup::NoPolicy, |c| Lookup::Found(c.policy))
            }
        }
    }

    fn store(&self, domain: &str, entry: Cached) {
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        cache.insert(domain.to_string(), entry);
        let now = crate::queue::now_micros() / 1_000_000;
        cache.retain(|_, c| c.expires > now);
        if let Ok(bytes) = serde_json::to_vec(&*cache) {
            let tmp = self.path.with_extension("json.tmp");
            if std::fs::write(&tmp, bytes)
                .and_then(|_| std::fs::rename(&tmp, &self.path))
                .is_err()
            {
                tracing::warn!(target: "serval_mail::mta_sts", path = %self.path.display(), "could not save the MTA-STS policy cache");
            }
        }
    }

    /// GET https://mta-sts.DOMAIN/.well-known/mta-sts.txt, certificate verified, no redirects.
    async fn fetch(
        &self,
        resolver: &hickory_resolver::TokioResolver,
        domain: &str,
    ) -> Result<Policy, String> {
        let host = format!("mta-sts.{domain}");
        let url = format!("https://{host}/.well-known/mta-sts.txt");
        let work = async {
            let addresses = addresses(resolver, &host).await?;
            let tcp = connect_any(&addresses, self.https_port).await?;
            let config = crate::smtp::client::verified_config(&self.roots);
            let name = rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| format!("`{host}`: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS with {host}: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .map_err(|e| format!("HTTP with {host}: {e}"))?;
            tokio::spawn(connection);
            let request = hyper::Request::get("/.well-known/mta-sts.txt")
                .header(hyper::header::HOST, host.as_str())
                .header(hyper::header::USER_AGENT, "serval")
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .map_err(|e| e.to_string())?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| format!("HTTP with {host}: {e}"))?;
            // RFC 8461 3.3: only 200 counts; redirects are not followed.
            if response.status() != hyper::StatusCode::OK {
                return Err(format!("{url} answered {}", response.status()));
            }
            let body = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                response.into_body(),
                MAX_POLICY_BYTES,
            ))
            .await
            .map_err(|e| format!("{url}: {e} (at most {MAX_POLICY_BYTES} bytes)"))?
            .to_bytes();
            let text = std::str::from_utf8(&body).map_err(|_| format!("{url} is not UTF-8"))?;
            parse_policy(text).map_err(|e| format!("{url}: {e}"))
        };
        tokio::time::timeout(FETCH_TIMEOUT, work)
            .await
            .map_err(|_| format!("{url} timed out after {} s", FETCH_TIMEOUT.as_secs()))?
    }
}

async fn txt_records(
    resolver: &hickory_resolver::TokioResolver,
    name: &str,
) -> Result<Vec<String>, String> {
    let lookup = resolver.txt_lookup(name).await.map_err(|e| e.to_string())?;
    Ok(lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::TXT(txt) => Some(
                txt.txt_data
                    .iter()
                    .map(|part| String::from_utf8_lossy(part).into_owned())
                    .collect::<String>(),
            ),
            _ => None,
        })
        .collect())
}

/// The addresses of `host` through the service's resolver (not the system's, which may be
/// a different view of DNS than the one MX lookups used).
pub async fn addresses(
    resolver: &hickory_resolver::TokioResolver,
    host: &str,
) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let lookup = resolver
        .lookup_ip(format!("{}.", host.trim_end_matches('.')))
        .await
        .map_err(|e| format!("address lookup of {host}: {e}"))?;
    let found: Vec<IpAddr> = lookup.iter().collect();
    if found.is_empty() {
        return Err(format!("{host} has no address"));
    }
    Ok(found)
}

async fn connect_any(addresses: &[IpAddr], port: u16) -> Result<tokio::net::TcpStream, String> {
    let mut last = String::from("no address");
    for ip in addresses {
        match tokio::net::TcpStream::connect((*ip, port)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = format!("connect to {ip}:{port}: {e}"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_and_match_like_rfc_8461() {
        let p = parse_policy(
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
        )
        .unwrap();
        assert_eq!(p.mode, Mode::Enforce);
        assert_eq!(p.max_age, 604800);
        assert!(p.allows("mail.example.com") && p.allows("MAIL.example.com."));
        assert!(p.allows("mx1.example.net"));
        // The wildcard stands for exactly one label.
        assert!(!p.allows("a.b.example.net") && !p.allows("example.net"));
        assert!(!p.allows("evil.example.org"));
        let errors = [
            ("mode: enforce\nmx: a\nmax_age: 1\n", "version"),
            (
                "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n",
                "strict",
            ),
            ("version: STSv1\nmode: enforce\nmax_age: 1\n", "mx"),
            (
                "version: STSv1\nmode: enforce\nmx: a\nmax_age: soon\n",
                "max_age",
            ),
            ("version: STSv1\nmode enforce\n", "line 2"),
        ];
        for (text, named) in errors {
            let e = parse_policy(text).unwrap_err();
            assert!(e.contains(named), "{text:?}: {e}");
        }
        let capped = parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999\n").unwrap();
        assert_eq!(capped.max_age, MAX_AGE_CAP);
    }

    #[test]
    fn txt_records_need_exactly_one_with_an_id() {
        let one = |r: &str| parse_txt(&[r.to_string()]);
        assert_eq!(one("v=STSv1; id=20261208T01;").unwrap(), "20261208T01");
        assert!(one("v=STSv1;").is_err());
        assert!(one("v=STSv1; id=has space").is_err());
        assert!(parse_txt(&["v=spf1 -all".into()]).is_err());
        assert!(parse_txt(&["v=STSv1; id=a".into(), "v=STSv1; id=b".into()]).is_err());
    }
}
