//! TLS server configuration from `[tls]`: PEM files, or a self-signed certificate generated once
//! into `data_dir/tls/` and reused across restarts (so clients that pinned it keep working).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key")]
    NoKey { path: PathBuf },
    #[error("cannot write the self-signed certificate to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate and key do not form a usable TLS config: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds the rustls server config, or `None` when `[tls]` is not configured.
pub fn server_config(
    config: &TlsConfig,
    data_dir: &Path,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    let (cert_path, key_path) = match (&config.cert, &config.key) {
        (Some(c), Some(k)) => (data_dir.join(c), data_dir.join(k)),
        _ if config.self_signed => ensure_self_signed(data_dir)?,
        _ => return Ok(None),
    };
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| TlsError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let cert_pem = read(&cert_path)?;
    let key_pem = read(&key_path)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or(TlsError::NoKey { path: key_path })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(Arc::new(cfg)))
}

/// When the `[tls]` certificate expires (its first, leaf, certificate), or `None` when TLS is
/// off or the file cannot be read; shown on the admin page so nobody learns it from users.
pub fn certificate_not_after(config: &TlsConfig, data_dir: &Path) -> Option<std::time::SystemTime> {
    let path = match &config.cert {
        Some(c) if config.key.is_some() => data_dir.join(c),
        _ if config.self_signed => data_dir.join("tls").join("self-signed.crt"),
        _ => return None,
    };
    pem_not_after(&std::fs::read(path).ok()?)
}

/// Expiry of the first certificate in a PEM chain.
pub fn pem_not_after(pem: &[u8]) -> Option<std::time::SystemTime> {
    let der = rustls_pemfile::certs(&mut &pem[..]).next()?.ok()?;
    der_not_after(&der)
}

/// Expiry of one DER certificate.
pub fn der_not_after(der: &[u8]) -> Option<std::time::SystemTime> {
    der_validity(der).map(|(_, not_after)| not_after)
}

/// Validity (not before, not after) of one DER certificate.
pub fn der_validity(der: &[u8]) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let time = |t: x509_parser::time::ASN1Time| {
        u64::try_from(t.timestamp())
            .ok()
            .map(|secs| std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
    };
    Some((
        time(cert.validity().not_before)?,
        time(cert.validity().not_after)?,
    ))
}

/// The DNS names (subject alternative names) of one DER certificate.
pub fn der_dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn ensure_self_signed(data_dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join("tls");
    let cert = dir.join("self-signed.crt");
    let key = dir.join("self-signed.key");
    if cert.is_file() && key.is_file() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).map_err(|source| TlsError::Write {
        path: dir.clone(),
        source,
    })?;
    let host = hostname();
    let names = vec![
        host,
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    write_private(&key, generated.key_pair.serialize_pem().as_bytes())?;
    std::fs::write(&cert, generated.cert.pem()).map_err(|source| TlsError::Write {
        path: cert.clone(),
        source,
    })?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| TlsError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(bytes).map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "serval.local".into())
}
