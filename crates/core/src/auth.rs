//! `Authorization` header schemes every protocol reuses: Basic (RFC 7617) and Digest (RFC 7616,
//! MD5 and SHA-256, qop=auth, with RFC 2617 clients that send no qop also accepted).
//!
//! Pure functions over header values and a clock value passed in, so RTSP and HTTP drivers share
//! them and tests need no sockets. Nonces are stateless: `time:HMAC(secret, time)`, so any number
//! of clients can be challenged without server memory, and an expired nonce is answered with
//! `stale=true` so the client retries without asking the user again.

use std::net::IpAddr;

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

use crate::directory::{AuthError, DigestAlgorithm, Directory, User};

/// Credentials from a Basic `Authorization` header.
#[derive(Debug, PartialEq, Eq)]
pub struct BasicCredentials {
    pub user: String,
    pub password: String,
}

/// Longest header value considered; longer ones are refused before decoding.
const MAX_AUTH_HEADER: usize = 4096;

/// Parses `Basic <base64(user:password)>`.
pub fn parse_basic(header: &str) -> Option<BasicCredentials> {
    if header.len() > MAX_AUTH_HEADER {
        return None;
    }
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some(BasicCredentials {
        user: user.to_string(),
        password: password.to_string(),
    })
}

/// `WWW-Authenticate` value for Basic.
pub fn basic_challenge(realm: &str) -> String {
    format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")
}

/// The parameters of a Digest `Authorization` header.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
pub struct DigestCredentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
    pub opaque: Option<String>,
}

impl DigestCredentials {
    pub fn algorithm(&self) -> Option<DigestAlgorithm> {
        match self.algorithm.as_deref() {
            None => Some(DigestAlgorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("md5") => Some(DigestAlgorithm::Md5),
            Some(a) if a.eq_ignore_ascii_case("sha-256") => Some(DigestAlgorithm::Sha256),
            _ => None,
        }
    }
}

/// Parses `Digest k=v, k="v", ...`. Unknown parameters are ignored.
pub fn parse_digest(header: &str) -> Option<DigestCredentials> {
    if header.len() > MAX_AUTH_HEADER {
        return None;
    }
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("digest") {
        return None;
    }
    let mut c = DigestCredentials::default();
    loop {
        rest = rest.trim_start_matches([' ', ',', '\t']);
        if rest.is_empty() {
            break;
        }
        let (key, after) = rest.split_once('=')?;
        let key = key.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = None;
            while let Some((i, ch)) = chars.next() {
                match ch {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = Some(i + 1);
                        break;
                    }
                    other => value.push(other),
                }
            }
            (value, quoted.get(end?..)?)
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after.get(..end)?.trim().to_string(), after.get(end..)?)
        };
        match key.as_str() {
            "username" => c.username = value,
            "realm" => c.realm = value,
            "nonce" => c.nonce = value,
            "uri" => c.uri = value,
            "response" => c.response = value,
            "algorithm" => c.algorithm = Some(value),
            "qop" => c.qop = Some(value),
            "nc" => c.nc = Some(value),
            "cnonce" => c.cnonce = Some(value),
            "opaque" => c.opaque = Some(value),
            _ => {}
        }
        rest = remaining;
    }
    if c.username.is_empty() || c.nonce.is_empty() || c.response.is_empty() {
        return None;
    }
    Some(c)
}

/// The response value a client must send for `ha1` (RFC 7616 §3.4.1; RFC 2069 form without qop).
pub fn digest_response(
    algorithm: DigestAlgorithm,
    ha1: &str,
    method: &str,
    c: &DigestCredentials,
) -> String {
    let ha2 = algorithm.hex(format!("{method}:{}", c.uri).as_bytes());
    match (&c.qop, &c.nc, &c.cnonce) {
        (Some(qop), Some(nc), Some(cnonce)) => {
            algorithm.hex(format!("{ha1}:{}:{nc}:{cnonce}:{qop}:{ha2}", c.nonce).as_bytes())
        }
        _ => algorithm.hex(format!("{ha1}:{}:{ha2}", c.nonce).as_bytes()),
    }
}

/// State of a nonce presented by a client.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum NonceState {
    Valid,
    /// Ours but expired: challenge again with `stale=true`.
    Stale,
    Invalid,
}

/// Issues and checks stateless Digest nonces.
#[derive(Clone)]
pub struct DigestNonces {
    secret: [u8; 32],
    lifetime_secs: u64,
}

impl DigestNonces {
    pub fn new(lifetime: std::time::Duration) -> DigestNonces {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut secret);
        DigestNonces {
            secret,
            lifetime_secs: lifetime.as_secs().max(1),
        }
    }

    /// A nonce minted at `now_unix` (seconds).
    pub fn issue(&self, now_unix: u64) -> String {
        format!("{now_unix:x}.{}", self.mac(now_unix))
    }

    pub fn check(&self, nonce: &str, now_unix: u64) -> NonceState {
        let Some((time_hex, mac)) = nonce.split_once('.') else {
            return NonceState::Invalid;
        };
        let Ok(minted) = u64::from_str_radix(time_hex, 16) else {
            return NonceState::Invalid;
        };
        if !constant_time_eq(mac.as_bytes(), self.mac(minted).as_bytes()) {
            return NonceState::Invalid;
        }
        if minted > now_unix.saturating_add(5) {
            return NonceState::Invalid;
        }
        if now_unix.saturating_sub(minted) > self.lifetime_secs {
            return NonceState::Stale;
        }
        NonceState::Valid
    }

    /// `WWW-Authenticate` value for Digest.
    pub fn challenge(
        &self,
        realm: &str,
        algorithm: DigestAlgorithm,
        stale: bool,
        now_unix: u64,
    ) -> String {
        let mut v = format!(
            "Digest realm=\"{realm}\", nonce=\"{}\", algorithm={}, qop=\"auth\"",
            self.issue(now_unix),
            algorithm.as_str()
        );
        if stale {
            v.push_str(", stale=true");
        }
        v
    }

    fn mac(&self, minted: u64) -> String {
        // HMAC is overkill for a nonce that only has to be unforgeable; a keyed SHA-256 over a fixed
        // layout (secret || time || secret) is not length-extendable here.
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update(minted.to_be_bytes());
        h.update(self.secret);
        hex::encode(&h.finalize()[..16])
    }
}

/// Why a Digest login failed.
#[derive(Debug, PartialEq, Eq)]
pub enum DigestFailure {
    /// Expired nonce: challenge again with stale=true.
    Stale,
    Rejected(AuthError),
}

/// Verifies Digest credentials against the directory's stored HA1 for `realm`.
pub fn verify_digest(
    directory: &Directory,
    nonces: &DigestNonces,
    creds: &DigestCredentials,
    method: &str,
    realm: &str,
    peer: IpAddr,
    now_unix: u64,
) -> Result<User, DigestFailure> {
    directory
        .check_rate_limit(peer)
        .map_err(DigestFailure::Rejected)?;
    let fail = |d: &Directory| {
        d.record_failed_login(&creds.username, peer);
        DigestFailure::Rejected(AuthError::BadCredentials)
    };
    if creds.realm != realm {
        return Err(fail(directory));
    }
    let Some(algorithm) = creds.algorithm() else {
        return Err(fail(directory));
    };
    match nonces.check(&creds.nonce, now_unix) {
        NonceState::Valid => {}
        NonceState::Stale => return Err(DigestFailure::Stale),
        NonceState::Invalid => return Err(fail(directory)),
    }
    let ha1 = match directory.digest_ha1(&creds.username, realm, algorithm) {
        Ok(Some(ha1)) => ha1,
        Ok(None) => return Err(fail(directory)),
        Err(_) => return Err(DigestFailure::Rejected(AuthError::Unavailable)),
    };
    let expected = digest_response(algorithm, &ha1, method, creds);
    if !constant_time_eq(
        expected.as_bytes(),
        creds.response.to_ascii_lowercase().as_bytes(),
    ) {
        return Err(fail(directory));
    }
    match directory.user(&creds.username) {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(fail(directory)),
        Err(_) => Err(DigestFailure::Rejected(AuthError::Unavailable)),
    }
}

/// Compares without an early exit, so timing does not reveal how much of a secret matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::digest_ha1;

    #[test]
    fn basic_parses_and_rejects_garbage() {
        let c = parse_basic("Basic YWxhZGRpbjpvcGVuc2VzYW1l").unwrap();
        assert_eq!(
            c,
            BasicCredentials {
                user: "aladdin".into(),
                password: "opensesame".into()
            }
        );
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Bearer abc"), None);
        assert_eq!(parse_basic(&format!("Basic {}", "A".repeat(5000))), None);
    }

    /// The worked example of RFC 7616 §3.9.1 (MD5 and SHA-256).
    #[test]
    fn rfc7616_example_responses() {
        let header = r#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",
            algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001,
            cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth,
            response="8ca523f5e9506fed4657c9700eebdbec", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_digest(&header.replace('\n', " ")).unwrap();
        let ha1 = digest_ha1(
            DigestAlgorithm::Md5,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(
            digest_response(DigestAlgorithm::Md5, &ha1, "GET", &c),
            c.response
        );
        let ha1 = digest_ha1(
            DigestAlgorithm::Sha256,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        assert_eq!(
            digest_response(DigestAlgorithm::Sha256, &ha1, "GET", &c),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn nonces_expire_as_stale_and_cannot_be_forged() {
        let n = DigestNonces::new(std::time::Duration::from_secs(60));
        let nonce = n.issue(1000);
        assert_eq!(n.check(&nonce, 1030), NonceState::Valid);
        assert_eq!(n.check(&nonce, 1100), NonceState::Stale);
        assert_eq!(
            n.check("3e8.00000000000000000000000000000000", 1000),
            NonceState::Invalid
        );
        assert_eq!(n.check("garbage", 1000), NonceState::Invalid);
        let other = DigestNonces::new(std::time::Duration::from_secs(60));
        assert_eq!(other.check(&nonce, 1000), NonceState::Invalid);
    }
}
