//! The outbound SMTP client: to the smarthost or a domain's MX.
//!
//! Own code rather than `mail-send`: the queue needs every recipient's own reply, the step
//! that failed (CONNECT, STARTTLS, AUTH, MAIL, RCPT, DATA) for the log line and for
//! `serval mail test-relay`, and the DSN parameters passed on; mail-send reports one error
//! for the whole message.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::envelope::Envelope;

/// How long any one step may take (RFC 5321 4.5.3.2 suggests minutes; a stuck relay must
/// not hold a delivery slot for long).
pub const STEP_TIMEOUT: Duration = Duration::from_secs(60);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The protocol step something went wrong at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Greeting,
    Ehlo,
    StartTls,
    Auth,
    Mail,
    Rcpt,
    Data,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "CONNECT",
            Stage::Greeting => "GREETING",
            Stage::Ehlo => "EHLO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Mail => "MAIL",
            Stage::Rcpt => "RCPT",
            Stage::Data => "DATA",
        }
    }
}

/// A server reply: code and the text of all its lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }
    pub fn is_ok(&self) -> bool {
        (200..400).contains(&self.code)
    }
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
    /// The enhanced status code at the start of the text, if any ("5.1.1").
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?.split_whitespace().next()?;
        let parts: Vec<&str> = first.split('.').collect();
        (parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| first.to_string())
    }
}

/// A failure of a whole session (every recipient shares it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub stage: Stage,
    /// The server's reply, if the failure was one.
    pub reply: Option<Reply>,
    /// What went wrong, in words (with the reply text when there is one).
    pub message: String,
    pub permanent: bool,
}

impl Failure {
    fn io(stage: Stage, e: impl std::fmt::Display) -> Failure {
        Failure {
            stage,
            reply: None,
            message: e.to_string(),
            permanent: false,
        }
    }
    fn reply(stage: Stage, reply: Reply) -> Failure {
        Failure {
            stage,
            message: reply.text(),
            permanent: reply.is_permanent(),
            reply: Some(reply),
        }
    }
}

/// TLS towards the next hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Plain only.
    None,
    /// STARTTLS if offered, certificate not checked (opportunistic, as MX delivery is).
    Opportunistic,
    /// STARTTLS required and the certificate verified.
    Required,
    /// TLS from the first byte, verified.
    Implicit,
    /// STARTTLS required and the certificate must match one of these DANE TLSA records.
    Dane(Arc<Vec<crate::dane::Tlsa>>),
}

pub struct Hop {
    /// Host name (for SNI and certificate checks) and port.
    pub host: String,
    pub port: u16,
    /// Addresses to connect to; empty: `host` through the system's resolver.
    pub addresses: Vec<std::net::IpAddr>,
    pub tls: TlsPolicy,
    /// Why TLS is required, for the error when it cannot be had (`[mail.relay] tls`, a policy).
    pub tls_required_by: String,
    /// Roots a verified certificate must chain to.
    pub roots: Arc<rustls::RootCertStore>,
    pub auth: Option<(String, String)>,
    /// Our EHLO name.
    pub helo: String,
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

pub struct Connection {
    stream: BufReader<Box<dyn Io>>,
    extensions: Vec<String>,
    pub tls: bool,
    pub peer: String,
}

impl Connection {
    /// Connects, reads the greeting, EHLO, STARTTLS (per policy) and AUTH.
    pub async fn open(hop: &Hop) -> Result<Connection, Failure> {
        let peer = format!("{}:{}", hop.host, hop.port);
        let connect = async {
            if hop.addresses.is_empty() {
                return TcpStream::connect((hop.host.as_str(), hop.port)).await;
            }
            let mut last = None;
            for ip in &hop.addresses {
                match TcpStream::connect((*ip, hop.port)).await {
                    Ok(tcp) => return Ok(tcp),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
        };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| Failure::io(Stage::Connect, format!("connect to {peer} timed out")))?
            .map_err(|e| Failure::io(Stage::Connect, format!("connect to {peer}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        let (stream, tls): (Box<dyn Io>, bool) = if hop.tls == TlsPolicy::Implicit {
            (
                Box::new(tls_connect(tcp, &hop.host, verified_config(&hop.roots)).await?),
                true,
            )
        } else {
            (Box::new(tcp), false)
        };
        let mut conn = Connection {
            stream: BufReader::new(stream),
            extensions: Vec::new(),
            tls,
            peer,
        };
        let greeting = conn.read_reply(Stage::Greeting).await?;
        if greeting.code != 220 {
            return Err(Failure::reply(Stage::Greeting, greeting));
        }
        conn.ehlo(&hop.helo).await?;
        let offered = conn.has("STARTTLS");
        match &hop.tls {
            TlsPolicy::Required | TlsPolicy::Dane(_) if !conn.tls && !offered => {
                return Err(Failure {
                    stage: Stage::StartTls,
                    reply: None,
                    message: format!(
                        "{} does not offer STARTTLS, which {} requires",
                        conn.peer, hop.tls_required_by
                    ),
                    permanent: false,
                })
            }
            TlsPolicy::Required | TlsPolicy::Opportunistic | TlsPolicy::Dane(_)
                if !conn.tls && offered =>
            {
                let config = match &hop.tls {
                    TlsPolicy::Required => verified_config(&hop.roots),
                    TlsPolicy::Dane(records) => crate::dane::client_config(&hop.host, records),
                    _ => unverified_config(),
                };
                conn = conn.starttls(&hop.host, config).await?;
                conn.ehlo(&hop.helo).await?;
            }
            _ => {}
        }
        if let Some((user, password)) = &hop.auth {
            conn.auth(user, password).await?;
        }
        Ok(conn)
    }

    fn has(&self, extension: &str) -> bool {
        self.extensions.iter().any(|e| {
            e.split_whitespace()
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case(extension))
        })
    }

    fn auth_mechanisms(&self) -> Vec<String> {
        self.extensions
            .iter()
            .filter_map(|e| {
                let mut words = e.split_whitespace();
                words
                    .next()
                    .filter(|k| k.eq_ignore_ascii_case("AUTH"))
                    .map(|_| words.map(|w| w.to_ascii_uppercase()).collect::<Vec<_>>())
            })
            .flatten()
            .collect()
    }

    async fn ehlo(&mut self, helo: &str) -> Result<(), Failure> {
        let reply = self.command(Stage::Ehlo, &format!("EHLO {helo}")).await?;
        if reply.code != 250 {
            return Err(Failure::reply(Stage::Ehlo, reply));
        }
        self.extensions = reply.lines.into_iter().skip(1).collect();
        Ok(())
    }

    async fn starttls(
        mut self,
        host: &str,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<Connection, Failure> {
        let reply = self.command(Stage::StartTls, "STARTTLS").await?;
        if reply.code != 220 {
            return Err(Failure::reply(Stage::StartTls, reply));
        }
        let inner = self.stream.into_inner();
        let tls = tls_connect(inner, host, config).await?;
        Ok(Connection {
            stream: BufReader::new(Box::new(tls)),
            extensions: Vec::new(),
            tls: true,
            peer: self.peer,
        })
    }

    async fn auth(&mut self, user: &str, password: &str) -> Result<(), Failure> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mechanisms = self.auth_mechanisms();
        let reply = if mechanisms.iter().any(|m| m == "PLAIN") || mechanisms.is_empty() {
            let token = b64.encode(format!("\0{user}\0{password}"));
            self.command(Stage::Auth, &format!("AUTH PLAIN {token}"))
                .await?
        } else if mechanisms.iter().any(|m| m == "LOGIN") {
            let r = self.command(Stage::Auth, "AUTH LOGIN").await?;
            if r.code != 334 {
                return Err(Failure::reply(Stage::Auth, r));
            }
            let r = self.command(Stage::Auth, &b64.encode(user)).await?;
            if r.code != 334 {
                return Err(Failure::reply(Stage::Auth, r));
            }
            self.command(Stage::Auth, &b64.encode(password)).await?
        } else {
            return Err(Failure {
                stage: Stage::Auth,
                reply: None,
                message: format!(
                    "{} offers AUTH {} but Serval speaks PLAIN and LOGIN",
                    self.peer,
                    mechanisms.join(" ")
                ),
                permanent: false,
            });
        };
        if reply.code != 235 {
            // A refused login is the relay's or our config's fault, never the message's:
            // it stays queued (temporary), however the relay codes it.
            let mut failure = Failure::reply(Stage::Auth, reply);
            failure.permanent = false;
            return Err(failure);
        }
        Ok(())
    }

    /// MAIL FROM with SIZE and the DSN parameters when the server takes them.
    pub async fn mail(&mut self, envelope: &Envelope, size: usize) -> Result<Reply, Failure> {
        let mut cmd = format!("MAIL FROM:<{}>", envelope.sender);
        if self.has("SIZE") {
            cmd.push_str(&format!(" SIZE={size}"));
        }
        if self.has("8BITMIME") {
            cmd.push_str(" BODY=8BITMIME");
        }
        if envelope.smtputf8 && self.has("SMTPUTF8") {
            cmd.push_str(" SMTPUTF8");
        }
        if self.has("DSN") {
            cmd.push_str(match envelope.ret {
                crate::envelope::Ret::Full => " RET=FULL",
                crate::envelope::Ret::Headers => " RET=HDRS",
            });
            if let Some(envid) = &envelope.envid {
                cmd.push_str(&format!(" ENVID={}", xtext(envid)));
            }
        }
        let reply = self.command(Stage::Mail, &cmd).await?;
        if !reply.is_ok() {
            return Err(Failure::reply(Stage::Mail, reply));
        }
        Ok(reply)
    }

    /// RCPT TO for one recipient; the reply says whether it was taken.
    pub async fn rcpt(&mut self, recipient: &crate::envelope::Recipient) -> Result<Reply, Failure> {
        let mut cmd = format!("RCPT TO:<{}>", recipient.address);
        if self.has("DSN") {
            let n = recipient.notify;
            if n.never {
                cmd.push_str(" NOTIFY=NEVER");
            } else {
                let mut words = Vec::new();
                if n.success {
                    words.push("SUCCESS");
                }
                if n.failure {
                    words.push("FAILURE");
                }
                if n.delay {
                    words.push("DELAY");
                }
                if !words.is_empty() {
                    cmd.push_str(&format!(" NOTIFY={}", words.join(",")));
                }
            }
            if let Some(orcpt) = &recipient.orcpt {
                cmd.push_str(&format!(" ORCPT=rfc822;{}", xtext(orcpt)));
            }
        }
        self.command(Stage::Rcpt, &cmd).await
    }

    /// Sends the message after DATA; the final reply is the server's verdict.
    pub async fn data(&mut self, message: &[u8]) -> Result<Reply, Failure> {
        let reply = self.command(Stage::Data, "DATA").await?;
        if reply.code != 354 {
            return Err(Failure::reply(Stage::Data, reply));
        }
        let wire = super::data::dot_stuff(message);
        self.write(Stage::Data, &wire).await?;
        let reply = self.read_reply(Stage::Data).await?;
        if !reply.is_ok() {
            return Err(Failure::reply(Stage::Data, reply));
        }
        Ok(reply)
    }

    pub async fn rset(&mut self) -> Result<Reply, Failure> {
        self.command(Stage::Mail, "RSET").await
    }

    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            let _ = self.write(Stage::Data, b"QUIT\r\n").await;
            let _ = self.read_reply(Stage::Data).await;
        })
        .await;
    }

    async fn command(&mut self, stage: Stage, line: &str) -> Result<Reply, Failure> {
        self.write(stage, format!("{line}\r\n").as_bytes()).await?;
        self.read_reply(stage).await
    }

    async fn write(&mut self, stage: Stage, bytes: &[u8]) -> Result<(), Failure> {
        let peer = self.peer.clone();
        tokio::time::timeout(STEP_TIMEOUT, async {
            let stream = self.stream.get_mut();
            stream.write_all(bytes).await?;
            stream.flush().await
        })
        .await
        .map_err(|_| Failure::io(stage, format!("{peer} timed out")))?
        .map_err(|e| Failure::io(stage, format!("{peer}: {e}")))
    }

    async fn read_reply(&mut self, stage: Stage) -> Result<Reply, Failure> {
        let peer = self.peer.clone();
        tokio::time::timeout(STEP_TIMEOUT, read_reply(&mut self.stream))
            .await
            .map_err(|_| {
                Failure::io(
                    stage,
                    format!("{peer} did not answer within {} s", STEP_TIMEOUT.as_secs()),
                )
            })?
            .map_err(|e| Failure::io(stage, format!("{peer}: {e}")))
    }
}

/// Reads one (possibly multi-line) reply.
async fn read_reply<R: AsyncRead + Unpin>(stream: &mut BufReader<R>) -> std::io::Result<Reply> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        let n = stream.read_line(&mut line).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed by the server",
            ));
        }
        if line.len() > 4096 || lines.len() > 100 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "reply too long",
            ));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an SMTP reply: {line:?}"),
            )
        })?;
        let more = line.as_bytes().get(3) == Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if !more {
            return Ok(Reply { code, lines });
        }
    }
}

async fn tls_connect<S>(
    stream: S,
    host: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<S>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
        Failure::io(
            Stage::StartTls,
            format!("`{host}` is not a TLS server name: {e}"),
        )
    })?;
    tokio::time::timeout(
        STEP_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, stream),
    )
    .await
    .map_err(|_| {
        Failure::io(
            Stage::StartTls,
            format!("TLS handshake with {host} timed out"),
        )
    })?
    .map_err(|e| Failure::io(Stage::StartTls, format!("TLS handshake with {host}: {e}")))
}

/// The web PKI roots plus the PEM certificates of `ca_file` (a private CA of the office's
/// relay, or a test CA).
pub fn roots(ca_file: Option<&std::path::Path>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut added = 0;
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(&pem) {
            let cert: rustls::pki_types::CertificateDer =
                cert.map_err(|e| format!("{}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            added += 1;
        }
        if added == 0 {
            return Err(format!("{}: no PEM certificate in it", path.display()));
        }
    }
    Ok(roots)
}

pub fn verified_config(roots: &rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    let roots = roots.clone();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth(),
    )
}

/// Opportunistic TLS to an MX: encrypts against passive eavesdroppers; like Postfix's
/// `smtp_tls_security_level = may`, the certificate is not checked (MX certificates are
/// often self-signed and a failed check would only make delivery fall back to plain text).
fn unverified_config() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
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
                &self.0.signature_verification_algorithms,
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
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth(),
    )
}

/// RFC 3461 xtext: "+" and anything outside "!".."~" or "=" as +HH.
fn xtext(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn multi_line_replies_and_enhanced_codes() {
        let input: &[u8] = b"250-mail.example.test\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n550 5.1.1 <x@y>: no such user\r\n";
        let mut reader = BufReader::new(input);
        let r = read_reply(&mut reader).await.unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.lines.len(), 3);
        let r = read_reply(&mut reader).await.unwrap();
        assert_eq!(r.enhanced().as_deref(), Some("5.1.1"));
        assert!(r.is_permanent());
        assert!(read_reply(&mut reader).await.is_err());
    }

    #[test]
    fn xtext_encodes_plus_and_equals() {
        assert_eq!(xtext("a+b=c d"), "a+2Bb+3Dc+20d");
    }
}
