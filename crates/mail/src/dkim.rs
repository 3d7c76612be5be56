//! DKIM signing of mail leaving for other domains (mail-auth does the canonicalization and
//! the signature; this module keeps the keys and says what to publish).
//!
//! Two keys, both on by default, each under its own selector: Ed25519 (RFC 8463: short, fast)
//! and RSA-SHA256 (2048 bits), the one every verifier checks (several large providers still
//! ignore Ed25519). Keys are generated on first start into `data_dir/mail/.dkim/`; an RSA key
//! from OpenDKIM (`rsa_key_file`, PEM PKCS#1 or PKCS#8) is used as it is, so a published
//! selector keeps working after the move.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{DkimSigner, Done};
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _};

use crate::config::{DkimAlgorithm, DkimConfig};

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

const RSA_BITS: usize = 2048;

enum KeySigner {
    Ed25519(Vec<DkimSigner<Ed25519Key, Done>>),
    Rsa(Vec<DkimSigner<RsaKey<Sha256>, Done>>),
}

/// One key and the signers built from it (one per domain).
struct Key {
    selector: String,
    algorithm: DkimAlgorithm,
    /// The `p=` of the DNS record: the raw Ed25519 key, or the RSA SubjectPublicKeyInfo.
    public_key: Vec<u8>,
    signers: KeySigner,
}

pub struct Signer {
    keys: Vec<Key>,
    /// Domains mail is signed for (the local domains).
    pub domains: Vec<String>,
}

impl Signer {
    /// Loads the keys `config` names from `dir`, creating the missing ones.
    pub fn load_or_create(
        dir: &Path,
        config: &DkimConfig,
        data_dir: &Path,
        domains: Vec<String>,
    ) -> Result<Signer, String> {
        let mut keys = Vec::new();
        for &algorithm in &config.algorithms {
            keys.push(match algorithm {
                DkimAlgorithm::Ed25519 => ed25519_key(dir, &config.selector, &domains)?,
                DkimAlgorithm::Rsa => rsa_key(dir, config, data_dir, &domains)?,
            });
        }
        Ok(Signer { keys, domains })
    }

    /// (name, TXT value) for each signed domain and key.
    pub fn records(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for domain in &self.domains {
            for key in &self.keys {
                let k = match key.algorithm {
                    DkimAlgorithm::Ed25519 => "ed25519",
                    DkimAlgorithm::Rsa => "rsa",
                };
                out.push((
                    format!("{}._domainkey.{domain}", key.selector),
                    format!(
                        "v=DKIM1; k={k}; p={}",
                        base64::engine::general_purpose::STANDARD.encode(&key.public_key)
                    ),
                ));
            }
        }
        out
    }

    /// The message with a DKIM-Signature per key on top when the sender's domain is one of
    /// ours; otherwise the message unchanged. A key that fails to sign is logged and skipped.
    pub fn sign(&self, sender: &str, message: &[u8]) -> Vec<u8> {
        let Some((_, domain)) = crate::envelope::split_address(sender) else {
            return message.to_vec();
        };
        let Some(index) = self.domains.iter().position(|d| *d == domain) else {
            return message.to_vec();
        };
        let mut headers = String::new();
        for key in &self.keys {
            let signed = match &key.signers {
                KeySigner::Ed25519(s) => s[index].sign(message),
                KeySigner::Rsa(s) => s[index].sign(message),
            };
            match signed {
                Ok(signature) => headers.push_str(&signature.to_header()),
                Err(e) => {
                    tracing::warn!(target: "serval_mail::dkim", domain, selector = key.selector, error = %e, "DKIM signing failed; this signature left out");
                }
            }
        }
        let mut out = headers.into_bytes();
        out.extend_from_slice(message);
        out
    }
}

/// A record as one zone-file line; TXT strings longer than 255 bytes (every RSA key) are
/// split into several quoted strings, which resolvers join.
pub fn zone_line(name: &str, value: &str) -> String {
    let chunks: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name}. IN TXT {}", chunks.join(" "))
}

fn ed25519_key(dir: &Path, selector: &str, domains: &[String]) -> Result<Key, String> {
    let path = dir.join("ed25519.pk8");
    let pkcs8 = read_or_create(&path, || {
        Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())
    })?;
    let parse =
        || Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| format!("{}: {e}", path.display()));
    let public_key = parse()?.public_key();
    let signers = domains
        .iter()
        .map(|d| Ok(signer(parse()?, d, selector)))
        .collect::<Result<_, String>>()?;
    Ok(Key {
        selector: selector.to_string(),
        algorithm: DkimAlgorithm::Ed25519,
        public_key,
        signers: KeySigner::Ed25519(signers),
    })
}

fn rsa_key(
    dir: &Path,
    config: &DkimConfig,
    data_dir: &Path,
    domains: &[String],
) -> Result<Key, String> {
    let (path, private) = if config.rsa_key_file.as_os_str().is_empty() {
        let path = dir.join("rsa.pk8");
        let der = read_or_create(&path, || {
            let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
                .map_err(|e| e.to_string())?;
            Ok(key
                .to_pkcs8_der()
                .map_err(|e| e.to_string())?
                .as_bytes()
                .to_vec())
        })?;
        let key = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        (path, key)
    } else {
        let path = absolute(data_dir, &config.rsa_key_file);
        (path.clone(), read_rsa_file(&path)?)
    };
    let named = |e: String| format!("{}: {e}", path.display());
    let bits = rsa::traits::PublicKeyParts::size(&private) * 8;
    if bits < RSA_BITS {
        return Err(named(format!(
            "a {bits}-bit RSA key; DKIM verifiers want at least {RSA_BITS} bits"
        )));
    }
    let public_key = private
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| named(e.to_string()))?
        .as_bytes()
        .to_vec();
    let pkcs8 = private
        .to_pkcs8_der()
        .map_err(|e| named(e.to_string()))?
        .as_bytes()
        .to_vec();
    let selector = config.effective_rsa_selector();
    let signers = domains
        .iter()
        .map(|d| {
            let key = RsaKey::<Sha256>::from_key_der(rustls::pki_types::PrivateKeyDer::Pkcs8(
                pkcs8.as_slice().into(),
            ))
            .map_err(|e| named(e.to_string()))?;
            Ok(signer(key, d, &selector))
        })
        .collect::<Result<_, String>>()?;
    Ok(Key {
        selector,
        algorithm: DkimAlgorithm::Rsa,
        public_key,
        signers: KeySigner::Rsa(signers),
    })
}

/// An RSA private key file as OpenDKIM and `openssl genrsa`/`genpkey` write them.
fn read_rsa_file(path: &Path) -> Result<rsa::RsaPrivateKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if text.contains("BEGIN RSA PRIVATE KEY") {
        rsa::RsaPrivateKey::from_pkcs1_pem(&text)
    } else if text.contains("BEGIN PRIVATE KEY") {
        return rsa::RsaPrivateKey::from_pkcs8_pem(&text)
            .map_err(|e| format!("{}: not an RSA key in PKCS#8 PEM: {e}", path.display()));
    } else {
        return Err(format!(
            "{}: no \"BEGIN RSA PRIVATE KEY\" or \"BEGIN PRIVATE KEY\" block (an RSA key in PEM is needed)",
            path.display()
        ));
    }
    .map_err(|e| format!("{}: not an RSA key in PKCS#1 PEM: {e}", path.display()))
}

fn signer<K: mail_auth::common::crypto::SigningKey>(
    key: K,
    domain: &str,
    selector: &str,
) -> DkimSigner<K, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS.iter().copied())
}

fn absolute(data_dir: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        data_dir.join(path)
    }
}

fn read_or_create(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, String>,
) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let bytes = generate()?;
            match write_private(path, &bytes) {
                Ok(()) => {
                    tracing::info!(target: "serval_mail::dkim", path = %path.display(), "generated a DKIM key");
                    Ok(bytes)
                }
                // Another process (the CLI and the server) made it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
                }
                Err(e) => Err(format!("{}: {e}", path.display())),
            }
        }
        Err(e) => Err(format!("{}: {e}", path.display())),
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

    fn config(algorithms: Vec<DkimAlgorithm>) -> DkimConfig {
        DkimConfig {
            enabled: true,
            algorithms,
            ..DkimConfig::default()
        }
    }

    #[test]
    fn signs_only_own_domains_with_each_key_and_keeps_the_keys() {
        let dir = tempfile::tempdir().unwrap();
        let both = config(vec![DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa]);
        let signer =
            Signer::load_or_create(dir.path(), &both, dir.path(), vec!["example.test".into()])
                .unwrap();
        let msg = b"From: a@example.test\r\nTo: b@remote.test\r\nSubject: s\r\n\r\nbody\r\n";
        let text = String::from_utf8(signer.sign("a@example.test", msg)).unwrap();
        assert!(
            text.starts_with("DKIM-Signature: v=1; a=ed25519-sha256;"),
            "{text}"
        );
        assert!(
            text.contains("a=rsa-sha256;") && text.contains("s=serval-rsa"),
            "{text}"
        );
        assert!(text.contains("d=example.test") && text.contains("s=serval;"));
        assert!(text.ends_with("\r\n\r\nbody\r\n"));
        assert_eq!(signer.sign("a@other.test", msg), msg);
        let again =
            Signer::load_or_create(dir.path(), &both, dir.path(), vec!["example.test".into()])
                .unwrap();
        assert_eq!(again.records(), signer.records());
        let records = signer.records();
        assert_eq!(records[0].0, "serval._domainkey.example.test");
        assert!(records[0].1.starts_with("v=DKIM1; k=ed25519; p="));
        assert_eq!(records[1].0, "serval-rsa._domainkey.example.test");
        // A 2048-bit SubjectPublicKeyInfo is 294 bytes: 392 in base64.
        assert!(
            records[1].1.starts_with("v=DKIM1; k=rsa; p=MIIBIjAN"),
            "{records:?}"
        );
        let line = zone_line(&records[1].0, &records[1].1);
        assert_eq!(line.matches('"').count(), 4, "{line}");
    }

    #[test]
    fn an_rsa_key_file_is_used_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).unwrap();
        let pem = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&key, Default::default()).unwrap();
        std::fs::write(dir.path().join("mail.private"), pem.as_bytes()).unwrap();
        let mut c = config(vec![DkimAlgorithm::Rsa]);
        c.rsa_key_file = "mail.private".into();
        c.rsa_selector = "mail".into();
        let signer = Signer::load_or_create(
            &dir.path().join(".dkim"),
            &c,
            dir.path(),
            vec!["example.test".into()],
        )
        .unwrap();
        let spki = key.to_public_key().to_public_key_der().unwrap();
        assert_eq!(
            signer.records()[0],
            (
                "mail._domainkey.example.test".to_string(),
                format!(
                    "v=DKIM1; k=rsa; p={}",
                    base64::engine::general_purpose::STANDARD.encode(spki.as_bytes())
                )
            )
        );
        assert!(!dir.path().join(".dkim/rsa.pk8").exists());
        std::fs::write(dir.path().join("mail.private"), "not a key").unwrap();
        let err = Signer::load_or_create(dir.path(), &c, dir.path(), vec![])
            .err()
            .unwrap();
        assert!(
            err.contains("mail.private") && err.contains("BEGIN RSA PRIVATE KEY"),
            "{err}"
        );
    }
}
