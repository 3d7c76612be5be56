//! `serval web import-apache DIR`: reads an Apache httpd configuration (Debian's
//! `/etc/apache2`, OS X Server's `/etc/apache2` or `/Library/Server/Web/Config/apache2`) and
//! turns its virtual hosts into `[[web.site]]` tables, listing every directive it could not
//! take with its file and line. Written by hand: no maintained crate parses httpd.conf, and
//! only a handful of directives matter.

use crate::config::{ProxyConfig, RedirectConfig, SiteConfig};
use std::path::{Path, PathBuf};

/// What the import found.
#[derive(Debug, Default)]
pub struct Import {
    pub sites: Vec<SiteConfig>,
    /// "file:line: what was not taken, and why".
    pub skipped: Vec<String>,
    /// Things the admin must do by hand (run php-fpm, copy certificates).
    pub todo: Vec<String>,
}

/// One logical line of a config file.
struct Line {
    file: String,
    number: usize,
    words: Vec<String>,
}

/// Splits a directive line into words; double quotes group, backslash-newline continues.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Reads `file` and, recursively, what it includes (globs allowed), relative to `server_root`.
fn read_all(
    file: &Path,
    server_root: &Path,
    out: &mut Vec<Line>,
    depth: usize,
    skipped: &mut Vec<String>,
) {
    if depth > 16 {
        skipped.push(format!("{}: includes nested too deep", file.display()));
        return;
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        skipped.push(format!("{}: cannot be read", file.display()));
        return;
    };
    let name = file.display().to_string();
    let mut pending = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if pending.is_empty() {
            start = i + 1;
        }
        if let Some(cont) = raw.strip_suffix('\\') {
            pending.push_str(cont);
            pending.push(' ');
            continue;
        }
        pending.push_str(raw);
        let line = std::mem::take(&mut pending);
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let w = words(trimmed);
        if w.is_empty() {
            continue;
        }
        let directive = w[0].to_ascii_lowercase();
        if directive == "include" || directive == "includeoptional" {
            for pattern in &w[1..] {
                let pattern = if Path::new(pattern).is_absolute() {
                    PathBuf::from(pattern)
                } else {
                    server_root.join(pattern)
                };
                let mut matched = expand(&pattern);
                matched.sort();
                if matched.is_empty()
                    && directive == "include"
                    && !pattern.to_string_lossy().contains('*')
                {
                    skipped.push(format!(
                        "{name}:{start}: Include {} does not exist",
                        pattern.display()
                    ));
                }
                for m in matched {
                    read_all(&m, server_root, out, depth + 1, skipped);
                }
            }
            continue;
        }
        out.push(Line {
            file: name.clone(),
            number: start,
            words: w,
        });
    }
}

/// A path or a `dir/*.conf`-style glob (one `*` in the last component, as Apache configs use).
fn expand(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !text.contains('*') {
        return if pattern.is_file() {
            vec![pattern.to_path_buf()]
        } else if pattern.is_dir() {
            std::fs::read_dir(pattern)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.is_file())
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
    }
    let (Some(dir), Some(file)) = (
        pattern.parent(),
        pattern.file_name().and_then(|f| f.to_str()),
    ) else {
        return Vec::new();
    };
    let (prefix, suffix) = file.split_once('*').unwrap_or((file, ""));
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n.starts_with(prefix)
                                && n.ends_with(suffix)
                                && n.len() >= prefix.len() + suffix.len()
                        })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Reads the configuration under `dir` (its apache2.conf or httpd.conf).
pub fn import_dir(dir: &Path) -> Result<Import, String> {
    let main = ["apache2.conf", "httpd.conf", "conf/httpd.conf"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{}: no apache2.conf or httpd.conf in it", dir.display()))?;
    let mut lines = Vec::new();
    let mut import = Import::default();
    read_all(&main, dir, &mut lines, 0, &mut import.skipped);
    interpret(&lines, &mut import);
    Ok(import)
}

/// Directives that change nothing Serval needs (logging, modules, tuning): not reported.
const IGNORED: &[&str] = &[
    "loadmodule",
    "errorlog",
    "customlog",
    "loglevel",
    "logformat",
    "serveradmin",
    "user",
    "group",
    "pidfile",
    "timeout",
    "keepalive",
    "maxkeepaliverequests",
    "keepalivetimeout",
    "hostnamelookups",
    "accessfilename",
    "servertokens",
    "serversignature",
    "traceenable",
    "mutex",
    "defaultruntimedir",
    "adddefaultcharset",
    "typesconfig",
    "addtype",
    "addlanguage",
    "addcharset",
    "mimemagicfile",
    "startservers",
    "minspareservers",
    "maxspareservers",
    "maxrequestworkers",
    "maxconnectionsperchild",
    "serverroot",
    "listen",
    "namevirtualhost",
    "servername",
    "setenvif",
    "browsermatch",
    "headername",
    "readmename",
    "indexoptions",
    "indexignore",
    "adddescription",
    "addicon",
    "addiconbytype",
    "addiconbyencoding",
    "defaulticon",
    "sslcertificatefile",
    "sslcertificatekeyfile",
    "sslcertificatechainfile",
    "sslprotocol",
    "sslciphersuite",
    "sslhonorcipherorder",
    "sslengine",
    "define",
    "addoutputfilterbytype",
    "requestreadtimeout",
    "allowoverride",
    "require",
    "order",
    "allow",
    "deny",
    "satisfy",
    "options",
    "directoryindex",
];

fn interpret(lines: &[Line], import: &mut Import) {
    let mut site: Option<SiteConfig> = None;
    let mut php_module = false;
    let mut tls_sites = Vec::new();
    // Sections inside a virtual host other than those understood: their lines are skipped
    // with one note per section.
    let mut section_depth = 0usize;
    for line in lines {
        let at = format!("{}:{}", line.file, line.number);
        let d = line.words[0].to_ascii_lowercase();
        let args = &line.words[1..];
        if d.starts_with("</") {
            let name = d.trim_start_matches("</").trim_end_matches('>');
            if name == "virtualhost" {
                if let Some(s) = site.take() {
                    import.sites.push(s);
                }
                section_depth = 0;
            } else {
                section_depth = section_depth.saturating_sub(1);
            }
            continue;
        }
        if d.starts_with('<') {
            let name = d.trim_start_matches('<').trim_end_matches('>');
            if name == "virtualhost" {
                site = Some(SiteConfig {
                    host: String::new(),
                    index: Vec::new(),
                    ..SiteConfig::default()
                });
                continue;
            }
            // <Directory>, <Location>, <IfModule>, <FilesMatch>: their directives still
            // apply to the site where understood (Options Indexes, SetHandler).
            section_depth += 1;
            continue;
        }
        if d == "loadmodule" && args.first().is_some_and(|m| m.starts_with("php")) {
            php_module = true;
        }
        let Some(s) = site.as_mut() else {
            // Modules' own defaults (Debian's mods-enabled/*.conf) describe Apache, not the
            // office's sites: compression, MIME types and timeouts Serval has by itself.
            let module_file =
                line.file.contains("/mods-enabled/") || line.file.contains("/mods-available/");
            if !module_file && !IGNORED.contains(&d.as_str()) && d != "documentroot" {
                import.skipped.push(format!(
                    "{at}: {} (outside a VirtualHost)",
                    line.words.join(" ")
                ));
            }
            continue;
        };
        match d.as_str() {
            "servername" => {
                if let Some(name) = args.first() {
                    s.host = name.split(':').next().unwrap_or(name).to_owned();
                }
            }
            "serveralias" => s.aliases.extend(args.iter().cloned()),
            "documentroot" => {
                if let Some(root) = args.first() {
                    s.root = root.trim_end_matches('/').to_owned();
                }
            }
            "directoryindex" => {
                s.index = args.iter().filter(|a| !a.contains('/')).cloned().collect()
            }
            "options" => {
                for o in args {
                    match o
                        .trim_start_matches(['+', '-'])
                        .to_ascii_lowercase()
                        .as_str()
                    {
                        "indexes" => s.listing = !o.starts_with('-'),
                        "followsymlinks" | "symlinksifownermatch" => {}
                        _ => {}
                    }
                }
            }
            "errordocument" => {
                if let [code, page, ..] = args {
                    if page.starts_with('/') {
                        s.error_pages.insert(code.clone(), page.clone());
                    } else {
                        import.skipped.push(format!("{at}: ErrorDocument {code} with a message or URL (Serval takes a path under the root)"));
                    }
                }
            }
            "redirect" | "redirectpermanent" | "redirecttemp" => {
                let (status, rest) =
                    match (d.as_str(), args.first().map(|a| a.to_ascii_lowercase())) {
                        ("redirectpermanent", _) => (301, args),
                        ("redirecttemp", _) => (302, args),
                        (_, Some(a)) if a == "permanent" => (301, &args[1..]),
                        (_, Some(a)) if a == "temp" => (302, &args[1..]),
                        (_, Some(a)) if a == "seeother" => (303, &args[1..]),
                        (_, Some(a)) if a.parse::<u16>().is_ok() => {
                            (a.parse().unwrap_or(302), &args[1..])
                        }
                        _ => (302, args),
                    };
                if let [from, to, ..] = rest {
                    s.redirects.push(RedirectConfig {
                        from: from.clone(),
                        to: to.clone(),
                        status,
                    });
                }
            }
            "proxypass" => match args {
                [path, to, ..] if to.starts_with("http://") => s.proxies.push(ProxyConfig {
                    path: path.clone(),
                    to: to.trim_end_matches('/').to_owned(),
                    ..ProxyConfig::default()
                }),
                _ => import.skipped.push(format!(
                    "{at}: {} (only http:// upstreams are taken)",
                    line.words.join(" ")
                )),
            },
            "proxypassreverse" | "proxypreservehost" => {
                if d == "proxypreservehost"
                    && args.first().is_some_and(|a| a.eq_ignore_ascii_case("on"))
                {
                    for p in &mut s.proxies {
                        p.preserve_host = true;
                    }
                }
            }
            "sethandler" => {
                // Debian's php-fpm: SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"
                if let Some(h) = args.first().and_then(|h| h.strip_prefix("proxy:")) {
                    let target = h.split('|').next().unwrap_or(h);
                    if let Some(sock) = target.strip_prefix("unix:") {
                        s.php = format!("unix:{sock}");
                    } else if let Some(addr) = target.strip_prefix("fcgi://") {
                        s.php = addr.trim_end_matches('/').to_owned();
                    }
                } else if args.first().is_some_and(|h| h.contains("php")) {
                    php_module = true;
                }
            }
            "sslengine" => {
                if args.first().is_some_and(|a| a.eq_ignore_ascii_case("on")) {
                    tls_sites.push(s.host.clone());
                }
            }
            "alias" | "scriptalias" | "aliasmatch" | "rewriteengine" | "rewriterule"
            | "rewritecond" => {
                import.skipped.push(format!(
                    "{at}: {} (no equivalent: move the folder under the root, or use a redirect)",
                    line.words.join(" ")
                ));
            }
            "authtype" | "authname" | "authuserfile" | "authgroupfile" | "authbasicprovider" => {
                import.skipped.push(format!(
                    "{at}: {} (use [[web.site.auth]] with directory groups)",
                    line.words.join(" ")
                ));
            }
            _ if IGNORED.contains(&d.as_str()) => {}
            _ => import
                .skipped
                .push(format!("{at}: {}", line.words.join(" "))),
        }
        let _ = section_depth;
    }
    if let Some(s) = site.take() {
        import.sites.push(s);
    }
    for (i, s) in import.sites.iter_mut().enumerate() {
        if s.host.is_empty() {
            // Apache's catch-all (Debian's 000-default has no ServerName): the default site.
            s.host = if i == 0 {
                "localhost".into()
            } else {
                format!("site{}.invalid", i + 1)
            };
            s.default = i == 0;
            import.todo.push(format!(
                "site {} has no ServerName: it is {} here; give it its name",
                i + 1,
                s.host
            ));
        }
        if s.index.is_empty() {
            s.index = SiteConfig::default().index;
        }
    }
    // The same name on :80 and :443 is one Serval site with both listeners.
    let mut merged: Vec<SiteConfig> = Vec::new();
    for s in std::mem::take(&mut import.sites) {
        if let Some(existing) = merged.iter_mut().find(|m| m.host == s.host) {
            for p in s.proxies {
                if !existing.proxies.contains(&p) {
                    existing.proxies.push(p);
                }
            }
            for r in s.redirects {
                if !existing.redirects.contains(&r) {
                    existing.redirects.push(r);
                }
            }
            if existing.php.is_empty() {
                existing.php = s.php;
            }
        } else {
            merged.push(s);
        }
    }
    import.sites = merged;
    if php_module {
        import.todo.push("PHP ran inside Apache (mod_php): install php-fpm (Debian: apt-get install php-fpm) and set php = \"unix:/run/php/php8.2-fpm.sock\" on the sites that use it".into());
    }
    if !tls_sites.is_empty() {
        import.todo.push(format!(
            "{} used TLS: set [tls] cert and key (or tls.self_signed) and web.tls_listen",
            tls_sites.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_style_tree_with_php_fpm_proxy_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sites-enabled")).unwrap();
        std::fs::write(d.join("apache2.conf"), "ServerRoot \"/etc/apache2\"\nLoadModule php_module /usr/lib/apache2/modules/libphp.so\nIncludeOptional sites-enabled/*.conf\nInclude ports.conf\n").unwrap();
        std::fs::write(d.join("ports.conf"), "Listen 80\n").unwrap();
        std::fs::write(
            d.join("sites-enabled/000-www.conf"),
            "<VirtualHost *:80>\n  ServerName www.example.test:80\n  ServerAlias example.test\n  DocumentRoot /srv/www/\n  DirectoryIndex index.php index.html\n  <Directory /srv/www>\n    Options Indexes FollowSymLinks\n  </Directory>\n  <FilesMatch \\.php$>\n    SetHandler \"proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost\"\n  </FilesMatch>\n  Redirect permanent /old /new\n  ProxyPass /app/ http://127.0.0.1:3000/\n  ProxyPreserveHost On\n  Alias /icons/ /usr/share/apache2/icons/\n  ErrorDocument 404 /missing.html\n  AuthUserFile /etc/apache2/htpasswd\n  Frobnicate on\n</VirtualHost>\n<VirtualHost *:443>\n  ServerName www.example.test\n  SSLEngine on\n  DocumentRoot /srv/www\n</VirtualHost>\n",
        )
        .unwrap();
        let import = import_dir(d).unwrap();
        assert_eq!(import.sites.len(), 1, "{:?}", import.sites);
        let s = &import.sites[0];
        assert_eq!(s.host, "www.example.test");
        assert_eq!(s.aliases, vec!["example.test"]);
        assert_eq!(s.root, "/srv/www");
        assert_eq!(s.index, vec!["index.php", "index.html"]);
        assert!(s.listing);
        assert_eq!(s.php, "unix:/run/php/php8.2-fpm.sock");
        assert_eq!(
            s.redirects[0],
            RedirectConfig {
                from: "/old".into(),
                to: "/new".into(),
                status: 301
            }
        );
        assert_eq!(
            (
                s.proxies[0].path.as_str(),
                s.proxies[0].to.as_str(),
                s.proxies[0].preserve_host
            ),
            ("/app/", "http://127.0.0.1:3000", true)
        );
        assert_eq!(s.error_pages["404"], "/missing.html");
        let skipped = import.skipped.join("\n");
        assert!(
            skipped.contains("000-www.conf:15: Alias /icons/"),
            "{skipped}"
        );
        assert!(skipped.contains("AuthUserFile"), "{skipped}");
        assert!(
            skipped.contains("000-www.conf:18: Frobnicate on"),
            "{skipped}"
        );
        assert!(!skipped.contains("Listen"), "{skipped}");
        let todo = import.todo.join("\n");
        assert!(
            todo.contains("php-fpm") && todo.contains("www.example.test used TLS"),
            "{todo}"
        );
    }

    #[test]
    fn a_folder_without_a_config_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert!(import_dir(dir.path())
            .unwrap_err()
            .contains("no apache2.conf"));
    }
}
