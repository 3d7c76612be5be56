//! ACME (RFC 8555) certificates for the sites' names, the way Caddy does it: one certificate
//! per site (its host and aliases), proved over HTTP-01 on the plain listener, kept in
//! `data_dir/acme/` (so a restart neither waits for the CA nor spends its rate limits) and
//! renewed `renew_before` expiry. The HTTPS listener picks the certificate by SNI and falls
//! back to the `[tls]` one. The protocol itself is `instant-acme`'s; this module decides when
//! to order, answers the challenges, stores the results and says what went wrong.

use crate::config::{is_acme_name, AcmeConfig};
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// HTTP-01 answers being asked for right now: token to key authorization.
#[derive(Default)]
pub struct Challenges(RwLock<HashMap<String, String>>);

pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

impl Challenges {
    /// The body for `GET /.well-known/acme-challenge/TOKEN`, if that token is pending.
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PREFIX)?;
        self.0.read().ok()?.get(token).cloned()
    }
    fn insert(&self, token: &str, key_authorization: &str) {
        if let Ok(mut map) = self.0.write() {
            map.insert(token.to_owned(), key_authorization.to_owned());
        }
    }
    fn remove(&self, token: &str) {
        if let Ok(mut map) = self.0.write() {
            map.remove(token);
        }
    }
}

/// One site's certificate as the admin page shows it.
#[derive(Clone, Debug, Default)]
pub struct CertStatus {
    /// The names ordered (the site's host and aliases an ACME CA can issue for).
    pub names: Vec<String>,
    pub validity: Option<Validity>,
    /// The last failure, in the CA's words, until an order succeeds.
    pub last_error: Option<String>,
    pub next_attempt: Option<SystemTime>,
}

/// The certificates the HTTPS listener presents, chosen by SNI.
pub struct Certificates {
    by_name: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// The `[tls]` certificate, for names without an ACME one (and clients without SNI).
    fallback: Option<Arc<dyn ResolvesServerCert>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates").finish_non_exhaustive()
    }
}

impl Certificates {
    pub fn new(fallback: Option<Arc<dyn ResolvesServerCert>>) -> Self {
        Self {
            by_name: RwLock::new(HashMap::new()),
            fallback,
        }
    }
    fn install(&self, names: &[String], key: Arc<CertifiedKey>) {
        if let Ok(mut map) = self.by_name.write() {
            for name in names {
                map.insert(name.clone(), key.clone());
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = hello.server_name() {
            let name = name.to_ascii_lowercase();
            if let Some(key) = self.by_name.read().ok()?.get(&name) {
                return Some(key.clone());
            }
        }
        match &self.fallback {
            Some(fallback) => fallback.resolve(hello),
            // No [tls]: a client without SNI (or with an unknown name) still gets a
            // certificate, the first site's, rather than a handshake failure.
            None => self.by_name.read().ok()?.values().next().cloned(),
        }
    }
}

/// The HTTPS server config: ACME certificates by SNI, then the `[tls]` one.
pub fn server_config(
    certificates: Arc<Certificates>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certificates);
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The names of one site an ACME CA can issue for, lowercased, host first.
pub fn site_names(host: &str, aliases: &[String]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for n in std::iter::once(host).chain(aliases.iter().map(String::as_str)) {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if is_acme_name(&n) && !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

/// A certificate's validity: (not before, not after).
pub type Validity = (SystemTime, SystemTime);

/// When a certificate is renewed: `renew_before` its expiry, or when a third of its lifetime
/// is left if that is sooner (Let's Encrypt's advice for its 90-day certificates is 30 days,
/// the same; for short-lived ones a fixed window would be longer than the life itself and
/// every fresh certificate would be "due").
pub fn renew_at(validity: Validity, renew_before: Duration) -> SystemTime {
    let (not_before, not_after) = validity;
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_after
        .checked_sub(renew_before.min(lifetime / 3))
        .unwrap_or(not_before)
}

/// Whether a certificate (`None`: there is none) is due for renewal at `now`.
pub fn needs_renewal(validity: Option<Validity>, now: SystemTime, renew_before: Duration) -> bool {
    validity.is_none_or(|v| now >= renew_at(v, renew_before))
}

/// Wait before the next attempt after `failures` failed orders in a row: 1 min doubling to
/// 6 h, well inside Let's Encrypt's limit of 5 failed validations per name and hour.
pub fn retry_delay(failures: u32) -> Duration {
    let minutes = 1u64 << failures.saturating_sub(1).min(9);
    Duration::from_secs((minutes * 60).min(6 * 3600))
}

/// How often certificates are looked at when nothing is due sooner.
const CHECK_EVERY: Duration = Duration::from_secs(12 * 3600);

struct Wanted {
    site: String,
    names: Vec<String>,
    failures: u32,
    next_attempt: SystemTime,
}

/// Orders and renews the sites' certificates.
pub struct Manager {
    config: AcmeConfig,
    dir: PathBuf,
    challenges: Arc<Challenges>,
    certificates: Arc<Certificates>,
    status: RwLock<HashMap<String, CertStatus>>,
    wanted: Mutex<Vec<Wanted>>,
    account: tokio::sync::Mutex<Option<Account>>,
    expiry: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::gauge::Gauge,
    >,
}

impl Manager {
    /// `sites`: each site's name and the names to order for it. Loads the stored
    /// certificates at once, so HTTPS works before the CA is asked anything.
    pub fn new(
        config: AcmeConfig,
        data_dir: &Path,
        sites: Vec<(String, Vec<String>)>,
        certificates: Arc<Certificates>,
        challenges: Arc<Challenges>,
        expiry: prometheus_client::metrics::family::Family<
            Vec<(String, String)>,
            prometheus_client::metrics::gauge::Gauge,
        >,
    ) -> Self {
        let manager = Self {
            config,
            dir: data_dir.join("acme"),
            challenges,
            certificates,
            status: RwLock::new(HashMap::new()),
            wanted: Mutex::new(Vec::new()),
            account: tokio::sync::Mutex::new(None),
            expiry,
        };
        let now = SystemTime::now();
        let mut wanted = Vec::new();
        for (site, names) in sites.into_iter().filter(|(_, n)| !n.is_empty()) {
            let validity = manager.load_stored(&site, &names);
            manager.set_status(&site, |s| {
                s.names = names.clone();
                s.validity = validity;
            });
            wanted.push(Wanted {
                site,
                names,
                failures: 0,
                next_attempt: now,
            });
        }
        if let Ok(mut w) = manager.wanted.lock() {
            *w = wanted;
        }
        manager
    }

    pub fn status(&self, site: &str) -> Option<CertStatus> {
        self.status.read().ok()?.get(site).cloned()
    }

    fn set_status(&self, site: &str, f: impl FnOnce(&mut CertStatus)) {
        if let Ok(mut map) = self.status.write() {
            f(map.entry(site.to_owned()).or_default());
        }
    }

    fn paths(&self, site: &str) -> (PathBuf, PathBuf) {
        let base = site.trim_end_matches('.').to_ascii_lowercase();
        (
            self.dir.join(format!("{base}.crt")),
            self.dir.join(format!("{base}.key")),
        )
    }

    /// Installs the stored certificate of `site` if it covers `names`; returns its validity.
    fn load_stored(&self, site: &str, names: &[String]) -> Option<Validity> {
        let (cert_path, key_path) = self.paths(site);
        let cert_pem = std::fs::read(&cert_path).ok()?;
        let key_pem = std::fs::read(&key_path).ok()?;
        match certified_key(&cert_pem, &key_pem) {
            Ok((key, validity, covered)) => {
                let not_after = validity.1;
                if names.iter().any(|n| !covered.contains(n)) {
                    tracing::info!(target: "serval_web", site, "the stored certificate does not cover every name of the site; ordering a new one");
                    return None;
                }
                self.certificates.install(names, Arc::new(key));
                self.record_expiry(site, not_after);
                tracing::info!(target: "serval_web", site, expires = %httpdate::fmt_http_date(not_after), "ACME certificate loaded from {}", cert_path.display());
                Some(validity)
            }
            Err(e) => {
                tracing::warn!(target: "serval_web", site, "the stored certificate {} is unusable ({e}); ordering a new one", cert_path.display());
                None
            }
        }
    }

    fn record_expiry(&self, site: &str, not_after: SystemTime) {
        let secs = not_after
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.expiry
            .get_or_create(&vec![("site".to_owned(), site.to_owned())])
            .set(i64::try_from(secs).unwrap_or(i64::MAX));
    }

    /// Orders what is due, then sleeps until the next thing is due, until shutdown.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let now = SystemTime::now();
            let due: Vec<(String, Vec<String>)> = self
                .wanted
                .lock()
                .map(|w| {
                    w.iter()
                        .filter(|w| w.next_attempt <= now)
                        .filter(|w| {
                            let validity = self.status(&w.site).and_then(|s| s.validity);
                            needs_renewal(validity, now, self.config.renew_before.0)
                        })
                        .map(|w| (w.site.clone(), w.names.clone()))
                        .collect()
                })
                .unwrap_or_default();
            for (site, names) in due {
                let outcome = tokio::select! {
                    r = self.order(&site, &names) => r,
                    _ = shutdown.cancelled() => return,
                };
                self.after_order(&site, outcome);
            }
            let wake = self.next_wake(SystemTime::now());
            let sleep = wake
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1));
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = shutdown.cancelled() => return,
            }
        }
    }

    fn after_order(&self, site: &str, outcome: Result<Validity, String>) {
        let Ok(mut wanted) = self.wanted.lock() else {
            return;
        };
        let Some(w) = wanted.iter_mut().find(|w| w.site == site) else {
            return;
        };
        match outcome {
            Ok(validity) => {
                w.failures = 0;
                w.next_attempt = SystemTime::now();
                self.set_status(site, |s| {
                    s.validity = Some(validity);
                    s.last_error = None;
                    s.next_attempt = None;
                });
            }
            Err(reason) => {
                w.failures += 1;
                let delay = retry_delay(w.failures);
                w.next_attempt = SystemTime::now() + delay;
                let next = w.next_attempt;
                tracing::warn!(target: "serval_web", site, names = %w.names.join(","), attempt = w.failures, retry_in_s = delay.as_secs(), "ACME certificate not issued: {reason}");
                self.set_status(site, |s| {
                    s.last_error = Some(reason);
                    s.next_attempt = Some(next);
                });
            }
        }
    }

    fn next_wake(&self, now: SystemTime) -> SystemTime {
        let mut wake = now + CHECK_EVERY;
        if let Ok(wanted) = self.wanted.lock() {
            for w in wanted.iter() {
                let due = self
                    .status(&w.site)
                    .and_then(|s| s.validity)
                    .map_or(now, |v| renew_at(v, self.config.renew_before.0));
                wake = wake.min(due.max(w.next_attempt));
            }
        }
        wake
    }

    async fn account(&self) -> Result<Account, String> {
        let mut slot = self.account.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        // One account per CA: switching from staging to production makes a new one.
        let digest = sha256_hex(self.config.directory.as_bytes());
        let path = self.dir.join(format!("account-{}.json", &digest[..16]));
        let builder = || {
            if self.config.ca_file.is_empty() {
                Account::builder()
            } else {
                Account::builder_with_root(&self.config.ca_file)
            }
            .map_err(|e| format!("cannot set up the HTTPS client for the CA: {e}"))
        };
        let account = match std::fs::read(&path) {
            Ok(bytes) => {
                let credentials: AccountCredentials = serde_json::from_slice(&bytes)
                    .map_err(|e| format!("{} is not an ACME account: {e}", path.display()))?;
                builder()?
                    .from_credentials(credentials)
                    .await
                    .map_err(|e| describe(&self.config.directory, e))?
            }
            Err(_) => {
                let contact: Vec<&str> = self.config.contact.iter().map(String::as_str).collect();
                let (account, credentials) = builder()?
                    .create(
                        &NewAccount {
                            contact: &contact,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.config.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(|e| describe(&self.config.directory, e))?;
                let json = serde_json::to_vec_pretty(&credentials)
                    .map_err(|e| format!("cannot save the ACME account: {e}"))?;
                write_private(&path, &json)?;
                tracing::info!(target: "serval_web", ca = %self.config.directory, id = account.id(), "ACME account created");
                account
            }
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// One order, start to finish; returns the new certificate's validity.
    async fn order(&self, site: &str, names: &[String]) -> Result<Validity, String> {
        let account = self.account().await?;
        tracing::info!(target: "serval_web", site, names = %names.join(","), ca = %self.config.directory, "ordering an ACME certificate");
        let identifiers: Vec<Identifier> = names.iter().cloned().map(Identifier::Dns).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| describe(&self.config.directory, e))?;
        let mut tokens = Vec::new();
        let result = self.prove_and_fetch(&mut order, &mut tokens).await;
        for token in &tokens {
            self.challenges.remove(token);
        }
        let (cert_pem, key_pem) = result?;
        let (key, validity, _) = certified_key(cert_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| format!("the CA's certificate is unusable: {e}"))?;
        let not_after = validity.1;
        let (cert_path, key_path) = self.paths(site);
        write_private(&key_path, key_pem.as_bytes())?;
        write_atomic(&cert_path, cert_pem.as_bytes())?;
        self.certificates.install(names, Arc::new(key));
        self.record_expiry(site, not_after);
        tracing::info!(target: "serval_web", site, names = %names.join(","), expires = %httpdate::fmt_http_date(not_after), renews = %httpdate::fmt_http_date(renew_at(validity, self.config.renew_before.0)), "ACME certificate issued and in use");
        Ok(validity)
    }

    async fn prove_and_fetch(
        &self,
        order: &mut instant_acme::Order,
        tokens: &mut Vec<String>,
    ) -> Result<(String, String), String> {
        let ca = &self.config.directory;
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authz = result.map_err(|e| describe(ca, e))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(format!(
                        "the CA reports the authorization for {} as {other:?}",
                        authz.identifier()
                    ))
                }
            }
            let mut challenge = authz.challenge(ChallengeType::Http01).ok_or_else(|| {
                "the CA offers no http-01 challenge (wildcard names need dns-01, which Serval does not do)"
                    .to_owned()
            })?;
            let token = challenge.token.clone();
            self.challenges
                .insert(&token, challenge.key_authorization().as_str());
            tokens.push(token);
            challenge.set_ready().await.map_err(|e| describe(ca, e))?;
        }
        let retries = RetryPolicy::new().timeout(Duration::from_secs(90));
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| describe(ca, e))?;
        if status != OrderStatus::Ready {
            return Err(self.why_invalid(order, status).await);
        }
        let key_pem = order.finalize().await.map_err(|e| describe(ca, e))?;
        let cert_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| describe(ca, e))?;
        Ok((cert_pem, key_pem))
    }

    /// The CA's own explanation of a failed validation, per name: "connection refused",
    /// "the answer was 404", ... (what the admin needs to fix port 80 or DNS).
    async fn why_invalid(&self, order: &mut instant_acme::Order, status: OrderStatus) -> String {
        let mut reasons = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(Ok(authz)) = authorizations.next().await {
            for challenge in &authz.challenges {
                if let Some(problem) = &challenge.error {
                    reasons.push(format!(
                        "{}: {}",
                        authz.identifier(),
                        problem.detail.as_deref().unwrap_or("validation failed")
                    ));
                }
            }
        }
        if reasons.is_empty() {
            format!("the order ended {status:?} without a reason from the CA")
        } else {
            format!(
                "the CA could not validate {}. {VALIDATION_HINT}",
                reasons.join("; ")
            )
        }
    }
}

const VALIDATION_HINT: &str = "The CA fetches http://NAME/.well-known/acme-challenge/ on port 80: check that the name's DNS points at this machine and that port 80 reaches web.listen";

/// An `instant-acme` error in words that name the CA.
fn describe(ca: &str, error: instant_acme::Error) -> String {
    match error {
        instant_acme::Error::Api(problem)
            if problem.r#type.as_deref().is_some_and(|t| {
                [
                    "connection",
                    "unauthorized",
                    "dns",
                    "incorrectResponse",
                    "tls",
                ]
                .iter()
                .any(|k| t == format!("urn:ietf:params:acme:error:{k}"))
            }) =>
        {
            format!(
                "the CA could not validate the name: {} ({}). {VALIDATION_HINT}",
                problem.detail.as_deref().unwrap_or("no detail"),
                problem.r#type.as_deref().unwrap_or_default()
            )
        }
        instant_acme::Error::Api(problem) => format!(
            "the CA refused: {}{}",
            problem.detail.as_deref().unwrap_or("no detail"),
            problem
                .r#type
                .as_deref()
                .map(|t| format!(" ({t})"))
                .unwrap_or_default()
        ),
        instant_acme::Error::Hyper(e) => format!("cannot reach the CA at {ca}: {e}"),
        instant_acme::Error::Other(e) => format!("cannot talk to the CA at {ca}: {e}"),
        other => format!("ACME exchange with {ca} failed: {other}"),
    }
}

/// Parses a PEM chain and key into what rustls presents, with the leaf's validity and names.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
) -> Result<(CertifiedKey, Validity, Vec<String>), String> {
    let chain: Vec<_> = rustls_pemfile::certs(&mut &cert_pem[..])
        .filter_map(Result::ok)
        .collect();
    let leaf = chain.first().ok_or("no certificate in the PEM")?;
    let validity =
        serval_core::tls::der_validity(leaf).ok_or("the certificate has no readable validity")?;
    let names = serval_core::tls::der_dns_names(leaf);
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .ok()
        .flatten()
        .ok_or("no private key in the PEM")?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .map_err(|e| format!("unsupported private key: {e}"))?;
    Ok((CertifiedKey::new(chain, signing), validity, names))
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    let mut hex = String::new();
    for b in sha2::Sha256::digest(bytes) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Writes through a temporary file and a rename, so a crash never leaves half a file.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_with_mode(path, bytes, 0o644)
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    write_with_mode(path, bytes, 0o600)
}

fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_inside_the_window_or_without_a_certificate() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let day = Duration::from_secs(86_400);
        let window = 30 * day;
        let ninety_days = |not_after: SystemTime| Some((not_after - 90 * day, not_after));
        assert!(needs_renewal(None, now, window));
        assert!(!needs_renewal(ninety_days(now + 31 * day), now, window));
        assert!(needs_renewal(ninety_days(now + 30 * day), now, window));
        assert!(needs_renewal(ninety_days(now - day), now, window));
        // A 6-day certificate renews with 2 days left, not at once.
        let short = (now, now + 6 * day);
        assert_eq!(renew_at(short, window), now + 4 * day);
        assert!(!needs_renewal(Some(short), now + 3 * day, window));
        assert!(needs_renewal(Some(short), now + 4 * day, window));
    }

    #[test]
    fn retries_back_off_to_six_hours() {
        assert_eq!(retry_delay(1), Duration::from_secs(60));
        assert_eq!(retry_delay(2), Duration::from_secs(120));
        assert_eq!(retry_delay(5), Duration::from_secs(960));
        assert_eq!(retry_delay(40), Duration::from_secs(6 * 3600));
    }

    #[test]
    fn site_names_keep_what_a_ca_can_issue_for() {
        let names = site_names(
            "WWW.Example.test.",
            &[
                "example.test".into(),
                "localhost".into(),
                "*.example.test".into(),
                "www.example.test".into(),
            ],
        );
        assert_eq!(names, ["www.example.test", "example.test"]);
    }

    #[test]
    fn challenges_answer_only_pending_tokens() {
        let c = Challenges::default();
        c.insert("tok", "tok.thumb");
        assert_eq!(
            c.answer("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.answer("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.answer("/tok"), None);
        c.remove("tok");
        assert_eq!(c.answer("/.well-known/acme-challenge/tok"), None);
    }

    #[test]
    fn stored_pairs_parse_with_expiry_and_names() {
        let generated =
            rcgen::generate_simple_self_signed(vec!["a.example.test".to_owned()]).unwrap();
        let (_, (_, not_after), names) = certified_key(
            generated.cert.pem().as_bytes(),
            generated.key_pair.serialize_pem().as_bytes(),
        )
        .unwrap();
        assert_eq!(names, ["a.example.test"]);
        assert!(not_after > SystemTime::now());
        assert!(certified_key(b"junk", b"junk").is_err());
    }
}
