//! The `[web]` table of serval.toml, with its defaults in one place.

use serde::{Deserialize, Serialize};
pub use serval_core::config::{ByteSize, HumanDuration, Listen, Problems};

/// The `[web]` table.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebConfig {
    pub enabled: bool,
    /// HTTP addresses; one address or a list.
    pub listen: Listen,
    /// HTTPS addresses with the `[tls]` certificate; empty: none.
    pub tls_listen: Listen,
    /// Largest request body (uploads, POSTed forms); larger gets 413. nginx: 1 MB, PHP: 8 MB.
    pub max_body_size: ByteSize,
    /// Largest request head (request line and headers); larger gets 431. nginx: 4 x 8 KiB.
    pub max_header_size: ByteSize,
    /// Concurrent connections; more wait for a free slot.
    pub max_connections: usize,
    /// Accept Basic logins (realms) over plain HTTP from other hosts; off: only over HTTPS or
    /// from this machine, so passwords never cross the network in clear.
    pub allow_insecure_auth: bool,
    /// Certificates from an ACME CA (Let's Encrypt) for the sites' names.
    pub acme: AcmeConfig,
    /// The sites, chosen by the request's Host header.
    #[serde(rename = "site")]
    pub sites: Vec<SiteConfig>,
}

/// `[web.acme]`: certificates for the sites' names from an ACME CA, renewed before expiry.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AcmeConfig {
    /// Ask the CA for a certificate per site (its host and aliases), proving control of the
    /// names over HTTP on port 80 (HTTP-01): `web.listen` must be reachable there.
    pub enabled: bool,
    /// The CA's directory URL. Let's Encrypt's staging CA, for trying things out:
    /// "https://acme-staging-v02.api.letsencrypt.org/directory".
    pub directory: String,
    /// Contact addresses given to the CA for expiry warnings, e.g. ["mailto:admin@example.test"].
    pub contact: Vec<String>,
    /// PEM root certificate trusted for the CA's own HTTPS (a private or test CA); empty:
    /// the system's roots.
    pub ca_file: String,
    /// Renew this long before a certificate expires (Let's Encrypt's are valid 90 days), or
    /// when a third of its life is left if that is sooner.
    pub renew_before: HumanDuration,
}

impl Default for AcmeConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            directory: "https://acme-v02.api.letsencrypt.org/directory".into(),
            contact: Vec::new(),
            ca_file: String::new(),
            renew_before: HumanDuration::secs(30 * 86_400),
        }
    }
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: Listen::one("127.0.0.1:8080"),
            tls_listen: Listen(Vec::new()),
            max_body_size: ByteSize(8_000_000),
            max_header_size: ByteSize(32 * 1024),
            max_connections: 1024,
            allow_insecure_auth: false,
            acme: AcmeConfig::default(),
            sites: vec![SiteConfig::default()],
        }
    }
}

/// One `[[web.site]]`: a virtual host.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// The site's name, matched against the Host header (without port); `*.example.test`
    /// matches any subdomain.
    pub host: String,
    /// More names of the same site.
    pub aliases: Vec<String>,
    /// The site answering requests whose Host matches no site (or that have none); when no
    /// site says so, the first one does.
    pub default: bool,
    /// Folder of static files; relative paths are under data_dir. Empty: data_dir/www.
    pub root: String,
    /// Files tried, in order, for a request naming a folder.
    pub index: Vec<String>,
    /// List a folder's files when it has no index file.
    pub listing: bool,
    /// Serve names starting with a dot (.git, .env, .htpasswd); off: 404.
    pub dotfiles: bool,
    /// Follow symbolic links that lead out of `root`.
    pub follow_symlinks: bool,
    /// FastCGI server for `.php` files: "unix:/run/php/php8.2-fpm.sock" or "127.0.0.1:9000"; empty: none.
    pub php: String,
    /// Longest a FastCGI answer may take before the client gets 504.
    pub php_timeout: HumanDuration,
    /// Connections to php-fpm kept open for reuse; 0: a new connection per request, as nginx
    /// does by default. An open connection holds a php-fpm worker, so when this is set, no
    /// more than this many requests go to php-fpm at once: set it to the pool's
    /// `pm.max_children` at most. Measured (`serval bench web`), a connection per request
    /// keeps php-fpm's workers busier under load: finished workers take the next queued
    /// connection at once instead of waiting for Serval to hand them one.
    pub php_keep_alive: usize,
    /// Compress text answers (gzip, brotli) for clients that accept it.
    pub compress: bool,
    /// `Cache-Control: max-age` for static files; 0: no header (clients revalidate with ETag).
    pub cache_max_age: HumanDuration,
    /// Custom error pages: status code to a path under `root`, e.g. { "404" = "/404.html" }.
    pub error_pages: std::collections::BTreeMap<String, String>,
    /// Redirects, checked first.
    #[serde(rename = "redirect")]
    pub redirects: Vec<RedirectConfig>,
    /// Paths that need a directory login (HTTP Basic), like the old server's realms.
    #[serde(rename = "auth")]
    pub auth: Vec<AuthConfig>,
    /// Paths passed on to another HTTP server.
    #[serde(rename = "proxy")]
    pub proxies: Vec<ProxyConfig>,
    /// With `[web.acme]` enabled, get a certificate for this site's names (those that are
    /// DNS names: not localhost, IP addresses or wildcards); off: the `[tls]` certificate.
    pub acme: bool,
}

impl Default for SiteConfig {
    fn default() -> Self {
        Self {
            host: "localhost".into(),
            aliases: Vec::new(),
            default: false,
            root: String::new(),
            index: vec!["index.html".into(), "index.htm".into(), "index.php".into()],
            listing: false,
            dotfiles: false,
            follow_symlinks: false,
            php: String::new(),
            php_timeout: HumanDuration::secs(60),
            php_keep_alive: 0,
            compress: true,
            cache_max_age: HumanDuration::secs(0),
            error_pages: Default::default(),
            redirects: Vec::new(),
            auth: Vec::new(),
            proxies: Vec::new(),
            acme: true,
        }
    }
}

/// `[[web.site.redirect]]`: requests under `from` go to `to`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RedirectConfig {
    /// A path; ending in `/` it is a prefix whose rest is appended to `to`.
    pub from: String,
    /// A path or absolute URL.
    pub to: String,
    /// 301, 302, 303, 307 or 308; 0 means 301.
    pub status: u16,
}

/// `[[web.site.auth]]`: a realm.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Path prefix that needs a login.
    pub path: String,
    /// Shown by the browser's login prompt; empty: the site name.
    pub realm: String,
    /// Only members of these directory groups; empty: any directory user.
    pub groups: Vec<String>,
}

/// `[[web.site.proxy]]`: a reverse-proxied path.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Path prefix passed on (kept in the forwarded path).
    pub path: String,
    /// The upstream: "http://127.0.0.1:3000".
    pub to: String,
    /// Forward the client's Host header instead of the upstream's.
    pub preserve_host: bool,
    /// Longest the upstream may take to start answering before the client gets 504.
    pub timeout: HumanDuration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            to: String::new(),
            preserve_host: false,
            timeout: HumanDuration::secs(60),
        }
    }
}

/// Where a site's FastCGI server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastCgiAddr {
    Unix(std::path::PathBuf),
    Tcp(String),
}

impl std::fmt::Display for FastCgiAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FastCgiAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            FastCgiAddr::Tcp(a) => write!(f, "{a}"),
        }
    }
}

/// Parses `php`: "unix:/path", "/path" (a socket) or "host:port".
pub fn parse_fastcgi_addr(text: &str) -> Result<FastCgiAddr, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        return if path.starts_with('/') {
            Ok(FastCgiAddr::Unix(path.into()))
        } else {
            Err(format!("`{text}`: the socket path must be absolute"))
        };
    }
    if text.starts_with('/') {
        return Ok(FastCgiAddr::Unix(text.into()));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(FastCgiAddr::Tcp(text.to_owned()))
        }
        _ => Err(format!(
            "`{text}` is neither unix:/path/to/socket nor host:port"
        )),
    }
}

/// Parses a proxy `to`: only http:// upstreams (TLS to the upstream is not needed on a LAN
/// and would hide the app's own errors behind certificate ones).
pub fn parse_upstream(text: &str) -> Result<hyper::Uri, String> {
    let uri: hyper::Uri = text
        .parse()
        .map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("`{text}`: give http://HOST:PORT"));
    }
    Ok(uri)
}

/// Largest accepted `max_header_size`: hyper's own ceiling is far above what any client sends.
const MAX_HEADER_LIMIT: u64 = 1024 * 1024;

impl WebConfig {
    /// Adds every problem of the table to `problems`, each with its dotted key.
    pub fn validate(&self, problems: &mut Problems) {
        if !self.enabled {
            return;
        }
        if self.listen.addrs().is_empty() && self.tls_listen.addrs().is_empty() {
            problems.error(
                "web.listen",
                "needs at least one address (or web.tls_listen) when enabled",
            );
        }
        if self.max_header_size.0 < 8192 || self.max_header_size.0 > MAX_HEADER_LIMIT {
            problems.error(
                "web.max_header_size",
                format!(
                    "must be between 8KiB and 1MiB, not {}",
                    self.max_header_size
                ),
            );
        }
        if self.max_connections == 0 {
            problems.error("web.max_connections", "must be at least 1");
        }
        if self.sites.is_empty() {
            problems.error(
                "web.site",
                "at least one [[web.site]] is needed when enabled",
            );
        }
        if self.sites.iter().filter(|s| s.default).count() > 1 {
            problems.error("web.site", "only one site may have default = true");
        }
        let mut names = std::collections::HashSet::new();
        for (i, site) in self.sites.iter().enumerate() {
            let key = |k: &str| format!("web.site[{i}].{k}");
            if site.host.trim().is_empty() {
                problems.error(key("host"), "must name the site, e.g. \"www.example.test\"");
            }
            for name in std::iter::once(&site.host).chain(&site.aliases) {
                let name = name.to_ascii_lowercase();
                if !name.is_empty() && !names.insert(name.clone()) {
                    problems.error(
                        key("host"),
                        format!("`{name}` is already another site's name"),
                    );
                }
            }
            if site.index.iter().any(|f| f.contains('/') || f.is_empty()) {
                problems.error(key("index"), "file names only, e.g. [\"index.html\"]");
            }
            if !site.php.is_empty() {
                if let Err(e) = parse_fastcgi_addr(&site.php) {
                    problems.error(key("php"), e);
                }
            }
            if site.php_keep_alive > 10_000 {
                problems.error(
                    key("php_keep_alive"),
                    "must be at most 10000 (php-fpm's pm.max_children)",
                );
            }
            if site.php_timeout.0.is_zero() {
                problems.error(key("php_timeout"), "must be more than 0s");
            }
            for (code, path) in &site.error_pages {
                if !code.parse::<u16>().is_ok_and(|c| (400..600).contains(&c)) {
                    problems.error(
                        key("error_pages"),
                        format!("`{code}` is not an error status (400-599)"),
                    );
                }
                if !path.starts_with('/') {
                    problems.error(
                        key("error_pages"),
                        format!("`{path}` must be a path under root starting with /"),
                    );
                }
            }
            for (j, r) in site.redirects.iter().enumerate() {
                let key = |k: &str| format!("web.site[{i}].redirect[{j}].{k}");
                if !r.from.starts_with('/') {
                    problems.error(key("from"), "must be a path starting with /");
                }
                if r.to.is_empty() {
                    problems.error(key("to"), "must be a path or URL");
                }
                if !matches!(r.status, 0 | 301 | 302 | 303 | 307 | 308) {
                    problems.error(
                        key("status"),
                        format!(
                            "{} is not a redirect status (301, 302, 303, 307, 308)",
                            r.status
                        ),
                    );
                }
            }
            for (j, a) in site.auth.iter().enumerate() {
                if !a.path.starts_with('/') {
                    problems.error(
                        format!("web.site[{i}].auth[{j}].path"),
                        "must be a path starting with /",
                    );
                }
            }
            for (j, p) in site.proxies.iter().enumerate() {
                let key = |k: &str| format!("web.site[{i}].proxy[{j}].{k}");
                if !p.path.starts_with('/') {
                    problems.error(key("path"), "must be a path starting with /");
                }
                if let Err(e) = parse_upstream(&p.to) {
                    problems.error(key("to"), e);
                }
            }
        }
        self.validate_acme(problems);
        serval_core::config::warn_plain_public(
            "web.listen",
            &self.listen,
            "sites with logins",
            problems,
        );
    }
}

/// Whether an ACME CA can issue for `name` over HTTP-01: a DNS name with a dot, not an IP
/// address, not a wildcard (those need DNS-01), not a name only this network knows.
pub fn is_acme_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.contains('.')
        && name.parse::<std::net::IpAddr>().is_err()
        && !name.ends_with(".local")
        && !name.ends_with(".localhost")
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

impl WebConfig {
    fn validate_acme(&self, problems: &mut Problems) {
        let acme = &self.acme;
        if !acme.enabled {
            return;
        }
        if !acme.directory.starts_with("https://") && !acme.directory.starts_with("http://") {
            problems.error(
                "web.acme.directory",
                format!("`{}` is not a URL", acme.directory),
            );
        }
        for contact in &acme.contact {
            if !contact.starts_with("mailto:") {
                problems.error(
                    "web.acme.contact",
                    format!("`{contact}`: give mailto:ADDRESS"),
                );
            }
        }
        if acme.renew_before.0.is_zero() {
            problems.error("web.acme.renew_before", "must be more than 0s");
        }
        if self.listen.addrs().is_empty() {
            problems.error(
                "web.listen",
                "[web.acme] proves the names over plain HTTP: web.listen is needed",
            );
        }
        if self.tls_listen.addrs().is_empty() {
            problems.warning(
                "web.tls_listen",
                "[web.acme] is enabled but no HTTPS address is set, so its certificates are never used",
            );
        }
        let wanted = self
            .sites
            .iter()
            .filter(|s| s.acme)
            .flat_map(|s| std::iter::once(&s.host).chain(&s.aliases))
            .filter(|n| is_acme_name(n))
            .count();
        if wanted == 0 {
            problems.warning(
                "web.acme.enabled",
                "no site has a name an ACME CA can issue for (a DNS name, not localhost or an IP)",
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_unknown_keys_are_refused() {
        let mut problems = Problems::new();
        WebConfig::default().validate(&mut problems);
        assert!(problems.is_empty(), "{:?}", problems.into_vec());
        let parsed: WebConfig = toml::from_str(
            "listen = [\"127.0.0.1:1\"]\n[[site]]\nhost = \"a.test\"\nphp = \"unix:/run/php.sock\"\n[[site.proxy]]\npath = \"/app/\"\nto = \"http://127.0.0.1:3000\"\n",
        )
        .unwrap();
        assert_eq!(parsed.sites[0].proxies[0].path, "/app/");
        assert!(toml::from_str::<WebConfig>("bogus = 1").is_err());
        assert!(toml::from_str::<WebConfig>("[[site]]\nbogus = 1").is_err());
    }

    #[test]
    fn bad_values_are_reported_with_keys() {
        let mut problems = Problems::new();
        let site = SiteConfig {
            php: "php-fpm".into(),
            redirects: vec![RedirectConfig {
                from: "old".into(),
                to: "/new".into(),
                status: 200,
            }],
            proxies: vec![ProxyConfig {
                path: "/app/".into(),
                to: "https://x".into(),
                ..Default::default()
            }],
            default: true,
            ..SiteConfig::default()
        };
        WebConfig {
            sites: vec![site.clone(), site],
            ..WebConfig::default()
        }
        .validate(&mut problems);
        let keys: Vec<String> = problems.iter().map(|p| p.key.clone()).collect();
        for key in [
            "web.site",
            "web.site[0].php",
            "web.site[0].redirect[0].from",
            "web.site[0].redirect[0].status",
            "web.site[0].proxy[0].to",
            "web.site[1].host",
        ] {
            assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
        }
    }

    #[test]
    fn acme_names() {
        for ok in [
            "www.example.test",
            "a-b.example.org.",
            "XN--BCHER-KVA.example",
        ] {
            assert!(is_acme_name(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "*.example.test",
            "127.0.0.1",
            "::1",
            "printer.local",
            "a..b",
            "-a.test",
            "a_b.test",
        ] {
            assert!(!is_acme_name(bad), "{bad}");
        }
    }

    #[test]
    fn fastcgi_addresses() {
        assert_eq!(
            parse_fastcgi_addr("unix:/run/php/fpm.sock"),
            Ok(FastCgiAddr::Unix("/run/php/fpm.sock".into()))
        );
        assert_eq!(
            parse_fastcgi_addr("127.0.0.1:9000"),
            Ok(FastCgiAddr::Tcp("127.0.0.1:9000".into()))
        );
        assert!(parse_fastcgi_addr("unix:relative.sock").is_err());
        assert!(parse_fastcgi_addr("9000").is_err());
    }
}
