//! Choosing the site for a request's Host, and what each site was configured with, resolved
//! once at start (canonical root, FastCGI pool, parsed upstreams).

use crate::config::{parse_fastcgi_addr, parse_upstream, SiteConfig};
use crate::fastcgi::FastCgiPool;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A site ready to serve.
pub struct Site {
    /// Position in `Sites::all`.
    pub index: usize,
    pub config: SiteConfig,
    /// Canonical root folder.
    pub root: PathBuf,
    pub fastcgi: Option<Arc<FastCgiPool>>,
    pub upstreams: Vec<hyper::Uri>,
}

impl Site {
    pub fn name(&self) -> &str {
        &self.config.host
    }
}

pub struct Sites {
    pub all: Vec<Arc<Site>>,
    exact: HashMap<String, usize>,
    /// `*.example.test` entries as (".example.test", index).
    wildcard: Vec<(String, usize)>,
    default: usize,
}

impl Sites {
    /// Resolves every site; roots are created when missing (an empty site answers 404s, not
    /// a start-up failure), relative roots are under `data_dir`.
    pub fn build(configs: &[SiteConfig], data_dir: &Path) -> Result<Sites, String> {
        let mut all = Vec::new();
        let (mut exact, mut wildcard) = (HashMap::new(), Vec::new());
        let mut default = None;
        for (i, config) in configs.iter().enumerate() {
            let root = if config.root.is_empty() {
                data_dir.join("www")
            } else {
                data_dir.join(&config.root)
            };
            let fresh = !root.exists();
            std::fs::create_dir_all(&root)
                .map_err(|e| format!("web.site[{i}].root {}: {e}", root.display()))?;
            if fresh && config.root.is_empty() {
                let _ = std::fs::write(root.join("index.html"), WELCOME);
            }
            let root = std::fs::canonicalize(&root)
                .map_err(|e| format!("web.site[{i}].root {}: {e}", root.display()))?;
            let fastcgi = if config.php.is_empty() {
                None
            } else {
                Some(Arc::new(FastCgiPool::new(
                    parse_fastcgi_addr(&config.php)
                        .map_err(|e| format!("web.site[{i}].php: {e}"))?,
                    config.php_keep_alive,
                )))
            };
            let upstreams = config
                .proxies
                .iter()
                .map(|p| parse_upstream(&p.to))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("web.site[{i}].proxy: {e}"))?;
            for name in std::iter::once(&config.host).chain(&config.aliases) {
                let name = name.to_ascii_lowercase();
                match name.strip_prefix('*') {
                    Some(suffix) => wildcard.push((suffix.to_owned(), i)),
                    None => {
                        exact.insert(name, i);
                    }
                }
            }
            if config.default {
                default = Some(i);
            }
            all.push(Arc::new(Site {
                index: i,
                config: config.clone(),
                root,
                fastcgi,
                upstreams,
            }));
        }
        if all.is_empty() {
            return Err("no [[web.site]]".into());
        }
        // Longest suffix first: `*.a.example.test` wins over `*.example.test`.
        wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
        Ok(Sites {
            all,
            exact,
            wildcard,
            default: default.unwrap_or(0),
        })
    }

    /// The site for a Host header value (port and trailing dot ignored, case-insensitive).
    pub fn pick(&self, host: Option<&str>) -> &Arc<Site> {
        let index = host.map(host_name).and_then(|h| {
            self.exact.get(&h).copied().or_else(|| {
                self.wildcard
                    .iter()
                    .find(|(suffix, _)| h.ends_with(suffix.as_str()))
                    .map(|(_, i)| *i)
            })
        });
        &self.all[index.unwrap_or(self.default)]
    }
}

/// `Www.Example.test.:8080` -> `www.example.test`; `[::1]:80` -> `[::1]`.
pub fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if host.starts_with('[') {
        host.split_once(']')
            .map(|(h, _)| format!("{h}]"))
            .unwrap_or_else(|| host.to_owned())
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
            .map(|(h, _)| h.to_owned())
            .unwrap_or_else(|| host.to_owned())
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

const WELCOME: &str = "<!DOCTYPE html>
<html><head><meta charset=\"utf-8\"><title>Serval web</title></head>
<body><h1>It works</h1>
<p>This page is data_dir/www/index.html, served by Serval's web service.
Replace it, or give a site its own <code>root</code> under <code>[[web.site]]</code>.</p>
</body></html>
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_and_site_choice() {
        assert_eq!(host_name("Www.Example.test.:8080"), "www.example.test");
        assert_eq!(host_name("[::1]:80"), "[::1]");
        let dir = tempfile::tempdir().unwrap();
        let a = SiteConfig {
            host: "a.test".into(),
            default: false,
            root: "a".into(),
            ..SiteConfig::default()
        };
        let b = SiteConfig {
            host: "*.b.test".into(),
            default: true,
            root: "b".into(),
            ..SiteConfig::default()
        };
        let c = SiteConfig {
            host: "c.test".into(),
            aliases: vec!["www.c.test".into()],
            default: false,
            root: "c".into(),
            ..SiteConfig::default()
        };
        let sites = Sites::build(&[a, b, c], dir.path()).unwrap();
        assert_eq!(sites.pick(Some("A.test:8080")).name(), "a.test");
        assert_eq!(sites.pick(Some("x.b.test")).name(), "*.b.test");
        assert_eq!(sites.pick(Some("www.c.test")).name(), "c.test");
        assert_eq!(sites.pick(Some("unknown.test")).name(), "*.b.test");
        assert_eq!(sites.pick(None).name(), "*.b.test");
    }
}
