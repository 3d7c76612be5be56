//! Checks of mail arriving from outside (not from `mynetworks`, not logged in): SPF, DKIM and
//! DMARC through mail-auth, recorded in an Authentication-Results header (RFC 8601) for the
//! reader's mail client and filters. A message failing its From: domain's DMARC policy
//! `p=reject` gets 550 at the end of DATA, so the forger's own server bounces it and
//! nothing is accepted to be dropped later; `p=quarantine` is delivered with the verdict in
//! an X-Serval-Quarantine header (mail clients' rules file it). An SPF "fail" alone is only
//! recorded by default: forwarding breaks SPF, and DMARC is the sender's stated wish.

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::Policy;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DmarcResult, MessageAuthenticator, SpfResult,
};

use crate::config::InboundConfig;

pub struct Checker {
    authenticator: MessageAuthenticator,
    /// The authserv-id of our headers: the EHLO name.
    hostname: String,
    reject_spf_fail: bool,
    enforce_dmarc: bool,
}

/// What the checks decided.
pub enum Verdict {
    /// Deliver `message`, now with our Authentication-Results on top.
    Accept { message: Vec<u8> },
    /// Refuse at the end of DATA: (code, enhanced status, text).
    Reject(u16, &'static str, String),
}

impl Checker {
    pub fn new(
        resolver: hickory_resolver::TokioResolver,
        hostname: &str,
        config: &InboundConfig,
    ) -> Checker {
        Checker {
            authenticator: MessageAuthenticator(resolver),
            hostname: hostname.to_string(),
            reject_spf_fail: config.reject_spf_fail,
            enforce_dmarc: config.enforce_dmarc,
        }
    }

    pub async fn check(&self, ip: IpAddr, helo: &str, sender: &str, message: Vec<u8>) -> Verdict {
        let message = strip_our_results(&message, &self.hostname);
        let Some(parsed) = AuthenticatedMessage::parse(&message) else {
            // Unparseable headers: nothing to check against; the reader still gets a record.
            let header = format!("Authentication-Results: {}; none\r\n", self.hostname);
            let mut out = header.into_bytes();
            out.extend_from_slice(&message);
            return Verdict::Accept { message: out };
        };
        let helo_domain = if helo.is_empty() { "unknown" } else { helo };
        let dkim = self.authenticator.verify_dkim(&parsed).await;
        let spf = self
            .authenticator
            .verify_spf(SpfParameters::verify_mail_from(
                ip,
                helo_domain,
                &self.hostname,
                if sender.is_empty() {
                    // RFC 7208 2.4: the null sender is checked as postmaster@HELO.
                    helo_domain
                } else {
                    sender
                },
            ))
            .await;
        let mail_from_domain = crate::envelope::split_address(sender)
            .map(|(_, d)| d)
            .unwrap_or_else(|| helo_domain.to_ascii_lowercase());
        let dmarc = self
            .authenticator
            .verify_dmarc(DmarcParameters::new(
                &parsed,
                &dkim,
                &mail_from_domain,
                &spf,
            ))
            .await;
        let from_domain = parsed
            .from
            .first()
            .and_then(|f| f.rsplit_once('@'))
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let results = AuthenticationResults::new(&self.hostname)
            .with_dkim_results(&dkim, &from_domain)
            .with_spf_mailfrom_result(&spf, ip, sender, helo_domain)
            .with_dmarc_result(&dmarc);
        let dmarc_failed = matches!(dmarc.result(), DmarcResult::Fail(_));
        tracing::debug!(target: "serval_mail::inbound", %ip, sender, spf = ?spf.result(), dmarc = ?dmarc.result(), policy = ?dmarc.policy(), "checked inbound mail");
        if self.enforce_dmarc && dmarc_failed && dmarc.policy() == Policy::Reject {
            return Verdict::Reject(
                550,
                "5.7.1",
                format!(
                    "Rejected: the message fails the DMARC policy (p=reject) of {}: neither SPF nor DKIM passed for it",
                    dmarc.domain()
                ),
            );
        }
        if self.reject_spf_fail && spf.result() == SpfResult::Fail {
            return Verdict::Reject(
                550,
                "5.7.23",
                format!(
                    "Rejected: SPF of {} does not allow {ip} to send its mail",
                    spf.domain()
                ),
            );
        }
        let mut out = results.to_header().into_bytes();
        if self.enforce_dmarc && dmarc_failed && dmarc.policy() == Policy::Quarantine {
            out.extend_from_slice(
                format!(
                    "X-Serval-Quarantine: fails the DMARC policy (p=quarantine) of {}\r\n",
                    dmarc.domain()
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(&message);
        Verdict::Accept { message: out }
    }
}

/// The message without Authentication-Results headers that claim to be ours (RFC 8601 5: a
/// sender could forge them to look checked).
pub fn strip_our_results(message: &[u8], hostname: &str) -> Vec<u8> {
    let header_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let (head, body) = message.split_at(header_end);
    let mut out = Vec::with_capacity(message.len());
    let mut skipping = false;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
        if !continuation {
            skipping = is_our_results(line, hostname);
        }
        if !skipping {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(body);
    out
}

fn is_our_results(line: &[u8], hostname: &str) -> bool {
    let text = String::from_utf8_lossy(line);
    let Some((name, value)) = text.split_once(':') else {
        return false;
    };
    if !name.trim().eq_ignore_ascii_case("Authentication-Results") {
        return false;
    }
    let id = value
        .trim_start()
        .split(|c: char| c == ';' || c.is_whitespace())
        .next()
        .unwrap_or("");
    id.eq_ignore_ascii_case(hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forged_results_for_our_name_are_removed_and_others_kept() {
        let msg = b"Authentication-Results: mail.example.test; spf=pass\r\n\tdkim=pass\r\nAuthentication-Results: other.test; spf=fail\r\nSubject: x\r\n\r\nAuthentication-Results: mail.example.test; body stays\r\n";
        let out = String::from_utf8(strip_our_results(msg, "mail.example.test")).unwrap();
        assert_eq!(
            out,
            "Authentication-Results: other.test; spf=fail\r\nSubject: x\r\n\r\nAuthentication-Results: mail.example.test; body stays\r\n"
        );
    }
}
