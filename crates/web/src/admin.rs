//! The "Web" page of the admin site: each site, what it serves, and its requests by status.

use crate::http::AppState;
use std::sync::Arc;

pub struct WebPanel {
    pub(crate) state: Arc<AppState>,
    pub(crate) tls: bool,
}

impl WebPanel {
    /// 2xx, 3xx, 4xx and 5xx answers of the site at `index`.
    fn counts(&self, index: usize) -> [u64; 4] {
        let c = &self.state.site_requests[index];
        [c[1].get(), c[2].get(), c[3].get(), c[4].get()]
    }
}

fn escape(s: &str) -> String {
    crate::files::html_escape(s)
}

impl serval_core::service::AdminPanel for WebPanel {
    fn render(&self, _csrf_field: &str, _action_url: &str) -> String {
        let mut html = String::from("<table><tr><th>Site</th><th>Root</th><th>PHP</th><th>Proxied paths</th><th>Realms</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th></tr>");
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
            html.push_str(&format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{ok}</td><td>{redirect}</td><td>{client}</td><td>{server}</td></tr>",
                escape(&names.join(", ")),
                if c.default { " (default)" } else { "" },
                escape(&site.root.display().to_string()),
                if c.php.is_empty() { "-".into() } else { escape(&c.php) },
                escape(&proxies.join("; ")),
                escape(&realms.join("; ")),
            ));
        }
        html.push_str("</table>");
        html.push_str(&format!(
            "<p>HTTPS certificate: {}.</p>",
            if self.tls {
                "the [tls] certificate"
            } else {
                "none ([tls] not configured)"
            }
        ));
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
                serde_json::json!({
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
