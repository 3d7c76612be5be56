//! DANE for SMTP (RFC 7672): a domain whose DNSSEC-signed zone publishes TLSA records at
//! `_25._tcp.MXHOST` gets its mail only over STARTTLS to a server whose certificate matches
//! one of them; a mismatch defers the message with the records and what was presented.
//!
//! Like Postfix (`smtp_dns_support_level = dnssec`), Serval does not validate DNSSEC itself
//! here: it trusts the AD bit of a validating resolver on loopback (Serval's own `[dns]`,
//! Unbound, systemd-resolved), and only there, since the AD bit from across a network could
//! be forged. The queries are built with hickory-proto and sent by hand because
//! hickory-resolver does not expose the AD bit of the answers it caches.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::op::{Edns, Message, Query, ResponseCode};
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use sha2::Digest as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// One usable TLSA record: usage 3 (DANE-EE) or 2 (DANE-TA); RFC 7672 3.1.3 makes the PKIX
/// usages 0 and 1 unusable for SMTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    pub usage: u8,
    /// 0: the whole certificate, 1: its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0: exact, 1: SHA-256, 2: SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl std::fmt::Display for Tlsa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} ", self.usage, self.selector, self.matching)?;
        for b in self.data.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        if self.data.len() > 8 {
            f.write_str("…")?;
        }
        Ok(())
    }
}

impl Tlsa {
    fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` (DER) is what this record names.
    pub fn matches(&self, cert: &[u8]) -> bool {
        let selected = match self.selector {
            0 => cert.to_vec(),
            _ => match x509_parser::parse_x509_certificate(cert) {
                Ok((_, parsed)) => parsed.public_key().raw.to_vec(),
                Err(_) => return false,
            },
        };
        let digest = match self.matching {
            0 => selected,
            1 => sha2::Sha256::digest(&selected).to_vec(),
            _ => sha2::Sha512::digest(&selected).to_vec(),
        };
        digest == self.data
    }
}

/// What a secure lookup found.
#[derive(Debug)]
pub enum Secure<T> {
    /// Validated by the resolver (AD set); empty when the name provably has no such records.
    Yes(T),
    /// Not signed (or the resolver does not validate): DANE does not apply.
    No,
}

/// The loopback resolver whose AD bit is trusted.
pub struct Dane {
    server: SocketAddr,
}

impl Dane {
    /// DANE through the first loopback server of `nameservers` (or of /etc/resolv.conf when
    /// that list is empty); None, with the reason, when there is none.
    pub fn from_servers(nameservers: &[SocketAddr]) -> Result<Dane, String> {
        let servers: Vec<SocketAddr> = if nameservers.is_empty() {
            std::fs::read_to_string("/etc/resolv.conf")
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().strip_prefix("nameserver"))
                .filter_map(|ip| ip.trim().parse().ok())
                .map(|ip| SocketAddr::new(ip, 53))
                .collect()
        } else {
            nameservers.to_vec()
        };
        servers
            .iter()
            .find(|s| s.ip().is_loopback())
            .map(|&server| Dane { server })
            .ok_or_else(|| {
                format!(
                    "no resolver on loopback among {servers:?}: DANE needs a local validating resolver \
                     (set [mail] nameservers, e.g. to Serval's [dns] on 127.0.0.1:5353)"
                )
            })
    }

    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// Whether `domain`'s MX RRset (or, without one, its address) is DNSSEC-secure.
    pub async fn mx_secure(&self, domain: &str) -> Result<bool, String> {
        let reply = self.ask(domain, RecordType::MX).await?;
        Ok(reply.metadata.authentic_data)
    }

    /// The usable TLSA records of `host`'s SMTP port, when its zone is signed.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<Secure<Vec<Tlsa>>, String> {
        // RFC 7672 2.2.2: TLSA records count only when the host's address is secure too.
        let address = self.ask(host, RecordType::A).await?;
        if !address.metadata.authentic_data {
            return Ok(Secure::No);
        }
        let reply = self
            .ask(&format!("_{port}._tcp.{host}"), RecordType::TLSA)
            .await?;
        if !reply.metadata.authentic_data {
            return Ok(Secure::No);
        }
        Ok(Secure::Yes(
            reply
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some(Tlsa {
                        usage: t.cert_usage.into(),
                        selector: t.selector.into(),
                        matching: t.matching.into(),
                        data: t.cert_data.clone(),
                    }),
                    _ => None,
                })
                .filter(Tlsa::usable)
                .collect(),
        ))
    }

    /// One question with RD, AD and DO set; NXDOMAIN and NODATA are answers, SERVFAIL
    /// (a bogus signature, an unreachable zone) is an error.
    async fn ask(&self, name: &str, qtype: RecordType) -> Result<Message, String> {
        let mut qname = Name::from_ascii(name).map_err(|e| format!("`{name}`: {e}"))?;
        qname.set_fqdn(true);
        let id: u16 = rand::random();
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.metadata.authentic_data = true;
        message.add_query(Query::query(qname, qtype));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(true);
        message.set_edns(edns);
        let bytes = message.to_vec().map_err(|e| e.to_string())?;
        let what = format!("{qtype} {name} at {}", self.server);
        let reply = tokio::time::timeout(QUERY_TIMEOUT, exchange(self.server, &bytes, id))
            .await
            .map_err(|_| format!("{what}: no answer in {} s", QUERY_TIMEOUT.as_secs()))?
            .map_err(|e| format!("{what}: {e}"))?;
        match reply.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => Ok(reply),
            code => Err(format!(
                "{what}: {code} (a DNSSEC failure or an unreachable zone)"
            )),
        }
    }
}

/// UDP, then TCP when the answer is truncated.
async fn exchange(server: SocketAddr, query: &[u8], id: u16) -> Result<Message, String> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::1]:0".parse().expect("an address")
    } else {
        "127.0.0.1:0".parse().expect("an address")
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| e.to_string())?;
    socket.connect(server).await.map_err(|e| e.to_string())?;
    socket.send(query).await.map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        let n = socket.recv(&mut buf).await.map_err(|e| e.to_string())?;
        if let Ok(m) = Message::from_vec(&buf[..n]) {
            if m.metadata.id == id {
                break m;
            }
        }
    };
    if !reply.metadata.truncation {
        return Ok(reply);
    }
    let mut tcp = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| e.to_string())?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    tcp.write_all(&framed).await.map_err(|e| e.to_string())?;
    let len = tcp.read_u16().await.map_err(|e| e.to_string())? as usize;
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.map_err(|e| e.to_string())?;
    Message::from_vec(&body).map_err(|e| e.to_string())
}

/// A rustls client config that accepts exactly the certificates `records` name: DANE-EE by
/// the end-entity certificate alone (no name or date checks, RFC 7672 3.1.1), DANE-TA by a
/// chain from a matching certificate the server sent, valid for `host` (RFC 7672 3.1.2).
pub fn client_config(host: &str, records: &[Tlsa]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(DaneVerifier {
                host: host.to_string(),
                records: records.to_vec(),
                provider,
            }))
            .with_no_client_auth(),
    )
}

#[derive(Debug)]
struct DaneVerifier {
    host: String,
    records: Vec<Tlsa>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for DaneVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if self
            .records
            .iter()
            .any(|r| r.usage == 3 && r.matches(end_entity))
        {
            return Ok(rustls::client::danger::ServerCertVerified::assertion());
        }
        let mut ta_errors = Vec::new();
        for record in self.records.iter().filter(|r| r.usage == 2) {
            for ca in intermediates.iter().filter(|c| record.matches(c)) {
                let mut roots = rustls::RootCertStore::empty();
                if roots.add(ca.clone().into_owned()).is_err() {
                    continue;
                }
                let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(roots),
                    self.provider.clone(),
                )
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
                match verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                {
                    Ok(ok) => return Ok(ok),
                    Err(e) => ta_errors.push(e.to_string()),
                }
            }
        }
        let listed: Vec<String> = self.records.iter().map(|r| r.to_string()).collect();
        Err(rustls::Error::General(format!(
            "the certificate of {} matches none of its DANE TLSA records ({}){}",
            self.host,
            listed.join(", "),
            if ta_errors.is_empty() {
                String::new()
            } else {
                format!(
                    "; through the matching trust anchor: {}",
                    ta_errors.join("; ")
                )
            }
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_match_by_certificate_or_public_key_and_digest() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.test".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let spki = key.public_key_der();
        let record = |selector, matching, data: Vec<u8>| Tlsa {
            usage: 3,
            selector,
            matching,
            data,
        };
        assert!(record(0, 0, der.clone()).matches(&der));
        assert!(record(0, 1, sha2::Sha256::digest(&der).to_vec()).matches(&der));
        assert!(record(1, 1, sha2::Sha256::digest(&spki).to_vec()).matches(&der));
        assert!(record(1, 2, sha2::Sha512::digest(&spki).to_vec()).matches(&der));
        assert!(!record(1, 1, sha2::Sha256::digest(&der).to_vec()).matches(&der));
        assert!(!record(1, 1, vec![0; 32]).matches(&der));
        // PKIX usages are unusable for SMTP (RFC 7672 3.1.3).
        let pkix = Tlsa {
            usage: 1,
            ..record(1, 1, vec![])
        };
        assert!(!pkix.usable() && record(1, 1, vec![]).usable());
        assert_eq!(
            record(1, 1, vec![0xab; 32]).to_string(),
            "3 1 1 abababababababab…"
        );
    }
}
