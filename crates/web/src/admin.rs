//! The "Web" page of the admin site: each site, what it serves, and its requests by status.

use crate::http::AppState;
use std::sync::Arc;
use std::time::SystemTime;

pub struct WebPanel {
    pub(crate) state: Arc<AppState>,
    /// `[tls]` is configured.
    pub(crate) tls: bool,
    /// An HTTPS listener is bound.
    pub(crate) https: bool,
    pub(crate) tls_not_after: Option<SystemTime>,
    pub(crate) acme: Option<Arc<crate::acme::Manager>>,
}

/// What certificate a site presents over HTTPS, and until when.
struct Certificate {
    source: &'static str,
    not_after: Option<SystemTime>,
    problem: Option<String>,
}

impl WebPanel {
    fn certificate(&self, site: &crate::sites::Site) -> Option<Certificate> {
        if !self.https {
            return None;
        }
        if let Some(status) = self.acme.as_ref().and_then(|m| m.status(site.name())) {
            let problem = status.last_error.map(|e| match status.next_attempt {
                Some(t) => format!("{e} (next attempt {})", httpdate::fmt_http_date(t)),
                None => e,
            });
            if status.validity.map(|v| v.1).is_some()
                || problem.is_some()
                || self.tls_not_after.is_none()
            {
                return Some(Certificate {
                    source: "ACME",
                    not_after: status.validity.map(|v| v.1),
                    problem: problem.or_else(|| {
                        status
                            .validity
                            .map(|v| v.1)
                            .is_none()
                            .then(|| "being ordered".into())
                    }),
                });
            }
        }
        self.tls.then_some(Certificate {
            source: "[tls]",
            not_after: self.tls_not_after,
            problem: None,
        })
    }

    /// 2xx, 3xx, 4xx and 5xx answers of the site at `index`.
    fn counts(&self, index: usize) -> [u64; 4] {
        let c = &self.state.site_requests[index];
        [c[1].get(), c[2].get(), c[3].get(), c[4].get()]
    }
}

/// "expires Tue, 06 Mar 2027 ... (89 days)", flagged when close.
fn expiry_text(not_after: Option<SystemTime>, now: SystemTime) -> String {
    let Some(t) = not_after else {
        return "none yet".into();
    };
    match t.duration_since(now) {
        Ok(left) => {
            let days = left.as_secs() / 86_400;
            let text = format!("expires {} ({days} days)", httpdate::fmt_http_date(t));
            if days < 14 {
                format!("<strong>{text}</strong>")
            } else {
                text
            }
        }
        Err(_) => format!("<strong>EXPIRED {}</strong>", httpdate::fmt_http_date(t)),
    }
}

fn escape(s: &str) -> String {
    crate::files::html_escape(s)
}

impl serval_core::service::AdminPanel for WebPanel {
    fn render(&self, _csrf_field: &str, _action_url: &str) -> String {
        let mut html = String::from("<table><tr><th>Site</th><th>Root</th><th>PHP</th><th>Proxied paths</th><th>Realms</th><th>Certificate</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>");
        for site in &self.state.sites.all {
            let c = &site.config;
            let mut names = vec![c.host.clone()];
            names.extend(c.aliases.iter().cloned());
            let proxies: Vec<String> = c
                .proxies
                .iter()
                .map(|p| format!("{} → {}", p.path, p.to))
                .collect();
            let realms: Vec<String> = c
                .auth
                .iter()
                .map(|a| {
                    if a.groups.is_empty() {
                        a.path.clone()
                    } else {
                        format!("{} ({})", a.path, a.groups.join(", "))
                    }
                })
                .collect();
            let [ok, redirect, client, server] = self.counts(site.index);
            let certificate = match self.certificate(site) {
                None if self.https => "<span class=\"bad\">none: this name has no ACME certificate and [tls] is not set</span>".to_owned(),
                None => "-".to_owned(),
                Some(c) => {
                    let mut text = format!(
                        "{}: {}",
                        c.source,
                        expiry_text(c.not_after, SystemTime::now())
                    );
                    if let Some(p) = c.problem {
                        text.push_str(&format!(" <span class=\"bad\">{}</span>", escape(&p)));
                    }
                    text
                }
            };
            html.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{certificate}</td><td>{ok}</td><td>{redirect}</td><td>{client}</td><td>{server}</td></tr>",
                escape(&names.join(", ")),
                if c.default { " (default)" } else { "" },
                escape(&site.root.display().to_string()),
                if c.php.is_empty() { "-".into() } else { escape(&c.php) },
                escape(&proxies.join("; ")),
                escape(&realms.join("; ")),
            ));
        }
        html.push_str("</table>");
        if !self.https {
            html.push_str("<p>No HTTPS: web.tls_listen is not set.</p>");
        }
        html
    }

    fn handle_action(&self, _form: &[(String, String)]) -> Result<String, String> {
        Err("the web page has no actions".into())
    }

    fn json(&self) -> serde_json::Value {
        let sites: Vec<serde_json::Value> = self
            .state
            .sites
            .all
            .iter()
            .map(|s| {
                let [ok, redirect, client, server] = self.counts(s.index);
                let certificate = self.certificate(s).map(|c| serde_json::json!({
                    "source": c.source,
                    "not_after": c.not_after.map(httpdate::fmt_http_date),
                    "problem": c.problem,
                }));
                serde_json::json!({
                    "certificate": certificate,
                    "host": s.config.host,
                    "aliases": s.config.aliases,
                    "default": s.config.default,
                    "root": s.root,
                    "php": s.config.php,
                    "proxies": s.config.proxies.iter().map(|p| serde_json::json!({"path": p.path, "to": p.to})).collect::<Vec<_>>(),
                    "requests": {"2xx": ok, "3xx": redirect, "4xx": client, "5xx": server},
                })
            })
            .collect();
        serde_json::json!({ "sites": sites })
    }
}
