//! DKIM signing of mail leaving for other domains (mail-auth does the canonicalization and
//! the signature; this module keeps the key and says what to publish).
//!
//! The key is Ed25519 (RFC 8463), generated on first start into `data_dir/mail/.dkim/`.
//! RSA is not generated: ring, the crypto library of the whole binary, cannot create RSA
//! keys.

use std::path::Path;

use base64::Engine as _;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};

/// Headers signed (RFC 6376 5.4.1's list of the ones that matter to readers).
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "In-Reply-To",
    "References",
];

pub struct Signer {
    pkcs8: Vec<u8>,
    public_key: Vec<u8>,
    pub selector: String,
    /// Domains mail is signed for (the local domains).
    pub domains: Vec<String>,
}

impl Signer {
    /// Loads the key from `dir`, creating it the first time.
    pub fn load_or_create(
        dir: &Path,
        selector: &str,
        domains: Vec<String>,
    ) -> Result<Signer, String> {
        let path = dir.join("ed25519.pk8");
        let pkcs8 = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
                let bytes = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
                write_private(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
                tracing::info!(target: "serval_mail::dkim", path = %path.display(), "generated a DKIM key");
                bytes
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let key =
            Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Signer {
            public_key: key.public_key(),
            pkcs8,
            selector: selector.to_string(),
            domains,
        })
    }

    /// The TXT record to publish at `SELECTOR._domainkey.DOMAIN`.
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k=ed25519; p={}",
            base64::engine::general_purpose::STANDARD.encode(&self.public_key)
        )
    }

    /// (name, TXT value) for each signed domain.
    pub fn records(&self) -> Vec<(String, String)> {
        self.domains
            .iter()
            .map(|d| {
                (
                    format!("{}._domainkey.{d}", self.selector),
                    self.dns_record(),
                )
            })
            .collect()
    }

    fn signer(&self, domain: &str) -> Option<DkimSigner<Ed25519Key, Done>> {
        let key = Ed25519Key::from_pkcs8_der(&self.pkcs8).ok()?;
        Some(
            DkimSigner::from_key(key)
                .domain(domain)
                .selector(&self.selector)
                .headers(SIGNED_HEADERS.iter().copied()),
        )
    }

    /// The message with a DKIM-Signature on top when the sender's domain is one of ours;
    /// otherwise (or if signing fails, which is logged) the message unchanged.
    pub fn sign(&self, sender: &str, message: &[u8]) -> Vec<u8> {
        let Some((_, domain)) = crate::envelope::split_address(sender) else {
            return message.to_vec();
        };
        if !self.domains.contains(&domain) {
            return message.to_vec();
        }
        let Some(signer) = self.signer(&domain) else {
            return message.to_vec();
        };
        match signer.sign(message) {
            Ok(signature) => {
                let mut out = signature.to_header().into_bytes();
                out.extend_from_slice(message);
                out
            }
            Err(e) => {
                tracing::warn!(target: "serval_mail::dkim", domain, error = %e, "DKIM signing failed; sent unsigned");
                message.to_vec()
            }
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_only_own_domains_and_keeps_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let signer =
            Signer::load_or_create(dir.path(), "serval", vec!["example.test".into()]).unwrap();
        let msg = b"From: a@example.test\r\nTo: b@remote.test\r\nSubject: s\r\n\r\nbody\r\n";
        let signed = signer.sign("a@example.test", msg);
        let text = String::from_utf8(signed).unwrap();
        assert!(
            text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{text}"
        );
        assert!(text.contains("d=example.test") && text.contains("s=serval"));
        assert_eq!(signer.sign("a@other.test", msg), msg);
        let again = Signer::load_or_create(dir.path(), "serval", vec![]).unwrap();
        assert_eq!(again.dns_record(), signer.dns_record());
        assert!(signer.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
    }
}
