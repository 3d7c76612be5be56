//! The "DNS" page of the admin site: cache, answers, failures by reason, DNSSEC and root
//! priming state; its one action flushes the cache (all of it, or one name).

use std::sync::Arc;
use std::time::SystemTime;

use hickory_proto::rr::Name;
use serval_core::html::escape;

use crate::net::Driver;
use crate::recursor::Recursor;

pub struct DnsPanel {
    pub(crate) driver: Arc<Driver>,
    pub(crate) recursor: Option<Arc<Recursor>>,
    pub(crate) started_at: SystemTime,
}

fn ago(t: SystemTime) -> String {
    match SystemTime::now().duration_since(t) {
        Ok(d) if d.as_secs() < 120 => format!("{} s ago", d.as_secs()),
        Ok(d) if d.as_secs() < 7200 => format!("{} min ago", d.as_secs() / 60),
        Ok(d) => format!("{} h ago", d.as_secs() / 3600),
        Err(_) => "just now".into(),
    }
}

impl DnsPanel {
    fn summary(&self) -> serde_json::Value {
        let uptime = SystemTime::now()
            .duration_since(self.started_at)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
            .max(1.0);
        let outcomes: serde_json::Map<String, serde_json::Value> = self
            .driver
            .outcome_counts()
            .into_iter()
            .map(|(name, n)| (name.to_owned(), n.into()))
            .collect();
        let answered: u64 = outcomes.values().filter_map(|v| v.as_u64()).sum();
        let mut doc = serde_json::json!({
            "mode": if self.recursor.is_some() { "recursion" } else { "forwarding" },
            "queries": outcomes,
            "queries_per_second": answered as f64 / uptime,
        });
        if let Some(r) = &self.recursor {
            let (entries, bytes) = r.cache_size();
            let hits = r.metrics.cache_hits.get();
            let misses = r.metrics.cache_misses.get();
            let priming = r.priming.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let reasons = r
                .metrics
                .servfail_reasons
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            doc["cache"] = serde_json::json!({
                "entries": entries, "bytes": bytes, "hits": hits, "misses": misses,
                "hit_rate": if hits + misses > 0 { hits as f64 / (hits + misses) as f64 } else { 0.0 },
                "stale_answers": r.metrics.stale_answers.get(),
            });
            doc["servfails"] = serde_json::to_value(reasons).unwrap_or_default();
            doc["dnssec"] = serde_json::json!({
                "enabled": r.dnssec_enabled(),
                "anchors": r.anchor_tags(),
                "rfc5011": r.trust_summary(),
                "root": r.root_trust(),
            });
            doc["priming"] = serde_json::json!({
                "succeeded_at": priming.succeeded_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                "last_error": priming.last_error.map(|(_, e)| e),
                "root_servers": r.root_servers().iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
            });
        }
        doc
    }
}

impl serval_core::service::AdminPanel for DnsPanel {
    fn render(&self, csrf_field: &str, action_url: &str) -> String {
        let doc = self.summary();
        let mut html = String::new();
        html.push_str(&format!(
            "<p>Mode: {} · {:.1} queries/s since start</p>",
            escape(doc["mode"].as_str().unwrap_or("")),
            doc["queries_per_second"].as_f64().unwrap_or(0.0)
        ));
        html.push_str("<table><tr><th>Answer</th><th>Count</th></tr>");
        if let Some(q) = doc["queries"].as_object() {
            for (name, n) in q {
                html.push_str(&format!("<tr><td>{}</td><td>{}</td></tr>", escape(name), n));
            }
        }
        html.push_str("</table>");
        let Some(recursor) = &self.recursor else {
            return html;
        };
        let c = &doc["cache"];
        html.push_str(&format!(
            "<h3>Cache</h3><p>{} entries, {:.1} MiB · hit rate {:.1}% ({} hits, {} misses) · {} stale answers served</p>",
            c["entries"], c["bytes"].as_f64().unwrap_or(0.0) / 1048576.0,
            c["hit_rate"].as_f64().unwrap_or(0.0) * 100.0, c["hits"], c["misses"], c["stale_answers"]
        ));
        html.push_str("<h3>SERVFAIL by reason</h3>");
        match doc["servfails"].as_object().filter(|m| !m.is_empty()) {
            None => html.push_str("<p>none</p>"),
            Some(reasons) => {
                html.push_str("<table><tr><th>Reason (EDE)</th><th>Count</th></tr>");
                for (reason, n) in reasons {
                    html.push_str(&format!("<tr><td>{}</td><td>{n}</td></tr>", escape(reason)));
                }
                html.push_str("</table>");
            }
        }
        let d = &doc["dnssec"];
        let root = d["root"].as_str().unwrap_or("not checked yet");
        let root_class = if root.starts_with("bogus") { "bad" } else { "" };
        html.push_str(&format!(
            "<h3>DNSSEC</h3><p>Validation {} · configured root trust anchors: key tags {} · tracked (RFC 5011): {} · root keys: <span class=\"{root_class}\">{}</span></p>",
            if d["enabled"].as_bool() == Some(true) { "on" } else { "<strong>off</strong>" },
            escape(&d["anchors"].as_array().map(|a| a.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")).unwrap_or_default()),
            escape(d["rfc5011"].as_str().unwrap_or("")),
            escape(root)
        ));
        let priming = recursor
            .priming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = match (&priming.succeeded_at, &priming.last_error) {
            (_, Some((at, e))) if priming.succeeded_at.is_none_or(|ok| *at > ok) => format!(
                "<span class=\"bad\">failing: {} ({})</span>",
                escape(e),
                ago(*at)
            ),
            (Some(ok), _) => format!("primed {}", ago(*ok)),
            (None, _) => "not primed yet".into(),
        };
        html.push_str(&format!(
            "<h3>Root servers</h3><p>{state} · {} servers: {}</p>",
            recursor.root_servers().len(),
            escape(
                &doc["priming"]["root_servers"]
                    .as_array()
                    .map(|a| a
                        .iter()
                        .filter_map(|v| v.as_str())
                        .collect::<Vec<_>>()
                        .join(" "))
                    .unwrap_or_default()
            )
        ));
        html.push_str(&format!(
            "<form method=\"post\" action=\"{}\">{csrf_field}<input type=\"hidden\" name=\"action\" value=\"flush\">\
             <label>Name <input name=\"name\" placeholder=\"all names\"></label> <button>Flush cache</button></form>",
            escape(action_url)
        ));
        html
    }

    fn handle_action(&self, form: &[(String, String)]) -> Result<String, String> {
        let field = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.trim());
        if field("action") != Some("flush") {
            return Err("unknown action".into());
        }
        let recursor = self
            .recursor
            .as_ref()
            .ok_or("no cache: [dns] forwards to forwarders")?;
        match field("name").filter(|n| !n.is_empty()) {
            None => Ok(format!(
                "Cache flushed: {} entries dropped",
                recursor.flush(None)
            )),
            Some(text) => {
                let mut name = Name::from_ascii(text)
                    .map_err(|e| format!("`{text}` is not a domain name: {e}"))?;
                name.set_fqdn(true);
                let n = recursor.flush(Some(&name));
                Ok(format!("{n} cached entries of {name} dropped"))
            }
        }
    }

    fn json(&self) -> serde_json::Value {
        self.summary()
    }
}
