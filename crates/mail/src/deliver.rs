//! Delivery of one queued message: local recipients into their Maildirs, the others to the
//! smarthost or to each domain's MX. Each recipient gets its own outcome.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use crate::envelope::Envelope;
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
    Mx(Arc<crate::mx::MxRoute>),
}

impl Route {
    pub fn describe(&self) -> String {
        match self {
            Route::Relay { host, port, .. } => format!("{host}:{port}"),
            Route::Mx(mx) => format!(
                "each domain's MX ({}, {})",
                match &mx.dane {
                    Some(d) => format!("DANE through the resolver at {}", d.server()),
                    None => "DANE off".into(),
                },
                if mx.mta_sts.is_some() {
                    "MTA-STS on"
                } else {
                    "MTA-STS off"
                }
            ),
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
                tls: tls.clone(),
                tls_required_by: "[mail.relay] tls".into(),
                roots: roots.clone(),
                auth: auth.clone(),
                helo: helo.to_string(),
            };
            session(&hop, envelope, indexes, message).await
        }
        Route::Mx(mx) => {
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
                out.extend(mx.deliver(helo, &domain, envelope, &list, message).await);
            }
            out
        }
    }
}

/// One SMTP session delivering `indexes` through `hop`.
pub(crate) async fn session(
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
