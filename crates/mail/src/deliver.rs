//! Delivery of one queued message: local recipients into their Maildirs, the others to the
//! smarthost or to each domain's MX. Each recipient gets its own outcome.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use crate::envelope::Envelope;
use crate::mta_sts::{Lookup, Mode, MtaSts, Policy};
use crate::smtp::client::{Connection, Failure, Hop, Reply, TlsPolicy};

/// What happened to one recipient in one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        hop: String,
        reply: String,
    },
    Temporary {
        hop: String,
        reason: String,
        status: String,
    },
    Permanent {
        hop: String,
        reason: String,
        status: String,
    },
}

impl Outcome {
    fn from_failure(hop: &str, failure: &Failure) -> Outcome {
        let status = failure
            .reply
            .as_ref()
            .and_then(Reply::enhanced)
            .unwrap_or_else(|| {
                if failure.permanent {
                    "5.0.0".into()
                } else {
                    "4.4.1".into()
                }
            });
        let reason = format!("{} failed: {}", failure.stage.name(), failure.message);
        if failure.permanent {
            Outcome::Permanent {
                hop: hop.to_string(),
                reason,
                status,
            }
        } else {
            Outcome::Temporary {
                hop: hop.to_string(),
                reason,
                status,
            }
        }
    }
}

static MAILDIR_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes the message into `mailboxes/USER/new` the Maildir way (tmp, fsync, rename), with
/// Return-Path and Delivered-To on top. Returns the file's path.
pub fn deliver_local(
    mailboxes: &Path,
    user: &str,
    envelope: &Envelope,
    recipient: &str,
    message: &[u8],
    hostname: &str,
) -> std::io::Result<PathBuf> {
    // User names are checked by the directory (no '/', no leading dot); `postmaster` by config.
    if user.is_empty() || user.contains('/') || user.starts_with('.') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("`{user}` cannot name a mailbox"),
        ));
    }
    let maildir = mailboxes.join(user);
    for sub in ["tmp", "new", "cur"] {
        std::fs::create_dir_all(maildir.join(sub))?;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let unique = format!(
        "{}.M{}P{}Q{}.{}",
        now.as_secs(),
        now.subsec_micros(),
        std::process::id(),
        MAILDIR_SEQ.fetch_add(1, Ordering::Relaxed),
        hostname
    );
    let tmp = maildir.join("tmp").join(&unique);
    let mut file = std::fs::File::create(&tmp)?;
    write!(
        file,
        "Return-Path: <{}>\r\nDelivered-To: {}\r\n",
        envelope.sender, recipient
    )?;
    file.write_all(message)?;
    file.sync_all()?;
    drop(file);
    let new = maildir.join("new").join(&unique);
    std::fs::rename(&tmp, &new)?;
    crate::queue::spool::sync_dir(&maildir.join("new"))?;
    Ok(new)
}

/// Where remote recipients go.
#[derive(Clone)]
pub enum Route {
    /// Everything through the smarthost.
    Relay {
        host: String,
        port: u16,
        tls: TlsPolicy,
        auth: Option<(String, String)>,
        roots: Arc<rustls::RootCertStore>,
    },
    /// Each domain's MX on port 25.
    Mx {
        resolver: Option<Arc<hickory_resolver::TokioResolver>>,
        port: u16,
        roots: Arc<rustls::RootCertStore>,
        /// None when `[mail] mta_sts = false`.
        mta_sts: Option<Arc<MtaSts>>,
    },
}

impl Route {
    pub fn describe(&self) -> String {
        match self {
            Route::Relay { host, port, .. } => format!("{host}:{port}"),
            Route::Mx { .. } => "MX".into(),
        }
    }
}

/// Delivers `indexes` (recipients of `envelope`) over the network.
pub async fn deliver_remote(
    route: &Route,
    helo: &str,
    envelope: &Envelope,
    indexes: &[usize],
    message: &[u8],
) -> Vec<(usize, Outcome)> {
    match route {
        Route::Relay {
            host,
            port,
            tls,
            auth,
            roots,
        } => {
            let hop = Hop {
                host: host.clone(),
                port: *port,
                addresses: Vec::new(),
                tls: *tls,
                tls_required_by: "[mail.relay] tls".into(),
                roots: roots.clone(),
                auth: auth.clone(),
                helo: helo.to_string(),
            };
            session(&hop, envelope, indexes, message).await
        }
        Route::Mx {
            resolver,
            port,
            roots,
            mta_sts,
        } => {
            let mut by_domain: Vec<(String, Vec<usize>)> = Vec::new();
            for &i in indexes {
                let domain = crate::envelope::split_address(&envelope.recipients[i].address)
                    .map(|(_, d)| d)
                    .unwrap_or_default();
                match by_domain.iter_mut().find(|(d, _)| *d == domain) {
                    Some((_, list)) => list.push(i),
                    None => by_domain.push((domain, vec![i])),
                }
            }
            let mut out = Vec::new();
            for (domain, list) in by_domain {
                out.extend(
                    deliver_mx(
                        resolver.as_deref(),
                        *port,
                        roots,
                        mta_sts.as_deref(),
                        helo,
                        &domain,
                        envelope,
                        &list,
                        message,
                    )
                    .await,
                );
            }
            out
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn deliver_mx(
    resolver: Option<&hickory_resolver::TokioResolver>,
    port: u16,
    roots: &Arc<rustls::RootCertStore>,
    mta_sts: Option<&MtaSts>,
    helo: &str,
    domain: &str,
    envelope: &Envelope,
    indexes: &[usize],
    message: &[u8],
) -> Vec<(usize, Outcome)> {
    let all = |o: Outcome| indexes.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
    let hosts = match mx_hosts(resolver, domain).await {
        Ok(hosts) => hosts,
        Err(MxError::NullMx) => {
            return all(Outcome::Permanent {
                hop: format!("MX of {domain}"),
                reason: format!("{domain} accepts no mail (null MX, RFC 7505)"),
                status: "5.1.10".into(),
            })
        }
        Err(MxError::NoDomain) => {
            return all(Outcome::Permanent {
                hop: format!("MX of {domain}"),
                reason: format!("the domain {domain} does not exist (NXDOMAIN)"),
                status: "5.1.2".into(),
            })
        }
        Err(MxError::Temporary(e)) => {
            return all(Outcome::Temporary {
                hop: format!("MX of {domain}"),
                reason: format!("MX lookup of {domain} failed: {e}"),
                status: "4.4.3".into(),
            })
        }
    };
    let policy = match (mta_sts, resolver) {
        (Some(mta_sts), Some(resolver)) => match mta_sts.lookup(resolver, domain).await {
            Lookup::Found(p) if p.mode != Mode::None => Some(p),
            _ => None,
        },
        _ => None,
    };
    let enforce = policy.as_ref().is_some_and(|p| p.mode == Mode::Enforce);
    let hosts = match &policy {
        Some(policy) => match mx_allowed_by(policy, domain, hosts) {
            Ok(hosts) => hosts,
            Err(reason) => {
                return all(Outcome::Temporary {
                    hop: format!("MX of {domain}"),
                    reason,
                    status: "4.7.5".into(),
                })
            }
        },
        None => hosts,
    };
    let mut last = Vec::new();
    for host in hosts {
        let addresses = match resolver {
            Some(resolver) => match crate::mta_sts::addresses(resolver, &host).await {
                Ok(a) => a,
                Err(reason) => {
                    last = all(Outcome::Temporary {
                        hop: format!("{host}:{port}"),
                        reason,
                        status: "4.4.4".into(),
                    });
                    continue;
                }
            },
            None => Vec::new(),
        };
        let hop = Hop {
            host: host.clone(),
            port,
            addresses,
            tls: if enforce {
                TlsPolicy::Required
            } else {
                TlsPolicy::Opportunistic
            },
            tls_required_by: format!("{domain}'s MTA-STS policy (mode enforce)"),
            roots: roots.clone(),
            auth: None,
            helo: helo.to_string(),
        };
        let mut results = session(&hop, envelope, indexes, message).await;
        if enforce {
            for (_, outcome) in &mut results {
                if let Outcome::Temporary { reason, .. } = outcome {
                    if reason.starts_with("STARTTLS") {
                        reason.push_str(&format!(
                            " ({domain}'s MTA-STS policy requires a certificate valid for {host})"
                        ));
                    }
                }
            }
        }
        // Try the next MX only when this one could not be reached or refused temporarily
        // as a whole (RFC 5321 5.1).
        let all_temporary = results
            .iter()
            .all(|(_, o)| matches!(o, Outcome::Temporary { .. }));
        if !all_temporary {
            return results;
        }
        last = results;
    }
    last
}

/// The MX hosts an MTA-STS policy lets mail go to. In "testing" mode all of them, with a
/// WARN for each one that "enforce" would skip; in "enforce" mode only the matching ones,
/// and an error naming both lists when none matches.
fn mx_allowed_by(policy: &Policy, domain: &str, hosts: Vec<String>) -> Result<Vec<String>, String> {
    let (allowed, refused): (Vec<String>, Vec<String>) =
        hosts.iter().cloned().partition(|h| policy.allows(h));
    if policy.mode != Mode::Enforce {
        for host in &refused {
            tracing::warn!(target: "serval_mail::mta_sts", domain, host, patterns = ?policy.mx, "MX host {host} of {domain} is not in its MTA-STS policy (mode testing: used anyway)");
        }
        return Ok(hosts);
    }
    for host in &refused {
        tracing::warn!(target: "serval_mail::mta_sts", domain, host, patterns = ?policy.mx, "MX host {host} of {domain} is not in its MTA-STS policy: skipped");
    }
    if allowed.is_empty() {
        return Err(format!(
            "none of {domain}'s MX hosts ({}) matches its MTA-STS policy (mode enforce, mx: {}); \
             deferred until the MX records or the policy change",
            refused.join(", "),
            policy.mx.join(", ")
        ));
    }
    Ok(allowed)
}

enum MxError {
    NullMx,
    NoDomain,
    Temporary(String),
}

async fn mx_hosts(
    resolver: Option<&hickory_resolver::TokioResolver>,
    domain: &str,
) -> Result<Vec<String>, MxError> {
    let Some(resolver) = resolver else {
        return Err(MxError::Temporary(
            "no DNS resolver (see /etc/resolv.conf)".into(),
        ));
    };
    let fqdn = format!("{domain}.");
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut mx: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    hickory_resolver::proto::rr::RData::MX(mx) => Some((
                        mx.preference,
                        mx.exchange.to_ascii().trim_end_matches('.').to_string(),
                    )),
                    _ => None,
                })
                .collect();
            mx.sort();
            if mx.len() == 1 && mx[0].1.is_empty() {
                return Err(MxError::NullMx);
            }
            if mx.is_empty() {
                return Ok(vec![domain.to_string()]);
            }
            Ok(mx.into_iter().map(|(_, h)| h).collect())
        }
        Err(e) if e.is_nx_domain() => Err(MxError::NoDomain),
        // No MX: the domain itself is the mail host (RFC 5321 5.1).
        Err(e) if e.is_no_records_found() => Ok(vec![domain.to_string()]),
        Err(e) => Err(MxError::Temporary(e.to_string())),
    }
}

/// One SMTP session delivering `indexes` through `hop`.
async fn session(
    hop: &Hop,
    envelope: &Envelope,
    indexes: &[usize],
    message: &[u8],
) -> Vec<(usize, Outcome)> {
    let name = format!("{}:{}", hop.host, hop.port);
    let fail_all = |f: &Failure| {
        indexes
            .iter()
            .map(|&i| (i, Outcome::from_failure(&name, f)))
            .collect::<Vec<_>>()
    };
    let mut conn = match Connection::open(hop).await {
        Ok(c) => c,
        Err(f) => return fail_all(&f),
    };
    if let Err(f) = conn.mail(envelope, message.len()).await {
        conn.quit().await;
        return fail_all(&f);
    }
    let mut accepted = Vec::new();
    let mut out = Vec::new();
    for &i in indexes {
        match conn.rcpt(&envelope.recipients[i]).await {
            Ok(reply) if reply.is_ok() => accepted.push(i),
            Ok(reply) => {
                let failure = Failure {
                    stage: crate::smtp::client::Stage::Rcpt,
                    message: reply.text(),
                    permanent: reply.is_permanent(),
                    reply: Some(reply),
                };
                out.push((i, Outcome::from_failure(&name, &failure)));
            }
            Err(f) => return fail_all(&f),
        }
    }
    if accepted.is_empty() {
        let _ = conn.rset().await;
        conn.quit().await;
        return out;
    }
    match conn.data(message).await {
        Ok(reply) => {
            for i in accepted {
                out.push((
                    i,
                    Outcome::Delivered {
                        hop: name.clone(),
                        reply: reply.text(),
                    },
                ));
            }
        }
        Err(f) => {
            for i in accepted {
                out.push((i, Outcome::from_failure(&name, &f)));
            }
        }
    }
    conn.quit().await;
    out
}
