//! Direct delivery to a domain's MX hosts (no smarthost): MX lookup (null MX, NXDOMAIN and
//! "no MX: the domain itself" per RFC 5321 5.1 and RFC 7505), then per host the strongest
//! TLS the domain asks for. DANE (RFC 7672) where the zone is signed and publishes TLSA
//! records, else MTA-STS (RFC 8461) where a policy is published (DANE wins where both are,
//! RFC 8461 2), else opportunistic STARTTLS like Postfix's `smtp_tls_security_level = may`.

use std::sync::Arc;

use crate::dane::{Dane, Secure, Tlsa};
use crate::deliver::{session, Outcome};
use crate::envelope::Envelope;
use crate::mta_sts::{Lookup, Mode, MtaSts, Policy};
use crate::smtp::client::{Hop, TlsPolicy};

pub struct MxRoute {
    pub resolver: Option<Arc<hickory_resolver::TokioResolver>>,
    /// 25.
    pub port: u16,
    pub roots: Arc<rustls::RootCertStore>,
    /// None when `[mail] mta_sts = false`.
    pub mta_sts: Option<Arc<MtaSts>>,
    /// None when `[mail] dane = false` or no resolver on loopback can be trusted.
    pub dane: Option<Arc<Dane>>,
}

/// How one MX host is to be reached.
enum HostTls {
    Opportunistic,
    /// An enforce-mode MTA-STS policy lists it: verified STARTTLS.
    MtaSts,
    Dane(Arc<Vec<Tlsa>>),
    /// Its TLSA lookup failed: it may not be used until the lookup works (RFC 7672 2.2).
    DaneLookupFailed(String),
}

impl MxRoute {
    /// Delivers `indexes` (recipients in `domain`) to the domain's MX hosts in preference
    /// order, going to the next host only when one failed temporarily as a whole.
    pub async fn deliver(
        &self,
        helo: &str,
        domain: &str,
        envelope: &Envelope,
        indexes: &[usize],
        message: &[u8],
    ) -> Vec<(usize, Outcome)> {
        let all = |o: Outcome| indexes.iter().map(|&i| (i, o.clone())).collect::<Vec<_>>();
        let temporary = |reason: String, status: &str| {
            all(Outcome::Temporary {
                hop: format!("MX of {domain}"),
                reason,
                status: status.into(),
            })
        };
        let hosts = match mx_hosts(self.resolver.as_deref(), domain).await {
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
                return temporary(format!("MX lookup of {domain} failed: {e}"), "4.4.3")
            }
        };
        let plan = match self.plan(domain, hosts).await {
            Ok(plan) => plan,
            Err((reason, status)) => return temporary(reason, status),
        };
        let mut last = Vec::new();
        for (host, how) in plan {
            let name = format!("{host}:{}", self.port);
            let mta_sts = matches!(how, HostTls::MtaSts);
            let (tls, required_by) = match how {
                HostTls::Opportunistic => (TlsPolicy::Opportunistic, String::new()),
                HostTls::MtaSts => (
                    TlsPolicy::Required,
                    format!("{domain}'s MTA-STS policy (mode enforce)"),
                ),
                HostTls::Dane(records) => {
                    tracing::debug!(target: "serval_mail::dane", domain, host, records = records.len(), "delivering with DANE");
                    (
                        TlsPolicy::Dane(records),
                        format!("the DANE TLSA records of {host}"),
                    )
                }
                HostTls::DaneLookupFailed(reason) => {
                    last = all(Outcome::Temporary {
                        hop: name,
                        reason: format!("{reason}; the host is not used until its TLSA records can be looked up (RFC 7672)"),
                        status: "4.7.5".into(),
                    });
                    continue;
                }
            };
            let addresses = match &self.resolver {
                Some(resolver) => match crate::mta_sts::addresses(resolver, &host).await {
                    Ok(a) => a,
                    Err(reason) => {
                        last = all(Outcome::Temporary {
                            hop: name,
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
                port: self.port,
                addresses,
                tls,
                tls_required_by: required_by,
                roots: self.roots.clone(),
                auth: None,
                helo: helo.to_string(),
            };
            let mut results = session(&hop, envelope, indexes, message).await;
            if mta_sts {
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
            // Try the next MX only when this one could not be reached or refused
            // temporarily as a whole (RFC 5321 5.1).
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

    /// Which hosts to try and how: DANE when the MX RRset is secure and a host has TLSA
    /// records, else the MTA-STS policy's verdict, else opportunistic TLS.
    async fn plan(
        &self,
        domain: &str,
        hosts: Vec<String>,
    ) -> Result<Vec<(String, HostTls)>, (String, &'static str)> {
        if let Some(dane) = &self.dane {
            let secure = dane.mx_secure(domain).await.map_err(|e| {
                (
                    format!("DNSSEC lookup of {domain}'s MX failed: {e}"),
                    "4.4.3",
                )
            })?;
            if secure {
                let mut plan = Vec::new();
                let mut any = false;
                for host in hosts.iter() {
                    let how = match dane.tlsa(host, self.port).await {
                        Ok(Secure::Yes(records)) if !records.is_empty() => {
                            HostTls::Dane(Arc::new(records))
                        }
                        Ok(_) => HostTls::Opportunistic,
                        Err(e) => HostTls::DaneLookupFailed(format!(
                            "TLSA lookup of _{}._tcp.{host} failed: {e}",
                            self.port
                        )),
                    };
                    any |= !matches!(how, HostTls::Opportunistic);
                    plan.push((host.clone(), how));
                }
                if any {
                    return Ok(plan);
                }
            }
        }
        let policy = match (&self.mta_sts, &self.resolver) {
            (Some(mta_sts), Some(resolver)) => match mta_sts.lookup(resolver, domain).await {
                Lookup::Found(p) if p.mode != Mode::None => Some(p),
                _ => None,
            },
            _ => None,
        };
        let Some(policy) = policy else {
            return Ok(hosts
                .into_iter()
                .map(|h| (h, HostTls::Opportunistic))
                .collect());
        };
        let enforce = policy.mode == Mode::Enforce;
        let hosts = mx_allowed_by(&policy, domain, hosts).map_err(|e| (e, "4.7.5"))?;
        Ok(hosts
            .into_iter()
            .map(|h| {
                let how = if enforce {
                    HostTls::MtaSts
                } else {
                    HostTls::Opportunistic
                };
                (h, how)
            })
            .collect())
    }
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
